"""Gradient flow through time: how much the recurrent backbone's last state h_T still depends
on its input x_t at each step t = 1..T, measured as the L2 norm of dh_T/dx_t over the
feature axis, averaged over a batch.

Backpropagation through time multiplies one Jacobian dh_s/dh_(s-1) per step between t and T,
so this curve is how much of a learning signal from the end of a sequence reaches step t.

    seqkit gradients runs/lm_zh data/lm_zh.txt --length 100 -o flow.png

x is what the backbone reads (embeddings and any other features, computed by the layers
before it), h_T the last layer's state after step T; for a bidirectional stack, the forward
direction's final state (the backward direction reads x_T first). The gradient tape sums
h_T's components, so the measure is d(sum_j h_T,j)/dx_t. Every example is cut to its first
T steps, so no step is padding. The sub-model from x to h_T is the backbone's own layers,
called on x inside a tf.GradientTape (inference mode: no dropout).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from seqkit.errors import DataError, ModelError

log = logging.getLogger("seqkit")

# apply_backbone names its layers STACK_CELL_I or STACK_bidirectional_I
LAYER_NAME = re.compile(r"^(?P<stack>.+)_(?P<kind>bidirectional|simple_rnn|gru|lstm)_"
                        r"(?P<index>\d+)$")
PREFERRED = ("backbone", "encoder")  # the stack's name in every task but translation
DEFAULT_BATCH = 32
POOL = 4096  # examples whose lengths are looked at when choosing the batch
CHUNK = 256


@dataclass
class Backbone:
    """The recurrent stack of a model, found by its layer names."""
    model: Any  # the functional model whose graph holds the stack (translation: its encoder)
    layers: list  # the recurrent (or Bidirectional) layers, first to last
    name: str

    @property
    def bidirectional(self) -> bool:
        return hasattr(self.layers[-1], "forward_layer")

    @property
    def rnn(self):
        """The last layer's forward RNN: its final state is the h_T measured."""
        return getattr(self.layers[-1], "forward_layer", self.layers[-1])

    @property
    def cell(self) -> str:
        names = {"SimpleRNN": "simple_rnn", "GRU": "gru", "LSTM": "lstm"}
        return names.get(type(self.rnn).__name__, type(self.rnn).__name__)

    def describe(self) -> str:
        layers = f"{len(self.layers)} layer{'s' if len(self.layers) > 1 else ''}"
        side = ", forward direction of a bidirectional stack" if self.bidirectional else ""
        return f"{self.cell}, {layers} of {self.rnn.units} units{side}"


def find_backbone(model) -> Backbone:
    """The model's recurrent stack (in a nested model too); ModelError when it has none."""
    import keras

    stacks: dict[tuple[int, str], tuple[Any, list]] = {}

    def visit(owner) -> None:
        for layer in owner.layers:
            if isinstance(layer, keras.Model):
                visit(layer)
                continue
            match = LAYER_NAME.match(layer.name)
            if match and isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)):
                key = (id(owner), match["stack"])
                stacks.setdefault(key, (owner, []))[1].append((int(match["index"]), layer))

    visit(model)
    if not stacks:
        raise ModelError(f"the {model.name} model has no recurrent backbone (layers named "
                         "backbone_CELL_N) whose gradient flow could be measured")
    rank = {name: i for i, name in enumerate(PREFERRED)}
    (_, name), (owner, layers) = min(stacks.items(),
                                     key=lambda item: rank.get(item[0][1], len(rank)))
    return Backbone(owner, [layer for _, layer in sorted(layers, key=lambda p: p[0])], name)


def last_state(backbone: Backbone, x):
    """h_T (batch, units) of the backbone run over x (batch, T, dim)."""
    for layer in backbone.layers[:-1]:
        x = layer(x, training=False)  # (batch, T, units per direction x directions)
    out = backbone.rnn(x, training=False)
    if isinstance(out, (list, tuple)):  # return_state: [output, *states]
        out = out[0]
    return out[:, -1, :] if backbone.rnn.return_sequences else out


