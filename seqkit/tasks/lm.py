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
from typing import Iterator, Sequence

import keras
import numpy as np

from seqkit import artifacts, config as configlib, decoding, io, text
from seqkit.backbones import BackboneSpec, apply_backbone
from seqkit.errors import ConfigError, DataError
from seqkit.batching import Windows
from seqkit.training import TrainSpec, fit, make_optimizer, set_seed

TASK = NAME = "lm"
LEVELS = ("auto", "char", "word")
WORD_TOKENIZERS = ("whitespace", "auto")
EOS = "<eos>"
CJK_THRESHOLD = 0.3  # share of CJK characters above which auto reads characters
log = logging.getLogger("seqkit")


# 1. Config ---------------------------------------------------------------------------------
@dataclass
class Config(configlib.Recipe):
    # shared keys (seqkit.config) whose default differs here
    units: int = 200
    layers: int = 2
    bidirectional: bool = False
    dropout: float = 0.2
    epochs: int = 20
    learning_rate: float = 0.002
    lr_decay: float = 0.6
    lr_decay_after: int = 4
    patience: int = 2
    # this task's own keys
    level: str = "auto"
    word_tokenizer: str = "whitespace"
    lowercase: bool = False
    min_count: int = 1
    max_vocab: int = 50000
    sequence_length: int = 35
    min_epoch_tokens: int = 50000
    valid_fraction: float = 0.05
    embedding_dim: int = 200
    tie_embeddings: bool = True

    def validate(self) -> None:
        configlib.check_choice("level", self.level, LEVELS)
        configlib.check_choice("word_tokenizer", self.word_tokenizer, WORD_TOKENIZERS)
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


# 2. Preprocessor ---------------------------------------------------------------------------
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
    def fit(cls, tokens: Sequence[str], level: str, config: Config) -> "Preprocessor":
        """Fit the vocabulary on a token stream (with EOS between lines)."""
        vocab = text.Vocabulary.build([tokens], config.min_count, config.max_vocab,
                                      specials=[EOS])
        return cls(level, config.word_tokenizer, config.lowercase, vocab)

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


def read_text(path: str, encoding: str | None = None) -> list[str]:
    """The non-empty lines of a plain-text file (stripped); an error if there are none."""
    stream = io.open_text(path, encoding)
    try:
        lines = [line.strip() for line in stream]
    finally:
        if path != "-":
            stream.raw.close()
    lines = [line for line in lines if line]
    if not lines:
        raise DataError("file is empty; expected plain text, one sentence or paragraph "
                        "per line", path=path)
    return lines


def token_stream(lines: Sequence[str], tokenize) -> list[str]:
    """Every line's tokens followed by EOS, in one list, starting with EOS (a line start)."""
    out = [EOS]
    for line in lines:
        out += tokenize(line)
        out.append(EOS)
    return out


# 3. Model ----------------------------------------------------------------------------------
def build_model(config: Config, pre: Preprocessor) -> keras.Model:
    """tokens (batch, time) -> next-token logits (batch, time, vocab)."""
    vocab = len(pre.vocab)
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    # ReversibleEmbedding is a plain Embedding when not tied (its reverse call is unused)
    embedding = keras.layers.ReversibleEmbedding(vocab, config.embedding_dim,
                                                 name="embedding")
    x = embedding(tokens)  # (batch, time, dim)
    if config.dropout > 0:
        x = keras.layers.Dropout(config.dropout, name="embedding_dropout")(x)
    x, _ = apply_backbone(x, BackboneSpec.from_config(config), return_sequences=True)
    logits = _head(x, config, vocab, embedding=embedding)  # (batch, time, vocab)
    return keras.Model(tokens, logits, name="lm")


def _head(x, config: Config, vocab: int, embedding=None, model=None):
    """The softmax layer: the embedding matrix transposed (tied, after a projection to the
    embedding size, whose bias gives the logits one), or a Dense as wide as the vocabulary.
    New layers when `model` is None, else the trained model's layers of the same names."""
    get = (lambda name, make: make()) if model is None else \
        (lambda name, make: model.get_layer(name))
    if config.tie_embeddings:
        x = get("projection", lambda: keras.layers.Dense(config.embedding_dim,
                                                         name="projection"))(x)
        embedding = embedding if model is None else model.get_layer("embedding")
        return embedding(x, reverse=True)
    return get("logits", lambda: keras.layers.Dense(vocab, name="logits"))(x)


