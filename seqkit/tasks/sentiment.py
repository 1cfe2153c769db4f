"""Text classification, many-to-one: a text in, one label (of any number) out.

Data: a CSV/TSV with a header, a text column and a label column (found by name: text,
sentence, review, content / label, labels, sentiment, class; or --text-column and
--label-column). Labels may be strings or integers.

    seqkit sentiment train data/sentiment_en.tsv -o runs/sentiment_en
    echo "a warm, funny film" | seqkit sentiment predict runs/sentiment_en
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Iterable, Sequence

import keras
import numpy as np

from seqkit import artifacts, config as configlib, io, metrics, text
from seqkit.backbones import BackboneSpec, apply_backbone, pool_sequence
from seqkit.errors import ConfigError, DataError
from seqkit.batching import Batches
from seqkit.training import TrainSpec, fit, make_optimizer, predict_padded, set_seed

TASK = "sentiment"
POOLINGS = ("last", "max", "mean")
BIGRAMS = ("auto", "on", "off")
INFERENCE_STRETCH = 8
log = logging.getLogger("seqkit")


# 1. Config ---------------------------------------------------------------------------------
@dataclass
class Config(configlib.Recipe):
    # shared keys (seqkit.config) whose default differs here
    dropout: float = 0.5
    patience: int = 2
    # this task's own keys
    tokenizer: str = "auto"
    lowercase: bool = True
    min_count: int = 1
    max_vocab: int = 50000
    max_length: int = 0  # 0: the length_percentile of the training texts
    length_percentile: float = 99.0
    valid_fraction: float = 0.1  # held out (stratified) when no --valid is given
    embedding_dim: int = 128
    bigrams: str = "off"  # token-bigram embeddings; auto: on for Chinese (CJK) text
    bigram_embedding_dim: int = 64
    bigram_min_count: int = 2  # rarer bigrams are <unk>, so <unk> is learnt
    pooling: str = "max"

    def validate(self) -> None:
        configlib.check_choice("tokenizer", self.tokenizer, text.TOKENIZERS)
        configlib.check_choice("pooling", self.pooling, POOLINGS)
        configlib.check_choice("bigrams", self.bigrams, BIGRAMS)
        configlib.check_range("length_percentile", self.length_percentile, 50, 100)
        configlib.check_range("valid_fraction", self.valid_fraction, 0.01, 0.5)
        if self.embedding_dim < 1 or self.bigram_embedding_dim < 1 or self.max_length < 0:
            raise ConfigError("embedding_dim and bigram_embedding_dim must be >= 1 and "
                              "max_length >= 0")
        super().validate()


# 2. Preprocessor ---------------------------------------------------------------------------
class Preprocessor:
    """Text -> token ids (+ token-bigram ids), label <-> class id. Pure Python; saved as JSON."""

    def __init__(self, tokenizer: str, lowercase: bool, vocab: text.Vocabulary,
                 labels: Sequence[str], max_length: int,
                 bigrams: text.Vocabulary | None = None):
        self.tokenizer, self.lowercase = tokenizer, lowercase
        self.vocab, self.labels, self.max_length = vocab, list(labels), max_length
        self.bigrams = bigrams
        self.label_index = {label: i for i, label in enumerate(self.labels)}

    def tokens(self, line: str) -> list[str]:
        return text.tokenize(text.normalize(line), self.tokenizer, self.lowercase)

    @classmethod
    def fit(cls, texts: Sequence[str], labels: Sequence[str], config: Config) -> "Preprocessor":
        token_lists = [text.tokenize(text.normalize(t), config.tokenizer, config.lowercase)
                       for t in texts]
        vocab = text.Vocabulary.build(token_lists, config.min_count, config.max_vocab)
        bigrams = None
        if config.bigrams == "on" or (config.bigrams == "auto"
                                      and text.cjk_fraction("".join(texts[:2000])) >= 0.5):
            bigrams = text.Vocabulary.build([text.bigrams(t) for t in token_lists],
                                            config.bigram_min_count, config.max_vocab)
        lengths = np.array([len(t) for t in token_lists])
        max_length = config.max_length or max(
            1, math.ceil(np.percentile(lengths, config.length_percentile)))
        cut = int((lengths > max_length).sum())
        log.info("vocabulary %s tokens%s, %d classes, max_length %d (%s of %s texts "
                 "truncated)", f"{len(vocab):,}",
                 f" and {len(bigrams):,} bigrams" if bigrams else "", len(set(labels)),
                 max_length, f"{cut:,}", f"{len(texts):,}")
        return cls(config.tokenizer, config.lowercase, vocab, sort_labels(set(labels)),
                   max_length, bigrams)

    def encode(self, texts: Iterable[str], training: bool = False) -> dict[str, list]:
        """The model's inputs: token ids (and bigram ids), one list per text.

        Training cuts at max_length (a percentile of the training lengths, so batches stay
        small); inference reads up to INFERENCE_STRETCH times further, because a test text
        longer than most training texts still carries its label in the part past the cut
        (SST-2 trains on short phrases and tests on whole sentences)."""
        limit = self.max_length if training else self.max_length * INFERENCE_STRETCH
        token_lists = [self.tokens(t)[:limit] for t in texts]
        out = {"tokens": [self.vocab.encode(toks) for toks in token_lists]}
        if self.bigrams is not None:
            out["bigrams"] = [self.bigrams.encode(text.bigrams(toks)) for toks in token_lists]
        return out

    def encode_labels(self, labels: Sequence[str], lines: Sequence[int], path: str) -> np.ndarray:
        for label, line in zip(labels, lines):
            if label not in self.label_index:
                raise DataError(f"label {label!r} was not seen in training; known labels: "
                                f"{', '.join(self.labels)}", path=path, line=line)
        return np.array([self.label_index[label] for label in labels], dtype=np.int32)

    def to_json(self) -> dict:
        return {"tokenizer": self.tokenizer, "lowercase": self.lowercase,
                "labels": self.labels, "max_length": self.max_length,
                "vocab": self.vocab.to_json(),
                "bigrams": self.bigrams.to_json() if self.bigrams is not None else None}

    @classmethod
    def from_json(cls, data: dict) -> "Preprocessor":
        bigrams = data.get("bigrams")
        return cls(data["tokenizer"], data["lowercase"], text.Vocabulary.from_json(data["vocab"]),
                   data["labels"], data["max_length"],
                   text.Vocabulary.from_json(bigrams) if bigrams else None)


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Integer labels in numeric order, others alphabetically."""
    labels = list(labels)
    try:
        return sorted(labels, key=int)
    except ValueError:
        return sorted(labels)


