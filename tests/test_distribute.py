"""train --distribute: TF_CONFIG and mode checks, two real workers on 127.0.0.1, a lost
worker and a resumed cluster, and MirroredStrategy over two logical CPU devices."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import TINY, one_error_line
from seqkit import distribute, gpu
from seqkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sentiment_en.tsv"
SAMPLE_TEST = ROOT / "data" / "sentiment_en_test.tsv"


def tf_config(workers, task_type="worker", index=0, **jobs):
    return {"TF_CONFIG": json.dumps({"cluster": {"worker": workers, **jobs},
                                     "task": {"type": task_type, "index": index}})}


def test_tf_config_names_the_chief_and_the_size():
    two = ["127.0.0.1:1", "127.0.0.1:2"]
    first = distribute.read_cluster(tf_config(two, index=0))
    second = distribute.read_cluster(tf_config(two, index=1))
    assert (first.size, first.chief, first.name) == (2, True, "worker 0")
    assert (second.chief, second.name) == (False, "worker 1")
    # with a chief job, worker 0 is not the chief
    with_chief = tf_config(two, index=0, chief=["127.0.0.1:3"])
    assert not distribute.read_cluster(with_chief).chief
    assert distribute.read_cluster(with_chief).size == 3
    assert distribute.read_cluster(tf_config(two, "chief", 0, chief=["h:3"])).chief
    assert distribute.read_cluster({}) is None
    assert distribute.read_cluster({"TF_CONFIG": '{"task": {}}'}) is None  # no cluster


@pytest.mark.parametrize("text, expected", [
    ("{", "TF_CONFIG is not JSON"),
    ("[1]", "must be a JSON object"),
    ('{"cluster": {"worker": "h:1"}, "task": {"type": "worker"}}', "lists of 'host:port'"),
    ('{"cluster": {"worker": ["h:1"], "ps": ["h:2"]}, "task": {"type": "worker"}}',
     "no parameter servers"),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief"}}', "must name this process"),
    ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 1}}',
     "task index 1 is not among the 1"),
    ('{"cluster": {"worker": ["h:1"], "evaluator": ["h:2"]}, '
     '"task": {"type": "evaluator", "index": 0}}', "runs as 'chief' or 'worker'"),
])
def test_bad_tf_config_is_refused(text, expected):
    with pytest.raises(ConfigError, match=expected):
        distribute.read_cluster({"TF_CONFIG": text})


def test_auto_picks_the_strategy_the_machine_allows():
    two = distribute.read_cluster(tf_config(["h:1", "h:2"]))
    one = distribute.read_cluster(tf_config(["h:1"]))
    assert distribute.resolve_mode("auto", two, gpus=0) == "multi-worker"
    assert distribute.resolve_mode("auto", one, gpus=0) == "none"
    assert distribute.resolve_mode("auto", None, gpus=1) == "none"
    assert distribute.resolve_mode("auto", None, gpus=2) == "mirrored"
    assert distribute.resolve_mode("none", two, gpus=2) == "none"
    assert distribute.resolve_mode("multi-worker", one, gpus=0) == "multi-worker"
    with pytest.raises(ConfigError, match="needs TF_CONFIG"):
        distribute.resolve_mode("multi-worker", None, gpus=0)


@pytest.mark.parametrize("value, ok", [("", True), ("30", True), ("0", False), ("-1", False),
                                       ("nan", False), ("inf", False), ("soon", False)])
def test_worker_timeout_is_checked(monkeypatch, value, ok):
    monkeypatch.setenv(distribute.TIMEOUT_VARIABLE, value)
    if ok:
        assert distribute.timeout() == (float(value) if value else distribute.DEFAULT_TIMEOUT)
    else:
        with pytest.raises(ConfigError, match=distribute.TIMEOUT_VARIABLE):
            distribute.timeout()


def test_recipes_that_miss_the_cudnn_kernels_are_named():
    from seqkit.tasks import sentiment

    assert gpu.kernel_notes(sentiment.Config()) == []
    notes = gpu.kernel_notes(sentiment.Config(cell="simple_rnn", recurrent_dropout=0.2))
    assert len(notes) == 2
    assert "simple_rnn has no fused cuDNN kernel" in notes[0]
    assert "recurrent_dropout = 0.2" in notes[1]


def test_multi_worker_without_a_cluster_is_one_line(cli, data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    result = cli("sentiment", "train", data_dir / "train.csv", "-o", tmp_path / "m",
                 "--distribute", "multi-worker", "--epochs", "1", *TINY)
    assert "needs TF_CONFIG" in one_error_line(result)
    monkeypatch.setenv("TF_CONFIG", "{not json")
    result = cli("sentiment", "train", data_dir / "train.csv", "-o", tmp_path / "m",
                 "--epochs", "1", *TINY)
    assert "TF_CONFIG is not JSON" in one_error_line(result)
    assert not (tmp_path / "m").exists()


def test_keras_internals_the_distribution_relies_on():
    """seqkit.distribute works around keras-team/keras#20585 through these; if this fails,
    a Keras release changed them and --distribute refuses to train."""
    import keras
    from keras.src.backend.tensorflow import trainer

    assert callable(getattr(trainer, "reduce_per_replica", None)), keras.__version__
    assert callable(getattr(trainer, "_collective_all_reduce_multi_worker", None))
    assert callable(getattr(keras.Model, "_symbolic_build", None))
    assert callable(getattr(keras.Model, "_maybe_symbolic_build", None))


# Real workers -------------------------------------------------------------------------------
def start_workers(out: Path, *args: str, timeout: int = 60) -> list[subprocess.Popen]:
    """Two `seqkit sentiment train` processes on 127.0.0.1, the same command each; worker
    i's stderr goes to OUT.wI.log."""
    procs = []
    for index, config in enumerate(distribute.local_cluster(2)):
        env = {**os.environ, "TF_CONFIG": config, distribute.TIMEOUT_VARIABLE: str(timeout)}
        log = open(f"{out}.w{index}.log", "w")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "seqkit", "sentiment", "train", str(SAMPLE), "-o", str(out),
             *args], env=env, stdout=subprocess.DEVNULL, stderr=log))
    return procs


