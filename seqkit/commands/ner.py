"""`seqkit ner train | evaluate | predict`."""

from __future__ import annotations

import click

from seqkit.commands.common import apply_options, echo_json, task_config, train_options

COLUMN_OPTIONS = ("token_column", "tag_column", "encoding")
SCHEME_CHOICES = ["auto", "iob1", "bio", "iob2", "bioes", "iobes", "bmes"]


def column_options(func):
    return apply_options([
        click.option("--token-column", type=int,
                     help="Column of the token, from 1 (default 1; -1 is the last)."),
        click.option("--tag-column", type=int,
                     help="Column of the tag, from 1 (default -1, the last)."),
        click.option("--encoding", help="Text encoding of the input (default UTF-8)."),
    ])(func)


def _columns(kwargs):
    from seqkit.tasks.ner import Columns

    given = {k: kwargs.pop(k, None) for k in COLUMN_OPTIONS}
    return Columns(**{k: v for k, v in given.items() if v is not None})


@click.group("ner")
def group() -> None:
    """Sequence tagging (named entities), many-to-many aligned: CoNLL column files."""


@group.command("train")
@click.argument("train_path", metavar="TRAIN", type=click.Path(dir_okay=False))
@train_options
@column_options
@click.option("--scheme", type=click.Choice(SCHEME_CHOICES, case_sensitive=False),
              help="Tag scheme (default: detected from the tags).")
@click.option("--crf/--no-crf", default=None, help="CRF output layer (default on).")
@click.option("--char-features", type=click.Choice(["auto", "cnn", "none"]),
              help="Character CNN word features (auto: on unless tokens are single "
                   "characters).")
@click.option("--embeddings", type=click.Path(dir_okay=False, exists=True),
              help="Pretrained word vectors, word2vec/GloVe text format.")
@click.option("--embedding-dim", type=int, help="Word embedding size.")
@click.option("--tokenizer", type=click.Choice(["auto", "char", "whitespace"]),
              help="How predict splits raw text (auto: characters for char-level data, "
                   "else words).")
def train_command(train_path, out_dir, valid_path, recipe, set_items, force, resume, **kwargs):
    """Train a tagger on TRAIN (CoNLL columns) and write it to -o MODEL_DIR."""
    from seqkit.tasks import ner

    columns = _columns(kwargs)
    config = task_config(ner, recipe, kwargs, set_items)
    ner.train(train_path, out_dir, config, valid_path=valid_path, columns=columns,
              force=force, resume=resume)


@group.command("evaluate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data_path", metavar="DATA", type=click.Path(dir_okay=False, allow_dash=True))
@column_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--batch-size", type=int, default=256, show_default=True)
def evaluate_command(model_dir, data_path, as_json, batch_size, **kwargs):
    """Score MODEL_DIR on tagged DATA: entity precision/recall/F1 (micro and per type,
    conlleval-compatible) and token accuracy."""
    from seqkit import metrics
    from seqkit.tasks import ner

    result = ner.evaluate(model_dir, data_path, _columns(kwargs), batch_size)
    if as_json:
        echo_json(result)
    else:
        click.echo(metrics.format_entities(result))


@group.command("predict")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("input_path", metavar="[INPUT|-]", default="-",
                type=click.Path(dir_okay=False, allow_dash=True))
@click.option("--input-format", type=click.Choice(["text", "conll"]), default="text",
              show_default=True, help="text: one sentence per line; conll: token columns.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "conll"]), default="jsonl",
              show_default=True,
              help="jsonl: {text, entities} per line; conll: token TAB tag.")
@column_options
@click.option("--batch-size", type=int, default=256, show_default=True)
def predict_command(model_dir, input_path, input_format, fmt, batch_size, **kwargs):
    """Tag INPUT (stdin if omitted or -). jsonl writes one record per input line (or
    sentence) with entity character offsets; conll writes token TAB tag, a blank line
    after each sentence. Written as it goes."""
    import sys

    from seqkit.io import RecordWriter
    from seqkit.tasks import ner

    predictor = ner.Predictor(model_dir, batch_size)
    writer = RecordWriter(sys.stdout, "jsonl", ["text", "entities"])
    for records in predictor.stream(input_path, input_format, _columns(kwargs)):
        for r in records:
            if fmt == "jsonl":
                writer.write({"text": r["text"], "entities": r["entities"]})
            else:
                sys.stdout.write("".join(f"{tok}\t{tag}\n" for tok, tag in
                                         zip(r["tokens"], r["tags"])) + "\n")
        writer.flush()
