"""ONNX graphs of trained models: written with Keras's own export (tf2onnx underneath) and
run on ONNX Runtime, in a process that never imports TensorFlow.

    MODEL_DIR/model.onnx    the network, variable batch and length: sentiment's classifier;
                            ner's network up to the emission scores;
                            lm's step model (tokens and states in; log-probabilities
                            and states out), for generate, score and evaluate
    MODEL_DIR/encoder.onnx  translation: source ids -> the encoder's outputs and the decoder's
    MODEL_DIR/decoder.onnx  start states; one decoder step (token, states, context -> logits,
                            states), which decoding.py's greedy and beam search drive
    MODEL_DIR/crf.npz       ner with a CRF: its transition, start and end scores; Viterbi
                            decoding runs in NumPy (CRFGraph)

`model.keras` stays the source of truth: `seqkit TASK export MODEL_DIR` writes the graph again
from it. A `Graph` is called like a Keras model's `predict_on_batch`, so the NumPy code that
pads batches and decodes outputs (seqkit.batching.predict_padded) drives either.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

GRAPH_FILE = "model.onnx"
ENCODER_FILE, DECODER_FILE = "encoder.onnx", "decoder.onnx"
CRF_FILE = "crf.npz"
BACKENDS = ("onnx", "keras")
log = logging.getLogger("seqkit")


def export(model, path: str | Path, sample: dict[str, np.ndarray],
           fused_rnn: bool = False) -> Path:
    """Write `model` (Keras) as an ONNX graph at `path`, atomically. `sample` is one batch of
    inputs: a Keras model must have run once before it exports. With `fused_rnn`, a network
    of features, a recurrent stack and a simple head gets ONNX's own LSTM/GRU/RNN operators
    for its stack (seqkit.native_rnn); another network is written by tf2onnx whole."""
    path = Path(path)
    if fused_rnn:
        from seqkit import native_rnn

        try:
            return native_rnn.export(model, path, sample)
        except native_rnn.Unsupported as exc:
            log.debug("ONNX export of %s: tf2onnx's loops for its recurrent layers (%s)",
                      model.name, exc)
    model.predict_on_batch(sample)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with contextlib.redirect_stdout(sys.stderr):  # stdout is data
        model.export(str(tmp), format="onnx", verbose=False)
    os.replace(tmp, path)
    return path


class Graph:
    """An ONNX graph on ONNX Runtime's CPU provider, with Keras's predict_on_batch call."""

    pad_multiple = 1  # no retracing: batches are padded to their longest input only

    def __init__(self, path: str | Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: stderr is seqkit's
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def predict_on_batch(self, batch: Any) -> np.ndarray | list[np.ndarray]:
        """batch: a dict by input name, a list in input order, or the one input; returns the
        output, or the list of outputs in the Keras model's order."""
        if isinstance(batch, dict):
            feeds = {name: batch[name] for name in self.input_names}
        elif isinstance(batch, (list, tuple)):
            feeds = dict(zip(self.input_names, batch))
        else:
            feeds = {self.input_names[0]: batch}
        outputs = self.session.run(None, feeds)
        return outputs[0] if len(outputs) == 1 else outputs


class CRFGraph:
    """An emission-score graph and a linear-chain CRF's scores, called like the Keras tagger
    whose CRF layer returns the Viterbi path one-hot (seqkit.crf); padding is token id 0."""

    pad_multiple = Graph.pad_multiple

    def __init__(self, graph: Graph, transitions: np.ndarray, start: np.ndarray,
                 end: np.ndarray):
        self.graph = graph
        self.transitions, self.start, self.end = (np.asarray(a, dtype=np.float32)
                                                  for a in (transitions, start, end))

    def predict_on_batch(self, batch: dict) -> np.ndarray:
        emissions = np.asarray(self.graph.predict_on_batch(batch), dtype=np.float32)
        lengths = np.maximum((np.asarray(batch["tokens"]) != 0).sum(axis=1), 1)
        paths = viterbi(emissions, lengths, self.transitions, self.start, self.end)
        out = np.zeros_like(emissions)  # (batch, time, tags) one-hot paths
        np.put_along_axis(out, paths[:, :, None], 1.0, axis=2)
        return out


def viterbi(emissions: np.ndarray, lengths: np.ndarray, transitions: np.ndarray,
            start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The best tag paths of a batch, emissions (batch, time, tags) and lengths >= 1:
    (batch, time) tag ids, padded steps repeating the last tag. All rows step together;
    the float operations per row are those of seqkit.crf.viterbi, so both pick the same
    path (ties included)."""
    batch, steps, _ = emissions.shape
    rows = np.arange(batch)
    delta = start + emissions[:, 0]  # (batch, tags)
    pointers = np.empty((max(steps - 1, 0), batch, len(start)), dtype=np.int64)
    for t in range(1, steps):
        scores = delta[:, :, None] + transitions  # (batch, from, to)
        live = (t < lengths)[:, None]
        pointers[t - 1] = np.where(live, scores.argmax(axis=1), np.arange(len(start)))
        delta = np.where(live, scores.max(axis=1) + emissions[:, t], delta)
    paths = np.empty((batch, steps), dtype=np.int64)
    paths[:, -1] = (delta + end).argmax(axis=1)
    for t in range(steps - 1, 0, -1):
        paths[:, t - 1] = pointers[t - 1][rows, paths[:, t]]
    return paths


def save_crf(path: str | Path, transitions, start, end) -> Path:
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    with open(tmp, "wb") as out:
        np.savez(out, transitions=transitions, start=start, end=end)
    os.replace(tmp, path)
    return path


class EncoderDecoder:
    """An encoder graph and a one-step decoder graph (translation)."""

    def __init__(self, encoder: Graph, decoder: Graph):
        self.encoder, self.decoder = encoder, decoder
        self.state_count = sum(name.startswith("state_") for name in decoder.input_names)


def remove(directory: str | Path) -> None:
    for name in (GRAPH_FILE, ENCODER_FILE, DECODER_FILE, CRF_FILE):
        (Path(directory) / name).unlink(missing_ok=True)


def present(directory: str | Path) -> bool:
    directory = Path(directory)
    return (directory / GRAPH_FILE).is_file() or (directory / ENCODER_FILE).is_file()


def load(directory: str | Path):
    """The directory's graphs: one network (with its CRF when it has one), or an encoder
    and a decoder step."""
    directory = Path(directory)
    if (directory / ENCODER_FILE).is_file():
        return EncoderDecoder(Graph(directory / ENCODER_FILE), Graph(directory / DECODER_FILE))
    graph = Graph(directory / GRAPH_FILE)
    if (directory / CRF_FILE).is_file():
        with np.load(directory / CRF_FILE) as crf:
            return CRFGraph(graph, crf["transitions"], crf["start"], crf["end"])
    return graph


def choose_backend(model_dir: str | Path, backend: str | None) -> str:
    """onnx when the directory has a graph, unless the caller asks for keras."""
    if backend is None:
        return "onnx" if present(model_dir) else "keras"
    return backend
