"""Measurements made elsewhere, for ``wpsim validate --measured FILE``.

A measurement is one timed run of some implementation (PyTorch, an OpenMP or OmpSs wavefront, a
GPU kernel) described in wpsim's terms: the workload it ran, the machine it ran on, the policy
that names its schedule, how many workers (threads) ran it, and how long it took. Two formats:

CSV
---
One row per timed run, a header naming the columns; blank lines and lines starting with ``#``
are skipped. Columns (any order):

* ``policy`` (required): the registered policy that describes the schedule. A framework that
  splits every matrix product across its threads (PyTorch's ``torch.nn.LSTM`` on a CPU, its
  input projection of all steps at once, then the steps) is ``layerwise``; at one thread it is
  the same loop on one core.
* ``workers`` or ``threads`` (required, one of the two): a positive integer, the simulated
  cores (on a GPU machine: 1).
* ``seconds`` or ``trace`` (required, one of the two): the measured makespan in seconds, or a
  Trace Event Format file (below) whose span, from its first event's start to its last event's
  end, is the measured time.
* ``workload`` (optional): a workload file (relative to the CSV's folder) or a name from
  ``workloads/``; default: ``--workload``.
* workload fields (optional): any of ``name``, ``cell``, ``layers``, ``hidden``, ``input``,
  ``seq_len``, ``batch``, ``bidirectional``, ``phase``, ``dtype``, ``density``, ``output``,
  ``output_size``; a non-empty cell replaces that field of the workload (and its ``name``,
  unless the row gives one, is dropped: it named another workload).
* ``machine`` (optional): a machine file (relative to the CSV's folder) or a name from
  ``hw_configs/``; default: ``--hardware``.
* ``chunk`` (optional): time steps per task, default ``--chunk`` (1 for ``auto``);
  ``helpers`` (optional): cores per group of the policy (``--helpers``).

Rows with the same workload, machine and chunk form one comparison; rows of the same
configuration (policy, helpers, workers) are repeats, and their median is the measured makespan.
The baseline of a comparison is the configuration with the fewest workers (``sequential`` among
several, else the first in the file); the measured speed-up of a configuration is the baseline's
median over its median, the predicted one the same ratio of simulated makespans.

Trace Event Format
------------------
A Chrome/Perfetto trace as ``torch.profiler`` (``prof.export_chrome_trace``) and many other
tools write it: a JSON object with ``traceEvents`` (or a bare JSON array of events; ``.gz``
compressed too), times in microseconds. Every event whose name starts with ``wpsim `` marks
one measured run: the rest of its name is the row's columns as ``key=value`` pairs, and its
duration the measured seconds, e.g. ``torch.profiler.record_function("wpsim policy=layerwise
threads=2")`` around a timed call. A complete event (``"ph": "X"``) has its ``dur``; a begin
(``"B"``) ends at the next end (``"E"``) of the same process and thread.

Errors name the file, the row (or event) and the column, and say what was expected.

Examples
--------
>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "t.csv").write_text("policy,threads,seconds,hidden,input,seq_len\\n"
...                                   "layerwise,1,0.002,64,64,10\\nlayerwise,2,0.0012,64,64,10\\n")
>>> runs = read_measurements(folder / "t.csv", DEFAULT_WORKLOAD, "xeon8160_2s", 1)
>>> [(r.policy, r.workers, r.seconds, r.workload.hidden) for r in runs]
[('layerwise', 1, 0.002, 64), ('layerwise', 2, 0.0012, 64)]
"""

from __future__ import annotations

import csv
import difflib
import gzip
import json
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wpsim.config import format_validation_error
from wpsim.errors import ConfigError
from wpsim.model.workload import DEFAULT_WORKLOAD, Workload

__all__ = [
    "DEFAULT_WORKLOAD",
    "Measurement",
    "read_measurements",
    "read_trace_events",
    "trace_span_s",
]

WORKLOAD_FIELDS = tuple(Workload.model_fields)
COLUMNS = (
    "policy",
    "workers",
    "threads",
    "seconds",
    "trace",
    "workload",
    "machine",
    "chunk",
    "helpers",
    *WORKLOAD_FIELDS,
)
#: the name of an event that marks a measured run: ``wpsim key=value ...``
RUN_EVENT = re.compile(r"^wpsim\s+(.*)$")


@dataclass(frozen=True)
class Measurement:
    """One measured run, in wpsim's terms (see the module's doc)."""

    where: str  # the file and row (or event) it came from
    workload: Workload
    machine: str  # a machine file, or a name from hw_configs/
    policy: str
    helpers: int | None
    workers: int
    chunk: int
    seconds: float
    workers_column: str = "workers"  # the column that gave ``workers`` (or ``threads``)
    machine_column: bool = False  # whether the row named the machine (else the default)

    @property
    def config(self) -> tuple[str, int | None, int]:
        """(policy, helpers, workers): rows with the same are repeats of one configuration."""
        return (self.policy, self.helpers, self.workers)


