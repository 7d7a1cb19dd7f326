"""The calibration of *this* computer: ``-m host``, and the machine ``run``, ``validate`` and
``calibrate`` use by default.

A calibration describes the computer it was measured on, so none is shipped as everyone's
default. ``wpsim calibrate`` writes one into the user's cache folder (``platformdirs``; the
environment variable ``WPSIM_CACHE_DIR`` overrides it), under a name keyed by what decides the
numbers: the CPU model, the core count, the numpy version and the BLAS numpy was built with
(:func:`host_key`). A different CPU, a resized virtual machine or a numpy upgrade therefore finds
no calibration instead of a wrong one, and the commands say in one line how to make one
(:func:`require_host_calibration`), or make a quick one when asked (``--calibrate``:
:func:`calibrate_host`).

``WPSIM_CPU_MODEL`` overrides the CPU model wpsim reads from the operating system (the test
suite sets a fake one, so that no test can depend on the computer it runs on).

Examples
--------
>>> key = host_key()
>>> sorted(key)
['blas', 'cores', 'cpu_model', 'numpy']
>>> host_file(key).parent == cache_dir()
True
>>> host_file(key).name.startswith("host-")
True
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from wpsim.errors import ConfigError
from wpsim.hardware import HOST_NAME

CACHE_ENV = "WPSIM_CACHE_DIR"
HOW_TO_CALIBRATE = "run `wpsim calibrate` (about a minute)"
#: Added to :data:`HOW_TO_CALIBRATE` by the commands that have ``--calibrate``.
OR_CALIBRATE_FLAG = " or add --calibrate to make a quick one (about 20 s)"


def cache_dir() -> Path:
    """The folder of this user's calibrations: ``$WPSIM_CACHE_DIR``, else the platform's user
    cache folder for wpsim (``~/.cache/wpsim`` on Linux)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("wpsim", appauthor=False))


def _numpy_blas() -> str:
    """The BLAS numpy was built with, ``"name version"`` (numpy's own build record: the same
    whatever else this process has loaded)."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except (TypeError, KeyError, AttributeError):  # numpy before 1.25
        return "unknown"


def host_key(spec: Any = None) -> dict[str, Any]:
    """What a calibration of this computer is keyed by: CPU model, core count (sockets x cores
    per socket, as ``wpsim calibrate`` records them), numpy version and numpy's BLAS."""
    import numpy as np

    from wpsim.calibrate import cpu_model_label, read_cpu_spec

    spec = spec or read_cpu_spec()
    return {
        "cpu_model": cpu_model_label(spec),
        "cores": spec.sockets * spec.cores_per_socket,
        "numpy": np.__version__,
        "blas": _numpy_blas(),
    }


def host_file(key: dict[str, Any] | None = None) -> Path:
    """Where the calibration of the computer ``key`` describes lives (it may not exist yet):
    ``host-<cpu model>-<cores>c-<hash of the key>.yaml`` in :func:`cache_dir`."""
    key = key or host_key()
    slug = re.sub(r"[^a-z0-9]+", "-", str(key["cpu_model"]).lower()).strip("-")[:40] or "cpu"
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir() / f"host-{slug}-{key['cores']}c-{digest}.yaml"


def describe(key: dict[str, Any]) -> str:
    """``'Intel(R) Xeon(R) Processor, 2 cores, numpy 2.4.6, scipy-openblas 0.3.31'``."""
    return f"{key['cpu_model']}, {key['cores']} cores, numpy {key['numpy']}, {key['blas']}"


def find_host_calibration() -> Path | None:
    """This computer's calibration file, or None when there is none."""
    path = host_file()
    return path if path.is_file() else None


def missing_message(key: dict[str, Any] | None = None, calibrate_flag: bool = False) -> str:
    """One line: there is no calibration of this computer, and how to make one."""
    key = key or host_key()
    return (
        f"-m host: no calibration of this computer ({describe(key)}) in "
        f"{host_file(key).parent}; {HOW_TO_CALIBRATE}"
        + (OR_CALIBRATE_FLAG if calibrate_flag else "")
    )


def require_host_calibration(calibrate_flag: bool = False) -> Path:
    """This computer's calibration file.

    Raises
    ------
    ConfigError
        One line saying there is none and how to make one (``calibrate_flag``: the command
        has ``--calibrate``, which the line mentions).
    """
    key = host_key()
    path = host_file(key)
    if not path.is_file():
        raise ConfigError(missing_message(key, calibrate_flag))
    return path


def calibrate_host(quick: bool = True, stream: Any = None) -> Path:
    """Calibrate this computer into its cache entry, drawing a progress bar on ``stream``
    (default: stderr); return the file written."""
    from wpsim.calibrate import calibrate

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
    from wpsim.hardware import resolve_machine_path

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


__all__ = [
    "CACHE_ENV",
    "HOST_NAME",
    "ProgressBar",
    "cache_dir",
    "calibrate_host",
    "find_host_calibration",
    "host_file",
    "host_key",
    "machine_option",
    "missing_message",
    "require_host_calibration",
]
