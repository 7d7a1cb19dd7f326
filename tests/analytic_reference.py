"""Closed-form makespan for every policy (fast what-if sweeps).

The analytic model uses the simulator's cost formulas (:mod:`wpsim.cost.cpu`) but replaces the
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
  this is :func:`wpsim.model.analysis.wavefront_makespan_units` times the cost, which the simulator
  reproduces exactly (tests/test_analytic.py);
* any other graph (bidirectional, training, output layer, op granularity): ``max(work / G,
  critical path)`` with the critical path from the per-task costs, exact when ``G`` is at least
  the widest wavefront and a lower bound otherwise;
* ``multiprogram``: the slowest instance on its block of groups.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

from wpsim import breakdown
from wpsim.cost.base import DRAM, TaskCost
from wpsim.cost.cpu import CpuCostModel
from wpsim.machines.cpu import CpuMachine
from wpsim.machines.fields import piecewise_linear
from wpsim.model.graph import build
from wpsim.model.plan import Plan, compile_plan
from wpsim.model.workload import Workload
from wpsim.policies import Policy, get_policy
from wpsim.result import Result


@dataclass(slots=True)
class _PlanInfo:
    """A compiled plan and what the closed forms need from it, computed once per plan.

    Tasks with the same signature (weight blocks, flops, steps, largest incoming edge) have the
    same steady-state cost, so :meth:`_Costs.all_task_costs` costs each *class* of tasks once;
    the first task of each set of weight blocks is cold (read from DRAM) and is costed alone.
    """

    plan: Plan
    live_bytes: int  # the most weight bytes any one wavefront touches
    live_layers: int  # the most layer-directions any one wavefront touches
    weight_sets: list[tuple]  # distinct non-empty ``Task.weights``, in order of first appearance
    weight_set_bytes: list[int]
    weight_set_count: list[int]  # tasks reading each set
    task_class: list[int]
    class_rep: list[int]  # one task id per class
    cold_tids: list[int]  # first task (by id) of each weight set
    all_cells: bool
    #: cost models by machine (minus its core counts): their compute-time memos stay warm
    cost_models: dict[str, CpuCostModel] = field(default_factory=dict)
    #: critical paths by the task costs that decide them (class costs, cold-task costs)
    critical_paths: dict[tuple, float] = field(default_factory=dict)
    #: the same paths' tasks, by record key (:meth:`_Costs.record_key`) and count
    critical_chains: dict[tuple, dict] = field(default_factory=dict)
    #: tasks of each class
    class_count: list[int] = field(default_factory=list)

    def cost_model(self, machine: CpuMachine, machine_key: str) -> CpuCostModel:
        """A :class:`CpuCostModel` of this plan; analytic uses only its core-count-free parts
        (compute times, DRAM share), so one serves every core count of a machine."""
        model = self.cost_models.get(machine_key)
        if model is None:
            if len(self.cost_models) > 64:
                self.cost_models.clear()
            model = self.cost_models[machine_key] = CpuCostModel(machine, self.plan)
        return model


def _plan_info_for(plan: Plan) -> _PlanInfo:
    tasks = plan.tasks
    generation = plan.generation
    pred_bytes = plan.pred_bytes
    # The live working set: the most weight bytes (and layers) any one wavefront touches.
    # Weight gradients are written once at the end and are not part of it.
    sets_by_generation: dict[int, set[tuple]] = {}
    layers_by_generation: dict[int, set[tuple]] = {}
    first: dict[tuple, int] = {}
    counts: dict[tuple, int] = {}
    classes: dict[tuple, int] = {}
    task_class: list[int] = []
    class_rep: list[int] = []
    append_class = task_class.append
    for tid, (t, incoming, g) in enumerate(zip(tasks, pred_bytes, generation, strict=True)):
        w = t.weights
        if w:
            if w in counts:
                counts[w] += 1
            else:
                first[w] = tid
                counts[w] = 1
            if t.kind != "wgrad":
                in_g = sets_by_generation.get(g)
                if in_g is None:
                    in_g = sets_by_generation[g] = set()
                    layers_by_generation[g] = set()
                in_g.add(w)
                layers_by_generation[g].add((t.instance, t.layer, t.direction))
        signature = (
            w,
            t.flops_in,
            t.flops_rec,
            t.flops_elem,
            t.steps,
            t.recurrent,
            max(incoming) if incoming else 0,
        )
        c = classes.get(signature)
        if c is None:
            c = classes[signature] = len(class_rep)
            class_rep.append(tid)
        append_class(c)
    live_bytes = 0
    for in_g in sets_by_generation.values():
        blocks: dict[str, int] = {}
        for w in in_g:
            blocks.update(w)
        live_bytes = max(live_bytes, sum(blocks.values()))
    sets = list(first)
    return _PlanInfo(
        plan=plan,
        live_bytes=live_bytes,
        live_layers=max((len(keys) for keys in layers_by_generation.values()), default=1),
        weight_sets=sets,
        weight_set_bytes=[sum(size for _, size in w) for w in sets],
        weight_set_count=[counts[w] for w in sets],
        task_class=task_class,
        class_rep=class_rep,
        cold_tids=[first[w] for w in sets],
        all_cells=all(t.kind == "cell" for t in tasks),
        class_count=[count for _, count in sorted(Counter(task_class).items())],
    )


#: Compiled plans by (workload, granularity, graph options), least recently used evicted first.
#: A sweep evaluates one workload under many core counts and policies; building and compiling its
#: graph once per worker instead of at every call is most of what makes large grids fast.
_PLAN_CACHE: OrderedDict[tuple, _PlanInfo] = OrderedDict()
_PLAN_CACHE_SIZE = 32
#: One-core baselines by (workload, machine minus its core counts, instances, chunk, ...).
_SEQUENTIAL_CACHE: OrderedDict[tuple, tuple[float, int, float]] = OrderedDict()
_SEQUENTIAL_CACHE_SIZE = 256


def _plan_info(workload: Workload, granularity: str, options: dict) -> _PlanInfo:
    """The plan of ``build(workload, granularity, **options)``, from the cache when possible."""
    key = (workload, granularity, tuple(sorted(options.items())))
    try:
        hash(key)
    except TypeError:  # an unhashable graph option: no caching
        return _plan_info_for(compile_plan(build(workload, granularity=granularity, **options)))
    info = _PLAN_CACHE.get(key)
    if info is None:
        plan = compile_plan(build(workload, granularity=granularity, **options))
        info = _PLAN_CACHE[key] = _plan_info_for(plan)
        while len(_PLAN_CACHE) > _PLAN_CACHE_SIZE:
            _PLAN_CACHE.popitem(last=False)
    else:
        _PLAN_CACHE.move_to_end(key)
    return info


def clear_caches() -> None:
    """Forget cached plans and baselines (results are the same; this only frees memory)."""
    _PLAN_CACHE.clear()
    _SEQUENTIAL_CACHE.clear()


def _level_for(
    machine: CpuMachine, private_ws: float, shared_ws: float, n_sockets: int, first: int = 0
):
    """(level name, bandwidth) holding a working set: private (from the ``first``-th), then
    shared, else DRAM (None).

    A private level with a ``hit_curve`` serves the fraction ``f`` the curve gives at
    ``private_ws``; the rest comes from the levels outside it, and the bandwidth blends the two
    (``1 / bw = f / bw_level + (1 - f) / bw_outside``), named after the one that serves more."""
    levels = machine.private_levels
    for i in range(first, len(levels)):
        level = levels[i]
        curve = level.hit_curve
        if curve is not None and private_ws <= level.size_bytes * curve[-1][0]:
            f = piecewise_linear(curve, private_ws / level.size_bytes)
            if f >= 1.0:
                return level.name, level.bandwidth_Bps
            name, bw = _level_for(machine, private_ws, shared_ws, n_sockets, i + 1)
            if f <= 0.0 or bw is None:
                return name, bw
            blended = 1.0 / (f / level.bandwidth_Bps + (1.0 - f) / bw)
            return (level.name if f >= 0.5 else name), blended
        if curve is None and private_ws <= level.size_bytes:
            return level.name, level.bandwidth_Bps
    shared = machine.shared_level
    if shared is not None and shared_ws <= shared.size_bytes * n_sockets:
        return shared.name, shared.bandwidth_Bps
    return DRAM, None


class _Costs:
    """Steady-state task costs of one plan under one policy's residency."""

    def __init__(
        self,
        machine: CpuMachine,
        plan: Plan,
        policy: Policy,
        groups,
        ideal: bool,
        info: _PlanInfo | None = None,
        model: CpuCostModel | None = None,
        sequence: bool = False,
    ):
        info = info if info is not None else _plan_info_for(plan)
        self.info = info
        self.machine = machine
        self.plan = plan
        self.ideal = ideal
        self.k = len(groups[0])
        self.n_groups = len(groups)
        self.sequence = sequence
        self.model = model if model is not None else CpuCostModel(machine, plan)
        total = info.live_bytes
        name = policy.name
        cps = machine.cores_per_socket
        used_cores = self.k * self.n_groups
        sockets_used = max(1, math.ceil(used_cores / cps))
        # Multi-group policies: layer-direction i (in order) lives on group i mod G; groups fill
        # socket 0 first, and only the first min(G, live layers) groups hold a live layer. Each
        # socket's shared cache must hold the live layers of its own groups.
        active = min(self.n_groups, info.live_layers)
        active_on_socket: dict[int, int] = {}
        for g in range(active):
            socket = groups[g][0] // cps
            active_on_socket[socket] = active_on_socket.get(socket, 0) + 1
        layer_bytes = total / max(info.live_layers, 1)
        layer_keys = sorted({(t.instance, t.layer, t.direction) for t in plan.tasks if t.weights})
        layer_index = {key: i for i, key in enumerate(layer_keys)}
        # residency per set of weight blocks a task reads (a layer's W_ih + W_hh, or one of them)
        self.level: dict[tuple, tuple[str, float | None]] = {}
        self.streams_of: dict[tuple, int] = {}
        for weights, size, first in zip(
            info.weight_sets, info.weight_set_bytes, info.cold_tids, strict=True
        ):
            streams = 1
            if name == "sequential":
                level = _level_for(machine, size, size, 1)
            elif self.n_groups == 1:  # layerwise, helper with all cores: a slice per core
                level = _level_for(machine, size / self.k, size, sockets_used)
                streams = min(cps, used_cores)
            else:
                t = plan.tasks[first]
                group = layer_index[(t.instance, t.layer, t.direction)] % self.n_groups
                socket = groups[group][0] // cps
                on_socket = active_on_socket.get(socket, 1)
                level = _level_for(machine, size / self.k, on_socket * layer_bytes, 1)
                streams = min(cps, on_socket * self.k)
            self.level[weights] = level
            self.streams_of[weights] = streams
        # every core busy in steady state: the busy dispatch overhead applies
        self.all_busy = active * self.k >= machine.socket_cores
        calibrated = machine.cell_calibration(plan.workload.calibration_key)
        self.step_overhead = calibrated.step_overhead_s
        self.step_overhead_bwd = calibrated.backward_step_overhead_s
        self.task_overhead = calibrated.task_overhead_s
        self.cold_done: set[tuple] = set()

    def all_task_costs(self, handoff: bool) -> list[float]:
        """:meth:`task_s` of every task, by id, computed once per class of equal tasks.

        Keeps the :class:`~wpsim.cost.base.TaskCost` of each class and of each cold task, for
        :meth:`record` (what each cost is made of)."""
        info = self.info
        class_records = [self.task(rep, handoff, cold=False) for rep in info.class_rep]
        class_cost = [seconds for seconds, _ in class_records]
        cost_of = [class_cost[c] for c in info.task_class]
        cold_records = [self.task(tid, handoff, cold=True) for tid in info.cold_tids]
        cold_cost = [seconds for seconds, _ in cold_records]
        for tid, cost in zip(info.cold_tids, cold_cost, strict=True):
            cost_of[tid] = cost
        self.cost_key = (tuple(class_cost), tuple(cold_cost))  # decides cost_of entirely
        self.class_records = class_records
        self.cold_records = dict(zip(info.cold_tids, cold_records, strict=True))
        return cost_of

    def record_key(self, tid: int) -> tuple[str, int]:
        """Which cost :meth:`all_task_costs` gave task ``tid``: ``("cold", tid)`` for the first
        task of its weights, else ``("class", its class)``."""
        if tid in self.cold_records:
            return ("cold", tid)
        return ("class", self.info.task_class[tid])

    def record(self, key: tuple[str, int]) -> tuple[float, TaskCost]:
        """(seconds, TaskCost) of a :meth:`record_key`."""
        kind, index = key
        return self.cold_records[index] if kind == "cold" else self.class_records[index]

    def all_terms(self) -> dict[tuple[str, int], float]:
        """Every task once, as ``{record key: number of tasks}``."""
        info = self.info
        terms = {("class", c): float(count) for c, count in enumerate(info.class_count)}
        for tid in info.cold_tids:
            terms[("class", info.task_class[tid])] -= 1.0
            terms[("cold", tid)] = 1.0
        return terms

    def task_s(self, tid: int, handoff: bool, cold: bool | None = None) -> float:
        """Steady-state cost of task ``tid`` (the first task of each layer is cold).

        ``cold=None``: cold if this is the first call for the task's set of weight blocks.
        """
        return self.task(tid, handoff, cold)[0]

    def task(self, tid: int, handoff: bool, cold: bool | None = None) -> tuple[float, TaskCost]:
        """:meth:`task_s`, and what it is made of as a :class:`~wpsim.cost.base.TaskCost` (the
        weights read from the level that holds them, at its bandwidth: ``cache_s``, or the
        ``dram_bytes`` at the steady share)."""
        t = self.plan.tasks[tid]
        if self.ideal:
            seconds = t.flops / (self.k * 1e9)
            return seconds, TaskCost(0.0, seconds, 0.0, 0.0, {}, 0)
        m = self.machine
        compute, elementwise = self.model.compute_parts(tid, self.k)
        bandwidth = self.level.get(t.weights, (DRAM, None))[1]
        if cold is None:
            cold = bool(t.weights) and t.weights not in self.cold_done
            if cold:
                self.cold_done.add(t.weights)
        cold = cold and bool(t.weights)
        if cold:
            bandwidth = None
        weight_bytes = self.model.member_weight_bytes(tid, self.k)
        if bandwidth is None:
            share = self.model.dram_share_Bps(1 if cold else self.streams_of.get(t.weights, 1))
            memory = weight_bytes / share if weight_bytes else 0.0
        else:
            memory = weight_bytes / bandwidth
        dispatch = fixed = m.dispatch_s(
            all_busy=self.all_busy,
            whole_socket_group=self.k > 1 and self.k >= m.socket_cores,
            task_s=elementwise + max(compute, memory),
            sequence=self.sequence,
        )
        overhead = handoff_s = sync = 0.0
        if t.recurrent:
            per_step = self.step_overhead_bwd if t.is_backward else self.step_overhead
            overhead = self.task_overhead + t.steps * per_step
            fixed += overhead
        if handoff:
            nbytes = max(self.plan.pred_bytes[tid], default=0)
            handoff_s = m.handoff.latency_s + nbytes / m.handoff.bandwidth_Bps
            fixed += handoff_s
        if self.k > 1:
            n_sync = t.steps if t.flops_rec else 1
            gather = (self.k - 1) / self.k * self.model.state_vector_bytes / m.handoff.bandwidth_Bps
            sync = n_sync * (m.barrier_s(self.k) + gather)
            fixed += sync
        seconds = fixed + elementwise + max(compute, memory)
        level = DRAM if bandwidth is None else self.level[t.weights][0]
        in_dram = level == DRAM
        # (positional: keyword arguments take twice as long)
        record = TaskCost(
            fixed + elementwise,
            compute,
            0.0 if in_dram else memory,
            weight_bytes if in_dram else 0.0,
            {level: weight_bytes},
            0,
            dispatch,
            overhead,
            handoff_s,
            sync,
            elementwise,
        )
        return seconds, record


