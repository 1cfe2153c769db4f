"""Language-model benchmark: the default recipe on PTB (words) and Chinese couplets (characters).

    python benchmarks/lm.py [--only ptb|ptb-chars|couplets] [--set key=value ...]
                            [--samples N]

PTB: Mikolov's preprocessed Penn Treebank, train on ptb.train.txt, early stopping on
ptb.valid.txt, perplexity over the whole of ptb.test.txt (every token and line end once).
ptb-chars: the same files read as characters (`level = "char"`, spaces included).
Couplets: 五言 couplets, one per line, a fixed seeded 90/5/5 split by line; test perplexity
and bits per character, and the share of generated lines that keep the shape
5 characters, comma, 5 characters, full stop. Both print a few generated samples.
`--set max_minutes=60` caps the training time (the issue's budget for PTB).
Needs ../shared/datasets (or SEQKIT_DATASETS).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DATASETS, require, setup_logging  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COUPLET = re.compile(r"^[^，。]{5}，[^，。]{5}。$")


def split_couplets(tmp: Path, seed: int = 1234) -> tuple[Path, Path, Path]:
    lines = require(DATASETS / "chinese_poetry_wuyan_couplets" / "poetry.txt").read_text(
        encoding="utf-8").splitlines()
    lines = [line.strip() for line in lines if line.strip()]
    random.Random(seed).shuffle(lines)
    n = len(lines)
    parts = {"train": lines[: int(n * 0.9)], "valid": lines[int(n * 0.9): int(n * 0.95)],
             "test": lines[int(n * 0.95):]}
    paths = []
    for name, part in parts.items():
        path = tmp / f"couplets_{name}.txt"
        path.write_text("\n".join(part) + "\n", encoding="utf-8")
        paths.append(path)
    return tuple(paths)


def run(name: str, train_path: Path, valid_path: Path, test_path: Path, set_items, out: Path,
        samples: int) -> dict:
    import numpy as np

    from seqkit import config as configlib, lifecycle
    from seqkit.tasks import lm

    config = configlib.resolve(lm.Config, ROOT / "tasks" / "lm.toml", set_items=set_items,
                               task="lm")
    model_dir = out / name
    start, cpu_start = time.perf_counter(), time.process_time()
    result = lifecycle.train(lm, lm.Source(str(train_path)), model_dir, config,
                             valid=lm.Source(str(valid_path)), force=True)
    train_minutes = (time.perf_counter() - start) / 60
    cpu_minutes = (time.process_time() - cpu_start) / 60  # the machine may be shared
    cut = bool(config.max_minutes) and train_minutes >= config.max_minutes
    test = lifecycle.evaluate(lm, model_dir, lm.Source(str(test_path)))
    model = lm.Predictor(str(model_dir))
    rng = np.random.default_rng(7)
    history = result["training"]["history"]
    row = {"dataset": name, "level": test["level"], "vocabulary": len(model.pre.vocab),
           "test_perplexity": round(test["perplexity"], 2),
           "valid_perplexity": round(result["validation"]["perplexity"], 2),
           "epochs": len(history), "best_epoch": result["training"]["best_epoch"],
           "train_minutes": round(train_minutes, 1), "cpu_minutes": round(cpu_minutes, 1),
           "stopped_by_time_limit": cut,
           "train_tokens_per_s": result["training"]["train_tokens_per_second"]}
    if "bits_per_character" in test:
        row["test_bits_per_character"] = round(test["bits_per_character"], 3)
    if name == "couplets":  # one line = 12 characters and its end
        lines = ["".join(model.generate("", 13, rng=rng)).split("\n")[0] for _ in range(100)]
        row["shape_kept"] = sum(bool(COUPLET.match(line)) for line in lines) / len(lines)
        shown = lines[:samples]
    else:
        shown = ["".join(model.generate("the", 30, temperature=0.8, rng=rng)).strip()
                 for _ in range(samples)]
    row["samples"] = shown
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["ptb", "ptb-chars", "couplets"])
    parser.add_argument("--set", dest="set_items", action="append", default=[])
    parser.add_argument("--samples", type=int, default=5, help="Generated samples to print.")
    args = parser.parse_args()
    setup_logging()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only in (None, "ptb"):
            ptb = require(DATASETS / "ptb_lm_en")
            results.append(run("ptb", ptb / "ptb.train.txt", ptb / "ptb.valid.txt",
                               ptb / "ptb.test.txt", args.set_items, tmp, args.samples))
            print(json.dumps(results[-1], ensure_ascii=False), flush=True)
        if args.only in (None, "ptb-chars"):
            ptb = require(DATASETS / "ptb_lm_en")
            results.append(run("ptb-chars", ptb / "ptb.train.txt", ptb / "ptb.valid.txt",
                               ptb / "ptb.test.txt", ["level=char", *args.set_items], tmp,
                               args.samples))
            print(json.dumps(results[-1], ensure_ascii=False), flush=True)
        if args.only in (None, "couplets"):
            train, valid, test = split_couplets(tmp)
            results.append(run("couplets", train, valid, test, args.set_items, tmp,
                               args.samples))
            print(json.dumps(results[-1], ensure_ascii=False), flush=True)
    print()
    print(f"{'dataset':<10}{'level':>6}{'vocab':>7}{'test ppl':>10}{'valid ppl':>10}"
          f"{'epochs':>7}{'minutes':>8}{'cpu min':>8}{'tok/s':>8}")
    for r in results:
        print(f"{r['dataset']:<10}{r['level']:>6}{r['vocabulary']:>7,}{r['test_perplexity']:>10}"
              f"{r['valid_perplexity']:>10}{r['epochs']:>7}{r['train_minutes']:>8}"
              f"{r['cpu_minutes']:>8}{r['train_tokens_per_s'] or float('nan'):>8,.0f}")
        if "shape_kept" in r:
            print(f"  bits per character {r['test_bits_per_character']}, generated lines "
                  f"keeping 5，5。 {r['shape_kept']:.0%}")
        for sample in r["samples"]:
            print("  " + sample.replace("\n", " / "))


if __name__ == "__main__":
    main()
