"""The shared fit loop: checkpoints, --resume, atomic model directories, batching."""

import json

import numpy as np
import pytest

from conftest import interrupt_after_epoch
from seqkit import config as configlib
from seqkit.errors import ConfigError


def small_config(**extra):
    from seqkit.tasks import sentiment

    options = {"epochs": 3, "units": 8, "embedding_dim": 8, "dropout": 0.0, "seed": 5,
               "patience": 5, "batch_size": 16, **extra}
    return configlib.resolve(sentiment.Config, None, options)


def train_sentiment(path, out_dir, config, **kwargs):
    from seqkit import lifecycle
    from seqkit.tasks import sentiment

    return lifecycle.train(sentiment, sentiment.Source(str(path)), out_dir, config, **kwargs)


def tiny_classifier():
    """Token ids -> mean of 2-d embeddings -> 2 classes: enough to drive the fit loop."""
    import keras

    inputs = keras.Input(shape=(None,), dtype="int32")
    h = keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(4, 2)(inputs))
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(h))


def final_weights(model_dir):
    import importlib

    import keras

    from seqkit import artifacts

    for module in artifacts.LAYER_MODULES:
        importlib.import_module(module)
    model = keras.saving.load_model(model_dir / "model.keras", compile=False)
    return model.get_weights()


@pytest.fixture(scope="module")
def straight_run(data_dir, tmp_path_factory):
    """An uninterrupted run with dropout (random masks every step): what every resumed
    run below must end with, bit for bit."""
    out = tmp_path_factory.mktemp("straight") / "m"
    train_sentiment(str(data_dir / "train.csv"), str(out), small_config(dropout=0.3))
    return out


def kill_at(monkeypatch, where: str):
    """Make training stop (KeyboardInterrupt, as Ctrl-C) at one moment: mid-epoch 1 (before
    any checkpoint), after the checkpoint of epoch 1 or 3 (the last), or during the final
    save of the model directory."""
    from seqkit import artifacts, training

    if where.startswith("after epoch"):
        return interrupt_after_epoch(monkeypatch, int(where.split()[-1]) - 1)
    if where == "mid epoch 1":
        real = training._EpochLog.on_epoch_begin

        def crash(self, epoch, logs=None):
            real(self, epoch, logs)
            self.model.stop_training = True  # let Keras finish its bookkeeping
            raise KeyboardInterrupt

        monkeypatch.setattr(training._EpochLog, "on_epoch_begin", crash)
        return lambda: monkeypatch.setattr(training._EpochLog, "on_epoch_begin", real)
    real_finish = artifacts.finish_run

    def crash_finish(work_dir, out_dir):
        raise KeyboardInterrupt  # the model files are written, not yet moved

    monkeypatch.setattr(artifacts, "finish_run", crash_finish)
    return lambda: monkeypatch.setattr(artifacts, "finish_run", real_finish)


@pytest.mark.parametrize("where", ["mid epoch 1", "after epoch 1", "after epoch 3",
                                   "final save"])
def test_killed_run_resumes_to_the_same_weights(where, straight_run, data_dir, tmp_path,
                                                monkeypatch):
    train = str(data_dir / "train.csv")
    out = tmp_path / "resumed"
    undo = kill_at(monkeypatch, where)
    with pytest.raises(KeyboardInterrupt):
        train_sentiment(train, str(out), small_config(dropout=0.3))
    undo()
    assert not out.exists()
    if where == "after epoch 1":
        state = json.loads((tmp_path / "resumed.partial/checkpoints/state.json").read_text())
        assert state["epochs_done"] == 1
        with pytest.raises(ConfigError, match="interrupted run.*--resume"):
            train_sentiment(train, str(out), small_config(dropout=0.3))
    checkpoints = tmp_path / "resumed.partial/checkpoints"
    if checkpoints.is_dir():  # as a write killed halfway leaves it
        (checkpoints / ".tmp-1-last-2.keras").write_bytes(b"half")
    result = train_sentiment(train, str(out), small_config(dropout=0.3), resume=True)
    assert result["training"]["epochs"] == 3
    assert not (tmp_path / "resumed.partial").exists()
    assert not (out / "checkpoints").exists()
    for a, b in zip(final_weights(straight_run), final_weights(out), strict=True):
        np.testing.assert_array_equal(a, b)
    straight = json.loads((straight_run / "metrics.json").read_text())["training"]["history"]
    assert [h["loss"] for h in result["training"]["history"]] == [h["loss"] for h in straight]