def read_measurements(
    path: str | Path, workload: Workload, machine: str, chunk: int
) -> list[Measurement]:
    """The measured runs of a CSV or Trace Event Format file; ``workload``, ``machine`` and
    ``chunk`` are the defaults of rows that do not name their own.

    Raises
    ------
    ConfigError
        One line: the file, the row or event, the column and what was expected.
    """
    path = Path(path)
    defaults = {"workload": workload, "machine": machine, "chunk": chunk}
    if _is_json(path):
        runs = [
            _measurement(
                fields, f"{path}: event {index} ({name!r})", path.parent, defaults, seconds=seconds
            )
            for index, name, fields, seconds in _trace_runs(path)
        ]
    else:
        runs = [
            _measurement(fields, f"{path}: row {line}", path.parent, defaults)
            for line, fields in _csv_rows(path)
        ]
    if not runs:
        raise ConfigError(f"{path}: no measured runs (expected at least one row)")
    return runs


# ---- CSV ----------------------------------------------------------------------------------


def _csv_rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    """(line number, {column: value}) of each data row; comment and blank lines skipped."""
    text = _read_text(path).removeprefix("\ufeff")  # (a spreadsheet's byte order mark)
    numbered = [
        (n, line)
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise ConfigError(f"{path}: empty, expected a header row and one row per measured run")
    reader = csv.reader([line for _, line in numbered])
    rows = list(reader)
    header = [name.strip() for name in rows[0]]
    for name in header:
        if name not in COLUMNS:
            raise ConfigError(f"{path}: line {numbered[0][0]}: {_unknown_column(name)}")
    if len(set(header)) != len(header):
        raise ConfigError(f"{path}: line {numbered[0][0]}: a column is named twice")
    out = []
    for (line, _), values in zip(numbered[1:], rows[1:], strict=False):
        if len(values) != len(header):
            raise ConfigError(
                f"{path}: row {line}: {len(values)} values, expected {len(header)} (one per "
                "column of the header)"
            )
        out.append(
            (line, {name: value.strip() for name, value in zip(header, values, strict=True)})
        )
    return out


def _unknown_column(name: str) -> str:
    close = difflib.get_close_matches(name, COLUMNS, n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"unknown column '{name}'{hint}; expected some of {', '.join(COLUMNS)}"


# ---- Trace Event Format ---------------------------------------------------------------------


def _is_json(path: Path) -> bool:
    """Whether ``path`` holds JSON (a trace) rather than CSV: by its first character."""
    text = _read_text(path, limit=4096)
    return text.lstrip()[:1] in ("{", "[")


def _read_text(path: Path, limit: int | None = None) -> str:
    """The UTF-8 text of a regular file (``limit``: its first characters only); unlike a
    machine or workload file (:func:`wpsim.config.read_text`) a measurement may be large."""
    try:
        mode = path.stat().st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a folder, expected a measurement file")
        if not stat.S_ISREG(mode):  # a named pipe would wait for a writer
            raise ConfigError(
                f"{path}: not a regular file (a pipe or a device), expected a measurement file"
            )
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                return handle.read(limit) if limit else handle.read()
        with open(path, encoding="utf-8") as handle:
            return handle.read(limit) if limit else handle.read()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError, EOFError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"{path}: cannot read ({reason})") from None


def read_trace_events(path: str | Path) -> list[dict[str, Any]]:
    """The events of a Trace Event Format file (a JSON object with ``traceEvents``, or an
    array of events)."""
    path = Path(path)
    try:
        data = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        ) from None
    events = data.get("traceEvents") if isinstance(data, dict) else data
    if not isinstance(events, list):
        raise ConfigError(
            f"{path}: not a Trace Event Format file: expected a JSON object with "
            "'traceEvents' (a list) or a JSON array of events"
        )
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise ConfigError(f"{path}: event {index}: expected an object, got {event!r:.40}")
    return events


def _microseconds(event: dict, key: str, where: str) -> float:
    value = event.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ConfigError(f"{where}: field '{key}': got {value!r}, expected a number (us)")
    return float(value)


def _intervals(path: Path) -> list[tuple[int, str, float, float]]:
    """(event index, name, start us, duration us) of every complete event and begin/end pair
    (durations as given: a start of 10^12 us and its end differ in their last digits)."""
    events = read_trace_events(path)
    out = []
    open_spans: dict[tuple, list[tuple[int, dict, float]]] = {}
    for index, event in enumerate(events):
        phase = event.get("ph")
        where = f"{path}: event {index}"
        if phase == "X":
            start = _microseconds(event, "ts", where)
            duration = _microseconds(event, "dur", where)
            if duration < 0:
                raise ConfigError(f"{where}: field 'dur': got {duration!r}, expected >= 0 (us)")
            out.append((index, str(event.get("name", "")), start, duration))
        elif phase == "B":
            stack = open_spans.setdefault((event.get("pid"), event.get("tid")), [])
            stack.append((index, event, _microseconds(event, "ts", where)))
        elif phase == "E":
            open_stack = open_spans.get((event.get("pid"), event.get("tid")))
            if not open_stack:
                raise ConfigError(f"{where}: an end ('E') with no begin ('B') before it")
            begin_index, begin, start = open_stack.pop()
            end = _microseconds(event, "ts", where)
            out.append((begin_index, str(begin.get("name", "")), start, end - start))
    for stack in open_spans.values():
        if stack:
            index = stack[-1][0]
            raise ConfigError(f"{path}: event {index}: a begin ('B') that never ends ('E')")
    return sorted(out)


