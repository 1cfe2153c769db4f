"""`seqkit info MODEL_DIR`: what a model directory holds (seqkit/info.py), as a report or
JSON, read from its files without TensorFlow.

    seqkit info runs/sentiment_en
    seqkit info runs/ner_en --json | jq .parameters
"""

from __future__ import annotations

import click

from seqkit.commands.common import MODEL_DIR, echo_json


@click.command("info")
@click.argument("model_dir", type=MODEL_DIR)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def command(model_dir: str, as_json: bool) -> None:
    """What MODEL_DIR holds: task and seqkit version, network and sizes, parameters,
    vocabularies and labels, training data, time and validation scores, files and ONNX
    graphs. Reads its files only (no TensorFlow); what an older model did not record is
    "unknown" (null in JSON)."""
    from seqkit import info

    found = info.gather(model_dir)
    if as_json:
        echo_json(found)
    else:
        click.echo(info.format_info(found))