def test_resume_refuses_changed_settings(data_dir, tmp_path):
    work = tmp_path / "m.partial"
    (work / "checkpoints").mkdir(parents=True)
    (work / "checkpoints" / "state.json").write_text("{}")
    from seqkit import artifacts

    artifacts.save_setup(work, task="sentiment", preprocessor={}, config=small_config())
    with pytest.raises(ConfigError, match="differ from it: units"):
        train_sentiment(str(data_dir / "train.csv"), str(tmp_path / "m"),
                        small_config(units=16), resume=True)


def test_resume_with_nothing_to_resume_starts_a_run(data_dir, tmp_path):
    """A job that always passes --resume trains on its first start."""
    result = train_sentiment(str(data_dir / "train.csv"), str(tmp_path / "m"),
                             small_config(epochs=1), resume=True)
    assert result["training"]["epochs"] == 1 and (tmp_path / "m" / "model.keras").is_file()


def test_force_replaces_a_model_dir_whole(data_dir, tmp_path):

    out = tmp_path / "m"
    out.mkdir()
    (out / "stale.txt").write_text("old")
    train_sentiment(str(data_dir / "train.csv"), str(out), small_config(epochs=1), force=True)
    assert not (out / "stale.txt").exists() and (out / "model.keras").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_batches_bucket_by_length_and_reshuffle():
    from seqkit.batching import Batches

    seqs = [[1] * n for n in [5, 1, 9, 3, 7, 2, 8, 4, 6, 10]]
    batches = Batches({"x": seqs, "y": list(range(10))}, [len(s) for s in seqs], 2,
                      lambda b, rng: (b["x"], b["y"]), seed=0)
    batches.WINDOW = 5  # one window holds everything
    first = batches.batch_indices(0)
    assert sorted(int(i) for b in first for i in b) == list(range(10))
    for b in first:  # each batch pairs neighbours in length
        lengths = sorted(len(seqs[i]) for i in b)
        assert lengths[1] - lengths[0] <= 1
    assert [list(b) for b in first] != [list(b) for b in batches.batch_indices(1)]
    x, y = batches.structure(batches.make_batch(np.array([2, 1])), None)
    assert x.shape == (2, 16) and list(x[1][:2]) == [1, 0] and list(y) == [2, 1]


def test_pad_rounds_up_and_truncates():
    from seqkit.batching import pad

    assert pad([[1, 2, 3], [4]]).shape == (2, 8)
    assert pad([[1, 2, 3], [4]], length=2).tolist() == [[1, 2], [4, 0]]


