"""`seqkit ner train | evaluate | predict`."""

from __future__ import annotations

import click

from seqkit import choices
from seqkit.commands.common import (BACKEND_OPTION, DATA_FILE, EXISTING_FILE, MODEL_DIR,
                                    add_evaluate, add_export, add_train, apply_options,
                                    batch_size_option, task_module)

COLUMNS = ("token_column", "tag_column", "encoding")


def column_options(func):
    return apply_options([
        click.option("--token-column", type=int,
                     help="Column of the token, from 1 (default 1; -1 is the last)."),
        click.option("--tag-column", type=int,
                     help="Column of the tag, from 1 (default -1, the last)."),
        click.option("--encoding", help="Text encoding of the input (default UTF-8)."),
    ])(func)


def _columns(kwargs) -> dict:
    """The column options given (popped from kwargs); the others keep their defaults."""
    given = {k: kwargs.pop(k, None) for k in COLUMNS}
    return {k: v for k, v in given.items() if v is not None}


def _source(path, kwargs):
    return task_module("ner").Source(path, **_columns(kwargs))


def _sources(train_path, valid_path, kwargs):
    columns = _columns(kwargs)
    Source = task_module("ner").Source
    return Source(train_path, **columns), Source(valid_path, **columns) if valid_path else None


def _show(result: dict) -> str:
    from seqkit import metrics

    return metrics.format_entities(result)


@click.group("ner")
def group() -> None:
    """Sequence tagging (named entities), many-to-many aligned: CoNLL column files."""


add_train(
    group, "ner", help="Train a tagger on TRAIN (CoNLL columns) and write it to -o MODEL_DIR.",
    argument=click.argument("train_path", metavar="TRAIN", type=DATA_FILE),
    data_options=[column_options], sources=_sources, options=[
        click.option("--scheme", type=click.Choice(choices.SCHEME_NAMES, case_sensitive=False),
                     help="Tag scheme (default: detected from the tags)."),
        click.option("--crf/--no-crf", default=None, help="CRF output layer (default on)."),
        click.option("--char-features", type=click.Choice(choices.CHAR_FEATURES),
                     help="Character CNN word features (auto: on unless tokens are single "
                          "characters)."),
        click.option("--embeddings", type=EXISTING_FILE,
                     help="Pretrained word vectors, word2vec/GloVe text format."),
        click.option("--embedding-dim", type=int, help="Word embedding size."),
        click.option("--tokenizer", type=click.Choice(choices.TOKENIZERS),
                     help="How predict splits raw text (auto: characters for char-level "
                          "data, else words)."),
    ])

add_evaluate(
    group, "ner", data_options=[column_options], source=_source, show=_show,
    load_options=[BACKEND_OPTION], plots="entities",
    help="Score MODEL_DIR on tagged DATA: entity precision/recall/F1 (micro and per type, "
         "conlleval-compatible) and token accuracy.")


@group.command("predict")
@click.argument("model_dir", type=MODEL_DIR)
@click.argument("input_path", metavar="[INPUT|-]", default="-",
                type=DATA_FILE)
@click.option("--input-format", type=click.Choice(["text", "conll"]), default="text",
              show_default=True, help="text: one sentence per line; conll: token columns.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "conll"]), default="jsonl",
              show_default=True,
              help="jsonl: {text, entities} per line; conll: token TAB tag.")
@column_options
@batch_size_option(256)
@BACKEND_OPTION
def predict_command(model_dir, input_path, input_format, fmt, batch_size, backend, **kwargs):
    """Tag INPUT (stdin if omitted or -). jsonl writes one record per input line (or
    sentence) with entity character offsets; conll writes token TAB tag, a blank line
    after each sentence. Written as it goes.

    Long lines: a line (or CoNLL line) longer than 1 MiB is cut there, the cut lines
    counted in one warning on stderr; a line (or sentence) of more than 512 tokens is
    tagged in windows of 512 tokens that overlap by 64, joined into one tag per token."""
    import sys

    from seqkit import lifecycle
    from seqkit.io import RecordWriter

    predictor = task_module("ner").Predictor(model_dir, batch_size, backend)
    read = _columns(kwargs)
    read.pop("tag_column", None)  # predict input's tags, if any, are not read
    writer = RecordWriter(sys.stdout, "jsonl", ["text", "entities"])
    for records in lifecycle.stream(predictor, input_path,
                                    read={"input_format": input_format, **read}):
        for r in records:
            if fmt == "jsonl":
                writer.write({"text": r["text"], "entities": r["entities"]})
            else:
                sys.stdout.write("".join(f"{tok}\t{tag}\n" for tok, tag in
                                         zip(r["tokens"], r["tags"])) + "\n")
        writer.flush()


add_export(group, "ner")
