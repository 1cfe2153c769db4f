"""`seqkit sentiment train | evaluate | predict`."""

from __future__ import annotations

import click

from seqkit.commands.common import echo_json, table_options, task_config, train_options

DATA_OPTIONS = ("text_column", "label_column", "sep", "encoding")


def _table(kwargs):
    from seqkit.tasks.sentiment import TableOptions

    return TableOptions(**{k: kwargs.pop(k, None) for k in DATA_OPTIONS})


@click.group("sentiment")
def group() -> None:
    """Text classification, many-to-one: CSV/TSV with a text and a label column."""


@group.command("train")
@click.argument("train_path", metavar="TRAIN", type=click.Path(dir_okay=False))
@train_options
@table_options
@click.option("--label-column", help="Name of the label column.")
@click.option("--tokenizer", type=click.Choice(["auto", "char", "whitespace"]),
              help="auto: CJK characters and Latin words; char; whitespace.")
@click.option("--max-length", type=int, help="Tokens kept per text (default: 99th percentile).")
@click.option("--embedding-dim", type=int, help="Embedding size.")
@click.option("--pooling", type=click.Choice(["last", "max", "mean"]),
              help="How the sequence becomes one vector.")
def train_command(train_path, out_dir, valid_path, recipe, set_items, force, resume, **kwargs):
    """Train a classifier on TRAIN and write it to -o MODEL_DIR."""
    from seqkit.tasks import sentiment

    table = _table(kwargs)
    config = task_config(sentiment, recipe, kwargs, set_items)
    sentiment.train(train_path, out_dir, config, valid_path=valid_path, table=table,
                    force=force, resume=resume)


@group.command("evaluate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data_path", metavar="DATA", type=click.Path(dir_okay=False, allow_dash=True))
@table_options
@click.option("--label-column", help="Name of the label column.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--batch-size", type=int, default=256, show_default=True)
def evaluate_command(model_dir, data_path, as_json, batch_size, **kwargs):
    """Score MODEL_DIR on labelled DATA: accuracy, macro-F1, per class, confusion matrix."""
    from seqkit import metrics
    from seqkit.tasks import sentiment

    result = sentiment.evaluate(model_dir, data_path, _table(kwargs), batch_size)
    if as_json:
        echo_json(result)
    else:
        click.echo(metrics.format_classification(result))


@group.command("predict")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("input_path", metavar="[INPUT|-]", default="-",
                type=click.Path(dir_okay=False, allow_dash=True))
@table_options
@click.option("--format", "fmt", type=click.Choice(["jsonl", "tsv", "csv"]), default="jsonl",
              show_default=True, help="tsv: label, one probability per class, text.")
@click.option("--batch-size", type=int, default=256, show_default=True)
def predict_command(model_dir, input_path, fmt, batch_size, **kwargs):
    """Label each line of INPUT (a text file, or a CSV/TSV with a text column; stdin if
    omitted or -). One output record per input line, in order, written as it goes."""
    import sys

    from seqkit.io import RecordWriter
    from seqkit.tasks import sentiment

    table = _table(kwargs)
    predictor = sentiment.Predictor(model_dir, batch_size)
    labels = predictor.labels
    writer = RecordWriter(sys.stdout, fmt, ["label", *[f"p_{x}" for x in labels], "text"])
    for records in predictor.stream(input_path, table):
        for r in records:
            probs = r["probabilities"]
            writer.write(r, [r["label"] or "", *[probs.get(x, "") for x in labels], r["text"]])
        writer.flush()
