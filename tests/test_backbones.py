import numpy as np
import pytest

import keras  # noqa: E402

from seqkit.backbones import BackboneSpec, MaskedGlobalMaxPooling1D, apply_backbone  # noqa: E402
from seqkit.errors import ConfigError  # noqa: E402


def run(spec, return_sequences, return_state=False):
    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(ids)
    out, states = apply_backbone(x, spec, return_sequences=return_sequences,
                                 return_state=return_state)
    model = keras.Model(ids, [out, *states])
    batch = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]], dtype="int32")
    outs = model(batch)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return [np.asarray(o) for o in outs]


@pytest.mark.parametrize("cell", ["simple_rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_every_cell_shapes_and_states(cell, bidirectional):
    spec = BackboneSpec(cell=cell, units=6, layers=2, bidirectional=bidirectional, dropout=0.1)
    width = 12 if bidirectional else 6
    seq, *_ = run(spec, return_sequences=True)
    assert seq.shape == (2, 5, width)
    final, *states = run(spec, return_sequences=False, return_state=True)
    assert final.shape == (2, width)
    per_direction = 2 if cell == "lstm" else 1
    assert len(states) == per_direction * (2 if bidirectional else 1)
    assert spec.state_count == per_direction and spec.output_units == width
    assert all(s.shape == (2, 6) for s in states)


def test_final_output_ignores_padding():
    spec = BackboneSpec(cell="gru", units=5)
    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.Embedding(20, 4, mask_zero=True)(ids)
    out, _ = apply_backbone(x, spec, return_sequences=False)
    model = keras.Model(ids, out)
    short = np.asarray(model(np.array([[3, 4, 5]], dtype="int32")))
    padded = np.asarray(model(np.array([[3, 4, 5, 0, 0, 0]], dtype="int32")))
    np.testing.assert_allclose(short, padded, atol=1e-6)


def test_masked_max_pooling_skips_padded_steps():
    seq = np.array([[[1.0, -5.0], [2.0, -3.0], [9.0, 9.0]]], dtype="float32")
    mask = np.array([[True, True, False]])
    out = np.asarray(MaskedGlobalMaxPooling1D()(seq, mask=mask))
    np.testing.assert_allclose(out, [[2.0, -3.0]])


def test_bad_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="cell must be one of"):
        BackboneSpec(cell="transformer").validate()
    with pytest.raises(ConfigError, match="dropout"):
        BackboneSpec(dropout=1.5).validate()