def trace_span_s(path: str | Path) -> float:
    """Seconds from the first event's start to the last event's end of a trace file."""
    spans = _intervals(Path(path))
    if not spans:
        raise ConfigError(f"{path}: no timed events ('ph' 'X', or 'B' and 'E')")
    first = min(start for _, _, start, _ in spans)
    return max(start - first + duration for _, _, start, duration in spans) * 1e-6


def _trace_runs(path: Path) -> list[tuple[int, str, dict[str, str], float]]:
    """(event index, name, columns, seconds) of every ``wpsim key=value ...`` event."""
    runs = []
    for index, name, _, duration in _intervals(path):
        match = RUN_EVENT.match(name)
        if not match:
            continue
        fields: dict[str, str] = {}
        for token in match.group(1).split():
            key, sep, value = token.partition("=")
            if not sep or not key:
                raise ConfigError(
                    f"{path}: event {index} ({name!r}): expected key=value pairs, got {token!r}"
                )
            if key not in COLUMNS or key in ("seconds", "trace"):
                raise ConfigError(f"{path}: event {index} ({name!r}): {_unknown_column(key)}")
            fields[key] = value
        runs.append((index, name, fields, duration * 1e-6))
    if not runs:
        raise ConfigError(
            f"{path}: no events named 'wpsim key=value ...' (mark each measured run, e.g. "
            "torch.profiler.record_function('wpsim policy=layerwise threads=2')), or list the "
            "file in a CSV's 'trace' column to time all of it"
        )
    return runs


# ---- one measurement ------------------------------------------------------------------------


def _measurement(
    fields: dict[str, str],
    where: str,
    folder: Path,
    defaults: dict[str, Any],
    seconds: float | None = None,
) -> Measurement:
    """A :class:`Measurement` from a row's (or an event's) columns."""
    from wpsim.model.workload import resolve_workload

    def field(name: str) -> str:
        return fields.get(name, "").strip()

    policy = field("policy")
    if not policy:
        raise ConfigError(f"{where}: column 'policy': missing, expected a policy name")
    if field("workers") and field("threads"):
        raise ConfigError(f"{where}: columns 'workers' and 'threads': give one of the two")
    count_name = "threads" if field("threads") else "workers"
    workers = _positive_int(field(count_name), count_name, where)
    helpers = _positive_int(field("helpers"), "helpers", where) if field("helpers") else None
    chunk = _positive_int(field("chunk"), "chunk", where) if field("chunk") else defaults["chunk"]
    if seconds is None:
        if field("seconds") and field("trace"):
            raise ConfigError(f"{where}: columns 'seconds' and 'trace': give one of the two")
        if field("trace"):
            try:
                seconds = trace_span_s(_relative(folder, field("trace")))
            except ConfigError as error:
                raise ConfigError(f"{where}: column 'trace': {error}") from None
        else:
            seconds = _seconds(field("seconds"), where)
    if not seconds > 0:
        raise ConfigError(f"{where}: measured time {seconds!r} s, expected > 0")
    workload = defaults["workload"]
    if field("workload"):
        value = field("workload")
        relative = folder / value
        try:
            workload = resolve_workload(str(relative) if relative.exists() else value)
        except ConfigError as error:
            raise ConfigError(f"{where}: column 'workload': {error}") from None
    overrides = {name: fields[name].strip() for name in WORKLOAD_FIELDS if field(name)}
    if overrides and "name" not in overrides:
        overrides["name"] = ""  # (the name of the workload these fields changed would mislead)
    if overrides:
        from pydantic import ValidationError

        try:
            workload = Workload.model_validate({**workload.model_dump(), **overrides})
        except ValidationError as error:
            raise ConfigError(format_validation_error(where, error)) from None
    machine = defaults["machine"]
    if field("machine"):
        relative = folder / field("machine")
        machine = str(relative) if relative.exists() else field("machine")
    return Measurement(
        where,
        workload,
        machine,
        policy,
        helpers,
        workers,
        chunk,
        seconds,
        count_name,
        bool(field("machine")),
    )


def _relative(folder: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else folder / path


def _positive_int(text: str, column: str, where: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"{where}: column '{column}': got {text!r}, expected a positive integer")
    return value


def _seconds(text: str, where: str) -> float:
    if not text:
        raise ConfigError(
            f"{where}: column 'seconds': missing, expected the measured time in seconds (or a "
            "'trace' file)"
        )
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ConfigError(
            f"{where}: column 'seconds': got {text!r}, expected a positive number of seconds"
        )
    return value
