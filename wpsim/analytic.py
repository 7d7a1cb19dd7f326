"""Closed-form makespan for every policy (fast what-if sweeps).

The analytic model uses the simulator's cost formulas (:mod:`wpsim.cost`) but replaces the
event-by-event cache state with each policy's steady state, and the schedule with closed forms.

Steady-state residency of a layer's weights (``W`` bytes per layer-direction, ``k`` cores per
group, ``G`` groups):

* ``sequential``: one layer at a time: its W in the smallest level that holds it;
* ``layerwise``: a ``W / P`` slice per core, one layer at a time;
* ``wavefront``, ``pipeline``, ``helper``: a group keeps ``ceil(LD / G)`` layer-directions
  (round robin), ``W / k`` each per core; when that does not fit the private cache, the shared
  level must hold all layers, else every step streams from DRAM, shared by the cores running at
  once (``min(cores per socket, k * widest wavefront)``).

The first read of every layer is cold (DRAM) in every policy.

Makespan, with ``c_l`` the steady cost of a task of layer l and ``n`` time-chunks:

* ``sequential``: the sum of all task costs;
* ``layerwise`` / ``helper`` with one group: the sum of all task costs on the group (each task
  split across the group);
* ``wavefront`` / ``pipeline`` on unidirectional inference: layers run in bands of ``G``; band b
  takes ``n * max(c_l in b)``, the last band ``sum(c_l) + (n-1) * max(c_l)``. With uniform costs
  this is :func:`wpsim.analysis.wavefront_makespan_units` times the cost, which the simulator
  reproduces exactly (tests/test_analytic.py);
* any other graph (bidirectional, training, output layer, op granularity): ``max(work / G,
  critical path)`` with the critical path from the per-task costs, exact when ``G`` is at least
  the widest wavefront and a lower bound otherwise;
* ``multiprogram``: the slowest instance on its block of groups.
"""

from __future__ import annotations

import math

from wpsim.cost import DRAM, CpuCostModel
from wpsim.errors import ConfigError
from wpsim.graph import build
from wpsim.hardware import CpuMachine
from wpsim.plan import Plan, compile_plan
from wpsim.policies import Policy, get_policy
from wpsim.result import Result
from wpsim.workload import Workload


def _level_for(machine: CpuMachine, private_ws: float, shared_ws: float, n_sockets: int):
    """(level name, bandwidth) holding a working set: private, then shared, else DRAM (None)."""
    for level in machine.private_levels:
        if private_ws <= level.size_bytes:
            return level.name, level.bandwidth_Bps
    shared = machine.shared_level
    if shared is not None and shared_ws <= shared.size_bytes * n_sockets:
        return shared.name, shared.bandwidth_Bps
    return DRAM, None


