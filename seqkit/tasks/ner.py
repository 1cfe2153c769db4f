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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np

from seqkit import (artifacts, choices, config as configlib, corpora, io, metrics, schemes,
                    tagging, text)
from seqkit.batching import Batches, predict_padded
from seqkit.errors import ConfigError, DataError

if TYPE_CHECKING:
    from seqkit.lifecycle import Plan

NAME = "ner"
log = logging.getLogger("seqkit")
# Predict (and evaluate) tag a line of more than WINDOW tokens in windows of that many,
# overlapping by 2 * CONTEXT: a window's tags are kept but for the CONTEXT tokens at an edge
# it shares with a neighbour. 512 is more than nearly any sentence of a NER corpus
# (CoNLL-2003's longest has 124 tokens), so sentences are tagged whole, as in training;
# longer lines are documents, where a tag depends on the tokens near it, and 32 on each
# side give those.
WINDOW, CONTEXT = 512, 32
ROW_TOKENS = 32  # a batch of windows holds batch_size * ROW_TOKENS tokens, as one of sentences


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
        configlib.check_choice("tokenizer", self.tokenizer, choices.NER_TOKENIZERS)
        configlib.check_choice("char_features", self.char_features, choices.CHAR_FEATURES)
        configlib.check_choice("bigrams", self.bigrams, choices.SWITCH)
        configlib.check_choice("case_features", self.case_features, choices.SWITCH)
        configlib.check_range("char_dropout", self.char_dropout, 0.0, 0.9)
        configlib.check_range("valid_fraction", self.valid_fraction, 0.01, 0.5)
        configlib.check_range("unk_replace", self.unk_replace, 0.0, 1.0)
        configlib.check_range("max_minutes", self.max_minutes, 0.0)
        for name in ("embedding_dim", "case_embedding_dim", "char_embedding_dim",
                     "char_filters", "char_width", "max_word_length", "bigram_embedding_dim",
                     "bigram_min_count"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        super().validate()


# 2. Data -----------------------------------------------------------------------------------
@dataclass
class Source:
    """A CoNLL column file: its path and which columns hold the token and the tag."""
    path: str
    token_column: int = 1
    tag_column: int = -1
    encoding: str | None = None


@dataclass
class Tagged:
    sentences: list[corpora.Sentence]
    scheme: str  # the tag scheme, checked on every tag
    path: str


def read(source: Source, config: Config, reference=None) -> Tagged:
    """Tagged sentences; the scheme is the training data's (resolved from its tags, or the
    config's), else the reference's (the training data, or a trained model's Preprocessor)."""
    sentences = corpora.read_conll(source.path, source.token_column, source.tag_column,
                                   source.encoding)
    scheme = reference.scheme if reference is not None else resolve_scheme(config, sentences)
    check_tags(sentences, scheme, source.path)
    return Tagged(sentences, scheme, source.path)


def resolve_scheme(config: Config, sentences: Sequence[corpora.Sentence]) -> str:
    if config.scheme != "auto":
        return schemes.canonical(config.scheme)
    scheme = schemes.detect(s.tags for s in sentences)
    log.info("tag scheme detected: %s", scheme.upper())
    return scheme


def check_tags(sentences: Sequence[corpora.Sentence], scheme: str, path: str) -> None:
    """Every tag must belong to the scheme; the first that does not is a FILE:LINE error.
    BIO's I- tags that open an entity are counted in a warning that names the first."""
    stray, first = 0, None
    for sentence in sentences:
        for tag, line in zip(sentence.tags, sentence.lines):
            problem = schemes.check(tag, scheme)
            if problem:
                raise DataError(problem, path=path, line=line)
        if scheme == "bio":
            found = schemes.stray_insides(sentence.tags)
            stray += len(found)
            if found and first is None:
                first = sentence.lines[found[0]]
    if stray:
        log.warning("%s:%d: %s I- tag%s open an entity in this BIO file (after O or another "
                    "type; B- was expected); each is read as the start of an entity", path,
                    first, f"{stray:,}", "" if stray == 1 else "s")


def split(data: Tagged, config: Config) -> tuple[Tagged, Tagged]:
    """A random hold-out of sentences."""
    from sklearn.model_selection import train_test_split

    train, valid = train_test_split(data.sentences, test_size=config.valid_fraction,
                                    random_state=config.seed)
    log.info("no --valid given: holding out %s of %s sentences", f"{len(valid):,}",
             f"{len(train) + len(valid):,}")
    return Tagged(train, data.scheme, data.path), Tagged(valid, data.scheme, data.path)


# 3. Preprocessor ---------------------------------------------------------------------------
class Preprocessor:
    """Tokens -> word ids (+ character ids), tags <-> tag ids. Pure Python; saved as JSON.

    `scheme` is the data's; the model may learn the same entities in another scheme
    (`model_scheme`, whose tags `tags` are), converted on the way in and out. `vectors`
    (words, matrix), the pretrained vectors read by `fit`, are held until `prepare` lays
    them into the embedding layer; they are not saved."""

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
        self.vectors: tuple[list[str], np.ndarray] | None = None

    def word_key(self, token: str) -> str:
        return tagging.word_key(token, self.lowercase)

    @classmethod
    def fit(cls, data: Tagged, config: Config) -> "Preprocessor":
        """Fit on the training sentences; pretrained vectors (`embeddings`) set
        config.embedding_dim and add their words to the vocabulary."""
        scheme, token_lists = data.scheme, [s.tokens for s in data.sentences]
        vectors = None
        if config.embeddings:
            vectors = tagging.pretrained_vectors(config.embeddings, token_lists,
                                                 config.lowercase, config.max_vocab)
            config.embedding_dim = int(vectors[1].shape[1])
        char_level = tagging.is_char_level(token_lists)
        tokenizer = config.tokenizer
        if tokenizer == "auto":
            tokenizer = "char" if char_level else "auto"
        use_chars = config.char_features == "cnn" or (config.char_features == "auto"
                                                       and not char_level)
        model_scheme = (scheme if config.model_scheme == "same"
                        else schemes.canonical(config.model_scheme))
        pre = cls(scheme, schemes.tag_set(schemes.entity_types(s.tags for s in data.sentences),
                                          model_scheme),
                  text.Vocabulary([text.Vocabulary.PAD, text.Vocabulary.UNK]), None, tokenizer,
                  config.lowercase, config.max_word_length, model_scheme=model_scheme)
        keys = [[pre.word_key(t) for t in toks] for toks in token_lists]
        vocab = text.Vocabulary.build(keys, config.min_count, config.max_vocab)
        if vectors:  # pretrained words not seen in training, up to max_vocab
            room = max(0, config.max_vocab - len(vocab))
            new = [w for w in dict.fromkeys(vectors[0]) if w not in vocab][:room]
            vocab = text.Vocabulary(vocab.tokens + new)
        pre.vocab, pre.vectors = vocab, vectors
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
            out["shapes"] = [[tagging.word_shape(t) for t in toks] for toks in token_lists]
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
        return {"scheme": self.scheme, "model_scheme": self.model_scheme, "tags": self.tags,
                "tokenizer": self.tokenizer, "lowercase": self.lowercase,
                "max_word_length": self.max_word_length, "vocab": self.vocab.to_json(),
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


# 4. Model (the network is seqkit.tagging's) ----------------------------------------------
def prepare(config: Config, pre: Preprocessor, train: Tagged, valid: Tagged,
            resume: bool) -> Plan:
    """The training model (the CRF takes the gold tags), early stopping on validation
    entity F1, and the inference model as what is saved."""
    from seqkit.lifecycle import Plan
    from seqkit.callbacks import ScoreCallback
    from seqkit.training import TrainSpec, make_optimizer

    model = tagging.build_model(config, pre)
    if pre.vectors is not None and not resume:
        model.get_layer("embedding").set_weights([tagging.embedding_matrix(
            pre.vocab, pre.lowercase, *pre.vectors, seed=config.seed)])
    pre.vectors = None  # laid into the weights; not needed any more
    trainee = tagging.training_model(model)
    trainee.compile(optimizer=make_optimizer(TrainSpec.from_config(config)),
                    loss=None if tagging.has_crf(trainee) else "sparse_categorical_crossentropy")
    train_batches = _batches(pre, train.sentences, config, shuffle=True,
                             singletons=_singletons(pre, train.sentences))
    valid_batches = _batches(pre, valid.sentences, config, shuffle=False)
    views: dict = {}  # one inference model per trained model: its predict graphs persist

    def valid_f1(trained):
        view = views.setdefault(id(trained), tagging.inference_model(trained))
        return score(view, config, pre, valid)["f1"]

    return Plan(trainee, train_batches, valid_batches, monitor="val_f1", mode="max",
                callbacks=[ScoreCallback("f1", valid_f1)], finish=tagging.inference_model)


export = tagging.export  # model.onnx (+ crf.npz), for predict without TensorFlow


def _batches(pre: Preprocessor, sentences, config: Config, shuffle: bool,
             singletons: np.ndarray | None = None) -> Batches:
    columns = pre.inputs([s.tokens for s in sentences])
    columns["tags"] = pre.encode_tags(s.tags for s in sentences)

    def structure(b, rng):
        x = {k: v for k, v in b.items() if k != "tags"}
        if singletons is not None and config.unk_replace > 0:
            # Lample et al. (2016): words seen once are sometimes fed as <unk>, so that the
            # <unk> vector (and the character features) learn to tag unseen words.
            drop = singletons[x["tokens"]] & (rng.random(x["tokens"].shape) < config.unk_replace)
            x["tokens"] = np.where(drop, text.Vocabulary.unk_id, x["tokens"]).astype(np.int32)
        if config.crf:
            return ({**x, "tags": b["tags"]},)
        return x, b["tags"], (b["tokens"] > 0).astype(np.float32)  # padding weighs 0

    return Batches(columns, [len(s.tokens) for s in sentences], config.batch_size, structure,
                   shuffle=shuffle, seed=config.seed)


def _singletons(pre: Preprocessor, sentences) -> np.ndarray:
    counts = np.bincount([i for ids in pre.words(s.tokens for s in sentences) for i in ids],
                         minlength=len(pre.vocab))
    return counts == 1


# 5. Decode and score -----------------------------------------------------------------------
def decode(line: str, spans: Sequence[tuple[int, int]], tags: Sequence[str], scheme: str
           ) -> list[dict]:
    """Entities with character offsets into `line`, so line[start:end] == text."""
    out = []
    for kind, first, last in schemes.entities(tags, scheme):
        start, end = spans[first][0], spans[last - 1][1]
        out.append({"text": line[start:end], "type": kind, "start": start, "end": end})
    return out


def predict_tags(model, pre: Preprocessor, token_lists: Sequence[Sequence[str]],
                 batch_size: int = 256, window: int = WINDOW) -> list[list[str]]:
    """One tag per token; an empty token list gets an empty tag list. A list longer than
    `window` tokens is tagged in overlapping windows (see WINDOW), a batch of windows at
    a time, so memory follows the batch and the window, not the list."""
    ids = [np.zeros(len(toks), dtype=np.int32) for toks in token_lists]
    whole = [i for i, toks in enumerate(token_lists) if 0 < len(toks) <= window]
    if whole:
        inputs = pre.inputs([token_lists[i] for i in whole])
        for i, scores in zip(whole, predict_padded(model, inputs, batch_size)):
            ids[i] = np.argmax(scores, axis=-1)
    rows = max(1, batch_size * ROW_TOKENS // window)

    def tag(group: list[tuple[int, int, int, int, int]]) -> None:
        inputs = pre.inputs([token_lists[i][start:end] for i, start, end, _, _ in group])
        for (i, start, _, keep, stop), scores in zip(group, predict_padded(model, inputs, rows)):
            ids[i][keep:stop] = np.argmax(scores[keep - start:stop - start], axis=-1)

    group = []
    for i, toks in enumerate(token_lists):
        for piece in windows(len(toks), window) if len(toks) > window else ():
            group.append((i, *piece))
            if len(group) == rows:
                tag(group)
                group = []
    if group:
        tag(group)
    return [pre.decode_tags(t) if len(t) else [] for t in ids]


def windows(length: int, size: int = WINDOW) -> list[tuple[int, int, int, int]]:
    """(start, end, keep, stop) of each window a list of `length` tokens is tagged in:
    windows of `size` tokens overlapping by twice the context (CONTEXT, at most a quarter
    of `size`); each gives the tags of tokens keep..stop, all but the context tokens at an
    edge it shares with a neighbour. The last window ends at the list's end."""
    if length <= size:
        return [(0, length, 0, length)]
    context = min(CONTEXT, size // 4)
    out, kept, start = [], 0, 0
    while kept < length:
        start = min(start, length - size)
        end = start + size
        stop = length if end == length else end - context
        out.append((start, end, kept, stop))
        kept, start = stop, start + size - 2 * context
    return out


def score(model, config: Config, pre: Preprocessor, data: Tagged,
          batch_size: int | None = None) -> dict:
    """Entity precision, recall and F1 (micro and per type, conlleval-compatible) and token
    accuracy, in the data's scheme. An entity type the model never saw is an error (it
    could only score 0), as sentiment refuses an unseen label."""
    known = schemes.entity_types([pre.tags])
    for sentence in data.sentences:
        for tag, line in zip(sentence.tags, sentence.lines):
            parts = schemes.split_tag(tag)
            if parts and parts[0] != schemes.OUTSIDE and parts[1] not in known:
                raise DataError(f"entity type {parts[1]!r} was not seen in training; known "
                                f"types: {', '.join(sorted(known))}", path=data.path, line=line)
    predicted = predict_tags(model, pre, [s.tokens for s in data.sentences],
                             batch_size or config.batch_size * 8)
    return metrics.entity_scores([s.tags for s in data.sentences], predicted, pre.scheme)


def describe(scores: dict) -> str:
    return (f"entity F1 {scores['f1']:.4f} (precision {scores['precision']:.4f}, "
            f"recall {scores['recall']:.4f})")


# 6. Predict ----------------------------------------------------------------------------------
class Predictor(artifacts.Handle):
    """A loaded tagger that tags raw text lines or pre-tokenised sentences in batches."""

    def __init__(self, model_dir: str, batch_size: int | None = None,
                 backend: str | None = None):
        super().__init__(model_dir, NAME, Config, Preprocessor, batch_size or 256, backend)

    def predict(self, items: Sequence[str | Sequence[str]]) -> list[dict]:
        """One record per item: a raw text line is tokenised as at training; a token list
        (pre-tokenised) gets offsets into its tokens joined by single spaces."""
        lines, spans = [], []
        for item in items:
            if isinstance(item, str):
                lines.append(item)
                spans.append(text.tokenize_spans(item, self.pre.tokenizer))
            else:
                offsets, at = [], 0
                for tok in item:
                    offsets.append((tok, at, at + len(tok)))
                    at += len(tok) + 1
                lines.append(" ".join(item))
                spans.append(offsets)
        tags = predict_tags(self.model, self.pre, [[tok for tok, _, _ in s] for s in spans],
                            self.batch_size)
        return [{"text": line, "tokens": [tok for tok, _, _ in s], "tags": t,
                 "entities": decode(line, [(a, b) for _, a, b in s], t, self.pre.scheme)}
                for line, s, t in zip(lines, spans, tags)]

    def chunks(self, input_path: str = "-", chunk_size: int | None = None,
               input_format: str = "text", token_column: int = 1,
               encoding: str | None = None) -> Iterator[list]:
        """Lines of text (input_format text), or the token lists of a CoNLL file's
        sentences (conll; its tags, if any, are not read). Lines are cut at
        io.MAX_LINE_BYTES."""
        chunk_size = chunk_size or 1024
        if input_format != "conll":
            yield from io.iter_texts(input_path, encoding=encoding, chunk_size=chunk_size,
                                     max_line_bytes=io.MAX_LINE_BYTES)
            return
        chunk: list[list[str]] = []
        for sentence in corpora.iter_conll(input_path, token_column, None, encoding,
                                           max_line_bytes=io.MAX_LINE_BYTES):
            chunk.append(sentence.tokens)
            if len(chunk) >= chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
