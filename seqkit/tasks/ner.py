"""Sequence tagging (named entities), many-to-many aligned: one tag per token.

Data: CoNLL-style columns, one token per line, the token first and the tag last (or
--token-column / --tag-column), a blank line between sentences, -DOCSTART- skipped.
Tag schemes IOB1, BIO, BIOES and BMES, detected from the tags or set with `scheme`.
English word-level files and Chinese character-level files work unchanged.

    seqkit ner train data/ner_en.conll -o runs/ner_en
    echo "Mara Quell flew to Tallinvik on Monday." | seqkit ner predict runs/ner_en
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import keras
import numpy as np
from keras import ops

from seqkit import artifacts, config as configlib, corpora, io, metrics, schemes, text
from seqkit.backbones import BackboneSpec, CharPool, apply_backbone
from seqkit.crf import CRF
from seqkit.errors import ConfigError, DataError
from seqkit.batching import Batches, predict_padded
from seqkit.training import ScoreCallback, TrainSpec, fit, make_optimizer, set_seed

TASK = NAME = "ner"
CHAR_FEATURES = ("auto", "cnn", "none")
SWITCH = ("auto", "on", "off")
TOKENIZERS = ("auto", *text.TOKENIZERS)
log = logging.getLogger("seqkit")


# 1. Config ---------------------------------------------------------------------------------
@dataclass
class Config(configlib.Recipe):
    # shared keys (seqkit.config) whose default differs here
    dropout: float = 0.5
    epochs: int = 30
    max_minutes: float = 30.0
    batch_size: int = 8
    learning_rate: float = 0.002
    lr_decay: float = 0.5
    clipnorm: float = 5.0
    patience: int = 4
    # this task's own keys
    scheme: str = "auto"  # auto: detected from the training tags; iob1 | bio | bioes | bmes
    model_scheme: str = "bioes"  # the tags the model learns (converted back for output); same
    tokenizer: str = "auto"  # for raw text at predict; auto: char for char-level data
    lowercase: bool = True  # word ids only; character features keep the case
    min_count: int = 1
    max_vocab: int = 100000
    valid_fraction: float = 0.1  # of sentences held out when no --valid is given
    embeddings: str = ""  # word2vec/GloVe text file; its dimension sets embedding_dim
    embedding_dim: int = 100
    unk_replace: float = 0.5  # chance that a word seen once in training is fed as <unk>
    char_features: str = "auto"  # auto: a char CNN unless tokens are single characters
    case_features: str = "auto"  # auto: a word-shape embedding for word-level data; on | off
    case_embedding_dim: int = 8
    char_embedding_dim: int = 30
    char_dropout: float = 0.0  # on the character embeddings, before the char CNN
    char_filters: int = 50
    char_width: int = 3
    max_word_length: int = 20  # characters per word seen by the char CNN
    bigrams: str = "auto"  # token-bigram embeddings; auto: on for char-level data (Chinese)
    bigram_embedding_dim: int = 50
    bigram_min_count: int = 2  # rarer bigrams are <unk>, so <unk> is learnt
    crf: bool = True

    def validate(self) -> None:
        if self.scheme != "auto":
            configlib.check_choice("scheme", schemes.canonical(self.scheme), schemes.SCHEMES)
        if self.model_scheme != "same":
            configlib.check_choice("model_scheme", schemes.canonical(self.model_scheme),
                                   schemes.SCHEMES)
        configlib.check_choice("tokenizer", self.tokenizer, TOKENIZERS)
        configlib.check_choice("char_features", self.char_features, CHAR_FEATURES)
        configlib.check_choice("bigrams", self.bigrams, SWITCH)
        configlib.check_choice("case_features", self.case_features, SWITCH)
        configlib.check_range("char_dropout", self.char_dropout, 0.0, 0.9)
        configlib.check_range("valid_fraction", self.valid_fraction, 0.01, 0.5)
        configlib.check_range("unk_replace", self.unk_replace, 0.0, 1.0)
        configlib.check_range("max_minutes", self.max_minutes, 0.0)
        for name in ("embedding_dim", "case_embedding_dim", "char_embedding_dim", "char_filters", "char_width",
                     "max_word_length", "bigram_embedding_dim", "bigram_min_count"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        super().validate()


# 2. Preprocessor ---------------------------------------------------------------------------
_DIGIT = re.compile(r"\d")


def word_key(token: str, lowercase: bool) -> str:
    """The vocabulary entry of a token: NFKC, lowercased (if set), every digit 0."""
    token = text.normalize(token)
    return _DIGIT.sub("0", token.lower() if lowercase else token)


# Word shapes: what lowercasing the word ids hides (0 is padding).
SHAPES = ("<pad>", "lower", "Capitalised", "UPPER", "mIxed", "digits", "has digit", "other")


def word_shape(token: str) -> int:
    """The index in SHAPES of a token's casing class."""
    if token.isdigit():
        return 5
    if any(ch.isdigit() for ch in token):
        return 6
    letters = [ch for ch in token if ch.isalpha()]
    if not letters:
        return 7
    if all(ch.islower() for ch in letters):
        return 1
    if all(ch.isupper() for ch in letters):
        return 3
    if letters[0].isupper() and all(ch.islower() for ch in letters[1:]):
        return 2
    return 4


