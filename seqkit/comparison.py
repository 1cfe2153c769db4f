"""One recipe trained once per RNN cell, for `seqkit compare`: same data, seed and budget,
each run a normal model directory DIR/CELL (seqkit.lifecycle.train), then one report.

    DIR/simple_rnn/ DIR/gru/ DIR/lstm/    model directories, as `seqkit TASK train` writes
    DIR/compare.json                      per cell: the monitored validation value, epochs,
                                          minutes, parameters, tokens/s, validation scores,
                                          and the gradient flow before and after training
    DIR/compare.png                       validation curves side by side, and gradient flows

The flow "before" is measured on the model `prepare` built, with the run's initial weights,
just before it is fitted; "after" on the saved model; both over the same validation batch.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from seqkit import artifacts, gradients
from seqkit.errors import ConfigError, SeqkitError

log = logging.getLogger("seqkit")

COMPARE_FILE = "compare.json"
PICTURE_FILE = "compare.png"


class _Recorded:
    """A task module whose `prepare` also measures the new model's gradient flow (initial
    weights) on the validation batches, and keeps those batches for the trained model.
    Measuring draws no random numbers, so the run trains exactly as it would without."""

    def __init__(self, task, size: int, length: int | None, note: str = ""):
        self._task, self.size, self.length, self.note = task, size, length, note
        self.batches, self.before = None, None

    def __getattr__(self, name):
        return getattr(self._task, name)

    def prepare(self, config, pre, train, valid, resume):
        log.info("%s", self.note)  # here, not before: a run whose data fails says one line
        plan = self._task.prepare(config, pre, train, valid, resume)
        self.batches = plan.valid if plan.valid is not None else plan.train
        self.before = flow(plan.model, self.batches, self.size, self.length)
        return plan


def flow(model, batches, size: int, length: int | None) -> dict:
    """gradients.measure, or why it could not be measured (caption has no backbone)."""
    try:
        return gradients.measure(model, batches, size, length)
    except SeqkitError as exc:
        return {"error": exc.message}


def run(task, source, out_dir: str | Path, config, cells: list[str], *, valid=None,
        force: bool = False, gradient_batch: int = gradients.DEFAULT_BATCH,
        gradient_length: int | None = None, **options) -> dict:
    """Train `config` once per cell into OUT_DIR/CELL and write compare.json and
    compare.png; returns the report (compare.json's content). `options` go to each
    lifecycle.train as they are."""
    from seqkit import lifecycle

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; expected a folder for the models")
    for cell in cells:  # refuse before the first training, not after it
        artifacts.check_output(out / cell, force=force)
    runs = []
    for number, cell in enumerate(cells, 1):
        cell_config = dataclasses.replace(config, cell=cell)
        cell_config.validate()
        note = f"compare: training {cell} ({number} of {len(cells)}) into {out / cell}"
        recorded = _Recorded(task, gradient_batch, gradient_length, note)
        result = lifecycle.train(recorded, source, out / cell, cell_config, valid=valid,
                                 force=force, **options)
        loaded = artifacts.load(out / cell, task.NAME, task.Config, backend="keras")
        after = flow(loaded.model, recorded.batches, gradient_batch, gradient_length)
        runs.append(summarize(cell, out / cell, result, loaded.model.count_params(),
                              recorded.before, after))
    report = {"task": task.NAME, "cells": cells, "monitor": runs[0]["monitor"],
              "seed": config.seed, "epochs": config.epochs, "max_minutes": config.max_minutes,
              "runs": runs}
    artifacts.write_json(out / COMPARE_FILE, report)
    try:
        from seqkit import plots

        plots.compare_cells(runs, out / PICTURE_FILE)
        log.info("wrote %s and %s", out / COMPARE_FILE, out / PICTURE_FILE)
    except ImportError as exc:  # no matplotlib: the figures are all in compare.json
        log.warning("wrote %s, but no %s: %s", out / COMPARE_FILE, PICTURE_FILE, exc)
    return report


def summarize(cell: str, model_dir: Path, result: dict, parameters: int, before: dict,
              after: dict) -> dict:
    training = result["training"]
    seconds = training.get("train_seconds") or 0.0
    return {"cell": cell, "model_dir": str(model_dir), "monitor": training["monitor"],
            "best": training["best"], "epochs": training["epochs"],
            "best_epoch": training["best_epoch"], "minutes": round(seconds / 60, 3),
            "parameters": int(parameters),
            "tokens_per_second": training.get("train_tokens_per_second"),
            "validation": result["validation"], "history": training["history"],
            "gradients": {"before": before, "after": after}}


def format_table(report: dict) -> str:
    """One row per cell; `flow x1/xT` is how much h_T depends on x_1 relative to x_T."""
    monitor = report["monitor"]
    width = max(len(monitor), 8)
    head = (f"{'cell':<10}  {monitor:>{width}}  {'epochs':>6}  {'minutes':>7}  "
            f"{'parameters':>10}  {'tokens/s':>9}  {'flow x1/xT before':>17}  "
            f"{'after':>8}")
    rows = [head]
    for run in report["runs"]:
        speed = run["tokens_per_second"]
        rows.append(
            f"{run['cell']:<10}  {_number(run['best']):>{width}}  {run['epochs']:>6}  "
            f"{run['minutes']:>7.2f}  {run['parameters']:>10,}  "
            f"{f'{speed:,.0f}' if speed else '-':>9}  "
            f"{_ratio(run['gradients']['before']):>17}  "
            f"{_ratio(run['gradients']['after']):>8}")
    return "\n".join(rows)


def _number(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"


def _ratio(flow: dict) -> str:
    ratio = flow.get("first_to_last")
    return f"{ratio:.1e}" if ratio is not None else "-"
