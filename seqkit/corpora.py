"""Readers of the corpus formats particular tasks use: parallel sentence pairs (a TSV, or
two line-aligned files), CoNLL column files, and word vectors in word2vec/GloVe text form.
Every error names FILE:LINE and what was expected; "-" means stdin where a path is taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from seqkit.errors import DataError
from seqkit.io import BadRecords, display_name, iter_lines, open_text, warn_cut


@dataclass
class Pairs:
    """Sentence pairs read from a parallel corpus, with the line each came from."""
    sources: list[str]
    targets: list[str]
    lines: list[int]
    skipped: int = 0


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
               encoding: str | None = None, max_line_bytes: int | None = None
               ) -> Iterator[Sentence]:
    """Stream the sentences of a CoNLL-style file: one token per line, columns separated
    by tabs (when the line has one) or runs of spaces, a blank line between sentences,
    `-DOCSTART-` lines skipped. Columns are numbered from 1; -1 is the last. With
    `tag_column` None, tags are not read (pre-tokenised input for predict).
    Every line must have as many columns as the first; with `max_line_bytes` longer lines
    are cut (seqkit.io.LineDecoder)."""
    path = str(path)
    stream = open_text(path, encoding, max_line_bytes)
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
        warn_cut(stream)
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