def is_char_level(token_lists: Iterable[Sequence[str]]) -> bool:
    """Whether tokens are single characters (Chinese corpora), judged on 90% of them."""
    lengths = [len(tok) for toks in token_lists for tok in toks]
    return bool(lengths) and sum(n == 1 for n in lengths) >= 0.9 * len(lengths)


class Preprocessor:
    """Tokens -> word ids (+ character ids), tags <-> tag ids. Pure Python; saved as JSON.

    `scheme` is the data's; the model may learn the same entities in another scheme
    (`model_scheme`, whose tags `tags` are), converted on the way in and out."""

    def __init__(self, scheme: str, tags: Sequence[str], vocab: text.Vocabulary,
                 chars: text.Vocabulary | None, tokenizer: str, lowercase: bool,
                 max_word_length: int, bigrams: text.Vocabulary | None = None,
                 shapes: bool = False, model_scheme: str | None = None):
        self.scheme, self.tags = scheme, list(tags)
        self.model_scheme = model_scheme or scheme
        self.tag_index = {tag: i for i, tag in enumerate(self.tags)}
        self.vocab, self.chars, self.bigrams, self.shapes = vocab, chars, bigrams, shapes
        self.tokenizer, self.lowercase, self.max_word_length = tokenizer, lowercase, \
            max_word_length

    def word_key(self, token: str) -> str:
        return word_key(token, self.lowercase)

    @classmethod
    def fit(cls, sentences: Sequence[corpora.Sentence], scheme: str, config: Config,
            extra_words: Sequence[str] = ()) -> "Preprocessor":
        token_lists = [s.tokens for s in sentences]
        char_level = is_char_level(token_lists)
        tokenizer = config.tokenizer
        if tokenizer == "auto":
            tokenizer = "char" if char_level else "auto"
        use_chars = config.char_features == "cnn" or (config.char_features == "auto"
                                                       and not char_level)
        model_scheme = (scheme if config.model_scheme == "same"
                        else schemes.canonical(config.model_scheme))
        pre = cls(scheme, schemes.tag_set(schemes.entity_types(s.tags for s in sentences),
                                          model_scheme),
                  text.Vocabulary([text.Vocabulary.PAD, text.Vocabulary.UNK]), None, tokenizer,
                  config.lowercase, config.max_word_length, model_scheme=model_scheme)
        keys = [[pre.word_key(t) for t in toks] for toks in token_lists]
        vocab = text.Vocabulary.build(keys, config.min_count, config.max_vocab)
        if extra_words:  # pretrained words not seen in training, up to max_vocab
            room = max(0, config.max_vocab - len(vocab))
            new = [w for w in dict.fromkeys(extra_words) if w not in vocab][:room]
            vocab = text.Vocabulary(vocab.tokens + new)
        pre.vocab = vocab
        if use_chars:
            pre.chars = text.Vocabulary.build(
                [list(text.normalize(t)) for toks in token_lists for t in toks])
        pre.shapes = config.case_features == "on" or (config.case_features == "auto"
                                                      and not char_level)
        if config.bigrams == "on" or (config.bigrams == "auto" and char_level):
            pre.bigrams = text.Vocabulary.build([pre.bigram_keys(toks) for toks in token_lists],
                                                config.bigram_min_count, config.max_vocab)
        log.info("%s scheme, %d %s tags, vocabulary %s words, %s, %s, %s, raw text tokenizer %s",
                 scheme.upper(), len(pre.tags), model_scheme.upper(), f"{len(vocab):,}",
                 f"char CNN over {len(pre.chars):,} characters" if pre.chars
                 else "no character features",
                 f"{len(pre.bigrams):,} bigrams" if pre.bigrams else "no bigrams",
                 "word shapes" if pre.shapes else "no word shapes", tokenizer)
        return pre

    def bigram_keys(self, tokens: Sequence[str]) -> list[str]:
        return text.bigrams([self.word_key(t) for t in tokens])

    def words(self, token_lists: Iterable[Sequence[str]]) -> list[list[int]]:
        return [self.vocab.encode(self.word_key(t) for t in toks) for toks in token_lists]

    def inputs(self, token_lists: Sequence[Sequence[str]]) -> dict[str, list]:
        """The model's inputs for tokenised sentences: word ids, and character ids."""
        out: dict[str, list] = {"tokens": self.words(token_lists)}
        if self.chars is not None:
            out["chars"] = [[self.chars.encode(text.normalize(t)[: self.max_word_length])
                             for t in toks] for toks in token_lists]
        if self.bigrams is not None:
            out["bigrams"] = [self.bigrams.encode(self.bigram_keys(toks)) for toks in token_lists]
        if self.shapes:
            out["shapes"] = [[word_shape(t) for t in toks] for toks in token_lists]
        return out

    def encode_tags(self, tag_lists: Iterable[Sequence[str]]) -> list[list[int]]:
        """Tag ids of the data's tags; a tag of an entity type unseen in training counts
        as O."""
        return [[self.tag_index.get(tag, 0)
                 for tag in schemes.convert(tags, self.scheme, self.model_scheme)]
                for tags in tag_lists]

    def decode_tags(self, ids: Iterable[int]) -> list[str]:
        """Tag ids -> the data's tags."""
        return schemes.convert([self.tags[i] for i in ids], self.model_scheme, self.scheme)

    def to_json(self) -> dict:
        return {"scheme": self.scheme, "model_scheme": self.model_scheme, "tags": self.tags, "tokenizer": self.tokenizer,
                "lowercase": self.lowercase, "max_word_length": self.max_word_length,
                "vocab": self.vocab.to_json(),
                "chars": self.chars.to_json() if self.chars is not None else None,
                "bigrams": self.bigrams.to_json() if self.bigrams is not None else None,
                "shapes": self.shapes}

    @classmethod
    def from_json(cls, data: dict) -> "Preprocessor":
        chars, bigrams = (text.Vocabulary.from_json(data[k]) if data.get(k) else None
                          for k in ("chars", "bigrams"))
        return cls(data["scheme"], data["tags"], text.Vocabulary.from_json(data["vocab"]),
                   chars, data["tokenizer"], data["lowercase"], data["max_word_length"],
                   bigrams, data.get("shapes", False), data.get("model_scheme"))


