"""`seqkit caption train | evaluate | predict`."""

from __future__ import annotations

import click

from seqkit import choices
from seqkit.commands.common import (BACKEND_OPTION, DATA_FILE, DECODE_LENGTH, FOLDER, MODEL_DIR,
                                    add_evaluate, add_export, add_train, apply_options,
                                    batch_size_option, beam_size_option, task_module)

SOURCE_OPTIONS = ("images_dir", "features", "feature_list", "skip_bad_images", "sep",
                  "encoding")


def source_options(func):
    return apply_options([
        click.option("--images", "images_dir", type=FOLDER,
                     help="Folder the image names are relative to (names cannot leave it)."),
        click.option("--features", type=DATA_FILE,
                     help="Precomputed features FILE.npy (images, [positions,] dim), in place "
                          "of --images; the image names, one per line, are in FILE.txt."),
        click.option("--feature-list", type=DATA_FILE,
                     help="The image list of --features (default: FILE.txt beside it)."),
        click.option("--skip-bad-images", is_flag=True,
                     help="Skip missing or unreadable images (counted on stderr) instead of "
                          "stopping."),
        click.option("--sep", help="Field separator of the caption table (default: from the "
                                   "extension)."),
        click.option("--encoding", help="Text encoding of the caption table (default UTF-8)."),
    ])(func)


def _source(path, kwargs):
    return task_module("caption").Source(path, **{k: kwargs.pop(k) for k in SOURCE_OPTIONS})


def _sources(train_path, valid_path, kwargs):
    """The training source, and --valid read the same way (same folder or features file).
    A features file alone means the features encoder."""
    options = {k: kwargs.pop(k) for k in SOURCE_OPTIONS}
    if options["features"] is not None and kwargs.get("encoder") is None:
        kwargs["encoder"] = "features"
    Source = task_module("caption").Source
    return Source(train_path, **options), Source(valid_path, **options) if valid_path else None


BEAM_OPTION = beam_size_option(1)
MAX_LENGTH_OPTION = click.option(
    "--max-length", type=DECODE_LENGTH, default=0,
    help="Most tokens per caption (default: the longest training caption kept, plus a "
         "quarter).")


def _show(result: dict) -> str:
    return "\n".join([*(f"BLEU-{n}  {result[f'bleu{n}']:.2f}" for n in range(1, 5)),
                      f"        {result['bleu_signature']}",
                      f"images {result['images']}, references {result['references']}, "
                      f"beam size {result['beam_size']}, length ratio {result['length_ratio']}"])


@click.group("caption")
def group() -> None:
    """Image captioning: an image folder and a CSV image,caption (several rows per image)."""


add_train(
    group, "caption", help="Train on CAPTIONS (CSV image,caption) with --images DIR; write -o "
                           "MODEL_DIR.",
    argument=click.argument("train_path", metavar="CAPTIONS", type=DATA_FILE),
    data_options=[source_options], sources=_sources, skip=("layers", "bidirectional"),
    options=[
        click.option("--encoder", help="cnn (small, from scratch; default), a "
                                       "keras.applications backbone (mobilenet_v2, "
                                       "efficientnet_b0, resnet50, ...), or features (with "
                                       "--features)."),
        click.option("--encoder-weights", help="Backbone weights: imagenet, or a local "
                                               "weights file (default: random)."),
        click.option("--fine-tune/--frozen", "fine_tune", default=None,
                     help="Train the backbone's weights too, or keep them (features computed "
                          "once)."),
        click.option("--image-size", type=int, help="Pixels per side images are resized to."),
        click.option("--attention", type=click.Choice(choices.ATTENTIONS), is_flag=False,
                     flag_value="luong",
                     help="Attention over the spatial feature map (alone, and by default: "
                          "luong); none: the map only sets the start state."),
        click.option("--tokenizer", type=click.Choice(choices.SIDE_TOKENIZERS),
                     help="Caption tokenizer (auto: CJK characters and Latin words)."),
        click.option("--embedding-dim", type=int, help="Word embedding size."),
        click.option("--max-length", type=int, help="Tokens kept per caption (default: 99th "
                                                    "percentile)."),
    ])

add_evaluate(
    group, "caption", data_options=[source_options], source=_source, show=_show,
    options=[BEAM_OPTION, MAX_LENGTH_OPTION], metavar="CAPTIONS", batch_size=64,
    load_options=[BACKEND_OPTION], plots="attention",
    help="BLEU-1 to BLEU-4 (sacreBLEU, 0-100) of MODEL_DIR's captions against all reference "
         "captions of each image in CAPTIONS.")


@group.command("predict")
@click.argument("model_dir", type=MODEL_DIR)
@click.argument("image_paths", metavar="[IMAGE ...|-]", nargs=-1)
@BEAM_OPTION
@MAX_LENGTH_OPTION
@batch_size_option(64)
@click.option("--images", "images_dir", type=FOLDER,
              help="Resolve the image paths inside this folder (they cannot leave it).")
@click.option("--features", type=DATA_FILE,
              help="For a model trained on features: FILE.npy; paths are names in FILE.txt.")
@click.option("--feature-list", type=DATA_FILE,
              help="The image list of --features (default: FILE.txt beside it).")
@click.option("--skip-bad-images", is_flag=True,
              help="Give an empty caption for a missing or unreadable image (counted on "
                   "stderr) instead of stopping.")
@click.option("--format", "fmt", type=click.Choice(["tsv", "jsonl"]), default="tsv",
              show_default=True, help="tsv: path<TAB>caption; jsonl: with the score "
                                      "(log-probability).")
@BACKEND_OPTION
def predict_command(model_dir, image_paths, beam_size, max_length, batch_size, fmt, **load):
    """Caption each IMAGE (or each path read from stdin, one per line, when none is given or
    IMAGE is -): one line out per image, in order, written as it goes. A path line longer
    than 1 MiB is cut there (counted in a warning on stderr)."""
    import sys

    from seqkit import lifecycle
    from seqkit.io import RecordWriter

    predictor = task_module("caption").Predictor(model_dir, batch_size, **load)
    paths = None if list(image_paths) in ([], ["-"]) else list(image_paths)
    writer = RecordWriter(sys.stdout, fmt, ["image", "caption"])
    for records in lifecycle.stream(predictor, "-", read={"paths": paths},
                                    beam_size=beam_size, max_length=max_length):
        for record in records:
            writer.write(record)
        writer.flush()


add_export(group, "caption")
