"""Caption benchmark: the Flickr8k subset (1,000 real images) and a synthetic set of coloured
shapes at named positions, each trained with the default recipe (tasks/caption.toml).

    python benchmarks/caption.py [--only flickr|synthetic] [--set key=value ...]
                                 [--max-minutes 20] [--keep DIR]

Flickr8k subset (../shared/datasets/flickr8k_subset1000_captioning, or SEQKIT_DATASETS):
split by the official lists in Flickr8k_text/ (753 train / 113 dev / 125 test images, five
captions each); dev is --valid (early stopping); test is scored with sacreBLEU BLEU-1..4
against all five references, and compared with a "most frequent caption" baseline: the
training caption seen most often (lower-cased), predicted for every test image.
Synthetic: scenes drawn by data/make_caption_sample.py (1,500 train / 200 dev / 300 test,
64 px), which shows whether the pipeline learns image-to-text at all.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DATASETS, ROOT, require, setup_logging  # noqa: E402

FLICKR = DATASETS / "flickr8k_subset1000_captioning"
SPLITS = {"train": "Flickr_8k.trainImages.txt", "dev": "Flickr_8k.devImages.txt",
          "test": "Flickr_8k.testImages.txt"}


def flickr_split(tmp: Path) -> dict[str, Path]:
    """Write train/dev/test caption tables of the subset by the official image lists."""
    with open(require(FLICKR / "captions.txt"), encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    paths = {}
    for name, listing in SPLITS.items():
        keep = set((FLICKR / "Flickr8k_text" / listing).read_text().split())
        paths[name] = tmp / f"flickr_{name}.csv"
        with open(paths[name], "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["image", "caption"])
            writer.writerows((r["image"], r["caption"]) for r in rows if r["image"] in keep)
    return paths


def synthetic_split(tmp: Path) -> dict[str, Path]:
    from data.make_caption_sample import write_set

    images = tmp / "shapes"
    sizes = {"train": (1500, 11), "dev": (200, 12), "test": (300, 13)}
    return {name: write_set(tmp, images, f"shapes_{name}", count, 64, seed, f"{name}_")
            for name, (count, seed) in sizes.items()}


def most_frequent_baseline(train: Path, test: Path) -> dict:
    """BLEU of the most frequent training caption, predicted for every test image."""
    from seqkit import images, metrics

    counts = Counter(" ".join(c.lower().split()) for cs in images.read_captions(train).captions
                     for c in cs)
    caption, seen = counts.most_common(1)[0]
    refs = images.read_captions(test).captions
    scores = metrics.caption_bleu([caption] * len(refs), refs)
    return {"caption": caption, "seen": seen, **scores}


def run(name: str, paths: dict[str, Path], images_dir: Path, args, out: Path) -> dict:
    from seqkit import config as configlib, images, lifecycle
    from seqkit.tasks import caption

    overrides = {"max_minutes": args.max_minutes} if args.max_minutes else {}
    config = configlib.resolve(caption.Config, ROOT / "tasks" / "caption.toml", overrides,
                               args.set_items, task="caption")
    model_dir = out / name
    start, cpu = time.perf_counter(), time.process_time()
    result = lifecycle.train(caption, caption.Source(str(paths["train"]),
                                                     images_dir=str(images_dir)),
                             str(model_dir), config,
                             valid=caption.Source(str(paths["dev"]), images_dir=str(images_dir)),
                             force=True)
    row = {"dataset": name, "epochs": result["training"]["epochs"],
           "best_epoch": result["training"]["best_epoch"],
           "train_minutes": round((time.perf_counter() - start) / 60, 1),
           "train_cpu_minutes": round((time.process_time() - cpu) / 60, 1),
           "set": args.set_items}
    test = caption.Source(str(paths["test"]), images_dir=str(images_dir))
    for beam in sorted({1, 3, config.beam_size}):
        scores = lifecycle.evaluate(caption, str(model_dir), test, beam_size=beam)
        tag = "greedy" if beam == 1 else f"beam{beam}"
        row.update({f"{tag}_bleu{n}": scores[f"bleu{n}"] for n in range(1, 5)})
        row[f"{tag}_length_ratio"] = scores["length_ratio"]
    row["signature"] = scores["bleu_signature"]
    predictor = caption.Predictor(str(model_dir), images_dir=str(images_dir))
    names = images.read_captions(paths["test"]).names
    records = predictor.predict(names)
    # a model that ignores the image says one thing for every image
    row["distinct_captions"] = f"{len({r['caption'] for r in records})} of {len(names)}"
    row["examples"] = {r["image"]: r["caption"] for r in records[:5]}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["flickr", "synthetic"])
    parser.add_argument("--max-minutes", type=float, default=20.0,
                        help="Training time limit per dataset (0: none).")
    parser.add_argument("--set", dest="set_items", action="append", default=[])
    parser.add_argument("--keep", type=Path, help="Keep the trained models in this folder.")
    args = parser.parse_args()
    setup_logging()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        out = args.keep or tmp
        if args.only in (None, "synthetic"):
            paths = synthetic_split(tmp)
            rows.append(run("synthetic", paths, tmp / "shapes", args, out))
            print(json.dumps(rows[-1]), flush=True)
        if args.only in (None, "flickr"):
            paths = flickr_split(tmp)
            baseline = most_frequent_baseline(paths["train"], paths["test"])
            print(json.dumps({"flickr_baseline": baseline}), flush=True)
            rows.append(run("flickr", paths, FLICKR / "images", args, out))
            rows[-1]["baseline"] = {k: baseline[k] for k in (
                "bleu1", "bleu2", "bleu3", "bleu4", "length_ratio")}
            print(json.dumps(rows[-1]), flush=True)
    print()
    print(f"{'dataset':<10}{'epochs':>7}{'minutes':>8}   greedy BLEU-1/2/3/4  length    "
          f"beam BLEU-1/2/3/4  length")
    for r in rows:
        beam = next((k[:-6] for k in r if k.endswith("_bleu1") and k != "greedy_bleu1"),
                    "greedy")
        print(f"{r['dataset']:<10}{r['epochs']:>7}{r['train_minutes']:>8}   " +
              " ".join(f"{r[f'greedy_bleu{n}']:5.1f}" for n in range(1, 5)) +
              f"  {r['greedy_length_ratio']:5.2f}    " +
              " ".join(f"{r[f'{beam}_bleu{n}']:5.1f}" for n in range(1, 5)) +
              f"  {r[f'{beam}_length_ratio']:5.2f}")
        if "baseline" in r:
            print(f"{'baseline':<25}   " +
                  " ".join(f"{r['baseline'][f'bleu{n}']:5.1f}" for n in range(1, 5)) +
                  f"  {r['baseline']['length_ratio']:5.2f}")


if __name__ == "__main__":
    main()