class _Costs:
    """Steady-state task costs of one plan under one policy's residency."""

    def __init__(self, machine: CpuMachine, plan: Plan, policy: Policy, groups, ideal: bool):
        self.machine = machine
        self.plan = plan
        self.ideal = ideal
        self.k = len(groups[0])
        self.n_groups = len(groups)
        self.model = CpuCostModel(machine, plan)
        w = plan.workload
        # The live working set: the most weight bytes (and layers) any one wavefront touches.
        # Weight gradients are written once at the end and are not part of it.
        blocks_by_generation: dict[int, dict[str, int]] = {}
        layers_by_generation: dict[int, set[tuple]] = {}
        for tid, t in enumerate(plan.tasks):
            if t.kind == "wgrad" or not t.weights:
                continue
            g = plan.generation[tid]
            blocks_by_generation.setdefault(g, {}).update(t.weights)
            layers_by_generation.setdefault(g, set()).add((t.instance, t.layer, t.direction))
        total = max((sum(b.values()) for b in blocks_by_generation.values()), default=0)
        n_layers = max((len(keys) for keys in layers_by_generation.values()), default=1)
        name = policy.name
        width = self._width(w)
        used_cores = self.k * self.n_groups
        sockets_used = max(1, math.ceil(used_cores / machine.cores_per_socket))
        # residency per set of weight blocks a task reads (a layer's W_ih + W_hh, or one of them)
        self.level: dict[tuple, tuple[str, float | None]] = {}
        self.streams = 1
        for t in plan.tasks:
            if not t.weights or t.weights in self.level:
                continue
            size = sum(nbytes for _, nbytes in t.weights)
            if name == "sequential":
                level = _level_for(machine, size, size, 1)
            elif self.n_groups == 1:  # layerwise, helper with all cores: a slice per core
                level = _level_for(machine, size / self.k, size, sockets_used)
                self.streams = min(machine.cores_per_socket, used_cores)
            else:
                per_group = math.ceil(n_layers / self.n_groups) * size / self.k
                level = _level_for(machine, per_group, total, sockets_used)
                self.streams = min(machine.cores_per_socket, self.k * min(width, self.n_groups))
            self.level[t.weights] = level
        self.cold_done: set[tuple] = set()

    @staticmethod
    def _width(w: Workload) -> int:
        return w.directions * w.layers

    def task_s(self, tid: int, handoff: bool) -> float:
        """Steady-state cost of task ``tid`` (the first task of each layer is cold)."""
        t = self.plan.tasks[tid]
        if self.ideal:
            return t.flops / (self.k * 1e9)
        m = self.machine
        compute = self.model.compute_s(tid, self.k)
        bandwidth = self.level.get(t.weights, (DRAM, None))[1]
        cold = bool(t.weights) and t.weights not in self.cold_done
        if cold:
            self.cold_done.add(t.weights)
            bandwidth = None
        weight_bytes = sum(size for _, size in t.weights) / self.k
        if bandwidth is None:
            share = self.model.dram_share_Bps(1 if cold else self.streams)
            memory = weight_bytes / share if weight_bytes else 0.0
        else:
            memory = weight_bytes / bandwidth
        fixed = m.dispatch_overhead_s
        if handoff:
            nbytes = max(self.plan.pred_bytes[tid], default=0)
            fixed += m.handoff.latency_s + nbytes / m.handoff.bandwidth_Bps
        if self.k > 1:
            n_sync = t.steps if t.flops_rec else 1
            gather = (self.k - 1) / self.k * self.model.state_vector_bytes / m.handoff.bandwidth_Bps
            fixed += n_sync * (m.barrier_s(self.k) + gather)
        return fixed + max(compute, memory)


def _band_makespan(layer_costs: list[float], chunks: int, groups: int) -> float:
    """Bands of ``groups`` layers: each full band ``n * max``, the last ``(len - 1 + n) * max``."""
    if groups >= min(len(layer_costs), chunks):
        return sum(layer_costs) + (chunks - 1) * max(layer_costs)
    bands = [layer_costs[i : i + groups] for i in range(0, len(layer_costs), groups)]
    full = sum(chunks * max(band) for band in bands[:-1])
    last = bands[-1]
    return full + (len(last) - 1 + chunks) * max(last)


def _critical_path_s(plan: Plan, cost_of) -> float:
    finish = [0.0] * plan.n_tasks
    for tid in plan.order:
        ready = max((finish[p] for p in plan.preds[tid]), default=0.0)
        finish[tid] = ready + cost_of[tid]
    return max(finish, default=0.0)


def _schedule_s(plan: Plan, policy: Policy, costs: _Costs, cost_of: list[float]) -> float:
    w = plan.workload
    name = policy.name
    if name == "sequential" or costs.n_groups == 1:
        return sum(cost_of)
    simple_grid = (
        plan.granularity == "cell"
        and w.phase == "inference"
        and not w.bidirectional
        and w.output == "none"
        and name in ("wavefront", "pipeline", "helper")
        and all(t.kind == "cell" for t in plan.tasks)
    )
    if simple_grid:
        n = w.n_chunks(plan.chunk)
        steady, cold_extra = [], 0.0
        for layer in range(w.layers):
            row = cost_of[layer * n : (layer + 1) * n]
            steady.append(max(row[1:]) if n > 1 else row[0])
            cold_extra += max(
                0.0, row[0] - steady[-1]
            )  # chunk 0 of every layer is on the fill path
        return _band_makespan(steady, n, costs.n_groups) + cold_extra
    return max(sum(cost_of) / costs.n_groups, _critical_path_s(plan, cost_of))


