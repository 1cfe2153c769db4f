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
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Sequence

import pandas as pd

from seqkit.errors import DataError

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
    """Open a file (or stdin for "-") for reading as text with line-exact decode errors."""
    if str(path) == "-":
        return LineDecoder(sys.stdin.buffer, "-", encoding)
    try:
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
    try:
        chunk: list[str] = []
        for line in stream:
            chunk.append(line.rstrip("\r\n"))
            if len(chunk) >= chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk
    finally:
        if path != "-":
            stream.raw.close()


@dataclass
class Pairs:
    """Sentence pairs read from a parallel corpus, with the line each came from."""
    sources: list[str]
    targets: list[str]
    lines: list[int]
    skipped: int = 0


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


def read_pairs(path: str | Path, *, reverse: bool = False, skip_bad_lines: bool = False,
               encoding: str | None = None) -> Pairs:
    """Read `source<TAB>target[<TAB>anything else]` lines (blank lines are skipped).

    A line without a tab, or with an empty side, is an error naming FILE:LINE, or, with
    skip_bad_lines, counted and reported in one warning. reverse swaps the two sides.
    """
    path = str(path)
    bad = BadRecords(skip_bad_lines)
    sources, targets, lines = [], [], []
    for number, line in _numbered_lines(path, encoding):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            bad("no tab; expected SOURCE<TAB>TARGET", path, number)
            continue
        source, target = fields[0].strip(), fields[1].strip()
        if reverse:
            source, target = target, source
        if not source or not target:
            side = "source" if not source else "target"
            bad(f"empty {side}; expected SOURCE<TAB>TARGET, both non-empty", path, number)
            continue
        sources.append(source)
        targets.append(target)
        lines.append(number)
    bad.warn()
    if not sources:
        raise DataError("no sentence pairs; expected SOURCE<TAB>TARGET lines", path=path)
    return Pairs(sources, targets, lines, bad.count)


def read_parallel(source_path: str | Path, target_path: str | Path, *, reverse: bool = False,
                  skip_bad_lines: bool = False, encoding: str | None = None) -> Pairs:
    """Read line-aligned pairs from two files (line N of one translates line N of the other).
    Lines empty on both sides are skipped; one empty side is a bad line."""
    source_path, target_path = str(source_path), str(target_path)
    bad = BadRecords(skip_bad_lines)
    sources, targets, lines = [], [], []
    src_iter = _numbered_lines(source_path, encoding)
    tgt_iter = _numbered_lines(target_path, encoding)
    while True:
        src, tgt = next(src_iter, None), next(tgt_iter, None)
        if src is None or tgt is None:
            break
        number, source, target = src[0], src[1].strip(), tgt[1].strip()
        if not source and not target:
            continue
        if not source or not target:
            empty, full = (source_path, target_path) if not source else (target_path,
                                                                         source_path)
            bad(f"empty line, but line {number} of {display_name(full)} is not",
                empty, number)
            continue
        sources.append(source)
        targets.append(target)
        lines.append(number)
    if (src is None) != (tgt is None):  # the files must have the same number of lines
        (number, _), longer, shorter = ((src, source_path, target_path) if tgt is None
                                        else (tgt, target_path, source_path))
        raise DataError(f"{display_name(shorter)} ends at line {number - 1}; expected the "
                        f"two files to have the same number of lines", path=longer, line=number)
    bad.warn()
    if reverse:
        sources, targets = targets, sources
    if not sources:
        raise DataError("no sentence pairs", path=source_path)
    return Pairs(sources, targets, lines, bad.count)


def _numbered_lines(path: str, encoding: str | None) -> Iterator[tuple[int, str]]:
    number = 0
    for chunk in iter_lines(path, encoding):
        for line in chunk:
            number += 1
            yield number, line


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
DOCSTART = "-DOCSTART-"


class Sentence:
    """One sentence of a CoNLL file: tokens, tags (empty when not read) and the line of
    each token, for error messages."""

    __slots__ = ("tokens", "tags", "lines")

    def __init__(self, tokens: list[str], tags: list[str], lines: list[int]):
        self.tokens, self.tags, self.lines = tokens, tags, lines

    def __repr__(self) -> str:
        return f"Sentence({self.tokens!r}, {self.tags!r})"


