"""ONNX graphs of trained models: written with Keras's own export (tf2onnx underneath) and
run on ONNX Runtime, in a process that never imports TensorFlow.

    MODEL_DIR/model.onnx    the classifier, variable batch and length (sentiment so far)

`model.keras` stays the source of truth: `seqkit TASK export MODEL_DIR` writes the graph again
from it. A `Graph` is called like a Keras model's `predict_on_batch`, so the NumPy code that
pads batches and decodes outputs (seqkit.batching.predict_padded) drives either.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

GRAPH_FILE = "model.onnx"
BACKENDS = ("onnx", "keras")


def export(model, path: str | Path, sample: dict[str, np.ndarray]) -> Path:
    """Write `model` (Keras) as an ONNX graph at `path`, atomically. `sample` is one batch of
    inputs: a Keras model must have run once before it exports."""
    path = Path(path)
    model.predict_on_batch(sample)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with contextlib.redirect_stdout(sys.stderr):  # stdout is data
        model.export(str(tmp), format="onnx", verbose=False)
    os.replace(tmp, path)
    return path


class Graph:
    """An ONNX graph on ONNX Runtime's CPU provider, with Keras's predict_on_batch call."""

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: stderr is seqkit's
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def predict_on_batch(self, batch: Any) -> np.ndarray:
        feeds = {name: batch[name] if isinstance(batch, dict) else batch
                 for name in self.input_names}
        return self.session.run(None, feeds)[0]


def choose_backend(model_dir: str | Path, backend: str | None) -> str:
    """onnx when the directory has a graph, unless the caller asks for keras."""
    if backend is None:
        return "onnx" if (Path(model_dir) / GRAPH_FILE).is_file() else "keras"
    return backend
