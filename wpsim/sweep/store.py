"""The results folder of a sweep: ``results.csv`` (durable journal), ``manifest.json``, Parquet.

Durability and resumption
-------------------------
``results.csv`` is written by one process only (the sweep's parent) and only by appending whole
rows: each batch of finished rows is formatted in memory and handed to the kernel in one
``os.write`` on an ``O_APPEND`` descriptor, so a crash, Ctrl-C or ``kill -9`` of the sweep can
never leave half a row behind; the file is ``fsync``-ed at least once a second and at the end
(after a power cut, at most the last second is lost). Every field is on one line (error messages
and JSON are single-line), so a row is a line. On resume, a trailing line without its newline (only
possible after a power cut or a full disk) is cut off, and the points already in the file are
skipped. When the sweep completes, the file is rewritten sorted by point (written to a temporary
file, ``fsync``-ed, then atomically renamed), so the same spec always gives the same bytes; a file
whose rows were appended in point order (a fresh run whose execution order is the point order:
see :func:`wpsim.sweep.run.execution_groups`) is already so, and is left as it is.

An exclusive lock (``.lock``) keeps two sweeps from writing into one folder at once.

A results folder may be shared with other users, so nothing in it is trusted to be what its name
says: the lock and the journal are opened without following symbolic links (``O_NOFOLLOW``) and
must be regular files, files are read the same way, and every rewrite goes through a temporary
file created exclusively with a random name (:mod:`wpsim.outputs`): a link planted at any of
these names is refused or ignored, never written through.
"""

from __future__ import annotations

import csv
import errno
import io
import itertools
import json
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from wpsim import outputs
from wpsim.errors import ConfigError

RESULTS = "results.csv"
PARQUET = "results.parquet"
MANIFEST = "manifest.json"
LOCK = ".lock"
FORMAT = "wpsim-sweep/1"

_FLOAT_COLUMNS = {"makespan_s", "sequential_s", "speedup", "utilization", "dram_bytes"}
_INT_COLUMNS = {"point", "cores", "n_tasks"}
_STR_COLUMNS = {"status", "error", "engine", "policy_label", "machine", "extra"}


