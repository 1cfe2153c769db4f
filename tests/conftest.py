"""Shared fixtures: tiny data files written per test session, and a CLI runner."""

from __future__ import annotations

import csv
import os
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from seqkit.runtime import load_tensorflow  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
load_tensorflow()

POS_EN = ["great fun", "a lovely film", "wonderful acting", "i loved it", "superb story",
          "warm and funny", "brilliant cast"]
NEG_EN = ["dull mess", "a boring film", "awful acting", "i hated it", "terrible story",
          "cold and dreary", "weak cast"]
POS_ZH = ["房间很干净", "服务很好", "非常满意", "早餐丰富", "位置方便"]
NEG_ZH = ["房间很脏", "服务太差", "非常失望", "早餐太少", "位置偏僻"]


def make_rows(pos, neg, n, seed=0, joiner=" "):
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        pool = pos if label == "pos" else neg
        rows.append((joiner.join(rng.sample(pool, 2)), label))
    return rows


def write_table(path: Path, rows, header=("text", "label"), sep=","):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=sep, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


NER_EN = [("{PER} visited {LOC} .", None), ("{PER} works for {ORG} in {LOC} .", None),
          ("the weather was fine .", None)]
NER_NAMES = {"PER": ["Mara Quell", "Tobin", "Ilse Okafor"], "LOC": ["Port Edra", "Saltmere"],
             "ORG": ["Harbor Bank", "Apex"]}
NER_ZH = {"NAME": ["张伟", "李娜"], "LOC": ["北京", "上海"]}


def make_ner_en(n, seed=0):
    """BIO sentences [(tokens, tags)] from a few templates."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tokens, tags = [], []
        for part in NER_EN[i % len(NER_EN)][0].split():
            if part.startswith("{"):
                kind = part[1:-1]
                words = rng.choice(NER_NAMES[kind]).split()
                tokens += words
                tags += [("B-" if j == 0 else "I-") + kind for j in range(len(words))]
            else:
                tokens.append(part)
                tags.append("O")
        out.append((tokens, tags))
    return out


def make_ner_zh(n, seed=0):
    """Character-level BMES sentences: NAME在LOC工作。"""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        name, loc = rng.choice(NER_ZH["NAME"]), rng.choice(NER_ZH["LOC"])
        chars = list(name + "在" + loc + "工作。")
        tags = ["B-NAME", "E-NAME", "O", "B-LOC", "E-LOC", "O", "O", "O"]
        out.append((chars, tags))
    return out


def write_conll(path: Path, sentences, extra_columns=0, docstart=False):
    with open(path, "w", encoding="utf-8") as fh:
        if docstart:
            fh.write("-DOCSTART- " + "X " * extra_columns + "O\n\n")
        for tokens, tags in sentences:
            for tok, tag in zip(tokens, tags):
                fh.write(" ".join([tok, *["x"] * extra_columns, tag]) + "\n")
            fh.write("\n")
    return path


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("data")
    write_table(d / "train.csv", make_rows(POS_EN, NEG_EN, 60, seed=1))
    write_table(d / "valid.csv", make_rows(POS_EN, NEG_EN, 20, seed=2))
    write_table(d / "zh.tsv", make_rows(POS_ZH, NEG_ZH, 40, seed=3, joiner="，"), sep="\t")
    write_conll(d / "ner_en.conll", make_ner_en(48, seed=1), extra_columns=2, docstart=True)
    write_conll(d / "ner_en_valid.conll", make_ner_en(12, seed=2), extra_columns=2)
    write_conll(d / "ner_zh.bmes", make_ner_zh(40, seed=3))
    return d


def interrupt_after_epoch(monkeypatch, last: int):
    """Make training stop as if killed (Ctrl-C) once epoch `last` (from 0) is checkpointed;
    returns the function that undoes it."""
    from seqkit import training

    real_end = training._Checkpoint.on_epoch_end

    def crash(self, epoch, logs=None):
        real_end(self, epoch, logs)
        if epoch == last:
            raise KeyboardInterrupt

    monkeypatch.setattr(training._Checkpoint, "on_epoch_end", crash)
    return lambda: monkeypatch.setattr(training._Checkpoint, "on_epoch_end", real_end)


def event_scalars(folder):
    """{tag: {step: value}} of every event file in `folder`, read back with TensorFlow."""
    import tensorflow as tf

    found = {}
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                assert value.metadata.plugin_data.plugin_name == "scalars"
                found.setdefault(value.tag, {})[event.step] = float(
                    tf.make_ndarray(value.tensor))
    return found


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys):
    """Run seqkit in this process (TensorFlow is imported once per test session)."""
    from seqkit.cli import run

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


def run_subprocess(*args: str, stdin: str | bytes | None = None, **kwargs):
    """Run `python -m seqkit ARGS` in a new process."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return subprocess.run([sys.executable, "-m", "seqkit", *args], input=data,
                          capture_output=True, timeout=300, **kwargs)


def run_without_tensorflow(*args) -> subprocess.CompletedProcess:
    """Run `seqkit ARGS` in a new process, check that it exited 0 without ever importing
    TensorFlow or Keras, and return it (its stdout is the command's)."""
    code = ("import sys; from seqkit.cli import run; "
            f"rc = run({[str(a) for a in args]!r}); "
            "print('LOADED' if {'tensorflow', 'keras'} & set(sys.modules) else 'CLEAN', rc, "
            "file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.stderr.strip().endswith("CLEAN 0"), proc.stderr
    return proc


def one_error_line(result: Result) -> str:
    """The one `seqkit: error:` line of a failed run (exit 1, no traceback)."""
    lines = result.err.strip().splitlines()
    assert result.code == 1, result.err
    assert len(lines) == 1 and lines[0].startswith("seqkit: error: "), result.err
    assert "Traceback" not in result.err
    return lines[0]


TINY = ["--units", "8", "--set", "embedding_dim=8", "--batch-size", "16", "--seed", "1"]


@pytest.fixture(scope="session")
def sentiment_model(data_dir, tmp_path_factory) -> Path:
    """One small sentiment model, trained once through the CLI and shared by tests."""
    from seqkit.cli import run

    out = tmp_path_factory.mktemp("models") / "sentiment"
    code = run(["-q", "sentiment", "train", str(data_dir / "train.csv"), "--valid",
                str(data_dir / "valid.csv"), "-o", str(out), "--epochs", "6",
                "--learning-rate", "0.02", *TINY])
    assert code == 0
    return out
