"""Every task through the shared harness: train -> save -> load -> same predictions."""

import json
import shutil

import numpy as np
import pytest

from conftest import event_scalars
from harness import TaskCase


def _sentiment_train(data_dir, out_dir):
    from seqkit import config as configlib, lifecycle
    from seqkit.tasks import sentiment

    cfg = configlib.resolve(sentiment.Config, None, {"epochs": 1, "units": 8,
                                                      "embedding_dim": 8, "seed": 3})
    lifecycle.train(sentiment, sentiment.Source(str(data_dir / "train.csv")), str(out_dir), cfg)


def _sentiment_predict(model_dir, inputs):
    from seqkit.tasks import sentiment

    return sentiment.Predictor(str(model_dir)).predict(inputs)


def _ner_train(data_dir, out_dir):
    from seqkit import config as configlib, lifecycle
    from seqkit.tasks import ner

    cfg = configlib.resolve(ner.Config, None, {"epochs": 1, "units": 8, "embedding_dim": 8,
                                                "char_filters": 8, "seed": 3})
    lifecycle.train(ner, ner.Source(str(data_dir / "ner_en.conll")), str(out_dir), cfg)


def _ner_predict(model_dir, inputs):
    from seqkit.tasks import ner

    return ner.Predictor(str(model_dir)).predict(inputs)


def _translation_train(data_dir, out_dir):
    from seqkit import config as configlib, lifecycle
    from seqkit.tasks import translation

    pairs = data_dir / "pairs.tsv"
    pairs.write_text("".join(f"{e}\t{z}\n" for e, z in [
        ("I like tea.", "我喜欢茶。"), ("You like books.", "你喜欢书。"),
        ("We want tea.", "我们想要茶。"), ("They want books.", "他们想要书。")] * 5),
        encoding="utf-8")
    cfg = configlib.resolve(translation.Config, None, {"epochs": 1, "units": 8,
                                                        "embedding_dim": 8, "seed": 3})
    lifecycle.train(translation, translation.Source(str(pairs)), str(out_dir), cfg)


def _translation_predict(model_dir, inputs):
    from seqkit.tasks import translation

    return translation.Predictor(str(model_dir)).predict(inputs, beam_size=3, n_best=2)
def _lm_train(data_dir, out_dir):
    from seqkit import config as configlib, lifecycle
    from seqkit.tasks import lm

    path = data_dir / "lm_en.txt"
    if not path.exists():
        path.write_text("".join(f"{a} {b} .\n" for a in ("the cat", "a dog", "my friend")
                                for b in ("sleeps", "runs home", "reads a book")) * 6)
    cfg = configlib.resolve(lm.Config, None, {"epochs": 1, "units": 8, "embedding_dim": 8,
                                               "sequence_length": 10, "seed": 3})
    lifecycle.train(lm, lm.Source(str(path)), str(out_dir), cfg)


def _lm_predict(model_dir, inputs):
    import numpy as np

    from seqkit.tasks import lm

    predictor = lm.Predictor(str(model_dir))
    return [{**record, "continued": "".join(predictor.generate(line, 8,
                                                               rng=np.random.default_rng(7)))}
            for line, record in zip(inputs, predictor.predict(inputs))]


_caption_images = {}


def _caption_train(data_dir, out_dir):
    from test_caption import make_set, write_rows

    from seqkit import config as configlib, lifecycle
    from seqkit.tasks import caption

    folder = data_dir / "caption"
    table = write_rows(folder / "train.csv", make_set(folder, 12, seed=1))
    _caption_images["dir"] = str(folder / "images")
    cfg = configlib.resolve(caption.Config, None, {
        "epochs": 1, "image_size": 16, "cnn_blocks": 2, "cnn_filters": 4, "units": 8,
        "embedding_dim": 8, "attention": "luong", "seed": 3})
    lifecycle.train(caption, caption.Source(str(table), images_dir=_caption_images["dir"]),
                    str(out_dir), cfg)


def _caption_predict(model_dir, inputs):
    from seqkit.tasks import caption

    return caption.Predictor(str(model_dir), images_dir=_caption_images["dir"]).predict(
        inputs, beam_size=2)


CASES = [
    TaskCase("sentiment", _sentiment_train, _sentiment_predict,
             ["a lovely film", "", "awful acting 很差", "unseen words only"]),
    TaskCase("ner", _ner_train, _ner_predict,
             ["Mara Quell visited Port Edra .", "", "Zorblax works for Apex in 北京."]),
    TaskCase("translation", _translation_train, _translation_predict,
             ["I like tea.", "", "unseen words 未见", "books"]),
    TaskCase("caption", _caption_train, _caption_predict, ["img1_0.png", "", "img1_3.png"]),
    TaskCase("lm", _lm_train, _lm_predict, ["the cat sleeps .", "", "unseen words only"]),
]


CONTRACT = ("NAME", "Config", "Source", "read", "split", "Preprocessor", "prepare",
            "score", "describe", "export", "Predictor")


def test_every_task_has_the_contract_and_a_case():
    import importlib

    from seqkit.cli import TASKS

    assert [case.name for case in CASES] == list(TASKS)
    for name in TASKS:
        module = importlib.import_module(f"seqkit.tasks.{name}")
        assert [part for part in CONTRACT if not hasattr(module, part)] == [], name
        assert module.NAME == name
        for method in ("predict", "chunks"):
            assert callable(getattr(module.Predictor, method, None)), (name, method)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_train_save_load_predict_round_trip(case, data_dir, tmp_path):
    out = tmp_path / "model"
    case.train(data_dir, out)
    graphs = {"sentiment": ["model.onnx"], "ner": ["model.onnx", "crf.npz"],
              "lm": ["model.onnx"]}.get(case.name, ["decoder.onnx", "encoder.onnx"])
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "config.toml", "curves.png", "logs", "metrics.json", "model.keras",
        "preprocessor.json", *graphs])
    norms = event_scalars(out / "logs" / "train")["epoch_gradient_norm"]
    assert norms and all(0 < norm < float("inf") for norm in norms.values())
    assert not (tmp_path / "model.partial").exists()
    first = case.predict(out, case.inputs)
    assert len(first) == len(case.inputs)
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    again = case.predict(moved, case.inputs)
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)


def test_sentiment_in_memory_model_equals_saved(data_dir, tmp_path):
    """Predictions of the trained in-memory model match the saved and reloaded one."""
    import keras

    from seqkit import config as configlib, lifecycle
    from seqkit.tasks import sentiment

    cfg = configlib.resolve(sentiment.Config, None, {"epochs": 1, "units": 8, "embedding_dim": 8})
    texts = ["a lovely film", "awful acting"]
    captured = {}
    original = lifecycle.artifacts.save

    def spy(work_dir, **kwargs):
        captured["probs"] = sentiment.predict_probs(
            kwargs["model"], sentiment.Preprocessor.from_json(kwargs["preprocessor"]), texts, 8)
        return original(work_dir, **kwargs)

    lifecycle.artifacts.save = spy
    try:
        lifecycle.train(sentiment, sentiment.Source(str(data_dir / "train.csv")),
                        str(tmp_path / "m"), cfg)
    finally:
        lifecycle.artifacts.save = original
    loaded = keras.saving.load_model(tmp_path / "m" / "model.keras", safe_mode=True)
    pre = sentiment.Predictor(str(tmp_path / "m")).pre
    again = sentiment.predict_probs(loaded, pre, texts, 8)
    np.testing.assert_allclose(np.stack(captured["probs"]), np.stack(again), rtol=1e-5)
