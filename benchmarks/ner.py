"""NER benchmark: the default recipe on CoNLL-2003 English and ResumeNER (Chinese), with
and without the CRF output layer.

    python benchmarks/ner.py [--only conll2003|resume] [--crf on|off|both] [--set key=value ...]

CoNLL-2003: train on derived_iob2/train.txt, early stopping on valid.txt, entity F1 on
test.txt (no pretrained vectors). ResumeNER: train/dev/test.char.bmes. Prints one JSON
line per run as it finishes, then a table: test entity F1 (conlleval-compatible, seqeval),
precision, recall, epochs and minutes of training.
Needs ../shared/datasets (or SEQKIT_DATASETS).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import DATASETS, ROOT, require, setup_logging  # noqa: E402

CORPORA = {
    "conll2003": ("conll2003_en_ner/derived_iob2", "train.txt", "valid.txt", "test.txt"),
    "resume": ("resume_ner_zh", "train.char.bmes", "dev.char.bmes", "test.char.bmes"),
}


def run(name: str, crf: bool, set_items, out: Path) -> dict:
    from seqkit import config as configlib, lifecycle
    from seqkit.tasks import ner

    folder, train, valid, test = CORPORA[name]
    base = require(DATASETS / folder)
    config = configlib.resolve(ner.Config, ROOT / "tasks" / "ner.toml", {"crf": crf},
                               set_items, task="ner")
    model_dir = out / f"{name}-{'crf' if crf else 'softmax'}"
    start = time.perf_counter()
    result = lifecycle.train(ner, ner.Source(str(base / train)), str(model_dir), config,
                             valid=ner.Source(str(base / valid)), force=True)
    minutes = (time.perf_counter() - start) / 60
    scores = lifecycle.evaluate(ner, str(model_dir), ner.Source(str(base / test)))
    training = result["training"]
    return {"dataset": name, "crf": crf, "test_f1": round(scores["f1"], 4),
            "test_precision": round(scores["precision"], 4),
            "test_recall": round(scores["recall"], 4),
            "test_token_accuracy": round(scores["accuracy"], 4),
            "valid_f1": round(result["validation"]["f1"], 4),
            "epochs": training["epochs"], "best_epoch": training["best_epoch"],
            "train_minutes": round(minutes, 1),
            "tokens_per_s": training["train_tokens_per_second"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(CORPORA))
    parser.add_argument("--crf", choices=["on", "off", "both"], default="both")
    parser.add_argument("--set", dest="set_items", action="append", default=[])
    args = parser.parse_args()
    setup_logging()
    names = [args.only] if args.only else list(CORPORA)
    crfs = {"on": [True], "off": [False], "both": [True, False]}[args.crf]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            for crf in crfs:
                results.append(run(name, crf, args.set_items, Path(tmp)))
                print(json.dumps(results[-1]), flush=True)
    print()
    print(f"{'dataset':<11}{'crf':>5}{'test F1':>9}{'P':>8}{'R':>8}{'epochs':>8}{'minutes':>9}")
    for r in results:
        print(f"{r['dataset']:<11}{'on' if r['crf'] else 'off':>5}{r['test_f1']:>9.4f}"
              f"{r['test_precision']:>8.4f}{r['test_recall']:>8.4f}{r['epochs']:>8}"
              f"{r['train_minutes']:>9}")


if __name__ == "__main__":
    main()
