"""`seqkit info MODEL_DIR`: the report, its JSON, no TensorFlow, Keras's parameter count,
older and damaged model directories; and the pictures of `evaluate --plots DIR`."""

import json
import shutil

import pytest

from conftest import one_error_line, run_without_tensorflow
from seqkit import info
from test_ner import ner_en_model  # noqa: F401 (a fixture)

PNG = b"\x89PNG\r\n\x1a\n"


def test_info_report_and_json(sentiment_model, data_dir, cli):
    r = cli("info", sentiment_model)
    assert r.code == 0 and r.err == ""
    text = r.out
    for line in ("task         sentiment", "written by   seqkit ", "bidirectional yes",
                 "labels       2: neg, pos", "model.keras", "onnx graphs  model.onnx",
                 f"train data   path {data_dir / 'train.csv'} (60 examples)",
                 f"valid data   path {data_dir / 'valid.csv'} (20 examples)",
                 "best epoch   ", "validation   accuracy "):
        assert line in text, line
    found = json.loads(cli("info", sentiment_model, "--json").out)
    assert found["task"] == "sentiment" and found["seqkit_version"]
    assert found["model"]["cell"] == "lstm" and found["model"]["units"] == 8
    assert found["model"]["embedding_dim"] == 8
    assert "bigram_embedding_dim" not in found["model"]  # bigrams are off
    assert found["vocabularies"]["vocab"] > 10
    assert found["labels"] == {"classes": 2, "names": ["neg", "pos"]}
    assert found["data"]["train"] == {"source": {"path": str(data_dir / "train.csv")},
                                      "examples": 60}
    assert found["training"]["epochs"] >= 1 and found["training"]["best_epoch"] >= 1
    assert found["training"]["train_seconds"] > 0 and found["training"]["train_tokens"] > 0
    assert 0 <= found["validation"]["accuracy"] <= 1
    assert {"model.keras", "config.toml", "metrics.json", "preprocessor.json",
            "model.onnx"} <= {f["name"] for f in found["files"]}
    assert all(f["bytes"] > 0 for f in found["files"])
    assert found["onnx"] == ["model.onnx"]


def test_info_loads_no_tensorflow(sentiment_model):
    proc = run_without_tensorflow("info", sentiment_model, "--json")
    assert json.loads(proc.stdout)["task"] == "sentiment"


@pytest.mark.parametrize("model", ["sentiment_model", "ner_en_model"])
def test_parameters_are_keras_count_params(model, request):
    import keras

    from seqkit import artifacts

    path = request.getfixturevalue(model)
    for module in artifacts.LAYER_MODULES:  # their layers register themselves on import
        __import__(module)
    loaded = keras.saving.load_model(path / "model.keras", compile=False, safe_mode=True)
    assert info.gather(path)["parameters"] == loaded.count_params()


def test_ner_info_names_tags_and_feature_vocabularies(ner_en_model, cli):  # noqa: F811
    found = json.loads(cli("info", ner_en_model, "--json").out)
    assert found["task"] == "ner" and found["model"]["crf"] is True
    assert found["labels"]["entity_types"] == ["LOC", "ORG", "PER"]
    assert found["labels"]["scheme"] == "bio"
    assert {"vocab", "chars"} <= set(found["vocabularies"])
    assert "crf.npz" in found["onnx"]
    assert "tags         " in cli("info", ner_en_model).out


def test_an_older_model_says_unknown(sentiment_model, tmp_path, cli):
    old = tmp_path / "old"
    shutil.copytree(sentiment_model, old)
    (old / "metrics.json").unlink()
    (old / "model.onnx").unlink()
    r = cli("info", old)
    assert r.code == 0
    assert "train data   unknown" in r.out and "validation   unknown" in r.out
    assert "training     unknown\nbest epoch   unknown" in r.out
    assert "onnx graphs  none" in r.out
    found = json.loads(cli("info", old, "--json").out)
    assert found["data"] is None and found["training"]["epochs"] is None
    (old / "model.keras").write_bytes(b"not a zip")  # a damaged archive: no count, no failure
    assert json.loads(cli("info", old, "--json").out)["parameters"] is None


@pytest.mark.parametrize("damage, expected", [
    ("missing", "no such model directory"),
    ("file", "is a file; expected a model directory"),
    ("no_config", "missing config.toml"),
    ("bad_config", "damaged config.toml"),
    ("bad_preprocessor", "damaged preprocessor.json"),
])
def test_bad_model_directories_are_one_line(damage, expected, sentiment_model, tmp_path, cli):
    path = tmp_path / "model"
    if damage == "file":
        path.write_text("x")
    elif damage != "missing":
        shutil.copytree(sentiment_model, path)
        name = {"no_config": "config.toml", "bad_config": "config.toml",
                "bad_preprocessor": "preprocessor.json"}[damage]
        if damage == "no_config":
            (path / name).unlink()
        else:
            (path / name).write_text("[[[ not toml or json", encoding="utf-8")
    line = one_error_line(cli("info", path))
    assert expected in line and str(path) in line


# evaluate --plots ------------------------------------------------------------------------------
def _png(path) -> bytes:
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 2000, path
    return data


def test_sentiment_plots_confusion_matrix(sentiment_model, data_dir, tmp_path, cli):
    pytest.importorskip("matplotlib")
    out = tmp_path / "plots" / "nested"
    r = cli("sentiment", "evaluate", sentiment_model, data_dir / "valid.csv", "--json",
            "--plots", out)
    assert r.code == 0 and json.loads(r.out)["accuracy"] >= 0.5  # stdout: the JSON only
    assert sorted(p.name for p in out.iterdir()) == ["confusion_matrix.png"]
    _png(out / "confusion_matrix.png")


def test_ner_plots_entity_f1(ner_en_model, data_dir, tmp_path, cli):  # noqa: F811
    pytest.importorskip("matplotlib")
    r = cli("ner", "evaluate", ner_en_model, data_dir / "ner_en_valid.conll", "--plots",
            tmp_path)
    assert r.code == 0 and r.out.startswith("f1 ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entity_f1.png"]
    _png(tmp_path / "entity_f1.png")


def test_plots_into_a_file_is_one_line(sentiment_model, data_dir, tmp_path, cli):
    target = tmp_path / "taken"
    target.write_text("x")
    line = one_error_line(cli("sentiment", "evaluate", sentiment_model,
                              data_dir / "valid.csv", "--plots", target))
    assert "is a file; expected a folder" in line


def test_plots_without_matplotlib_fail_before_evaluating(sentiment_model, data_dir, tmp_path,
                                                         cli, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    r = cli("sentiment", "evaluate", sentiment_model, data_dir / "valid.csv", "--plots",
            tmp_path / "plots")
    assert "--plots needs matplotlib" in one_error_line(r) and r.out == ""


def test_plots_only_where_there_is_something_to_draw(cli):
    assert "--plots" not in cli("lm", "evaluate", "--help").out
    assert "--plots-count" not in cli("sentiment", "evaluate", "--help").out
    assert "--plots-count" in cli("translation", "evaluate", "--help").out
