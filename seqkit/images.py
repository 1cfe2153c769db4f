"""Images for captioning: the caption table, image paths kept inside their folder, decoding
(JPEG, PNG, anything Pillow reads) into one uint8 array, and precomputed feature files.
NumPy and Pillow only: no TensorFlow.

A caption table is a CSV (or TSV) with a header and the columns `image,caption`; an image
may have several rows. Image names are paths relative to the --images folder: an absolute
path, or one that leaves the folder (`../x.jpg`, or a link that points outside), is an error
naming FILE:LINE.

    seqkit caption train data/caption_train.csv --images data/caption_images -o runs/cap
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Sequence

import numpy as np

from seqkit import io
from seqkit.errors import DataError

IMAGE_COLUMNS = ("image", "image_name", "filename", "file", "path")
CAPTION_COLUMNS = ("caption", "text", "comment", "description")
log = logging.getLogger("seqkit")


@dataclass
class Captions:
    """A caption table grouped by image: names in order of first appearance, each with its
    captions and the table line each came from."""
    path: str
    names: list[str] = field(default_factory=list)
    captions: list[list[str]] = field(default_factory=list)
    lines: list[list[int]] = field(default_factory=list)

    def add(self, name: str, caption: str, line: int, index: dict[str, int]) -> None:
        if name not in index:
            index[name] = len(self.names)
            self.names.append(name)
            self.captions.append([])
            self.lines.append([])
        self.captions[index[name]].append(caption)
        self.lines[index[name]].append(line)

    def subset(self, keep: Sequence[int]) -> "Captions":
        return Captions(self.path, [self.names[i] for i in keep],
                        [self.captions[i] for i in keep], [self.lines[i] for i in keep])

    @property
    def rows(self) -> int:
        return sum(len(c) for c in self.captions)


def read_captions(path: str | Path, sep: str | None = None, encoding: str | None = None,
                  image_column: str | None = None, caption_column: str | None = None
                  ) -> Captions:
    """Read an `image,caption` table; blank rows are skipped, an empty cell is an error."""
    path = str(path)
    frame = io.read_table(path, sep, encoding)
    columns = list(frame.columns)
    icol = io.pick_column(columns, image_column, IMAGE_COLUMNS, "image", path, None)
    ccol = io.pick_column(columns, caption_column, CAPTION_COLUMNS, "caption", path, None)
    out, index = Captions(path), {}
    for i, (name, caption) in enumerate(zip(frame[icol].tolist(), frame[ccol].tolist())):
        line = i + 2  # the header is line 1
        name, caption = name.strip(), " ".join(caption.split())
        if not name and not caption:
            continue
        if not name or not caption:
            missing = icol if not name else ccol
            raise DataError(f"empty {missing!r}; expected an image name and a caption",
                            path=path, line=line)
        check_relative(name, path, line)
        out.add(name, caption, line, index)
    if not out.names:
        raise DataError("no rows; expected a header `image,caption` and at least one row",
                        path=path)
    return out


def check_relative(name: str, path: str, line: int | None) -> None:
    """Refuse an image name that is absolute or climbs out of the images folder."""
    for flavour in (PurePosixPath, PureWindowsPath):
        pure = flavour(name)
        if pure.is_absolute() or pure.drive or pure.root:
            raise DataError(f"image path {name!r} is absolute; expected a path relative to "
                            "the --images folder", path=path, line=line)
        if ".." in pure.parts:
            raise DataError(f"image path {name!r} leaves the --images folder (..); expected "
                            "a path inside it", path=path, line=line)


def resolve_inside(root: str | Path, name: str, path: str, line: int | None) -> Path:
    """The file `name` inside `root`, following links only while they stay inside."""
    check_relative(name, path, line)
    base = Path(root).resolve()
    target = (base / name).resolve()
    if target != base and base not in target.parents:
        raise DataError(f"image path {name!r} points outside the --images folder {root}",
                        path=path, line=line)
    return target


def decode_image(file: str | Path, size: int) -> np.ndarray:
    """One image as uint8 (size, size, 3) RGB, resized whole (not cropped), so that what is
    on the left stays on the left. Raises OSError/ValueError when it cannot be read."""
    from PIL import Image

    with Image.open(file) as image:
        image = image.convert("RGB").resize((size, size), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8)


def shift(images: np.ndarray, pixels: int, rng: np.random.Generator) -> np.ndarray:
    """Each image (n, h, w, channels) moved by up to `pixels` across and down (each amount
    uniform and independent; the edges are repeated into the gap): an augmentation that
    keeps what is on the left on the left, so captions that name positions stay true."""
    if pixels <= 0 or not len(images):
        return images
    n, height, width = images.shape[:3]
    padded = np.pad(images, ((0, 0), (pixels, pixels), (pixels, pixels), (0, 0)), mode="edge")
    down, across = rng.integers(0, 2 * pixels + 1, size=(2, n))
    rows = (down[:, None] + np.arange(height))[:, :, None]  # (n, h, 1)
    cols = (across[:, None] + np.arange(width))[:, None, :]  # (n, 1, w)
    return padded[np.arange(n)[:, None, None], rows, cols]


def image_error(file: Path, exc: Exception, name: str, path: str | None, line: int | None
                ) -> DataError:
    reason = "no such file" if isinstance(exc, FileNotFoundError) else \
        "is a directory" if isinstance(exc, IsADirectoryError) else \
        f"cannot decode it as an image ({type(exc).__name__}: {str(exc)[:120]})"
    if path is None:
        return DataError(reason, path=str(file))
    return DataError(f"image {name!r} ({file}): {reason}", path=path, line=line)


def load_images(files: Sequence[Path], size: int, bad: io.BadRecords, names: Sequence[str] = (),
                table: str | None = None, lines: Sequence[int] = ()
                ) -> tuple[np.ndarray, list[int]]:
    """Decode `files` into (count, size, size, 3) uint8 and the indices that loaded. An
    error names the table line the image came from when there is one, else the file."""
    images, ok = [], []
    for i, file in enumerate(files):
        try:
            images.append(decode_image(file, size))
            ok.append(i)
        except (OSError, ValueError, SyntaxError) as exc:
            bad.error(image_error(Path(file), exc, names[i] if names else str(file), table,
                            lines[i] if lines else None))
    array = np.stack(images) if images else np.zeros((0, size, size, 3), np.uint8)
    return array, ok


def load_captioned(data: Captions, images_dir: str | Path | None, size: int, skip_bad: bool
                   ) -> tuple[np.ndarray, Captions]:
    """Decode every image of a caption table once; with skip_bad, images that cannot be read
    are dropped with their captions and counted in one warning."""
    if images_dir is None:
        raise DataError("no --images folder given; expected the folder that the image names "
                        "are relative to", path=data.path)
    if not Path(images_dir).is_dir():
        raise DataError("no such folder (--images)", path=str(images_dir))
    files = [resolve_inside(images_dir, n, data.path, lines[0])
             for n, lines in zip(data.names, data.lines)]
    bad = io.BadRecords(skip_bad, "image")
    array, ok = load_images(files, size, bad, data.names, data.path,
                            [lines[0] for lines in data.lines])
    bad.warn()
    if not ok:
        raise DataError("none of the images could be read", path=data.path)
    log.info("%s: %s images, %s captions, decoded at %dx%d", io.display_name(data.path),
             f"{len(ok):,}", f"{data.subset(ok).rows:,}", size, size)
    return array, data.subset(ok)


@dataclass
class Captioned:
    """Captioned images as training and scoring read them: one input per image, in the
    order of `captions.names`."""
    inputs: np.ndarray  # images (n, size, size, 3) uint8, or features (n, positions, dim)
    captions: Captions

    def subset(self, keep: Sequence[int]) -> "Captioned":
        return Captioned(self.inputs[keep], self.captions.subset(keep))


@dataclass
class CaptionSource:
    """Where captioned images come from: a caption table, and the images folder or a
    precomputed features file (FILE.npy with its image list, FILE.txt by default)."""
    path: str
    images_dir: str | None = None
    features: str | None = None
    feature_list: str | None = None
    skip_bad_images: bool = False
    sep: str | None = None
    encoding: str | None = None

    def load(self, image_size: int) -> Captioned:
        """The table's images decoded at image_size (or their feature rows), once each."""
        data = read_captions(self.path, self.sep, self.encoding)
        if self.features is None:
            return Captioned(*load_captioned(data, self.images_dir, image_size,
                                             self.skip_bad_images))
        array, rows = read_features(self.features, self.feature_list)
        picked = select_features(array, rows, data.names, data.path,
                                 [lines[0] for lines in data.lines])
        return Captioned(picked, data)


