"""Readers and writers for every format seqkit reads or writes. "-" means stdin/stdout.

Tables are CSV or TSV read through pandas; the delimiter comes from the extension
(.tsv/.tab: tab, .csv: comma), from --sep, or from the header line. Text is UTF-8
with or without a BOM unless --encoding says otherwise. Every error names FILE:LINE.

    cut -f2 reviews.tsv | seqkit sentiment predict model/ --format tsv
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import stat
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from seqkit.errors import DataError
from seqkit.pipes import PipeReader, is_regular

if TYPE_CHECKING:
    import pandas as pd

# predict answers the lines it has once its input pauses this long (a pipe, a terminal)
PAUSE_SECONDS = 0.05

TEXT_COLUMNS = ("text", "sentence", "review", "content")
LABEL_COLUMNS = ("label", "labels", "sentiment", "class")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
SEP_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def display_name(path: str | Path) -> str:
    return "<stdin>" if str(path) == "-" else str(path)


class LineDecoder(io.TextIOBase):
    """A text stream over a binary one that decodes line by line, so a decoding error
    is reported with its line number. Also counts lines for callers."""

    def __init__(self, raw: IO[bytes], path: str, encoding: str | None = None):
        self.raw = raw
        self.path = path
        self.encoding_name = encoding or "utf-8"
        self.line_no = 0
        self._buffer = ""
        self._first = True

    def readable(self) -> bool:
        return True

    def _decode_next(self) -> str:
        data = self.raw.readline()
        if not data:
            return ""
        self.line_no += 1
        if self._first:
            self._first = False
            if self.encoding_name.replace("_", "-").lower() in ("utf-8", "utf8") and \
                    data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
        try:
            return data.decode(self.encoding_name)
        except UnicodeDecodeError as exc:
            raise DataError(
                f"bytes {data[exc.start:exc.start + 4]!r} are not valid {self.encoding_name} "
                f"(at byte {exc.start} of the line); pass --encoding if the file uses another",
                path=self.path, line=self.line_no,
            ) from None
        except LookupError:
            raise DataError(f"unknown encoding {self.encoding_name!r}", path=self.path) from None

    def readline(self, size: int = -1) -> str:
        if self._buffer:
            line, self._buffer = self._buffer, ""
            return line
        return self._decode_next()

    def read(self, size: int | None = -1) -> str:
        if size is None or size < 0:
            parts = [self._buffer]
            self._buffer = ""
            while line := self._decode_next():
                parts.append(line)
            return "".join(parts)
        while len(self._buffer) < size:
            line = self._decode_next()
            if not line:
                break
            self._buffer += line
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self.readline()
        if not line:
            raise StopIteration
        return line


def open_text(path: str | Path, encoding: str | None = None) -> LineDecoder:
    """Open a file (or stdin for "-") for reading as text with line-exact decode errors.
    A pipe, FIFO or terminal is read through a PipeReader."""
    if str(path) == "-":
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):  # stdin replaced (tests)
            return LineDecoder(sys.stdin.buffer, "-", encoding)
        if is_regular(fd):
            return LineDecoder(sys.stdin.buffer, "-", encoding)
        return LineDecoder(PipeReader(fd), "-", encoding)
    try:
        if not Path(path).is_dir() and Path(path).exists() and \
                not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO, /dev/stdin
            return LineDecoder(PipeReader(os.open(path, os.O_RDONLY), close=True), str(path),
                               encoding)
        raw = open(path, "rb")
    except FileNotFoundError:
        raise DataError("no such file", path=str(path)) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a file", path=str(path)) from None
    except PermissionError:
        raise DataError("permission denied", path=str(path)) from None
    return LineDecoder(raw, str(path), encoding)


def resolve_sep(path: str | Path, sep: str | None, header_line: str | None = None) -> str:
    if sep:
        return SEP_NAMES.get(sep.lower(), sep)
    suffix = Path(str(path)).suffix.lower()
    if suffix in TABLE_SUFFIXES:
        return TABLE_SUFFIXES[suffix]
    if header_line is not None and "\t" in header_line:
        return "\t"
    return ","


def is_table(path: str | Path, sep: str | None = None, column: str | None = None) -> bool:
    """Whether a predict input is a table (CSV/TSV) rather than one text per line."""
    return bool(sep or column) or Path(str(path)).suffix.lower() in TABLE_SUFFIXES


def _read_frame(stream: LineDecoder, path: str, sep: str, **kwargs) -> pd.DataFrame | Any:
    import pandas as pd

    try:
        return pd.read_csv(
            stream, sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False,
            quoting=csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL,
            engine="c", **kwargs,
        )
    except pd.errors.EmptyDataError:
        raise DataError("file is empty; expected a header line and rows", path=path) from None
    except pd.errors.ParserError as exc:
        raise _parser_error(exc, path) from None


def _parser_error(exc: Exception, path: str) -> DataError:
    import re

    text = str(exc)
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return DataError(
            f"found {m.group(3)} fields, expected {m.group(1)} like the header "
            f"(quote fields that hold the separator)", path=path, line=int(m.group(2)),
        )
    m = re.search(r"EOF inside string starting at row (\d+)", text)
    if m:  # pandas counts rows from 0 at the header line
        return DataError("a quote opened here is never closed; expected a closing \" "
                         "before the end of the file", path=path, line=int(m.group(1)) + 1)
    return DataError(f"cannot parse as a table: {text.strip().splitlines()[-1]}", path=path)


def read_table(path: str | Path, sep: str | None = None, encoding: str | None = None
               ) -> pd.DataFrame:
    """Read a whole CSV/TSV with string cells. Row i sits on line i + 2 (the header is line 1);
    blank lines are kept as empty rows so that this holds."""
    path = str(path)
    stream = open_text(path, encoding)
    try:
        header = stream.readline()
        if not header.strip():
            raise DataError("file is empty; expected a header line and rows", path=path)
        stream._buffer = header
        frame = _read_frame(stream, path, resolve_sep(path, sep, header))
    finally:
        if path != "-":
            stream.raw.close()
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.fillna("")


def pick_column(columns: Sequence[str], requested: str | None, candidates: Sequence[str],
                role: str, path: str, option: str) -> str:
    """Find a column by the name asked for, else by a common name (case-insensitive)."""
    if requested is not None:
        if requested in columns:
            return requested
        raise DataError(
            f"no column {requested!r}; columns found: {', '.join(map(repr, columns))}",
            path=path, line=1,
        )
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    raise DataError(
        f"cannot find the {role} column: none of {', '.join(candidates)}; columns found: "
        f"{', '.join(map(repr, columns))}; name it with {option}",
        path=path, line=1,
    )


def read_text_label(path: str | Path, text_column: str | None = None,
                    label_column: str | None = None, sep: str | None = None,
                    encoding: str | None = None) -> tuple[list[str], list[str], list[int]]:
    """Read (texts, labels, line numbers) from a labelled table; blank rows are skipped."""
    path = str(path)
    frame = read_table(path, sep, encoding)
    columns = list(frame.columns)
    tcol = pick_column(columns, text_column, TEXT_COLUMNS, "text", path, "--text-column")
    lcol = pick_column(columns, label_column, LABEL_COLUMNS, "label", path, "--label-column")
    texts, labels, lines = [], [], []
    for i, (text, label) in enumerate(zip(frame[tcol].tolist(), frame[lcol].tolist())):
        line = i + 2
        text, label = text.strip(), label.strip()
        if not text and not label:
            continue
        if not label:
            raise DataError(f"empty label; expected a value in column {lcol!r}",
                            path=path, line=line)
        texts.append(text)
        labels.append(label)
        lines.append(line)
    if not texts:
        raise DataError("no rows; expected a header line and at least one row", path=path)
    return texts, labels, lines


def iter_texts(path: str | Path, text_column: str | None = None, sep: str | None = None,
               encoding: str | None = None, chunk_size: int = 1024) -> Iterator[list[str]]:
    """Stream texts in chunks: one text per line, or the text column of a CSV/TSV.

    Lines keep their position: an empty line yields an empty string, never a gap.
    """
    path = str(path)
    if not is_table(path, sep, text_column):
        yield from iter_lines(path, encoding, chunk_size)
        return
    import pandas as pd

    stream = open_text(path, encoding)
    try:
        header = stream.readline()
        if not header.strip():
            return
        stream._buffer = header
        reader = _read_frame(stream, path, resolve_sep(path, sep, header), chunksize=chunk_size)
        column = None
        try:
            for frame in reader:
                frame.columns = [str(c).strip() for c in frame.columns]
                if column is None:
                    column = pick_column(list(frame.columns), text_column, TEXT_COLUMNS,
                                         "text", path, "--text-column")
                yield frame[column].fillna("").tolist()
        except pd.errors.ParserError as exc:
            raise _parser_error(exc, path) from None
    finally:
        if path != "-":
            stream.raw.close()


def iter_lines(path: str | Path, encoding: str | None = None, chunk_size: int = 1024
               ) -> Iterator[list[str]]:
    """Stream the lines of a text file in chunks, without line ends; an empty line yields
    an empty string, so output can line up with input."""
    path = str(path)
    stream = open_text(path, encoding)
    ready = getattr(stream.raw, "ready", None)  # a pipe: answer what we have when it pauses
    try:
        chunk: list[str] = []
        while True:
            if chunk and ready is not None and not ready(PAUSE_SECONDS):
                yield chunk
                chunk = []
            line = stream.readline()
            if not line:
                break
            chunk.append(line.rstrip("\r\n"))
            if len(chunk) >= chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    finally:
        if path != "-":
            stream.raw.close()


class BadRecords:
    """Raise on the first bad record (a line, an image), or count them when skipping and
    warn once, on stderr, at the end."""

    def __init__(self, skip: bool, what: str = "line"):
        self.skip, self.what, self.count, self.first = skip, what, 0, ""

    def __call__(self, message: str, path: str, line: int | None = None) -> None:
        self.error(DataError(message, path=path, line=line))

    def error(self, error: DataError) -> None:
        if not self.skip:
            raise error
        self.count += 1
        self.first = self.first or str(error)

    def warn(self) -> None:
        if self.count:
            logging.getLogger("seqkit").warning(
                "skipped %d bad %s%s (the first: %s)", self.count, self.what,
                "" if self.count == 1 else "s", self.first)


class RecordWriter:
    """Writes one record per input record to a stream, in jsonl, tsv or csv.

    tsv has no header so it lines up with the input (`paste in.txt out.tsv`); csv has one.
    Lists in tsv/csv cells are spread over their own columns by `fields`.
    """

    FORMATS = ("jsonl", "tsv", "csv")

    def __init__(self, stream: IO[str], fmt: str, fields: Sequence[str]):
        if fmt not in self.FORMATS:
            raise DataError(f"unknown output format {fmt!r}; expected {', '.join(self.FORMATS)}")
        self.stream, self.fmt, self.fields = stream, fmt, list(fields)
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None
        if self._csv is not None:
            self._csv.writerow(self.fields)

    def write(self, record: dict[str, Any], row: Sequence[Any] | None = None) -> None:
        """Write a record; `row` gives the tsv/csv cells when they differ from `fields`."""
        if self.fmt == "jsonl":
            self.stream.write(json.dumps(record, ensure_ascii=False) + "\n")
            return
        cells = list(row) if row is not None else [record.get(f, "") for f in self.fields]
        if self.fmt == "csv":
            self._csv.writerow(cells)
        else:
            self.stream.write("\t".join(_tsv_cell(c) for c in cells) + "\n")

    def write_all(self, records: Iterable[dict[str, Any]]) -> None:
        for record in records:
            self.write(record)
        self.stream.flush()

    def flush(self) -> None:
        self.stream.flush()


def _tsv_cell(value: Any) -> str:
    if isinstance(value, float):
        value = f"{value:.6g}"
    return str(value).replace("\t", " ").replace("\n", " ")


# CoNLL column files ----------------------------------------------------------------------------
