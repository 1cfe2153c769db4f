"""Inference on ONNX Runtime against Keras, in one run: cold start, peak memory, throughput.

    python benchmarks/inference.py                       # sentiment and ner, sample models
    python benchmarks/inference.py --lines 20000 --big-lines 200000 --repeats 3

For each task with ONNX graphs (sentiment, ner) it trains a model on the project's sample
data (or uses --model TASK=DIR), then runs `seqkit TASK predict` in new processes with
`--backend onnx` and `--backend keras`: cold start (one line; median wall time and peak RSS
of --repeats runs), throughput over --lines lines, and for sentiment peak RSS over 10,000
lines against --big-lines lines (memory must stay flat). Run it on a quiet machine; it
prints what else was running (the load average) with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
SAMPLES = {  # task -> (training file, lines to predict)
    "sentiment": ("sentiment_en.tsv", ["A warm and funny story, highly recommended.",
                                       "The room was dirty and the staff were rude."]),
    "ner": ("ner_en.conll", ["Mara Quell flew to Saint Ivra on Monday.",
                             "The board of Harbor Bank met in Port Edra ."]),
}


def seqkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "seqkit", *args]


def timed(command: list[str], stdin: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one process, its stdout thrown away."""
    with open(stdin, "rb") as source:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", *command], stdin=source,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)
        seconds = time.perf_counter() - start
    return seconds, int(proc.stderr.decode().strip().splitlines()[-1]) // 1024


def lines_file(directory: Path, lines: list[str], count: int) -> Path:
    path = directory / f"lines-{count}.txt"
    if not path.exists():
        with open(path, "w", encoding="utf-8") as out:
            for i in range(count):
                out.write(lines[i % len(lines)] + "\n")
    return path


def train(task: str, directory: Path) -> Path:
    model = directory / task
    subprocess.run(seqkit("-q", task, "train", str(DATA / SAMPLES[task][0]), "-o", str(model)),
                   check=True)
    return model


def measure(task: str, model: Path, work: Path, args) -> dict:
    row = {"task": task}
    one = lines_file(work, SAMPLES[task][1][:1], 1)
    many = lines_file(work, SAMPLES[task][1], args.lines)
    for backend in ("onnx", "keras"):
        command = seqkit(task, "predict", str(model), "--backend", backend)
        cold = [timed(command, one) for _ in range(args.repeats)]
        row[f"{backend}_cold_s"] = round(statistics.median(s for s, _ in cold), 2)
        row[f"{backend}_cold_mb"] = max(mb for _, mb in cold)
        seconds, _ = timed(command, many)
        row[f"{backend}_lines_per_s"] = round(args.lines / seconds)
    row["throughput_ratio"] = round(row["onnx_lines_per_s"] / row["keras_lines_per_s"], 2)
    if task == "sentiment" and args.big_lines:
        command = seqkit(task, "predict", str(model), "--backend", "onnx")
        _, small = timed(command, lines_file(work, SAMPLES[task][1], 10_000))
        _, big = timed(command, lines_file(work, SAMPLES[task][1], args.big_lines))
        row.update(rss_10k_mb=small, rss_big_mb=big, big_lines=args.big_lines)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(SAMPLES), choices=list(SAMPLES))
    parser.add_argument("--model", action="append", default=[], metavar="TASK=DIR",
                        help="Use this trained model instead of training on the sample.")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--big-lines", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.model)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for task in args.tasks:
            model = Path(given[task]) if task in given else train(task, work)
            rows.append(measure(task, model, work, args))
            print(json.dumps(rows[-1]), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\n{'task':<10}{'cold onnx':>10}{'keras':>8}{'MB onnx':>9}{'keras':>7}"
          f"{'lines/s onnx':>14}{'keras':>8}{'ratio':>7}")
    for r in rows:
        print(f"{r['task']:<10}{r['onnx_cold_s']:>10}{r['keras_cold_s']:>8}"
              f"{r['onnx_cold_mb']:>9}{r['keras_cold_mb']:>7}{r['onnx_lines_per_s']:>14,}"
              f"{r['keras_lines_per_s']:>8,}{r['throughput_ratio']:>7}")
    for r in rows:
        if "rss_big_mb" in r:
            print(f"{r['task']}: peak RSS {r['rss_10k_mb']} MB on 10,000 lines, "
                  f"{r['rss_big_mb']} MB on {r['big_lines']:,}")


if __name__ == "__main__":
    main()
