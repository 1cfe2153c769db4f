"""`seqkit compare TASK TRAIN --cells ... -o DIR`: one recipe trained once per cell, each a
normal model directory, one table, compare.json and compare.png (seqkit/comparison.py)."""

import json

import pytest

from conftest import NEG_EN, POS_EN, TINY, make_rows, one_error_line, write_table

CELLS = ("simple_rnn", "lstm")


@pytest.fixture(scope="module")
def compared(data_dir, tmp_path_factory):
    """Two cells, one epoch each, through the CLI (the table is kept from stdout)."""
    import contextlib
    import io

    from seqkit.cli import run

    out = tmp_path_factory.mktemp("compare") / "cells"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = run(["-q", "compare", "sentiment", str(data_dir / "train.csv"), "--valid",
                    str(data_dir / "valid.csv"), "--cells", ",".join(CELLS), "-o", str(out),
                    "--epochs", "1", "--no-tensorboard", *TINY])
    assert code == 0
    return out, stdout.getvalue()


def test_one_model_directory_per_cell_and_one_table(compared):
    from seqkit import artifacts
    from seqkit.tasks import sentiment

    out, table = compared
    lines = table.splitlines()
    assert lines[0].split()[:7] == ["cell", "val_accuracy", "epochs", "minutes", "parameters",
                                    "tokens/s", "flow"]
    assert [line.split()[0] for line in lines[1:]] == list(CELLS)
    for cell in CELLS:
        loaded = artifacts.load(out / cell, "sentiment", sentiment.Config)  # a normal one
        assert loaded.config.cell == cell and loaded.config.seed == 1
        assert loaded.config.units == 8 and loaded.config.epochs == 1
        assert loaded.metrics["training"]["epochs"] == 1


def test_compare_json_records_the_gradient_flow_before_and_after(compared):
    out, _ = compared
    report = json.loads((out / "compare.json").read_text())
    assert report["task"] == "sentiment" and report["cells"] == list(CELLS)
    assert report["monitor"] == "val_accuracy" and report["seed"] == 1
    runs = {run["cell"]: run for run in report["runs"]}
    assert set(runs) == set(CELLS)
    for cell, run in runs.items():
        assert 0 <= run["best"] <= 1 and run["epochs"] == 1 and run["parameters"] > 0
        assert run["tokens_per_second"] > 0 and run["minutes"] >= 0
        assert run["history"][0]["val_accuracy"] == run["best"]
        for moment in ("before", "after"):
            flow = run["gradients"][moment]
            assert flow["cell"] == cell and flow["bidirectional"]
            assert len(flow["norms"]) == flow["length"] >= 2 and flow["relative"][-1] == 1.0
        # the same validation batch before and after
        assert run["gradients"]["before"]["length"] == run["gradients"]["after"]["length"]
        assert run["gradients"]["before"]["norms"] != run["gradients"]["after"]["norms"]
    pytest.importorskip("matplotlib")
    assert (out / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cells_and_the_output_are_checked_first(data_dir, tmp_path, cli):
    r = cli("compare", "sentiment", data_dir / "train.csv", "--cells", "lstm,rnn", "-o",
            tmp_path / "c")
    assert r.code == 2 and "Invalid value for '--cells'" in r.err
    assert "expected cells from simple_rnn, gru, lstm" in r.err
    r = cli("compare", "sentiment", data_dir / "train.csv", "--cells", "gru,gru", "-o",
            tmp_path / "c")
    assert r.code == 2 and "names a cell twice" in r.err
    (tmp_path / "c" / "gru").mkdir(parents=True)
    line = one_error_line(cli("compare", "sentiment", data_dir / "train.csv", "--cells",
                              "lstm,gru", "-o", tmp_path / "c"))
    assert "gru already exists; pass --force" in line
    assert not (tmp_path / "c" / "lstm").exists()  # refused before the first training
    bad = write_table(tmp_path / "one.csv", make_rows(POS_EN, NEG_EN, 1))
    line = one_error_line(cli("compare", "sentiment", bad, "-o", tmp_path / "d"))
    assert "one.csv" in line and not (tmp_path / "d" / "simple_rnn").exists()
    r = cli("compare", "sentiment", "--help")
    assert r.code == 0 and "--cells" in r.out and "--text-column" in r.out
    assert "--cell " not in r.out and "--resume" not in r.out
    r = cli("compare", "nosuchtask", data_dir / "train.csv")
    assert r.code == 2
