"""`seqkit caption train | evaluate | predict`."""

from __future__ import annotations

import click

from seqkit.commands.common import apply_options, echo_json, task_config, train_options

SOURCE_OPTIONS = ("images_dir", "features", "feature_list", "skip_bad_images", "sep",
                  "encoding")


def source_options(func):
    return apply_options([
        click.option("--images", "images_dir", type=click.Path(file_okay=False),
                     help="Folder the image names are relative to (names cannot leave it)."),
        click.option("--features", type=click.Path(dir_okay=False),
                     help="Precomputed features FILE.npy (images, [positions,] dim), in place "
                          "of --images; the image names, one per line, are in FILE.txt."),
        click.option("--feature-list", type=click.Path(dir_okay=False),
                     help="The image list of --features (default: FILE.txt beside it)."),
        click.option("--skip-bad-images", is_flag=True,
                     help="Skip missing or unreadable images (counted on stderr) instead of "
                          "stopping."),
        click.option("--sep", help="Field separator of the caption table (default: from the "
                                   "extension)."),
        click.option("--encoding", help="Text encoding of the caption table (default UTF-8)."),
    ])(func)


def _source(path, kwargs):
    from seqkit.tasks.caption import CaptionSource

    return CaptionSource(path, **{k: kwargs.pop(k) for k in SOURCE_OPTIONS})


def _decode_options(func):
    return apply_options([
        click.option("--beam-size", type=int,
                     help="Beam width; 1 is greedy search (default: the model's, 1)."),
        click.option("--max-length", type=int, default=0,
                     help="Most tokens per caption (default: the longest training caption "
                          "kept, plus a quarter)."),
        click.option("--batch-size", type=int, default=64, show_default=True),
    ])(func)


@click.group("caption")
def group() -> None:
    """Image captioning: an image folder and a CSV image,caption (several rows per image)."""


@group.command("train")
@click.argument("train_path", metavar="CAPTIONS", type=click.Path(dir_okay=False))
@train_options(skip=("layers", "bidirectional"))
@source_options
@click.option("--encoder", help="cnn (small, from scratch; default), a keras.applications "
                                "backbone (mobilenet_v2, efficientnet_b0, resnet50, ...), or "
                                "features (with --features).")
@click.option("--encoder-weights", help="Backbone weights: imagenet, or a local weights file "
                                        "(default: random).")
@click.option("--fine-tune/--frozen", "fine_tune", default=None,
              help="Train the backbone's weights too, or keep them (features computed once).")
@click.option("--image-size", type=int, help="Pixels per side images are resized to.")
@click.option("--attention", type=click.Choice(["luong", "bahdanau", "none"]),
              is_flag=False, flag_value="luong",
              help="Attention over the spatial feature map (alone, and by default: luong); "
                   "none: the map only sets the start state.")
@click.option("--tokenizer", type=click.Choice(["auto", "char", "whitespace",
                                                "sentencepiece"]),
              help="Caption tokenizer (auto: CJK characters and Latin words).")
@click.option("--embedding-dim", type=int, help="Word embedding size.")
@click.option("--max-length", type=int, help="Tokens kept per caption (default: 99th "
                                              "percentile).")
def train_command(train_path, out_dir, valid_path, recipe, set_items, force, resume,
                  **kwargs):
    """Train on CAPTIONS (CSV image,caption) with --images DIR; write -o MODEL_DIR."""
    from seqkit.tasks import caption

    data = _source(train_path, kwargs)
    if data.features is not None and kwargs.get("encoder") is None:
        kwargs["encoder"] = "features"
    config = task_config(caption, recipe, kwargs, set_items)
    valid = None
    if valid_path:
        valid = caption.CaptionSource(valid_path, data.images_dir, data.features,
                                      data.feature_list, data.skip_bad_images, data.sep,
                                      data.encoding)
    caption.train(data, out_dir, config, valid=valid, force=force, resume=resume)


@group.command("evaluate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data_path", metavar="CAPTIONS", type=click.Path(dir_okay=False))
@source_options
@_decode_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate_command(model_dir, data_path, beam_size, max_length, batch_size, as_json,
                     **kwargs):
    """BLEU-1 to BLEU-4 (sacreBLEU, 0-100) of MODEL_DIR's captions against all reference
    captions of each image in CAPTIONS."""
    from seqkit.tasks import caption

    result = caption.evaluate(model_dir, _source(data_path, kwargs), beam_size, max_length,
                              batch_size)
    if as_json:
        echo_json(result)
        return
    for n in range(1, 5):
        click.echo(f"BLEU-{n}  {result[f'bleu{n}']:.2f}")
    click.echo(f"        {result['bleu_signature']}")
    click.echo(f"images {result['images']}, references {result['references']}, "
               f"beam size {result['beam_size']}, length ratio {result['length_ratio']}")


@group.command("predict")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("image_paths", metavar="[IMAGE ...|-]", nargs=-1)
@_decode_options
@click.option("--images", "images_dir", type=click.Path(file_okay=False),
              help="Resolve the image paths inside this folder (they cannot leave it).")
@click.option("--features", type=click.Path(dir_okay=False),
              help="For a model trained on features: FILE.npy; paths are names in FILE.txt.")
@click.option("--feature-list", type=click.Path(dir_okay=False),
              help="The image list of --features (default: FILE.txt beside it).")
@click.option("--skip-bad-images", is_flag=True,
              help="Give an empty caption for a missing or unreadable image (counted on "
                   "stderr) instead of stopping.")
@click.option("--format", "fmt", type=click.Choice(["tsv", "jsonl"]), default="tsv",
              show_default=True, help="tsv: path<TAB>caption; jsonl: with the score "
                                      "(log-probability).")
def predict_command(model_dir, image_paths, beam_size, max_length, batch_size, images_dir,
                    features, feature_list, skip_bad_images, fmt):
    """Caption each IMAGE (or each path read from stdin, one per line, when none is given or
    IMAGE is -): one line out per image, in order, written as it goes."""
    import sys

    from seqkit.io import RecordWriter, iter_lines
    from seqkit.tasks import caption

    predictor = caption.Predictor(model_dir, batch_size, images_dir=images_dir,
                                  features=features, feature_list=feature_list,
                                  skip_bad_images=skip_bad_images)
    if not image_paths or list(image_paths) == ["-"]:
        chunks = iter_lines("-", chunk_size=batch_size)
    else:
        chunks = ([p for p in image_paths[i:i + batch_size]]
                  for i in range(0, len(image_paths), batch_size))
    writer = RecordWriter(sys.stdout, "jsonl" if fmt == "jsonl" else "tsv",
                          ["image", "caption"])
    for records in predictor.stream(chunks, beam_size=beam_size, max_length=max_length):
        for record in records:
            writer.write(record)
        writer.flush()