def check_tags(sentences: Sequence[corpora.Sentence], scheme: str, path: str) -> None:
    """Every tag must belong to the scheme; the first that does not is a FILE:LINE error."""
    for sentence in sentences:
        for tag, line in zip(sentence.tags, sentence.lines):
            problem = schemes.check(tag, scheme)
            if problem:
                raise DataError(problem, path=path, line=line)


def resolve_scheme(config: Config, sentences: Sequence[corpora.Sentence]) -> str:
    if config.scheme != "auto":
        return schemes.canonical(config.scheme)
    scheme = schemes.detect(s.tags for s in sentences)
    log.info("tag scheme detected: %s", scheme.upper())
    return scheme


def pretrained_vectors(path: str, token_lists: Sequence[Sequence[str]], config: Config):
    """(words, matrix) of a vectors file; the first max_vocab words, plus any word in
    the training data."""
    seen = {word_key(t, config.lowercase) for toks in token_lists for t in toks}
    count = {"n": 0}

    def keep(word: str) -> bool:
        count["n"] += 1
        return count["n"] <= config.max_vocab or word in seen

    words, matrix = corpora.read_vectors(path, keep=keep)
    log.info("pretrained vectors: %s words of dimension %d from %s", f"{len(words):,}",
             matrix.shape[1], path)
    return words, matrix