def _column(fields: list[str], number: int, role: str, option: str, path: str, line: int
            ) -> str:
    """Field `number` (1-based; negative counts from the end) of a line."""
    index = number - 1 if number > 0 else number
    if number == 0 or not -len(fields) <= index < len(fields):
        raise DataError(f"no {role} column {number}: the line has {len(fields)} column"
                        f"{'s' if len(fields) != 1 else ''}; choose it with {option}",
                        path=path, line=line)
    return fields[index]


def iter_conll(path: str | Path, token_column: int = 1, tag_column: int | None = -1,
               encoding: str | None = None) -> Iterator[Sentence]:
    """Stream the sentences of a CoNLL-style file: one token per line, columns separated
    by tabs (when the line has one) or runs of spaces, a blank line between sentences,
    `-DOCSTART-` lines skipped. Columns are numbered from 1; -1 is the last. With
    `tag_column` None, tags are not read (pre-tokenised input for predict).
    Every line must have as many columns as the first."""
    path = str(path)
    stream = open_text(path, encoding)
    expected, first_line = None, 0
    tokens: list[str] = []
    tags: list[str] = []
    lines: list[int] = []
    try:
        for raw in stream:
            line_no = stream.line_no
            line = raw.rstrip("\r\n")
            fields = line.split("\t") if "\t" in line else line.split()
            fields = [f.strip() for f in fields]
            if not line.strip() or fields[0] == DOCSTART:
                if tokens:
                    yield Sentence(tokens, tags, lines)
                    tokens, tags, lines = [], [], []
                continue
            if expected is None:
                expected, first_line = len(fields), line_no
                if tag_column is not None and len(fields) < 2:
                    raise DataError(f"found 1 column ({fields[0]!r}), expected at least 2: "
                                    "the token, ..., the tag", path=path, line=line_no)
            elif len(fields) != expected:
                what = "the tag column is missing; " if len(fields) < expected else ""
                raise DataError(f"{what}found {len(fields)} columns, expected {expected} like "
                                f"line {first_line}", path=path, line=line_no)
            tokens.append(_column(fields, token_column, "token", "--token-column", path,
                                  line_no))
            if tag_column is not None:
                tags.append(_column(fields, tag_column, "tag", "--tag-column", path, line_no))
            lines.append(line_no)
        if tokens:
            yield Sentence(tokens, tags, lines)
    finally:
        if path != "-":
            stream.raw.close()


def read_conll(path: str | Path, token_column: int = 1, tag_column: int = -1,
               encoding: str | None = None) -> list[Sentence]:
    """All tagged sentences of a CoNLL file; an empty file is an error."""
    sentences = list(iter_conll(path, token_column, tag_column, encoding))
    if not sentences:
        raise DataError("no sentences; expected lines of TOKEN ... TAG with a blank line "
                        "between sentences", path=str(path))
    return sentences


# Word vectors ----------------------------------------------------------------------------------
def read_vectors(path: str | Path, encoding: str | None = None, keep=None
                 ) -> tuple[list[str], "np.ndarray"]:
    """Word vectors in word2vec or GloVe text format: `WORD V1 ... VD` per line, with an
    optional first line `COUNT DIM` (word2vec). `keep(word)` filters which words to load.
    Returns (words, float32 matrix)."""
    import numpy as np

    path = str(path)
    stream = open_text(path, encoding)
    words: list[str] = []
    rows: list = []
    dim = None
    try:
        for raw in stream:
            fields = raw.rstrip().split(" ")
            if stream.line_no == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                dim = int(fields[1])  # the word2vec header
                continue
            if len(fields) < 2:
                if not raw.strip():
                    continue
                raise DataError("expected a word and its vector components", path=path,
                                line=stream.line_no)
            if dim is None:
                dim = len(fields) - 1
            if len(fields) - 1 != dim:
                raise DataError(f"found {len(fields) - 1} components, expected {dim}",
                                path=path, line=stream.line_no)
            if keep is not None and not keep(fields[0]):
                continue
            try:
                rows.append(np.asarray(fields[1:], dtype=np.float32))
            except ValueError:
                raise DataError("vector components must be numbers", path=path,
                                line=stream.line_no) from None
            words.append(fields[0])
    finally:
        if path != "-":
            stream.raw.close()
    if dim is None:
        raise DataError("no vectors; expected lines of WORD V1 ... VD", path=path)
    matrix = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return words, matrix
