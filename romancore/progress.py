"""Progress of multi-item runs: a bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("romancore.progress")


def _fmt(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """Report "N of M <items>, elapsed, ETA" as items finish.

    On a terminal (``stream.isatty()``) a single line is redrawn; otherwise one INFO log
    line per item is written, so batch logs stay readable.
    """

    def __init__(self, total: int, what: str = "items", *, stream=None, enabled: bool = True):
        self.total = int(total)
        self.what = what
        self.done = 0
        self.start = time.perf_counter()
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.total > 1
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else float("nan")
        eta_text = _fmt(eta) if self.done else "?"
        return f"{self.done} of {self.total} {self.what}, elapsed {_fmt(elapsed)}, ETA {eta_text}"

    def advance(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self.tty:
            width = 30
            filled = int(width * self.done / self.total)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.line()}")
            if self.done >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        else:
            log.info("progress: %s", self.line())