def compile_model(model: keras.Model, config: Config) -> None:
    model.compile(optimizer=make_optimizer(TrainSpec.from_config(config)),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def build_step_model(model: keras.Model, config: Config) -> keras.Model:
    """The inference model, from the trained model's named layers: it runs any number of
    steps from given RNN states and returns the log-probabilities and the new states.

        [tokens (batch, time), *states (batch, units)] -> [log_probs (batch, time, vocab),
                                                          *states]

    States come per layer, (h, c) for LSTM and (h,) otherwise. The recurrent layers are
    copies that also return their states, with the trained weights; the embedding and the
    softmax layers are the trained ones. Dropout is left out (inference)."""
    spec = BackboneSpec.from_config(config)
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = model.get_layer("embedding")(tokens)
    state_inputs, state_outputs = [], []
    for i in range(spec.layers):
        trained = model.get_layer(f"backbone_{spec.cell}_{i}")
        states = [keras.Input(shape=(spec.units,), name=f"state_{i}_{k}")
                  for k in range(spec.state_count)]
        layer = type(trained).from_config({**trained.get_config(), "return_state": True,
                                           "return_sequences": True,
                                           "name": f"step_{trained.name}"})
        x, *new_states = layer(x, initial_state=states)  # (batch, time, units)
        layer.set_weights(trained.get_weights())
        state_inputs += states
        state_outputs += new_states
    logits = _head(x, config, model.get_layer("embedding").input_dim, model=model)
    log_probs = keras.layers.Activation("log_softmax", name="log_probs")(logits)
    return keras.Model([tokens, *state_inputs], [log_probs, *state_outputs], name="lm_step")


class Stepper:
    """NumPy calls around the step model: run windows of tokens from given states."""

    def __init__(self, model: keras.Model, config: Config):
        self.model = build_step_model(model, config)
        spec = BackboneSpec.from_config(config)
        self.state_count, self.units = spec.layers * spec.state_count, spec.units

    def zero_states(self, rows: int) -> list[np.ndarray]:
        return [np.zeros((rows, self.units), dtype=np.float32)
                for _ in range(self.state_count)]

    def __call__(self, tokens: np.ndarray, states: list) -> tuple[np.ndarray, list]:
        """tokens (rows, time) -> log_probs (rows, time, vocab), new states."""
        out = self.model.predict_on_batch([np.asarray(tokens, dtype=np.int32), *states])
        return np.asarray(out[0]), [np.asarray(s) for s in out[1:]]

    def step(self, tokens: np.ndarray, states: list) -> tuple[np.ndarray, list]:
        """The decoding.Step signature: tokens (rows,) -> log_probs (rows, vocab)."""
        log_probs, states = self(np.asarray(tokens)[:, None], states)
        return log_probs[:, 0], states

    def target_log_probs(self, inputs: np.ndarray, targets: np.ndarray, window: int = 50
                         ) -> np.ndarray:
        """log P(targets[r, t] | inputs[r, :t+1]) for padded (rows, time) arrays, run window
        by window with the states carried over, so the result is that of one pass."""
        states = self.zero_states(len(inputs))
        out = np.zeros(inputs.shape, dtype=np.float64)
        for start in range(0, inputs.shape[1], window):
            part = slice(start, start + window)
            log_probs, states = self(inputs[:, part], states)
            out[:, part] = np.take_along_axis(log_probs, targets[:, part, None], -1)[..., 0]
        return out


# 4. Decode ---------------------------------------------------------------------------------
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


# Library functions ---------------------------------------------------------------------------
def split_holdout(stream: list[str], fraction: float) -> tuple[list[str], list[str]]:
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
                        "tokens); pass --valid")
    return stream[: cut + 1], stream[cut:]


def train(train_path: str, out_dir: str, config: Config, *, valid_path: str | None = None,
          encoding: str | None = None, force: bool = False, resume: bool = False) -> dict:
    """Train a language model and write MODEL_DIR; returns the validation scores."""
    work = artifacts.start_run(out_dir, force=force, resume=resume)
    if resume:
        config = artifacts.resume_config(work, TASK, config)
    set_seed(config.seed)
    lines = read_text(train_path, encoding)
    if resume:
        pre = Preprocessor.from_json(artifacts.read_json(work / artifacts.PREPROCESSOR_FILE))
        level = pre.level
    else:
        level = resolve_level(config.level, lines)

    def tokenize(line):
        return line_tokens(line, level, config.word_tokenizer, config.lowercase)

    stream = token_stream(lines, tokenize)
    if valid_path:
        valid = token_stream(read_text(valid_path, encoding), tokenize)
    else:
        stream, valid = split_holdout(stream, config.valid_fraction)
        log.info("no --valid given: holding out the last %s of %s tokens", f"{len(valid):,}",
                 f"{len(stream) + len(valid):,}")
    if len(stream) < 2:
        raise DataError("too little text to train on: at least two tokens are needed",
                        path=train_path)
    if not resume:
        pre = Preprocessor.fit(stream, level, config)
        artifacts.save_setup(work, task=TASK, preprocessor=pre.to_json(), config=config)
    train_ids, valid_ids = pre.encode(stream), pre.encode(valid)
    unknown = sum(i == text.Vocabulary.unk_id for i in valid_ids) / max(1, len(valid_ids))
    log.info("level %s, vocabulary %s, %s training and %s validation tokens "
             "(%.1f%% unknown)", level, f"{len(pre.vocab):,}", f"{len(train_ids):,}",
             f"{len(valid_ids):,}", 100 * unknown)
    train_windows = Windows(train_ids, config.sequence_length, config.batch_size,
                            shuffle=True, seed=config.seed, min_tokens=config.min_epoch_tokens)
    valid_windows = Windows(valid_ids, config.sequence_length, config.batch_size,
                            shuffle=False)
    model = build_model(config, pre)
    compile_model(model, config)
    model, summary = fit(model, train_windows, valid_windows, TrainSpec.from_config(config),
                         work, monitor="val_loss", mode="min", resume=resume)
    scores = stream_scores(Stepper(model, config), valid_ids, pre.level, config.batch_size)
    log.info("validation perplexity %.2f (loss %.4f)", scores["perplexity"], scores["loss"])
    result = {"validation": scores, "training": summary}
    artifacts.complete(work, out_dir, task=TASK, model=model, preprocessor=pre.to_json(),
                       config=config, metrics=result)
    return result


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