# 3. Model ----------------------------------------------------------------------------------
def build_model(config: Config, pre: Preprocessor) -> keras.Model:
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")  # (batch, time)
    inputs = {"tokens": tokens}
    x = keras.layers.Embedding(len(pre.vocab), config.embedding_dim, mask_zero=True,
                               name="embedding")(tokens)  # (batch, time, dim)
    if pre.bigrams is not None:
        inputs["bigrams"] = keras.Input(shape=(None,), dtype="int32", name="bigrams")
        b = keras.layers.Embedding(len(pre.bigrams), config.bigram_embedding_dim,
                                   name="bigram_embedding")(inputs["bigrams"])  # (b, t, bdim)
        x = keras.layers.Concatenate(name="token_features")([x, b])  # keeps the token mask
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    spec = BackboneSpec.from_config(config)
    last = config.pooling == "last"
    x, _ = apply_backbone(x, spec, return_sequences=not last)
    if not last:
        x = pool_sequence(x, config.pooling)  # (batch, units)
    probs = keras.layers.Dense(len(pre.labels), activation="softmax", name="classifier")(x)
    return keras.Model(inputs, probs, name="sentiment")


def compile_model(model: keras.Model, config: Config) -> None:
    model.compile(optimizer=make_optimizer(TrainSpec.from_config(config)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])


# 4. Decode ---------------------------------------------------------------------------------
def decode(text_line: str, probs: np.ndarray | None, labels: Sequence[str]) -> dict:
    """One output record; an input without tokens gets label None and no probabilities."""
    if probs is None:
        return {"text": text_line, "label": None, "probabilities": {}}
    return {"text": text_line, "label": labels[int(np.argmax(probs))],
            "probabilities": {label: round(float(p), 6) for label, p in zip(labels, probs)}}


# Library functions ---------------------------------------------------------------------------
@dataclass
class TableOptions:
    text_column: str | None = None
    label_column: str | None = None
    sep: str | None = None
    encoding: str | None = None


def read_labelled(path: str, table: TableOptions):
    return io.read_text_label(path, table.text_column, table.label_column, table.sep,
                              table.encoding)


def split_holdout(texts, labels, fraction: float, seed: int):
    """Stratified train/valid split (plain random when some class has one example)."""
    from sklearn.model_selection import train_test_split

    counts = {label: labels.count(label) for label in set(labels)}
    stratify = labels if min(counts.values()) >= 2 else None
    if stratify is None:
        log.warning("some label occurs once; the validation split is not stratified")
    return train_test_split(texts, labels, test_size=fraction, random_state=seed,
                            stratify=stratify)


