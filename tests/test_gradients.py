"""`seqkit gradients`: the gradient flow through time of a model's backbone, and the lesson
it shows (seqkit/gradients.py): a SimpleRNN's last state forgets early inputs by orders of
magnitude, an LSTM's does not."""

import json

import numpy as np
import pytest

from conftest import TINY, one_error_line


def _backbone_model(cell: str, units: int = 16, dim: int = 8, layers: int = 1,
                    bidirectional: bool = False, return_sequences: bool = False,
                    forget_bias: float = 1.0):
    import keras

    from seqkit.backbones import BackboneSpec, apply_backbone

    inputs = keras.Input((None, dim), name="features")
    spec = BackboneSpec(cell=cell, units=units, layers=layers, bidirectional=bidirectional,
                        forget_bias=forget_bias)
    x, _ = apply_backbone(inputs, spec, return_sequences=return_sequences)
    return keras.Model(inputs, keras.layers.Dense(2, name="head")(x))


SEEDS = (0, 1)


@pytest.fixture(scope="module")
def synthetic_ratios():
    """The synthetic task: sequences of T = 100 steps of 8 unit-variance features (standard
    normal noise), read by tiny random-weight backbones of 16 units, seeded. Returns, per
    cell and seed, |dh_T/dx_1| / |dh_T/dx_T| and the same at t = 50."""
    import keras

    from seqkit import gradients

    ratios = {}
    for cell, forget_bias in (("simple_rnn", 1.0), ("lstm", 1.0), ("lstm_open", 3.0)):
        for seed in SEEDS:
            keras.utils.set_random_seed(seed)
            model = _backbone_model(cell.removesuffix("_open"), forget_bias=forget_bias)
            x = np.random.default_rng(seed).normal(size=(16, 100, 8)).astype(np.float32)
            norms = gradients.step_norms(gradients.find_backbone(model), x)
            ratios[cell, seed] = (norms[0] / norms[-1], norms[49] / norms[-1])
    return ratios


def test_simple_rnn_forgets_early_steps_by_orders_of_magnitude_more_than_lstm(
        synthetic_ratios):
    # measured (seeds 0, 1): SimpleRNN 1.4e-17, 2.3e-18 at t = 1 (2.6e-9, 6.1e-10 at t = 50);
    # LSTM 1.2e-10, 1.8e-11 (7.5e-6, 2.8e-6): a gap of 10^6 at t = 1 and 10^3 at t = 50
    for seed in SEEDS:
        simple, lstm = synthetic_ratios["simple_rnn", seed], synthetic_ratios["lstm", seed]
        assert simple[0] < 1e-13  # orders of magnitude lost over 100 steps
        assert lstm[0] > 1e4 * simple[0]
        assert lstm[1] > 30 * simple[1]


def test_an_lstm_whose_forget_gates_start_open_keeps_early_steps_within_an_order(
        synthetic_ratios):
    """The same task, an LSTM with forget_bias = 3 (forget gates at sigma(3) = 0.95 rather
    than Keras's sigma(1) = 0.73): along the cell state the signal is multiplied by the
    forget gate alone, so h_T still depends on x_1 about as much as on x_T, where the
    SimpleRNN's dependence fell 17 orders of magnitude. Measured: 0.25 and 0.18 at t = 1,
    0.23 and 0.20 at t = 50 (forget_bias = 5: 6.6 and 1.5)."""
    for seed in SEEDS:
        held, simple = synthetic_ratios["lstm_open", seed], synthetic_ratios["simple_rnn", seed]
        assert 1e-2 < held[0] < 1e2 and 1e-2 < held[1] < 1e2
        assert held[0] > 1e10 * simple[0]
        assert held[0] > 1e6 * synthetic_ratios["lstm", seed][0]  # Keras's default forgets


def test_forget_bias_sets_the_forget_gates_only_and_round_trips(tmp_path):
    import keras

    model = _backbone_model("lstm", units=4, forget_bias=2.5)
    bias = np.asarray(model.get_layer("backbone_lstm_0").cell.bias)
    np.testing.assert_array_equal(bias, [0] * 4 + [2.5] * 4 + [0] * 8)  # i, f, c, o
    model.save(tmp_path / "m.keras")
    again = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(np.asarray(again.get_layer("backbone_lstm_0").cell.bias), bias)
    default = np.asarray(_backbone_model("lstm", units=4).get_layer("backbone_lstm_0").cell.bias)
    np.testing.assert_array_equal(default, [0] * 4 + [1] * 4 + [0] * 8)  # Keras's own


@pytest.fixture(scope="module")
def lm_model(tmp_path_factory):
    from seqkit.cli import run

    d = tmp_path_factory.mktemp("lm")
    text = "".join(f"{a} {b} .\n" for a in ("the cat", "a dog", "my friend")
                   for b in ("sleeps", "runs home", "reads a book")) * 8
    (d / "lm.txt").write_text(text, encoding="utf-8")
    out = d / "model"
    code = run(["-q", "lm", "train", str(d / "lm.txt"), "-o", str(out), "--epochs", "1",
                "--layers", "1", "--set", "sequence_length=10", "--set", "min_epoch_tokens=0",
                *TINY])
    assert code == 0
    return out


