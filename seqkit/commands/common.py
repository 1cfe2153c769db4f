"""The command template every task's group is made from, and the options they share.

A task's command module declares its data options, its own train options and how its
results are shown; `add_train` and `add_evaluate` make the commands, which parse, build a
Source and a Config, and hand them to seqkit.lifecycle. Task modules are imported only when
a command runs, so `--help` stays instant.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
from typing import Any, Callable

import click

from seqkit import choices
from seqkit.errors import ConfigError, DataError, ModelError


# Inference options are checked where they are declared, so an absurd value is a usage
# error (exit 2, one line) before anything loads; train options are checked by the Config.
BATCH_SIZE = click.IntRange(1, 1 << 16)
BEAM_SIZE = click.IntRange(1, 100)
DECODE_LENGTH = click.IntRange(0, 10_000)  # 0: the model's default
SEED = click.IntRange(0, 2**32 - 1)


class Finite(click.ParamType):
    """A finite float at or above `low` (nan and inf are floats Click lets through)."""

    name = "float"

    def __init__(self, low: float = 0.0):
        self.low = low

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or number < self.low:
            self.fail(f"{value!r} is not a finite number >= {self.low:g}", param, ctx)
        return number


class PathKind(click.ParamType):
    """A path that must be a folder (or a file) if it exists; a missing one is left to the
    reader, which names it. The wrong kind is the user's data, config or model directory
    being wrong, so it is exit 1 with one line like every other such error, not a usage
    error with Click's three lines."""

    def __init__(self, folder: bool, error: type, what: str, exists: bool = False):
        self.folder, self.error, self.what, self.exists = folder, error, what, exists
        self.name = "directory" if folder else "file"

    def convert(self, value, param, ctx):
        path = os.fspath(value)
        if path == "-" and not self.folder:
            return path
        if os.path.exists(path):
            if os.path.isdir(path) != self.folder:
                kind = "a folder" if os.path.isdir(path) else "a file"
                raise self.error(f"is {kind}; expected {self.what}", path=path)
        elif self.exists:
            raise self.error(f"does not exist; expected {self.what}", path=path)
        return path


MODEL_DIR = PathKind(True, ModelError, "a model directory")
FOLDER = PathKind(True, DataError, "a folder")
DATA_FILE = PathKind(False, DataError, "a file")
EXISTING_FILE = PathKind(False, DataError, "a file", exists=True)
RECIPE_FILE = PathKind(False, ConfigError, "a recipe file (TOML)")


def batch_size_option(default: int, help: str | None = None) -> Callable:
    return click.option("--batch-size", type=BATCH_SIZE, default=default, show_default=True,
                        help=help)


def beam_size_option(default: int) -> Callable:
    return click.option("--beam-size", type=BEAM_SIZE,
                        help=f"Beam width, 1 to 100; 1 is greedy search (default: the "
                             f"model's, {default}).")


