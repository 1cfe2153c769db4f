"""Training throughput: seqkit's loop against a plain Keras `fit` and PyTorch, on the same
model and the same batches (issue 20).

    pip install -c requirements.lock -e ".[bench]"      # torch, CPU build
    python benchmarks/throughput.py [--rows lstm,gru,bilstm,ner,lm] [--batches 8,32,64,256]
                                    [--examples 4096] [--epochs 4] [--rounds 2]
                                    [--lm-words 200000] [--threads N]

Rows (each at every --batches size; ner and lm at their recipes' batch sizes):
- lstm, gru, bilstm: the sentiment recipe reduced to embedding(128) -> LSTM/GRU(128), one
  direction or both -> masked max over time -> softmax, no dropout, on the first
  --examples lines of SST-2 (glue/train.tsv), tokenised and bucketed by seqkit;
- ner: the ner recipe (tasks/ner.toml: word embeddings, word shapes and a character CNN ->
  BiLSTM(128) -> CRF, dropout 0.5, batch 8) on the first --examples sentences of
  CoNLL-2003 (derived_iob2/train.txt); PyTorch's CRF is the usual forward algorithm, a
  Python loop over the batch's time steps, and gives seqkit's CRF loss (checked);
- lm: the word-level language-model recipe (tasks/lm.toml [word]: 2x300 LSTM, embeddings tied,
  dropout 0.35, windows of 35; the README's throughput figures had the earlier 2x200, dropout 0.2)
  on the first --lm-words words of PTB (ptb.train.txt).
For each row, seqkit's Batches (or Windows) give each epoch's batches; the same arrays in
the same order go to (a) `seqkit.training.fit` as `train` runs it (its callbacks,
checkpoints and TensorBoard scalars included), (b) a plain Keras `model.fit` over a
tf.data dataset of those arrays, no callbacks, and (c) PyTorch: the same layers, Adam with
each weight's gradient clipped to 1.0 as Keras's clipnorm does, sequences packed by length
(so padding is skipped as Keras's masks skip it). Tokens/s is the tokens of an epoch over
the median epoch time, the first epoch of each round left out (tracing, warm-up); rounds
alternate the order a, b, c and c, b, a so that a noisy minute hits all three alike.
`--threads N` gives TensorFlow and PyTorch the same N CPU threads (without it each picks its
own, and the two may not get the same share of a shared machine's cores).
A fourth loop, seqkit's with `xla = true` (the training step compiled by XLA), runs
beside them; the table also gives how much longer than a steady epoch the first epoch took
(tracing, and XLA compiling each batch shape once).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DATASETS, require, threads_env  # noqa: E402

SENTIMENT_ROWS = {"lstm": ("lstm", False), "gru": ("gru", False), "bilstm": ("lstm", True)}


# Data: the row's batches, made by seqkit ------------------------------------------------------
class Row:
    """A seqkit plan (model and batches) for one row, and each epoch's batches as arrays."""

    def __init__(self, name: str, task, config, source, tmp: Path):
        self.name, self.task, self.config = name, task, config
        data = task.read(source, config)
        self.pre = task.Preprocessor.fit(data, config)
        self.data = data
        self.tmp = tmp

    def plan(self):
        return self.task.prepare(self.config, self.pre, self.data, self.data, False)

    def epoch_batches(self, batches, epoch: int) -> list:
        import numpy as np

        if hasattr(batches, "batch_starts"):  # lm windows
            return [batches.make_batch(s) for s in batches.batch_starts(epoch)]
        rng = np.random.default_rng([batches.seed, epoch, 1])
        return [batches.structure(batches.make_batch(idx), rng)
                for idx in batches.batch_indices(epoch)]


def sentiment_row(name: str, batch: int, examples: int, tmp: Path) -> Row:
    from seqkit.tasks import sentiment

    cell, both = SENTIMENT_ROWS[name]
    lines = require(DATASETS / "sst2_en_sentiment" / "glue" / "train.tsv").read_text(
        encoding="utf-8").splitlines(keepends=True)
    path = tmp / "sst2.tsv"
    path.write_text("".join(lines[: examples + 1]), encoding="utf-8")
    config = sentiment.Config(cell=cell, bidirectional=both, units=128, embedding_dim=128,
                              dropout=0.0, batch_size=batch, pooling="max", patience=100)
    return Row(f"{name} b{batch}", sentiment, config, sentiment.Source(str(path)), tmp)