def test_lr_decay_cuts_the_rate_after_an_epoch_without_a_better_monitor(tmp_path,
                                                                        monkeypatch):
    import keras

    from seqkit.batching import Batches
    from seqkit.training import TrainSpec, fit, make_optimizer

    class FlatScore(keras.callbacks.Callback):  # a monitored score that never improves
        def on_epoch_end(self, epoch, logs=None):
            logs["val_score"] = 0.5 if epoch == 0 else 0.4

    seqs = [[1, 2, 3]] * 8
    batches = Batches({"x": seqs, "y": [0, 1] * 4}, [3] * 8, 4, lambda b, rng: (b["x"], b["y"]))
    model = tiny_classifier()
    spec = TrainSpec(epochs=3, batch_size=4, learning_rate=0.01, patience=5, lr_decay=0.5)
    model.compile(make_optimizer(spec), "sparse_categorical_crossentropy")
    model, _ = fit(model, batches, batches, spec, tmp_path, monitor="val_score", mode="max",
                   callbacks=[FlatScore()])
    # epoch 1 sets the best; epochs 2 and 3 do not beat it: halved twice
    assert float(model.optimizer.learning_rate) == pytest.approx(0.0025)
    # the same, killed after epoch 2 and resumed: epoch 3 is still compared with epoch 1
    undo = interrupt_after_epoch(monkeypatch, 1)
    fresh = keras.models.clone_model(model)
    fresh.compile(make_optimizer(spec), "sparse_categorical_crossentropy")
    with pytest.raises(KeyboardInterrupt):
        fit(fresh, batches, batches, spec, tmp_path / "killed", monitor="val_score", mode="max",
            callbacks=[FlatScore()])
    undo()
    resumed, _ = fit(fresh, batches, batches, spec, tmp_path / "killed", monitor="val_score",
                     mode="max", resume=True, callbacks=[FlatScore()])
    assert float(resumed.optimizer.learning_rate) == pytest.approx(0.0025)
    with pytest.raises(ConfigError, match="lr_decay"):
        TrainSpec(lr_decay=0).validate()

    # a fixed schedule: full rate for lr_decay_after epochs, then times lr_decay every epoch,
    # whatever the monitor does (here it improves every epoch)
    spec = TrainSpec(epochs=4, batch_size=4, learning_rate=0.01, patience=5, lr_decay=0.5,
                     lr_decay_after=2)
    model.compile(make_optimizer(spec), "sparse_categorical_crossentropy")
    _, summary = fit(model, batches, batches, spec, tmp_path / "schedule", monitor="val_loss",
                     mode="min")
    assert [h["learning_rate"] for h in summary["history"]] == pytest.approx(
        [0.01, 0.01, 0.005, 0.0025])


def test_an_epoch_cut_by_the_time_limit_counts_only_the_tokens_it_trained(tmp_path, caplog):
    import logging

    from seqkit.batching import Batches
    from seqkit.training import TrainSpec, fit, make_optimizer

    batches = Batches({"x": [[1, 2, 3]] * 8, "y": [0, 1] * 4}, [3] * 8, 2,
                      lambda b, rng: (b["x"], b["y"]))
    assert (len(batches), batches.tokens) == (4, 24)
    model = tiny_classifier()
    for minutes, tokens in ((0.0, 24), (1e-9, 6)):  # whole epochs; stopped after one batch
        spec = TrainSpec(epochs=2, batch_size=2, patience=5, max_minutes=minutes)
        model.compile(make_optimizer(spec), "sparse_categorical_crossentropy")
        with caplog.at_level(logging.INFO, logger="seqkit"):
            caplog.clear()
            _, summary = fit(model, batches, None, spec, tmp_path / str(minutes),
                             monitor="loss", mode="min")
        history = summary["history"]
        assert [h["tokens"] for h in history] == [tokens] * len(history)
        assert len(history) == (2 if tokens == 24 else 1)
        rate = tokens / history[0]["seconds"]
        line = next(m for m in caplog.messages if m.startswith("epoch 1/2"))
        assert line.endswith(f"{rate:,.0f} tokens/s)")
        assert "tokens=" not in line and "seconds=" not in line
        # train_seconds is rounded to 0.01 s; counting the cut epoch whole would give 4x
        counted = summary["train_tokens_per_second"] * summary["train_seconds"]
        assert 0.8 < counted / (tokens * len(history)) < 1.25


