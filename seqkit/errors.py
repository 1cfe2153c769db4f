"""Exceptions that the CLI turns into one line on stderr and exit code 1.

Library code raises these; only `seqkit.cli` prints them. The message says what was
received and what was expected; `where` locates it as FILE or FILE:LINE.
"""

from __future__ import annotations


class SeqkitError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message = message
        self.path = path
        self.line = line

    @property
    def where(self) -> str:
        if self.path is None:
            return ""
        name = "<stdin>" if self.path == "-" else str(self.path)
        return f"{name}:{self.line}" if self.line is not None else name

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


class DataError(SeqkitError):
    """An input file is unreadable or holds something other than what was expected."""


class ConfigError(SeqkitError):
    """A recipe, option or --set override is unknown or has the wrong type."""


class ModelError(SeqkitError):
    """A model directory is missing, damaged, or belongs to another task."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """A foreign exception (Keras, ONNX Runtime, tf2onnx) as one line for a message: its
    first line, cut after the last whole sentence that fits in `limit` characters."""
    text = str(exc).strip()
    line = text.splitlines()[0].strip() if text else type(exc).__name__
    if len(line) <= limit:
        return line
    end = line.rfind(". ", 0, limit)
    return line[:end + 1] if end > 0 else line[:limit - 3].rstrip() + "..."
