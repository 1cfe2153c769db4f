"""The command line: exit codes, stdout holding only data, start-up cost, bad inputs."""

import json
import shutil

import pytest

from conftest import one_error_line, run_subprocess, run_without_tensorflow


def test_help_does_not_load_tensorflow():
    code = ("import sys; from seqkit.cli import run; rc = run(['--help']); "
            "print('LOADED' if 'tensorflow' in sys.modules or 'keras' in sys.modules else 'CLEAN')")
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0
    assert "sentiment" in proc.stdout
    assert proc.stdout.strip().endswith("CLEAN")


def test_version_and_tasks(cli):
    from seqkit import __version__

    r = cli("--version")
    assert r.code == 0 and __version__ in r.out
    r = cli("tasks")
    lines = r.out.strip().splitlines()
    assert r.code == 0 and len(lines) == 5
    assert [line.split()[0] for line in lines] == ["sentiment", "ner", "translation",
                                                   "caption", "lm"]


def test_usage_error_exits_2(cli):
    r = cli("sentiment", "train")
    assert r.code == 2 and "Missing argument" in r.err


def test_every_task_is_built(cli):
    r = cli("tasks")
    assert r.code == 0 and "not built yet" not in r.out


def test_unbuilt_task_says_so(cli, monkeypatch):
    from seqkit import cli as climod

    monkeypatch.setitem(climod.TASKS, "caption", (None, "image captioning"))
    r = cli("caption", "train", "x")
    assert r.code == 1 and "not built yet" in r.err


def test_predict_stdout_is_only_data(sentiment_model, data_dir, tmp_path, cli):
    src = tmp_path / "in.txt"
    src.write_text("a lovely film\n\nawful acting\n", encoding="utf-8")
    r = cli("sentiment", "predict", sentiment_model, src)
    assert r.code == 0
    records = [json.loads(line) for line in r.out.splitlines()]
    assert [rec["text"] for rec in records] == ["a lovely film", "", "awful acting"]
    assert records[1] == {"text": "", "label": None, "probabilities": {}}
    assert records[0]["label"] == "pos" and records[2]["label"] == "neg"
    assert abs(sum(records[0]["probabilities"].values()) - 1) < 1e-4


def test_predict_formats_and_table_input(sentiment_model, data_dir, cli):
    r = cli("sentiment", "predict", sentiment_model, data_dir / "valid.csv", "--format", "tsv")
    rows = [line.split("\t") for line in r.out.splitlines()]
    assert r.code == 0 and len(rows) == 20 and all(len(row) == 4 for row in rows)
    assert {row[0] for row in rows} <= {"pos", "neg"}
    r = cli("sentiment", "predict", sentiment_model, data_dir / "valid.csv", "--format", "csv")
    lines = r.out.splitlines()
    assert lines[0] == "label,p_neg,p_pos,text" and len(lines) == 21


def test_evaluate_json_and_report(sentiment_model, data_dir, cli):
    r = cli("sentiment", "evaluate", sentiment_model, data_dir / "valid.csv", "--json")
    result = json.loads(r.out)
    assert r.code == 0 and result["accuracy"] >= 0.8
    assert set(result) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix"}
    assert sum(map(sum, result["confusion_matrix"]["matrix"])) == 20
    r = cli("sentiment", "evaluate", sentiment_model, data_dir / "valid.csv")
    assert r.code == 0 and r.out.startswith("accuracy") and "confusion matrix" in r.out


def test_predict_in_a_pipeline_from_stdin(sentiment_model):
    proc = run_subprocess("sentiment", "predict", str(sentiment_model), "--format", "tsv",
                          stdin="a lovely film\nawful acting\n")
    assert proc.returncode == 0
    assert [line.split("\t")[0] for line in proc.stdout.decode().splitlines()] == ["pos", "neg"]
    assert b"Traceback" not in proc.stderr and b"cuda" not in proc.stderr.lower()


def test_closed_pipe_is_not_a_traceback(sentiment_model, tmp_path):
    import subprocess
    import sys

    src = tmp_path / "many.txt"
    src.write_text("a lovely film\n" * 20000)
    proc = subprocess.run(
        f"{sys.executable} -m seqkit sentiment predict {sentiment_model} {src} | head -n 2",
        shell=True, capture_output=True, timeout=300)
    assert proc.stdout.decode().count("\n") == 2
    assert b"Traceback" not in proc.stderr and b"BrokenPipe" not in proc.stderr


def test_existing_model_dir_is_not_overwritten(sentiment_model, data_dir, cli):
    before = (sentiment_model / "model.keras").stat().st_mtime_ns
    r = cli("sentiment", "train", data_dir / "train.csv", "-o", sentiment_model)
    assert r.code == 1 and "already exists" in r.err and "--force" in r.err
    assert (sentiment_model / "model.keras").stat().st_mtime_ns == before


