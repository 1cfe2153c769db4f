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
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np

from seqkit import artifacts, choices, config as configlib, io, metrics, text
from seqkit.batching import Batches, pad, predict_padded
from seqkit.errors import ConfigError, DataError

if TYPE_CHECKING:
    import keras

    from seqkit.lifecycle import Plan

NAME = "sentiment"
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
        configlib.check_choice("tokenizer", self.tokenizer, choices.TOKENIZERS)
        configlib.check_choice("pooling", self.pooling, choices.POOLINGS)
        configlib.check_choice("bigrams", self.bigrams, choices.SWITCH)
        configlib.check_range("length_percentile", self.length_percentile, 50, 100)
        configlib.check_range("valid_fraction", self.valid_fraction, 0.01, 0.5)
        if self.embedding_dim < 1 or self.bigram_embedding_dim < 1 or self.max_length < 0:
            raise ConfigError("embedding_dim and bigram_embedding_dim must be >= 1 and "
                              "max_length >= 0")
        super().validate()


# 2. Data -----------------------------------------------------------------------------------
@dataclass
class Source:
    """A labelled table: its path and how to read it."""
    path: str
    text_column: str | None = None
    label_column: str | None = None
    sep: str | None = None
    encoding: str | None = None


@dataclass
class Labelled:
    texts: list[str]
    labels: list[str]
    lines: list[int]  # the file line of each example
    path: str


def read(source: Source, config: Config, reference=None) -> Labelled:
    texts, labels, lines = io.read_text_label(source.path, source.text_column,
                                              source.label_column, source.sep, source.encoding)
    return Labelled(list(texts), list(labels), list(lines), source.path)


def split(data: Labelled, config: Config) -> tuple[Labelled, Labelled]:
    """A stratified hold-out (plain random when some class has one example)."""
    from sklearn.model_selection import train_test_split

    if len(data.texts) < 2:
        raise DataError(f"{len(data.texts)} example: too few to hold out a validation set; "
                        "give more, or a --valid file", path=data.path)
    counts = {label: data.labels.count(label) for label in set(data.labels)}
    stratify = data.labels if min(counts.values()) >= 2 else None
    if stratify is None:
        log.warning("some label occurs once; the validation split is not stratified")
    parts = train_test_split(data.texts, data.labels, data.lines,
                             test_size=config.valid_fraction, random_state=config.seed,
                             stratify=stratify)
    train, valid = (Labelled(*parts[0::2], data.path), Labelled(*parts[1::2], data.path))
    log.info("no --valid given: holding out %s of %s examples (stratified)",
             f"{len(valid.texts):,}", f"{len(data.texts):,}")
    return train, valid


# 3. Preprocessor ---------------------------------------------------------------------------
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
    def fit(cls, data: Labelled, config: Config) -> "Preprocessor":
        texts, labels = data.texts, data.labels
        if len(set(labels)) < 2:
            raise DataError(f"every example has the label {labels[0]!r}: a classifier "
                            "learns from at least two labels", path=data.path)
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

    def encode_labels(self, data: Labelled) -> np.ndarray:
        for label, line in zip(data.labels, data.lines):
            if label not in self.label_index:
                raise DataError(f"label {label!r} was not seen in training; known labels: "
                                f"{', '.join(self.labels)}", path=data.path, line=line)
        return np.array([self.label_index[label] for label in data.labels], dtype=np.int32)

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


# 4. Model ----------------------------------------------------------------------------------
def build_model(config: Config, pre: Preprocessor) -> keras.Model:
    import keras

    from seqkit.backbones import BackboneSpec, TokenConcatenate, apply_backbone, pool_sequence

    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")  # (batch, time)
    inputs = {"tokens": tokens}
    x = keras.layers.Embedding(len(pre.vocab), config.embedding_dim, mask_zero=True,
                               name="embedding")(tokens)  # (batch, time, dim)
    if pre.bigrams is not None:
        inputs["bigrams"] = keras.Input(shape=(None,), dtype="int32", name="bigrams")
        b = keras.layers.Embedding(len(pre.bigrams), config.bigram_embedding_dim,
                                   name="bigram_embedding")(inputs["bigrams"])  # (b, t, bdim)
        x = TokenConcatenate(name="token_features")([x, b])  # keeps the token mask
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    spec = BackboneSpec.from_config(config)
    last = config.pooling == "last"
    x, _ = apply_backbone(x, spec, return_sequences=not last)
    if not last:
        x = pool_sequence(x, config.pooling)  # (batch, units)
    probs = keras.layers.Dense(len(pre.labels), activation="softmax", name="classifier")(x)
    return keras.Model(inputs, probs, name="sentiment")