def lm_row(tmp: Path, words: int = 200_000) -> Row:
    from seqkit.tasks import lm

    path = tmp / "ptb.txt"
    kept, count = [], 0
    for line in require(DATASETS / "ptb_lm_en" / "ptb.train.txt").open(encoding="utf-8"):
        kept.append(line)
        count += len(line.split())
        if count >= words:
            break
    path.write_text("".join(kept), encoding="utf-8")
    config = lm.Config(level="word", min_epoch_tokens=0, patience=100, lr_decay=1.0)
    return Row(f"lm b{config.batch_size}", lm, config, lm.Source(str(path)), tmp)


def ner_row(examples: int, tmp: Path) -> Row:
    from seqkit import config as configlib
    from seqkit.tasks import ner

    source = require(DATASETS / "conll2003_en_ner" / "derived_iob2" / "train.txt")
    kept, count = [], 0
    for line in source.open(encoding="utf-8"):
        kept.append(line)
        count += not line.strip()
        if count >= examples:
            break
    path = tmp / "conll.txt"
    path.write_text("".join(kept), encoding="utf-8")
    root = Path(__file__).resolve().parent.parent
    config = configlib.resolve(ner.Config, root / "tasks" / "ner.toml", {"max_minutes": 0.0},
                               task="ner")
    return Row(f"ner b{config.batch_size}", ner, config, ner.Source(str(path)), tmp)


# The three loops; each returns its epochs' seconds -------------------------------------------
def run_seqkit(row: Row, state: dict, epochs: int, xla: bool = False) -> list[float]:
    import dataclasses

    from seqkit import training

    name = "xla" if xla else "seqkit"
    if name not in state:
        state[name] = row.plan()
    plan = state[name]
    spec = training.TrainSpec.from_config(dataclasses.replace(row.config, epochs=epochs,
                                                              xla=xla))
    _, summary = training.fit(plan.model, plan.train, None, spec, row.tmp / name,
                              monitor="loss", mode="min")
    return [h["seconds"] for h in summary["history"]]


def run_xla(row: Row, state: dict, epochs: int) -> list[float]:
    return run_seqkit(row, state, epochs, xla=True)


def run_keras(row: Row, state: dict, epochs: int) -> list[float]:
    import tensorflow as tf

    from benchmarks.common import EpochTimer

    if "keras" not in state:
        plan = row.plan()
        state["keras"] = (plan.model, plan.train)
    model, batches = state["keras"]
    arrays = [row.epoch_batches(batches, e) for e in range(epochs)]
    sample = arrays[0][0]
    signature = tf.nest.map_structure(
        lambda a: tf.TensorSpec((None,) * a.ndim, tf.as_dtype(a.dtype)), sample)
    epoch = iter(range(epochs))

    def generate():
        yield from arrays[next(epoch)]

    # a new iterator each epoch, so each epoch's arrays in turn
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(arrays[0])))
    timer = EpochTimer()
    model.fit(dataset.prefetch(2), epochs=epochs, verbose=0, callbacks=[timer], shuffle=False)
    return timer.seconds


def run_torch(row: Row, state: dict, epochs: int) -> list[float]:
    import torch

    if "torch" not in state:
        state["torch"] = torch_model(row)
    model, step = state["torch"]
    plan_batches = state.setdefault("torch_batches", row.plan().train)
    seconds = []
    for e in range(epochs):
        arrays = row.epoch_batches(plan_batches, e)
        start = time.perf_counter()
        for batch in arrays:
            step(*batch)
        seconds.append(time.perf_counter() - start)
    return seconds