def apply_options(options: list[Callable]) -> Callable:
    def decorate(func):
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def train_options(func=None, *, skip: tuple[str, ...] = ()):
    """Options of every `train` command; each (but -o, --config, --set, --force, --resume,
    --tensorboard) is a config key and left None when not given, so the recipe's value
    stands. A task whose Config lacks a key (caption has no `layers`) names it in `skip`, so
    --help never offers an option that can only fail: `@train_options(skip=("layers",))`."""
    if func is None:
        return lambda f: train_options(f, skip=skip)
    options = [
        click.option("--valid", "valid_path", type=DATA_FILE,
                     help="Validation data (default: hold out part of the training data)."),
        click.option("-o", "--output", "out_dir", required=True, type=click.Path(),
                     help="Model directory to write."),
        click.option("--config", "recipe", type=RECIPE_FILE,
                     help="Recipe TOML (e.g. tasks/TASK.toml or MODEL_DIR/config.toml)."),
        click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE",
                     help="Override one config key; repeatable."),
        click.option("--force", is_flag=True, help="Overwrite an existing model directory."),
        click.option("--resume", is_flag=True,
                     help="Continue an interrupted run from its last checkpoint."),
        click.option("--tensorboard/--no-tensorboard", default=True, show_default=True,
                     help="Write TensorBoard logs into MODEL_DIR/logs (view them with "
                          "`pip install tensorboard; tensorboard --logdir MODEL_DIR/logs`)."),
        click.option("--distribute", type=click.Choice(choices.DISTRIBUTE), default="auto",
                     show_default=True,
                     help="Train on several devices or machines (tf.distribute): mirrored "
                          "(every local GPU), multi-worker (every machine TF_CONFIG names), "
                          "auto (multi-worker with a TF_CONFIG cluster, else mirrored with "
                          "2+ GPUs, else none). --batch-size stays the global batch."),
        click.option("--cell", type=click.Choice(choices.CELLS), help="Recurrent cell."),
        click.option("--units", type=int, help="Units per recurrent layer."),
        click.option("--layers", type=int, help="Stacked recurrent layers."),
        click.option("--bidirectional/--unidirectional", default=None,
                     help="Run the encoder both ways."),
        click.option("--dropout", type=float, help="Dropout rate."),
        click.option("--recurrent-dropout", type=float,
                     help="Dropout on recurrent connections (slower)."),
        click.option("--epochs", type=int, help="Maximum epochs."),
        click.option("--max-minutes", type=float,
                     help="Stop after the epoch that passes this many minutes (0: no limit)."),
        click.option("--batch-size", type=int,
                     help="Examples per batch (the global batch, split among the replicas "
                          "when distributed)."),
        click.option("--learning-rate", type=float, help="Adam learning rate."),
        click.option("--patience", type=int,
                     help="Epochs without improvement before early stopping."),
        click.option("--seed", type=int, help="Random seed, for repeatable runs."),
        click.option("--mixed-precision", type=click.Choice(choices.PRECISIONS),
                     help="Compute in float16 or bfloat16 with float32 weights (for GPUs: "
                          "float16 on tensor cores with loss scaling, bfloat16 on Ampere or "
                          "newer and TPUs); the saved model is float32."),
    ]
    return apply_options([o for o in options if _option_key(o) not in skip])(func)


def _option_key(option) -> str:
    """The config key a click.option decorator sets (its parameter's name)."""
    return option(click.command()(lambda **_: None)).params[0].name


def table_options(func):
    return apply_options([
        click.option("--text-column", help="Name of the text column."),
        click.option("--sep", help="Field separator (default: from the extension; 'tab' "
                     "for TSV)."),
        click.option("--encoding", help="Text encoding of the input (default UTF-8)."),
    ])(func)


TRAIN_ONLY = ("valid_path", "out_dir", "recipe", "set_items", "force", "resume",
              "tensorboard", "distribute")


