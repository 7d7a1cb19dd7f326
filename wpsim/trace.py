"""Traces: one record per task, the same schema for the simulator and the real executor.

A record holds the task id, the cores that ran it, ``start_s`` and ``end_s``, the bytes read from
each memory level (cache names of the machine, ``DRAM``, and ``handoff`` for activations moved
from another core), ``hit``: whether all of the task's weights came from a cache, and
``dispatch_s``: the runtime's dispatch overhead included in the task's time, where it is known
(the simulator's cost model charges it; a measured trace leaves the column empty).

A simulated trace also keeps ``costs``: the cost model's record of what each task's time is made
of (:class:`wpsim.cost.TaskCost`), from which :mod:`wpsim.breakdown` explains the makespan by
cause. It is not exported; measured traces have none.

Traces are stored as columns (lists), so memory grows with the number of tasks, never with
simulated time. Export: Chrome trace-event JSON (times in microseconds, one row per core; opens in
Perfetto and chrome://tracing) and CSV.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from wpsim.outputs import atomic_write, dumps_json, open_output


class Trace:
    """Per-task records as columns.

    Examples
    --------
    >>> tr = Trace(["L2", "DRAM"])
    >>> tr.append(task=0, cores=(0,), start_s=0.0, end_s=1e-6, level_bytes={"DRAM": 64.0}, hit=False)
    >>> next(tr.records())["DRAM_bytes"]
    64.0
    """

    def __init__(self, levels: Sequence[str]) -> None:
        self.levels = list(levels)
        self.task: list[int] = []
        self.cores: list[tuple[int, ...]] = []
        self.start_s: list[float] = []
        self.end_s: list[float] = []
        self.hit: list[bool] = []
        self.handoff_bytes: list[int] = []
        self._dispatch_s: list[float] = []
        #: the cost model's TaskCost of each record (simulated traces); empty otherwise
        self.costs: list[Any] = []
        self._weight_bytes: list[dict[str, float]] = []  # shared dicts, never mutated

    def __len__(self) -> int:
        return len(self.task)

    def append(
        self,
        task: int,
        cores: tuple[int, ...],
        start_s: float,
        end_s: float,
        level_bytes: dict[str, float],
        hit: bool,
        handoff_bytes: int = 0,
        dispatch_s: float | None = None,
    ) -> None:
        """Add one record. ``level_bytes``: weight bytes read per memory level (not copied)."""
        dispatch = None if dispatch_s is None else [dispatch_s]
        self.extend(
            [task], [cores], [start_s], [end_s], [level_bytes], [hit], [handoff_bytes], dispatch
        )

    def extend(
        self,
        tasks: Sequence[int],
        cores: Sequence[tuple[int, ...]],
        start_s: Sequence[float],
        end_s: Sequence[float],
        level_bytes: Sequence[dict[str, float]],
        hit: Sequence[bool],
        handoff_bytes: Sequence[int],
        dispatch_s: Sequence[float] | None = None,
    ) -> None:
        """Add many records at once, as columns (``level_bytes`` not copied). ``dispatch_s`` is
        given for every record of a trace or for none."""
        if self.task and (dispatch_s is not None) != bool(self._dispatch_s):
            raise ValueError("dispatch_s: give it for every record of a trace or for none")
        if dispatch_s is not None:
            self._dispatch_s.extend(dispatch_s)
        self.task.extend(tasks)
        self.cores.extend(cores)
        self.start_s.extend(start_s)
        self.end_s.extend(end_s)
        self.hit.extend(hit)
        self.handoff_bytes.extend(handoff_bytes)
        self._weight_bytes.extend(level_bytes)

    @property
    def dispatch_s(self) -> list[float]:
        """The dispatch overhead in each record's time: as given, or as its cost charged it (a
        simulated trace; taken from ``costs`` when first asked for); empty where unobserved."""
        if not self._dispatch_s and self.costs:
            self._dispatch_s = [cost.dispatch_s for cost in self.costs]
        return self._dispatch_s

    @property
    def level_bytes(self) -> dict[str, list[float]]:
        """Bytes per level as columns, ``handoff`` included."""
        columns = {name: [d.get(name, 0.0) for d in self._weight_bytes] for name in self.levels}
        if "handoff" in columns:
            columns["handoff"] = [float(b) for b in self.handoff_bytes]
        return columns

    # ---- derived -------------------------------------------------------------------------------
    @property
    def makespan_s(self) -> float:
        return max(self.end_s, default=0.0) - min(self.start_s, default=0.0)

    def total_bytes(self, level: str) -> float:
        if level == "handoff":
            return float(sum(self.handoff_bytes))
        return float(sum(d.get(level, 0.0) for d in self._weight_bytes))

    def busy_s_per_core(self, n_cores: int) -> list[float]:
        busy = [0.0] * n_cores
        for cores, start, end in zip(self.cores, self.start_s, self.end_s, strict=True):
            for core in cores:
                if core < n_cores:
                    busy[core] += end - start
        return busy

    def utilization(self, n_cores: int) -> list[float]:
        """Fraction of the makespan each core spent running tasks."""
        span = self.makespan_s
        return [b / span if span else 0.0 for b in self.busy_s_per_core(n_cores)]

    def records(self) -> Iterator[dict[str, Any]]:
        columns = self.level_bytes
        dispatch = self.dispatch_s
        for i in range(len(self.task)):
            record = {
                "task": self.task[i],
                "cores": list(self.cores[i]),
                "start_s": self.start_s[i],
                "end_s": self.end_s[i],
                "hit": self.hit[i],
            }
            for name, column in columns.items():
                record[f"{name}_bytes"] = column[i]
            if dispatch:
                record["dispatch_s"] = dispatch[i]
            yield record

    def by_task(self) -> dict[int, int]:
        """Record index of each task id."""
        return {tid: i for i, tid in enumerate(self.task)}

    # ---- export -------------------------------------------------------------------------------
    def to_chrome(self, path: str | Path, labels: Sequence[str] | None = None,
                  layers: Sequence[int] | None = None, process_name: str = "wpsim",
                  flag: str = "") -> None:  # fmt: skip
        """Write Chrome trace-event JSON: one complete event per task per core, in microseconds."""
        # through wpsim.outputs (atomic, no NaN/Infinity); ``flag`` names the option in errors
        events: list[dict[str, Any]] = [
            {"name": "process_name", "ph": "M", "pid": 0, "args": {"name": process_name}},
        ]
        cores_seen = sorted({c for cores in self.cores for c in cores})
        events += [
            {"name": "thread_name", "ph": "M", "pid": 0, "tid": c, "args": {"name": f"core {c}"}}
            for c in cores_seen
        ]
        columns = self.level_bytes
        dispatch = self.dispatch_s
        for i, tid in enumerate(self.task):
            name = labels[tid] if labels else f"task {tid}"
            args = {"task": tid, "hit": self.hit[i]}
            args.update({f"{k}_bytes": v[i] for k, v in columns.items() if v[i]})
            if dispatch:
                args["dispatch_s"] = dispatch[i]
            for core in self.cores[i]:
                events.append({
                    "name": name,
                    "cat": f"layer {layers[tid]}" if layers else "task",
                    "ph": "X",
                    "ts": self.start_s[i] * 1e6,
                    "dur": (self.end_s[i] - self.start_s[i]) * 1e6,
                    "pid": 0,
                    "tid": core,
                    "args": args,
                })  # fmt: skip
        atomic_write(path, dumps_json({"traceEvents": events, "displayTimeUnit": "ns"}), flag)

    def to_csv(self, path: str | Path, labels: Sequence[str] | None = None, flag: str = "") -> None:
        """Write one CSV row per record (through :mod:`wpsim.outputs`)."""
        columns = ["task", "label", "cores", "start_s", "end_s", "hit"] + [
            f"{name}_bytes" for name in self.levels
        ]
        if self.dispatch_s:
            columns.append("dispatch_s")
        with open_output(path, flag, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            for record in self.records():
                record["label"] = labels[record["task"]] if labels else ""
                record["cores"] = " ".join(map(str, record["cores"]))
                writer.writerow(record)
