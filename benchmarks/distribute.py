"""Distributed training benchmark: one process against two local workers (tf.distribute's
MultiWorkerMirroredStrategy on 127.0.0.1), same data, recipe, seed and global batch.

    python benchmarks/distribute.py [--epochs 3] [--batch-size 64] [--lines N] [--set k=v ...]

Trains sentiment on SST-2 (glue/train.tsv, early stopping on glue/dev.tsv; --lines N: the
first N training lines) with `seqkit sentiment train` three ways in turn, each through the
CLI in fresh processes: `--distribute none`, and two workers with TF_CONFIG (each given half
the machine's cores with --threads-per-worker, default cores // 2). Prints, per run: steady
training tokens/s (median epoch after the first), the best validation accuracy, wall
seconds of the whole command, and the seconds of training until validation accuracy first
reached the lower of the two runs' best (the time to the same score), with ratios against
the one-process run measured in the same script. Needs ../shared/datasets (or
SEQKIT_DATASETS).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DATASETS, require, steady_tokens_per_second, threads_env  # noqa: E402


def train_command(train: Path, valid: Path, out: Path, args) -> list[str]:
    command = [sys.executable, "-m", "seqkit", "-q", "sentiment", "train", str(train),
               "--valid", str(valid), "-o", str(out), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size), "--no-tensorboard",
               "--set", f"patience={args.epochs}"]
    for item in args.set:
        command += ["--set", item]
    return command


def one_process(train, valid, out, args) -> float:
    start = time.perf_counter()
    subprocess.run(train_command(train, valid, out, args) + ["--distribute", "none"],
                   check=True)
    return time.perf_counter() - start


def two_workers(train, valid, out, args) -> float:
    from seqkit.distribute import local_cluster

    start = time.perf_counter()
    procs = []
    for config in local_cluster(2):
        env = {**os.environ, "TF_CONFIG": config, **threads_env(args.threads_per_worker)}
        procs.append(subprocess.Popen(train_command(train, valid, out, args), env=env))
    codes = [p.wait() for p in procs]
    if codes != [0, 0]:
        sys.exit(f"workers exited {codes}")
    return time.perf_counter() - start


def summary(out: Path, wall: float) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())["training"]
    history = metrics["history"]
    seconds = [h["seconds"] for h in history]
    return {"wall": wall, "history": history, "best": max(h["val_accuracy"] for h in history),
            "tokens_per_second": steady_tokens_per_second(metrics["train_tokens"], seconds)}


def time_to(history: list[dict], target: float) -> float | None:
    elapsed = 0.0
    for h in history:
        elapsed += h["seconds"]
        if h["val_accuracy"] >= target:
            return elapsed
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lines", type=int, default=0, help="first N training lines (0: all)")
    parser.add_argument("--threads-per-worker", type=int,
                        default=max(1, (os.cpu_count() or 2) // 2))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    glue = require(DATASETS / "sst2_en_sentiment" / "glue")
    with tempfile.TemporaryDirectory(prefix="seqkit-bench-") as tmp:
        tmp = Path(tmp)
        train = glue / "train.tsv"
        if args.lines:
            lines = train.read_text(encoding="utf-8").splitlines(keepends=True)
            train = tmp / "train.tsv"
            train.write_text("".join(lines[: args.lines + 1]), encoding="utf-8")
        runs = {"one process": summary(tmp / "one", one_process(train, glue / "dev.tsv",
                                                                 tmp / "one", args)),
                "two workers": summary(tmp / "two", two_workers(train, glue / "dev.tsv",
                                                                 tmp / "two", args))}
    target = min(r["best"] for r in runs.values())
    base = runs["one process"]
    print(f"\nSST-2 sentiment, {args.epochs} epochs, global batch {args.batch_size}, "
          f"{os.cpu_count()} CPU cores ({args.threads_per_worker} threads per worker); "
          f"time to validation accuracy {target:.4f}")
    print(f"{'run':<12} {'tokens/s':>10} {'ratio':>6} {'best val acc':>13} "
          f"{'to target s':>12} {'ratio':>6} {'wall s':>8}")
    for name, r in runs.items():
        reach = time_to(r["history"], target)
        base_reach = time_to(base["history"], target)
        print(f"{name:<12} {r['tokens_per_second']:>10,.0f} "
              f"{r['tokens_per_second'] / base['tokens_per_second']:>6.2f} {r['best']:>13.4f} "
              f"{reach if reach is not None else float('nan'):>12.1f} "
              f"{(reach / base_reach) if reach and base_reach else float('nan'):>6.2f} "
              f"{r['wall']:>8.1f}")


if __name__ == "__main__":
    main()