def step_norms(backbone: Backbone, x: np.ndarray) -> np.ndarray:
    """Mean over the batch of ||dh_T/dx_t|| for t = 1..T: x (batch, T, dim) -> (T,)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(x, dtype=tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        h = last_state(backbone, x)  # (batch, units)
    grads = tape.gradient(h, x)  # (batch, T, dim); the tape sums over h's components
    # squared in float32, a gradient below 1e-19 would make a norm of 0
    grads = tf.cast(grads, tf.float64)
    return tf.reduce_mean(tf.norm(grads, axis=-1), axis=0).numpy()


def backbone_inputs(backbone: Backbone, batches, size: int = DEFAULT_BATCH,
                    length: int | None = None) -> np.ndarray:
    """x (examples, T, dim): the backbone's input for up to `size` examples of `batches`
    (a task's Batches, or Windows over a token stream), each cut to its first T steps.

    T is `length`, taken from the examples that have that many steps; without it, the
    `size` longest examples (of the first POOL) are cut to the shortest of them. A token
    stream is cut into windows of T tokens (default: the model's sequence_length)."""
    features = _feature_model(backbone)
    names = [tensor.name for tensor in backbone.model.inputs]
    if hasattr(batches, "stream"):  # Windows: one token stream, no padding
        steps = length or batches.length
        count = len(batches.stream) // steps
        if count < 1:
            raise DataError(f"the text has {len(batches.stream)} tokens, fewer than the "
                            f"{steps} steps asked for; give a smaller --length")
        starts = np.arange(min(count, size)) * steps
        ids = batches.stream[starts[:, None] + np.arange(steps)]  # (examples, steps)
        return _run(features, [ids])[0]
    pool = np.arange(min(len(batches.lengths), POOL))
    if not len(pool):
        raise DataError("no example to measure with")
    lengths = np.concatenate([
        _real_lengths(features, _inputs(batches, pool[i:i + CHUNK], names),
                      batches.lengths[pool[i:i + CHUNK]])
        for i in range(0, len(pool), CHUNK)])
    chosen, steps = _choose(lengths, size, length)
    x, _ = _run(features, _inputs(batches, chosen, names))
    return x[:, :steps]  # (examples, steps, dim); every chosen example has `steps` or more


def _choose(lengths: np.ndarray, size: int, length: int | None) -> tuple[np.ndarray, int]:
    if length:
        chosen = np.flatnonzero(lengths >= length)[:size]
        if not len(chosen):
            raise DataError(f"no example has {length} steps at the backbone's input (the "
                            f"longest has {int(lengths.max())}); give a smaller --length")
        return chosen, length
    chosen = np.sort(np.argsort(-lengths, kind="stable")[:size])
    steps = int(lengths[chosen].min())
    if steps < 2:
        raise DataError(f"the examples are too short to measure: the {len(chosen)} longest "
                        f"have {steps} step at the backbone's input (at least 2 are needed)")
    return chosen, steps


def _inputs(batches, idx: np.ndarray, names: Sequence[str]) -> list[np.ndarray]:
    """The model's inputs for examples `idx`, made as the task makes its batches."""
    made = batches.structure(batches.make_batch(np.asarray(idx)), np.random.default_rng(0))
    inputs = made[0]
    if not isinstance(inputs, dict):
        return [inputs]
    missing = [name for name in names if name not in inputs]
    if missing:
        raise ModelError(f"the model takes inputs {', '.join(missing)} that the task's "
                         "batches do not hold")
    return [inputs[name] for name in names]


def _feature_model(backbone: Backbone):
    """The model's inputs -> the backbone's input x (batch, time, dim), and its padding mask
    (batch, time) where the graph holds one (a loaded model passes it on explicitly)."""
    import keras

    given = backbone.layers[0].input
    if not isinstance(given, (list, tuple)):
        return keras.Model(backbone.model.inputs, [given])
    mask = [t for t in given[1:2] if len(t.shape) == 2 and "bool" in str(t.dtype)]
    return keras.Model(backbone.model.inputs, [given[0], *mask])


def _run(features, inputs: list[np.ndarray]) -> tuple[Any, Any]:
    """(x, mask or None)."""
    out = features(list(inputs), training=False)
    out = list(out) if isinstance(out, (list, tuple)) else [out]
    mask = out[1] if len(out) > 1 else getattr(out[0], "_keras_mask", None)
    return out[0], mask


def _real_lengths(features, inputs: list[np.ndarray], lengths: np.ndarray) -> np.ndarray:
    """Steps of each example at the backbone's input. Each of the two counts can only be too
    high, so the smaller is right: the padding mask's (Keras's Concatenate passes on the
    union of its inputs' masks, all True when one input, such as bigram embeddings, has
    none) and the task's own `lengths` (which may count more, e.g. source plus target)."""
    x, mask = _run(features, inputs)
    counted = np.asarray(mask).sum(axis=1) if mask is not None else x.shape[1]
    return np.minimum(np.asarray(lengths), counted).astype(np.int64)


def measure(model, batches, size: int = DEFAULT_BATCH, length: int | None = None) -> dict:
    """The gradient flow of `model`'s backbone over a batch of `batches` (see
    backbone_inputs), as a JSON-ready dict."""
    backbone = find_backbone(model)
    x = np.asarray(backbone_inputs(backbone, batches, size, length))
    norms = step_norms(backbone, x)
    last = norms[-1]
    relative = [float(n / last) if last > 0 else None for n in norms]
    return {"cell": backbone.cell, "layers": len(backbone.layers),
            "units": int(backbone.rnn.units), "bidirectional": backbone.bidirectional,
            "state": "forward direction's final state" if backbone.bidirectional
            else "final state",
            "stack": backbone.name, "examples": int(x.shape[0]), "length": int(x.shape[1]),
            "steps": list(range(1, len(norms) + 1)), "norms": [float(n) for n in norms],
            "relative": relative, "first_to_last": relative[0],
            "summary": backbone.describe()}


def measure_model_dir(model_dir: str | Path, data_path: str, size: int = DEFAULT_BATCH,
                      length: int | None = None) -> dict:
    """`seqkit gradients`: load MODEL_DIR (Keras), read DATA with its task's reader and
    preprocessor, make batches as its training does, and measure."""
    from seqkit import artifacts
    from seqkit.commands.common import task_module

    task = task_of(model_dir)
    module = task_module(task)
    loaded = artifacts.load(model_dir, task, module.Config, backend="keras")
    try:  # before reading: a model without one fails at once
        find_backbone(loaded.model)
    except ModelError as exc:
        raise ModelError(exc.message, path=str(model_dir)) from None
    pre = module.Preprocessor.from_json(loaded.preprocessor)
    with quiet():
        data = module.read(module.Source(data_path), loaded.config, reference=pre)
        plan = module.prepare(loaded.config, pre, data, data, False)
    result = measure(loaded.model, plan.valid, size, length)
    return {"task": task, "model_dir": str(model_dir), "data": data_path, **result}


def task_of(model_dir: str | Path) -> str:
    """The task a model directory was trained for (config.toml's [seqkit] table)."""
    from seqkit import artifacts, config as configlib
    from seqkit.cli import TASKS

    path = Path(model_dir)
    task = None
    try:
        text = (path / artifacts.CONFIG_FILE).read_text(encoding="utf-8")
        raw = artifacts.tomllib.loads(text)
        task = raw.get(configlib.META_TABLE, {}).get("task")
    except (OSError, ValueError):
        pass
    if task is None:
        try:
            task = artifacts.read_json(path / artifacts.PREPROCESSOR_FILE).get("task")
        except (OSError, ValueError, AttributeError):
            pass
    if task not in TASKS:
        raise ModelError("not a seqkit model directory: its config.toml names no task",
                         path=str(path))
    return task


class quiet:
    """Keep the seqkit logger's notes (vocabulary sizes, lengths), which the task's reading
    and batching log for a training, off stderr; warnings still show."""

    def __enter__(self):
        self.logger = logging.getLogger("seqkit")
        self.level = self.logger.level
        if self.level < logging.WARNING:
            self.logger.setLevel(logging.WARNING)

    def __exit__(self, *exc):
        self.logger.setLevel(self.level)


def table_steps(length: int, rows: int = 16) -> list[int]:
    """The steps a table shows: all of a short sequence, else about `rows` evenly spaced
    ones from 1 to T."""
    if length <= rows + 4:
        return list(range(1, length + 1))
    return sorted({int(round(s)) for s in np.linspace(1, length, rows)})


def format_table(result: dict) -> str:
    """The curve as a table of steps: norm and norm relative to step T."""
    lines = [f"gradient flow of h_T: {result['summary']}; "
             f"{result['examples']} examples cut to {result['length']} steps",
             f"{'step':>6}  {'mean |dh_T/dx_t|':>16}  {'vs step T':>10}"]
    for step in table_steps(result["length"]):
        norm, rel = result["norms"][step - 1], result["relative"][step - 1]
        shown = f"{rel:.2e}" if rel is not None else "-"
        lines.append(f"{step:>6}  {norm:>16.3e}  {shown:>10}")
    ratio = result["first_to_last"]
    if ratio is not None:
        lines.append(f"h_T depends on x_1 {ratio:.2e} times as much as on x_T")
    return "\n".join(lines)
