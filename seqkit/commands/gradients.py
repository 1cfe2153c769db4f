"""`seqkit gradients MODEL_DIR DATA`: how far back through time the backbone's gradients
reach (seqkit/gradients.py), as a table, JSON or a PNG.

    seqkit gradients runs/lm_zh data/lm_zh.txt --length 100 -o flow.png
    seqkit gradients runs/sentiment_en data/sentiment_en_test.tsv --json | jq .first_to_last
"""

from __future__ import annotations

import click

from seqkit.commands.common import DATA_FILE, MODEL_DIR, PathKind, echo_json
from seqkit.errors import ConfigError, SeqkitError

PNG_FILE = PathKind(False, ConfigError, "a file name for the PNG")


@click.command("gradients", short_help="Gradient flow: how much h_T depends on each step.")
@click.argument("model_dir", type=MODEL_DIR)
@click.argument("data_path", metavar="DATA", type=DATA_FILE)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (every step).")
@click.option("-o", "--output", "png", type=PNG_FILE,
              help="Also draw the curve into this PNG (log-scale norms against the step).")
@click.option("--batch", type=click.IntRange(1, 4096), default=32, show_default=True,
              help="Examples averaged over.")
@click.option("--length", type=click.IntRange(2, 100_000),
              help="Steps T (default: the shortest of the --batch longest examples; lm: "
                   "the model's sequence_length).")
def command(model_dir, data_path, as_json, png, batch, length):
    """Measure, over a batch of DATA (read as `seqkit TASK evaluate` reads it), how much
    the recurrent backbone's last state h_T depends on its input at each step t: the mean
    L2 norm of dh_T/dx_t for t = 1..T (for a bidirectional backbone, of the forward
    direction's final state). A SimpleRNN's curve falls by orders of magnitude toward the
    first steps (vanishing gradients); an LSTM's or GRU's stays far higher."""
    import logging

    from seqkit import gradients

    if png:  # before the measurement: fail at once
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SeqkitError("-o needs matplotlib: pip install matplotlib") from None
    result = gradients.measure_model_dir(model_dir, data_path, batch, length)
    if png:
        from seqkit import plots

        plots.gradient_flow({result["cell"]: result["norms"]}, png,
                            title=f"{model_dir}: {result['summary']}")
        logging.getLogger("seqkit").info("wrote %s", png)
    if as_json:
        echo_json(result)
    else:
        click.echo(gradients.format_table(result))
