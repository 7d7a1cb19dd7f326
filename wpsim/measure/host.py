"""Making this computer's calibration when a command asks for it (``--calibrate``), with a
progress bar, and the ``--hardware`` option of ``run`` and ``validate``: by default this
computer's calibration (:mod:`wpsim.machines.host` finds it)."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

from wpsim.errors import ConfigError
from wpsim.machines.host import HOST_NAME, find_host_calibration, host_file, missing_message


def calibrate_host(quick: bool = True, stream: Any = None) -> Path:
    """Calibrate this computer into its cache entry, drawing a progress bar on ``stream``
    (default: stderr); return the file written."""
    from wpsim.measure.calibrate import calibrate

    path = host_file()
    bar = ProgressBar(
        stream or sys.stderr, "calibrating this computer" + (" (quick)" if quick else "")
    )
    try:
        calibrate(path, quick=quick, progress=bar.update)
    finally:
        bar.close()
    return path


_STEP = re.compile(r"\[(\d+)(?:-(\d+))?/(\d+)\]\s*(.*?)(?:\s*\.\.\.)?$")


class ProgressBar:
    """A one-line progress bar for ``wpsim calibrate``'s ``[i/n] step`` messages: redrawn in
    place on a terminal, one line per step otherwise (a log file stays readable). Warnings and
    other lines pass through on lines of their own.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> bar = ProgressBar(out, "calibrating")
    >>> bar.update("calibrate: [3/9] cache and DRAM bandwidth ...")
    >>> bar.update("calibrate:   done in 1.5 s")
    >>> bar.close()
    >>> print(out.getvalue().strip())
    calibrating [#######-------------] 3/9 cache and DRAM bandwidth
    """

    def __init__(self, stream: Any, title: str, width: int = 20) -> None:
        self.stream, self.title, self.width = stream, title, width
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.drawn = False

    def update(self, line: str) -> None:
        text = line.removeprefix("calibrate:").strip()
        match = _STEP.match(text)
        if match is None:
            if text.startswith(("warning", "wrote")):
                self._newline()
                self.stream.write(f"{line}\n")
                self.stream.flush()
            return
        done = int(match.group(2) or match.group(1))
        total = max(int(match.group(3)), 1)
        filled = round(self.width * min(done, total) / total)
        bar = "#" * filled + "-" * (self.width - filled)
        what = match.group(4)[:50]
        if self.tty:
            self.stream.write(f"\r\x1b[2K{self.title} [{bar}] {done}/{total} {what}")
            self.drawn = True
        else:
            self.stream.write(f"{self.title} [{bar}] {done}/{total} {what}\n")
        self.stream.flush()

    def _newline(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.drawn = False

    def close(self) -> None:
        self._newline()
        self.stream.flush()


def machine_option(value: str, calibrate: bool, required: bool) -> Path | None:
    """The machine file a command's ``--hardware`` option names, for commands whose default is
    this computer (``run``, ``validate``).

    ``host`` without a calibration of this computer: with ``calibrate`` (``--calibrate``) a quick
    one is made first, with a progress bar on stderr; else a one-line :class:`ConfigError` saying
    how to make one when ``required``, or None (the command goes on without one).
    """
    from wpsim.machines import resolve_machine_path

    if value != HOST_NAME or Path(value).exists():
        return resolve_machine_path(value)
    found = find_host_calibration()
    if found is not None:
        return found
    if calibrate:
        return calibrate_host(quick=True)
    if required:
        raise ConfigError(missing_message(calibrate_flag=True))
    return None


__all__ = ["ProgressBar", "calibrate_host", "machine_option"]