def embedding_matrix(pre: Preprocessor, words: Sequence[str], matrix: np.ndarray,
                     seed: int) -> np.ndarray:
    """Vocabulary-sized weights: pretrained rows where the word has one, small random
    rows elsewhere, zeros for padding."""
    rng = np.random.default_rng(seed)
    scale = float(matrix.std()) if matrix.size else 0.1
    out = rng.normal(0.0, scale, (len(pre.vocab), matrix.shape[1])).astype(np.float32)
    out[pre.vocab.pad_id] = 0.0
    rows = {w: i for i, w in enumerate(words)}
    found = 0
    for i, key in enumerate(pre.vocab.tokens):
        j = rows.get(key)
        if j is None and pre.lowercase is False:
            j = rows.get(key.lower())
        if j is not None:
            out[i] = matrix[j]
            found += 1
    log.info("pretrained vectors cover %s of %s vocabulary words", f"{found:,}",
             f"{len(pre.vocab):,}")
    return out


# 3. Model ----------------------------------------------------------------------------------
def build_network(config: Config, pre: Preprocessor):
    """The shared graph: (inputs dict, emissions (batch, time, tags))."""
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")  # (batch, time)
    inputs = {"tokens": tokens}
    x = keras.layers.Embedding(len(pre.vocab), config.embedding_dim, mask_zero=True,
                               name="embedding")(tokens)  # (batch, time, dim)
    if pre.chars is not None:
        chars = keras.Input(shape=(None, None), dtype="int32", name="chars")  # (b, t, c)
        inputs["chars"] = chars
        c = keras.layers.Embedding(len(pre.chars), config.char_embedding_dim,
                                   name="char_embedding")(chars)  # (b, t, c, cdim)
        if config.char_dropout > 0:
            c = keras.layers.Dropout(config.char_dropout, name="char_dropout")(c)
        c = keras.layers.Conv2D(config.char_filters, (1, config.char_width), padding="same",
                                activation="tanh", name="char_cnn")(c)  # (b, t, c, filters)
        c = CharPool(name="char_pool")([c, chars])  # (batch, time, filters)
        x = keras.layers.Concatenate(name="word_features")([x, c])
    if pre.bigrams is not None:
        bigrams = keras.Input(shape=(None,), dtype="int32", name="bigrams")  # (batch, time)
        inputs["bigrams"] = bigrams
        b = keras.layers.Embedding(len(pre.bigrams), config.bigram_embedding_dim,
                                   name="bigram_embedding")(bigrams)  # (batch, time, bdim)
        x = keras.layers.Concatenate(name="token_features")([x, b])
    if pre.shapes:
        shapes = keras.Input(shape=(None,), dtype="int32", name="shapes")  # (batch, time)
        inputs["shapes"] = shapes
        s = keras.layers.Embedding(len(SHAPES), config.case_embedding_dim,
                                   name="shape_embedding")(shapes)  # (batch, time, sdim)
        x = keras.layers.Concatenate(name="shape_features")([x, s])
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    x, _ = apply_backbone(x, BackboneSpec.from_config(config), return_sequences=True)
    emissions = keras.layers.Dense(len(pre.tags), name="emissions")(x)  # (b, t, tags)
    return inputs, emissions


