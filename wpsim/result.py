"""The result of a simulation, an analytic prediction or a measured run (one type for all)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wpsim import breakdown
from wpsim.trace import Trace


@dataclass
class Result:
    """Makespan and what explains it: of a simulation, a closed form, or a measured run.

    ``speedup`` is ``sequential_s / makespan_s``: one core running the same workload (all
    instances, for multiprogramming) in layer-major order, under the same model.

    ``breakdown_s`` and ``core_breakdown_s`` break the makespan down by cause (``compute``,
    ``contention``, ``memory.<level>``, ``handoff``, ``sync``, ``dispatch``, ``overhead``,
    ``idle``), each adding up to ``makespan_s`` to rounding: along the critical path (why it
    takes this long), and averaged over the cores (where the cores' time went; its ``idle`` is
    what utilisation leaves). :mod:`wpsim.breakdown` defines both precisely; a simulation takes
    them from its trace, a closed form from its formula; a measured run observes no causes and
    leaves them empty.

    A measured run (:func:`kernels.executor.execute`, ``engine="measured"``) also carries what
    the kernels computed (``outputs``, ``grads``); ``makespan_s`` is the median over its repeats
    and its ``extra`` holds every repeat's makespan, the worker groups and the start-up time.
    """

    engine: str  # "simulate", "analytic" or "measured"
    policy: str
    cores: int
    makespan_s: float
    sequential_s: float
    n_tasks: int
    utilization: float  # mean over cores of busy time / makespan
    dram_bytes: float
    level_bytes: dict[str, float] = field(default_factory=dict)
    per_core_utilization: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    breakdown_s: dict[str, float] = field(default_factory=dict)  # along the critical path
    core_breakdown_s: dict[str, float] = field(default_factory=dict)  # mean over the cores
    trace: Trace | None = field(default=None, repr=False)
    tasks: list | None = field(default=None, repr=False)  # the graph's tasks, by id
    # a measured run: ``output``, ``h_n`` (lstm: ``c_n``) and, training, every gradient
    outputs: dict[str, Any] | None = field(default=None, repr=False)
    grads: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def labels(self) -> list[str]:
        """The tasks' labels, by task id (for a trace's rows)."""
        return [t.label for t in self.tasks or []]

    @property
    def speedup(self) -> float:
        return self.sequential_s / self.makespan_s if self.makespan_s else float("nan")

    @classmethod
    def from_trace(
        cls,
        trace: Trace,
        policy: str,
        cores: int,
        sequential_s: float,
        levels: list[str],
        tasks: list,
        extra: dict[str, Any],
        dram_level: str = "DRAM",
        preds: Sequence[Sequence[int]] | None = None,
        level_bw: Mapping[str, float] | None = None,
    ) -> Result:
        """A simulation's result: makespan, utilisation and traffic summed from its trace, and
        with the graph's ``preds`` (by task id), the break-downs by cause (``level_bw``: the
        bandwidth of each cache level, see :func:`wpsim.breakdown.add_task`)."""
        per_core = trace.utilization(cores)
        level_bytes = {name: trace.total_bytes(name) for name in levels}
        why: dict[str, float] = {}
        why_cores: dict[str, float] = {}
        if preds is not None:
            why = breakdown.critical_path_breakdown(trace, preds, levels, level_bw)
            why_cores = breakdown.core_breakdown(trace, cores, levels, level_bw)
        return cls(
            engine="simulate",
            policy=policy,
            cores=cores,
            makespan_s=trace.makespan_s,
            sequential_s=sequential_s,
            n_tasks=len(tasks),
            utilization=sum(per_core) / len(per_core),
            dram_bytes=level_bytes.get(dram_level, 0.0),
            level_bytes=level_bytes,
            per_core_utilization=per_core,
            extra=extra,
            breakdown_s=why,
            core_breakdown_s=why_cores,
            trace=trace,
            tasks=tasks,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no trace)."""
        out = {
            "engine": self.engine,
            "policy": self.policy,
            "cores": self.cores,
            "makespan_s": self.makespan_s,
            "sequential_s": self.sequential_s,
            "speedup": self.speedup,
            "n_tasks": self.n_tasks,
            "utilization": self.utilization,
            "dram_bytes": self.dram_bytes,
            "level_bytes": dict(self.level_bytes),
            "breakdown_s": dict(self.breakdown_s),
            "core_breakdown_s": dict(self.core_breakdown_s),
        }
        out.update(self.extra)
        return out
