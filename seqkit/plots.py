"""Pictures as PNG files, drawn with matplotlib's Agg backend (no display needed).

    MODEL_DIR/curves.png    loss and the monitored metric per epoch, train and validation
    DIR/confusion_matrix.png, entity_f1.png, attention_N.png
                            `seqkit TASK evaluate --plots DIR` (write_evaluation)

matplotlib is imported inside the functions that draw, so importing this module costs
nothing and `seqkit --help` stays instant.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

CURVES_FILE = "curves.png"


def new_figure(width: float, height: float):
    """A matplotlib Figure drawn by Agg: no display, no pyplot state shared between calls."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def training_curves(history: Sequence[dict], monitor: str, path: str | Path,
                    best_epoch: int | None = None) -> Path:
    """Draw the loss and the monitored value per epoch (1, 2, ...), train and validation, as
    `path` (PNG). `history` holds each epoch's logs (loss, val_loss, accuracy, ...); a value
    only validation has (a decoded score such as val_f1) is drawn for validation alone. A
    dotted line marks `best_epoch`, the epoch whose weights were kept."""
    from matplotlib.ticker import MaxNLocator

    metric = monitor[4:] if monitor.startswith("val_") else monitor
    panels = ["loss"] if metric == "loss" else ["loss", metric]
    fig = new_figure(5.0 * len(panels), 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, name in zip(axes, panels):
        for key, label, style in ((name, "train", "o-C0"), (f"val_{name}", "validation", "s-C1")):
            points = [(epoch, float(logs[key])) for epoch, logs in enumerate(history, 1)
                      if key in logs and math.isfinite(float(logs[key]))]
            if points:  # one colour per split in every panel, also where train is missing
                ax.plot(*zip(*points), style, markersize=3, label=label)
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle=":",
                       label=f"best epoch ({best_epoch})")
        watched = " (monitored)" if name == metric else ""
        ax.set(xlabel="epoch", ylabel=name, title=f"{name}{watched}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    fig.savefig(path, dpi=100)
    return Path(path)


def gradient_flow(curves: dict[str, Sequence[float]], path: str | Path,
                  title: str = "") -> Path:
    """Draw each curve of mean |dh_T/dx_t| against the step t (seqkit.gradients), log-scale
    norms, as `path` (PNG)."""
    fig = new_figure(6.4, 4.2)
    ax = fig.subplots()
    for label, norms in curves.items():
        _flow_line(ax, norms, label=label)
    _flow_axis(ax, "mean |dh_T/dx_t| over the batch")
    if title:
        ax.set_title(title, fontsize="medium")
    fig.savefig(path, dpi=100)
    return Path(path)


def compare_cells(runs: Sequence[dict], path: str | Path) -> Path:
    """`seqkit compare`'s picture: per cell (one colour each), the monitored validation
    value and the validation loss per epoch, and the gradient flow relative to step T
    before (dashed) and after (solid) training."""
    from matplotlib.ticker import MaxNLocator

    monitor = runs[0]["monitor"]
    keys = [monitor] + (["val_loss"] if monitor != "val_loss" else [])
    flows = [run for run in runs if run["gradients"]["after"].get("relative")]
    fig = new_figure(5.0 * (len(keys) + bool(flows)), 3.8)
    axes = fig.subplots(1, len(keys) + bool(flows), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        for i, run in enumerate(runs):
            points = [(epoch, float(logs[key])) for epoch, logs in enumerate(run["history"], 1)
                      if key in logs and math.isfinite(float(logs[key]))]
            if points:
                ax.plot(*zip(*points), marker="o", markersize=3, color=f"C{i}",
                        label=run["cell"])
        ax.set(xlabel="epoch", ylabel=key, title=f"{key} (validation)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    if flows:
        ax = axes[-1]
        for i, run in enumerate(runs):
            for moment, style in (("before", "--"), ("after", "-")):
                relative = run["gradients"][moment].get("relative")
                if relative:
                    _flow_line(ax, relative, label=f"{run['cell']} {moment}", color=f"C{i}",
                               linestyle=style)
        _flow_axis(ax, "|dh_T/dx_t| / |dh_T/dx_T|")
        ax.set_title("gradient flow (dashed: initial weights)", fontsize="medium")
    fig.savefig(path, dpi=100)
    return Path(path)


def _flow_line(ax, values: Sequence[float | None], **style) -> None:
    # a norm that underflowed to 0 (or is missing) has no place on a log scale: a gap
    points = [(step, v) for step, v in enumerate(values, 1) if v is not None and v > 0]
    if points:
        ax.plot(*zip(*points), **style)


def _flow_axis(ax, ylabel: str) -> None:
    ax.set_yscale("log")
    ax.set(xlabel="step t (x_t; h_T is the state after the last step)", ylabel=ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")


# Evaluation pictures (`seqkit TASK evaluate --plots DIR`) ------------------------------------
# fonts tried, in order, for each character: CJK labels need one of the later ones
FONTS = ["DejaVu Sans", "Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Zen Hei",
         "Source Han Sans SC", "SimHei", "Microsoft YaHei", "PingFang SC", "Arial Unicode MS"]


def require_matplotlib() -> None:
    """A one-line error, before any work, when matplotlib is missing."""
    import logging

    from seqkit.errors import SeqkitError

    try:
        import matplotlib
    except ImportError:
        raise SeqkitError("--plots needs matplotlib: pip install matplotlib") from None
    matplotlib.rcParams["font.sans-serif"] = FONTS
    logging.getLogger("matplotlib").setLevel(logging.ERROR)  # "glyph missing" is not ours


def plots_folder(directory: str | Path) -> Path:
    """Make DIR (and check that matplotlib is there) before an evaluation runs."""
    from seqkit.errors import DataError

    require_matplotlib()
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot make the --plots folder: {exc.strerror or exc}",
                        path=str(path)) from None
    return path


def write_evaluation(directory: str | Path, scores: dict, maps: list[dict] | None = None
                     ) -> list[Path]:
    """The pictures of an evaluation: the confusion matrix of scores that have one, the
    per-type F1 of entity scores, and one attention picture per map (see attention_maps in
    seqkit/tasks/translation.py and caption.py). Returns the files written."""
    folder = plots_folder(directory)
    written = []
    if "confusion_matrix" in scores:
        written.append(confusion_matrix(scores, folder / "confusion_matrix.png"))
    if "per_type" in scores:
        written.append(entity_f1(scores, folder / "entity_f1.png"))
    for i, item in enumerate(maps or [], 1):
        path = folder / f"attention_{i}.png"
        if item.get("image") is not None:
            written.append(image_attention(item, path))
        else:
            written.append(attention(item, path))
    return written


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path


def confusion_matrix(scores: dict, path: Path) -> Path:
    """Rows true labels, columns predicted: each cell's count, coloured by its share of the
    true label's examples (so a rare class's errors show as clearly as a common one's)."""
    import numpy as np

    labels = [str(x) for x in scores["confusion_matrix"]["labels"]]
    counts = np.asarray(scores["confusion_matrix"]["matrix"], dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    n = len(labels)
    side = min(4 + 0.45 * n, 24)
    fig = new_figure(side + 1.2, side)
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true label")
    slanted = max(len(x) for x in labels) > 4
    ax.set_xticks(range(n), labels, rotation=45 if slanted else 0,
                  ha="right" if slanted else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted label")
    ax.set_ylabel("true label")
    if n <= 30:  # beyond that the numbers no longer fit their cells
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=9,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_title(f"accuracy {scores.get('accuracy', 0):.3f}, macro-F1 "
                 f"{scores.get('macro_f1', 0):.3f} ({scores.get('support', '?')} examples)",
                 fontsize=10)
    return _save(fig, path)


def entity_f1(scores: dict, path: Path) -> Path:
    """One bar per entity type: its F1, with precision, recall and support beside it; the
    dashed line is the micro F1 over all entities."""
    import numpy as np

    types = list(scores["per_type"])
    rows = [scores["per_type"][t] for t in types]
    fig = new_figure(7.5, min(1.6 + 0.45 * max(len(types), 1), 30))
    ax = fig.subplots()
    y = np.arange(len(types))
    ax.barh(y, [r["f1"] for r in rows], color="tab:blue", height=0.6)
    for i, r in enumerate(rows):
        ax.text(r["f1"] + 0.01, i, f"{r['f1']:.3f}  (P {r['precision']:.2f}, "
                f"R {r['recall']:.2f}, n={r['support']})", va="center", fontsize=8)
    ax.axvline(scores["f1"], color="tab:red", linestyle="--", linewidth=1,
               label=f"micro F1 {scores['f1']:.3f}")
    ax.set_yticks(y, types)
    ax.invert_yaxis()  # the first type on top, as in the text report
    ax.set_xlim(0, 1.45)  # room for the numbers right of a bar at 1.0
    ax.set_xticks(np.linspace(0, 1, 6))
    ax.set_xlabel("entity F1  (P: precision, R: recall, n: entities of the type in DATA)")
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(f"{scores.get('entities', '?')} entities in {scores.get('sentences', '?')} "
                 "sentences", fontsize=10)
    return _save(fig, path)


def attention(item: dict, path: Path) -> Path:
    """A heatmap of one input's attention: a row per output token, a column per source
    token (item: "inputs", "outputs", "weights" (outputs, inputs), "title")."""
    import numpy as np

    weights = np.asarray(item["weights"], dtype=float)
    rows, cols = weights.shape
    fig = new_figure(min(3 + 0.32 * cols, 30), min(2 + 0.3 * rows, 30))
    ax = fig.subplots()
    image = ax.imshow(weights, cmap="viridis", vmin=0, vmax=max(weights.max(), 1e-6),
                      aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    ax.set_xticks(range(cols), item["inputs"], rotation=90, fontsize=8)
    ax.set_yticks(range(rows), item["outputs"], fontsize=8)
    ax.set_xlabel(item.get("input_label", "source tokens"))
    ax.set_ylabel("output tokens")
    ax.set_title(_shorten(item.get("title", "")), fontsize=9)
    return _save(fig, path)


def image_attention(item: dict, path: Path) -> Path:
    """Each output token over the image, brighter where its attention was (item: "image"
    (h, w, 3) uint8, "outputs", "weights" (outputs, regions) of a square map, "title")."""
    import numpy as np

    weights = np.asarray(item["weights"], dtype=float)
    side = int(round(np.sqrt(weights.shape[1])))
    if side * side != weights.shape[1]:  # not a square map: a plain heatmap
        regions = [f"r{i}" for i in range(weights.shape[1])]
        return attention({**item, "inputs": regions, "input_label": "image regions"}, path)
    image = np.asarray(item["image"])
    height, width = image.shape[:2]
    count = len(item["outputs"]) + 1  # the image as it is, then one panel per token
    cols = min(count, 5)
    rows = -(-count // cols)
    fig = new_figure(2.2 * cols, 2.4 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, k in zip(axes.flat, [None, *range(count - 1)]):
        ax.imshow(image, interpolation="nearest", extent=(0, width, height, 0))
        if k is None:
            ax.set_title("(image)", fontsize=9)
            continue
        ax.imshow(weights[k].reshape(side, side), cmap="magma", alpha=0.55,
                  extent=(0, width, height, 0), interpolation="bilinear",
                  vmin=0, vmax=max(weights[k].max(), 1e-6))
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.set_title(item["outputs"][k], fontsize=9)
    fig.suptitle(_shorten(item.get("title", "")), fontsize=9)
    return _save(fig, path)


def _shorten(text: str, limit: int = 90) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."
