"""The one fit loop every task uses (its batches come from seqkit.batching).

fit() adds what a long RNN training run needs on top of `model.fit`: early stopping on a
named metric with the best weights restored, gradient clipping (set on the optimizer),
a checkpoint after every epoch (model + optimizer state + early-stopping state), and
--resume from that checkpoint. Progress goes to stderr, never stdout.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np

from seqkit import config as configlib
from seqkit import distribute, progress, summaries
from seqkit.callbacks import TimeLimit, _EpochLog, _History, _Progress
from seqkit.errors import ConfigError

log = logging.getLogger("seqkit")

CHECKPOINT_DIR = "checkpoints"
LAST = "last.keras"  # checkpoints written before state.json named its files
BEST = "best.weights.h5"
STATE = "state.json"


@dataclass
class TrainSpec(configlib.Training):
    """The fit loop's settings: config.Training's keys, taken from a task's Config."""

    @classmethod
    def from_config(cls, config) -> "TrainSpec":
        return cls(**{f.name: getattr(config, f.name) for f in fields(configlib.Training)})


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow so that a run can be repeated."""
    keras.utils.set_random_seed(seed)


def current_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """The learning rate now (float() does not take a distributed variable)."""
    return float(np.asarray(optimizer.learning_rate))


def make_optimizer(spec: TrainSpec) -> keras.optimizers.Optimizer:
    # Clipping guards RNNs against exploding gradients; 0 turns it off. Keras clips each
    # weight's gradient on its own (the recipes' figures were measured so), not the global norm.
    return keras.optimizers.Adam(learning_rate=spec.learning_rate,
                                 clipnorm=spec.clipnorm if spec.clipnorm > 0 else None,
                                 use_ema=spec.ema > 0, ema_momentum=spec.ema or 0.99)


class Monitor(keras.callbacks.Callback):
    """Early stopping on one monitored value with the best epoch's weights restored at the
    end, and, with `lr_decay` < 1, the learning rate cut after every epoch with no better value.

    Its whole state is a dict of our own (`state`), saved with each checkpoint and given back
    on --resume, rather than the undocumented attributes of Keras's EarlyStopping and
    ReduceLROnPlateau, whose rules it follows: an epoch is better when it beats the best so
    far; a cut needs a gain of more than PLATEAU_DELTA (ReduceLROnPlateau's min_delta, with
    which the recipes' figures were measured), against the value at the last such gain.

    Epochs count as "no better" only once the monitor has moved from its first value. A
    tagger's entity F1 stays exactly 0 for the first epochs on a small set while it still
    learns to predict anything but O; counting those epochs halved the rate and stopped
    training before it began. Until the value first changes, ties count as improvements.
    """

    PLATEAU_DELTA = 1e-4

    def __init__(self, monitor: str, mode: str, patience: int, lr_decay: float = 1.0,
                 state: dict | None = None, best_weights: list | None = None):
        super().__init__()
        self.monitor, self.patience, self.lr_decay = monitor, patience, lr_decay
        self.sign = 1.0 if mode == "max" else -1.0
        self.state = dict(state) if state else {
            "best": None, "best_epoch": 0, "wait": 0, "moved": False, "plateau_best": None}
        self.best_weights = best_weights

    def _better(self, value: float, reference: float | None, delta: float = 0.0) -> bool:
        if reference is None or not self.state["moved"]:
            return True
        return self.sign * (value - reference) > delta

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        optimizer = self.model.optimizer
        logs["learning_rate"] = current_rate(optimizer)
        if self.monitor not in logs:
            raise ConfigError(f"the monitored value {self.monitor!r} is not among this "
                              f"epoch's logs: {', '.join(sorted(logs))}")
        value, state = float(logs[self.monitor]), self.state
        if state["best"] is not None and value != state["best"]:
            state["moved"] = True
        if self.lr_decay < 1:
            if self._better(value, state["plateau_best"], self.PLATEAU_DELTA):
                state["plateau_best"] = value
            else:
                optimizer.learning_rate = current_rate(optimizer) * self.lr_decay
        state["wait"] += 1
        if self._better(value, state["best"]):
            state.update(best=value, best_epoch=epoch, wait=0)
            self.best_weights = self.model.get_weights()
        elif state["wait"] >= self.patience and epoch > 0:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    @property
    def done(self) -> bool:
        """Patience was used up before the run was stopped."""
        return self.state["wait"] >= self.patience and self.state["best"] is not None


class _Checkpoint(keras.callbacks.Callback):
    """After each epoch: the whole model with its optimizer state (last-N.keras), the best
    weights so far (best-N.weights.h5, N the epoch they come from), and state.json, which
    names both files and holds the monitor's state and every random generator's position.
    state.json is written last and atomically: it is the commit, so a run killed at any
    moment resumes from one consistent epoch; files it does not name are removed."""

    def __init__(self, directory: Path, monitor: Monitor, history: list,
                 best_file: str | None = None):
        super().__init__()
        self.directory, self.monitor, self.history = directory, monitor, history
        self.best_file = best_file

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({k: float(v) for k, v in (logs or {}).items()})
        if self.monitor.state["best_epoch"] == epoch:
            self.best_file = f"best-{epoch + 1}.weights.h5"
            _atomic(self.directory / self.best_file, self.model.save_weights)
        last = f"last-{epoch + 1}.keras"
        _atomic(self.directory / last, self.model.save)
        state = {"epochs_done": epoch + 1, "monitor": self.monitor.state,
                 "history": self.history, "last": last, "best": self.best_file,
                 # Keras saves the optimizer with its initial rate, not a decayed one
                 "learning_rate": current_rate(self.model.optimizer),
                 "seeds": seed_states(self.model)}
        _atomic(self.directory / STATE,
                lambda p: Path(p).write_text(json.dumps(state, indent=1)))
        clean_checkpoints(self.directory, state)


def seed_states(model: keras.Model) -> list[list[int]]:
    """Where each of the model's random generators (dropout masks) stands. Keras's model.save
    leaves them out, so without them a resumed run would draw other dropout masks."""
    return [np.asarray(v).tolist() for v in model.variables
            if v.name == "seed_generator_state"]


def restore_seed_states(model: keras.Model, states: list[list[int]]) -> None:
    variables = [v for v in model.variables if v.name == "seed_generator_state"]
    if len(variables) != len(states):
        raise ConfigError(f"the checkpoint holds {len(states)} random generator states, the "
                          f"model has {len(variables)}: it was not written by this model")
    for variable, value in zip(variables, states):
        variable.assign(np.asarray(value, dtype=variable.dtype))


def clean_checkpoints(directory: Path, state: dict | None) -> None:
    """Remove what a checkpoint directory holds beyond the files `state` names (older
    epochs, temp files of a write that was killed)."""
    keep = {STATE} | ({state.get("last", LAST), state.get("best") or BEST} if state else set())
    for path in Path(directory).iterdir():
        if path.name not in keep:
            path.unlink(missing_ok=True)


class _SwapAverage(keras.callbacks.SwapEMAWeights):
    """Puts the averaged weights in the model from each epoch's end (for the scores, early
    stopping and checkpoints) to the next epoch's start. A checkpoint therefore holds the
    average in the model and the raw weights in the optimizer, so a resumed run starts
    with them swapped.

    The one place seqkit relies on a Keras internal: SwapEMAWeights keeps whether the average
    is in the model in a private flag, which a resumed run must set. If a Keras release
    renames it, this refuses to train (and test_keras_internals_seqkit_relies_on fails)
    rather than resuming with the weights the wrong way round."""

    FLAG = "_ema_weights_in_model"

    def __init__(self, resumed: bool):
        super().__init__(swap_on_epoch=True)
        if not isinstance(getattr(self, self.FLAG, None), bool):
            raise RuntimeError(f"Keras {keras.__version__}'s SwapEMAWeights has no boolean "
                               f"{self.FLAG}: weight averaging (ema) cannot resume")
        setattr(self, self.FLAG, resumed)


def _use_xla(model: keras.Model, dist) -> None:
    """Compile the training step with XLA. On the CPU it fuses each RNN step's small
    operators (benchmarks/throughput.py); every new batch shape costs a compilation once,
    which the batches' lengths rounded to multiples of 8 keep to a few."""
    if dist is not None:
        log.warning("xla is not used with --distribute: training without it")
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.jit_compile = True
    if not model.jit_compile:
        log.warning("xla: %s", " ".join(str(w.message) for w in caught) or
                    "Keras refused jit_compile for this model")


