"""The model directory, the unit users move around:

    MODEL_DIR/model.keras         Keras model (loaded with safe_mode=True)
    MODEL_DIR/preprocessor.json   vocabularies, label set, lengths: everything outside the graph
    MODEL_DIR/config.toml         the resolved config, plus a [seqkit] table naming the task
    MODEL_DIR/metrics.json        validation metrics and the training summary
    MODEL_DIR/curves.png          loss and the monitored metric per epoch (seqkit.plots)
    MODEL_DIR/logs/               TensorBoard logs, unless --no-tensorboard (seqkit.summaries)

Training works in MODEL_DIR.partial/ (which also holds the checkpoints that --resume uses)
and renames it to MODEL_DIR only once everything is written, so a crash never leaves a
half-written model under the final name.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from seqkit import __version__
from seqkit import config as configlib
from seqkit.errors import ConfigError, ModelError, first_line

MODEL_FILE = "model.keras"
PREPROCESSOR_FILE = "preprocessor.json"
CONFIG_FILE = "config.toml"
METRICS_FILE = "metrics.json"
REQUIRED = (MODEL_FILE, PREPROCESSOR_FILE, CONFIG_FILE)
# the modules whose Keras layers a saved model may hold
LAYER_MODULES = ("seqkit.backbones", "seqkit.crf", "seqkit.encoders", "seqkit.seq2seq")


def partial_dir(out_dir: str | Path) -> Path:
    out = Path(out_dir)
    return out.with_name(out.name + ".partial")


@contextlib.contextmanager
def training_lock(out_dir: str | Path) -> Iterator[None]:
    """Hold `.NAME.lock` beside MODEL_DIR while a run trains into it, so that a second run
    into the same directory refuses at once instead of deleting the first one's work. The
    kernel releases the lock when the process dies, kill -9 included; the file is removed
    at the end (and a file another process removed meanwhile is taken again)."""
    import fcntl

    out = Path(out_dir)
    path = out.with_name(f".{out.name}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        blocking = next((p for p in out.parents if p.exists() and not p.is_dir()), None)
        reason = f"{blocking} is a file" if blocking else exc.strerror or first_line(exc)
        raise ConfigError(f"cannot create the folder of -o {out}: {reason}") from None
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError(f"cannot write beside -o {out} ({path.name}): "
                              f"{exc.strerror or first_line(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise ConfigError(f"another seqkit process (pid {holder}) is training into {out}; "
                              "wait for it to finish or choose another -o") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before us removed this file as we opened it: try again
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def resumable(out_dir: str | Path) -> Path | None:
    """The working directory of an interrupted run into `out_dir` that finished an epoch
    (a run stopped before that has nothing worth keeping: it starts over)."""
    work = partial_dir(out_dir)
    if all((work / name).is_file() for name in (CONFIG_FILE, PREPROCESSOR_FILE,
                                                 "checkpoints/state.json")):
        return work
    return None


def check_output(out_dir: str | Path, *, force: bool = False) -> None:
    """Refuse, before any work, a new run into a finished or interrupted model directory
    (unless forced)."""
    out, work = Path(out_dir), partial_dir(out_dir)
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it or choose "
                          "another -o")
    # a run that stopped before its first checkpoint (e.g. on bad data) holds nothing worth
    # keeping; one with a checkpoint is only replaced on request
    if (work / "checkpoints" / "state.json").exists() and not force:
        raise ConfigError(f"{work} holds an interrupted run; pass --resume to continue it or "
                          "--force to start over")


def start_run(out_dir: str | Path, *, force: bool = False) -> Path:
    """Check that a new training run may write `out_dir` and return its (new) working
    directory."""
    check_output(out_dir, force=force)
    work = partial_dir(out_dir)
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    return work


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def save(work_dir: Path, *, task: str, model, preprocessor: dict, config,
         metrics: dict | None = None) -> None:
    """Write the model files into the working directory (call finish_run after)."""
    work_dir = Path(work_dir)
    model.save(work_dir / MODEL_FILE)
    save_setup(work_dir, task=task, preprocessor=preprocessor, config=config)
    write_json(work_dir / METRICS_FILE, metrics or {})


def save_setup(work_dir: Path, *, task: str, preprocessor: dict, config) -> None:
    """Write the preprocessor and config before training, so that --resume finds them."""
    write_json(Path(work_dir) / PREPROCESSOR_FILE, {"task": task, **preprocessor})
    (Path(work_dir) / CONFIG_FILE).write_text(configlib.dumps(config, task, __version__),
                                              encoding="utf-8")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def read_config(directory: Path, task: str, config_cls):
    path = Path(directory) / CONFIG_FILE
    return configlib.from_dict(config_cls, configlib.read_recipe(path, task), str(path))


def complete(work_dir: Path, out_dir: str | Path, *, task: str, model, preprocessor: dict,
             config, metrics: dict) -> Path:
    """Save a trained model into the working directory and move it to its final name."""
    import logging

    save(work_dir, task=task, model=model, preprocessor=preprocessor, config=config,
         metrics=metrics)
    out = finish_run(work_dir, out_dir)
    logging.getLogger("seqkit").info("model written to %s", out_dir)
    return out


def resume_config(work_dir: Path, task: str, given,
                  may_change: tuple[str, ...] = ("epochs", "max_minutes")):
    """The interrupted run's config; only the `may_change` keys (epochs, the time limit) may
    differ from it (a key left at its default counts as not given)."""
    saved = read_config(work_dir, task, type(given))
    defaults = type(given)()
    changed = [k for k, v in asdict(given).items()
               if k not in may_change and v != getattr(saved, k) and v != getattr(defaults, k)]
    if changed:
        raise ConfigError(f"--resume continues the run as it was configured; these options "
                          f"differ from it: {', '.join(changed)}")
    for key in may_change:
        setattr(saved, key, getattr(given, key))
    return saved


def finish_run(work_dir: Path, out_dir: str | Path) -> Path:
    """Move the finished directory to its final name, then drop its checkpoints: until the
    move, an interrupted run can still be resumed from them."""
    work, out = Path(work_dir), Path(out_dir)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(work, out)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


@dataclass
class Loaded:
    path: Path
    task: str
    config: Any
    preprocessor: dict
    metrics: dict = field(default_factory=dict)
    model: Any = None


class Handle:
    """A loaded model directory as predictors use it: model, config, preprocessor, batch size.
    `backend` onnx runs the directory's ONNX graph (no TensorFlow), keras its model.keras;
    None: onnx when there is a graph."""

    def __init__(self, model_dir: str | Path, task: str, config_cls, preprocessor_cls,
                 batch_size: int = 256, backend: str | None = None):
        from seqkit import graphs

        self.backend = graphs.choose_backend(model_dir, backend)
        loaded = load(model_dir, task, config_cls, backend=self.backend)
        self.model, self.config = loaded.model, loaded.config
        try:
            self.pre = preprocessor_cls.from_json(loaded.preprocessor)
        except KeyError as exc:
            raise ModelError(f"damaged {PREPROCESSOR_FILE}: it has no {exc.args[0]!r}",
                             path=str(model_dir)) from None
        except (TypeError, ValueError, AttributeError, IndexError) as exc:
            raise ModelError(f"damaged {PREPROCESSOR_FILE}: {first_line(exc)}",
                             path=str(model_dir)) from None
        self.batch_size = batch_size


def load(model_dir: str | Path, task: str, config_cls, *,
         custom_objects: dict | None = None, backend: str = "keras") -> Loaded:
    """Load and check a model directory; any problem is a one-line ModelError. With backend
    onnx the model is its ONNX graph on ONNX Runtime, and TensorFlow is not imported."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelError("no such model directory", path=str(path))
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise ModelError(f"not a complete seqkit model directory: missing {', '.join(missing)}",
                         path=str(path))
    try:
        raw = tomllib.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
        preprocessor = json.loads((path / PREPROCESSOR_FILE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"damaged model directory: {exc}", path=str(path)) from None
    meta = raw.pop(configlib.META_TABLE, {})
    saved_task = meta.get("task") or preprocessor.get("task")
    if saved_task != task:
        raise ModelError(f"this is a {saved_task!r} model, not a {task!r} model; use "
                         f"`seqkit {saved_task} ...`", path=str(path))
    try:
        config = configlib.from_dict(config_cls, raw, str(path / CONFIG_FILE))
    except ConfigError as exc:
        raise ModelError(f"saved config does not fit this seqkit {__version__} "
                         f"(made by {meta.get('version', '?')}): {exc.message}",
                         path=str(path)) from None
    metrics = {}
    if (path / METRICS_FILE).is_file():
        try:
            metrics = json.loads((path / METRICS_FILE).read_text(encoding="utf-8"))
        except ValueError:
            metrics = {}
    loaded = Loaded(path, task, config, preprocessor, metrics)
    if backend == "onnx":
        loaded.model = _load_graph(path, task)
        return loaded
    from seqkit.runtime import load_tensorflow

    load_tensorflow()
    import keras

    for module in LAYER_MODULES:  # their custom layers register themselves on import
        importlib.import_module(module)

    if not zipfile.is_zipfile(path / MODEL_FILE):
        raise ModelError(f"{MODEL_FILE} is damaged: not a .keras (zip) archive; truncated or "
                         "overwritten? Retrain, or copy the model directory again",
                         path=str(path))
    try:
        loaded.model = keras.saving.load_model(path / MODEL_FILE, compile=False,
                                               safe_mode=True,
                                               custom_objects=custom_objects)
    except Exception as exc:  # Keras raises many types for a corrupt archive
        reason = first_line(exc)
        raise ModelError(f"cannot load {MODEL_FILE}: {reason}",
                         path=str(path)) from None
    return loaded


def _load_graph(path: Path, task: str):
    from seqkit import graphs

    if not graphs.present(path):
        raise ModelError(f"no ONNX graphs: run `seqkit {task} export {path}` to write them "
                         "from model.keras, or use --backend keras", path=str(path))
    try:
        return graphs.load(path)
    except Exception as exc:  # ONNX Runtime raises its own types for a damaged graph
        reason = first_line(exc)
        raise ModelError(f"cannot load its ONNX graphs: {reason}",
                         path=str(path)) from None
