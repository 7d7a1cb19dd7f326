"""What a run of the real executor gives: a :class:`wpsim.result.Result` (``engine="measured"``),
the same type the simulator and the closed forms give.

The executor observes when each task ran and on which workers, not the caches: a measured trace's
``level_bytes`` are empty and its ``hit`` column is empty (None), never a guess; its ``dispatch_s``
column is empty too, and so are the result's break-downs by cause.
"""

from __future__ import annotations

import statistics

import numpy as np

from kernels.executor._process import START_METHOD
from wpsim.model.workload import Workload
from wpsim.result import Result
from wpsim.trace import Trace


def work_s(trace: Trace) -> float:
    """Core-seconds spent in tasks (duration times group size, summed)."""
    return sum(
        (e - s) * len(c) for s, e, c in zip(trace.start_s, trace.end_s, trace.cores, strict=True)
    )


def measured_result(
    outputs: dict[str, np.ndarray],
    grads: dict[str, np.ndarray] | None,
    runs: list[tuple[Trace, float]],
    policy: str,
    workers: int,
    groups: list[tuple[int, ...]],
    chunk: int,
    tasks: list,
    startup_s: float,
    workload: Workload,
) -> Result:
    """A measured run of a task graph under a policy, as a :class:`wpsim.result.Result`.

    ``runs``: ``(trace, makespan_s)`` of every recorded repeat. ``makespan_s`` is their median
    (the time from the coordinator's first dispatch to the end of the last task, so it includes
    every dispatch and hand-off) and ``trace`` the repeat closest to it: ``cores`` is the group of
    worker indices that ran a task, ``start_s``/``end_s`` are seconds since the coordinator began
    the repeat. ``sequential_s`` is the trace's work (task time times group size, summed), so
    ``speedup`` is the measured parallelism, not a speed-up over a separate run. ``cores`` is
    the workers asked for; ``extra["groups"]`` says which ran (a policy may use fewer) and
    ``utilization`` is the mean over those.

    ``extra`` (JSON-ready): ``chunk``, ``workload``, ``groups``, ``workers_started``,
    ``makespans_s`` (every repeat, warm-up runs excluded), ``min_makespan_s``, ``repeats``,
    ``trace_makespan_s``, ``work_s``, ``startup_s`` (starting the workers and mapping the
    segment: in no makespan), ``start_method``.
    """
    makespans = [m for _, m in runs]
    median = statistics.median(makespans)
    trace = min(runs, key=lambda run: abs(run[1] - median))[0]
    started = sorted({c for g in groups for c in g})
    per_core = trace.utilization(workers)
    work = work_s(trace)
    return Result(
        engine="measured",
        policy=policy,
        cores=workers,
        makespan_s=median,
        sequential_s=work,
        n_tasks=len(tasks),
        utilization=sum(per_core[c] for c in started) / len(started) if started else 0.0,
        dram_bytes=0.0,
        per_core_utilization=per_core,
        extra={
            "chunk": chunk,
            "workload": workload.name,
            "groups": [list(g) for g in groups],
            "workers_started": len(started),
            "makespans_s": list(makespans),
            "min_makespan_s": min(makespans),
            "repeats": len(makespans),
            "trace_makespan_s": trace.makespan_s,
            "work_s": work,
            "startup_s": startup_s,
            "start_method": START_METHOD,
        },
        trace=trace,
        tasks=tasks,
        outputs=outputs,
        grads=grads,
    )


__all__ = ["measured_result", "work_s"]
