"""Language model and text generation: P(w1..wT) as a product of next-token probabilities.

Data: plain UTF-8 text, running text or one sentence per line. Each line becomes its
tokens followed by an end-of-line token `<eos>`, and the lines of a file make one token
stream, cut into windows of `sequence_length` tokens for training (truncated
backpropagation through time). Tokens are characters (`level = "char"`, spaces included)
or words (`"word"`: split on whitespace, as in pre-tokenised corpora like PTB); `"auto"`
picks characters for CJK text and words otherwise.

    seqkit lm train data/lm_zh.txt -o runs/lm_zh
    seqkit lm generate runs/lm_zh --prompt 春风 -n 40 --seed 1
    seqkit lm score runs/lm_zh data/lm_zh.txt --format tsv | sort -g | head
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, Iterator, Sequence

import numpy as np

from seqkit import artifacts, choices, config as configlib, decoding, io, text
from seqkit.errors import ConfigError, DataError
from seqkit.language_model import (Stepper, build_model, reset_states, stateful_rows,
                                   without_states)
from seqkit.language_model import export  # noqa: F401  (the contract's ONNX export)

if TYPE_CHECKING:
    from seqkit.lifecycle import Plan

NAME = "lm"
EOS = "<eos>"
CJK_THRESHOLD = 0.3  # share of CJK characters above which auto reads characters
SCORE_WINDOW = 50  # score runs lines this many tokens at a time, carrying the states
log = logging.getLogger("seqkit")


# 1. Config ---------------------------------------------------------------------------------
# The defaults that depend on the level, chosen on PTB (words) and on the Chinese couplets
# and PTB read as characters (benchmarks/lm.py; issue 20). The dataclass's own defaults are
# the word recipe's.
WORD = {"units": 300, "embedding_dim": 300, "dropout": 0.35, "batch_size": 32,
        "sequence_length": 35, "lr_decay": 0.7, "lr_decay_after": 4, "patience": 2}
CHAR = {"units": 256, "embedding_dim": 200, "dropout": 0.1, "batch_size": 32,
        "sequence_length": 50, "lr_decay": 0.8, "lr_decay_after": 4, "patience": 3}


@dataclass
class Config(configlib.Recipe):
    VARIANTS: ClassVar[dict[str, dict[str, Any]]] = {"word": WORD, "char": CHAR}
    # shared keys (seqkit.config) whose default differs here
    units: int = WORD["units"]
    layers: int = 2
    bidirectional: bool = False
    dropout: float = WORD["dropout"]
    epochs: int = 20
    batch_size: int = WORD["batch_size"]
    learning_rate: float = 0.002
    lr_decay: float = WORD["lr_decay"]
    lr_decay_after: int = WORD["lr_decay_after"]
    patience: int = WORD["patience"]
    # this task's own keys
    level: str = "auto"
    word_tokenizer: str = "whitespace"
    lowercase: bool = False
    min_count: int = 1
    max_vocab: int = 50000
    sequence_length: int = WORD["sequence_length"]
    min_epoch_tokens: int = 50000
    valid_fraction: float = 0.05
    embedding_dim: int = WORD["embedding_dim"]
    tie_embeddings: bool = True
    stateful: bool = False

    def validate(self) -> None:
        configlib.check_choice("level", self.level, choices.LEVELS)
        configlib.check_choice("word_tokenizer", self.word_tokenizer, choices.WORD_TOKENIZERS)
        configlib.check_range("valid_fraction", self.valid_fraction, 0.01, 0.5)
        configlib.check_range("max_minutes", self.max_minutes, 0.0)
        configlib.check_range("min_epoch_tokens", self.min_epoch_tokens, 0)
        if self.bidirectional:
            raise ConfigError("a language model reads left to right: bidirectional must be "
                              "false")
        if self.embedding_dim < 1 or self.sequence_length < 1:
            raise ConfigError(f"embedding_dim and sequence_length must be >= 1, got "
                              f"{self.embedding_dim} and {self.sequence_length}")
        super().validate()


# 2. Data -----------------------------------------------------------------------------------
@dataclass
class Source:
    """A plain-text file (or - for stdin) and its encoding."""
    path: str
    encoding: str | None = None


@dataclass
class Corpus:
    tokens: list[str]  # one stream: EOS, then each line's tokens followed by EOS
    level: str  # char or word
    path: str


def read(source: Source, config: Config, reference=None) -> Corpus:
    """The text as one token stream. The level comes from the text and config (training
    data), the training data (validation) or the model's Preprocessor (a trained model's
    data), so every text of a run is tokenised alike."""
    lines = read_text(source.path, source.encoding)
    if isinstance(reference, Preprocessor):
        return Corpus(token_stream(lines, reference.tokens), reference.level, source.path)
    level = reference.level if reference is not None else resolve_level(config.level, lines)
    tokens = token_stream(lines, lambda line: line_tokens(
        line, level, config.word_tokenizer, config.lowercase))
    if len(tokens) < 2:
        raise DataError("too little text to train on: at least two tokens are needed",
                        path=source.path)
    return Corpus(tokens, level, source.path)


def settle(config: Config, data: Corpus) -> Config:
    """The recipe for the text's level (Config.VARIANTS) where the recipe and the command
    line left a key unset; the level is written down too, as read."""
    settled = configlib.settle(config, data.level, level=data.level)
    chosen = [f"{key} {value}" for key, value in Config.VARIANTS[data.level].items()
              if getattr(settled, key) == value and getattr(config, key) != value]
    if chosen:
        log.info("%s-level recipe: %s", data.level, ", ".join(chosen))
    return settled


def split(data: Corpus, config: Config) -> tuple[Corpus, Corpus]:
    train, valid = split_holdout(data.tokens, config.valid_fraction, data.path)
    log.info("no --valid given: holding out the last %s of %s tokens", f"{len(valid):,}",
             f"{len(train) + len(valid):,}")
    return Corpus(train, data.level, data.path), Corpus(valid, data.level, data.path)


def split_holdout(stream: list[str], fraction: float, path: str | None = None
                  ) -> tuple[list[str], list[str]]:
    """The last `fraction` of the token stream (at a line end when there is one) for
    validation: for running text a contiguous tail is the honest held-out part."""
    cut = int(len(stream) * (1 - fraction))
    for i in range(cut, len(stream) - 1):
        if stream[i] == EOS:
            cut = i
            break
    cut = min(max(cut, 2), len(stream) - 2)
    if cut < 2:
        raise DataError(f"too little text to hold out a validation part ({len(stream)} "
                        "tokens); pass --valid", path=path)
    return stream[: cut + 1], stream[cut:]


def read_text(path: str, encoding: str | None = None) -> list[str]:
    """The non-empty lines of a plain-text file (stripped); an error if there are none."""
    lines = [s for chunk in io.iter_lines(path, encoding) for line in chunk
             if (s := line.strip())]
    if not lines:
        raise DataError("file is empty; expected plain text, one sentence or paragraph "
                        "per line", path=path)
    return lines


def resolve_level(level: str, lines: Sequence[str], sample_chars: int = 200_000) -> str:
    """auto: characters when CJK makes up a good share of the text's start, else words."""
    if level != "auto":
        return level
    sample, size = [], 0
    for line in lines:
        sample.append(line)
        size += len(line)
        if size >= sample_chars:
            break
    share = text.cjk_fraction("".join(sample))
    chosen = "char" if share >= CJK_THRESHOLD else "word"
    log.info("level auto: %s (%.0f%% of the characters are CJK)", chosen, 100 * share)
    return chosen


