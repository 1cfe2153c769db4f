"""seqkit.native_rnn: a recurrent stack written as ONNX's own LSTM/GRU/RNN operators gives
the Keras model's outputs, for every cell, direction, depth and pooling; a network of
another shape is written by tf2onnx whole."""

import collections

import keras
import numpy as np
import onnx
import pytest

from seqkit import graphs, native_rnn
from seqkit.backbones import BackboneSpec, apply_backbone, pool_sequence

LENGTHS = [7, 3, 1, 5, 2]  # padded to 7: every sequence ends at its own step


def tokens() -> np.ndarray:
    rng = np.random.default_rng(0)
    out = np.zeros((len(LENGTHS), max(LENGTHS)), "int32")
    for row, length in enumerate(LENGTHS):
        out[row, :length] = rng.integers(1, 30, length)
    return out


def classifier(cell: str, bidirectional: bool, layers: int, pooling: str,
               tail=None, features: bool = False) -> keras.Model:
    """Sentiment's shape with random weights (large enough that every gate matters);
    `features` adds unmasked per-token features beside the masked embedding, as
    ner's characters and shapes and sentiment's bigrams are."""
    from seqkit.backbones import TokenConcatenate

    ids = keras.Input((None,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(30, 8, mask_zero=True)(ids)
    if features:
        x = TokenConcatenate()([x, keras.layers.Embedding(30, 3)(ids)])
    spec = BackboneSpec(cell=cell, units=6, layers=layers, bidirectional=bidirectional,
                        dropout=0.3)
    x, _ = apply_backbone(x, spec, return_sequences=pooling != "last")
    if tail is not None:
        x = tail(x)
    if pooling not in ("last", "none"):
        x = pool_sequence(x, pooling)
    out = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model({"tokens": ids}, out)
    rng = np.random.default_rng(1)
    for weight in model.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))
    return model


def op_types(path) -> collections.Counter:
    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


@pytest.mark.parametrize("cell, bidirectional, layers, pooling, features", [
    ("lstm", True, 1, "none", True),  # ner's shape: its mask survives the features
    ("lstm", True, 1, "max", False),
    ("lstm", False, 2, "last", False),
    ("gru", True, 2, "mean", False),
    ("gru", True, 1, "last", False),
    ("simple_rnn", True, 1, "max", False),
    ("simple_rnn", False, 2, "none", False),  # per-token outputs, as ner's emissions
])
def test_fused_operators_give_the_keras_outputs(cell, bidirectional, layers, pooling,
                                                features, tmp_path):
    model = classifier(cell, bidirectional, layers, pooling, features=features)
    path = graphs.export(model, tmp_path / "m.onnx", {"tokens": tokens()}, fused_rnn=True)
    ops = op_types(path)
    assert ops[{"lstm": "LSTM", "gru": "GRU", "simple_rnn": "RNN"}[cell]] == layers
    assert "Loop" not in ops
    batch = {"tokens": tokens()}
    got = graphs.Graph(path).predict_on_batch(batch)
    want = np.asarray(model.predict_on_batch(batch))
    real = tokens() != 0
    if pooling == "none":  # padded steps are cut off by predict_padded
        got, want = got[real], want[real]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_another_shape_keeps_tf2onnx_graph(tmp_path):
    """A layer the module does not write (a Conv1D after the stack) sends the whole network
    through tf2onnx: its loops, the same outputs."""
    conv = keras.layers.Conv1D(4, 2, padding="same")
    model = classifier("gru", False, 1, "max", tail=conv)
    with pytest.raises(native_rnn.Unsupported, match="Conv1D"):
        native_rnn.split(model)
    path = graphs.export(model, tmp_path / "m.onnx", {"tokens": tokens()}, fused_rnn=True)
    assert "Loop" in op_types(path) and "GRU" not in op_types(path)
    batch = {"tokens": tokens()}
    np.testing.assert_allclose(graphs.Graph(path).predict_on_batch(batch),
                               model.predict_on_batch(batch), atol=1e-5)
