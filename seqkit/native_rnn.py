"""A network's recurrent stack as ONNX's own LSTM, GRU and RNN operators.

tf2onnx writes each Keras recurrent layer as a Loop that runs the cell's ~40 small
operators once per time step. ONNX Runtime's fused LSTM/GRU/RNN kernels project the
inputs of all steps in one matrix product and stop each sequence at its own length; on
the sentiment sample model they run about twice as fast (benchmarks/inference.py). So
for a network shaped

    features (anything tf2onnx converts) -> backbone (seqkit.backbones.apply_backbone)
    -> a head of Dropout, masked pooling, Dense and softmax layers

`export` writes the features with Keras's ONNX export and appends the backbone and the head,
built here from the Keras weights. Padding is token id 0 of the `tokens` input, as the
embeddings' `mask_zero` has it. Any other shape raises `Unsupported`, and the caller keeps
tf2onnx's whole graph.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import keras

# Keras's gate order -> ONNX's: LSTM i f c o -> i o f c; GRU z r h in both.
_GATES = {"lstm": [0, 3, 1, 2], "gru": [0, 1, 2], "simple_rnn": [0]}
_OPS = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}


class Unsupported(Exception):
    """The network is not features -> recurrent stack -> a head this module can write."""


def _kind(cell) -> str:
    import keras

    for kind, cls in (("lstm", keras.layers.LSTMCell), ("gru", keras.layers.GRUCell),
                      ("simple_rnn", keras.layers.SimpleRNNCell)):
        if type(cell) is cls:
            return kind
    raise Unsupported(f"recurrent cell {type(cell).__name__}")


def _name(function) -> str:
    return getattr(function, "__name__", str(function))


def _input(layer):
    """The one tensor a layer was called on (Keras lists the mask beside it)."""
    tensors = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
    if any(t.dtype != "bool" for t in tensors[1:]):
        raise Unsupported(f"layer {layer.name} takes several inputs")
    return tensors[0]


def split(model: "keras.Model"):
    """(features model, recurrent layers in order, head layers in order), or Unsupported."""
    import keras

    def recurrent(layer) -> bool:
        return isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional))

    layers = model.layers
    first = next((i for i, layer in enumerate(layers) if recurrent(layer)), None)
    if first is None or len(model.outputs) != 1 or "tokens" not in [t.name for t in model.inputs]:
        raise Unsupported("no recurrent layer, or not one output and a tokens input")
    chain = layers[first:]
    for previous, layer in zip(chain, chain[1:]):
        if _input(layer) is not previous.output:
            raise Unsupported(f"layer {layer.name} is not on one chain after the stack")
    if chain[-1].output is not model.outputs[0]:
        raise Unsupported("the chain after the stack does not end at the output")
    last = max(i for i, layer in enumerate(chain) if recurrent(layer))
    stack = [layer for layer in chain[:last + 1] if recurrent(layer)]
    if any(not (recurrent(layer) or isinstance(layer, keras.layers.Dropout))
           for layer in chain[:last + 1]):
        raise Unsupported("a layer other than Dropout between the recurrent layers")
    for layer in stack[:-1]:
        if not _wrapped(layer).return_sequences:
            raise Unsupported(f"{layer.name} returns no sequence to the next layer")
    for layer in chain[last + 1:]:
        if not isinstance(layer, _head_layers()):
            raise Unsupported(f"head layer {layer.name} ({type(layer).__name__})")
    return keras.Model(model.input, _input(layers[first])), stack, chain[last + 1:]


def _wrapped(layer):
    import keras

    return layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer


class _Builder:
    """Appends nodes and weights to an ONNX graph under fresh names."""

    def __init__(self, graph):
        self.graph, self.count = graph, 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"native_rnn/{hint}_{self.count}"

    def const(self, value, hint: str = "const") -> str:
        from onnx import numpy_helper

        name = self.name(hint)
        self.graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], outputs: int = 1, **attrs) -> list[str]:
        from onnx import helper

        names = [self.name(op.lower()) for _ in range(outputs)]
        self.graph.node.append(helper.make_node(op, inputs, names, **attrs))
        return names

    def one(self, op: str, *inputs: str, **attrs) -> str:
        return self.node(op, list(inputs), **attrs)[0]


def _weights(layer, kind: str, input_dim: int):
    """ONNX W, R, B for the directions of one (possibly bidirectional) Keras layer."""
    import keras

    directions = ([layer.forward_layer, layer.backward_layer]
                  if isinstance(layer, keras.layers.Bidirectional) else [layer])
    ws, rs, bs = [], [], []
    for rnn in directions:
        cell = rnn.cell
        if _name(cell.activation) != "tanh" or (
                kind != "simple_rnn" and _name(cell.recurrent_activation) != "sigmoid"):
            raise Unsupported(f"{rnn.name}: activations other than tanh and sigmoid")
        order, units = _GATES[kind], cell.units
        gates = len(order)

        def reorder(matrix):  # (rows, gates * units) -> (gates * units, rows) in ONNX order
            blocks = np.split(np.asarray(matrix, dtype=np.float32), gates, axis=-1)
            return np.concatenate([blocks[g] for g in order], axis=-1).T

        ws.append(reorder(cell.kernel))
        rs.append(reorder(cell.recurrent_kernel))
        zeros = np.zeros(gates * units, dtype=np.float32)
        if not cell.use_bias:
            bias_in, bias_rec = zeros, zeros
        elif kind == "gru" and cell.reset_after:  # (2, 3 units): input, recurrent biases
            bias = np.asarray(cell.bias, dtype=np.float32)
            bias_in, bias_rec = reorder(bias[:1])[:, 0], reorder(bias[1:])[:, 0]
        else:
            bias_in, bias_rec = reorder(np.asarray(cell.bias)[None])[:, 0], zeros
        bs.append(np.concatenate([bias_in, bias_rec]))
    if ws[0].shape[1] != input_dim:
        raise Unsupported(f"{layer.name}: input width {ws[0].shape[1]} != {input_dim}")
    attrs = {"hidden_size": directions[0].cell.units}
    if len(directions) == 2:
        if layer.merge_mode != "concat":
            raise Unsupported(f"{layer.name}: merge mode {layer.merge_mode}")
        attrs["direction"] = "bidirectional"
    elif layer.go_backwards:
        attrs["direction"] = "reverse"
    if kind == "gru":
        attrs["linear_before_reset"] = int(directions[0].cell.reset_after)
    return np.stack(ws), np.stack(rs), np.stack(bs), attrs


def _stack(b: _Builder, x: str, lengths: str, rnns, input_dim: int) -> tuple[str, bool]:
    """x (batch, time, input_dim) through the layers: (name, is it a sequence)."""
    x = b.one("Transpose", x, perm=[1, 0, 2])  # ONNX's recurrent ops run time-major
    for layer in rnns:
        kind = _kind(_wrapped(layer).cell)
        w, r, bias, attrs = _weights(layer, kind, input_dim)
        y, y_h = b.node(_OPS[kind], [x, b.const(w, "W"), b.const(r, "R"), b.const(bias, "B"),
                                     lengths], outputs=2, **attrs)
        input_dim = w.shape[0] * attrs["hidden_size"]
        if not _wrapped(layer).return_sequences:  # the final states, forward then backward
            final = b.one("Transpose", y_h, perm=[1, 0, 2])  # (batch, dirs, units)
            return b.one("Reshape", final, b.const(np.array([0, -1]))), False
        # (time, dirs, batch, units) -> (time, batch, dirs * units): Keras's concat order
        y = b.one("Transpose", y, perm=[0, 2, 1, 3])
        x = b.one("Reshape", y, b.const(np.array([0, 0, -1])))
    return b.one("Transpose", x, perm=[1, 0, 2]), True


def _head_layers() -> tuple:
    import keras

    from seqkit.backbones import MaskedGlobalMaxPooling1D

    return (keras.layers.Dropout, MaskedGlobalMaxPooling1D, keras.layers.GlobalAveragePooling1D,
            keras.layers.Dense, keras.layers.Activation)


def _head(b: _Builder, x: str, real: str, head) -> str:
    """The head's layers; `real` is the (batch, time) bool mask of real tokens."""
    import keras

    from seqkit.backbones import MaskedGlobalMaxPooling1D

    for layer in head:
        if isinstance(layer, keras.layers.Dropout):
            continue
        if isinstance(layer, MaskedGlobalMaxPooling1D):
            keep = b.one("Unsqueeze", real, b.const(np.array([2])))
            x = b.one("Where", keep, x, b.const(np.float32(-1e9)))
            x = b.one("ReduceMax", x, axes=[1], keepdims=0)
        elif isinstance(layer, keras.layers.GlobalAveragePooling1D):
            weight = b.one("Unsqueeze", b.one("Cast", real, to=1), b.const(np.array([2])))
            total = b.one("ReduceSum", b.one("Mul", x, weight), b.const(np.array([1])),
                          keepdims=0)
            x = b.one("Div", total, b.one("ReduceSum", weight, b.const(np.array([1])),
                                          keepdims=0))
        elif isinstance(layer, keras.layers.Dense):
            x = b.one("MatMul", x, b.const(np.asarray(layer.kernel, dtype=np.float32)))
            if layer.use_bias:
                x = b.one("Add", x, b.const(np.asarray(layer.bias, dtype=np.float32)))
            x = _activation(b, x, layer)
        else:  # keras.layers.Activation, the last of _head_layers
            x = _activation(b, x, layer)
    return x


