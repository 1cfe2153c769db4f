"""The fit loop's Keras callbacks that watch a run rather than shape it: the epoch line,
progress on stderr, the time limit, a task's own validation score, and the history of a
worker that keeps no checkpoint (seqkit.training.fit puts them in order)."""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable

import keras
import numpy as np

from seqkit import distribute, progress

log = logging.getLogger("seqkit")
# what _EpochLog adds to an epoch's logs: figures of the run, not of the model
EPOCH_FIGURES = ("seconds", "tokens")


class _EpochLog(keras.callbacks.Callback):
    """One line per epoch on the seqkit logger: metrics, time, tokens per second. The epoch's
    logs (and so the history) get its `seconds` and the `tokens` it trained on: an epoch a
    time limit cut short counts the batches it ran, at the epoch's mean tokens a batch."""

    def __init__(self, epochs: int, tokens: int, steps: int):
        super().__init__()
        self.epochs, self.tokens, self.steps = epochs, tokens, max(steps, 1)
        self.start, self.batches = 0.0, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.batches = time.perf_counter(), 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - self.start
        tokens = round(self.tokens * min(self.batches, self.steps) / self.steps)
        if logs is not None:
            logs["seconds"], logs["tokens"] = seconds, tokens
        shown = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items()
                         if k not in ("learning_rate", *EPOCH_FIGURES))
        log.info("epoch %d/%d: %s (%.1fs, %s tokens/s)", epoch + 1, self.epochs, shown,
                 seconds, f"{tokens / max(seconds, 1e-9):,.0f}")


class _Progress(keras.callbacks.Callback):
    """Training progress on stderr: on a terminal, Keras's Progbar with tokens per second;
    elsewhere a plain line every progress.every seconds (Keras's verbose=2 would say
    nothing until an epoch ends), and the same for validation. Tokens per second count
    the mean tokens of a batch, as the epoch line does."""

    def __init__(self, epochs: int, train, valid):
        super().__init__()
        self.epochs, self.train, self.valid = epochs, train, valid
        self.terminal = progress.is_terminal(sys.stderr)
        self.epoch, self.bar, self.meter = 0, None, None

    @staticmethod
    def _values(logs) -> dict[str, float]:
        """The batch's logs (running means), loss first."""
        names = sorted(logs or {}, key=lambda name: name != "loss")
        return {k: float(logs[k]) for k in names if np.ndim(logs[k]) == 0}

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, steps = epoch, len(self.train)
        self.meter = progress.Meter(f"epoch {epoch + 1}/{self.epochs} step", steps,
                                    rate_unit="tokens", scale=self.train.tokens / max(steps, 1),
                                    terminal=False)
        if self.terminal:
            sys.stderr.write(f"Epoch {epoch + 1}/{self.epochs}\n")
            self.bar = keras.utils.Progbar(steps, stateless_metrics=(), unit_name="step")

    def on_train_batch_end(self, batch, logs=None):
        values = self._values(logs)
        if self.bar is None:
            self.meter.advance(1, **values)
            return
        self.meter.count(1)
        self.bar.update(self.meter.done, [*values.items(), ("tokens/s", round(self.meter.rate()))])

    def on_epoch_end(self, epoch, logs=None):
        if self.bar is not None and self.meter.done < self.meter.total:  # a time limit
            self.bar.update(self.meter.done, finalize=True)

    def on_test_begin(self, logs=None):
        if not self.terminal and self.valid is not None:
            steps = len(self.valid)
            self.meter = progress.Meter(
                f"epoch {self.epoch + 1}/{self.epochs} validation step", steps,
                rate_unit="tokens", scale=self.valid.tokens / max(steps, 1))

    def on_test_batch_end(self, batch, logs=None):
        if not self.terminal and self.valid is not None:
            self.meter.advance(1, **self._values(logs))


class TimeLimit(keras.callbacks.Callback):
    """Stops training once `minutes` have passed (checked after every batch); the epoch in
    progress ends there and is validated and checkpointed as usual."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds, self.start, self.stopped = minutes * 60, 0.0, False

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if self.stopped:
            return
        expired = time.perf_counter() - self.start >= self.seconds
        if distribute.current() is not None:  # every worker stops after the same step
            expired = distribute.current().agree(expired)
        if expired:
            self.stopped = True
            self.model.stop_training = True
            log.info("time limit of %.1f minutes reached: stopping after this epoch's "
                     "validation", self.seconds / 60)


class ScoreCallback(keras.callbacks.Callback):
    """Puts `score(model)` into the epoch's logs as `val_NAME`, for early stopping on a
    score that Keras metrics cannot compute (e.g. entity F1 after decoding)."""

    def __init__(self, name: str, score: Callable[[keras.Model], float]):
        super().__init__()
        self.name, self.score = name, score

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:  # each worker scores alone, on the same weights
            logs[f"val_{self.name}"] = float(self.score(distribute.local_model(self.model)))


class _History(keras.callbacks.Callback):
    """Each epoch's logs, where no checkpoint keeps them (a worker that is not the chief)."""

    def __init__(self, history: list):
        super().__init__()
        self.history = history

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({k: float(v) for k, v in (logs or {}).items()})
