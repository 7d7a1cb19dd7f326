"""Evaluating sweep points (runs in the workers: local processes, Dask workers, or in-process).

A worker receives the sweep's *context* (:meth:`wpsim.sweep.spec.LoadedSweep.context`: plain data,
no file access needed, so remote Dask workers only need wpsim installed) and chunks of points.
Each point becomes one row: the point number, its parameters, ``status`` (``ok`` or ``error``),
``error`` (one line) and the metrics of :class:`wpsim.result.Result`.

A point that fails (an impossible machine, a policy the machine kind does not have, more helpers
than cores...) is a row with ``status: error``; it never stops the sweep.
"""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from wpsim.cost.base import DRAM
from wpsim.errors import ConfigError
from wpsim.sweep.spec import Points, PointTable
from wpsim.sweep.store import FormattedRows, csv_field, encode_value, format_line, format_rows

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]

#: Metric columns of every row, after the point number and the varied parameters.
METRIC_COLUMNS = [
    "status",
    "error",
    "engine",
    "policy_label",
    "cores",
    "makespan_s",
    "sequential_s",
    "speedup",
    "n_tasks",
    "utilization",
    "dram_bytes",
    "machine",
]
#: Result keys that are run options (already columns, or fixed by the spec): not repeated; and
#: the break-downs by cause, not stored per point (two dicts a row would make the file 4x the
#: size; ``wpsim predict`` or ``simulate`` gives them for any point)
_RUN_KEYS = {"chunk", "granularity", "cost", "runtime", "breakdown_s", "core_breakdown_s"}
_RESULT_RENAMES = {"policy": "policy_label"}


def level_columns(base_hardware: dict[str, Any]) -> list[str]:
    """``bytes.<level>`` columns for the memory levels of a CPU machine mapping.

    Other machine kinds report their levels in the ``extra`` column.

    Examples
    --------
    >>> level_columns({"kind": "cpu", "caches": [{"name": "L1"}, {"name": "L2"}]})
    ['bytes.L1', 'bytes.L2', 'bytes.DRAM', 'bytes.handoff']
    """
    if base_hardware.get("kind", "cpu") != "cpu":
        return []
    caches = base_hardware.get("caches") or []
    names = [c.get("name") for c in caches if isinstance(c, dict) and c.get("name")]
    return [f"bytes.{name}" for name in [*names, "DRAM", "handoff"]]


def columns_for(params: list[str], base_hardware: dict[str, Any]) -> list[str]:
    """The header of ``results.csv``: point, parameters, metrics, levels, extra."""
    return ["point", *params, *METRIC_COLUMNS, *level_columns(base_hardware), "extra"]


#: the engine options a block of analytic points takes (others: one point at a time)
_BLOCK_OPTIONS = {"cores", "chunk", "granularity", "cost", "runtime"}


def error_row(index: int, params: dict[str, Any], error: Exception) -> dict[str, Any]:
    """The row of a point that failed: its one-line error (the exception's type too, unless it
    is a :class:`~wpsim.errors.ConfigError`)."""
    message = str(error)
    if not isinstance(error, ConfigError):
        message = f"{type(error).__name__}: {message}"
    return {"point": index, **params, "status": "error", "error": one_line(message)}


def _check_integers(source: str, fields: dict[str, Any], names: tuple[str, ...]) -> None:
    """A point's count fields (``cores``, ``chunk``, ``helpers``...) are integers or unset."""
    for name in names:
        value = fields.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{source}: {name}: got {value!r}, expected an integer")


def _key(overrides: dict[str, Any]) -> tuple:
    """A :func:`_memo` key of named values: names, values and their types."""
    values = tuple(overrides.values())
    return (tuple(overrides), values), tuple(map(type, values))


def _memo(cache: dict[Any, Any], key: Any, make: Callable[[Any], Any], argument: Any) -> Any:
    """``make(argument)`` cached under ``key`` (its JSON text when a value is unhashable); an
    exception is cached too, and raised again for every point that shares the key."""
    try:
        found = cache.get(key)
    except TypeError:  # a list or mapping among the values
        key = json.dumps(key[0], sort_keys=True, default=str)
        found = cache.get(key)
    if found is None:
        if len(cache) > 4096:
            cache.clear()
        try:
            found = make(argument)
        except Exception as error:  # noqa: BLE001 - recorded per point
            found = error
        cache[key] = found
    if isinstance(found, Exception):
        raise found
    return found