def _atomic(path: Path, write: Callable[[str], object]) -> None:
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    write(str(tmp))
    os.replace(tmp, path)


def fit(model: keras.Model, train, valid, spec: TrainSpec,
        work_dir: Path, *, monitor: str, mode: str, resume: bool = False,
        custom_objects: dict | None = None, callbacks: Sequence[keras.callbacks.Callback] = (),
        tensorboard: bool = True) -> tuple[keras.Model, dict]:
    """Train `model` (compiled) and return it with the best weights and a summary.

    `train` and `valid` are Batches or Windows (anything with dataset(), tokens, epoch).
    `callbacks` (a learning-rate schedule, a score) run first at each epoch's end, so the
    metrics they log can be monitored, and before the checkpoint, so it saves what they changed.

    With resume, the model, optimizer and early-stopping state come from the checkpoint in
    `work_dir` and training goes on from the epoch after the last one completed. With
    tensorboard, scalars go to `work_dir`/logs (seqkit.summaries).
    """
    spec.validate()
    directory = Path(work_dir) / CHECKPOINT_DIR
    if valid is None and monitor.startswith("val_"):
        monitor = monitor[4:]
    dist = distribute.current()
    writes = dist is None or dist.chief  # on a cluster, only the chief writes
    if dist is not None:
        dist.prepare_fit(model, train.sample())
    else:
        model.optimizer.build(model.trainable_variables)
    if spec.xla:
        _use_xla(model, dist)
    saved, best_weights, history, initial_epoch = None, None, [], 0
    if writes:
        directory.mkdir(parents=True, exist_ok=True)
        if resume and (directory / STATE).exists():
            saved = json.loads((directory / STATE).read_text())
            clean_checkpoints(directory, saved)
            best_weights = _restore(model, directory, saved, custom_objects)
        else:
            clean_checkpoints(directory, None)  # a run killed before its first checkpoint
    if dist is not None:
        saved = _share_start(dist, model, train, saved)
    if saved is not None:
        history, initial_epoch = saved["history"], saved["epochs_done"]
        if "learning_rate" in saved:
            model.optimizer.learning_rate = saved["learning_rate"]
        log.info("resuming after epoch %d of %d", initial_epoch, spec.epochs)
    on_plateau = spec.lr_decay < 1 and spec.lr_decay_after == 0
    watcher = Monitor(monitor, mode, spec.patience, spec.lr_decay if on_plateau else 1.0,
                      state=_monitor_state(saved, history, monitor), best_weights=best_weights)
    schedule = [_lr_schedule(spec)] if spec.lr_decay < 1 and not on_plateau else []
    shown = [_Progress(spec.epochs, train, valid)] if progress.shown() else []
    # TensorBoard before the checkpoint: a run killed between the two logs an epoch that
    # its resumption logs again, rather than losing one
    logs = [] if not (tensorboard and writes) else [summaries.TensorBoardLogs(
        Path(work_dir) / summaries.LOGS_DIR, summaries.probe_batch(train))]
    checkpoint = [_Checkpoint(directory, watcher, history, saved and saved.get("best"))
                  ] if writes else [_History(history)]
    callbacks = [*callbacks, *schedule, watcher, *shown,
                 _EpochLog(spec.epochs, train.tokens, len(train)), *logs, *checkpoint]
    if spec.ema > 0:  # first, so that every other callback sees the averaged weights
        callbacks.insert(0, _SwapAverage(resumed=saved is not None))
    if spec.max_minutes > 0:
        callbacks.append(TimeLimit(spec.max_minutes))
    train.epoch = valid_epoch = initial_epoch
    if valid is not None:
        valid.epoch = valid_epoch
    done_early = saved is not None and watcher.done
    start = time.perf_counter()
    if initial_epoch < spec.epochs and not done_early:
        try:
            with contextlib.redirect_stdout(sys.stderr):  # Keras prints progress to stdout
                model.fit(train.dataset(), validation_data=valid.dataset() if valid else None,
                          epochs=spec.epochs, initial_epoch=initial_epoch, callbacks=callbacks,
                          shuffle=False, verbose=0)
        except KeyboardInterrupt:
            if (directory / STATE).exists():
                log.warning("stopped; the last finished epoch is kept in %s: run the same "
                            "command with --resume to go on", work_dir)
            raise
    elif best_weights is not None:
        model.set_weights(best_weights)
    seconds = time.perf_counter() - start
    if dist is not None and writes:
        model = dist.local_copy(model, custom_objects)
    # the tokens this call trained on (resumed epochs not counted; a history from before
    # epochs recorded their tokens counts whole epochs)
    tokens_run = sum(h.get("tokens", train.tokens) for h in history[initial_epoch:])
    summary = {
        "epochs": len(history),
        "best_epoch": watcher.state["best_epoch"] + 1,
        "monitor": monitor,
        "best": watcher.state["best"],
        "train_seconds": round(seconds, 2),
        "train_tokens": train.tokens,
        "train_tokens_per_second": round(tokens_run / seconds, 1)
        if tokens_run and seconds > 0 else None,
        "history": history,
    }
    return model, summary