def test_epochs_count_only_once_the_monitor_has_moved(tmp_path, monkeypatch):
    """A tagger's F1 stays 0.0 while it learns to predict anything but O: those epochs
    neither cut the rate nor use up the patience."""
    import keras

    from seqkit.batching import Batches
    from seqkit.training import TrainSpec, fit, make_optimizer

    scores = [0.0, 0.0, 0.0, 0.3, 0.2, 0.2]

    class LateScore(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_f1"] = scores[epoch]

    seqs = [[1, 2, 3]] * 8
    batches = Batches({"x": seqs, "y": [0, 1] * 4}, [3] * 8, 4, lambda b, rng: (b["x"], b["y"]))
    model = tiny_classifier()
    spec = TrainSpec(epochs=6, batch_size=4, learning_rate=0.01, patience=1, lr_decay=0.5)

    def run(directory, resume=False):
        model.compile(make_optimizer(spec), "sparse_categorical_crossentropy")
        return fit(model, batches, batches, spec, directory, monitor="val_f1", mode="max",
                   resume=resume, callbacks=[LateScore()])

    trained, summary = run(tmp_path / "straight")
    # full rate through the flat start (history logs each epoch's rate); epoch 5 is worse
    # than epoch 4: the rate is halved and, with patience 1, training stops
    assert [h["learning_rate"] for h in summary["history"]] == pytest.approx([0.01] * 5)
    assert float(trained.optimizer.learning_rate) == pytest.approx(0.005)
    assert summary["best_epoch"] == 4

    # killed inside the flat start, the resumed run still treats it as flat
    undo = interrupt_after_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed")
    undo()
    trained, resumed = run(tmp_path / "killed", resume=True)
    assert [h["learning_rate"] for h in resumed["history"]] == pytest.approx([0.01] * 5)
    assert float(trained.optimizer.learning_rate) == pytest.approx(0.005)


def test_weight_average_is_what_is_scored_kept_and_resumed(tmp_path, monkeypatch):
    import keras

    from seqkit.batching import Batches
    from seqkit.training import TrainSpec, fit, make_optimizer

    class Watch(keras.callbacks.Callback):
        """Raw weights after every step; what the callbacks see at each epoch's end."""

        def __init__(self):
            super().__init__()
            self.steps, self.ends = [], []

        def on_train_batch_end(self, batch, logs=None):
            self.steps.append(self.model.get_weights()[0].copy())

        def on_epoch_end(self, epoch, logs=None):
            self.ends.append(self.model.get_weights()[0].copy())
            logs["score"] = -epoch  # never better: the first epoch stays the best

    seqs = [[1, 2, 3], [3, 2, 1], [2, 2, 3], [1, 1, 1]] * 2
    batches = Batches({"x": seqs, "y": [0, 1] * 4}, [3] * 8, 4, lambda b, rng: (b["x"], b["y"]))

    def run(directory, resume=False, model=None):
        keras.utils.set_random_seed(3)
        if model is None:
            model = tiny_classifier()
        spec = TrainSpec(epochs=3, batch_size=4, learning_rate=0.1, patience=5, ema=0.5)
        model.compile(make_optimizer(spec), "sparse_categorical_crossentropy")
        watch = Watch()
        model, _ = fit(model, batches, None, spec, directory, monitor="score", mode="max",
                       resume=resume, callbacks=[watch])
        return model, watch

    model, watch = run(tmp_path / "straight")
    average = watch.steps[0]
    for w in watch.steps[1:2]:
        average = 0.5 * average + 0.5 * w
    np.testing.assert_allclose(watch.ends[0], average, rtol=1e-5)  # epoch 1: steps 1-2
    assert not np.allclose(watch.ends[0], watch.steps[1])  # not the raw weights
    np.testing.assert_allclose(model.get_weights()[0], watch.ends[0])  # the best epoch's

    undo = interrupt_after_epoch(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed")
    undo()
    _, resumed = run(tmp_path / "killed", resume=True)
    np.testing.assert_allclose(resumed.ends[-1], watch.ends[-1], rtol=1e-5)
    with pytest.raises(ConfigError, match="ema"):
        TrainSpec(ema=1.0).validate()


def test_keras_internals_seqkit_relies_on():
    """training._SwapAverage sets SwapEMAWeights's private `_ema_weights_in_model` so that a
    resumed run swaps the average out before its first epoch: if this fails, a Keras
    release renamed it, and `ema` runs can no longer resume."""
    import keras

    from seqkit.training import _SwapAverage

    probe = keras.callbacks.SwapEMAWeights(swap_on_epoch=True)
    assert getattr(probe, "_ema_weights_in_model", None) is False, keras.__version__
    assert _SwapAverage(resumed=True)._ema_weights_in_model is True
    assert _SwapAverage(resumed=False)._ema_weights_in_model is False


@pytest.mark.parametrize("mode", ["min", "max"])
def test_monitor_follows_keras_early_stopping_and_plateau(mode):
    """Monitor keeps its state itself but follows the rules of Keras's EarlyStopping
    (restore_best_weights) and ReduceLROnPlateau (patience 0), whose behaviour the recipes'
    figures were measured with: fed the same values, both stop at the same epoch, keep the
    same best epoch and cut the rate at the same epochs. Ties and gains below the plateau's
    min_delta included; the first two values differ, so the flat-start rule does not apply."""
    import keras

    from seqkit.training import Monitor

    rng = np.random.default_rng(0)
    for _ in range(40):
        values = [float(v) for v in rng.choice([0.5, 0.51, 0.52, 0.52005, 0.6], size=12)]
        values[1] = values[0] + 0.01
        patience = int(rng.integers(1, 4))
        runs = []
        for callbacks in ([Monitor("val_x", mode, patience, lr_decay=0.5)],
                          [keras.callbacks.ReduceLROnPlateau("val_x", factor=0.5, patience=0,
                                                             mode=mode),
                           keras.callbacks.EarlyStopping("val_x", patience=patience, mode=mode,
                                                         restore_best_weights=True)]):
            model = tiny_classifier()
            model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
            for c in callbacks:
                c.set_model(model)
                c.on_train_begin()
            rates, epoch = [], 0
            for epoch, value in enumerate(values):
                model.set_weights([np.full_like(w, epoch) for w in model.get_weights()])
                for c in callbacks:
                    c.on_epoch_end(epoch, {"val_x": value})
                rates.append(float(model.optimizer.learning_rate))
                if model.stop_training:
                    break
            for c in callbacks:
                c.on_train_end()
            runs.append((epoch, rates, float(model.get_weights()[0].flat[0])))
        assert runs[0] == runs[1], (values, patience)


def test_a_graph_that_does_not_convert_keeps_the_trained_model(data_dir, tmp_path,
                                                                monkeypatch, caplog):
    """An ONNX export failing at the end of a training (after a half-written graph) leaves a
    complete model directory without graphs, a warning naming the cause, and a predict that
    runs Keras."""
    import logging

    from seqkit import graphs
    from seqkit.tasks import sentiment

    def broken(model, config, pre, directory):
        (directory / graphs.GRAPH_FILE).write_bytes(b"half")
        raise ValueError("op Foo has no ONNX conversion")

    monkeypatch.setattr(sentiment, "export", broken)
    out = tmp_path / "m"
    logger = logging.getLogger("seqkit")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="seqkit")  # an earlier -q in this process set ERROR
    try:
        train_sentiment(data_dir / "train.csv", out, small_config(epochs=1))
    finally:
        logger.removeHandler(caplog.handler)
    assert "could not write the ONNX graphs (ValueError: op Foo has no ONNX conversion)" in \
        caplog.text
    assert sorted(p.name for p in out.iterdir()) == [
        "config.toml", "curves.png", "logs", "metrics.json", "model.keras", "preprocessor.json"]
    predictor = sentiment.Predictor(str(out))
    assert predictor.backend == "keras" and predictor.predict(["a lovely film"])[0]["label"]


def test_xla_compiles_the_training_step_and_learns_the_same(data_dir, tmp_path, monkeypatch):
    """xla = true: the step that fit runs is an XLA-compiled function, and the run ends
    where the one without it ends, up to rounding (XLA fuses the same operations)."""
    import keras

    from seqkit import training

    compiled = []
    fit = keras.Model.fit

    def watch(model, *args, **kwargs):
        compiled.append(model.jit_compile)
        return fit(model, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "fit", watch)
    runs = {}
    for xla in (False, True):
        out = tmp_path / f"xla-{xla}"
        result = train_sentiment(str(data_dir / "train.csv"), str(out),
                                 small_config(xla=xla, epochs=2))
        runs[xla] = ([h["loss"] for h in result["training"]["history"]], final_weights(out))
    assert compiled == [False, True]
    np.testing.assert_allclose(runs[True][0], runs[False][0], rtol=1e-3)
    for xla_weight, plain_weight in zip(runs[True][1], runs[False][1]):
        np.testing.assert_allclose(xla_weight, plain_weight, rtol=1e-3, atol=1e-4)
    assert training.TrainSpec.from_config(small_config(xla=True)).xla is True