def config_options(kwargs: dict[str, Any], exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The options that are config keys (everything but run and data options)."""
    return {k: v for k, v in kwargs.items() if k not in TRAIN_ONLY + exclude}


def task_config(task_module, recipe, kwargs: dict[str, Any], set_items,
                exclude: tuple[str, ...] = ()):
    """The resolved Config of a task: its defaults, the recipe, the options, then --set."""
    from seqkit import config as configlib

    return configlib.resolve(task_module.Config, recipe, config_options(kwargs, exclude),
                             set_items, task=task_module.NAME)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False))


def task_module(name: str):
    return importlib.import_module(f"seqkit.tasks.{name}")


def add_train(group: click.Group, task: str, *, argument: Callable, help: str,
              data_options: list[Callable], options: list[Callable] = (),
              sources: Callable[[str | None, str | None, dict], tuple],
              skip: tuple[str, ...] = ()) -> click.Command:
    """`seqkit TASK train`: the shared train options, the task's data options and its own;
    `sources(train_path, valid_path, kwargs)` pops the data options from kwargs and returns
    (Source, valid Source or None); the rest of kwargs are config keys."""

    @group.command("train", help=help)
    @argument
    @train_options(skip=skip)
    @apply_options([*data_options, *options])
    def command(train_path, out_dir, valid_path, recipe, set_items, force, resume,
                tensorboard, distribute, **kwargs):
        from seqkit import lifecycle

        module = task_module(task)
        source, valid = sources(train_path, valid_path, kwargs)
        config = task_config(module, recipe, kwargs, set_items)
        lifecycle.train(module, source, out_dir, config, valid=valid, force=force,
                        resume=resume, tensorboard=tensorboard, distribute=distribute)

    command.sources = sources  # `seqkit compare` parses as train does (seqkit/commands)
    return command


def add_evaluate(group: click.Group, task: str, *, help: str, data_options: list[Callable],
                 source: Callable[[str, dict], Any], show: Callable[[dict], str],
                 options: list[Callable] = (), metavar: str = "DATA",
                 required: bool = True, batch_size: int = 256,
                 batch_help: str | None = None, load_options: list[Callable] = (),
                 plots: str | None = None) -> click.Command:
    """`seqkit TASK evaluate MODEL_DIR DATA`: `source(data_path, kwargs)` pops the data
    options; `load_options` (e.g. --backend) go to the task's Predictor; the task's own
    options (e.g. the beam) go to its `score`. `plots` (a PLOTS_HELP key) adds --plots DIR:
    pictures of the scores (seqkit.plots), and with "attention" of the attention weights
    over the first --plots-count inputs (the task's `attention_maps`)."""
    load_keys = [_option_key(option) for option in load_options]
    plot_options = [] if plots is None else [click.option(
        "--plots", "plots_dir", type=FOLDER,
        help="Write PNG pictures into this folder (made if needed): " + PLOTS_HELP[plots])]
    if plots == "attention":
        plot_options.append(click.option(
            "--plots-count", type=click.IntRange(1, 1000), default=5, show_default=True,
            help="Inputs whose attention --plots draws, from the first."))

    @group.command("evaluate", help=help)
    @click.argument("model_dir", type=MODEL_DIR)
    @click.argument("data_path", metavar=metavar, required=required,
                    type=DATA_FILE)
    @apply_options([*data_options, *options, *load_options, *plot_options])
    @click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
    @batch_size_option(batch_size, batch_help)
    def command(model_dir, data_path, as_json, batch_size, plots_dir=None, plots_count=0,
                **kwargs):
        from seqkit import lifecycle

        data = source(data_path, kwargs)
        load = {key: kwargs.pop(key) for key in load_keys}
        module = task_module(task)
        if plots_dir:  # before the evaluation: no matplotlib, or no folder, fails at once
            from seqkit import plots as pictures

            pictures.plots_folder(plots_dir)
        result = lifecycle.evaluate(module, model_dir, data,
                                    batch_size=batch_size, load=load, **kwargs)
        click.echo(json.dumps(result, ensure_ascii=False) if as_json else show(result))
        if plots_dir:
            maps = module.attention_maps(model_dir, data, plots_count, **kwargs) \
                if plots == "attention" else None
            written = pictures.write_evaluation(plots_dir, result, maps)
            logging.getLogger("seqkit").info("wrote %d picture%s to %s", len(written),
                                             "" if len(written) == 1 else "s", plots_dir)

    return command


PLOTS_HELP = {
    "confusion": "confusion_matrix.png (counts; colours: the share of each true class).",
    "entities": "entity_f1.png (entity F1 per type).",
    "attention": "attention_N.png for each of the first --plots-count inputs (which "
                 "input each output token attended to).",
}


BACKEND_OPTION = click.option(
    "--backend", type=click.Choice(["onnx", "keras"]), default=None,
    help="onnx: the model's ONNX graph on ONNX Runtime, no TensorFlow (default when the model "
         "directory has one); keras: model.keras on TensorFlow.")


def add_export(group: click.Group, task: str) -> click.Command:
    """`seqkit TASK export MODEL_DIR`: (re)write a model's ONNX graphs from model.keras."""

    @group.command("export")
    @click.argument("model_dir", type=MODEL_DIR)
    def command(model_dir):
        """Write MODEL_DIR's ONNX graphs from its model.keras (for models trained before
        seqkit wrote them), so that predict and evaluate run without TensorFlow."""
        import logging

        module = task_module(task)
        predictor = module.Predictor(model_dir, backend="keras")
        path = module.export(predictor.model, predictor.config, predictor.pre, model_dir)
        logging.getLogger("seqkit").info("wrote %s", path)

    return command
