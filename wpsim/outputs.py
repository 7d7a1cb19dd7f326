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
import os
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from wpsim.errors import WpsimError


class OutputError(WpsimError):
    """An output cannot be written (missing or read-only folder, a folder as target, disk full)."""


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
    return path


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


def atomic_write(path: str | Path, data: str | bytes, flag: str = "") -> None:
    """Write ``data`` (text or bytes) to ``path`` atomically (see the module's rules)."""
    with open_output(path, flag, "wb" if isinstance(data, bytes) else "w") as handle:
        handle.write(data)


def write_with(path: str | Path, writer: Callable[[Path], None], flag: str = "") -> None:
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


def _discard(temporary: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(temporary)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


__all__ = ["OutputError", "atomic_write", "check_output", "open_output", "write_with"]