def _batches(pre: Preprocessor, texts, labels, config: Config, shuffle: bool) -> Batches:
    columns = pre.encode(texts, training=True)
    keep = [i for i, s in enumerate(columns["tokens"]) if s]  # no tokens: nothing to learn
    columns = {name: [col[i] for i in keep] for name, col in columns.items()}
    names = list(columns)
    return Batches({**columns, "label": labels[keep]}, [len(s) for s in columns["tokens"]],
                   config.batch_size, lambda b: ({n: b[n] for n in names}, b["label"]),
                   shuffle=shuffle, seed=config.seed)


def train(train_path: str, out_dir: str, config: Config, *, valid_path: str | None = None,
          table: TableOptions = TableOptions(), force: bool = False, resume: bool = False
          ) -> dict:
    """Train a classifier and write MODEL_DIR; returns the validation metrics."""
    work, config = artifacts.begin(out_dir, TASK, config, force=force, resume=resume)
    set_seed(config.seed)
    texts, labels, _ = read_labelled(train_path, table)
    if valid_path:
        v_texts, v_labels, v_lines = read_labelled(valid_path, table)
    else:
        texts, v_texts, labels, v_labels = split_holdout(texts, labels, config.valid_fraction,
                                                         config.seed)
        v_lines = None
        log.info("no --valid given: holding out %s of %s examples (stratified)",
                 f"{len(v_texts):,}", f"{len(texts) + len(v_texts):,}")
    pre = artifacts.setup_preprocessor(
        work, task=TASK, config=config, resume=resume,
        fit=lambda: Preprocessor.fit(texts, labels, config), from_json=Preprocessor.from_json)
    y = pre.encode_labels(labels, range(2, len(labels) + 2), train_path)
    v_y = pre.encode_labels(v_labels, v_lines or range(2, len(v_labels) + 2),
                            valid_path or train_path)
    train_batches = _batches(pre, texts, y, config, shuffle=True)
    valid_batches = _batches(pre, v_texts, v_y, config, shuffle=False)
    model = build_model(config, pre)
    compile_model(model, config)
    model, summary = fit(model, train_batches, valid_batches, TrainSpec.from_config(config),
                         work, monitor="val_accuracy", mode="max", resume=resume)
    scores = score(model, pre, v_texts, v_labels, config.batch_size)
    log.info("validation accuracy %.4f, macro-F1 %.4f", scores["accuracy"], scores["macro_f1"])
    result = {"validation": scores, "training": summary}
    artifacts.complete(work, out_dir, task=TASK, model=model, preprocessor=pre.to_json(),
                       config=config, metrics=result)
    return result


def score(model, pre: Preprocessor, texts, labels, batch_size: int) -> dict:
    probs = predict_probs(model, pre, texts, batch_size)
    predicted = [pre.labels[int(np.argmax(p))] if p is not None else None for p in probs]
    return metrics.classification(labels, [p if p is not None else "" for p in predicted],
                                  pre.labels)


def predict_probs(model, pre: Preprocessor, texts: Sequence[str], batch_size: int
                  ) -> list[np.ndarray | None]:
    columns = pre.encode(texts)
    filled = [i for i, s in enumerate(columns["tokens"]) if s]
    out: list = [None] * len(texts)
    if filled:
        batch = {name: [col[i] for i in filled] for name, col in columns.items()}
        for i, p in zip(filled, predict_padded(model, batch, batch_size)):
            out[i] = p
    return out


class Predictor(artifacts.Handle):
    """A loaded model that classifies texts in batches."""

    def __init__(self, model_dir: str, batch_size: int = 256):
        super().__init__(model_dir, TASK, Config, Preprocessor, batch_size)

    @property
    def labels(self) -> list[str]:
        return self.pre.labels

    def predict(self, texts: Sequence[str]) -> list[dict]:
        probs = predict_probs(self.model, self.pre, texts, self.batch_size)
        return [decode(t, p, self.pre.labels) for t, p in zip(texts, probs)]

    def stream(self, input_path: str = "-", table: TableOptions = TableOptions(),
               chunk_size: int = 1024):
        """Read INPUT in chunks and yield each chunk's records as soon as they are ready."""
        for chunk in io.iter_texts(input_path, table.text_column, table.sep, table.encoding,
                                   chunk_size):
            yield self.predict(chunk)


def evaluate(model_dir: str, data_path: str, table: TableOptions = TableOptions(),
             batch_size: int = 256) -> dict:
    predictor = Predictor(model_dir, batch_size)
    texts, labels, lines = read_labelled(data_path, table)
    predictor.pre.encode_labels(labels, lines, data_path)
    return score(predictor.model, predictor.pre, texts, labels, batch_size)


def predict(model_dir: str, input_path: str = "-", table: TableOptions = TableOptions(),
            batch_size: int = 256, chunk_size: int = 1024):
    """Yield lists of output records, one list per chunk of input, one record per line."""
    return Predictor(model_dir, batch_size).stream(input_path, table, chunk_size)
