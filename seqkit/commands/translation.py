"""`seqkit translation train | evaluate | predict`."""

from __future__ import annotations

import click

from seqkit import choices
from seqkit.commands.common import (BACKEND_OPTION, BEAM_SIZE, DATA_FILE, DECODE_LENGTH, MODEL_DIR,
                                    add_evaluate, add_export, add_train, apply_options,
                                    batch_size_option, beam_size_option, task_module)

TOKENIZER_CHOICES = click.Choice(choices.SIDE_TOKENIZERS)
PAIR_OPTIONS = ("source_file", "target_file", "reverse", "skip_bad_lines", "encoding")


def pair_options(func):
    return apply_options([
        click.option("--source-file", type=DATA_FILE,
                     help="Source sentences, one per line (with --target-file, in place of "
                          "a TSV)."),
        click.option("--target-file", type=DATA_FILE,
                     help="Target sentences, line-aligned with --source-file."),
        click.option("--reverse/--no-reverse", default=None,
                     help="Swap the two sides: translate the second column into the first."),
        click.option("--skip-bad-lines", is_flag=True,
                     help="Skip pairs with an empty side or no tab (counted on stderr) "
                          "instead of stopping."),
        click.option("--encoding", help="Text encoding of the input (default UTF-8)."),
    ])(func)


def _source(path, kwargs):
    return task_module("translation").Source(path, **{k: kwargs.pop(k) for k in PAIR_OPTIONS})


def _sources(train_path, valid_path, kwargs):
    """The training Source and the --valid one (a TSV read in the same direction, with the
    same --skip-bad-lines and --encoding). --tokenizer is no config key: it sets both sides'
    tokenizers where they are not given."""
    both = kwargs.pop("both_tokenizers")
    if both:
        for side in ("source_tokenizer", "target_tokenizer"):
            kwargs[side] = kwargs[side] or both
    source = _source(train_path, kwargs)
    valid = None
    if valid_path:
        valid = task_module("translation").Source(
            valid_path, reverse=source.reverse, skip_bad_lines=source.skip_bad_lines,
            encoding=source.encoding)
    return source, valid


DECODE_OPTIONS = [
    beam_size_option(5),
    click.option("--max-length", type=DECODE_LENGTH, default=0,
                 help="Most tokens per translation (default: twice the longest training "
                      "target kept)."),
]


def _decode_options(func):
    return apply_options([*DECODE_OPTIONS, batch_size_option(64)])(func)


@click.group("translation")
def group() -> None:
    """Seq2seq encoder-decoder translation: TSV source<TAB>target, or two aligned files."""


add_train(
    group, "translation",
    help="Train on TRAIN (TSV) or --source-file/--target-file; write -o MODEL_DIR.",
    argument=click.argument("train_path", metavar="[TRAIN]", required=False,
                            type=DATA_FILE),
    data_options=[pair_options], sources=_sources, options=[
        click.option("--tokenizer", "both_tokenizers", type=TOKENIZER_CHOICES,
                     help="Tokenizer of both sides (auto: CJK characters and Latin words)."),
        click.option("--source-tokenizer", type=TOKENIZER_CHOICES,
                     help="Tokenizer of the source."),
        click.option("--target-tokenizer", type=TOKENIZER_CHOICES,
                     help="Tokenizer of the target."),
        click.option("--vocab-size", type=int, help="Sentencepiece pieces per side."),
        click.option("--attention", type=click.Choice(choices.ATTENTIONS),
                     help="bahdanau (additive) or luong (multiplicative) attention, or none."),
        click.option("--embedding-dim", type=int, help="Embedding size."),
        click.option("--max-length", type=int, help="Tokens kept per side (default: 99th "
                                                     "percentile)."),
    ])


def _show(result: dict) -> str:
    return "\n".join([f"BLEU  {result['bleu']:.2f}  {result['bleu_signature']}",
                      f"chrF  {result['chrf']:.2f}  {result['chrf_signature']}",
                      f"      {result['bleu_detail']}",
                      f"sentences {result['sentences']}, beam size {result['beam_size']}"])


add_evaluate(
    group, "translation", metavar="[DATA]", required=False, data_options=[pair_options],
    source=_source, show=_show, batch_size=64, load_options=[BACKEND_OPTION],
    plots="attention", options=[
        *DECODE_OPTIONS,
        click.option("--target-lang", help="Target language code (zh picks sacreBLEU's zh "
                                           "tokenizer); default: detected from the "
                                           "references."),
    ], help="Score MODEL_DIR on DATA (or --source-file/--target-file): sacreBLEU BLEU and "
            "chrF.")


@group.command("predict")
@click.argument("model_dir", type=MODEL_DIR)
@click.argument("input_path", metavar="[INPUT|-]", default="-",
                type=DATA_FILE)
@_decode_options
@click.option("--n-best", type=BEAM_SIZE, default=1, show_default=True,
              help="Also list the K best translations (jsonl only).")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text",
              show_default=True, help="text: one translation per line; jsonl: with its "
                                      "score (log-probability).")
@click.option("--encoding", help="Text encoding of the input (default UTF-8).")
@BACKEND_OPTION
def predict_command(model_dir, input_path, beam_size, max_length, batch_size, n_best, fmt,
                    encoding, backend):
    """Translate each line of INPUT (stdin if omitted or -): one line out per line in,
    in order, written as it goes; an empty line gives an empty line.

    Long lines: a line longer than 1 MiB is cut there, the cut lines counted in one warning
    on stderr; the model reads a source's first max_length tokens (the source side's,
    logged at training, in MODEL_DIR/preprocessor.json) and ignores the rest."""
    import sys

    from seqkit import lifecycle
    from seqkit.io import RecordWriter

    if n_best > 1 and fmt == "text":
        raise click.UsageError("--n-best lists several translations per line: use "
                               "--format jsonl")
    predictor = task_module("translation").Predictor(model_dir, batch_size, backend)
    writer = RecordWriter(sys.stdout, "jsonl", []) if fmt == "jsonl" else None
    for records in lifecycle.stream(predictor, input_path, read={"encoding": encoding},
                                    beam_size=beam_size, n_best=n_best, max_length=max_length):
        for r in records:
            if writer:
                writer.write(r)
            else:
                sys.stdout.write(r["translation"].replace("\n", " ") + "\n")
        sys.stdout.flush()


add_export(group, "translation")