def torch_model(row: Row):
    import numpy as np
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    torch.manual_seed(0)
    config = row.config
    vocab = len(row.pre.vocab)
    if row.task.NAME == "lm":
        class LM(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(vocab, config.embedding_dim)
                self.rnn = nn.LSTM(config.embedding_dim, config.units, config.layers,
                                   batch_first=True, dropout=config.dropout)
                self.drop = nn.Dropout(config.dropout)
                self.out = nn.Linear(config.units, vocab)
                self.out.weight = self.embedding.weight  # tied, as the recipe

            def forward(self, x):
                h, _ = self.rnn(self.drop(self.embedding(x)))
                return self.out(self.drop(h))

        model = LM()
    elif row.task.NAME == "ner":
        return ner_torch_model(row)
    else:
        cells = {"lstm": nn.LSTM, "gru": nn.GRU}

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = nn.Embedding(vocab, config.embedding_dim, padding_idx=0)
                self.rnn = cells[config.cell](config.embedding_dim, config.units,
                                              batch_first=True,
                                              bidirectional=config.bidirectional)
                self.out = nn.Linear(config.units * (2 if config.bidirectional else 1),
                                     len(row.pre.labels))

            def forward(self, x):
                lengths = (x != 0).sum(1)
                packed = pack_padded_sequence(self.embedding(x), lengths.cpu(),
                                              batch_first=True, enforce_sorted=False)
                h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                           total_length=x.shape[1])
                h = h.masked_fill((x == 0)[:, :, None], float("-inf"))
                return self.out(h.max(1).values)

        model = Classifier()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    params = [p for p in model.parameters() if p.requires_grad]

    def step(x, y):
        x = torch.from_numpy(np.asarray(x["tokens"] if isinstance(x, dict) else x,
                                        dtype=np.int64))
        y = torch.from_numpy(np.asarray(y, dtype=np.int64))
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        for p in params:  # each weight on its own, as Keras's clipnorm
            torch.nn.utils.clip_grad_norm_([p], 1.0)
        optimizer.step()

    return model, step


def torch_crf_nll(emissions, tags, mask, transitions, start, end):
    """(batch,) negative log-likelihood of the gold tags under a linear-chain CRF; mask
    (batch, time) bool, True on real steps, right-padded."""
    import torch

    lengths = mask.sum(1)
    gold = (emissions.gather(2, tags[..., None])[..., 0] * mask).sum(1) + start[tags[:, 0]]
    gold = gold + (transitions[tags[:, :-1], tags[:, 1:]] * mask[:, 1:]).sum(1)
    gold = gold + end[tags[torch.arange(len(tags)), lengths - 1]]
    alpha = start + emissions[:, 0]
    for t in range(1, emissions.shape[1]):
        moved = torch.logsumexp(alpha[:, :, None] + transitions, 1) + emissions[:, t]
        alpha = torch.where(mask[:, t, None], moved, alpha)
    return torch.logsumexp(alpha + end, 1) - gold


def ner_torch_model(row: Row):
    """The ner recipe's network in PyTorch, with a CRF written the usual way; and its step."""
    import numpy as np
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from seqkit.tagging import SHAPES

    torch.manual_seed(0)
    config, pre = row.config, row.pre
    n_tags = len(pre.tags)

    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(len(pre.vocab), config.embedding_dim, padding_idx=0)
            self.char_embedding = nn.Embedding(len(pre.chars), config.char_embedding_dim)
            self.char_cnn = nn.Conv1d(config.char_embedding_dim, config.char_filters,
                                      config.char_width, padding="same")
            self.shape_embedding = nn.Embedding(len(SHAPES), config.case_embedding_dim)
            features = config.embedding_dim + config.char_filters + config.case_embedding_dim
            self.drop = nn.Dropout(config.dropout)
            self.rnn = nn.LSTM(features, config.units, batch_first=True, bidirectional=True)
            self.emissions = nn.Linear(2 * config.units, n_tags)
            self.transitions = nn.Parameter(torch.zeros(n_tags, n_tags))
            self.start = nn.Parameter(torch.zeros(n_tags))
            self.end = nn.Parameter(torch.zeros(n_tags))

        def forward(self, tokens, chars, shapes, tags):
            batch, time_, width = chars.shape
            real_chars = (chars > 0)[..., None]
            c = self.char_embedding(chars) * real_chars  # padding characters are zeros
            c = torch.tanh(self.char_cnn(c.reshape(-1, width, c.shape[-1]).transpose(1, 2)))
            c = c.transpose(1, 2).reshape(batch, time_, width, -1)
            c = c.masked_fill(~real_chars, -1e9).max(2).values
            c = torch.where(real_chars.any(2), c, torch.zeros_like(c))
            x = torch.cat([self.embedding(tokens), c, self.shape_embedding(shapes)], -1)
            mask = tokens > 0
            lengths = mask.sum(1)
            packed = pack_padded_sequence(self.drop(x), lengths, batch_first=True,
                                          enforce_sorted=False)
            h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True,
                                       total_length=time_)
            return torch_crf_nll(self.emissions(self.drop(h)), tags, mask, self.transitions,
                                 self.start, self.end).mean()

    model = Tagger()
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    params = list(model.parameters())

    def step(x):
        tensors = {k: torch.from_numpy(np.asarray(v, dtype=np.int64)) for k, v in x.items()}
        optimizer.zero_grad(set_to_none=True)
        loss = model(tensors["tokens"], tensors["chars"], tensors["shapes"], tensors["tags"])
        loss.backward()
        for p in params:  # each weight on its own, as Keras's clipnorm
            torch.nn.utils.clip_grad_norm_([p], config.clipnorm)
        optimizer.step()

    return model, step