def build_model(config: Config, pre: Preprocessor) -> keras.Model:
    """The inference model: per-token tag scores (batch, time, tags); argmax gives the tag
    (softmax probabilities, or the CRF's Viterbi path one-hot)."""
    inputs, emissions = build_network(config, pre)
    if config.crf:
        out = CRF(name="crf")(emissions, mask=_real_tokens(inputs["tokens"]))
    else:
        out = keras.layers.Activation("softmax", name="tag_probs")(emissions)
    return keras.Model(inputs, out, name="ner")


def training_model(model: keras.Model) -> keras.Model:
    """What `fit` trains. A CRF model also takes the gold tags (the CRF adds its NLL as the
    loss); otherwise the inference model itself, with a masked cross-entropy."""
    if not _has_crf(model):
        return model
    inputs = {name: model.get_layer(name).output for name in _input_names(model)}
    tags = keras.Input(shape=(None,), dtype="int32", name="tags")
    emissions = model.get_layer("emissions").output
    out = model.get_layer("crf")(emissions, tags=tags, mask=_real_tokens(inputs["tokens"]))
    return keras.Model({**inputs, "tags": tags}, out, name="ner_training")


def inference_model(trained: keras.Model) -> keras.Model:
    """The inference model rebuilt from a training model's named layers (shared weights)."""
    if not _has_crf(trained) or "tags" not in _input_names(trained):
        return trained
    inputs = {name: trained.get_layer(name).output for name in _input_names(trained)
              if name != "tags"}
    out = trained.get_layer("crf")(trained.get_layer("emissions").output,
                                   mask=_real_tokens(inputs["tokens"]))
    return keras.Model(inputs, out, name="ner")


def _real_tokens(tokens):
    """The gold padding mask: True where a token id is not padding (0)."""
    return ops.not_equal(tokens, 0)


def _has_crf(model: keras.Model) -> bool:
    return any(layer.name == "crf" for layer in model.layers)


def _input_names(model: keras.Model) -> list[str]:
    return [t.name for t in model.inputs]


def compile_model(model: keras.Model, config: Config) -> None:
    loss = None if _has_crf(model) else "sparse_categorical_crossentropy"
    model.compile(optimizer=make_optimizer(TrainSpec.from_config(config)), loss=loss)


# 4. Decode ---------------------------------------------------------------------------------
def decode(line: str, spans: Sequence[tuple[int, int]], tags: Sequence[str], scheme: str
           ) -> list[dict]:
    """Entities with character offsets into `line`, so line[start:end] == text."""
    out = []
    for kind, first, last in schemes.entities(tags, scheme):
        start, end = spans[first][0], spans[last - 1][1]
        out.append({"text": line[start:end], "type": kind, "start": start, "end": end})
    return out


def predict_tags(model: keras.Model, pre: Preprocessor, token_lists: Sequence[Sequence[str]],
                 batch_size: int = 256) -> list[list[str]]:
    """One tag per token; an empty token list gets an empty tag list."""
    filled = [i for i, toks in enumerate(token_lists) if toks]
    out: list[list[str]] = [[] for _ in token_lists]
    if filled:
        inputs = pre.inputs([token_lists[i] for i in filled])
        for i, scores in zip(filled, predict_padded(model, inputs, batch_size)):
            out[i] = pre.decode_tags(np.argmax(scores, axis=-1))
    return out