def _band_makespan(layer_costs: list[float], chunks: int, groups: int) -> float:
    """Bands of ``groups`` layers: each full band ``n * max``, the last ``(len - 1 + n) * max``."""
    if groups >= min(len(layer_costs), chunks):
        return sum(layer_costs) + (chunks - 1) * max(layer_costs)
    bands = [layer_costs[i : i + groups] for i in range(0, len(layer_costs), groups)]
    full = sum(chunks * max(band) for band in bands[:-1])
    last = bands[-1]
    return full + (len(last) - 1 + chunks) * max(last)


def _band_terms(layer_costs: list[float], chunks: int, groups: int) -> list[tuple[int, float]]:
    """:func:`_band_makespan` as ``(layer, coefficient)`` terms: the sum of ``coefficient *
    layer_costs[layer]`` is the makespan (each band's slowest layer, the first of equals).

    Examples
    --------
    >>> _band_terms([1.0, 3.0, 2.0], chunks=4, groups=3)  # 1 + 3 + 2 + (4 - 1) * 3
    [(0, 1.0), (1, 1.0), (2, 1.0), (1, 3.0)]
    >>> _band_terms([1.0, 3.0, 2.0], chunks=4, groups=2)  # 4 * 3, then (1 - 1 + 4) * 2
    [(1, 4.0), (2, 4.0)]
    """
    n_layers = len(layer_costs)
    slowest = layer_costs.__getitem__
    if groups >= min(n_layers, chunks):
        top = max(range(n_layers), key=slowest)
        return [(layer, 1.0) for layer in range(n_layers)] + [(top, float(chunks - 1))]
    terms = []
    for first in range(0, n_layers, groups):
        band = range(first, min(first + groups, n_layers))
        last = first + groups >= n_layers
        terms.append((max(band, key=slowest), float(len(band) - 1 + chunks if last else chunks)))
    return terms


