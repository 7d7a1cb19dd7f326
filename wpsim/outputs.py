"""Every file wpsim writes goes through here: checked before long work, written atomically.

Rules (the reasons in brief):

* :func:`check_output` is called for every output flag *before* any long work starts, so a run
  never measures for minutes and then fails to save: the parent must be an existing, writable
  folder and the path must not be a folder.
* :func:`atomic_write` writes a regular file through a temporary file created exclusively
  (``O_CREAT | O_EXCL``: a name planted in advance, a symlink included, makes the creation fail
  instead of being followed) with a random name in the target's folder, flushes and fsyncs it,
  then renames it over the target. Readers see the old file or the new one, never half of one.
* A target that exists and is not a regular file (``/dev/stdout``, ``/dev/full``, a named pipe)
  is written in place, and write errors (``ENOSPC`` from ``/dev/full``) are reported: data is
  never silently lost.
* Errors are one line naming the flag, the path and the reason (:class:`OutputError`, exit 2).
* JSON never holds ``Infinity`` or ``NaN`` (not JSON): :func:`dumps_json` writes them as ``null``.
* A figure's format comes from its suffix, which must be one matplotlib writes
  (:data:`FIGURE_SUFFIXES`, checked by :func:`check_figure` before any work).

Examples
--------
>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write(folder / "a.txt", "hello\\n")
>>> (folder / "a.txt").read_text()
'hello\\n'
>>> try:
...     check_output(folder / "missing" / "b.txt", "--trace")
... except OutputError as error:
...     print(str(error).replace(str(folder), "DIR"))
--trace DIR/missing/b.txt: folder DIR/missing does not exist
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from wpsim.errors import WpsimError


class OutputError(WpsimError):
    """An output cannot be written (missing or read-only folder, a folder as target, disk full)."""


#: Figure suffixes matplotlib's Agg backend writes without extra software (no .pgf: LaTeX).
FIGURE_SUFFIXES = (
    ".png",
    ".pdf",
    ".svg",
    ".svgz",
    ".eps",
    ".ps",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".webp",
)


def _reason(error: OSError) -> str:
    return error.strerror or type(error).__name__


def check_output(path: str | Path, flag: str) -> Path:
    """Check that ``path`` can be written by ``flag``'s output; return it as a Path.

    Raises
    ------
    OutputError
        The parent folder is missing, not a folder or not writable, or ``path`` is a folder.
    """
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if path.is_dir():
        raise OutputError(f"{where}: is a folder, expected a file name")
    if path.exists() and not path.is_file():
        return path  # a device or a pipe: written in place, errors reported then
    parent = path.parent
    if not parent.exists():
        raise OutputError(f"{where}: folder {parent} does not exist")
    if not parent.is_dir():
        raise OutputError(f"{where}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: folder {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{where}: file is not writable")
    _probe(parent, where)
    return path


def _probe(folder: Path, where: str) -> None:
    """Create and remove a file in ``folder``: the one sure test that it can be written (root
    ignores permission bits; read-only mounts and pseudo file systems refuse only then)."""
    try:
        fd, temporary = tempfile.mkstemp(prefix=".wpsim-", suffix=".probe", dir=folder)
    except OSError as error:
        raise OutputError(f"{where}: folder {folder} is not writable ({_reason(error)})") from None
    os.close(fd)
    _discard(temporary)


def check_figure(path: str | Path, flag: str) -> Path:
    """:func:`check_output` for a figure, whose suffix must be one of :data:`FIGURE_SUFFIXES`
    (a device such as ``/dev/stdout`` gets PNG)."""
    path = check_output(path, flag)
    if path.exists() and not path.is_file():
        return path
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        where = f"{flag} {path}" if flag else str(path)
        raise OutputError(
            f"{where}: unknown figure format {path.suffix or '(no suffix)'!r}, expected a file "
            f"name ending in {', '.join(FIGURE_SUFFIXES)}"
        )
    return path


def figure_format(path: str | Path) -> str:
    """The format matplotlib should write for ``path``: its suffix, PNG for a device."""
    suffix = Path(path).suffix.lower()
    return suffix[1:] if suffix in FIGURE_SUFFIXES else "png"


def output_folder(path: str | Path, flag: str) -> Path:
    """Create the output folder ``path`` (and missing parents) or check the existing one is a
    writable folder; one-line :class:`OutputError` otherwise. Call it before long work."""
    path = Path(path)
    where = f"{flag} {path}" if flag else str(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{where}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{where}: cannot create the folder ({_reason(error)})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"{where}: folder is not writable")
    _probe(path, where)
    return path


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (``inf``, ``nan``) replaced by None, numpy
    scalars as Python numbers, tuples as lists: what JSON can hold.

    Examples
    --------
    >>> finite_json({"a": float("inf"), "b": [1.5, float("nan")], "c": (2, "x")})
    {'a': None, 'b': [1.5, None], 'c': [2, 'x']}
    """
    if isinstance(value, bool | str | None):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(item) for item in value]
    return value


def dumps_json(value: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` of :func:`finite_json` (``kwargs`` as for json.dumps; objects JSON
    does not know go through ``str``)."""
    kwargs.setdefault("default", str)
    return json.dumps(finite_json(value), allow_nan=False, **kwargs)


@contextlib.contextmanager
def open_output(path: str | Path, flag: str = "", mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """Open ``path`` for writing as :func:`atomic_write` does; the file appears when the
    ``with`` block ends without an exception (on an exception, nothing is left behind).

    ``mode``: ``"w"`` (text; ``kwargs`` go to :func:`open`, e.g. ``newline=""``) or ``"wb"``.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode: got {mode!r}, expected 'w' or 'wb'")
    path = check_output(path, flag)
    where = f"{flag} {path}" if flag else str(path)
    try:
        if path.exists() and not stat.S_ISREG(path.stat().st_mode):
            with open(path, mode, **kwargs) as handle:  # a device or a pipe, in place
                yield handle
            return
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise OutputError(f"{where}: cannot write ({_reason(error)})") from None
    try:
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        _discard(temporary)
        raise OutputError(f"{where}: cannot write ({_reason(error)})") from None
    except BaseException:
        _discard(temporary)
        raise
    _fsync_folder(path.parent)


def atomic_write(path: str | Path, data: str | bytes, flag: str = "") -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically (see the module's rules)."""
    with open_output(path, flag, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)


def write_with(path: str | Path, writer: Callable[[Path], object], flag: str = "") -> None:
    """Let ``writer(temporary_path)`` write a file (a library that wants a path, such as
    matplotlib's ``savefig``), then move it over ``path`` atomically.

    The temporary name keeps ``path``'s suffix, so writers that pick a format by suffix work.
    """
    path = check_output(path, flag)
    where = f"{flag} {path}" if flag else str(path)
    if path.exists() and not stat.S_ISREG(path.stat().st_mode):
        try:
            writer(path)
        except OSError as error:
            raise OutputError(f"{where}: cannot write ({_reason(error)})") from None
        return
    try:
        fd, temporary = tempfile.mkstemp(
            prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
        os.close(fd)
    except OSError as error:
        raise OutputError(f"{where}: cannot write ({_reason(error)})") from None
    try:
        writer(Path(temporary))
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        _discard(temporary)
        raise OutputError(f"{where}: cannot write ({_reason(error)})") from None
    except BaseException:
        _discard(temporary)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every system syncs folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _discard(temporary: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = [
    "FIGURE_SUFFIXES",
    "OutputError",
    "atomic_write",
    "check_figure",
    "check_output",
    "dumps_json",
    "figure_format",
    "finite_json",
    "open_output",
    "output_folder",
    "write_with",
]