# Precomputed features -----------------------------------------------------------------------
def feature_list_path(features: str | Path) -> Path:
    """The image list that goes with FILE.npy: FILE.txt beside it."""
    return Path(features).with_suffix(".txt")


def read_features(features: str | Path, image_list: str | Path | None = None
                  ) -> tuple[np.ndarray, dict[str, int]]:
    """A features array (images, dim) or (images, positions, dim) or (images, h, w, dim),
    returned as (images, positions, dim) float32, and the row of each image name."""
    features = str(features)
    listing = str(image_list or feature_list_path(features))
    try:
        array = np.load(features, allow_pickle=False)
    except FileNotFoundError:
        raise DataError("no such features file", path=features) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read as a .npy array: {exc}", path=features) from None
    if array.ndim not in (2, 3, 4) or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"expected a numeric array of shape (images, dim), (images, positions, "
                        f"dim) or (images, h, w, dim); found {array.dtype} {array.shape}",
                        path=features)
    array = array.reshape(len(array), -1, array.shape[-1]).astype(np.float32)
    rows: dict[str, int] = {}
    for chunk in io.iter_lines(listing):
        for name in chunk:
            if name.strip():
                rows.setdefault(name.strip(), len(rows))
    if len(rows) != len(array):
        raise DataError(f"{len(rows)} image names for {len(array)} feature rows in {features}; "
                        "expected one name per line for each row, in order", path=listing)
    return array, rows


def select_features(array: np.ndarray, rows: dict[str, int], names: Sequence[str],
                    where: str, lines: Sequence[int] = ()) -> np.ndarray:
    """The feature rows of `names`; a name not in the list is an error at its line."""
    picked = []
    for i, name in enumerate(names):
        if name not in rows:
            raise DataError(f"image {name!r} has no row in the features file",
                            path=where, line=lines[i] if lines else None)
        picked.append(rows[name])
    return array[picked]