# Library functions ---------------------------------------------------------------------------
@dataclass
class Columns:
    token_column: int = 1
    tag_column: int = -1
    encoding: str | None = None


def read_tagged(path: str, columns: Columns = Columns()) -> list[corpora.Sentence]:
    return corpora.read_conll(path, columns.token_column, columns.tag_column, columns.encoding)


def score(model, pre: Preprocessor, sentences: Sequence[corpora.Sentence], batch_size: int) -> dict:
    predicted = predict_tags(model, pre, [s.tokens for s in sentences], batch_size)
    return metrics.entity_scores([s.tags for s in sentences], predicted, pre.scheme)


def _batches(pre: Preprocessor, sentences, config: Config, crf: bool, shuffle: bool,
             singletons: np.ndarray | None = None) -> Batches:
    columns = pre.inputs([s.tokens for s in sentences])
    columns["tags"] = pre.encode_tags(s.tags for s in sentences)
    rng = np.random.default_rng(config.seed)

    def structure(b):
        x = {k: v for k, v in b.items() if k != "tags"}
        if singletons is not None and config.unk_replace > 0:
            # Lample et al. (2016): words seen once are sometimes fed as <unk>, so that the
            # <unk> vector (and the character features) learn to tag unseen words.
            drop = singletons[x["tokens"]] & (rng.random(x["tokens"].shape) < config.unk_replace)
            x["tokens"] = np.where(drop, text.Vocabulary.unk_id, x["tokens"]).astype(np.int32)
        if crf:
            return ({**x, "tags": b["tags"]},)
        return x, b["tags"], (b["tokens"] > 0).astype(np.float32)  # padding weighs 0

    return Batches(columns, [len(s.tokens) for s in sentences], config.batch_size, structure,
                   shuffle=shuffle, seed=config.seed)


def _singletons(pre: Preprocessor, sentences) -> np.ndarray:
    counts = np.bincount([i for ids in pre.words(s.tokens for s in sentences) for i in ids],
                         minlength=len(pre.vocab))
    return counts == 1


def train(train_path: str, out_dir: str, config: Config, *, valid_path: str | None = None,
          columns: Columns = Columns(), force: bool = False, resume: bool = False) -> dict:
    """Train a tagger and write MODEL_DIR; returns the validation scores."""
    work, config = artifacts.begin(out_dir, TASK, config, force=force, resume=resume)
    set_seed(config.seed)
    sentences = read_tagged(train_path, columns)
    scheme = resolve_scheme(config, sentences)
    check_tags(sentences, scheme, train_path)
    if valid_path:
        valid = read_tagged(valid_path, columns)
        check_tags(valid, scheme, valid_path)
    else:
        from sklearn.model_selection import train_test_split

        sentences, valid = train_test_split(sentences, test_size=config.valid_fraction,
                                            random_state=config.seed)
        log.info("no --valid given: holding out %s of %s sentences", f"{len(valid):,}",
                 f"{len(sentences) + len(valid):,}")
    vectors = None
    if config.embeddings and not resume:
        vectors = pretrained_vectors(config.embeddings, [s.tokens for s in sentences], config)
        config.embedding_dim = int(vectors[1].shape[1])
    pre = artifacts.setup_preprocessor(
        work, task=TASK, config=config, resume=resume,
        fit=lambda: Preprocessor.fit(sentences, scheme, config,
                                     vectors[0] if vectors else ()),
        from_json=Preprocessor.from_json)
    model = build_model(config, pre)
    if vectors is not None:
        model.get_layer("embedding").set_weights(
            [embedding_matrix(pre, *vectors, seed=config.seed)])
    trainee = training_model(model)
    compile_model(trainee, config)
    train_batches = _batches(pre, sentences, config, config.crf, shuffle=True,
                             singletons=_singletons(pre, sentences))
    valid_batches = _batches(pre, valid, config, config.crf, shuffle=False)
    views: dict = {}  # one inference model per trained model: its predict graphs persist

    def valid_f1(trained):
        view = views.setdefault(id(trained), inference_model(trained))
        return score(view, pre, valid, config.batch_size * 8)["f1"]

    f1 = ScoreCallback("f1", valid_f1)
    trainee, summary = fit(trainee, train_batches, valid_batches, TrainSpec.from_config(config),
                           work, monitor="val_f1", mode="max", resume=resume,
                           callbacks=[f1])
    model = inference_model(trainee)
    scores = score(model, pre, valid, config.batch_size * 8)
    log.info("validation entity F1 %.4f (precision %.4f, recall %.4f)", scores["f1"],
             scores["precision"], scores["recall"])
    result = {"validation": scores, "training": summary}
    artifacts.complete(work, out_dir, task=TASK, model=model, preprocessor=pre.to_json(),
                       config=config, metrics=result)
    return result


