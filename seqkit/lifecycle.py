"""The one run lifecycle every task goes through: train, evaluate, predict.

A task module (seqkit/tasks/NAME.py) holds only what is its own, under the same names in
every task (the contract; `seqkit.tasks.TASKS` lists them):

    NAME                    the command's name (seqkit/cli.py's TASKS registers it)
    Config                  dataclass: config.Recipe (backbone and training keys) + its own keys
    Source                  dataclass: where data comes from (paths and how to read them)
    read(source, config, reference=None) -> data
                            the data, checked (errors name FILE:LINE); `reference` is the
                            training data when reading validation data, or the model's
                            Preprocessor when reading data for a trained model
    split(data, config) -> (train, valid)       the hold-out when no --valid is given
    Preprocessor            .fit(data, config), .to_json(), .from_json(dict): pure Python
    prepare(config, pre, train, valid, resume) -> Plan
                            the Keras side: the model to fit, its batches, its callbacks, what
                            it monitors, and how the fitted model becomes the saved one
    settle(config, data) -> config              optional: the config once the training data
                            is read (lm: the defaults for characters or for words)
    score(model, config, pre, data, **options) -> dict      validation and evaluate scores
    describe(scores) -> str                     the line logged after training
    export(model, config, pre, directory)       ONNX graphs (seqkit.graphs) beside
                            model.keras, written when training completes and by `seqkit TASK
                            export`; the Predictor then runs them without TensorFlow
    Predictor(model_dir, batch_size, **options) .predict(items, **options) -> records,
                            .chunks(input, chunk_size, **options) -> lists of items

Everything but `prepare`, `export` and the Predictor's Keras backend imports neither
TensorFlow nor Keras. Training holds a lock on MODEL_DIR, reads all data, seeds, splits and
fits or reloads the preprocessor first (bad data fails before anything is written, with
one line), then starts or resumes MODEL_DIR.partial, fits, scores, exports and renames the
directory into place (seqkit.artifacts).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import logging.handlers
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from seqkit import artifacts, progress
from seqkit.errors import ConfigError, SeqkitError, first_line

log = logging.getLogger("seqkit")


@dataclass
class Plan:
    """What `prepare` hands the fit loop."""
    model: Any  # the compiled keras.Model that is fitted
    train: Any  # training.Batches or Windows
    valid: Any
    monitor: str = "val_loss"
    mode: str = "min"
    callbacks: list = field(default_factory=list)
    finish: Callable[[Any], Any] = lambda model: model  # fitted model -> the saved model
    custom_objects: dict | None = None


def train(task, source, out_dir: str | Path, config, *, valid=None, force: bool = False,
          resume: bool = False, tensorboard: bool = True, distribute: str = "auto") -> dict:
    """Train `task` on `source` (and `valid`, else a hold-out) and write MODEL_DIR; returns
    {"validation": scores, "training": summary}, as written to metrics.json. MODEL_DIR also
    gets curves.png and, with `tensorboard`, logs/ (seqkit.summaries). `distribute` is a
    seqkit.distribute mode; on a cluster, a worker other than the chief trains alongside
    it, writes nothing and returns {}."""
    from seqkit import distribute as distribution, gpu
    from seqkit.runtime import load_tensorflow

    load_tensorflow()
    dist = distribution.start(distribute)  # before any other TensorFlow operation
    if distribution.gpus():
        for note in gpu.kernel_notes(config):
            log.warning(note)
    with _lost_workers(dist):
        if dist is not None and not dist.chief:
            return _train_worker(task, source, out_dir, config, valid=valid, dist=dist)
        with artifacts.training_lock(out_dir):
            return _train(task, source, out_dir, config, valid=valid, force=force,
                          resume=resume, tensorboard=tensorboard, dist=dist)


@contextlib.contextmanager
def _lost_workers(dist) -> Iterator[None]:
    """On a cluster, TensorFlow's errors for a worker that stopped answering, as one line."""
    if dist is None:
        yield
        return
    import tensorflow as tf

    try:
        yield
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.CancelledError, tf.errors.AbortedError) as exc:
        raise ConfigError(
            f"{dist.name} lost the other workers ({type(exc).__name__}: one stopped, or "
            "did not answer within the collective timeout): start the same command on "
            "every worker with --resume to go on from the last finished epoch") from exc