def tokens_per_epoch(row: Row, state: dict) -> int:
    return int(state.setdefault("torch_batches", row.plan().train).tokens)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="lstm,gru,bilstm,ner,lm")
    parser.add_argument("--batches", default="8,32,64,256")
    parser.add_argument("--examples", type=int, default=4096)
    parser.add_argument("--epochs", type=int, default=4, help="per round, the first not timed")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--lm-words", type=int, default=200_000,
                        help="PTB words the lm row trains on")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for TensorFlow and for PyTorch (0: each its default)")
    args = parser.parse_args()
    import os

    if args.threads:
        os.environ.update(threads_env(args.threads))
    from seqkit.runtime import load_tensorflow

    load_tensorflow()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    loops = {"seqkit": run_seqkit, "xla": run_xla, "keras": run_keras, "torch": run_torch}
    results = []
    with tempfile.TemporaryDirectory(prefix="seqkit-throughput-") as tmp:
        tmp = Path(tmp)
        rows = []
        for name in args.rows.split(","):
            if name == "lm":
                rows.append(lm_row(tmp, args.lm_words))
            elif name == "ner":
                rows.append(ner_row(args.examples, tmp))
            else:
                rows += [sentiment_row(name, int(b), args.examples, tmp)
                         for b in args.batches.split(",")]
        for row in rows:
            state: dict = {}
            tokens = tokens_per_epoch(row, state)
            steady = {name: [] for name in loops}
            first = {}  # the first round's first epoch: tracing, and XLA's compilations
            for round_ in range(args.rounds):
                order = list(loops) if round_ % 2 == 0 else list(reversed(loops))
                for name in order:
                    seconds = loops[name](row, state, args.epochs)
                    steady[name] += seconds[1:]
                    first.setdefault(name, seconds[0])
            speed = {name: tokens / statistics.median(s) for name, s in steady.items()}
            warm_up = {name: first[name] - statistics.median(steady[name]) for name in loops}
            results.append((row.name, speed, warm_up))
            print(f"{row.name:<12} " + "  ".join(f"{name} {speed[name]:,.0f}" for name in loops)
                  + " tokens/s", file=sys.stderr, flush=True)
    print(f"\ntraining tokens/s, median of {args.rounds} rounds x {args.epochs - 1} timed "
          f"epochs; {os.cpu_count()} CPU cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), TensorFlow "
          f"({os.environ.get('TF_NUM_INTRAOP_THREADS', 'default')} threads); "
          "xla: seqkit's loop with xla = true")
    print(f"{'row':<12} {'seqkit':>8} {'xla':>8} {'keras':>8} {'torch':>8} {'seqkit/keras':>13}"
          f" {'seqkit/torch':>13} {'xla/torch':>10} {'first epoch +s seqkit, xla':>27}")
    for name, speed, warm_up in results:
        print(f"{name:<12} {speed['seqkit']:>8,.0f} {speed['xla']:>8,.0f} {speed['keras']:>8,.0f} "
              f"{speed['torch']:>8,.0f} {speed['seqkit'] / speed['keras']:>13.2f} "
              f"{speed['seqkit'] / speed['torch']:>13.2f} {speed['xla'] / speed['torch']:>10.2f}"
              f" {warm_up['seqkit']:>18.1f} {warm_up['xla']:>8.1f}")


if __name__ == "__main__":
    main()
