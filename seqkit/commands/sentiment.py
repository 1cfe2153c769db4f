"""`seqkit sentiment train | evaluate | predict`."""

from __future__ import annotations

import click

from seqkit import choices
from seqkit.commands.common import (BACKEND_OPTION, DATA_FILE, MODEL_DIR, add_evaluate, add_export,
                                    add_train, batch_size_option, table_options, task_module)

TABLE = ("text_column", "label_column", "sep", "encoding")
LABEL_OPTION = click.option("--label-column", help="Name of the label column.")


def _source(path, kwargs):
    return task_module("sentiment").Source(path, **{k: kwargs.pop(k, None) for k in TABLE})


def _sources(train_path, valid_path, kwargs):
    table = {k: kwargs.pop(k, None) for k in TABLE}
    Source = task_module("sentiment").Source
    return Source(train_path, **table), Source(valid_path, **table) if valid_path else None


def _show(result: dict) -> str:
    from seqkit import metrics

    return metrics.format_classification(result)


@click.group("sentiment")
def group() -> None:
    """Text classification, many-to-one: CSV/TSV with a text and a label column."""


add_train(
    group, "sentiment", help="Train a classifier on TRAIN and write it to -o MODEL_DIR.",
    argument=click.argument("train_path", metavar="TRAIN", type=DATA_FILE),
    data_options=[table_options, LABEL_OPTION], sources=_sources, options=[
        click.option("--tokenizer", type=click.Choice(choices.TOKENIZERS),
                     help="auto: CJK characters and Latin words; char; whitespace."),
        click.option("--max-length", type=int,
                     help="Tokens kept per text (default: 99th percentile)."),
        click.option("--embedding-dim", type=int, help="Embedding size."),
        click.option("--pooling", type=click.Choice(choices.POOLINGS),
                     help="How the sequence becomes one vector."),
    ])

add_evaluate(
    group, "sentiment", data_options=[table_options, LABEL_OPTION], source=_source,
    show=_show, load_options=[BACKEND_OPTION], plots="confusion",
    help="Score MODEL_DIR on labelled DATA: accuracy, macro-F1, per class, confusion matrix.")


@group.command("predict")
@click.argument("model_dir", type=MODEL_DIR)
@click.argument("input_path", metavar="[INPUT|-]", default="-",
                type=DATA_FILE)
@table_options
@click.option("--format", "fmt", type=click.Choice(["jsonl", "tsv", "csv"]), default="jsonl",
              show_default=True, help="tsv: label, one probability per class, text.")
@batch_size_option(256)
@BACKEND_OPTION
def predict_command(model_dir, input_path, fmt, batch_size, backend, **kwargs):
    """Label each line of INPUT (a text file, or a CSV/TSV with a text column; stdin if
    omitted or -). One output record per input line, in order, written as it goes.

    Long lines: a line (or row) longer than 1 MiB is cut there, the cut lines counted in
    one warning on stderr; the model reads a text's first 8 x max_length tokens (max_length:
    logged at training, in MODEL_DIR/preprocessor.json) and ignores the rest."""
    import sys

    from seqkit import lifecycle
    from seqkit.io import RecordWriter

    sentiment = task_module("sentiment")
    predictor = sentiment.Predictor(model_dir, batch_size, backend)
    labels = predictor.labels
    writer = RecordWriter(sys.stdout, fmt, ["label", *[f"p_{x}" for x in labels], "text"])
    for records in lifecycle.stream(predictor, input_path, read=kwargs):
        for r in records:
            probs = r["probabilities"]
            writer.write(r, [r["label"] or "", *[probs.get(x, "") for x in labels], r["text"]])
        writer.flush()


add_export(group, "sentiment")