def prepare(config: Config, pre: Preprocessor, train: Labelled, valid: Labelled,
            resume: bool) -> Plan:
    from seqkit.lifecycle import Plan
    from seqkit.training import TrainSpec, make_optimizer

    model = build_model(config, pre)
    model.compile(optimizer=make_optimizer(TrainSpec.from_config(config)),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return Plan(model, _batches(pre, train, config, shuffle=True),
                _batches(pre, valid, config, shuffle=False), monitor="val_accuracy",
                mode="max")


def _batches(pre: Preprocessor, data: Labelled, config: Config, shuffle: bool) -> Batches:
    labels = pre.encode_labels(data)
    columns = pre.encode(data.texts, training=True)
    keep = [i for i, s in enumerate(columns["tokens"]) if s]  # no tokens: nothing to learn
    columns = {name: [col[i] for i in keep] for name, col in columns.items()}
    names = list(columns)
    return Batches({**columns, "label": labels[keep]}, [len(s) for s in columns["tokens"]],
                   config.batch_size, lambda b, rng: ({n: b[n] for n in names}, b["label"]),
                   shuffle=shuffle, seed=config.seed)


# 5. Decode and score -----------------------------------------------------------------------
def decode(text_line: str, probs: np.ndarray | None, labels: Sequence[str]) -> dict:
    """One output record; an input without tokens gets label None and no probabilities."""
    if probs is None:
        return {"text": text_line, "label": None, "probabilities": {}}
    return {"text": text_line, "label": labels[int(np.argmax(probs))],
            "probabilities": {label: round(float(p), 6) for label, p in zip(labels, probs)}}


def score(model, config: Config, pre: Preprocessor, data: Labelled,
          batch_size: int | None = None) -> dict:
    """Accuracy, macro-F1, per-class scores and the confusion matrix."""
    pre.encode_labels(data)  # an unknown label is an error, named with its line
    probs = predict_probs(model, pre, data.texts, batch_size or config.batch_size)
    predicted = [pre.labels[int(np.argmax(p))] if p is not None else "" for p in probs]
    return metrics.classification(data.labels, predicted, pre.labels)


def describe(scores: dict) -> str:
    return f"accuracy {scores['accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f}"


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


def export(model: keras.Model, config: Config, pre: Preprocessor, directory) -> Path:
    """The classifier as DIRECTORY/model.onnx, for predict and evaluate without TensorFlow."""
    from seqkit import graphs

    sample = {name: pad(column) for name, column in pre.encode(["a"]).items()}
    return graphs.export(model, Path(directory) / graphs.GRAPH_FILE, sample, fused_rnn=True)


# 6. Predict ----------------------------------------------------------------------------------
class Predictor(artifacts.Handle):
    """A loaded model that classifies texts in batches."""

    def __init__(self, model_dir: str, batch_size: int | None = None,
                 backend: str | None = None):
        super().__init__(model_dir, NAME, Config, Preprocessor, batch_size or 256, backend)

    @property
    def labels(self) -> list[str]:
        return self.pre.labels

    def predict(self, texts: Sequence[str]) -> list[dict]:
        probs = predict_probs(self.model, self.pre, texts, self.batch_size)
        return [decode(t, p, self.pre.labels) for t, p in zip(texts, probs)]

    def chunks(self, input_path: str = "-", chunk_size: int | None = None,
               text_column: str | None = None, sep: str | None = None,
               encoding: str | None = None) -> Iterator[list[str]]:
        """Lines of text, or the text column of a CSV/TSV; lines (rows) are cut at
        io.MAX_LINE_BYTES."""
        return io.iter_texts(input_path, text_column, sep, encoding, chunk_size or 1024,
                             io.MAX_LINE_BYTES)
