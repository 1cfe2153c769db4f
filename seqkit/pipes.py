"""Reading a pipe, a FIFO or a terminal as its lines come, so that predict answers each line
when its input pauses instead of waiting for a full chunk (`tail -f log | seqkit ...`)."""

from __future__ import annotations

import os
import select
import stat


class PipeReader:
    """Binary lines from a file descriptor (stdin, a FIFO), read in blocks, that can tell
    whether another line is ready now: predict answers what it has when its input pauses,
    instead of waiting for a full batch (`tail -f log | seqkit ... predict`)."""

    BLOCK = 1 << 16

    def __init__(self, fd: int, close: bool = False):
        self.fd, self.close_fd = fd, close
        self.buffer, self.start, self.searched, self.eof = bytearray(), 0, 0, False

    def _newline(self) -> int:
        at = self.buffer.find(b"\n", max(self.start, self.searched))
        self.searched = len(self.buffer) if at < 0 else at
        return at

    def readline(self, size: int = -1) -> bytes:
        """The next line, or its first `size` bytes when it is longer (as io's readline),
        so a long line is not held whole."""
        at = self._newline()
        while at < 0 and not self.eof and (size < 0 or len(self.buffer) - self.start < size):
            data = os.read(self.fd, self.BLOCK)
            if data:
                self.buffer += data
                at = self._newline()
            else:
                self.eof = True
        end = len(self.buffer) if at < 0 else at + 1
        if size >= 0:
            end = min(end, self.start + size)
        line = bytes(self.buffer[self.start:end])
        self.start = end
        if self.start > self.BLOCK:  # drop what was handed out
            del self.buffer[:self.start]
            self.searched -= self.start
            self.start = 0
        return line

    def ready(self, timeout: float = 0.0) -> bool:
        """A whole line (or the end) can be read without waiting longer than `timeout`."""
        if self.eof or self._newline() >= 0:
            return True
        return bool(select.select([self.fd], [], [], timeout)[0])

    def close(self) -> None:
        if self.close_fd:
            os.close(self.fd)


def is_regular(fd: int) -> bool:
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        return False