@pytest.mark.parametrize("content, expected", [
    (b"words,y\nhello,1\n", "bad.csv:1: cannot find the text column"),
    (b"", "bad.csv: file is empty"),
    (b"text,label\nfine,pos\n\xff\xfe bad,neg\n", "bad.csv:3: bytes"),
    (b"text,label\nfine,pos\nsplit,here,neg\n", "bad.csv:3: found 3 fields, expected 2"),
])
def test_bad_training_data(content, expected, tmp_path, cli):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content)
    line = one_error_line(cli("sentiment", "train", bad, "-o", tmp_path / "m"))
    assert expected in line
    assert not (tmp_path / "m").exists()
    # running it again reports the data again, not a leftover run to resume
    assert one_error_line(cli("sentiment", "train", bad, "-o", tmp_path / "m")) == line


def test_unknown_label_at_evaluate(sentiment_model, tmp_path, cli):
    bad = tmp_path / "test.csv"
    bad.write_text("text,label\na lovely film,pos\nso so,neutral\n")
    line = one_error_line(cli("sentiment", "evaluate", sentiment_model, bad))
    assert "test.csv:3: label 'neutral' was not seen in training" in line
    assert "known labels: neg, pos" in line


def test_damaged_or_foreign_model_dir(sentiment_model, tmp_path, cli):
    broken = tmp_path / "broken"
    shutil.copytree(sentiment_model, broken)
    (broken / "model.keras").write_bytes(b"not a zip")
    assert "model.keras is damaged: not a .keras (zip) archive" in one_error_line(
        cli("sentiment", "predict", broken, "-", "--backend", "keras"))
    (broken / "model.onnx").write_bytes(b"not a graph")  # the default backend's file
    assert "cannot load its ONNX graphs" in one_error_line(
        cli("sentiment", "predict", broken, "-"))
    (broken / "preprocessor.json").unlink()
    assert "missing preprocessor.json" in one_error_line(cli("sentiment", "predict", broken))
    foreign = tmp_path / "foreign"
    shutil.copytree(sentiment_model, foreign)
    cfg = foreign / "config.toml"
    cfg.write_text(cfg.read_text().replace('task = "sentiment"', 'task = "ner"'))
    assert "this is a 'ner' model" in one_error_line(cli("sentiment", "evaluate", foreign, cfg))
    assert "no such model directory" in one_error_line(
        cli("sentiment", "predict", tmp_path / "nothing"))


def test_bad_config_values(data_dir, tmp_path, cli):
    line = one_error_line(cli("sentiment", "train", data_dir / "train.csv", "-o", tmp_path / "m",
                              "--set", "colour=blue"))
    assert "unknown key colour" in line and "known keys:" in line
    line = one_error_line(cli("sentiment", "train", data_dir / "train.csv", "-o", tmp_path / "m",
                              "--set", "units=lots"))
    assert "units must be int" in line


def test_debug_shows_traceback(tmp_path, cli):
    r = cli("--debug", "sentiment", "train", tmp_path / "missing.csv", "-o", tmp_path / "m")
    assert r.code == 1 and "Traceback" in r.err and "no such file" in r.err


