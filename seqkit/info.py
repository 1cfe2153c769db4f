"""`seqkit info MODEL_DIR`: what a model directory holds, read from its files alone.

Task and seqkit version (config.toml), cell and sizes (config.toml), vocabulary and label
sizes (preprocessor.json), training data, time and validation scores (metrics.json), the
parameter count (the weights inside model.keras, read with h5py) and the files present.
No TensorFlow or Keras: it answers in a fraction of a second. What an older model
directory did not record is None (shown as "unknown").

    seqkit info runs/sentiment_en
    seqkit info runs/sentiment_en --json | jq .parameters
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from seqkit import artifacts
from seqkit.errors import ModelError, first_line

# config keys that describe the network's shape (the others are training and data keys)
MODEL_KEYS = ("cell", "units", "layers", "bidirectional", "dropout", "pooling", "attention",
              "attention_units", "encoder", "image_size", "crf", "char_features",
              "tie_embeddings", "level")
ONNX_FILES = ("model.onnx", "encoder.onnx", "decoder.onnx", "crf.npz")
UNKNOWN = "unknown"


def gather(model_dir: str | Path) -> dict:
    """Everything `seqkit info` shows, as one JSON-ready dict."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError("no such model directory" if not path.exists() else
                         "is a file; expected a model directory", path=str(path))
    missing = [name for name in artifacts.REQUIRED if not (path / name).is_file()]
    if missing:
        raise ModelError(f"not a complete seqkit model directory: missing {', '.join(missing)}",
                         path=str(path))
    config = _read(path, artifacts.CONFIG_FILE, tomllib.loads)
    pre = _read(path, artifacts.PREPROCESSOR_FILE, json.loads)
    metrics = {}
    if (path / artifacts.METRICS_FILE).is_file():
        metrics = _read(path, artifacts.METRICS_FILE, json.loads)
    meta = config.pop("seqkit", {}) if isinstance(config.get("seqkit"), dict) else {}
    training = metrics.get("training") if isinstance(metrics.get("training"), dict) else {}
    keras_meta, parameters = model_archive(path / artifacts.MODEL_FILE)
    return {
        "path": str(path),
        "task": meta.get("task") or pre.get("task"),
        "seqkit_version": meta.get("version"),
        "keras_version": keras_meta.get("keras_version"),
        "saved": keras_meta.get("date_saved"),
        "model": _model(config, pre),
        "parameters": parameters,
        "vocabularies": vocabularies(pre),
        "labels": _labels(pre),
        "data": metrics.get("data"),
        "training": _training(training),
        "validation": _scalars(metrics.get("validation")),
        "files": files(path),
        "onnx": [name for name in ONNX_FILES if (path / name).is_file()],
    }


def _read(path: Path, name: str, parse) -> dict:
    try:
        data = parse((path / name).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, OSError) as exc:
        raise ModelError(f"damaged {name}: {first_line(exc)}", path=str(path)) from None
    if not isinstance(data, dict):
        raise ModelError(f"damaged {name}: not an object", path=str(path))
    return data


def _model(config: dict, pre: dict) -> dict:
    shape = {key: config[key] for key in MODEL_KEYS if key in config}
    if config.get("attention") != "bahdanau":  # only bahdanau has a size of its own
        shape.pop("attention_units", None)
    # the size of an embedding the model has: bigrams and characters only with their vocabulary
    used = {"bigram_embedding_dim": bool(pre.get("bigrams")),
            "char_embedding_dim": bool(pre.get("chars")),
            "case_embedding_dim": bool(pre.get("shapes"))}
    shape.update({key: value for key, value in config.items()
                  if key.endswith("embedding_dim") and used.get(key, True)})
    return shape


def model_archive(path: Path) -> tuple[dict, int | None]:
    """model.keras's metadata and parameter count (None when it cannot be read): the sizes
    of the layers' variables in its model.weights.h5, which is what Keras's count_params()
    adds up (optimizer variables are stored beside them, under optimizer/)."""
    import h5py

    try:
        with zipfile.ZipFile(path) as archive:
            meta = json.loads(archive.read("metadata.json"))
            weights = archive.read("model.weights.h5")
        with h5py.File(io.BytesIO(weights), "r") as h5:
            sizes = []
            for group in ("layers", "vars"):
                if group in h5:
                    h5[group].visititems(lambda _, item: sizes.append(item.size)
                                         if isinstance(item, h5py.Dataset) else None)
        return meta if isinstance(meta, dict) else {}, int(sum(sizes))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return {}, None


