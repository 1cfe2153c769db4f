"""Inference on ONNX Runtime against Keras, in one run: cold start, peak memory, throughput.

    python benchmarks/inference.py                       # every task, sample models
    python benchmarks/inference.py --lines 20000 --big-lines 200000 --repeats 3
    python benchmarks/inference.py --model ner=runs/conll --tasks ner

For each task it trains a model on the project's sample data (or uses --model TASK=DIR),
then runs its predict command (lm: score; translation greedy and beam 5) in new processes
with `--backend onnx` and `--backend keras`: cold start (one input; median wall time and
peak RSS of --repeats runs), throughput (median of --runs runs) over --lines lines
(sentiment, ner, lm), --sentences sentences (translation) or --images images (caption),
and for sentiment peak RSS over
10,000 lines against --big-lines lines (memory must stay flat). Run it on a quiet machine;
it prints the load average before and after with the figures.
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
CAPTION_IMAGES = DATA / "caption_images"
# name -> (task, training arguments, predict command, inputs, which count option)
SAMPLES = {
    "sentiment": ("sentiment", ["sentiment_en.tsv"], ["predict"],
                  ["A warm and funny story, highly recommended.",
                   "The room was dirty and the staff were rude."], "lines"),
    "ner": ("ner", ["ner_en.conll"], ["predict"],
            ["Mara Quell flew to Saint Ivra on Monday.",
             "The board of Harbor Bank met in Port Edra ."], "lines"),
    "lm": ("lm", ["lm_zh.txt"], ["score"], ["春风吹柳岸，明月照高楼。", "细雨落青苔，白云绕远山。"],
           "lines"),
    "translation": ("translation", ["translation_en_zh.tsv"], ["predict", "--beam-size", "1"],
                    ["Tom likes tea.", "We need water."], "sentences"),
    "translation-beam5": ("translation", ["translation_en_zh.tsv"],
                          ["predict", "--beam-size", "5"], ["Tom likes tea.", "We need water."],
                          "sentences"),
    "caption": ("caption", ["caption_train.csv", "--images", str(CAPTION_IMAGES),
                            "--batch-size", "8"], ["predict"],
                [str(CAPTION_IMAGES / "test_0000.png"), str(CAPTION_IMAGES / "test_0001.png")],
                "images"),
}


def seqkit(*args: str) -> list[str]:
    return [sys.executable, "-m", "seqkit", *args]


# As on a user's machine, Python caches compiled modules: a sandbox that sets
# PYTHONDONTWRITEBYTECODE would have every start compile seqkit's modules anew (~60 ms).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(command: list[str], stdin: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS (MB) of one process, its stdout thrown away."""
    with open(stdin, "rb") as source:
        start = time.perf_counter()
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", *command], stdin=source,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True,
                              env=ENV)
        seconds = time.perf_counter() - start
    return seconds, int(proc.stderr.decode().strip().splitlines()[-1]) // 1024


def lines_file(directory: Path, name: str, lines: list[str], count: int) -> Path:
    path = directory / f"{name}-{count}.txt"
    if not path.exists():
        with open(path, "w", encoding="utf-8") as out:
            for i in range(count):
                out.write(lines[i % len(lines)] + "\n")
    return path


def train(task: str, arguments: list[str], directory: Path) -> Path:
    model = directory / task
    if not model.exists():  # translation's two rows share one model
        paths = [str(DATA / a) if (DATA / a).exists() else a for a in arguments]
        subprocess.run(seqkit("-q", task, "train", *paths, "-o", str(model)), check=True)
    return model


def measure(name: str, model: Path, work: Path, args) -> dict:
    task, _, command, inputs, unit = SAMPLES[name]
    count = getattr(args, unit)
    row = {"task": name, "unit": unit}
    one = lines_file(work, task, inputs[:1], 1)
    many = lines_file(work, task, inputs, count)
    for backend in ("onnx", "keras"):
        run = seqkit(task, *command[:1], str(model), *command[1:], "--backend", backend)
        timed(run, one)  # once untimed: the compiled-module cache, the file cache
        cold = [timed(run, one) for _ in range(args.repeats)]
        row[f"{backend}_cold_s"] = round(statistics.median(s for s, _ in cold), 2)
        row[f"{backend}_cold_mb"] = max(mb for _, mb in cold)
        seconds = statistics.median(timed(run, many)[0] for _ in range(args.runs))
        row[f"{backend}_per_s"] = round(count / seconds, 1)
    row["throughput_ratio"] = round(row["onnx_per_s"] / row["keras_per_s"], 2)
    if name == "sentiment" and args.big_lines:
        run = seqkit(task, "predict", str(model), "--backend", "onnx")
        _, small = timed(run, lines_file(work, task, inputs, 10_000))
        _, big = timed(run, lines_file(work, task, inputs, args.big_lines))
        row.update(rss_10k_mb=small, rss_big_mb=big, big_lines=args.big_lines)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=list(SAMPLES), choices=list(SAMPLES))
    parser.add_argument("--model", action="append", default=[], metavar="TASK=DIR",
                        help="Use this trained model instead of training on the sample.")
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--sentences", type=int, default=2_000)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--big-lines", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="cold starts per backend")
    parser.add_argument("--runs", type=int, default=3,
                        help="throughput runs per backend (the median is shown)")
    args = parser.parse_args()
    given = dict(item.split("=", 1) for item in args.model)
    print(f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for name in args.tasks:
            task, arguments = SAMPLES[name][:2]
            model = Path(given[task]) if task in given else train(task, arguments, work)
            rows.append(measure(name, model, work, args))
            print(json.dumps(rows[-1]), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"\n{'task':<18}{'cold onnx':>10}{'keras':>8}{'MB onnx':>9}{'keras':>7}"
          f"{'per s onnx':>12}{'keras':>9}{'ratio':>7}  unit")
    for r in rows:
        print(f"{r['task']:<18}{r['onnx_cold_s']:>10}{r['keras_cold_s']:>8}"
              f"{r['onnx_cold_mb']:>9}{r['keras_cold_mb']:>7}{r['onnx_per_s']:>12,}"
              f"{r['keras_per_s']:>9,}{r['throughput_ratio']:>7}  {r['unit']}")
    for r in rows:
        if "rss_big_mb" in r:
            print(f"{r['task']}: peak RSS {r['rss_10k_mb']} MB on 10,000 lines, "
                  f"{r['rss_big_mb']} MB on {r['big_lines']:,}")


if __name__ == "__main__":
    main()
