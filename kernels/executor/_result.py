"""What a run of the real executor gives: its timestamps by repeat, as a trace in the simulator's
schema, and as a :class:`wpsim.result.Result`."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kernels.executor._process import START_METHOD
from wpsim.model.workload import Workload
from wpsim.result import Result
from wpsim.trace import Trace


@dataclass
class ExecutionResult:
    """A measured run of a task graph under a policy.

    Attributes
    ----------
    outputs : dict of str to ndarray
        ``output`` (what :func:`kernels.forward` returns first), ``h_n`` and, for lstm, ``c_n``;
        in the workload's dtype; instance 0 when there are several.
    grads : dict of str to ndarray or None
        Training: what :func:`kernels.backward` returns (every parameter, ``x``, ``h0``, lstm
        ``c0``) for the loss gradient ``grad_output``.
    trace : Trace
        One record per task of the repeat whose makespan is the median: ``cores`` is the group
        of worker indices that ran it, ``start_s``/``end_s`` are seconds since the coordinator
        began the repeat. The executor cannot observe cache traffic: ``level_bytes`` is empty
        and ``hit`` is True for every record.
    measured_makespan_s : float
        Median over repeats of the time from the coordinator's first dispatch to the end of the
        last task (so it includes every dispatch and hand-off).
    makespans_s : list of float
        Every repeat's makespan (warm-up runs excluded).
    policy : str
    workers : int
        Workers asked for; ``groups`` says which ran (a policy may use fewer).
    groups : list of tuple of int
    n_tasks : int
    chunk : int
    tasks : list of Task
        The executed graph's tasks by id (labels for the trace).
    startup_s : float
        Time to start the workers and map the segment (not in any makespan).
    workload : Workload
    start_method : str
    """

    outputs: dict[str, np.ndarray]
    grads: dict[str, np.ndarray] | None
    trace: Trace
    measured_makespan_s: float
    makespans_s: list[float]
    policy: str
    workers: int
    groups: list[tuple[int, ...]]
    n_tasks: int
    chunk: int
    tasks: list = field(repr=False)
    startup_s: float
    workload: Workload = field(repr=False)
    start_method: str = START_METHOD

    @property
    def median_makespan_s(self) -> float:
        return statistics.median(self.makespans_s)

    @property
    def min_makespan_s(self) -> float:
        return min(self.makespans_s)

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.tasks]

    @property
    def work_s(self) -> float:
        """Core-seconds spent in tasks (duration times group size, summed)."""
        tr = self.trace
        return sum((e - s) * len(c) for s, e, c in zip(tr.start_s, tr.end_s, tr.cores, strict=True))

    @property
    def n_started(self) -> int:
        return len({c for g in self.groups for c in g})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays, no trace)."""
        return {
            "engine": "measured",
            "workload": self.workload.name,
            "policy": self.policy,
            "workers": self.workers,
            "workers_started": self.n_started,
            "groups": [list(g) for g in self.groups],
            "n_tasks": self.n_tasks,
            "chunk": self.chunk,
            "measured_makespan_s": self.measured_makespan_s,
            "median_makespan_s": self.median_makespan_s,
            "min_makespan_s": self.min_makespan_s,
            "makespans_s": list(self.makespans_s),
            "repeats": len(self.makespans_s),
            "trace_makespan_s": self.trace.makespan_s,
            "work_s": self.work_s,
            "utilization": self.utilization,
            "startup_s": self.startup_s,
            "start_method": self.start_method,
        }

    @property
    def utilization(self) -> float:
        per_core = self.trace.utilization(self.workers)
        started = sorted({c for g in self.groups for c in g})
        return sum(per_core[c] for c in started) / len(started) if started else 0.0

    def to_result(self, sequential_s: float | None = None) -> Result:
        """The measurement as a :class:`wpsim.result.Result` (``engine="measured"``).

        ``sequential_s`` defaults to :attr:`work_s` (the measured task time run back to back),
        so ``speedup`` is then the measured parallelism, not a speed-up over a separate run.
        """
        started = sorted({c for g in self.groups for c in g})
        per_core = self.trace.utilization(self.workers)
        return Result(
            engine="measured",
            policy=self.policy,
            cores=self.workers,
            makespan_s=self.measured_makespan_s,
            sequential_s=self.work_s if sequential_s is None else sequential_s,
            n_tasks=self.n_tasks,
            utilization=self.utilization,
            dram_bytes=0.0,
            per_core_utilization=[per_core[c] for c in range(self.workers)],
            extra={
                "chunk": self.chunk,
                "workers_started": len(started),
                "makespans_s": list(self.makespans_s),
            },
            trace=self.trace,
            tasks=self.tasks,
        )
