"""Readers and writers for every format seqkit reads or writes. "-" means stdin/stdout.

Tables are CSV or TSV read through pandas; the delimiter comes from the extension
(.tsv/.tab: tab, .csv: comma), from --sep, or from the header line. Text is UTF-8
with or without a BOM unless --encoding says otherwise. Every error names FILE:LINE.

    cut -f2 reviews.tsv | seqkit sentiment predict model/ --format tsv
"""

from __future__ import annotations

import codecs
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
# Predict keeps at most this much of a line and skips the rest unread, so memory does not
# follow a line's length. 1 MiB is some 150,000 English words, far past what a model reads:
# sentiment and translation cut a text at a few hundred tokens, ner and lm read long lines
# in windows, and a document on one line is rarely longer.
MAX_LINE_BYTES = 1 << 20
CHUNK_CHARS = 1 << 22  # a chunk of lines ends early past this many characters (4 long lines)
SKIP_BLOCK = 1 << 16  # the rest of a cut line is read past in blocks of this size

TEXT_COLUMNS = ("text", "sentence", "review", "content")
LABEL_COLUMNS = ("label", "labels", "sentiment", "class")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
SEP_NAMES = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def display_name(path: str | Path) -> str:
    return "<stdin>" if str(path) == "-" else str(path)


class LineDecoder(io.TextIOBase):
    """A text stream over a binary one that decodes line by line, so a decoding error
    is reported with its line number. Also counts lines for callers.

    With `max_line_bytes`, a longer line is cut at the last whole character within it and
    the rest is skipped unread (`cut_lines` counts them); `quote` (b'"' for CSV) closes a
    quoted field left open by a cut, so the next line is still a row of its own."""

    def __init__(self, raw: IO[bytes], path: str, encoding: str | None = None,
                 max_line_bytes: int | None = None, quote: bytes | None = None):
        self.raw = raw
        self.path = path
        self.encoding_name = encoding or "utf-8"
        self.line_no = 0
        self.max_line_bytes, self.quote, self.cut_lines = max_line_bytes, quote, 0
        self._quoted = False  # inside a quoted field that goes on over the line end
        self._buffer = ""
        self._first = True

    def readable(self) -> bool:
        return True

    def _decode_next(self) -> str:
        limit = self.max_line_bytes
        data = self.raw.readline() if limit is None else self.raw.readline(limit + 1)
        if not data:
            return ""
        self.line_no += 1
        cut, end = False, b""
        if limit is not None and len(data) > limit and not data.endswith(b"\n"):
            skipped, ended = self._skip_rest()
            end = b"\n" if ended else b""
            cut = bool(skipped) or data[limit:] != b"\r"  # not when only "\r\n" was past it
            data = data[:limit] if cut else data + end
        if self._first:
            self._first = False
            if self.encoding_name.replace("_", "-").lower() in ("utf-8", "utf8") and \
                    data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
        if self.quote is not None:
            self._quoted ^= data.count(self.quote) % 2 == 1
        try:
            if cut:  # a character split by the cut is left out
                self.cut_lines += 1
                text = codecs.getincrementaldecoder(self.encoding_name)().decode(data)
                if self._quoted:  # close the field the cut left open
                    text, self._quoted = text + self.quote.decode(), False
                text += end.decode()
            else:
                text = data.decode(self.encoding_name)
        except UnicodeDecodeError as exc:
            raise DataError(
                f"bytes {data[exc.start:exc.start + 4]!r} are not valid {self.encoding_name} "
                f"(at byte {exc.start} of the line); pass --encoding if the file uses another",
                path=self.path, line=self.line_no,
            ) from None
        except LookupError:
            raise DataError(f"unknown encoding {self.encoding_name!r}", path=self.path) from None
        if "\x00" in text:  # no text format holds one; it would end up inside tokens
            raise DataError("holds a NUL byte: a binary file? expected text",
                            path=self.path, line=self.line_no)
        return text

    def _skip_rest(self) -> tuple[int, bool]:
        """Read past the rest of a line a block at a time: (bytes before its line end,
        whether it had one)."""
        count = 0
        while block := self.raw.readline(SKIP_BLOCK):
            if block.endswith(b"\n"):
                return count + len(block.rstrip(b"\r\n")), True
            count += len(block)
        return count, False

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


