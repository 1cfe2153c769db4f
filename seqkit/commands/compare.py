"""`seqkit compare TASK TRAIN --cells simple_rnn,gru,lstm -o DIR [train options]`: the same
recipe trained once per cell (same data, seed and budget), each into DIR/CELL/ as `seqkit
TASK train` would write it, then one table of how they did. DIR/compare.json holds the
figures, with each cell's gradient flow (seqkit/gradients.py) before training and after;
DIR/compare.png draws the validation curves side by side, and the gradient flows.

    seqkit compare sentiment data/sentiment_en.tsv -o runs/cells --epochs 5
    seqkit compare lm data/lm_zh.txt --cells simple_rnn,lstm -o runs/lm_cells \
        --gradient-length 100
"""

from __future__ import annotations

import importlib

import click

from seqkit import choices
from seqkit.commands.common import TRAIN_ONLY, task_config, task_module

# --cells chooses the cell; a comparison starts afresh, on one device (the gradient flow
# is measured on the plain model)
DROPPED = ("cell", "resume", "distribute")


def _cells(ctx, param, value: str) -> list[str]:
    cells = [cell.strip() for cell in value.split(",") if cell.strip()]
    unknown = [cell for cell in cells if cell not in choices.CELLS]
    if unknown or not cells:
        raise click.BadParameter(f"{value!r}: expected cells from {', '.join(choices.CELLS)}, "
                                 "separated by commas")
    if len(set(cells)) < len(cells):
        raise click.BadParameter(f"{value!r} names a cell twice")
    return cells


class CompareGroup(click.Group):
    """One command per task, made from that task's `train` command: the same arguments and
    options (but --cell and --resume), plus --cells. Loaded only when it runs."""

    def list_commands(self, ctx):
        from seqkit.cli import TASKS

        return list(TASKS)

    def get_command(self, ctx, name):
        from seqkit.cli import TASKS

        if name not in TASKS or TASKS[name][0] is None:
            return None
        train = importlib.import_module(TASKS[name][0]).group.get_command(ctx, "train")
        params = [p for p in train.params if p.name not in DROPPED]
        params += [
            click.Option(["--cells"], default=",".join(choices.CELLS), show_default=True,
                         callback=_cells, help="The cells to train, separated by commas."),
            click.Option(["--gradient-batch"], type=click.IntRange(1, 4096), default=32,
                         show_default=True,
                         help="Validation examples the gradient flow is averaged over."),
            click.Option(["--gradient-length"], type=click.IntRange(2, 100_000),
                         help="Steps of the gradient flow (see `seqkit gradients --help`)."),
        ]

        def callback(**kwargs):
            compare(name, train, **kwargs)

        return click.Command(
            name, params=params, callback=callback,
            short_help=f"Train {name} once per cell and compare them.",
            help=f"Train the {name} recipe once per cell (--cells) on the same data, seed and "
                 "budget, each into -o DIR/CELL, and print one table: the monitored "
                 "validation metric, epochs, minutes, parameters, tokens/s, and the gradient "
                 "flow from step 1 (h_T's dependence on x_1 relative to x_T) before and "
                 "after training. Writes DIR/compare.json and DIR/compare.png. Other options "
                 f"are those of `seqkit {name} train`.")


@click.group("compare", cls=CompareGroup,
             short_help="Train one recipe once per RNN cell and compare them.")
def command() -> None:
    """Train the same recipe once per RNN cell and compare them:
    seqkit compare TASK TRAIN --cells simple_rnn,gru,lstm -o DIR [train options]."""


def compare(task: str, train: click.Command, *, train_path, out_dir, valid_path, recipe,
            set_items, force, cells, gradient_batch, gradient_length, **kwargs) -> None:
    from seqkit import comparison

    module = task_module(task)
    # the train command's other run options (not config keys) go to each training as they are
    run_options = {key: kwargs.pop(key) for key in TRAIN_ONLY if key in kwargs}
    run_options["distribute"] = "none"
    source, valid = train.sources(train_path, valid_path, kwargs)
    config = task_config(module, recipe, kwargs, set_items)
    report = comparison.run(module, source, out_dir, config, cells, valid=valid,
                            force=force, gradient_batch=gradient_batch,
                            gradient_length=gradient_length, **run_options)
    click.echo(comparison.format_table(report))
