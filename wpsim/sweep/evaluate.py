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
import operator
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from wpsim.cost.base import DRAM
from wpsim.errors import ConfigError
from wpsim.sweep.store import FormattedRows, csv_field, encode_value, format_line, format_rows

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


class _Split:
    """Where a point's ``run.*`` parameters are among its values (for parameters ``names``)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        at_run = [i for i, name in enumerate(names) if name.startswith("run.")]
        at_fixed = [i for i in range(len(names)) if i not in at_run]
        self.run_names = [names[i][4:] for i in at_run]
        self.fixed = _getter(at_fixed)
        self.run = _getter(at_run)


def _getter(positions: list[int]) -> Callable[[tuple], tuple]:
    """``values -> tuple of values[i] for i in positions`` (``operator.itemgetter``, whose
    answer is a tuple for two positions or more only)."""
    if len(positions) >= 2:
        return operator.itemgetter(*positions)
    if len(positions) == 1:
        at = positions[0]
        return lambda values: (values[at],)
    return lambda values: ()


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


class _ParamsText:
    """The parameter fields of a row, each distinct value encoded once (a chunk's points
    share their parameter values' objects)."""

    def __init__(self, params: list[str]) -> None:
        self.params = params
        self.encoded: list[dict[int, tuple[Any, str]]] = [{} for _ in params]

    def __call__(self, values: dict[str, Any]) -> str:
        out = []
        for name, encoded in zip(self.params, self.encoded, strict=True):
            value = values.get(name)
            hit = encoded.get(id(value))
            if hit is None or hit[0] is not value:
                hit = encoded[id(value)] = (value, csv_field(encode_value(value)))
            out.append(hit[1])
            out.append(",")
        return "".join(out)


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
        # (see _resolve)
        self._splits: dict[tuple[str, ...], _Split] = {}
        self._fixed: dict[Any, Any] = {}
        self._settings: dict[Any, Any] = {}
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
        """(workload, machine, policy object, engine options, the point's overrides) of one
        point (raises on a bad combination).

        A point's workload, machine and policy are resolved once for all the points that
        differ only in ``run.*`` options, and each distinct setting of those once for all
        points (by value and type: True and 1 are equal keys, but not equal settings)."""
        names = tuple(params)
        split = self._splits.get(names)
        if split is None:
            split = self._splits[names] = _Split(names)
        values = tuple(params.values())
        fixed = split.fixed(values)
        shared = _memo(self._fixed, (fixed, tuple(map(type, fixed))), self._resolve_fixed, params)
        workload, machine, policy_obj, workload_over, hardware_over = shared
        setting = split.run(values)
        run, options = _memo(
            self._settings,
            (setting, tuple(map(type, setting))),
            self._resolve_run,
            dict(zip(split.run_names, setting, strict=True)),
        )
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

    def predict_rows(self, chunk: list[tuple[int, dict[str, Any]]]) -> FormattedRows:
        """:meth:`row` of every point of a chunk, formatted, the analytic points on CPU
        machines evaluated together (:func:`wpsim.sim.closed_forms.predict_many`, one block per
        machine, policy and run options): the same bytes, at a fraction of the time."""
        from wpsim.machines.cpu import CpuMachine
        from wpsim.sim.closed_forms import predict_many

        columns = self.columns
        lines: list[str | None] = [None] * len(chunk)
        failed = 0
        blocks: dict[tuple, tuple[Any, Any, str, str, list]] = {}
        for pos, (index, params) in enumerate(chunk):
            try:
                workload, machine, policy, options, _ = self._resolve(params)
            except KeyboardInterrupt:
                raise
            except Exception as error:  # noqa: BLE001 - a failed point is data
                lines[pos] = format_line(error_row(index, params, error), columns)
                failed += 1
                continue
            if (
                not isinstance(machine, CpuMachine)
                or options.get("runtime") is not None
                or set(options) - _BLOCK_OPTIONS
            ):
                row = self.row(index, params)
                lines[pos] = format_line(row, columns)
                failed += row["status"] != "ok"
                continue
            key = (id(machine), id(policy), options["granularity"], options["cost"])
            block = blocks.get(key)
            if block is None:
                block = blocks[key] = (machine, policy, options["granularity"], options["cost"], [])
            block[4].append((pos, workload, options["cores"], options["chunk"]))
        params_text = _ParamsText(self.context["params"])
        n_levels = len(columns) - columns.index("machine") - 2  # the bytes.* columns
        dram_at = (
            [c for c in columns if c.startswith("bytes.")].index(f"bytes.{DRAM}")
            if (f"bytes.{DRAM}" in self.level_columns)
            else None
        )
        # the blocks of one machine (its policies) share their one-core baselines
        baselines: dict[int, dict] = {}
        for machine, policy, granularity, cost, members in blocks.values():
            try:
                p = predict_many(
                    [w for _, w, _, _ in members],
                    machine,
                    policy,
                    [c for _, _, c, _ in members],
                    [k for _, _, _, k in members],
                    granularity,
                    cost,
                    baselines.setdefault(id(machine), {}),
                )
            except KeyboardInterrupt:
                raise
            except Exception:  # noqa: BLE001 - whatever failed, one point at a time says why
                for pos, *_ in members:
                    row = self.row(*chunk[pos])
                    lines[pos] = format_line(row, columns)
                    failed += row["status"] != "ok"
                continue
            # the fields of a row that do not change within the block
            head = f"ok,,analytic,{csv_field(policy.describe())},"
            machine_field = csv_field(machine.name)
            makespans, sequentials = p.makespan_s.tolist(), p.sequential_s.tolist()
            tasks, utilization = p.n_tasks.tolist(), p.utilization.tolist()
            drams, cores = p.dram_bytes.tolist(), p.cores.tolist()
            for j, (pos, *_) in enumerate(members):
                index, params = chunk[pos]
                if j in p.errors:
                    lines[pos] = format_line(error_row(index, params, p.errors[j]), columns)
                    failed += 1
                    continue
                makespan, sequential, dram = makespans[j], sequentials[j], drams[j]
                speedup = sequential / makespan if makespan else float("nan")
                levels = [""] * n_levels
                if dram_at is not None:
                    levels[dram_at] = repr(dram)
                    extra = ""
                else:
                    extra = csv_field(json.dumps({f"bytes.{DRAM}": dram}, sort_keys=True))
                lines[pos] = (
                    f"{index},{params_text(params)}{head}{int(cores[j])},{makespan!r},"
                    f"{sequential!r},{speedup!r},{int(tasks[j])},{utilization[j]!r},{dram!r},"
                    f"{machine_field},{','.join(levels)},{extra}"
                )
        text = "\n".join(lines)  # type: ignore[arg-type]
        return FormattedRows((text + "\n").encode() if lines else b"", len(chunk), failed)

    def run_chunk(self, chunk: list[tuple[int, dict[str, Any]]]) -> tuple[FormattedRows, float]:
        """The rows of a chunk of points, formatted for ``results.csv``, and the seconds spent
        on them."""
        start = time.perf_counter()
        if self.engine == "predict":
            formatted = self.predict_rows(chunk)
        else:
            formatted = format_rows([self.row(i, params) for i, params in chunk], self.columns)
        return formatted, time.perf_counter() - start


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


def init_worker(context: dict[str, Any], parent: int) -> None:
    """Initializer of a local worker process: ignore Ctrl-C (the parent handles it)."""
    global _EVALUATOR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    _EVALUATOR = Evaluator(context)


def run_local_chunk(chunk: list[tuple[int, dict[str, Any]]]) -> tuple[FormattedRows, float]:
    """Evaluate a chunk in a local worker process (after :func:`init_worker`)."""
    assert _EVALUATOR is not None, "init_worker was not called"
    return _EVALUATOR.run_chunk(chunk)


def run_chunk(
    context: dict[str, Any], chunk: list[tuple[int, dict[str, Any]]]
) -> tuple[FormattedRows, float]:
    """Evaluate a chunk anywhere (Dask workers): one cached :class:`Evaluator` per sweep."""
    identity = context["identity"]
    with _BY_IDENTITY_LOCK:
        evaluator = _BY_IDENTITY.get(identity)
        if evaluator is None:
            if len(_BY_IDENTITY) > 8:
                _BY_IDENTITY.clear()
            evaluator = _BY_IDENTITY[identity] = Evaluator(context)
    return evaluator.run_chunk(chunk)
