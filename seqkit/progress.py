"""Progress on stderr, right for where it goes: on a terminal, one line redrawn in place;
anywhere else (a log file, nohup, CI), one plain line every `every` seconds on the seqkit
logger, with the same numbers:

    seqkit: epoch 2/10 step 340/1200 (28%) loss 0.4123 12,345 tokens/s ETA 3m10s
    seqkit: predict 3,400/12,000 lines (28%) 1,234 lines/s ETA 7s

-q silences both (it sets the logger's level). Pure Python, so that predict and evaluate
show progress without importing TensorFlow; training's terminal bar is Keras's Progbar
(seqkit.training), since TensorFlow is loaded there anyway.

Scoring loops report through `expect` and `advance`, which do nothing unless a `counting`
block (evaluate) is open: the same loops run silently inside training's validation.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import threading
import time
from typing import Iterator

log = logging.getLogger("seqkit")

every = 30.0  # seconds between plain lines; the CLI's --progress-every sets it
REDRAW = 0.1  # seconds between redraws of a terminal line


def shown() -> bool:
    """Progress is wanted: the seqkit logger shows INFO (not -q)."""
    return log.isEnabledFor(logging.INFO)


def is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # a closed or replaced stream
        return False


def duration(seconds: float) -> str:
    """7s, 3m10s, 2h05m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Meter:
    """Counts work done (toward `total`, when known) and reports it: redrawn in place at
    most every REDRAW seconds on a terminal, else logged at most every `interval` seconds
    (default: the module's `every`). The rate is of `rate_unit`, `scale` of them per unit
    counted (tokens per step); `fields` (a loss) are shown as given."""

    def __init__(self, label: str, total: int | None = None, unit: str = "", *,
                 rate_unit: str | None = None, scale: float = 1.0,
                 terminal: bool | None = None, interval: float | None = None):
        self.label, self.total, self.unit = label, total, unit
        self.rate_unit, self.scale = rate_unit or unit or "steps", scale
        self.terminal = is_terminal(sys.stderr) if terminal is None else terminal
        self.interval = every if interval is None else interval
        self.done, self.fields, self.width, self.reported = 0, {}, 0, False
        self.start = self.last = time.perf_counter()
        self.mark: tuple[float, int] | None = None  # when the first unit was done

    def count(self, n: int = 1, **fields: float) -> None:
        self.done += n
        self.fields.update(fields)
        if self.mark is None:
            self.mark = (time.perf_counter(), self.done)

    def advance(self, n: int = 1, **fields: float) -> None:
        self.count(n, **fields)
        now = time.perf_counter()
        if now - self.last >= (REDRAW if self.terminal else self.interval):
            self.last = now
            self.report(now)

    def rate(self, now: float | None = None) -> float:
        """`rate_unit`s per second, after the first unit once there are more (as Keras's
        Progbar: the first holds warm-up, graph tracing, that the rest do not repeat)."""
        now = now or time.perf_counter()
        since, done = (self.start, 0) if self.mark is None or self.done == self.mark[1] \
            else self.mark
        return (self.done - done) * self.scale / max(now - since, 1e-9)

    def text(self, now: float | None = None, bar: bool = False) -> str:
        elapsed = (now or time.perf_counter()) - self.start
        total = None if self.total is None else max(self.total, self.done)
        unit = f" {self.unit}" if self.unit else ""
        parts = [self.label]
        if total:
            parts.append(f"{self.done:,}/{total:,}{unit}")
            if bar:
                filled = round(20 * self.done / total)
                parts.append("━" * filled + "─" * (20 - filled))
            parts.append(f"({100 * self.done / total:.0f}%)")
        else:
            parts.append(f"{self.done:,}{unit}")
        parts += [f"{name} {value:.4f}" for name, value in self.fields.items()]
        rate = self.rate(now)
        if self.done and elapsed > 0 and rate > 0:
            parts.append(f"{rate:,.0f} {self.rate_unit}/s")
            if total and self.done < total:
                parts.append(f"ETA {duration((total - self.done) * self.scale / rate)}")
        return " ".join(parts)

    def report(self, now: float | None = None) -> None:
        self.reported = True
        if not self.terminal:
            log.info("%s", self.text(now))
            return
        columns = shutil.get_terminal_size((100, 20)).columns - 1
        line = ("seqkit: " + self.text(now, bar=True))[:columns]
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()
        self.width = len(line)

    def close(self) -> None:
        """End a terminal line; once anything was reported, say how it ended."""
        if not self.reported:
            return
        if self.terminal:
            self.report()
            sys.stderr.write("\n")
            sys.stderr.flush()
        else:
            seconds = time.perf_counter() - self.start
            log.info("%s %s%s in %s", self.label, f"{self.done:,}",
                     f" {self.unit}" if self.unit else "", duration(seconds))


def for_input(label: str, path: str) -> Meter | None:
    """A meter of the lines read from `path` ("-": stdin), or None when none is wanted:
    with -q; when the input is typed at a terminal (the answers are the progress); and on
    a terminal whose stdout is the same screen (a bar between the answers would garble
    them). A named file's lines are counted in the background, so that the first answers
    do not wait for the count; until it ends, only the rate is shown."""
    if not shown() or (path == "-" and is_terminal(sys.stdin)):
        return None
    terminal = is_terminal(sys.stderr)
    if terminal and is_terminal(sys.stdout):
        return None
    meter = Meter(label, unit="lines", terminal=terminal)
    if path != "-" and os.path.isfile(path):
        threading.Thread(target=_count_lines, args=(path, meter), daemon=True).start()
    return meter


def _count_lines(path: str, meter: Meter) -> None:
    lines, last = 0, b"\n"
    try:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
    except OSError:
        return
    meter.total = lines + (last != b"\n")


_active: Meter | None = None


@contextlib.contextmanager
def counting(label: str) -> Iterator[None]:
    """Report, while the block runs, the work that scoring loops `expect` and `advance`."""
    global _active
    if not shown():
        yield
        return
    meter = _active = Meter(label, unit="examples")
    try:
        yield
    finally:
        _active = None
    meter.close()


def expect(n: int, unit: str | None = None) -> None:
    """A scoring loop is about to do `n` more units of work."""
    if _active is not None:
        _active.total = (_active.total or 0) + n
        if unit:
            _active.unit = _active.rate_unit = unit


def advance(n: int) -> None:
    if _active is not None:
        _active.advance(n)
