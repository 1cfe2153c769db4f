"""Gradient flow benchmark: which cells learn a long-range dependency, and their gradient
flow before and after training (README, "Gradient flow and comparing cells").

    python benchmarks/gradient_flow.py [--length 100] [--epochs 30] [--examples 4000]

A synthetic memory task, written by this script (no dataset needed): each line is
--length tokens drawn uniformly from 20 words w0..w19, and its label is whether the FIRST
token is one of w0..w9; everything after it is noise. A model must carry one word across
the whole line. `seqkit compare sentiment` trains SimpleRNN, GRU and LSTM (Keras's forget
bias 1) on it, then an LSTM with `forget_bias=3`, all unidirectional, 32 units, the last
state pooled, embeddings of 16, no dropout, learning rate 0.003, the same seed and budget.
Prints each cell's best validation accuracy, the first epoch at >= 0.99, and
|dh_T/dx_1| / |dh_T/dx_T| on validation lines before and after training.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

WORDS = 20


def write_task(path: Path, lines: int, length: int, seed: int) -> None:
    rng = random.Random(seed)
    rows = ["text\tlabel"]
    for _ in range(lines):
        tokens = [f"w{rng.randrange(WORDS)}" for _ in range(length)]
        label = "pos" if int(tokens[0][1:]) < WORDS // 2 else "neg"
        rows.append(" ".join(tokens) + "\t" + label)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")


def compare(tmp: Path, out: str, cells: str, args, *extra: str) -> dict:
    command = [sys.executable, "-m", "seqkit", "-q", "compare", "sentiment",
               str(tmp / "train.tsv"), "--valid", str(tmp / "valid.tsv"), "--cells", cells,
               "-o", str(tmp / out), "--unidirectional", "--units", "32",
               "--set", "pooling=last", "--set", "embedding_dim=16", "--set", "dropout=0",
               "--set", "learning_rate=0.003", "--epochs", str(args.epochs),
               "--set", f"patience={args.epochs}", "--no-tensorboard",
               "--gradient-length", str(args.length), *extra]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return json.loads((tmp / out / "compare.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--examples", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="seqkit-flow-") as tmp:
        tmp = Path(tmp)
        write_task(tmp / "train.tsv", args.examples, args.length, seed=1)
        write_task(tmp / "valid.tsv", args.examples // 8, args.length, seed=2)
        runs = compare(tmp, "cells", "simple_rnn,gru,lstm", args)["runs"]
        opened = compare(tmp, "open", "lstm", args, "--set", "forget_bias=3")["runs"][0]
        runs.append({**opened, "cell": "lstm, forget_bias=3"})
    print(f"\nfirst-token memory task: {args.length} tokens, {args.examples} training lines, "
          f"{args.epochs} epochs")
    print(f"{'cell':<20} {'best val acc':>12} {'epoch >= 0.99':>13} {'x1/xT before':>13} "
          f"{'after':>9} {'minutes':>8}")
    for run in runs:
        accuracy = [h["val_accuracy"] for h in run["history"]]
        solved = next((i + 1 for i, a in enumerate(accuracy) if a >= 0.99), None)
        flow = run["gradients"]
        print(f"{run['cell']:<20} {run['best']:>12.4f} {solved or '-':>13} "
              f"{flow['before']['first_to_last']:>13.1e} {flow['after']['first_to_last']:>9.1e} "
              f"{run['minutes']:>8.2f}")


if __name__ == "__main__":
    main()