def test_a_bidirectional_stack_is_measured_on_its_forward_state():
    from seqkit import gradients

    model = _backbone_model("gru", layers=2, bidirectional=True, return_sequences=True)
    backbone = gradients.find_backbone(model)
    assert backbone.bidirectional and backbone.cell == "gru" and len(backbone.layers) == 2
    x = np.random.default_rng(0).normal(size=(4, 12, 8)).astype(np.float32)
    h = np.asarray(gradients.last_state(backbone, x))
    assert h.shape == (4, 16)
    full = np.asarray(model.get_layer("backbone_bidirectional_1")(
        model.get_layer("backbone_bidirectional_0")(x)))
    np.testing.assert_allclose(h, full[:, -1, :16], atol=1e-5)  # forward half, last step
    norms = gradients.step_norms(backbone, x)
    assert norms.shape == (12,) and np.all(norms > 0)


def test_padding_is_never_measured_even_where_keras_loses_the_mask():
    import keras

    from seqkit import gradients
    from seqkit.backbones import BackboneSpec, apply_backbone
    from seqkit.batching import Batches

    tokens = keras.Input((None,), dtype="int32", name="tokens")
    bigrams = keras.Input((None,), dtype="int32", name="bigrams")
    # Concatenate's mask is the union of its inputs' masks: all True here
    x = keras.layers.Concatenate()([keras.layers.Embedding(9, 4, mask_zero=True)(tokens),
                                    keras.layers.Embedding(9, 4)(bigrams)])
    h, _ = apply_backbone(x, BackboneSpec(cell="gru", units=4), return_sequences=False)
    model = keras.Model({"tokens": tokens, "bigrams": bigrams}, h)
    seqs = [[1] * n for n in (3, 7, 5, 9)]
    batches = Batches({"tokens": seqs, "bigrams": seqs}, [len(s) for s in seqs], 4,
                      lambda b, rng: ({"tokens": b["tokens"], "bigrams": b["bigrams"]},),
                      shuffle=False)
    backbone = gradients.find_backbone(model)
    assert gradients.backbone_inputs(backbone, batches, size=2).shape[:2] == (2, 7)
    assert gradients.backbone_inputs(backbone, batches, length=5).shape[:2] == (3, 5)


def test_a_model_without_a_backbone_is_refused():
    import keras

    from seqkit import gradients
    from seqkit.errors import ModelError

    inputs = keras.Input((None, 8))
    model = keras.Model(inputs, keras.layers.GRU(4, name="decoder")(inputs), name="caption")
    with pytest.raises(ModelError, match="the caption model has no recurrent backbone"):
        gradients.find_backbone(model)


def test_sentiment_table_json_and_png(sentiment_model, data_dir, tmp_path, cli):
    r = cli("gradients", sentiment_model, data_dir / "valid.csv")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("gradient flow of h_T: lstm, 1 layer of 8 units, forward "
                               "direction of a bidirectional stack")
    assert lines[1].split()[0] == "step" and lines[-1].startswith("h_T depends on x_1")
    r = cli("gradients", sentiment_model, data_dir / "valid.csv", "--json", "--batch", "5")
    result = json.loads(r.out)
    assert r.code == 0 and result["task"] == "sentiment" and result["examples"] == 5
    assert result["bidirectional"] and result["state"] == "forward direction's final state"
    length = result["length"]
    assert result["steps"] == list(range(1, length + 1)) and len(result["norms"]) == length
    assert result["relative"][-1] == 1.0 and result["first_to_last"] == result["relative"][0]
    r = cli("gradients", sentiment_model, data_dir / "valid.csv", "--json", "--length", "3")
    assert r.code == 0 and json.loads(r.out)["length"] == 3
    pytest.importorskip("matplotlib")
    png = tmp_path / "pictures" / "flow.png"
    png.parent.mkdir()
    r = cli("gradients", sentiment_model, data_dir / "valid.csv", "-o", png)
    assert r.code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_lm_windows_of_any_length(lm_model, cli):
    data = lm_model.parent / "lm.txt"
    r = cli("gradients", lm_model, data, "--json", "--length", "25", "--batch", "4")
    result = json.loads(r.out)
    assert r.code == 0 and result["task"] == "lm" and not result["bidirectional"]
    assert result["length"] == 25 and result["examples"] == 4
    assert result["cell"] == "lstm" and result["state"] == "final state"
    r = cli("gradients", lm_model, data, "--json")
    assert json.loads(r.out)["length"] == 10  # the model's sequence_length


def test_bad_input_is_one_line(sentiment_model, lm_model, data_dir, tmp_path, cli):
    line = one_error_line(cli("gradients", sentiment_model, data_dir / "valid.csv",
                              "--length", "500"))
    assert "no example has 500 steps at the backbone's input" in line
    line = one_error_line(cli("gradients", lm_model, lm_model.parent / "lm.txt",
                              "--length", "100000"))
    assert "fewer than the 100000 steps asked for" in line
    line = one_error_line(cli("gradients", tmp_path, data_dir / "valid.csv"))
    assert "not a seqkit model directory" in line
    line = one_error_line(cli("gradients", sentiment_model, tmp_path / "missing.csv"))
    assert "missing.csv" in line
    line = one_error_line(cli("gradients", sentiment_model, data_dir / "valid.csv",
                              "-o", tmp_path))
    assert "is a folder; expected a file name for the PNG" in line
    r = cli("gradients", sentiment_model, data_dir / "valid.csv", "--batch", "0")
    assert r.code == 2 and r.err.startswith("seqkit: error: Invalid value for '--batch'")