def open_text(path: str | Path, encoding: str | None = None,
              max_line_bytes: int | None = None) -> LineDecoder:
    """Open a file (or stdin for "-") for reading as text with line-exact decode errors.
    A pipe, FIFO or terminal is read through a PipeReader. `max_line_bytes`: see
    LineDecoder."""
    def decoder(raw, name: str) -> LineDecoder:
        return LineDecoder(raw, name, encoding, max_line_bytes)

    if str(path) == "-":
        try:
            fd = sys.stdin.fileno()
        except (AttributeError, ValueError, OSError):  # stdin replaced (tests)
            return decoder(sys.stdin.buffer, "-")
        if is_regular(fd):
            return decoder(sys.stdin.buffer, "-")
        return decoder(PipeReader(fd), "-")
    try:
        if not Path(path).is_dir() and Path(path).exists() and \
                not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO, /dev/stdin
            return decoder(PipeReader(os.open(path, os.O_RDONLY), close=True), str(path))
        raw = open(path, "rb")
    except FileNotFoundError:
        raise DataError("no such file", path=str(path)) from None
    except IsADirectoryError:
        raise DataError("is a directory, expected a file", path=str(path)) from None
    except PermissionError:
        raise DataError("permission denied", path=str(path)) from None
    return decoder(raw, str(path))


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
                role: str, path: str, option: str | None) -> str:
    """Find a column by the name asked for, else by a common name (case-insensitive).
    `option` is the command's option that names the column, None when it has none."""
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
        f"{', '.join(map(repr, columns))}; "
        + (f"name it with {option}" if option else "rename the column to one of those"),
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
               encoding: str | None = None, chunk_size: int = 1024,
               max_line_bytes: int | None = None) -> Iterator[list[str]]:
    """Stream texts in chunks: one text per line, or the text column of a CSV/TSV.

    Lines keep their position: an empty line yields an empty string, never a gap. With
    `max_line_bytes`, longer lines (rows) are cut (LineDecoder), with one warning at the end.
    """
    path = str(path)
    if not is_table(path, sep, text_column):
        yield from iter_lines(path, encoding, chunk_size, max_line_bytes)
        return
    import pandas as pd

    stream = open_text(path, encoding, max_line_bytes)
    try:
        header = stream.readline()
        if not header.strip():
            return
        stream._buffer = header
        delimiter = resolve_sep(path, sep, header)
        stream.quote = None if delimiter == "\t" else b'"'  # QUOTE_NONE for tabs
        reader = _read_frame(stream, path, delimiter, chunksize=chunk_size)
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
        warn_cut(stream)
    finally:
        if path != "-":
            stream.raw.close()


def iter_lines(path: str | Path, encoding: str | None = None, chunk_size: int = 1024,
               max_line_bytes: int | None = None) -> Iterator[list[str]]:
    """Stream the lines of a text file in chunks (of chunk_size lines, fewer once they hold
    CHUNK_CHARS), without line ends; an empty line yields an empty string, so output can
    line up with input. With `max_line_bytes`, longer lines are cut (LineDecoder), with one
    warning at the end."""
    path = str(path)
    stream = open_text(path, encoding, max_line_bytes)
    ready = getattr(stream.raw, "ready", None)  # a pipe: answer what we have when it pauses
    try:
        chunk: list[str] = []
        size = 0
        while True:
            if chunk and ready is not None and not ready(PAUSE_SECONDS):
                yield chunk
                chunk, size = [], 0
            line = stream.readline()
            if not line:
                break
            chunk.append(line.rstrip("\r\n"))
            size += len(line)
            if len(chunk) >= chunk_size or size >= CHUNK_CHARS:
                yield chunk
                chunk, size = [], 0
        if chunk:
            yield chunk
        warn_cut(stream)
    finally:
        if path != "-":
            stream.raw.close()


def warn_cut(stream: LineDecoder) -> None:
    """One warning for the lines a stream cut at its max_line_bytes, if any."""
    if stream.cut_lines:
        one = stream.cut_lines == 1
        limit = _bytes(stream.max_line_bytes)
        logging.getLogger("seqkit").warning(
            "%s: %d line%s longer than %s %s cut to %s first %s (the rest was skipped)",
            display_name(stream.path), stream.cut_lines, "" if one else "s", limit,
            "was" if one else "were", "its" if one else "their", limit)


def _bytes(count: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if count >= size:
            return f"{count / size:g} {unit}"
    return f"{count} bytes"


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