def _activation(b: _Builder, x: str, layer) -> str:
    name = _name(layer.activation)
    if name == "linear":
        return x
    if name == "softmax":
        return b.one("Softmax", x, axis=-1)
    raise Unsupported(f"activation {name} of {layer.name}")


def export(model: "keras.Model", path: str | Path, sample: dict) -> Path:
    """Write `model` as one ONNX graph at `path` with its recurrent stack on ONNX's own
    operators; raises Unsupported (writing nothing) for a network of another shape."""
    import onnx

    from seqkit import graphs

    front, rnns, head = split(model)
    path = Path(path)
    tmp = path.with_name(f".tmp-{os.getpid()}-front-{path.name}")
    try:
        graphs.export(front, tmp, sample)
        proto = onnx.load(str(tmp))
    finally:
        tmp.unlink(missing_ok=True)
    graph = proto.graph
    b = _Builder(graph)
    real = b.one("Not", b.one("Equal", "tokens", b.const(np.int32(0))))
    lengths = b.one("ReduceSum", b.one("Cast", real, to=6), b.const(np.array([1])),
                    keepdims=0)  # int32, as sequence_lens must be
    lengths = b.one("Max", lengths, b.const(np.int32(1)))  # an empty row still has one step
    features = graph.output[0].name
    x, _ = _stack(b, features, lengths, rnns, int(front.outputs[0].shape[-1]))
    x = _head(b, x, real, head)
    rank = len(model.outputs[0].shape)
    del graph.output[:]
    graph.output.append(onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT,
                                                           [None] * rank))
    onnx.checker.check_model(proto)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    onnx.save(proto, str(tmp))
    os.replace(tmp, path)
    return path
