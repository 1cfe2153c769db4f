"""TensorBoard logs of a training run, in MODEL_DIR/logs/ (written into MODEL_DIR.partial
and moved with it): train/ and validation/, as Keras's TensorBoard callback lays them out,
so that the two curves of one value share a chart.

    per epoch (step: the epoch, from 1)     epoch_loss, epoch_<metric>, epoch_learning_rate,
                                            epoch_gradient_norm (train only)
    every STEPS steps (step: the optimizer's iterations)
                                            batch_loss, batch_<metric> (the epoch's running
                                            means, as Keras logs them), batch_learning_rate,
                                            batch_gradient_norm

    pip install tensorboard; tensorboard --logdir MODEL_DIR/logs

Written with tf.summary.write and the scalars plugin's metadata, which need TensorFlow only:
tf.summary.scalar, and so Keras's TensorBoard callback, need the tensorboard package, which
seqkit does not depend on. Keras's callback also counts batches from 0 in every `fit`,
whereas the optimizer's iterations come back with a checkpoint: a resumed run's points go
on from the interrupted run's, in new event files of the same folders.

The gradient norm is the global L2 norm of the loss's gradient over all trainable weights
(before clipping) on one fixed probe batch (the first batch of epoch 1), with dropout off:
one extra forward and backward pass every STEPS steps, no change to Keras's train step, and
no random draws, so a resumed run still ends with the uninterrupted run's weights. On a
fixed batch the curve shows the weights changing, not batch-to-batch noise.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from seqkit.callbacks import EPOCH_FIGURES

log = logging.getLogger("seqkit")

LOGS_DIR = "logs"
STEPS = 50  # steps between batch-level points


def probe_batch(data):
    """The first batch of `data`'s first epoch (Batches or Windows), without moving on the
    epoch it will train next."""
    epoch = data.epoch
    data.epoch = 0
    try:
        return next(iter(data.dataset()))
    finally:
        data.epoch = epoch


class TensorBoardLogs(keras.callbacks.Callback):
    """Writes the scalars above into `directory` (MODEL_DIR.partial/logs)."""

    def __init__(self, directory: Path, probe=None):
        super().__init__()
        self.directory, self.probe = Path(directory), probe
        self.writers: dict[str, tf.summary.SummaryWriter] = {}
        self.metadata = tf.compat.v1.SummaryMetadata()
        self.metadata.plugin_data.plugin_name = "scalars"
        self.norm_function, self.step = None, 0

    def _write(self, run: str, values: dict, step: int) -> None:
        if run not in self.writers:
            self.writers[run] = tf.summary.create_file_writer(str(self.directory / run))
        with self.writers[run].as_default():
            for tag, value in values.items():
                try:
                    value = float(value)
                except (TypeError, ValueError):
                    continue
                tf.summary.write(tag, tf.constant(value, tf.float32), step=step,
                                 metadata=self.metadata)

    def gradient_norm(self) -> float | None:
        if self.probe is None:
            return None
        try:
            if self.norm_function is None:
                self.norm_function = _norm_function(self.model, self.probe)
            return float(self.norm_function())
        except Exception as exc:  # a picture of training must not stop it
            log.warning("no gradient norm in the TensorBoard logs (%s: %s)",
                        type(exc).__name__, str(exc).strip().splitlines()[0][:200])
            self.probe = None
            return None

    def on_train_begin(self, logs=None):
        self.step = int(np.asarray(self.model.optimizer.iterations))

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self.step % STEPS:
            return
        values = {f"batch_{name}": value for name, value in (logs or {}).items()}
        values["batch_learning_rate"] = float(np.asarray(self.model.optimizer.learning_rate))
        norm = self.gradient_norm()
        if norm is not None:
            values["batch_gradient_norm"] = norm
        self._write("train", values, self.step)

    def on_epoch_end(self, epoch, logs=None):
        logs = {k: v for k, v in (logs or {}).items() if k not in EPOCH_FIGURES}
        train = {f"epoch_{k}": v for k, v in logs.items() if not k.startswith("val_")}
        norm = self.gradient_norm()
        if norm is not None:
            train["epoch_gradient_norm"] = norm
        self._write("train", train, epoch + 1)
        valid = {f"epoch_{k[4:]}": v for k, v in logs.items() if k.startswith("val_")}
        if valid:
            self._write("validation", valid, epoch + 1)
        for writer in self.writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


def _norm_function(model: keras.Model, batch):
    x, y, weight = keras.utils.unpack_x_y_sample_weight(batch)

    @tf.function
    def norm():
        with tf.GradientTape() as tape:
            predicted = model(x, training=False)
            loss = model.compute_loss(x=x, y=y, y_pred=predicted, sample_weight=weight,
                                      training=False)
        weights = model.trainable_weights
        grads = [g for g in tape.gradient(loss, weights) if g is not None]
        return tf.linalg.global_norm(grads)

    return norm
