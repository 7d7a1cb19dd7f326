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
import os
import signal
import threading
import time
from typing import Any

from wpsim.errors import ConfigError

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
        self._workloads: dict[str, Any] = {}
        self._machines: dict[str, Any] = {}
        self._sequential: dict[tuple, float] = {}
        self._runtimes: dict[str, Any] = {}
        # the size guard (wpsim.guards): this computer's memory, shared by this many workers
        self.size_share: int | None = context.get("size_share")
        self.limit_bytes: int | None = None
        if self.size_share is not None:
            from wpsim.guards import memory_limit_bytes

            self.limit_bytes = memory_limit_bytes(self.size_share)

    # ---- inputs ------------------------------------------------------------------------------
    def _cached(self, cache: dict[str, Any], overrides: dict[str, Any], make) -> Any:
        key = json.dumps(overrides, sort_keys=True, default=str)
        if key not in cache:
            if len(cache) > 256:
                cache.clear()
            try:
                cache[key] = make(overrides)
            except Exception as error:  # noqa: BLE001 - recorded per point
                cache[key] = error
        value = cache[key]
        if isinstance(value, Exception):
            raise value
        return value

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
    def result(self, params: dict[str, Any]) -> Any:
        """The :class:`~wpsim.result.Result` of one point (raises on a bad combination)."""
        from wpsim.policies import get_policy
        from wpsim.sim.evaluate import evaluate

        workload_over: dict[str, Any] = {}
        hardware_over: dict[str, Any] = {}
        policy = dict(self.context["base_policy"])
        run = dict(self.context["base_run"])
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
            elif head == "run":
                run[rest] = value
            else:  # pragma: no cover - rejected when the spec is loaded
                raise ConfigError(f"{self.source}: unknown parameter {key!r}")
        workload = self._cached(self._workloads, workload_over, self._make_workload)
        machine = self._cached(self._machines, hardware_over, self._make_machine)
        runtime = self._runtime(run.get("runtime"))
        options = dict(run, runtime=runtime)
        for name in ("cores", "chunk", "helpers", "instances"):
            value = run.get(name, policy.get(name))
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ConfigError(f"{self.source}: {name}: got {value!r}, expected an integer")
        policy_obj = get_policy(
            policy["name"], helpers=policy.get("helpers"), instances=policy.get("instances", 1)
        )
        from wpsim.guards import check_chunk, check_size

        check_chunk(workload, run["chunk"])
        if self.limit_bytes is not None:  # before anything is built
            check_size(workload, self.engine, policy_obj, chunk=run["chunk"],
                       granularity=run["granularity"], share=self.size_share,
                       limit_bytes=self.limit_bytes)  # fmt: skip
        if self.engine == "simulate":
            baseline = self._sequential_s(
                workload, machine, run, policy_obj.instances, (workload_over, hardware_over),
                runtime,
            )  # fmt: skip
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

    def _sequential_s(self, workload: Any, machine: Any, run: dict[str, Any], instances: int,
                      key_parts: tuple, runtime: Any = None) -> float | None:  # fmt: skip
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
        key = (json.dumps(key_parts, sort_keys=True, default=str), run["chunk"],
               run["granularity"], run["cost"], instances, str(run.get("runtime")))  # fmt: skip
        if key not in self._sequential:
            if len(self._sequential) > 4096:
                self._sequential.clear()
            from wpsim.sim.runtime import apply_runtime

            machine = apply_runtime(runtime, machine, workload)
            restricted = machine.with_cores(run["cores"]) if run.get("cores") else machine
            self._sequential[key] = sequential_time(workload, restricted, run["chunk"],
                                                    run["granularity"], run["cost"], instances)  # fmt: skip
        return self._sequential[key]

    def row(self, index: int, params: dict[str, Any]) -> dict[str, Any]:
        """One row of ``results.csv`` for point ``index`` (errors recorded, never raised)."""
        row: dict[str, Any] = {"point": index, **params}
        try:
            result = self.result(params)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - a failed point is data
            message = str(error)
            if not isinstance(error, ConfigError):
                message = f"{type(error).__name__}: {message}"
            row.update(status="error", error=one_line(message))
            return row
        row.update(status="ok", error="")
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

    def run_chunk(self, chunk: list[tuple[int, dict[str, Any]]]) -> tuple[list[dict], float]:
        """Rows of a chunk of points and the seconds spent on them."""
        start = time.perf_counter()
        rows = [self.row(index, params) for index, params in chunk]
        return rows, time.perf_counter() - start


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


def run_local_chunk(chunk: list[tuple[int, dict[str, Any]]]) -> tuple[list[dict], float]:
    """Evaluate a chunk in a local worker process (after :func:`init_worker`)."""
    assert _EVALUATOR is not None, "init_worker was not called"
    return _EVALUATOR.run_chunk(chunk)


def run_chunk(
    context: dict[str, Any], chunk: list[tuple[int, dict[str, Any]]]
) -> tuple[list[dict], float]:
    """Evaluate a chunk anywhere (Dask workers): one cached :class:`Evaluator` per sweep."""
    identity = context["identity"]
    with _BY_IDENTITY_LOCK:
        evaluator = _BY_IDENTITY.get(identity)
        if evaluator is None:
            if len(_BY_IDENTITY) > 8:
                _BY_IDENTITY.clear()
            evaluator = _BY_IDENTITY[identity] = Evaluator(context)
    return evaluator.run_chunk(chunk)