def wait_all(procs, limit=300) -> list[int]:
    return [p.wait(timeout=limit) for p in procs]


def err(out: Path, index: int) -> str:
    return Path(f"{out}.w{index}.log").read_text()


def test_two_workers_train_one_model_like_one_process(tmp_path, cli):
    """The sample trained by two worker processes (the global batch split between them):
    both exit 0, only the chief writes, and its model predicts like the same recipe trained
    in one process (2 epochs: 0.80 and 0.79 test accuracy when written)."""
    out = tmp_path / "cluster"
    assert wait_all(start_workers(out, "--epochs", "2")) == [0, 0], (err(out, 0), err(out, 1))
    assert "2 replica(s) on 2 worker(s); this is worker 0, the chief" in err(out, 0)
    assert "worker 1 done: the chief writes" in err(out, 1)
    assert (out / "model.keras").is_file() and (out / "model.onnx").is_file()
    # the worker wrote nothing: no second directory, no lock, no partial run left
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cluster", "cluster.w0.log", "cluster.w1.log"]
    # both workers took the same steps and saw the same (all-reduced) metrics
    epochs = [[line for line in err(out, i).splitlines() if "epoch 2/2" in line]
              for i in range(2)]
    assert epochs[0][0].split("(")[0] == epochs[1][0].split("(")[0]
    alone = tmp_path / "alone"
    assert cli("-q", "sentiment", "train", SAMPLE, "-o", alone, "--epochs", "2",
               "--distribute", "none").code == 0
    scores = []
    for model in (out, alone):
        result = cli("sentiment", "evaluate", model, SAMPLE_TEST, "--json")
        assert result.code == 0, result.err
        scores.append(json.loads(result.out)["accuracy"])
    assert scores[0] >= 0.7 and abs(scores[0] - scores[1]) <= 0.1, scores