def _critical_path_s(plan: Plan, cost_of) -> float:
    finish = [0.0] * plan.n_tasks
    preds = plan.preds
    for tid in plan.order:
        ps = preds[tid]
        finish[tid] = (max([finish[p] for p in ps]) if ps else 0.0) + cost_of[tid]
    return max(finish, default=0.0)


def _critical_chain(plan: Plan, cost_of) -> list[int]:
    """The tasks of the path :func:`_critical_path_s` measures, last first (at each task, the
    predecessor that finishes last, the first of equals)."""
    n = plan.n_tasks
    finish = [0.0] * n
    via = [-1] * n
    preds = plan.preds
    for tid in plan.order:
        ps = preds[tid]
        if ps:
            p = max(ps, key=finish.__getitem__)
            via[tid] = p
            finish[tid] = finish[p] + cost_of[tid]
        else:
            finish[tid] = cost_of[tid]
    chain = []
    tid = max(range(n), key=finish.__getitem__) if n else -1
    while tid >= 0:
        chain.append(tid)
        tid = via[tid]
    return chain


def _schedule(
    plan: Plan, policy: Policy, costs: _Costs, cost_of: list[float]
) -> tuple[float, dict]:
    """The makespan, and the same as terms: ``{record key: coefficient}`` (see
    :meth:`_Costs.record_key`) such that the coefficients times those records' costs sum to it
    (the critical-path view of :mod:`wpsim.breakdown`)."""
    w = plan.workload
    name = policy.name
    if name == "sequential" or costs.n_groups == 1:
        return sum(cost_of), costs.all_terms()
    simple_grid = (
        plan.granularity == "cell"
        and w.streams == 1
        and w.phase == "inference"
        and not w.bidirectional
        and w.output == "none"
        and name in ("wavefront", "pipeline", "helper")
        and costs.info.all_cells
    )
    if simple_grid:
        n = w.n_chunks(plan.chunk)
        steady, cold_extra = [], 0.0
        terms: dict[tuple, float] = {}
        key_of = costs.record_key
        steady_tids = []
        for layer in range(w.layers):
            row = cost_of[layer * n : (layer + 1) * n]
            steady.append(max(row[1:]) if n > 1 else row[0])
            steady_tids.append(layer * n + (row.index(steady[-1], 1) if n > 1 else 0))
            cold_extra += max(
                0.0, row[0] - steady[-1]
            )  # chunk 0 of every layer is on the fill path
            if row[0] > steady[-1]:  # the cold task in place of a steady one
                for tid, sign in ((layer * n, 1.0), (steady_tids[-1], -1.0)):
                    terms[key_of(tid)] = terms.get(key_of(tid), 0.0) + sign
        for layer, coefficient in _band_terms(steady, n, costs.n_groups):
            key = key_of(steady_tids[layer])
            terms[key] = terms.get(key, 0.0) + coefficient
        return _band_makespan(steady, n, costs.n_groups) + cold_extra, terms
    key = getattr(costs, "cost_key", None)
    memo = costs.info.critical_paths
    critical = memo.get(key) if key is not None else None
    if critical is None:
        critical = _critical_path_s(plan, cost_of)
        if key is not None and len(memo) < 1024:
            memo[key] = critical
    work = sum(cost_of) / costs.n_groups
    if work > critical:  # bound by the work: all tasks, spread over the groups
        terms = {k: count / costs.n_groups for k, count in costs.all_terms().items()}
        return max(work, critical), terms
    chains = costs.info.critical_chains
    terms = chains.get(key) if key is not None else None
    if terms is None:
        terms = {}
        for tid in _critical_chain(plan, cost_of):
            terms[costs.record_key(tid)] = terms.get(costs.record_key(tid), 0.0) + 1.0
        if key is not None and len(chains) < 256:
            chains[key] = terms
    return max(work, critical), terms


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
    :func:`wpsim.sim.engine.simulate`.

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> m = load_machine(resolve_machine_path("xeon8160_2s"))
    >>> w = Workload(cell="lstm", layers=4, hidden=256, input=256, seq_len=48)
    >>> r = predict(w, m, "wavefront", cores=4, cost="ideal")
    >>> round(r.speedup, 3)  # 4 x 48 tasks in 4 + 48 - 1 steps
    3.765
    """
    from wpsim.sim.options import prepare_run

    machine, policy = prepare_run(machine, policy, cores, cost)
    machine_key = machine.model_dump_json(exclude={"sockets", "cores_per_socket"})
    makespan, n_tasks, dram, (critical, core_s) = _predict_makespan(
        workload, machine, policy, chunk, granularity, cost, machine_key, why=True
    )
    sequential_s = _sequential_s(
        workload, machine, policy.instances, chunk, granularity, cost, machine_key
    )
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
        breakdown_s=critical,
        core_breakdown_s=breakdown.spread(core_s, machine.total_cores, makespan),
    )


def _sequential_s(workload, machine, instances, chunk, granularity, cost, machine_key) -> float:
    """The one-core baseline, memoised.

    The ``sequential`` policy runs on core 0 alone, so its makespan does not depend on the
    machine's ``sockets`` or ``cores_per_socket``: the key is the workload, the rest of the
    machine and the graph options.
    """
    key = (workload, machine_key, instances, chunk, granularity, cost)
    hit = _SEQUENTIAL_CACHE.get(key)
    if hit is None:
        sequential = get_policy("sequential", instances=instances)
        hit = _predict_makespan(
            workload, machine, sequential, chunk, granularity, cost, machine_key
        )
        _SEQUENTIAL_CACHE[key] = hit
        while len(_SEQUENTIAL_CACHE) > _SEQUENTIAL_CACHE_SIZE:
            _SEQUENTIAL_CACHE.popitem(last=False)
    else:
        _SEQUENTIAL_CACHE.move_to_end(key)
    return hit[0]


def _predict_makespan(
    workload,
    machine,
    policy,
    chunk,
    granularity,
    cost,
    machine_key: str | None = None,
    in_multiprogram: bool = False,
    why: bool = False,
) -> tuple[float, int, float, tuple[dict, dict] | None]:
    """(makespan, tasks, DRAM bytes, and with ``why``: the makespan by cause along the critical
    path and the core-seconds by cause of all tasks, see :mod:`wpsim.breakdown`)."""
    info = _plan_info(workload, granularity, policy.graph_options(workload, chunk))
    plan = info.plan
    groups = policy.core_groups(machine.total_cores)
    if policy.name == "multiprogram":
        n = policy.instances
        sizes = [sum(1 for g in range(len(groups)) if g * n // len(groups) == i) for i in range(n)]
        single = get_policy("wavefront", helpers=policy.helpers)
        worst, dram = 0.0, 0.0
        critical, busy = None, None
        for size in sorted(set(sizes)):
            sub = machine.with_cores(size * len(groups[0]))
            makespan, _, instance_dram, instance_why = _predict_makespan(
                workload, sub, single, chunk, granularity, cost, in_multiprogram=True, why=why
            )
            if makespan > worst or critical is None:  # the slowest instance sets the makespan
                critical = instance_why[0] if why else None
            worst = max(worst, makespan)
            dram += instance_dram * sizes.count(size)
            if why:
                busy = busy or dict.fromkeys(instance_why[1], 0.0)
                for cause, seconds in instance_why[1].items():
                    busy[cause] += seconds * sizes.count(size)
        return worst, plan.n_tasks, dram, (critical, busy) if why else None
    if machine_key is None:
        machine_key = machine.model_dump_json(exclude={"sockets", "cores_per_socket"})
    model = info.cost_model(machine, machine_key)
    # one group runs in an order fixed in advance, unless it is one instance among several
    sequence = len(groups) == 1 and not in_multiprogram
    costs = _Costs(
        machine,
        plan,
        policy,
        groups,
        ideal=(cost == "ideal"),
        info=info,
        model=model,
        sequence=sequence,
    )
    handoff = policy.name not in ("sequential",) and costs.n_groups > 1
    cost_of = costs.all_task_costs(handoff)
    dram = 0.0
    if cost != "ideal":
        # a set of weight blocks streamed from DRAM is read by all its tasks, otherwise by the
        # cold first one only (whole byte counts: the sum is exact in any order)
        for weights, size, count in zip(
            info.weight_sets, info.weight_set_bytes, info.weight_set_count, strict=True
        ):
            level = costs.level.get(weights, (DRAM, None))[0]
            dram += size * count if level == DRAM else size
    makespan, terms = _schedule(plan, policy, costs, cost_of)
    if not why:
        return makespan, plan.n_tasks, dram, None
    levels = [c.name for c in machine.caches] + [DRAM]
    parts: dict = {}  # each record's parts, for both views
    critical = breakdown.from_terms(terms, costs.record, levels, memo=parts)
    core_s = breakdown.from_terms(costs.all_terms(), costs.record, levels, costs.k, parts)
    return makespan, plan.n_tasks, dram, (critical, core_s)


__all__ = ["predict"]