class LanguageModel:
    """A loaded model that scores and generates text."""

    def __init__(self, model_dir: str):
        loaded = artifacts.load(model_dir, TASK, Config)
        self.model, self.config = loaded.model, loaded.config
        self.pre = Preprocessor.from_json(loaded.preprocessor)
        self.stepper = Stepper(self.model, self.config)

    def evaluate(self, path: str, encoding: str | None = None, rows: int = 64) -> dict:
        stream = token_stream(read_text(path, encoding), self.pre.tokens)
        scores = stream_scores(self.stepper, self.pre.encode(stream), self.pre.level, rows)
        return {"level": self.pre.level, **scores}

    def score(self, lines: Sequence[str], batch_size: int = 64) -> list[dict]:
        """Per line: log P(tokens, end of line | line start), natural log, and perplexity."""
        seqs = [self.pre.encode_line(line) for line in lines]
        log_probs: list[float | None] = [None] * len(lines)
        filled = sorted((i for i, s in enumerate(seqs) if s), key=lambda i: len(seqs[i]))
        eos = self.pre.eos_id
        for start in range(0, len(filled), batch_size):
            idx = filled[start:start + batch_size]
            full = [[eos, *seqs[i], eos] for i in idx]
            width = max(len(s) for s in full) - 1
            inputs = np.zeros((len(idx), width), dtype=np.int32)
            targets = np.zeros((len(idx), width), dtype=np.int32)
            for row, s in enumerate(full):
                inputs[row, : len(s) - 1], targets[row, : len(s) - 1] = s[:-1], s[1:]
            out = self.stepper.target_log_probs(inputs, targets)
            for row, (i, s) in enumerate(zip(idx, full)):
                log_probs[i] = float(out[row, : len(s) - 1].sum())
        return [score_record(line, lp, len(s) + 1 if s else 0)
                for line, lp, s in zip(lines, log_probs, seqs)]

    def stream_scores(self, input_path: str = "-", batch_size: int = 64,
                      encoding: str | None = None, chunk_size: int = 1024
                      ) -> Iterator[list[dict]]:
        for chunk in io.iter_texts(input_path, encoding=encoding, chunk_size=chunk_size):
            yield self.score(chunk, batch_size)

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


def evaluate(model_dir: str, data_path: str, encoding: str | None = None,
             batch_size: int = 64) -> dict:
    return LanguageModel(model_dir).evaluate(data_path, encoding, batch_size)


def generate(model_dir: str, prompt: str = "", steps: int = 100, *, temperature: float = 1.0,
             top_k: int = 0, seed: int | None = None, count: int = 1
             ) -> Iterator[Iterator[str]]:
    """Yield `count` samples, each an iterator of text pieces (streamed as drawn). One
    generator seeded with `seed` draws them all, so the same seed gives the same text."""
    if steps < 0 or count < 1 or top_k < 0 or temperature < 0:
        raise ConfigError("-n and --top-k must be >= 0, --count >= 1, --temperature >= 0")
    lm = LanguageModel(model_dir)
    if seed is None:
        import secrets

        seed = secrets.randbelow(2**31)
        log.info("seed %d (pass --seed %d to draw the same text again)", seed, seed)
    rng = np.random.default_rng(seed)
    for _ in range(count):
        yield lm.generate(prompt, steps, temperature=temperature, top_k=top_k, rng=rng)


def score(model_dir: str, input_path: str = "-", batch_size: int = 64,
          encoding: str | None = None) -> Iterator[list[dict]]:
    """Yield lists of score records, one list per chunk of input, one record per line."""
    return LanguageModel(model_dir).stream_scores(input_path, batch_size, encoding)
