"""Progress of a comparison: a bar on a terminal, or one line per finished pair.

A bar that redraws itself is useless in a log file, and silence until the end is worse;
so ``"lines"`` prints one line per finished (method, optimizer) pair, flushed, which is
what the command line uses when its output is not a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Report progress as a bar (``"bar"``), one line per pair (``"lines"``) or not at all.

    Parameters
    ----------
    total : int
        Number of pairs expected.
    mode : {"bar", "lines"} or None
        ``None``: nothing.
    stream : file, optional
        Where lines go (default ``sys.stdout``); the bar always goes to ``sys.stderr``.
    prefix : str, default ``""``
        Put before each line, e.g. the problem's name.
    """

    def __init__(
        self, total: int, mode: str | None, *, stream: TextIO | None = None, prefix: str = ""
    ) -> None:
        self.total, self.done, self.began = total, 0, time.perf_counter()
        self.mode, self.stream, self.prefix = mode, stream, prefix
        self.shown = False

    def advance(self, label: str, line: str = "") -> None:
        """Count one finished pair ``label``; ``line`` describes its outcome."""
        self.done += 1
        if self.mode == "lines":
            stream = self.stream or sys.stdout
            stream.write(f"{self.prefix}[{self.done}/{self.total}] {label}: {line}\n")
            stream.flush()
        elif self.mode == "bar" and (self.shown or time.perf_counter() - self.began > 2.0):
            filled = int(30 * self.done / max(1, self.total))
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\rcompare [{bar}] {self.done}/{self.total} {label:<40.40}")
            sys.stderr.flush()
            self.shown = True

    def close(self) -> None:
        """End the bar's line, if one was drawn."""
        if self.shown:
            sys.stderr.write("\n")
            self.shown = False
