"""Progress of a sweep: a one-line bar on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def format_duration(seconds: float) -> str:
    """``75.2`` -> ``'1:15'``, ``4000`` -> ``'1:06:40'``; ``'?'`` when unknown.

    Examples
    --------
    >>> format_duration(75.2), format_duration(4000), format_duration(float("inf"))
    ('1:15', '1:06:40', '?')
    """
    if seconds != seconds or seconds in (float("inf"), float("-inf")) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Points done, rate and ETA.

    On a terminal a bar is redrawn in place at most ten times a second; elsewhere (a log file,
    CI) a plain line is printed every ``line_interval_s`` seconds and at the end.

    Parameters
    ----------
    total : int
        Points this run has to do.
    label : str
        Printed before the counts.
    stream : file, optional
        Default: standard error.
    enabled : bool
        False prints nothing.
    tty : bool, optional
        Force bar (True) or plain lines (False); default: ``stream.isatty()``.
    """

    def __init__(
        self,
        total: int,
        label: str = "sweep",
        stream: TextIO | None = None,
        enabled: bool = True,
        tty: bool | None = None,
        line_interval_s: float = 10.0,
    ) -> None:
        self.total = total
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty() if tty is None else tty
        self.line_interval_s = line_interval_s
        self.done = 0
        self.failed = 0
        self.start = time.monotonic()
        self._last_draw = 0.0 if self.tty else self.start

    def update(self, n: int, failed: int = 0) -> None:
        """Count ``n`` more finished points, ``failed`` of them failed."""
        self.done += n
        self.failed += failed
        if not self.enabled:
            return
        now = time.monotonic()
        interval = 0.1 if self.tty else self.line_interval_s
        if now - self._last_draw >= interval and self.done < self.total:
            self._draw(now, final=False)

    def text(self, now: float | None = None) -> str:
        """The status text: counts, percentage, rate, ETA, failures."""
        now = time.monotonic() if now is None else now
        elapsed = max(now - self.start, 1e-9)
        rate = self.done / elapsed
        left = (self.total - self.done) / rate if rate > 0 else float("inf")
        pct = 100.0 * self.done / self.total if self.total else 100.0
        failed = f", {self.failed} failed" if self.failed else ""
        return (
            f"{self.done}/{self.total} points ({pct:.1f}%), {rate:,.1f} points/s, "
            f"elapsed {format_duration(elapsed)}, ETA {format_duration(left)}{failed}"
        )

    def _draw(self, now: float, final: bool) -> None:
        self._last_draw = now
        if self.tty:
            width = 24
            filled = int(width * self.done / self.total) if self.total else width
            bar = "#" * filled + "." * (width - filled)
            self.stream.write(f"\r{self.label} [{bar}] {self.text(now)}\x1b[K")
            if final:
                self.stream.write("\n")
        else:
            self.stream.write(f"{self.label}: {self.text(now)}\n")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state (and end the bar's line)."""
        if self.enabled:
            self._draw(time.monotonic(), final=True)
