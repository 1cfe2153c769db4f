"""Translation benchmark: Tatoeba English-Chinese (cmn.txt), both directions.

    python benchmarks/translation.py [--direction en-zh|zh-en|both] [--attention luong none]
                                     [--max-minutes 45] [--set key=value ...] [--keep DIR]

The file is sorted by length, so it is shuffled (seed 1234) before a fixed split: 1,000 pairs
dev (early stopping), 2,000 pairs test, the rest train. Each run trains the default recipe
(tasks/translation.toml, with --set overrides and the attention asked for) for at most
--max-minutes, then scores the test set with sacreBLEU BLEU (zh tokenizer for Chinese) and
chrF, for greedy search and beam 5. Needs ../shared/datasets (or SEQKIT_DATASETS).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DATASETS, require, setup_logging  # noqa: E402

SEED, DEV, TEST = 1234, 1000, 2000


def split(tmp: Path) -> tuple[Path, Path, Path]:
    import numpy as np

    from seqkit import corpora

    pairs = corpora.read_pairs(require(DATASETS / "tatoeba_cmn_eng" / "cmn.txt"))
    order = np.random.default_rng(SEED).permutation(len(pairs.sources))
    parts = {"dev": order[:DEV], "test": order[DEV:DEV + TEST], "train": order[DEV + TEST:]}
    paths = {}
    for name, index in parts.items():
        paths[name] = tmp / f"cmn_{name}.tsv"
        with open(paths[name], "w", encoding="utf-8") as fh:
            fh.writelines(f"{pairs.sources[i]}\t{pairs.targets[i]}\n" for i in index)
    return paths["train"], paths["dev"], paths["test"]


def run(direction: str, attention: str, paths, args, out: Path) -> dict:
    from seqkit import config as configlib, lifecycle
    from seqkit.tasks import translation

    train_path, dev_path, test_path = paths
    reverse = direction == "zh-en"
    config = configlib.resolve(translation.Config, Path("tasks/translation.toml"),
                               {"attention": attention, "max_minutes": args.max_minutes},
                               args.set_items, task="translation")
    model_dir = out / f"{direction}-{attention}"
    start = time.perf_counter()
    result = lifecycle.train(translation, translation.Source(str(train_path), reverse=reverse),
                             str(model_dir), config,
                             valid=translation.Source(str(dev_path), reverse=reverse),
                             force=True)
    minutes = (time.perf_counter() - start) / 60
    row = {"direction": direction, "attention": attention,
           "epochs": result["training"]["epochs"], "best_epoch": result["training"]["best_epoch"],
           "train_minutes": round(minutes, 1), "set": args.set_items,
           "test_pairs": min(args.test_limit, TEST)}
    for beam in (1, 5):
        start = time.perf_counter()
        scores = lifecycle.evaluate(translation, str(model_dir),
                                    translation.Source(str(test_path)), beam_size=beam,
                                    limit=args.test_limit)
        name = "greedy" if beam == 1 else f"beam{beam}"
        row[f"{name}_bleu"], row[f"{name}_chrf"] = scores["bleu"], scores["chrf"]
        row[f"{name}_seconds"] = round(time.perf_counter() - start, 1)
        row["bleu_signature"] = scores["bleu_signature"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--direction", choices=["en-zh", "zh-en", "both"], default="both")
    parser.add_argument("--attention", nargs="+", default=["luong", "none"],
                        choices=["luong", "bahdanau", "none"])
    parser.add_argument("--max-minutes", type=float, default=45.0)
    parser.add_argument("--set", dest="set_items", action="append", default=[])
    parser.add_argument("--keep", type=Path, help="Keep the trained models in this folder.")
    parser.add_argument("--test-limit", type=int, default=TEST,
                        help="Score only the first N test pairs (to save time; default all).")
    args = parser.parse_args()
    setup_logging()
    directions = ["en-zh", "zh-en"] if args.direction == "both" else [args.direction]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = args.keep or tmp
        paths = split(tmp)
        for direction in directions:
            for attention in args.attention:
                rows.append(run(direction, attention, paths, args, out))
                print(json.dumps(rows[-1]), flush=True)
    print()
    print(f"{'direction':<10}{'attention':<10}{'epochs':>7}{'minutes':>8}"
          f"{'greedy BLEU':>12}{'chrF':>6}{'beam5 BLEU':>11}{'chrF':>6}")
    for r in rows:
        print(f"{r['direction']:<10}{r['attention']:<10}{r['epochs']:>7}{r['train_minutes']:>8}"
              f"{r['greedy_bleu']:>12.2f}{r['greedy_chrf']:>6.1f}{r['beam5_bleu']:>11.2f}"
              f"{r['beam5_chrf']:>6.1f}")


if __name__ == "__main__":
    main()
