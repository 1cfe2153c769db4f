"""Write the caption sample: small PNGs of coloured shapes at named positions, and the
tables `image,caption` that describe them (two phrasings per image).

    python data/make_caption_sample.py            # data/caption_{train,test}.csv + images
    seqkit caption train data/caption_train.csv --images data/caption_images -o runs/cap

A scene holds one shape (in the middle, on the left or right, at the top or bottom) or two
(left and right); the captions follow from it: "a red circle on the left".
The benchmark (benchmarks/caption.py) draws a bigger set with the same code.
"""

from __future__ import annotations

import argparse
import csv
import random
from pathlib import Path

COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (50, 80, 220),
           "yellow": (235, 210, 40)}
SHAPES = ("circle", "square", "triangle")
# name -> (phrase, centre as fractions of the image side)
POSITIONS = {"left": ("on the left", (0.25, 0.5)), "right": ("on the right", (0.75, 0.5)),
             "top": ("at the top", (0.5, 0.25)), "bottom": ("at the bottom", (0.5, 0.75)),
             "middle": ("in the middle", (0.5, 0.5))}


def draw_shape(draw, shape: str, colour, cx: float, cy: float, radius: float) -> None:
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(cx, cy - radius), (cx + radius, cy + radius),
                      (cx - radius, cy + radius)], fill=colour)


def make_scene(rng: random.Random, size: int, two_shapes: float = 0.4):
    """One image (PIL, RGB) and its captions."""
    from PIL import Image, ImageDraw

    shade = rng.randint(215, 255)
    image = Image.new("RGB", (size, size), (shade, shade, shade))
    draw = ImageDraw.Draw(image)
    if rng.random() < two_shapes:
        places = ["left", "right"]
    else:
        places = [rng.choice(list(POSITIONS))]
    parts = []
    for place in places:
        colour, shape = rng.choice(list(COLOURS)), rng.choice(SHAPES)
        phrase, (fx, fy) = POSITIONS[place]
        jitter = size * 0.05
        draw_shape(draw, shape, COLOURS[colour], fx * size + rng.uniform(-jitter, jitter),
                   fy * size + rng.uniform(-jitter, jitter), size * rng.uniform(0.12, 0.18))
        parts.append((colour, shape, phrase))
    first = " and ".join(f"a {c} {s} {p}" for c, s, p in parts)
    second = "there is " + first if len(parts) == 1 else \
        " and ".join(f"{p} a {c} {s}" for c, s, p in parts)
    return image, [first, second]


def write_set(out_dir: Path, images_dir: Path, name: str, count: int, size: int, seed: int,
              prefix: str) -> Path:
    """Draw `count` scenes into images_dir and write out_dir/NAME.csv; return its path."""
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    table = out_dir / f"{name}.csv"
    with open(table, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["image", "caption"])
        for i in range(count):
            image, captions = make_scene(rng, size)
            file = f"{prefix}{i:04d}.png"
            image.save(images_dir / file, optimize=True)
            writer.writerows([file, c] for c in captions)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--train", type=int, default=120)
    parser.add_argument("--test", type=int, default=30)
    parser.add_argument("--size", type=int, default=48)
    args = parser.parse_args()
    images = args.out / "caption_images"
    write_set(args.out, images, "caption_train", args.train, args.size, 1, "train_")
    write_set(args.out, images, "caption_test", args.test, args.size, 2, "test_")


if __name__ == "__main__":
    main()