def predict(
    workload: Workload,
    machine: CpuMachine,
    policy: Policy | str = "wavefront",
    cores: int | None = None,
    chunk: int = 1,
    granularity: str = "cell",
    cost: str = "model",
) -> Result:
    """Closed-form prediction, same signature and :class:`~wpsim.result.Result` as
    :func:`wpsim.engine.simulate`.

    Examples
    --------
    >>> from wpsim.hardware import load_machine, resolve_machine_path
    >>> m = load_machine(resolve_machine_path("xeon8160_2s"))
    >>> w = Workload(cell="lstm", layers=4, hidden=256, input=256, seq_len=48)
    >>> r = predict(w, m, "wavefront", cores=4, cost="ideal")
    >>> round(r.speedup, 3)  # 4 x 48 tasks in 4 + 48 - 1 steps
    3.765
    """
    if not isinstance(machine, CpuMachine):
        raise ConfigError(f"machine '{machine.name}' is a {machine.kind}; use its own policies")
    if isinstance(policy, str):
        policy = get_policy(policy)
    if cores is not None:
        machine = machine.with_cores(cores)
    if cost not in ("model", "ideal"):
        raise ConfigError(f"--cost: got {cost!r}, expected 'model' or 'ideal'")
    makespan, n_tasks, dram = _predict_makespan(workload, machine, policy, chunk, granularity, cost)
    sequential = get_policy("sequential", instances=policy.instances)
    sequential_s, _, _ = _predict_makespan(workload, machine, sequential, chunk, granularity, cost)
    busy = sequential_s if cost == "ideal" else None
    utilization = (busy or sequential_s) / (makespan * machine.total_cores) if makespan else 0.0
    return Result(
        engine="analytic",
        policy=policy.describe(),
        cores=machine.total_cores,
        makespan_s=makespan,
        sequential_s=sequential_s,
        n_tasks=n_tasks,
        utilization=min(1.0, utilization),
        dram_bytes=dram,
        level_bytes={DRAM: dram},
        extra={"machine": machine.name, "chunk": chunk, "granularity": granularity, "cost": cost},
    )


def _predict_makespan(
    workload, machine, policy, chunk, granularity, cost
) -> tuple[float, int, float]:
    graph = build(workload, granularity=granularity, **policy.graph_options(workload, chunk))
    plan = compile_plan(graph)
    groups = policy.core_groups(machine.total_cores)
    if policy.name == "multiprogram":
        n = policy.instances
        sizes = [sum(1 for g in range(len(groups)) if g * n // len(groups) == i) for i in range(n)]
        single = get_policy("wavefront", helpers=policy.helpers)
        worst, dram = 0.0, 0.0
        for size in sorted(set(sizes)):
            sub = machine.with_cores(size * len(groups[0]))
            makespan, _, instance_dram = _predict_makespan(
                workload, sub, single, chunk, granularity, cost
            )
            worst = max(worst, makespan)
            dram += instance_dram * sizes.count(size)
        return worst, plan.n_tasks, dram
    costs = _Costs(machine, plan, policy, groups, ideal=(cost == "ideal"))
    handoff = policy.name not in ("sequential",) and costs.n_groups > 1
    cost_of = [costs.task_s(tid, handoff) for tid in range(plan.n_tasks)]
    dram = 0.0
    if cost != "ideal":
        seen_cold: set[tuple] = set()
        for t in plan.tasks:
            level = costs.level.get(t.weights, (DRAM, None))[0]
            if level == DRAM or t.weights not in seen_cold:
                dram += t.weight_bytes
            seen_cold.add(t.weights)
    return _schedule_s(plan, policy, costs, cost_of), plan.n_tasks, dram


__all__ = ["predict"]