def test_a_lost_worker_stops_the_cluster_and_resume_goes_on(tmp_path):
    """Worker 1 killed after epoch 2: the chief stops with one line, keeping its
    checkpoint; the same command with --resume on both workers finishes the run."""
    out = tmp_path / "m"
    args = ("--epochs", "5", "--set", "patience=10", "--no-tensorboard")
    procs = start_workers(out, *args)
    deadline = time.time() + 240
    while "epoch 2/5" not in err(out, 0) and time.time() < deadline:
        assert procs[0].poll() is None, err(out, 0)
        time.sleep(0.2)
    procs[1].kill()
    assert wait_all(procs)[0] == 1
    lines = err(out, 0).strip().splitlines()
    assert lines[-1].startswith("seqkit: error: worker 0 lost the other workers"), lines[-1]
    assert "Traceback" not in err(out, 0)
    assert (tmp_path / "m.partial" / "checkpoints" / "state.json").is_file()
    assert wait_all(start_workers(out, *args, "--resume")) == [0, 0], err(out, 0)
    assert "resuming after epoch" in err(out, 0) and "resuming after epoch" in err(out, 1)
    assert json.loads((out / "metrics.json").read_text())["training"]["epochs"] == 5


def test_mirrored_over_two_devices(tmp_path, data_dir):
    """MirroredStrategy over two logical CPU devices (what two GPUs get): one process, two
    replicas, each batch split between them."""
    code = ("import sys, tensorflow as tf\n"
            "cpu = tf.config.list_physical_devices('CPU')[0]\n"
            "tf.config.set_logical_device_configuration(cpu, "
            "[tf.config.LogicalDeviceConfiguration()] * 2)\n"
            "from seqkit.cli import run\n"
            f"sys.exit(run({['sentiment', 'train', str(data_dir / 'train.csv'), '-o', str(tmp_path / 'm'), '--distribute', 'mirrored', '--epochs', '2', *TINY]!r}))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "distributed training (mirrored): 2 replica(s) on 1 worker(s)" in proc.stderr
    assert (tmp_path / "m" / "model.keras").is_file()


@pytest.mark.parametrize("task, data, policy", [
    ("sentiment", "train.csv", "float16"),
    ("ner", "ner_en.conll", "bfloat16"),  # the CRF stays in float32
])
def test_mixed_precision_trains_and_saves_a_float32_model(cli, data_dir, tmp_path, task, data,
                                                          policy):
    import zipfile

    out = tmp_path / "m"
    result = cli("-q", task, "train", data_dir / data, "-o", out, "--epochs", "1",
                 "--mixed-precision", policy, *TINY)
    assert result.code == 0, result.err
    assert f'mixed_precision = "{policy}"' in (out / "config.toml").read_text()
    saved = zipfile.ZipFile(out / "model.keras").read("config.json").decode()
    assert "mixed_" not in saved and '"float32"' in saved
    assert (out / "model.onnx").is_file()
    keras_scores = cli(task, "evaluate", out, data_dir / data, "--json", "--backend", "keras")
    onnx_scores = cli(task, "evaluate", out, data_dir / data, "--json")
    assert keras_scores.code == 0 and json.loads(keras_scores.out) == json.loads(onnx_scores.out)


def test_a_worker_that_never_starts_ends_the_wait_with_one_line(tmp_path):
    """Only worker 0 of two is started: making the strategy would wait for worker 1 far
    longer than the timeout; the watchdog ends it with one line and nothing written."""
    out = tmp_path / "m"
    first = json.loads(distribute.local_cluster(1)[0])["cluster"]["worker"][0]
    env = {**os.environ, **tf_config([first, "127.0.0.1:1"]), distribute.TIMEOUT_VARIABLE: "3"}
    proc = subprocess.run([sys.executable, "-m", "seqkit", "sentiment", "train", str(SAMPLE),
                           "-o", str(out)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        "seqkit: error: worker 0: the cluster did not come together within 3 s "
        "(SEQKIT_WORKER_TIMEOUT): start the same command on every worker TF_CONFIG names"]
    assert list(tmp_path.iterdir()) == []