def _train(task, source, out_dir, config, *, valid, force: bool, resume: bool,
           tensorboard: bool = True, dist=None) -> dict:
    try:
        config, resume, work, data, valid_data, pre = _setup(task, source, out_dir, config,
                                                              valid, force, resume)
    except SeqkitError as exc:
        if dist is not None:  # the other workers are waiting for the setup
            dist.share({"error": str(exc)})
        raise
    if dist is not None:
        dist.share({"config": dataclasses.asdict(config), "preprocessor": pre.to_json(),
                    "resume": resume})
    plan, fitted, summary = _fit(task, config, pre, data, valid_data, resume, work,
                                 tensorboard)
    draw_curves(summary, work)
    model = plan.finish(fitted)
    scores = task.score(model, config, pre, valid_data)
    log.info("validation %s", task.describe(scores))
    export_graphs(task, model, config, pre, work)
    result = {"validation": scores, "training": summary,
              "data": data_summary(source, valid, plan)}
    artifacts.complete(work, out_dir, task=task.NAME, model=model, preprocessor=pre.to_json(),
                       config=config, metrics=result)
    return result


def _setup(task, source, out_dir, config, valid, force: bool, resume: bool):
    """The chief's part before training: the config (an interrupted run's, with --resume),
    the data, the preprocessor and the working directory."""
    if resume:  # the interrupted run's config, before reading (reading may depend on it)
        work = artifacts.resumable(out_dir)
        if work is None:  # also a job that always passes --resume, on its first start
            log.info("no finished epoch to resume in %s: starting from the beginning",
                     artifacts.partial_dir(out_dir))
            resume = False
        else:
            config = artifacts.resume_config(work, task.NAME, config)
    if not resume:
        artifacts.check_output(out_dir, force=force)
    with held_logs():
        data, valid_data = _read(task, source, valid, config)
        if not resume and hasattr(task, "settle"):
            config = task.settle(config, data)
        if resume:
            pre = task.Preprocessor.from_json(
                artifacts.read_json(work / artifacts.PREPROCESSOR_FILE))
        else:
            pre = task.Preprocessor.fit(data, config)
    if not resume:
        # bad data has failed by now, before anything is written
        work = artifacts.start_run(out_dir, force=force)
        artifacts.save_setup(work, task=task.NAME, preprocessor=pre.to_json(), config=config)
    return config, resume, work, data, valid_data, pre


def _read(task, source, valid, config):
    """The training and validation data (held out from the training data without `valid`)."""
    from seqkit.training import set_seed

    data = task.read(source, config)
    valid_data = task.read(valid, config, reference=data) if valid is not None else None
    set_seed(config.seed)
    if valid_data is None:
        data, valid_data = task.split(data, config)
    return data, valid_data


def _fit(task, config, pre, data, valid_data, resume: bool, work, tensorboard: bool):
    from seqkit import distribute as distribution, gpu
    from seqkit.training import TrainSpec, fit

    # the model, its optimizer and metrics
    with distribution.scope(), gpu.precision(config.mixed_precision):
        plan = task.prepare(config, pre, data, valid_data, resume)
    fitted, summary = fit(plan.model, plan.train, plan.valid, TrainSpec.from_config(config),
                          work, monitor=plan.monitor, mode=plan.mode, resume=resume,
                          callbacks=plan.callbacks, custom_objects=plan.custom_objects,
                          tensorboard=tensorboard)
    dist = distribution.current()
    if config.mixed_precision != "off" and (dist is None or dist.chief):
        fitted = gpu.float32_copy(fitted)
    return plan, fitted, summary


def _train_worker(task, source, out_dir, config, *, valid, dist) -> dict:
    """A worker other than the chief: it takes the chief's config and preprocessor, reads
    the same data, takes the same steps, and writes nothing."""
    setup = dist.share()
    if "error" in setup:
        raise ConfigError(f"the chief stopped before training: {setup['error']}")
    config = type(config)(**setup["config"])
    pre = task.Preprocessor.from_json(setup["preprocessor"])
    with held_logs():
        data, valid_data = _read(task, source, valid, config)
    _fit(task, config, pre, data, valid_data, setup["resume"], artifacts.partial_dir(out_dir),
         tensorboard=False)
    log.info("%s done: the chief writes %s", dist.name, out_dir)
    return {}