def vocabularies(pre: dict, prefix: str = "") -> dict[str, int]:
    """The size of every vocabulary in preprocessor.json, by where it sits ("vocab",
    "bigrams", "source.vocab", ...): a Vocabulary is saved as {"tokens": [...]}."""
    out = {}
    for key, value in pre.items():
        if isinstance(value, dict):
            if isinstance(value.get("tokens"), list):
                out[prefix + key] = len(value["tokens"])
            else:
                out.update(vocabularies(value, f"{prefix}{key}."))
    return out


def _labels(pre: dict) -> dict | None:
    """sentiment's classes or ner's tags (with the entity types they make)."""
    if isinstance(pre.get("labels"), list):
        return {"classes": len(pre["labels"]), "names": pre["labels"]}
    if isinstance(pre.get("tags"), list):
        types = sorted({tag.split("-", 1)[1] for tag in pre["tags"]
                        if isinstance(tag, str) and "-" in tag})
        return {"tags": len(pre["tags"]), "scheme": pre.get("scheme"), "entity_types": types}
    return None


def _training(summary: dict) -> dict:
    keys = ("epochs", "best_epoch", "monitor", "best", "train_seconds", "train_tokens",
            "train_tokens_per_second")
    return {key: summary.get(key) for key in keys}


def _scalars(scores: Any) -> dict:
    """The validation scores that are single numbers (not per class or per type)."""
    if not isinstance(scores, dict):
        return {}
    return {key: value for key, value in scores.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def files(path: Path) -> list[dict]:
    return [{"name": item.name + ("/" if item.is_dir() else ""),
             "bytes": item.stat().st_size if item.is_file() else _tree_size(item)}
            for item in sorted(path.iterdir())]


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def format_info(info: dict) -> str:
    """The report `seqkit info` prints."""
    def value(v) -> str:
        if v is None:
            return UNKNOWN
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.2f}" if abs(v) >= 10 else f"{v:.4f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = [f"model        {info['path']}",
             f"task         {value(info['task'])}",
             f"written by   seqkit {value(info['seqkit_version'])}, Keras "
             f"{value(info['keras_version'])}, {value(info['saved'])}",
             "network      " + (", ".join(f"{k} {v:g}" if isinstance(v, float) else
                                          f"{k} {value(v)}" for k, v in info["model"].items())
                                or UNKNOWN),
             f"parameters   {value(info['parameters'])}",
             "vocabulary   " + (", ".join(f"{k} {value(v)}"
                                          for k, v in info["vocabularies"].items()) or "none")]
    labels = info["labels"]
    if labels and "classes" in labels:
        lines.append(f"labels       {labels['classes']}: {', '.join(map(str, labels['names']))}")
    elif labels:
        types = ", ".join(labels["entity_types"]) or "none"
        lines.append(f"tags         {labels['tags']} ({value(labels['scheme'])}), "
                     f"entity types: {types}")
    lines += _data_lines(info["data"])
    t = info["training"]
    seconds = t["train_seconds"]
    if t["epochs"] is None:
        lines += [f"training     {UNKNOWN}", f"best epoch   {UNKNOWN}"]
    else:
        lines.append(f"training     {value(t['epochs'])} epochs in "
                     f"{_duration(seconds) if seconds is not None else UNKNOWN}, "
                     f"{value(t['train_tokens'])} tokens an epoch, "
                     f"{_rate(t['train_tokens_per_second'])} tokens/s")
        lines.append(f"best epoch   {value(t['best_epoch'])} ({value(t['monitor'])} "
                     f"{value(t['best'])})")
    scores = info["validation"]
    lines.append("validation   " + (", ".join(f"{k} {value(v)}" for k, v in scores.items())
                                    or UNKNOWN))
    lines.append("files")
    width = max(len(f["name"]) for f in info["files"]) if info["files"] else 0
    lines += [f"  {f['name']:<{width}}  {_size(f['bytes']):>9}" for f in info["files"]]
    lines.append("onnx graphs  " + (", ".join(info["onnx"]) or
                                    "none (predict uses Keras; `seqkit TASK export` writes them)"))
    return "\n".join(lines)


def _data_lines(data: Any) -> list[str]:
    if not isinstance(data, dict):
        return [f"train data   {UNKNOWN}"]
    lines = []
    for role in ("train", "valid"):
        part = data.get(role)
        if not isinstance(part, dict):
            text = UNKNOWN
        else:
            where = ", ".join(f"{k} {v}" for k, v in part.get("source", {}).items())
            if part.get("held_out"):
                where = "held out from the training data"
            examples = part.get("examples")
            text = where + (f" ({examples:,} examples)" if isinstance(examples, int) else "")
        lines.append(f"{role} data   {text}")
    return lines


def _rate(value: Any) -> str:
    return f"{value:,.0f}" if isinstance(value, (int, float)) else UNKNOWN


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)
