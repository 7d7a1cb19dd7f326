"""Base classes of scheduling policies.

The engine (and the real executor) talk to a policy through four calls:

1. ``graph_options(workload, chunk)`` -> keyword arguments for :func:`wpsim.graph.build`
   (e.g. ``layerwise`` hoists input projections into one GEMM per layer);
2. ``core_groups(n_cores)`` -> the groups of cores that run one task together (one core each,
   unless the policy splits cells across ``helpers`` cores);
3. ``reset(plan, groups)``, then ``push(task_id)`` whenever a task becomes ready;
4. ``assign(idle_groups)`` -> ``[(group, task_id), ...]``: work for some idle groups.

Determinism: the engine presents idle groups in ascending order and ``assign`` breaks every tie
by ``priority`` (a tuple whose last element is the task id), so the same inputs give the same
trace.
"""

from __future__ import annotations

import heapq
from typing import Any, ClassVar

from wpsim.errors import ConfigError
from wpsim.plan import Plan
from wpsim.workload import Workload


class Policy:
    """A scheduling policy. Subclass :class:`DynamicPolicy` or :class:`StaticPolicy`.

    Parameters
    ----------
    helpers : int, optional
        Cores per group: each task is split across the cores of a group (1 by default).
    instances : int
        Independent copies of the workload (used by ``multiprogram``).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def __init__(self, helpers: int | None = None, instances: int = 1) -> None:
        if helpers is not None and helpers < 1:
            raise ConfigError(f"--helpers: got {helpers}, expected an integer >= 1")
        if instances < 1:
            raise ConfigError(f"--instances: got {instances}, expected an integer >= 1")
        self.helpers = helpers
        self.instances = instances
        self.plan: Plan | None = None
        self.groups: list[tuple[int, ...]] = []

    # ---- what the policy runs on -------------------------------------------------------------
    def graph_options(self, workload: Workload, chunk: int) -> dict[str, Any]:
        """Arguments for :func:`wpsim.graph.build`: by default the cell graph at ``chunk``."""
        return {"chunk": chunk, "instances": self.instances}

    def core_groups(self, n_cores: int) -> list[tuple[int, ...]]:
        """Consecutive groups of ``helpers`` cores (default 1); leftover cores stay idle."""
        k = self.helpers or 1
        if k > n_cores:
            raise ConfigError(f"--helpers: got {k}, expected at most the {n_cores} cores")
        return [tuple(range(g * k, (g + 1) * k)) for g in range(n_cores // k)]

    # ---- scheduling ------------------------------------------------------------------------
    def reset(self, plan: Plan, groups: list[tuple[int, ...]]) -> None:
        self.plan = plan
        self.groups = groups

    def priority(self, tid: int) -> tuple:
        """Lower runs first. Default: oldest wavefront, then lowest layer, then task id."""
        plan = self.plan
        return (plan.generation[tid], plan.tasks[tid].layer, tid)

    def push(self, tid: int) -> None:
        raise NotImplementedError

    def assign(self, idle: list[int]) -> list[tuple[int, int]]:
        raise NotImplementedError

    def describe(self) -> str:
        extra = f", helpers={self.helpers}" if self.helpers and self.helpers > 1 else ""
        return f"{self.name}{extra}"


class StaticPolicy(Policy):
    """Each task has a home group (``home_group``); a group runs its own tasks by priority."""

    def home_group(self, tid: int) -> int:
        raise NotImplementedError

    def reset(self, plan: Plan, groups: list[tuple[int, ...]]) -> None:
        super().reset(plan, groups)
        self._queues: list[list[tuple]] = [[] for _ in groups]

    def push(self, tid: int) -> None:
        heapq.heappush(self._queues[self.home_group(tid)], (self.priority(tid), tid))

    def assign(self, idle: list[int]) -> list[tuple[int, int]]:
        out = []
        queues = self._queues
        for g in idle:
            if queues[g]:
                out.append((g, heapq.heappop(queues[g])[1]))
        return out


class DynamicPolicy(Policy):
    """Any ready task on any idle group, preferring the group that last ran the same layer.

    ``assign`` first gives each idle group the best ready task of the (instance, layer,
    direction) it ran last, whose weights are hot in its caches; the groups left over take the
    best ready tasks overall, in ascending group order.
    """

    def reset(self, plan: Plan, groups: list[tuple[int, ...]]) -> None:
        super().reset(plan, groups)
        self._heap: list[tuple] = []
        self._by_layer: dict[tuple, list[tuple]] = {}
        self._taken = bytearray(plan.n_tasks)
        self._last_layer: list[tuple | None] = [None] * len(groups)
        self._layer_key = [(t.instance, t.layer, t.direction) for t in plan.tasks]

    def push(self, tid: int) -> None:
        entry = (self.priority(tid), tid)
        heapq.heappush(self._heap, entry)
        key = self._layer_key[tid]
        queue = self._by_layer.get(key)
        if queue is None:
            queue = self._by_layer[key] = []
        heapq.heappush(queue, entry)

    def _pop(self, heap: list[tuple]) -> int | None:
        taken = self._taken
        while heap:
            tid = heapq.heappop(heap)[1]
            if not taken[tid]:
                taken[tid] = 1
                return tid
        return None

    def assign(self, idle: list[int]) -> list[tuple[int, int]]:
        out = []
        leftover = []
        last = self._last_layer
        for g in idle:
            key = last[g]
            queue = self._by_layer.get(key) if key is not None else None
            tid = self._pop(queue) if queue else None
            if tid is None:
                leftover.append(g)
            else:
                out.append((g, tid))
        for g in leftover:
            tid = self._pop(self._heap)
            if tid is None:
                break
            out.append((g, tid))
            last[g] = self._layer_key[tid]
        return out
