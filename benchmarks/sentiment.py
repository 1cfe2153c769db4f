"""Sentiment benchmark: the default recipe on SST-2 (English) and ChnSentiCorp (Chinese).

    python benchmarks/sentiment.py [--only sst2|chnsenticorp] [--set key=value ...]

SST-2: train on glue/train.tsv, early stopping on glue/dev.tsv, accuracy on the labelled
glue/test.tsv. ChnSentiCorp: a fixed seeded 80/10/10 split. For each, a plain hand-written
Keras script trains the same model on the same token ids and batch size (padded to one
fixed length, as such a script would) and the throughput ratio is printed.
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

from benchmarks.common import (DATASETS, EpochTimer, require, setup_logging,  # noqa: E402
                               steady_tokens_per_second)


def split_chnsenticorp(tmp: Path) -> tuple[Path, Path, Path]:
    import pandas as pd
    from sklearn.model_selection import train_test_split

    frame = pd.read_csv(require(DATASETS / "chnsenticorp_htl_zh" / "ChnSentiCorp_htl_all.csv"),
                        dtype=str, keep_default_na=False)
    frame = frame[frame["review"].str.strip() != ""]
    train, rest = train_test_split(frame, test_size=0.2, random_state=1234,
                                   stratify=frame["label"])
    valid, test = train_test_split(rest, test_size=0.5, random_state=1234,
                                   stratify=rest["label"])
    paths = []
    for name, part in (("train", train), ("valid", valid), ("test", test)):
        path = tmp / f"chnsenticorp_{name}.csv"
        part.to_csv(path, index=False)
        paths.append(path)
    return tuple(paths)


def baseline_keras(model_dir: Path, train_path: Path, valid_path: Path, epochs: int = 2) -> float:
    """Plain Keras: same layers, same ids, fixed-length padding, model.fit. Tokens/s."""
    import keras
    import numpy as np

    from seqkit.io import read_text_label
    from seqkit.tasks import sentiment

    loaded = sentiment.Predictor(str(model_dir))
    pre, cfg = loaded.pre, loaded.config
    texts, labels, _ = read_text_label(str(train_path))
    v_texts, v_labels, _ = read_text_label(str(valid_path))
    columns = pre.encode(texts, training=True)
    tokens = sum(len(s) for s in columns["tokens"])
    x = {k: keras.utils.pad_sequences(v, maxlen=pre.max_length, padding="post")
         for k, v in columns.items()}
    y = np.array([pre.label_index[label] for label in labels])
    vx = {k: keras.utils.pad_sequences(v, maxlen=pre.max_length, padding="post")
          for k, v in pre.encode(v_texts, training=True).items()}
    vy = np.array([pre.label_index[label] for label in v_labels])

    inputs = {k: keras.Input(shape=(None,), dtype="int32", name=k) for k in columns}
    h = keras.layers.Embedding(len(pre.vocab), cfg.embedding_dim, mask_zero=True)(
        inputs["tokens"])
    if "bigrams" in inputs:
        b = keras.layers.Embedding(len(pre.bigrams), cfg.bigram_embedding_dim)(inputs["bigrams"])
        h = keras.layers.Concatenate()([h, b])
    h = keras.layers.Dropout(cfg.dropout)(h)
    h = keras.layers.Bidirectional(keras.layers.LSTM(cfg.units, return_sequences=True))(h)
    h = keras.layers.Dropout(cfg.dropout)(h)
    h = keras.layers.GlobalMaxPooling1D()(h)
    out = keras.layers.Dense(len(pre.labels), activation="softmax")(h)
    model = keras.Model(inputs, out)
    model.compile(keras.optimizers.Adam(cfg.learning_rate, clipnorm=cfg.clipnorm),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    timer = EpochTimer()
    model.fit(x, y, batch_size=cfg.batch_size, epochs=epochs, validation_data=(vx, vy),
              callbacks=[timer], verbose=0)
    return steady_tokens_per_second(tokens, timer.seconds)


def run(name: str, train_path: Path, valid_path: Path, test_path: Path, set_items, out: Path,
        baseline: bool = True) -> dict:
    from seqkit import config as configlib, lifecycle
    from seqkit.tasks import sentiment

    config = configlib.resolve(sentiment.Config, Path("tasks/sentiment.toml"),
                               set_items=set_items, task="sentiment")
    model_dir = out / name
    start = time.perf_counter()
    result = lifecycle.train(sentiment, sentiment.Source(str(train_path)), str(model_dir),
                             config, valid=sentiment.Source(str(valid_path)), force=True)
    train_minutes = (time.perf_counter() - start) / 60
    test = lifecycle.evaluate(sentiment, str(model_dir), sentiment.Source(str(test_path)))
    print(json.dumps({"dataset": name, "test_accuracy": round(test["accuracy"], 4),
                      "train_minutes": round(train_minutes, 1)}), flush=True)
    history = result["training"]["history"]
    seqkit_tps = steady_tokens_per_second(result["training"]["train_tokens"],
                                          [h["seconds"] for h in history])
    base_tps = baseline_keras(model_dir, train_path, valid_path) if baseline else 0.0
    return {"dataset": name, "test_accuracy": round(test["accuracy"], 4),
            "test_macro_f1": round(test["macro_f1"], 4),
            "valid_accuracy": round(result["validation"]["accuracy"], 4),
            "epochs": len(history), "best_epoch": result["training"]["best_epoch"],
            "train_minutes": round(train_minutes, 1),
            "seqkit_tokens_per_s": round(seqkit_tps), "keras_tokens_per_s": round(base_tps),
            "throughput_ratio": round(seqkit_tps / base_tps, 2) if base_tps else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=["sst2", "chnsenticorp"])
    parser.add_argument("--set", dest="set_items", action="append", default=[])
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="Skip the plain-Keras throughput baseline (quality only).")
    args = parser.parse_args()
    setup_logging()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.only in (None, "sst2"):
            glue = require(DATASETS / "sst2_en_sentiment" / "glue")
            results.append(run("sst2", glue / "train.tsv", glue / "dev.tsv", glue / "test.tsv",
                               args.set_items, tmp, args.baseline))
            print(json.dumps(results[-1]), flush=True)
        if args.only in (None, "chnsenticorp"):
            train, valid, test = split_chnsenticorp(tmp)
            results.append(run("chnsenticorp", train, valid, test, args.set_items, tmp,
                               args.baseline))
            print(json.dumps(results[-1]), flush=True)
    print()
    print(f"{'dataset':<14}{'test acc':>9}{'macro-F1':>9}{'epochs':>7}{'minutes':>8}"
          f"{'seqkit tok/s':>13}{'keras tok/s':>12}{'ratio':>7}")
    for r in results:
        print(f"{r['dataset']:<14}{r['test_accuracy']:>9.4f}{r['test_macro_f1']:>9.4f}"
              f"{r['epochs']:>7}{r['train_minutes']:>8}{r['seqkit_tokens_per_s']:>13,}"
              f"{r['keras_tokens_per_s']:>12,}{r['throughput_ratio']:>7}")


if __name__ == "__main__":
    main()
