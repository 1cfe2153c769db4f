"""`seqkit lm train | evaluate | generate | score`."""

from __future__ import annotations

import sys

import click

from seqkit.commands.common import echo_json, task_config, train_options

encoding_option = click.option("--encoding", help="Text encoding of the input (default UTF-8).")


@click.group("lm")
def group() -> None:
    """Language model and text generation: plain text, characters or words."""


@group.command("train")
@click.argument("train_path", metavar="TRAIN", type=click.Path(dir_okay=False, allow_dash=True))
@train_options
@encoding_option
@click.option("--level", type=click.Choice(["auto", "char", "word"]),
              help="Tokens: characters, words, or auto (characters for CJK text).")
@click.option("--sequence-length", type=int,
              help="Tokens per training window (truncated backpropagation through time).")
@click.option("--embedding-dim", type=int, help="Embedding size.")
@click.option("--tie-embeddings/--untie-embeddings", default=None,
              help="Use the embedding matrix as the softmax weights.")
def train_command(train_path, out_dir, valid_path, recipe, set_items, force, resume, encoding,
                  **kwargs):
    """Train a language model on the plain text TRAIN and write it to -o MODEL_DIR."""
    from seqkit.tasks import lm

    config = task_config(lm, recipe, kwargs, set_items)
    lm.train(train_path, out_dir, config, valid_path=valid_path, encoding=encoding,
             force=force, resume=resume)


@group.command("evaluate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data_path", metavar="TEST", type=click.Path(dir_okay=False, allow_dash=True))
@encoding_option
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--batch-size", type=int, default=64, show_default=True,
              help="Parts of the text run side by side.")
def evaluate_command(model_dir, data_path, encoding, as_json, batch_size):
    """Perplexity of MODEL_DIR on the whole of TEST (and bits per character at char level)."""
    from seqkit.tasks import lm

    result = lm.evaluate(model_dir, data_path, encoding, batch_size)
    if as_json:
        echo_json(result)
        return
    for key in ("perplexity", "bits_per_character", "loss"):
        if key in result:
            click.echo(f"{key:<19} {result[key]:.4f}")
    click.echo(f"{'tokens':<19} {result['tokens']} ({result['unknown_tokens']} unknown)")
    click.echo(f"{'level':<19} {result['level']}")


@group.command("generate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.option("--prompt", default="", help="Text to continue (default: start a new line).")
@click.option("-n", "steps", type=int, default=100, show_default=True,
              help="Tokens to generate after the prompt.")
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="Below 1: safer text; above 1: more varied; 0: always the likeliest.")
@click.option("--top-k", type=int, default=0, show_default=True,
              help="Draw only from the K likeliest tokens (0: all).")
@click.option("--seed", type=int, help="Random seed; the same seed gives the same text.")
@click.option("--count", type=int, default=1, show_default=True,
              help="Samples to draw, separated by an empty line.")
def generate_command(model_dir, prompt, steps, temperature, top_k, seed, count):
    """Generate text after --prompt, written to stdout token by token as it is drawn."""
    from seqkit.tasks import lm

    out = sys.stdout
    for i, pieces in enumerate(lm.generate(model_dir, prompt, steps, temperature=temperature,
                                           top_k=top_k, seed=seed, count=count)):
        if i:
            out.write("\n")
        last = ""
        for piece in pieces:
            out.write(piece)
            out.flush()
            last = piece or last
        if not last.endswith("\n"):
            out.write("\n")
        out.flush()


@group.command("score")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("input_path", metavar="[INPUT|-]", default="-",
                type=click.Path(dir_okay=False, allow_dash=True))
@encoding_option
@click.option("--format", "fmt", type=click.Choice(["jsonl", "tsv"]), default="jsonl",
              show_default=True, help="tsv: log_prob, perplexity, tokens, text.")
@click.option("--batch-size", type=int, default=64, show_default=True)
def score_command(model_dir, input_path, encoding, fmt, batch_size):
    """Per line of INPUT (stdin if omitted or -): its log-probability (natural log, end of
    line included) and perplexity. One output line per input line, in order."""
    from seqkit.io import RecordWriter
    from seqkit.tasks import lm

    writer = RecordWriter(sys.stdout, fmt, ["log_prob", "perplexity", "tokens", "text"])
    for records in lm.score(model_dir, input_path, batch_size, encoding):
        for r in records:
            writer.write(r, [*("" if r[k] is None else r[k] for k in ("log_prob", "perplexity")),
                             r["tokens"], r["text"]])
        writer.flush()
