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

from heapq import heappop, heappush
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
        heappush(self._queues[self.home_group(tid)], (self.priority(tid), tid))

    def assign(self, idle: list[int]) -> list[tuple[int, int]]:
        out = []
        queues = self._queues
        for g in idle:
            if queues[g]:
                out.append((g, heappop(queues[g])[1]))
        return out


class DynamicPolicy(Policy):
    """Any ready task on any idle group, preferring the group that last ran the same layer.

    ``assign`` first gives each idle group, in ascending order, the best ready task of the
    (instance, layer, direction) it ran last, whose weights are hot in its caches; the groups
    left over take the best ready tasks overall, in ascending group order.

    Ready tasks sit in two heaps (one per layer, one overall) and are removed lazily; the work of
    ``assign`` grows with the number of layers that have ready tasks, not with the number of idle
    groups (most are idle with nothing to do when there are more cores than layers).
    """

    def reset(self, plan: Plan, groups: list[tuple[int, ...]]) -> None:
        super().reset(plan, groups)
        # layers are numbered: (instance, layer, direction) -> 0, 1, ...
        ids: dict[tuple[int, int, int], int] = {}
        self._layer_of = [
            ids.setdefault((t.instance, t.layer, t.direction), len(ids)) for t in plan.tasks
        ]
        self._heap: list[tuple] = []  # every ready task
        self._by_layer: list[list[tuple]] = [[] for _ in ids]  # the ready tasks of each layer
        self._ready_in_layer = [0] * len(ids)
        self._layers_ready: set[int] = set()  # layers with ready tasks
        self._groups_by_last: list[list[int]] = [[] for _ in ids]  # groups that ran it last
        self._last_layer = [-1] * len(groups)
        self._taken = bytearray(plan.n_tasks)
        self._n_ready = 0  # pushed and not yet assigned

    def push(self, tid: int) -> None:
        entry = (self.priority(tid), tid)
        heappush(self._heap, entry)
        layer = self._layer_of[tid]
        heappush(self._by_layer[layer], entry)
        self._ready_in_layer[layer] += 1
        self._layers_ready.add(layer)
        self._n_ready += 1

    def _pop(self, heap: list[tuple]) -> int:
        """The best untaken task of ``heap`` (the caller knows there is one)."""
        taken = self._taken
        while True:
            tid = heappop(heap)[1]
            if not taken[tid]:
                taken[tid] = 1
                self._n_ready -= 1
                layer = self._layer_of[tid]
                self._ready_in_layer[layer] -= 1
                if not self._ready_in_layer[layer]:
                    self._layers_ready.discard(layer)
                return tid

    def assign(self, idle: list[int]) -> list[tuple[int, int]]:
        if not self._n_ready:
            return []
        groups_by_last = self._groups_by_last
        hot = []  # idle groups whose last layer has ready tasks
        for layer in self._layers_ready:
            for g in groups_by_last[layer]:
                if g in idle:
                    hot.append(g)
        out = []
        if hot:
            hot.sort()
            last = self._last_layer
            ready_in_layer = self._ready_in_layer
            for g in hot:
                if ready_in_layer[last[g]]:
                    out.append((g, self._pop(self._by_layer[last[g]])))
        if self._n_ready:
            served = [g for g, _ in out]
            for g in idle:
                if g in served:
                    continue
                tid = self._pop(self._heap)
                out.append((g, tid))
                self._set_last(g, self._layer_of[tid])
                if not self._n_ready:
                    break
        return out

    def _set_last(self, g: int, layer: int) -> None:
        previous = self._last_layer[g]
        if previous != layer:
            if previous >= 0:
                self._groups_by_last[previous].remove(g)
            self._groups_by_last[layer].append(g)
            self._last_layer[g] = layer
