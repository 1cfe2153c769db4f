"""`seqkit lm train | evaluate | generate | score`."""

from __future__ import annotations

import logging
import sys

import click

from seqkit import choices
from seqkit.commands.common import (BACKEND_OPTION, DATA_FILE, MODEL_DIR, SEED, add_evaluate,
                                    add_export, add_train, batch_size_option, Finite, task_module)

log = logging.getLogger("seqkit")

ENCODING_OPTION = click.option("--encoding",
                               help="Text encoding of the input (default UTF-8).")


def _sources(train_path, valid_path, kwargs):
    Source, encoding = task_module("lm").Source, kwargs.pop("encoding", None)
    return Source(train_path, encoding), Source(valid_path, encoding) if valid_path else None


def _source(path, kwargs):
    return task_module("lm").Source(path, kwargs.pop("encoding", None))


def _show(result: dict) -> str:
    lines = [f"{key:<19} {result[key]:.4f}"
             for key in ("perplexity", "bits_per_character", "loss") if key in result]
    lines.append(f"{'tokens':<19} {result['tokens']} ({result['unknown_tokens']} unknown)")
    lines.append(f"{'level':<19} {result['level']}")
    return "\n".join(lines)


@click.group("lm")
def group() -> None:
    """Language model and text generation: plain text, characters or words."""


add_train(
    group, "lm", help="Train a language model on the plain text TRAIN and write it to -o "
                      "MODEL_DIR.",
    argument=click.argument("train_path", metavar="TRAIN",
                            type=DATA_FILE),
    data_options=[ENCODING_OPTION], sources=_sources, options=[
        click.option("--level", type=click.Choice(choices.LEVELS),
                     help="Tokens: characters, words, or auto (characters for CJK text)."),
        click.option("--sequence-length", type=int,
                     help="Tokens per training window (truncated backpropagation through "
                          "time)."),
        click.option("--embedding-dim", type=int, help="Embedding size."),
        click.option("--tie-embeddings/--untie-embeddings", default=None,
                     help="Use the embedding matrix as the softmax weights."),
    ])

add_evaluate(
    group, "lm", data_options=[ENCODING_OPTION], source=_source, show=_show, metavar="TEST",
    batch_size=64, batch_help="Parts of the text run side by side.",
    load_options=[BACKEND_OPTION],
    help="Perplexity of MODEL_DIR on the whole of TEST (and bits per character at char "
         "level).")


@group.command("generate")
@click.argument("model_dir", type=MODEL_DIR)
@click.option("--prompt", default="", help="Text to continue (default: start a new line).")
@click.option("-n", "steps", type=click.IntRange(0, 1_000_000), default=100, show_default=True,
              help="Tokens to generate after the prompt.")
@click.option("--temperature", type=Finite(0.0), default=1.0, show_default=True,
              help="Below 1: safer text; above 1: more varied; 0: always the likeliest.")
@click.option("--top-k", type=click.IntRange(min=0), default=0, show_default=True,
              help="Draw only from the K likeliest tokens (0: all).")
@click.option("--seed", type=SEED, help="Random seed; the same seed gives the same text.")
@click.option("--count", type=click.IntRange(1, 100_000), default=1, show_default=True,
              help="Samples to draw, separated by an empty line.")
@BACKEND_OPTION
def generate_command(model_dir, prompt, steps, temperature, top_k, seed, count, backend):
    """Generate text after --prompt, written to stdout token by token as it is drawn."""
    import numpy as np

    predictor = task_module("lm").Predictor(model_dir, backend=backend)
    if seed is None:
        import secrets

        seed = secrets.randbelow(2**31)
        log.info("seed %d (pass --seed %d to draw the same text again)", seed, seed)
    rng = np.random.default_rng(seed)  # one generator draws every sample: same seed, same text
    out = sys.stdout
    for i in range(count):
        if i:
            out.write("\n")
        last = ""
        for piece in predictor.generate(prompt, steps, temperature=temperature, top_k=top_k,
                                        rng=rng):
            out.write(piece)
            out.flush()
            last = piece or last
        if not last.endswith("\n"):
            out.write("\n")
        out.flush()


@group.command("score")
@click.argument("model_dir", type=MODEL_DIR)
@click.argument("input_path", metavar="[INPUT|-]", default="-",
                type=DATA_FILE)
@ENCODING_OPTION
@click.option("--format", "fmt", type=click.Choice(["jsonl", "tsv"]), default="jsonl",
              show_default=True, help="tsv: log_prob, perplexity, tokens, text.")
@batch_size_option(64)
@BACKEND_OPTION
def score_command(model_dir, input_path, encoding, fmt, batch_size, backend):
    """Per line of INPUT (stdin if omitted or -): its log-probability (natural log, end of
    line included) and perplexity. One output line per input line, in order.

    Long lines: a line longer than 1 MiB is cut there (and scored as cut), the cut lines
    counted in one warning on stderr; a line is scored 50 tokens at a time with the
    recurrent state carried over, which gives the same score as one pass."""
    from seqkit import lifecycle
    from seqkit.io import RecordWriter

    predictor = task_module("lm").Predictor(model_dir, batch_size, backend)
    writer = RecordWriter(sys.stdout, fmt, ["log_prob", "perplexity", "tokens", "text"])
    for records in lifecycle.stream(predictor, input_path, read={"encoding": encoding}):
        for r in records:
            writer.write(r, [*("" if r[k] is None else r[k] for k in ("log_prob", "perplexity")),
                             r["tokens"], r["text"]])
        writer.flush()


add_export(group, "lm")