def encode_value(value: Any) -> str:
    """A CSV field: scalars as written by ``str`` (floats round-trip), others as JSON; one line."""
    if value is None:
        return ""
    if isinstance(value, bool | int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return value.replace("\r", " ").replace("\n", " ")
    return json.dumps(value, sort_keys=True, default=str)


def decode_value(text: str) -> Any:
    """Inverse of :func:`encode_value` for parameter columns (best effort typing).

    Examples
    --------
    >>> [decode_value(t) for t in ["4", "0.5", "True", "", "lstm", "[1, 2]"]]
    [4, 0.5, True, None, 'lstm', [1, 2]]
    """
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def csv_field(text: str) -> str:
    """``text`` as :class:`csv.writer` (``QUOTE_MINIMAL``) writes a field of a row of several:
    quoted when it holds a comma, a quote or a newline, its quotes doubled.

    Examples
    --------
    >>> print(csv_field("wavefront, helpers=2"), csv_field('a "b" c'), csv_field("0.5"))
    "wavefront, helpers=2" "a ""b"" c" 0.5
    """
    if "," in text or '"' in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


@dataclass
class FormattedRows:
    """Rows already formatted as lines of ``results.csv`` (workers format them, so that the
    process writing the file only appends bytes), with how many there are and how many failed."""

    data: bytes
    n: int
    failed: int


def format_line(row: dict[str, Any], columns: list[str]) -> str:
    """One row (a dict by column) as a line of ``results.csv``, without its newline."""
    return ",".join([csv_field(encode_value(row.get(c))) for c in columns])


def format_rows(rows: list[dict[str, Any]], columns: list[str]) -> FormattedRows:
    """``rows`` (dicts by column) as :class:`FormattedRows`."""
    lines = [format_line(row, columns) for row in rows]
    failed = sum(1 for row in rows if row.get("status") != "ok")
    data = ("\n".join(lines) + "\n").encode(errors="backslashreplace") if lines else b""
    return FormattedRows(data, len(rows), failed)


def _format_rows(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    return format_rows(rows, columns).data


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically through :mod:`wpsim.outputs`: a temporary file
    created exclusively with a random name (a link planted at a temporary name is never
    followed), ``fsync``, rename, ``fsync`` of the folder."""
    outputs.atomic_write(path, data, "--out")


def _open_nofollow(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses a symbolic link at ``path`` (another user may have planted one
    in a shared folder) and anything but a regular file."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ConfigError(
                f"{path}: is a symbolic link; wpsim does not follow links in a results folder "
                "(remove it)"
            ) from None
        raise ConfigError(f"{path}: cannot open ({error.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"{path}: not a regular file (remove it)")
    os.set_blocking(fd, True)
    return fd


def read_bytes(path: Path) -> bytes:
    """The bytes of a regular file of a results folder (links and devices refused)."""
    fd = _open_nofollow(Path(path), os.O_RDONLY)
    with os.fdopen(fd, "rb") as handle:
        return handle.read()


class FolderLock:
    """An exclusive, non-blocking lock on a results folder (released when the process ends)."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK
        self.fd: int | None = None

    def __enter__(self) -> FolderLock:
        import fcntl

        self.fd = _open_nofollow(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            self.fd = None
            raise ConfigError(
                f"{self.path.parent}: another sweep is writing into this folder"
            ) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


class ResultsJournal:
    """Append-only ``results.csv`` with a fixed header.

    Parameters
    ----------
    path : Path
        The CSV file.
    columns : list of str
        Its header; an existing file must have exactly this header.
    fsync_interval_s : float
        Longest time between two ``fsync`` calls while rows are appended.
    """

    def __init__(self, path: Path, columns: list[str], fsync_interval_s: float = 1.0) -> None:
        self.path = path
        self.columns = columns
        self.fsync_interval_s = fsync_interval_s
        self.fd: int | None = None
        self._last_sync = 0.0
        self._dirty = False
        #: failed points among those on disk when opened (a point's first row decides)
        self.failed_before = 0
        #: rows appended since, and how many of them failed
        self.appended = 0
        self.appended_failed = 0
        #: where each batch appended to a file opened without rows lies: (first point, last
        #: point, offset after the header, bytes), while every batch's points ascend; None
        #: otherwise (then :meth:`finalize` sorts line by line)
        self._batches: list[tuple[int, int, int, int]] | None = None
        self._body_bytes = 0

    def open(self) -> set[int]:
        """Open for appending (creating the file with its header); return the points done."""
        header = _format_rows([dict(zip(self.columns, self.columns, strict=True))], self.columns)
        if not self.path.exists():
            atomic_write(self.path, header)
            done: set[int] = set()
        else:
            done = self._repair_and_scan(header)
        self._batches = [] if not done else None
        self.fd = _open_nofollow(self.path, os.O_WRONLY | os.O_APPEND)
        self._last_sync = time.monotonic()
        return done

    def _repair_and_scan(self, header: bytes) -> set[int]:
        data = read_bytes(self.path)
        if not data.startswith(header):
            first = data.split(b"\n", 1)[0].decode(errors="replace")
            raise ConfigError(
                f"{self.path}: its header does not match this sweep's columns "
                f"({first[:80]!r}...); use another --out or --restart"
            )
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a partial last line (power cut, full disk): cut it off
            with open(self.path, "r+b") as handle:
                handle.truncate(end)
                handle.flush()
                os.fsync(handle.fileno())
            data = data[:end]
        done = set()
        status = self.columns.index("status") if "status" in self.columns else None
        self.failed_before = 0
        reader = csv.reader(io.StringIO(data[len(header) :].decode(errors="replace")))
        for line_no, fields in enumerate(reader, start=2):
            if len(fields) != len(self.columns):
                raise ConfigError(
                    f"{self.path}: line {line_no}: {len(fields)} fields, expected "
                    f"{len(self.columns)} (file edited by hand?)"
                )
            if not fields[0].isdigit():
                raise ConfigError(
                    f"{self.path}: line {line_no}: point {fields[0][:20]!r} is not a number "
                    "(file edited by hand?)"
                )
            point = int(fields[0])
            if point not in done and status is not None:
                self.failed_before += fields[status] != "ok"
            done.add(point)
        return done

    def append(
        self, rows: list[dict[str, Any]] | FormattedRows, points: np.ndarray | None = None
    ) -> None:
        """Append rows durably (one ``write``; ``fsync`` at most every ``fsync_interval_s``).
        ``points``: the rows' point numbers, in their order (lets :meth:`finalize` move whole
        batches instead of sorting lines)."""
        if isinstance(rows, FormattedRows):
            data, n, failed = rows.data, rows.n, rows.failed
        else:
            data, n = _format_rows(rows, self.columns), len(rows)
            failed = sum(row.get("status") != "ok" for row in rows)
        if not data:
            return
        assert self.fd is not None, "journal is not open"
        _write_all(self.fd, data)
        if self._batches is not None:
            if points is None or len(points) != n or np.any(np.diff(points) <= 0):
                self._batches = None
            else:
                first, last = int(points[0]), int(points[-1])
                self._batches.append((first, last, self._body_bytes, len(data)))
        self._body_bytes += len(data)
        self.appended += n
        self.appended_failed += failed
        self._dirty = True
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval_s:
            self.sync()

    def sync(self) -> None:
        """``fsync`` the file if rows were appended since the last one."""
        if self.fd is not None and self._dirty:
            os.fsync(self.fd)
            self._dirty = False
            self._last_sync = time.monotonic()

    def close(self) -> None:
        """Sync and close."""
        if self.fd is not None:
            self.sync()
            os.close(self.fd)
            self.fd = None

    def finalize(self) -> int:
        """Rewrite the file sorted by point, one row per point (atomic); return the number of
        rows. Each row is one line (every field is single-line), so the lines are sorted by
        their first field without parsing the rest; batches of ascending points that do not
        interleave are moved whole instead, and a file already in order is left as it is."""
        self.close()
        batches = sorted(self._batches or [])
        disjoint = all(a[1] < b[0] for a, b in itertools.pairwise(batches))
        if self._batches is not None and disjoint and batches == self._batches:
            return self.appended  # (appended in order to a file without rows)
        data = read_bytes(self.path)
        end = data.rfind(b"\n") + 1
        header, _, body = data[:end].partition(b"\n")
        if self._batches is not None and disjoint and len(body) == self._body_bytes:
            parts = [body[start : start + size] for _, _, start, size in batches]
            atomic_write(self.path, header + b"\n" + b"".join(parts))
            return self.appended
        by_point: dict[int, bytes] = {}
        for line in body.split(b"\n"):
            if line:
                by_point.setdefault(int(line[: line.index(b",")]), line)
        ordered = [by_point[p] for p in sorted(by_point)]
        atomic_write(self.path, b"\n".join([header, *ordered]) + b"\n")
        return len(ordered)


def read_raw(path: Path, columns: list[str] | None = None) -> list[list[str]]:
    """Rows of a results CSV as lists of strings (header skipped, partial last line ignored)."""
    data = read_bytes(Path(path))
    end = data.rfind(b"\n") + 1
    reader = csv.reader(io.StringIO(data[:end].decode(errors="replace")))
    header = next(reader, None)
    if columns is not None and header is not None and header != columns:
        raise ConfigError(f"{path}: unexpected header")
    return [fields for fields in reader if fields]


def read_results(folder: str | Path) -> list[dict[str, Any]]:
    """The rows of ``folder/results.csv`` as typed dicts (metrics as numbers, ``None`` if empty).

    Raises
    ------
    ConfigError
        When the folder has no ``results.csv``.
    """
    path = Path(folder) / RESULTS
    if not path.is_file():
        raise ConfigError(f"{folder}: no {RESULTS} here (run `wpsim sweep SPEC --out {folder}`)")
    data = read_bytes(path)
    end = data.rfind(b"\n") + 1
    reader = csv.reader(io.StringIO(data[:end].decode(errors="replace")))
    header = next(reader, None) or []
    out = []
    for fields in reader:
        if len(fields) != len(header):
            continue
        row: dict[str, Any] = {}
        for name, text in zip(header, fields, strict=True):
            row[name] = _typed(name, text)
        out.append(row)
    return out


def _typed(name: str, text: str) -> Any:
    if name in _STR_COLUMNS:
        return text
    if text == "":
        return None
    if name in _INT_COLUMNS:
        return int(text)
    if name in _FLOAT_COLUMNS or name.startswith("bytes."):
        return float(text)
    return decode_value(text)


def read_manifest(folder: str | Path) -> dict[str, Any] | None:
    """``folder/manifest.json`` as a dict, or None when there is none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise ConfigError(f"{path}: unreadable manifest ({type(error).__name__})") from None
    if not isinstance(manifest, dict):
        raise ConfigError(f"{path}: unreadable manifest (not a JSON object)")
    return manifest


def write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` atomically."""
    text = outputs.dumps_json(manifest, indent=2, sort_keys=True) + "\n"
    atomic_write(folder / MANIFEST, text.encode())


def scan(path: Path, columns: list[str]) -> tuple[int, int]:
    """(points, failed points) of a results CSV, read as a stream; a point written twice (an
    interrupted chunk run again) counts once, by its first row, as :meth:`ResultsJournal.finalize`
    keeps it."""
    status = columns.index("status")
    seen: set[str] = set()
    failed = 0
    fd = _open_nofollow(Path(path), os.O_RDONLY)
    with os.fdopen(fd, newline="", errors="replace") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for fields in reader:
            if len(fields) <= status or fields[0] in seen:
                continue
            seen.add(fields[0])
            failed += fields[status] != "ok"
    return len(seen), failed


def write_parquet(folder: Path, columns: list[str]) -> bool:
    """Write ``results.parquet`` from ``results.csv`` when pyarrow is installed; True if
    written. Metric columns are typed as :func:`read_results` types them (empty: null); a
    parameter column takes the type its values have (decoded as :func:`decode_value` does, per
    distinct value), text where they mix types."""
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv
        import pyarrow.parquet as pq
    except ImportError:
        return False
    table = pa_csv.read_csv(
        pa.BufferReader(read_bytes(folder / RESULTS)),
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(columns, pa.string()),
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    )
    arrays = {}
    for name in columns:
        text = table.column(name).combine_chunks()
        if name in _STR_COLUMNS:
            arrays[name] = text
            continue
        empty = pc.equal(text, "")
        if name in _INT_COLUMNS or name in _FLOAT_COLUMNS or name.startswith("bytes."):
            if pc.all(empty).as_py() is not False:  # no value at all: a column of nulls
                arrays[name] = pa.nulls(len(text))
                continue
            kind = pa.int64() if name in _INT_COLUMNS else pa.float64()
            arrays[name] = pc.if_else(
                empty, pa.scalar(None, kind), pc.cast(pc.if_else(empty, "0", text), kind)
            )
            continue
        encoded = text.dictionary_encode()
        values = [_typed(name, v) for v in encoded.dictionary.to_pylist()]
        try:
            typed = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed types: keep the text
            typed = pa.array([encode_value(v) for v in values], type=pa.string())
        arrays[name] = typed.take(encoded.indices)
    table = pa.table(arrays)
    outputs.write_with(folder / PARQUET, lambda path: pq.write_table(table, path), "--out")
    return True