class Predictor(artifacts.Handle):
    """A loaded tagger that tags raw text lines or pre-tokenised sentences in batches."""

    def __init__(self, model_dir: str, batch_size: int = 256):
        super().__init__(model_dir, TASK, Config, Preprocessor, batch_size)

    def tag(self, token_lists: Sequence[Sequence[str]]) -> list[list[str]]:
        return predict_tags(self.model, self.pre, token_lists, self.batch_size)

    def predict(self, lines: Sequence[str]) -> list[dict]:
        """Raw text, one sentence per line, tokenised as at training."""
        spans = [text.tokenize_spans(line, self.pre.tokenizer) for line in lines]
        return self._records(lines, spans)

    def predict_tokens(self, token_lists: Sequence[Sequence[str]]) -> list[dict]:
        """Pre-tokenised sentences; offsets refer to the tokens joined by single spaces."""
        lines, spans = [], []
        for tokens in token_lists:
            offsets, at = [], 0
            for tok in tokens:
                offsets.append((tok, at, at + len(tok)))
                at += len(tok) + 1
            lines.append(" ".join(tokens))
            spans.append(offsets)
        return self._records(lines, spans)

    def _records(self, lines, spans) -> list[dict]:
        tags = self.tag([[tok for tok, _, _ in s] for s in spans])
        return [{"text": line, "tokens": [tok for tok, _, _ in s], "tags": t,
                 "entities": decode(line, [(a, b) for _, a, b in s], t, self.pre.scheme)}
                for line, s, t in zip(lines, spans, tags)]

    def stream(self, input_path: str = "-", input_format: str = "text",
               columns: Columns = Columns(), chunk_size: int = 1024):
        """Read INPUT in chunks and yield each chunk's records as soon as they are ready."""
        if input_format == "conll":
            chunk: list[list[str]] = []
            for sentence in corpora.iter_conll(input_path, columns.token_column, None,
                                          columns.encoding):
                chunk.append(sentence.tokens)
                if len(chunk) >= chunk_size:
                    yield self.predict_tokens(chunk)
                    chunk = []
            if chunk:
                yield self.predict_tokens(chunk)
            return
        for lines in io.iter_texts(input_path, encoding=columns.encoding,
                                   chunk_size=chunk_size):
            yield self.predict(lines)


def evaluate(model_dir: str, data_path: str, columns: Columns = Columns(),
             batch_size: int = 256) -> dict:
    predictor = Predictor(model_dir, batch_size)
    sentences = read_tagged(data_path, columns)
    check_tags(sentences, predictor.pre.scheme, data_path)
    return score(predictor.model, predictor.pre, sentences, batch_size)


def predict(model_dir: str, input_path: str = "-", input_format: str = "text",
            columns: Columns = Columns(), batch_size: int = 256, chunk_size: int = 1024):
    """Yield lists of output records, one list per chunk of input."""
    return Predictor(model_dir, batch_size).stream(input_path, input_format, columns,
                                                   chunk_size)