def test_ctrl_c_exits_130_and_keeps_a_resumable_checkpoint(data_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "m"
    # a shell starts background jobs with SIGINT ignored, and a child inherits that (so
    # `pytest &` would make seqkit ignore the Ctrl-C): give the child the default
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqkit", "sentiment", "train", str(data_dir / "train.csv"),
         "-o", str(out), "--epochs", "500", "--patience", "500", "--units", "8"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    state = tmp_path / "m.partial" / "checkpoints" / "state.json"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    err = err.decode()
    assert "--resume" in err and "Traceback" not in err and err.rstrip().endswith("interrupted")
    assert state.exists() and not out.exists()


def test_train_help_offers_only_options_the_task_has(cli):
    # caption's encoder is a CNN: no recurrent layers or direction to set
    caption = cli("caption", "train", "--help").out
    assert "--cell" in caption and "--layers" not in caption and "--bidirectional" not in caption
    assert "--layers" in cli("sentiment", "train", "--help").out


def test_stderr_holds_only_seqkit_lines(data_dir, tmp_path):
    """TensorFlow's C++ side logs at import and later, whenever an op or a tf.data pipeline
    first runs; with its log level at 0 it says the most. Only --debug lets it through."""
    import os

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    train = ("sentiment", "train", str(data_dir / "train.csv"), "--epochs", "1",
             "--units", "4", "--set", "embedding_dim=4")
    shown = run_subprocess("--debug", *train, "-o", str(tmp_path / "debug"), env=env)
    lines = shown.stderr.decode().splitlines()
    first_own = next(i for i, line in enumerate(lines) if line.startswith("seqkit: "))
    assert shown.returncode == 0
    # the control: native lines come after TensorFlow's import too (from tf.data)
    assert any(not line.startswith("seqkit: ") for line in lines[first_own:]), lines

    trained = run_subprocess(*train, "-o", str(tmp_path / "model"), env=env)
    predicted = run_subprocess("sentiment", "predict", str(tmp_path / "model"),
                               stdin="good\n", env=env)
    for proc in (trained, predicted):
        assert proc.returncode == 0
        lines = proc.stderr.decode().splitlines()
        assert all(line.startswith("seqkit: ") for line in lines), lines
    # one end-of-epoch line (progress lines, "epoch 1/1 step ...", come every 30 s on a slow
    # machine)
    assert trained.stderr.decode().count("seqkit: epoch 1/1: ") == 1
    assert json.loads(predicted.stdout)["text"] == "good"


def test_task_modules_import_without_tensorflow():
    """Config, Source, read, split, Preprocessor and decoding are pure Python, so that
    predict can run without TensorFlow; Keras is imported by model code when it runs."""
    import subprocess
    import sys

    from seqkit.cli import TASKS

    code = ("import importlib, sys\n"
            f"for name in {list(TASKS)!r}:\n"
            "    module = importlib.import_module('seqkit.tasks.' + name)\n"
            "    module.Preprocessor.from_json, module.Config().validate()\n"
            "import seqkit.lifecycle, seqkit.batching, seqkit.corpora, seqkit.decoding\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_predict_answers_each_line_while_the_input_stays_open(sentiment_model):
    """An interactive pipe gets each answer at once, not after 1,024 lines or the end."""
    import select
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "seqkit", "sentiment", "predict",
                             str(sentiment_model)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        answers = []
        for text in ("a lovely film", "awful acting"):
            proc.stdin.write(f"{text}\n".encode())
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            assert ready, f"no answer to {text!r} while the input stays open"
            answers.append(json.loads(proc.stdout.readline()))
        proc.stdin.close()
        assert proc.wait(60) == 0 and proc.stdout.read() == b""
    finally:
        proc.kill()
    assert [a["text"] for a in answers] == ["a lovely film", "awful acting"]
    assert [a["label"] for a in answers] == ["pos", "neg"]


def test_predict_runs_the_onnx_graph_without_tensorflow(sentiment_model, tmp_path, cli):
    """Training writes model.onnx; predict runs it on ONNX Runtime in a process that never
    imports TensorFlow or Keras, with Keras's labels and probabilities within 1e-4. Its
    LSTM is ONNX's own operator (seqkit.native_rnn), not tf2onnx's loop."""
    import onnx as onnxlib

    ops = {n.op_type for n in onnxlib.load(str(sentiment_model / "model.onnx")).graph.node}
    assert "LSTM" in ops and "Loop" not in ops
    src = tmp_path / "in.txt"
    src.write_text("a lovely film\n\nawful acting\nwords never seen\n", encoding="utf-8")
    proc = run_without_tensorflow("sentiment", "predict", sentiment_model, src)
    onnx = [json.loads(line) for line in proc.stdout.splitlines()]
    r = cli("sentiment", "predict", sentiment_model, src, "--backend", "keras")
    keras = [json.loads(line) for line in r.out.splitlines()]
    assert r.code == 0 and len(onnx) == len(keras) == 4
    assert [x["label"] for x in onnx] == [x["label"] for x in keras] == ["pos", None, "neg",
                                                                          keras[3]["label"]]
    for a, b in zip(onnx, keras):
        assert a["probabilities"].keys() == b["probabilities"].keys()
        for label, p in a["probabilities"].items():
            assert abs(p - b["probabilities"][label]) <= 1e-4


def test_export_writes_the_graph_of_a_model_trained_without_one(sentiment_model, tmp_path,
                                                                  cli):
    old = tmp_path / "old"
    shutil.copytree(sentiment_model, old)
    (old / "model.onnx").unlink()
    src = tmp_path / "in.txt"
    src.write_text("a lovely film\nawful acting\n", encoding="utf-8")
    assert "seqkit sentiment export" in one_error_line(
        cli("sentiment", "predict", old, src, "--backend", "onnx"))
    on_keras = cli("sentiment", "predict", old, src)  # no graph: the Keras model
    assert on_keras.code == 0
    r = cli("sentiment", "export", old)
    assert r.code == 0 and r.out == "" and (old / "model.onnx").is_file()
    on_onnx = cli("sentiment", "predict", old, src, "--format", "tsv")
    assert on_onnx.code == 0
    assert [line.split("\t")[0] for line in on_onnx.out.splitlines()] == [
        json.loads(line)["label"] for line in on_keras.out.splitlines()]
    r = cli("sentiment", "evaluate", old, src, "--backend", "keras")
    assert r.code == 1  # a text file has no label column: refused as before, on either backend


@pytest.mark.parametrize("command", [["sentiment", "predict"], ["sentiment", "predict",
                                                                "--backend", "keras"]])
def test_a_reader_that_goes_away_ends_the_run_quietly(command, sentiment_model, tmp_path):
    """`seqkit ... predict | head -1`: exit 0 and nothing on stderr (Click's own EPIPE
    handling would exit 1)."""
    import subprocess
    import sys

    lines = tmp_path / "many.txt"
    lines.write_text("a lovely film\nawful acting\n" * 20000, encoding="utf-8")
    args = [*command[:2], str(sentiment_model), str(lines), *command[2:]]
    proc = subprocess.Popen([sys.executable, "-m", "seqkit", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()  # as head does after its line
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert first.startswith(b"{") and err == b""
