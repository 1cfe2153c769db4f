"""What a run shows while it works and leaves behind to look at: progress lines on stderr,
TensorBoard logs in MODEL_DIR/logs, training curves in MODEL_DIR/curves.png."""

import re
import sys

import pytest

from conftest import TINY, event_scalars, interrupt_after_epoch

EPOCH_LINE = re.compile(r"seqkit: epoch (\d)/2 step (\d+)/(\d+) \((\d+)%\) loss \d+\.\d{4} "
                        r"accuracy \d\.\d{4} [\d,]+ tokens/s( ETA \d+s)?$")


@pytest.fixture(autouse=True)
def keep_logger_level():
    """-q sets the seqkit logger's level for the process: give later tests theirs back."""
    import logging

    logger = logging.getLogger("seqkit")
    level = logger.level
    yield
    logger.setLevel(level)


def train(cli, data_dir, out, *options, root=()):
    """Two epochs of a tiny classifier; `root` options go before the task, `options` after."""
    return cli(*root, "sentiment", "train", data_dir / "train.csv", "--valid",
               data_dir / "valid.csv", "-o", out, "--epochs", "2", *TINY, *options)


def test_meter_line_has_count_share_fields_rate_and_eta():
    from seqkit import progress

    meter = progress.Meter("epoch 2/10 step", 1200, rate_unit="tokens", scale=50.0,
                           terminal=False)
    meter.done, meter.fields = 340, {"loss": 0.41234}
    meter.start = 100.0
    assert meter.text(now=102.0) == ("epoch 2/10 step 340/1,200 (28%) loss 0.4123 "
                                     "8,500 tokens/s ETA 5s")
    rate_only = progress.Meter("predict", unit="lines", terminal=False)
    rate_only.done, rate_only.start = 3400, 0.0
    assert rate_only.text(now=2.0) == "predict 3,400 lines 1,700 lines/s"
    assert [progress.duration(s) for s in (7, 190, 7500)] == ["7s", "3m10s", "2h05m"]


def test_training_off_a_terminal_logs_progress_lines_and_quiet_silences_them(
        data_dir, tmp_path, cli, monkeypatch):
    from seqkit import summaries

    monkeypatch.setattr(summaries, "STEPS", 1)
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # writing must not need it
    result = train(cli, data_dir, tmp_path / "m", root=("--progress-every", "0"))
    assert result.code == 0, result.err
    assert result.out == ""
    lines = result.err.splitlines()
    steps = [EPOCH_LINE.match(line) for line in lines]
    steps = [m.groups() for m in steps if m]
    # 60 examples in batches of 16: 4 steps an epoch, one line after each
    assert [(e, s, t) for e, s, t, _, _ in steps] == [
        (str(e), str(s), "4") for e in (1, 2) for s in (1, 2, 3, 4)]
    assert all(eta for _, step, _, _, eta in steps if step != "4")  # none once done
    assert not any(eta for _, step, _, _, eta in steps if step == "4")
    assert any(re.match(r"seqkit: epoch 1/2 validation step 2/2 \(100%\) loss ", line)
               for line in lines), lines
    assert all(line.startswith("seqkit: ") for line in lines)

    # TensorBoard: epoch points (steps 1, 2) in train/ and validation/, batch points
    # every step, the gradient norm of the probe batch
    logs = tmp_path / "m" / "logs"
    train_tags = event_scalars(logs / "train")
    for tag in ("epoch_loss", "epoch_accuracy", "epoch_learning_rate", "epoch_gradient_norm"):
        assert sorted(train_tags[tag]) == [1, 2], tag
    for tag in ("batch_loss", "batch_accuracy", "batch_learning_rate", "batch_gradient_norm"):
        assert sorted(train_tags[tag]) == list(range(1, 9)), tag
    assert all(v > 0 for v in train_tags["batch_gradient_norm"].values())
    assert train_tags["epoch_learning_rate"][1] == pytest.approx(0.001)
    valid_tags = event_scalars(logs / "validation")
    assert sorted(valid_tags["epoch_loss"]) == [1, 2] and "epoch_accuracy" in valid_tags

    quiet = train(cli, data_dir, tmp_path / "q", root=("-q", "--progress-every", "0"))
    assert quiet.code == 0 and quiet.err == ""


def test_no_tensorboard_writes_no_logs_and_curves_are_a_png(data_dir, tmp_path, cli):
    from PIL import Image

    result = train(cli, data_dir, tmp_path / "m", "--no-tensorboard")
    assert result.code == 0, result.err
    assert not (tmp_path / "m" / "logs").exists()
    png = tmp_path / "m" / "curves.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:  # two panels: loss and accuracy
        image.verify()
        assert image.size[0] > image.size[1] > 100


def test_a_resumed_run_continues_the_logs_steps(data_dir, tmp_path, cli, monkeypatch):
    from seqkit import summaries

    monkeypatch.setattr(summaries, "STEPS", 1)
    undo = interrupt_after_epoch(monkeypatch, 0)
    assert train(cli, data_dir, tmp_path / "m").code == 130
    undo()
    assert train(cli, data_dir, tmp_path / "m", "--resume").code == 0
    files = sorted((tmp_path / "m" / "logs" / "train").glob("events.out.tfevents.*"))
    assert len(files) == 2  # one per run, in the same folder
    tags = event_scalars(tmp_path / "m" / "logs" / "train")
    assert sorted(tags["batch_loss"]) == list(range(1, 9))
    assert sorted(tags["epoch_loss"]) == [1, 2]


def test_predict_and_evaluate_report_lines_done(sentiment_model, data_dir, tmp_path, cli):
    texts = tmp_path / "texts.txt"
    texts.write_text("great fun\nawful acting\n" * 50)
    predicted = cli("--progress-every", "0", "sentiment", "predict", sentiment_model, texts)
    assert predicted.code == 0 and len(predicted.out.splitlines()) == 100
    lines = predicted.err.splitlines()
    assert re.fullmatch(r"seqkit: predict 100(/100)? lines( \(100%\))? [\d,]+ lines/s",
                        lines[0]), lines
    assert re.fullmatch(r"seqkit: predict 100 lines in \d+s", lines[-1]), lines

    evaluated = cli("--progress-every", "0", "sentiment", "evaluate", sentiment_model,
                    data_dir / "valid.csv")
    assert evaluated.code == 0
    lines = evaluated.err.splitlines()
    assert re.fullmatch(r"seqkit: evaluate 20/20 examples \(100%\) [\d,]+ examples/s",
                        lines[0]), lines
    assert cli("-q", "--progress-every", "0", "sentiment", "evaluate", sentiment_model,
               data_dir / "valid.csv").err == ""
