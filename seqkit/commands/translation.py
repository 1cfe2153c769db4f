"""`seqkit translation train | evaluate | predict`."""

from __future__ import annotations

import click

from seqkit.commands.common import echo_json, task_config, train_options

TOKENIZER_CHOICES = click.Choice(["auto", "char", "whitespace", "sentencepiece"])
PAIR_OPTIONS = ("source_file", "target_file", "reverse", "skip_bad_lines", "encoding")


def pair_options(func):
    for option in reversed([
        click.option("--source-file", type=click.Path(dir_okay=False, allow_dash=True),
                     help="Source sentences, one per line (with --target-file, in place of "
                          "a TSV)."),
        click.option("--target-file", type=click.Path(dir_okay=False),
                     help="Target sentences, line-aligned with --source-file."),
        click.option("--reverse/--no-reverse", default=None,
                     help="Swap the two sides: translate the second column into the first."),
        click.option("--skip-bad-lines", is_flag=True,
                     help="Skip pairs with an empty side or no tab (counted on stderr) "
                          "instead of stopping."),
        click.option("--encoding", help="Text encoding of the input (default UTF-8)."),
    ]):
        func = option(func)
    return func


def _pairs(path, kwargs):
    from seqkit.tasks.translation import PairSource

    return PairSource(path, **{k: kwargs.pop(k) for k in PAIR_OPTIONS})


def _decode_options(func):
    for option in reversed([
        click.option("--beam-size", type=int,
                     help="Beam width; 1 is greedy search (default: the model's, 5)."),
        click.option("--max-length", type=int, default=0,
                     help="Most tokens per translation (default: twice the longest "
                          "training target kept)."),
        click.option("--batch-size", type=int, default=64, show_default=True),
    ]):
        func = option(func)
    return func


@click.group("translation")
def group() -> None:
    """Seq2seq encoder-decoder translation: TSV source<TAB>target, or two aligned files."""


@group.command("train")
@click.argument("train_path", metavar="[TRAIN]", required=False,
                type=click.Path(dir_okay=False, allow_dash=True))
@train_options
@pair_options
@click.option("--tokenizer", "both_tokenizers", type=TOKENIZER_CHOICES,
              help="Tokenizer of both sides (auto: CJK characters and Latin words).")
@click.option("--source-tokenizer", type=TOKENIZER_CHOICES, help="Tokenizer of the source.")
@click.option("--target-tokenizer", type=TOKENIZER_CHOICES, help="Tokenizer of the target.")
@click.option("--vocab-size", type=int, help="Sentencepiece pieces per side.")
@click.option("--attention", type=click.Choice(["bahdanau", "luong", "none"]),
              help="bahdanau (additive) or luong (multiplicative) attention, or none.")
@click.option("--embedding-dim", type=int, help="Embedding size.")
@click.option("--max-length", type=int, help="Tokens kept per side (default: 99th "
                                              "percentile).")
def train_command(train_path, out_dir, valid_path, recipe, set_items, force, resume,
                  both_tokenizers, **kwargs):
    """Train on TRAIN (TSV) or --source-file/--target-file; write -o MODEL_DIR."""
    from seqkit.tasks import translation

    data = _pairs(train_path, kwargs)
    if both_tokenizers:
        for side in ("source_tokenizer", "target_tokenizer"):
            kwargs[side] = kwargs[side] or both_tokenizers
    config = task_config(translation, recipe, kwargs, set_items)
    valid = None
    if valid_path:
        valid = translation.PairSource(valid_path, reverse=data.reverse,
                                       skip_bad_lines=data.skip_bad_lines,
                                       encoding=data.encoding)
    translation.train(data, out_dir, config, valid=valid, force=force, resume=resume)


@group.command("evaluate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data_path", metavar="[DATA]", required=False,
                type=click.Path(dir_okay=False, allow_dash=True))
@pair_options
@_decode_options
@click.option("--target-lang", help="Target language code (zh picks sacreBLEU's zh "
                                    "tokenizer); default: detected from the references.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate_command(model_dir, data_path, beam_size, max_length, batch_size, target_lang,
                     as_json, **kwargs):
    """Score MODEL_DIR on DATA (or --source-file/--target-file): sacreBLEU BLEU and chrF."""
    from seqkit.tasks import translation

    result = translation.evaluate(model_dir, _pairs(data_path, kwargs), beam_size, max_length,
                                  target_lang, batch_size)
    if as_json:
        echo_json(result)
        return
    click.echo(f"BLEU  {result['bleu']:.2f}  {result['bleu_signature']}")
    click.echo(f"chrF  {result['chrf']:.2f}  {result['chrf_signature']}")
    click.echo(f"      {result['bleu_detail']}")
    click.echo(f"sentences {result['sentences']}, beam size {result['beam_size']}")


@group.command("predict")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("input_path", metavar="[INPUT|-]", default="-",
                type=click.Path(dir_okay=False, allow_dash=True))
@_decode_options
@click.option("--n-best", type=int, default=1, show_default=True,
              help="Also list the K best translations (jsonl only).")
@click.option("--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text",
              show_default=True, help="text: one translation per line; jsonl: with its "
                                      "score (log-probability).")
@click.option("--encoding", help="Text encoding of the input (default UTF-8).")
def predict_command(model_dir, input_path, beam_size, max_length, batch_size, n_best, fmt,
                    encoding):
    """Translate each line of INPUT (stdin if omitted or -): one line out per line in,
    in order, written as it goes; an empty line gives an empty line."""
    import sys

    from seqkit.io import RecordWriter
    from seqkit.tasks import translation

    if n_best > 1 and fmt == "text":
        raise click.UsageError("--n-best lists several translations per line: use "
                               "--format jsonl")
    predictor = translation.Predictor(model_dir, batch_size)
    writer = RecordWriter(sys.stdout, "jsonl", []) if fmt == "jsonl" else None
    for records in predictor.stream(input_path, encoding, beam_size=beam_size, n_best=n_best,
                                    max_length=max_length):
        for r in records:
            if writer:
                writer.write(r)
            else:
                sys.stdout.write(r["translation"].replace("\n", " ") + "\n")
        sys.stdout.flush()