def _distinct(at: Ints, sizes: list[int]) -> tuple[list[tuple[int, ...]], Ints]:
    """The distinct rows of ``at`` (points x columns of positions, column ``i`` below
    ``sizes[i]``), and each point's row among them.

    Examples
    --------
    >>> rows, of = _distinct(np.array([[1, 0], [0, 2], [1, 0]]), [2, 3])
    >>> rows, of.tolist()
    ([(0, 2), (1, 0)], [1, 0, 1])
    >>> wide, of_wide = _distinct(np.array([[1, 0], [0, 2], [1, 0]]), [2**40, 2**40])
    >>> wide == rows and of_wide.tolist() == of.tolist()  # (too wide for one number: by rows)
    True
    """
    if at.shape[1] == 0:
        return [()], np.zeros(len(at), dtype=np.int64)
    if math.prod(sizes) < 2**62:  # one number per row (mixed radix): a flat unique is faster
        strides = [math.prod(sizes[i + 1 :]) for i in range(len(sizes))]
        codes, inverse = np.unique(at @ np.array(strides, dtype=np.int64), return_inverse=True)
        rows = [
            tuple(code // stride % size for stride, size in zip(strides, sizes, strict=True))
            for code in codes.tolist()
        ]
        return rows, inverse.reshape(-1)
    rows_at, inverse = np.unique(at, axis=0, return_inverse=True)
    return [tuple(row) for row in rows_at.tolist()], inverse.reshape(-1)


def _reprs(values: Floats) -> list[str]:
    """``repr`` of each value, each distinct value formatted once (a float's shortest text is
    costly; columns such as the one-core baseline repeat their values across a chunk)."""
    # (by bit pattern: 0.0 and -0.0 are equal numbers, not equal texts)
    bits, inverse = np.unique(
        np.ascontiguousarray(values, dtype=np.float64).view(np.int64), return_inverse=True
    )
    texts = list(map(repr, bits.view(np.float64).tolist()))
    return np.array(texts, dtype=object)[inverse.reshape(-1)].tolist()


def _attempt(make: Callable[[tuple], Any], values: tuple) -> Any:
    """``make(values)``, or the exception it raises (recorded per point)."""
    try:
        return make(values)
    except KeyboardInterrupt:
        raise
    except Exception as error:  # noqa: BLE001 - a failed setting is data
        return error


def _intern(values: list[Any]) -> tuple[list[Any], list[int]]:
    """The distinct ``values`` (by value and type: True and 1 differ) and each one's position."""
    table: list[Any] = []
    index: dict[Any, int] = {}
    positions = []
    for value in values:
        try:
            key: Any = (type(value), value)
            hash(key)
        except TypeError:  # a list or mapping
            key = json.dumps(value, sort_keys=True, default=str)
        if key not in index:
            index[key] = len(table)
            table.append(value)
        positions.append(index[key])
    return table, positions


def one_line(text: str) -> str:
    """Collapse ``text`` to a single line (CSV rows never span lines)."""
    return " | ".join(part.strip() for part in str(text).splitlines() if part.strip())


class Evaluator:
    """Evaluates points of one sweep, caching validated workloads and machines.

    Parameters
    ----------
    context : dict
        :meth:`wpsim.sweep.spec.LoadedSweep.context`.
    """

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context
        self.source = context["source"]
        self.engine = "predict" if context["engine"] == "analytic" else "simulate"
        self.level_columns = set(level_columns(context["base_hardware"]))
        self.columns = columns_for(context["params"], context["base_hardware"])
        self._workloads: dict[Any, Any] = {}
        self._machines: dict[Any, Any] = {}
        self._sequential: dict[tuple, float] = {}
        self._policies: dict[tuple, Any] = {}
        self._runtimes: dict[str, Any] = {}
        # a point's values: the run options (run.*) apart from the others, each distinct
        # setting of either resolved once (see _setting)
        self.params: list[str] = list(context["params"])
        self.table: PointTable | None = context.get("table")
        self._run_at = [i for i, name in enumerate(self.params) if name.startswith("run.")]
        self._fixed_at = [i for i in range(len(self.params)) if i not in self._run_at]
        self._fixed_names = [self.params[i] for i in self._fixed_at]
        self._run_names = [self.params[i][4:] for i in self._run_at]
        self._fixed: dict[Any, Any] = {}
        self._settings: dict[Any, Any] = {}
        # each value of each parameter as a field of results.csv with its comma (a grid's or a
        # zip's values are the same objects in every chunk)
        self._texts = None if self.table is None else _value_texts(self.table.values)
        # the size guard (wpsim.guards): this computer's memory, shared by this many workers
        self.size_share: int | None = context.get("size_share")
        self.limit_bytes: int | None = None
        if self.size_share is not None:
            from wpsim.guards import memory_limit_bytes

            self.limit_bytes = memory_limit_bytes(self.size_share)

    # ---- inputs ------------------------------------------------------------------------------
    def _make_workload(self, overrides: dict[str, Any]) -> Any:
        from wpsim.model.workload import workload_from_dict

        data = dict(self.context["base_workload"])
        data.update(overrides)
        return workload_from_dict(data, f"{self.source}: workload")

    def _make_machine(self, overrides: dict[str, Any]) -> Any:
        from wpsim.machines import machine_from_dict
        from wpsim.sweep.spec import set_path

        data = copy.deepcopy(self.context["base_hardware"])
        for path, value in overrides.items():
            set_path(data, path, value)
        return machine_from_dict(data, f"{self.source}: hardware")

    # ---- one point ---------------------------------------------------------------------------
    def _resolve(self, params: dict[str, Any]) -> tuple[Any, Any, Any, dict[str, Any], tuple]:
        """:meth:`_setting` of one point (``params``: its value of every parameter)."""
        return self._setting(
            tuple(params[self.params[i]] for i in self._fixed_at),
            tuple(params[self.params[i]] for i in self._run_at),
        )

    def _setting(
        self, fixed: tuple, run_values: tuple
    ) -> tuple[Any, Any, Any, dict[str, Any], tuple]:
        """(workload, machine, policy object, engine options, the point's overrides) of a point
        whose parameters other than ``run.*`` have the values ``fixed`` and whose ``run.*``
        ones ``run_values`` (raises on a bad combination)."""
        workload, machine, policy_obj, workload_over, hardware_over = self._fixed_setting(fixed)
        run, options = self._run_setting(run_values)
        run, options = dict(run), dict(options)  # (callers add to them)
        from wpsim.guards import check_chunk, check_size

        check_chunk(workload, run["chunk"])
        # (the closed forms build no graph: only a simulation is sized)
        if self.limit_bytes is not None and self.engine != "predict":
            assert self.size_share is not None  # (the limit is its share)
            check_size(
                workload,
                self.engine,
                policy_obj,
                chunk=run["chunk"],
                granularity=run["granularity"],
                share=self.size_share,
                limit_bytes=self.limit_bytes,
            )
        return workload, machine, policy_obj, options, (workload_over, hardware_over, run)

    def _fixed_setting(self, values: tuple) -> tuple[Any, ...]:
        """:meth:`_resolve_fixed` of the values of the parameters other than ``run.*``, once
        for all the points that share them (by value and type: True and 1 are equal keys, but
        not equal settings)."""
        params = dict(zip(self._fixed_names, values, strict=True))
        return _memo(self._fixed, (values, tuple(map(type, values))), self._resolve_fixed, params)

    def _run_setting(self, values: tuple) -> tuple[dict[str, Any], dict[str, Any]]:
        """:meth:`_resolve_run` of the values of the ``run.*`` parameters, once for all the
        points that share them."""
        run_over = dict(zip(self._run_names, values, strict=True))
        return _memo(
            self._settings, (values, tuple(map(type, values))), self._resolve_run, run_over
        )

    def _resolve_run(self, run_over: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The run options of a point whose ``run.*`` parameters are ``run_over`` (without
        the prefix), and its engine options (the runtime resolved)."""
        run = dict(self.context["base_run"])
        run.update(run_over)
        _check_integers(self.source, run, ("cores", "chunk"))
        return run, dict(run, runtime=self._runtime(run.get("runtime")))

    def _resolve_fixed(self, params: dict[str, Any]) -> tuple[Any, ...]:
        """(workload, machine, policy object, workload and hardware overrides)
        of a point, from its parameters other than ``run.*``."""
        workload_over: dict[str, Any] = {}
        hardware_over: dict[str, Any] = {}
        policy = dict(self.context["base_policy"])
        for key, value in params.items():
            head, _, rest = key.partition(".")
            if key == "policy":
                if isinstance(value, dict):
                    policy.update(value)
                else:
                    policy["name"] = value
            elif head == "workload":
                workload_over[rest] = value
            elif head == "hardware":
                hardware_over[rest] = value
            elif head == "policy":
                policy[rest] = value
            elif head != "run":  # pragma: no cover - rejected when the spec is loaded
                raise ConfigError(f"{self.source}: unknown parameter {key!r}")
        workload = _memo(self._workloads, _key(workload_over), self._make_workload, workload_over)
        machine = _memo(self._machines, _key(hardware_over), self._make_machine, hardware_over)
        _check_integers(self.source, policy, ("helpers", "instances"))
        policy_key = (policy["name"], policy.get("helpers"), policy.get("instances", 1))
        policy_obj = self._policies.get(policy_key)
        if policy_obj is None:  # (policies hold no state until a simulation resets them)
            from wpsim.policies import get_policy

            policy_obj = self._policies[policy_key] = get_policy(
                policy["name"], helpers=policy.get("helpers"), instances=policy.get("instances", 1)
            )
        return workload, machine, policy_obj, workload_over, hardware_over

    def result(self, params: dict[str, Any]) -> Any:
        """The :class:`~wpsim.result.Result` of one point (raises on a bad combination)."""
        from wpsim.sim.evaluate import evaluate

        workload, machine, policy_obj, options, (workload_over, hardware_over, run) = self._resolve(
            params
        )
        if self.engine == "simulate":
            baseline = self._sequential_s(
                workload,
                machine,
                run,
                policy_obj.instances,
                (workload_over, hardware_over),
                options["runtime"],
            )
            if baseline is not None:
                options["sequential_s"] = baseline
        return evaluate(self.engine, workload, machine, policy_obj, **options)

    def _runtime(self, name: Any) -> Any:
        """The :class:`wpsim.sim.runtime.Runtime` a point names (None for ``lean``), loaded once."""
        from wpsim.sim.runtime import load_runtime

        key = str(name)
        if key not in self._runtimes:
            self._runtimes[key] = load_runtime(name)
        return self._runtimes[key]

    def _sequential_s(
        self,
        workload: Any,
        machine: Any,
        run: dict[str, Any],
        instances: int,
        key_parts: tuple,
        runtime: Any = None,
    ) -> float | None:
        """The simulated one-core baseline, simulated once per workload and machine (and
        runtime: on the machine it adapts, without its serial terms; see
        :func:`wpsim.sim.runtime.evaluate`).

        The ``sequential`` policy runs on core 0 alone, so its makespan does not depend on how
        many cores the point uses (tests/test_sweep.py checks sweep rows against direct calls);
        ``None`` (let the engine simulate it) for machines that are not CPUs.
        """
        from wpsim.machines.cpu import CpuMachine
        from wpsim.sim.engine import sequential_time

        if not isinstance(machine, CpuMachine):
            return None
        key = (
            json.dumps(key_parts, sort_keys=True, default=str),
            run["chunk"],
            run["granularity"],
            run["cost"],
            instances,
            str(run.get("runtime")),
        )
        if key not in self._sequential:
            if len(self._sequential) > 4096:
                self._sequential.clear()
            from wpsim.sim.runtime import apply_runtime

            machine = apply_runtime(runtime, machine, workload)
            restricted = machine.with_cores(run["cores"]) if run.get("cores") else machine
            self._sequential[key] = sequential_time(
                workload, restricted, run["chunk"], run["granularity"], run["cost"], instances
            )
        return self._sequential[key]

    def row(self, index: int, params: dict[str, Any]) -> dict[str, Any]:
        """One row of ``results.csv`` for point ``index`` (errors recorded, never raised)."""
        try:
            result = self.result(params)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - a failed point is data
            return error_row(index, params, error)
        row: dict[str, Any] = {"point": index, **params, "status": "ok", "error": ""}
        extra: dict[str, Any] = {}
        for key, value in result.to_dict().items():
            if key == "level_bytes":
                for level, nbytes in value.items():
                    column = f"bytes.{level}"
                    if column in self.level_columns:
                        row[column] = nbytes
                    else:
                        extra[column] = nbytes
                continue
            key = _RESULT_RENAMES.get(key, key)
            if key in METRIC_COLUMNS:
                row[key] = value
            elif key not in _RUN_KEYS:
                extra[key] = value
        row["extra"] = json.dumps(extra, sort_keys=True, default=str) if extra else ""
        return row

    def points(self, chunk: Points) -> list[tuple[int, dict[str, Any]]]:
        """Each point of ``chunk`` as ``(number, {parameter: value})``."""
        return chunk.items(self.params, self.table)

    def _positions(self, chunk: Points) -> tuple[Ints, tuple[list[Any], ...], list[Any]]:
        """Each point's position in each parameter's values (points x parameters), those
        values, and :func:`_value_texts` of them."""
        if chunk.drawn is None:
            assert self.table is not None and self._texts is not None
            return self.table.positions(chunk.numbers), self.table.values, self._texts
        # a random sweep's drawn values: each distinct one once
        columns = [_intern([values[i] for values in chunk.drawn]) for i in range(len(self.params))]
        tables = tuple(table for table, _ in columns)
        at = np.array([positions for _, positions in columns], dtype=np.int64).T
        return at.reshape(len(chunk), len(self.params)), tables, _value_texts(tables)

    def predict_rows(self, chunk: Points) -> FormattedRows:
        """:meth:`row` of every point of a chunk, formatted: the same bytes, at a fraction of
        the time. Each distinct setting of the ``run.*`` parameters and of the others is
        resolved once; the analytic points on CPU machines are evaluated together
        (:func:`wpsim.sim.closed_forms.predict_many`, one block per machine, policy and run
        options) and their rows formatted column by column; the other points one at a time."""
        from wpsim.machines.cpu import CpuMachine
        from wpsim.sim.closed_forms import predict_many

        numbers = chunk.numbers
        n_points = len(numbers)
        if n_points == 0:
            return FormattedRows(b"", 0, 0)
        at, tables, texts = self._positions(chunk)
        sizes = [len(table) for table in tables]
        fixed_rows, fixed_of = _distinct(at[:, self._fixed_at], [sizes[i] for i in self._fixed_at])
        run_rows, run_of = _distinct(at[:, self._run_at], [sizes[i] for i in self._run_at])
        fixed = [
            _attempt(self._fixed_setting, _values(tables, self._fixed_at, row))
            for row in fixed_rows
        ]
        runs = [_attempt(self._run_setting, _values(tables, self._run_at, row)) for row in run_rows]
        fixed_ok = np.array([not isinstance(f, Exception) for f in fixed])
        run_ok = np.array([not isinstance(r, Exception) for r in runs])
        seq_len = np.array(
            [f[0].seq_len if ok else 0 for f, ok in zip(fixed, fixed_ok, strict=True)]
        )
        steps = np.array([r[0]["chunk"] if ok else 0 for r, ok in zip(runs, run_ok, strict=True)])
        # a point's first error: its other parameters', its run options', its chunk's
        resolved = fixed_ok[fixed_of] & run_ok[run_of]
        failed_at = ~resolved | (steps[run_of] > seq_len[fixed_of])
        # the points a block takes, and its key: (machine, policy) and (granularity, cost)
        fixed_keys: dict[tuple[int, int], int] = {}
        fixed_key = np.array(
            [
                fixed_keys.setdefault((id(f[1]), id(f[2])), len(fixed_keys))
                if ok and isinstance(f[1], CpuMachine)
                else -1
                for f, ok in zip(fixed, fixed_ok, strict=True)
            ]
        )
        run_keys: dict[tuple[Any, Any], int] = {}
        run_key = np.array(
            [
                run_keys.setdefault((r[1]["granularity"], r[1]["cost"]), len(run_keys))
                if ok and r[1].get("runtime") is None and not set(r[1]) - _BLOCK_OPTIONS
                else -1
                for r, ok in zip(runs, run_ok, strict=True)
            ]
        )
        in_block = ~failed_at & (fixed_key[fixed_of] >= 0) & (run_key[run_of] >= 0)
        block = fixed_key[fixed_of] * len(run_keys) + run_key[run_of]

        columns = self.columns
        lines = np.empty(n_points, dtype=object)
        failed = 0
        params_of = self._params_of(numbers, at, tables)
        for pos in np.flatnonzero(~in_block).tolist():
            index, params = params_of(pos)
            if failed_at[pos]:
                try:
                    self._resolve(params)  # (raises the point's first error)
                except KeyboardInterrupt:
                    raise
                except Exception as error:  # noqa: BLE001 - a failed point is data
                    lines[pos] = format_line(error_row(index, params, error), columns)
                    failed += 1
                    continue
            row = self.row(index, params)
            lines[pos] = format_line(row, columns)
            failed += row["status"] != "ok"

        # the parameter fields of every row
        if texts:
            fields = [column[at[:, i]] for i, column in enumerate(texts)]
            params_text = np.array(list(map("".join, zip(*fields, strict=True))), dtype=object)
        else:
            params_text = np.full(n_points, "", dtype=object)
        n_levels = len(columns) - columns.index("machine") - 2  # the bytes.* columns
        dram_at = (
            [c for c in columns if c.startswith("bytes.")].index(f"bytes.{DRAM}")
            if (f"bytes.{DRAM}" in self.level_columns)
            else None
        )
        workload_of = np.array(
            [f[0] if ok else None for f, ok in zip(fixed, fixed_ok, strict=True)], object
        )
        cores_of = np.array(
            [r[1]["cores"] if ok else None for r, ok in zip(runs, run_ok, strict=True)], object
        )
        # the blocks of one machine (its policies) share their one-core baselines
        baselines: dict[int, dict] = {}
        for key in np.unique(block[in_block]).tolist():
            members = np.flatnonzero(in_block & (block == key))
            f_of, r_of = fixed_of[members], run_of[members]
            _, machine, policy, *_ = fixed[f_of[0]]
            options = runs[r_of[0]][1]
            try:
                p = predict_many(
                    workload_of[f_of].tolist(),
                    machine,
                    policy,
                    cores_of[r_of].tolist(),
                    steps[r_of].tolist(),
                    options["granularity"],
                    options["cost"],
                    baselines.setdefault(id(machine), {}),
                )
            except KeyboardInterrupt:
                raise
            except Exception:  # noqa: BLE001 - whatever failed, one point at a time says why
                for pos in members.tolist():
                    row = self.row(*params_of(pos))
                    lines[pos] = format_line(row, columns)
                    failed += row["status"] != "ok"
                continue
            # the fields of a row that do not change within the block
            head = f"ok,,analytic,{csv_field(policy.describe())},"
            machine_field = csv_field(machine.name)
            makespan, sequential = p.makespan_s, p.sequential_s
            with np.errstate(invalid="ignore", divide="ignore"):
                speedup = np.where(makespan != 0, sequential / makespan, np.nan)
            dram = _reprs(p.dram_bytes)
            if dram_at is not None:
                before, after = "," * dram_at, "," * (n_levels - 1 - dram_at)
                tails = [f"{machine_field},{before}{d}{after}," for d in dram]
            else:
                tails = [
                    f"{machine_field},{',' * (n_levels - 1)},"
                    + csv_field(json.dumps({f"bytes.{DRAM}": d}, sort_keys=True))
                    for d in p.dram_bytes.tolist()
                ]
            lines[members] = [
                f"{index},{text}{head}{cores},{m},{q},{u},{tasks},{use},{d},{tail}"
                for index, text, cores, m, q, u, tasks, use, d, tail in zip(
                    numbers[members].tolist(),
                    params_text[members].tolist(),
                    p.cores.tolist(),
                    map(repr, makespan.tolist()),
                    _reprs(sequential),
                    map(repr, speedup.tolist()),
                    np.nan_to_num(p.n_tasks).astype(np.int64).tolist(),
                    map(repr, p.utilization.tolist()),
                    dram,
                    tails,
                    strict=True,
                )
            ]
            for j, point_error in p.errors.items():
                index, params = params_of(int(members[j]))
                lines[members[j]] = format_line(error_row(index, params, point_error), columns)
                failed += 1
        text = "\n".join(lines.tolist())
        return FormattedRows((text + "\n").encode(errors="backslashreplace"), n_points, failed)

    def _params_of(
        self, numbers: Ints, at: Ints, tables: tuple[list[Any], ...]
    ) -> Callable[[int], tuple[int, dict[str, Any]]]:
        """``position in the chunk -> (number, {parameter: value})``."""

        def params_of(pos: int) -> tuple[int, dict[str, Any]]:
            values = (table[i] for table, i in zip(tables, at[pos].tolist(), strict=True))
            return int(numbers[pos]), dict(zip(self.params, values, strict=True))

        return params_of

    def run_chunk(self, chunk: Points) -> tuple[FormattedRows, float]:
        """The rows of a chunk of points, formatted for ``results.csv``, and the seconds spent
        on them."""
        start = time.perf_counter()
        if self.engine == "predict":
            formatted = self.predict_rows(chunk)
        else:
            formatted = format_rows([self.row(i, p) for i, p in self.points(chunk)], self.columns)
        return formatted, time.perf_counter() - start


def _values(tables: tuple[list[Any], ...], columns: list[int], row: tuple[int, ...]) -> tuple:
    """The values at positions ``row`` of the parameters ``columns``."""
    return tuple(tables[c][i] for c, i in zip(columns, row, strict=True))


def _value_texts(tables: tuple[list[Any], ...]) -> list[Any]:
    """Each parameter's values as fields of ``results.csv``, each with its comma (numpy
    arrays of strings, to be indexed by position)."""
    return [
        np.array([csv_field(encode_value(value)) + "," for value in table], dtype=object)
        for table in tables
    ]


# ---- worker processes -------------------------------------------------------------------------

_EVALUATOR: Evaluator | None = None
_BY_IDENTITY: dict[str, Evaluator] = {}
_BY_IDENTITY_LOCK = threading.Lock()


def _watch_parent(parent: int) -> None:
    """Exit when the coordinator ``parent`` dies (``kill -9``), instead of lingering as an
    orphan. A worker's own parent is the coordinator (fork) or the forkserver, which ends with the
    coordinator (used when the coordinator runs other threads): either way the worker gets a new
    parent once the coordinator is gone; the coordinator's pid is checked too, for a coordinator
    that died before this thread started."""
    own = os.getppid()
    while True:
        if os.getppid() != own or not _alive(parent):
            os._exit(1)
        time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's: a reused pid
        return True
    return True


def warm_up() -> str:
    """Import the models a worker needs (run once per worker when a backend starts)."""
    import wpsim.sim.closed_forms
    import wpsim.sim.engine  # noqa: F401
    import wpsim.sim.evaluate

    return wpsim.sim.evaluate.__name__


#: malloc options (glibc's ``mallopt``): free memory kept for reuse below this many bytes,
#: and blocks from this size up mapped apart (the largest value glibc accepts)
_TRIM_THRESHOLD_BYTES = 256 * 2**20
_MMAP_THRESHOLD_BYTES = 32 * 2**20


def reuse_freed_memory() -> bool:
    """Let this process's malloc keep freed memory for reuse (glibc; True if set).

    The closed forms make numpy temporaries of megabytes per block of points; by default glibc
    maps each afresh and returns it when freed, so the kernel zero-fills every page of every
    temporary again (1.6 million page faults and ~2.4 s of system time in the million-point
    benchmark grid, benchmarks/sweep.py). Called in worker processes only: it changes how the
    whole process allocates.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        mallopt = libc.mallopt if libc is not None else None
    except (OSError, AttributeError):  # not glibc
        return False
    if mallopt is None:
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # (malloc.h)
    return bool(mallopt(m_mmap_threshold, _MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(m_trim_threshold, _TRIM_THRESHOLD_BYTES)
    )


def init_worker(context: dict[str, Any], parent: int) -> None:
    """Initializer of a local worker process: ignore Ctrl-C (the parent handles it); keep
    freed memory for reuse (:func:`reuse_freed_memory`)."""
    global _EVALUATOR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    reuse_freed_memory()
    _EVALUATOR = Evaluator(context)


def run_local_chunk(chunk: Points) -> tuple[FormattedRows, float]:
    """Evaluate a chunk in a local worker process (after :func:`init_worker`)."""
    assert _EVALUATOR is not None, "init_worker was not called"
    return _EVALUATOR.run_chunk(chunk)


def run_chunk(context: dict[str, Any], chunk: Points) -> tuple[FormattedRows, float]:
    """Evaluate a chunk anywhere (Dask workers): one cached :class:`Evaluator` per sweep."""
    identity = context["identity"]
    with _BY_IDENTITY_LOCK:
        evaluator = _BY_IDENTITY.get(identity)
        if evaluator is None:
            if len(_BY_IDENTITY) > 8:
                _BY_IDENTITY.clear()
            evaluator = _BY_IDENTITY[identity] = Evaluator(context)
    return evaluator.run_chunk(chunk)