def data_summary(source, valid, plan: Plan) -> dict:
    """What the model was trained on, for `seqkit info`: how each file was read, and the
    examples fitted (valid None: held out from the training data)."""
    def part(src, batches) -> dict:
        fields = dataclasses.asdict(src) if dataclasses.is_dataclass(src) else {}
        lengths = getattr(batches, "lengths", None)  # lm's windows have no examples
        return {"source": {k: v for k, v in fields.items() if v not in (None, False)},
                "examples": len(lengths) if lengths is not None else None}

    held_out = {**part(None, plan.valid), "held_out": True}
    return {"train": part(source, plan.train),
            "valid": part(valid, plan.valid) if valid is not None else held_out}


@contextlib.contextmanager
def held_logs() -> Iterator[None]:
    """Hold the seqkit logger's lines while data is read and checked, and show them once
    that succeeds: a run that fails on its data prints one line, the error, not the notes
    that came before it. Reading takes seconds, so nothing waits long."""
    logger = logging.getLogger("seqkit")
    shown, propagate = logger.handlers[:], logger.propagate
    held = logging.handlers.MemoryHandler(capacity=1 << 30, flushLevel=logging.CRITICAL + 1)
    logger.handlers, logger.propagate = [held], False
    try:
        yield
    finally:
        logger.handlers, logger.propagate = shown, propagate
    for record in held.buffer:  # only on success: an exception skips this
        logger.handle(record)


def export_graphs(task, model, config, pre, directory: Path) -> None:
    """The task's ONNX graphs, so that predict needs no TensorFlow. A graph that does not
    convert must not throw away a finished training: the model is saved without graphs,
    with a warning naming the cause (predict then runs Keras; `seqkit TASK export` retries)."""
    from seqkit import graphs

    try:
        task.export(model, config, pre, directory)
    except Exception as exc:  # tf2onnx and ONNX raise many types
        graphs.remove(directory)  # a half-written set would be taken for a whole one
        reason = first_line(exc)
        log.warning("could not write the ONNX graphs (%s: %s); predict will use Keras",
                    type(exc).__name__, reason)


def draw_curves(summary: dict, directory: Path) -> None:
    """curves.png from the fit loop's history; a picture that cannot be drawn must not
    throw away a finished training, so that is a warning."""
    from seqkit import plots

    try:
        plots.training_curves(summary["history"], summary["monitor"],
                              Path(directory) / plots.CURVES_FILE, summary["best_epoch"])
    except Exception as exc:  # matplotlib raises many types
        log.warning("could not draw %s (%s: %s)", plots.CURVES_FILE, type(exc).__name__,
                    first_line(exc))


def evaluate(task, model_dir: str | Path, source, *, batch_size: int | None = None,
             load: dict | None = None, **options) -> dict:
    """Score the model in `model_dir` on the data of `source`."""
    predictor = task.Predictor(str(model_dir), batch_size, **(load or {}))
    with held_logs():
        data = task.read(source, predictor.config, reference=predictor.pre)
    with progress.counting("evaluate"):
        return task.score(predictor.model, predictor.config, predictor.pre, data,
                          batch_size=predictor.batch_size, **options)


def attention_setup(task, model_dir: str | Path, source):
    """For a task's attention pictures: its Keras-backed Predictor and the data of `source`,
    or None (with a warning) for a model without attention."""
    predictor = task.Predictor(str(model_dir), backend="keras")
    if predictor.config.attention == "none":
        log.warning("no attention pictures: this model has no attention (attention = none)")
        return None
    return predictor, task.read(source, predictor.config, reference=predictor.pre)


def predict(task, model_dir: str | Path, input_path: str = "-", *,
            batch_size: int | None = None, chunk_size: int | None = None,
            load: dict | None = None, read: dict | None = None, **options
            ) -> Iterator[list[dict]]:
    """Stream predictions: read INPUT in chunks and yield each chunk's records (one per
    input item, in order) as soon as they are ready."""
    predictor = task.Predictor(str(model_dir), batch_size, **(load or {}))
    return stream(predictor, input_path, chunk_size, read, **options)


def stream(predictor, input_path: str = "-", chunk_size: int | None = None,
           read: dict | None = None, **options) -> Iterator[list[dict]]:
    """What `predict` does, with a Predictor already loaded; progress counts the lines
    answered, after they are handed on, so that it never holds an answer back."""
    meter = progress.for_input("predict", input_path)
    for chunk in predictor.chunks(input_path, chunk_size, **(read or {})):
        yield predictor.predict(chunk, **options)
        if meter is not None:
            meter.advance(len(chunk))
    if meter is not None:
        meter.close()