def line_tokens(line: str, level: str, word_tokenizer: str = "whitespace",
                lowercase: bool = False) -> list[str]:
    line = line.strip()
    if lowercase:
        line = line.lower()
    if level == "char":
        return list(line)
    if word_tokenizer == "whitespace":
        return line.split()
    return text.tokenize(line, "auto")


def token_stream(lines: Sequence[str], tokenize) -> list[str]:
    """Every line's tokens followed by EOS, in one list, starting with EOS (a line start)."""
    out = [EOS]
    for line in lines:
        out += tokenize(line)
        out.append(EOS)
    return out


# 3. Preprocessor ---------------------------------------------------------------------------
class Preprocessor:
    """Lines <-> token ids. Id 0 padding, 1 unknown, 2 end of line. Pure Python; JSON."""

    def __init__(self, level: str, word_tokenizer: str, lowercase: bool,
                 vocab: text.Vocabulary):
        self.level, self.word_tokenizer, self.lowercase = level, word_tokenizer, lowercase
        self.vocab = vocab
        self.eos_id = vocab.id(EOS)

    def tokens(self, line: str) -> list[str]:
        return line_tokens(line, self.level, self.word_tokenizer, self.lowercase)

    @classmethod
    def fit(cls, data: Corpus, config: Config) -> "Preprocessor":
        """Fit the vocabulary on the training token stream (with EOS between lines)."""
        vocab = text.Vocabulary.build([data.tokens], config.min_count, config.max_vocab,
                                      specials=[EOS])
        return cls(data.level, config.word_tokenizer, config.lowercase, vocab)

    def encode(self, tokens: Sequence[str]) -> list[int]:
        return self.vocab.encode(tokens)

    def encode_line(self, line: str) -> list[int]:
        return self.vocab.encode(self.tokens(line))

    def banned_ids(self) -> list[int]:
        """Ids never generated: padding and the unknown token."""
        return [text.Vocabulary.pad_id, text.Vocabulary.unk_id]

    def to_json(self) -> dict:
        return {"level": self.level, "word_tokenizer": self.word_tokenizer,
                "lowercase": self.lowercase, "vocab": self.vocab.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> "Preprocessor":
        return cls(data["level"], data["word_tokenizer"], data["lowercase"],
                   text.Vocabulary.from_json(data["vocab"]))


# The model: seqkit.language_model (build_model, Stepper) ---------------------------------
def prepare(config: Config, pre: Preprocessor, train: Corpus, valid: Corpus,
            resume: bool) -> Plan:
    """The model, and windows over the training and validation streams."""
    import keras

    from seqkit.batching import Windows
    from seqkit.lifecycle import Plan
    from seqkit.training import TrainSpec, make_optimizer

    train_ids, valid_ids = pre.encode(train.tokens), pre.encode(valid.tokens)
    unknown = sum(i == text.Vocabulary.unk_id for i in valid_ids) / max(1, len(valid_ids))
    log.info("level %s, vocabulary %s, %s training and %s validation tokens "
             "(%.1f%% unknown)", pre.level, f"{len(pre.vocab):,}", f"{len(train_ids):,}",
             f"{len(valid_ids):,}", 100 * unknown)
    rows = stateful_rows(config, train_ids, valid_ids)
    batch_size = rows or config.batch_size
    train_windows = Windows(train_ids, config.sequence_length, batch_size, shuffle=True,
                            seed=config.seed, min_tokens=config.min_epoch_tokens,
                            contiguous=bool(rows))
    valid_windows = Windows(valid_ids, config.sequence_length, batch_size, shuffle=False,
                            contiguous=bool(rows))
    model = build_model(config, pre, rows)
    model.compile(optimizer=make_optimizer(TrainSpec.from_config(config)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    stateful = {"callbacks": [reset_states(model)],
                "finish": lambda fitted: without_states(fitted, config, pre)} if rows else {}
    return Plan(model, train_windows, valid_windows, monitor="val_loss", mode="min", **stateful)


# 4. Decode and score -----------------------------------------------------------------------
def token_text(token: str, level: str, line_start: bool) -> str:
    """How a generated token is written: EOS ends the line; words get a space before them
    unless they start a line."""
    if token == EOS:
        return "\n"
    return token if level == "char" or line_start else " " + token


def score_record(line: str, log_prob: float | None, count: int) -> dict:
    """One score output record; a line without tokens gets nulls."""
    if not count:
        return {"text": line, "tokens": 0, "log_prob": None, "perplexity": None}
    return {"text": line, "tokens": count, "log_prob": round(float(log_prob), 4),
            "perplexity": round(math.exp(-log_prob / count), 4)}


def score(model, config: Config, pre: Preprocessor, data: Corpus,
          batch_size: int | None = None) -> dict:
    """Perplexity over the whole text, run as `batch_size` parts side by side (the training
    batch size for validation). Evaluate (a batch_size given) also names the level, first;
    metrics.json's validation block never had it."""
    scores = stream_scores(Stepper(model, config), pre.encode(data.tokens), pre.level,
                           batch_size or config.batch_size)
    return scores if batch_size is None else {"level": pre.level, **scores}


def describe(scores: dict) -> str:
    return f"perplexity {scores['perplexity']:.2f} (loss {scores['loss']:.4f})"


def stream_scores(stepper: Stepper, ids: Sequence[int], level: str, rows: int = 64,
                  window: int = 50) -> dict:
    """Perplexity over a whole token stream: every token after the first is predicted once.

    The stream is cut into `rows` contiguous parts run side by side, each window carrying
    its states into the next, so each token sees all the text before it in its part."""
    ids = np.asarray(ids, dtype=np.int32)
    inputs, targets = ids[:-1], ids[1:]
    n = len(targets)
    if n < 1:
        raise DataError("too little text to score: at least one token is needed")
    rows = max(1, min(rows, n))
    width = math.ceil(n / rows)
    grid_in = np.zeros((rows, width), dtype=np.int32)
    grid_out = np.zeros((rows, width), dtype=np.int32)
    grid_in.flat[:n], grid_out.flat[:n] = inputs, targets
    log_probs = stepper.target_log_probs(grid_in, grid_out, window).reshape(-1)[:n]
    loss = float(-log_probs.mean())
    scores = {"loss": loss, "perplexity": math.exp(loss), "tokens": int(n),
              "unknown_tokens": int((targets == text.Vocabulary.unk_id).sum())}
    if level == "char":
        scores["bits_per_character"] = loss / math.log(2)
    return scores


# 5. Predict and generate -----------------------------------------------------------------
class Predictor(artifacts.Handle):
    """A loaded model that scores lines and generates text."""

    def __init__(self, model_dir: str, batch_size: int | None = None,
                 backend: str | None = None):
        super().__init__(model_dir, NAME, Config, Preprocessor, batch_size or 64, backend)

    @cached_property
    def stepper(self) -> Stepper:
        return Stepper(self.model, self.config)

    def predict(self, lines: Sequence[str]) -> list[dict]:
        """Per line: log P(tokens, end of line | line start), natural log, and perplexity."""
        seqs = [self.pre.encode_line(line) for line in lines]
        log_probs: list[float | None] = [None] * len(lines)
        filled = sorted((i for i, s in enumerate(seqs) if s), key=lambda i: len(seqs[i]))
        for start in range(0, len(filled), self.batch_size):
            idx = filled[start:start + self.batch_size]
            for i, log_prob in zip(idx, self._log_probs([seqs[i] for i in idx])):
                log_probs[i] = log_prob
        return [score_record(line, lp, len(s) + 1 if s else 0)
                for line, lp, s in zip(lines, log_probs, seqs)]

    def _log_probs(self, seqs: Sequence[Sequence[int]]) -> list[float]:
        """log P(ids, EOS | EOS) of each id list (shortest first), run side by side window
        by window with the states carried over (exact for an RNN), a row dropped once its
        line is done: memory follows the batch and the window, not the longest line."""
        eos = self.pre.eos_id
        streams = [np.array([eos, *s, eos], dtype=np.int32) for s in seqs]
        totals = np.zeros(len(streams))
        states = self.stepper.zero_states(len(streams))
        done = 0  # rows before it have no steps left
        for at in range(0, len(streams[-1]) - 1, SCORE_WINDOW):
            while len(streams[done]) - 1 <= at:
                done += 1
            rows = streams[done:]
            states = [state[-len(rows):] for state in states]
            inputs = np.zeros((len(rows), min(SCORE_WINDOW, len(rows[-1]) - 1 - at)), np.int32)
            targets, mask = np.zeros_like(inputs), np.zeros(inputs.shape)
            for row, stream in enumerate(rows):
                part = stream[at:at + inputs.shape[1] + 1]
                inputs[row, :len(part) - 1], targets[row, :len(part) - 1] = part[:-1], part[1:]
                mask[row, :len(part) - 1] = 1.0
            log_probs, states = self.stepper(inputs, states)
            picked = np.take_along_axis(log_probs, targets[..., None], -1)[..., 0]
            totals[done:] += (picked * mask).sum(axis=1)
        return [float(t) for t in totals]

    def chunks(self, input_path: str = "-", chunk_size: int | None = None,
               encoding: str | None = None) -> Iterator[list[str]]:
        """Lines of text, empty ones included (each gets its record), cut at
        io.MAX_LINE_BYTES."""
        return io.iter_texts(input_path, encoding=encoding, chunk_size=chunk_size or 1024,
                             max_line_bytes=io.MAX_LINE_BYTES)

    def generate(self, prompt: str = "", steps: int = 100, *, temperature: float = 1.0,
                 top_k: int = 0, rng: np.random.Generator) -> Iterator[str]:
        """Yield the prompt, then the text of each generated token as soon as it is drawn."""
        prompt_ids = self.pre.encode_line(prompt)
        unknown = sum(i == text.Vocabulary.unk_id for i in prompt_ids)
        if unknown:
            log.warning("%d prompt token(s) are not in the vocabulary", unknown)
        context = [self.pre.eos_id, *prompt_ids]
        states = self.stepper.zero_states(1)
        if len(context) > 1:  # run the prompt, all but the token that sampling feeds first
            _, states = self.stepper(np.array([context[:-1]]), states)
        if prompt:
            yield prompt
        line_start = not prompt_ids
        for tokens in decoding.sample(self.stepper.step, states, np.array(context[-1:]),
                                      steps, temperature=temperature, top_k=top_k, rng=rng,
                                      banned=self.pre.banned_ids()):
            token = self.pre.vocab.tokens[int(tokens[0])]
            yield token_text(token, self.pre.level, line_start)
            line_start = token == EOS