def _restore(model: keras.Model, directory: Path, saved: dict,
             custom_objects: dict | None) -> list | None:
    """Put the checkpoint's last epoch into `model` (built, with its optimizer): weights,
    optimizer state and random generators; return the best epoch's weights, if kept."""
    last = keras.saving.load_model(directory / saved.get("last", LAST),
                                   custom_objects=custom_objects)
    target, source = _state_variables(model), _state_variables(last)
    if [v.shape for v in target] != [v.shape for v in source]:
        raise ConfigError(f"the checkpoint in {directory} was not written by this model")
    for variable, value in zip(target, source):
        variable.assign(np.asarray(value))
    if "seeds" in saved:
        restore_seed_states(model, saved["seeds"])
    best_file = directory / (saved.get("best") or BEST)
    if not best_file.exists():
        return None
    last.load_weights(best_file)  # a weights file holds the optimizer's variables too
    return last.get_weights()


def _state_variables(model: keras.Model) -> list:
    """What a checkpoint restores: the weights and the optimizer's variables."""
    return [*model.weights, *model.optimizer.variables]


def _share_start(dist, model: keras.Model, train, saved: dict | None) -> dict | None:
    """Start every worker where the chief starts: its weights, optimizer state and
    checkpoint state; and check that every worker made the same batches."""
    mine = {"batches": len(train), "tokens": train.tokens}
    start = dist.share({"saved": saved, **mine})
    if {k: start[k] for k in mine} != mine:
        raise ConfigError(
            f"{dist.name} made {mine['batches']} batches of {mine['tokens']} tokens from "
            f"its data, the chief {start['batches']} of {start['tokens']}: every worker "
            "must read the same files with the same options")
    dist.share_variables([*_state_variables(model),
                          *(v for v in model.variables if v.name == "seed_generator_state"
                            and all(v is not w for w in model.weights))])
    return start["saved"]


def _lr_schedule(spec: TrainSpec) -> keras.callbacks.Callback:
    """Times lr_decay every epoch after lr_decay_after, as Zaremba et al. anneal their LSTM
    LMs; it depends only on the epoch number, so a resumed run follows it exactly."""
    def rate(epoch: int, lr: float) -> float:  # epoch counts from 0
        return spec.learning_rate * spec.lr_decay ** max(0, epoch + 1 - spec.lr_decay_after)
    return keras.callbacks.LearningRateScheduler(rate)


def _monitor_state(saved: dict | None, history: list, monitor: str) -> dict | None:
    """The Monitor's state from a checkpoint's state.json (also one written before the
    Monitor existed, by EarlyStopping and ReduceLROnPlateau)."""
    if saved is None:
        return None
    if "monitor" in saved:
        return saved["monitor"]
    return {"best": saved["best"], "best_epoch": saved["best_epoch"], "wait": saved["wait"],
            "moved": len({h.get(monitor) for h in history}) > 1,
            "plateau_best": saved.get("plateau", {}).get("best")}
