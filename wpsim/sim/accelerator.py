"""Cost model, simulation and closed forms of the multi-core LSTM accelerator.

A task (one cell, or one op) on a group of ``k`` cores (``k > 1`` only in helper-core mode, where
the rows of the gate matrices are split across the group) costs::

    time = overhead + hand-off + sync + max(compute, buffer + dram_bytes / dram_share)

* ``compute = mac + vector + latency``. ``mac``: each matrix-vector product of an ``M x K``
  matrix occupies ``ceil(M/k / R) * ceil(K / C) / mac_efficiency`` cycles, where the MAC array has
  ``R = macs_per_cycle / C`` rows of ``C = dot_product_width`` MACs (quantisation: a row split
  that leaves a partial array row wastes it). A dense MAC array does not skip the zeros of a sparse
  matrix. ``vector = element-wise flops / (k * vector_lanes * clock)``. ``latency``: the MAC
  pipeline (adder tree) fill of each dependent recurrent product, ``mac_pipeline_latency_s`` per
  step.
* Weights: each core keeps an LRU of weight blocks in its weight buffer; a block (or, split over
  ``k`` helpers, core j's ``1/k`` row slice) that fits stays across steps and is read at the
  buffer's bandwidth; one that is evicted or too large streams from DRAM at every use. The first
  use of a block is a cold DRAM read, unless ``warm=True``: the weights were loaded before the
  timed run (an inference server running many sequences), so only capacity misses cost DRAM. DRAM
  bandwidth is shared by the cores streaming at the same moment (processor sharing, the engine's
  :class:`~wpsim.sim.dram.DramPool`): ``share = min(per_core, total / streams)``.
* Activations of a task beyond the activation buffer spill to DRAM (read and written once).
* ``hand-off``: inputs produced on a core outside the group cross the NoC:
  ``latency + bytes / bandwidth``.
* ``sync`` (helper groups): after each recurrent step the ``k`` cores meet at a barrier
  (``barrier_s(k)``) and all-gather the new hidden state, ``(k-1)/k * B*H*s`` bytes per core over
  the NoC; element-wise work is split too (each core owns ``H/k`` units).
* ``overhead``: the controller's per-task command issue (``task_overhead_s``).

The three modes of Peng et al. are the registered policies ``multiprogram`` (independent models
on separate cores), ``pipeline`` (layers mapped to cores, pipelined over time; "multithreading")
and ``helper`` (cores share every cell); the single-core design is ``sequential``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from wpsim import breakdown
from wpsim.cells import products
from wpsim.cost.base import DRAM, TaskCost
from wpsim.cost.caches import LRUCache
from wpsim.cost.cpu import IdealCostModel
from wpsim.errors import ConfigError
from wpsim.machines.accelerator import AcceleratorMachine
from wpsim.model.graph import Task, build
from wpsim.model.plan import Plan, compile_plan
from wpsim.model.workload import Workload
from wpsim.policies import Policy, get_policy
from wpsim.result import Result
from wpsim.sim.closed_forms.tasks import Row, Slot, TaskSet, task_set
from wpsim.trace import Trace

BUFFER = "buffer"
LEVELS = [BUFFER, DRAM, "handoff"]


Shapes = tuple[tuple[int, int], ...]


def _shapes(task: Task, w: Workload) -> tuple[Shapes | None, Shapes | None]:
    """``(M, K)`` of each input-side and of each recurrent matrix a task multiplies, from the
    cell's declaration (None: unknown)."""
    if task.kind.startswith("wgrad"):
        return None, None
    if task.layer == w.layers:  # output layer
        return ((w.output_size, w.directions * w.output_width),), None
    found = products(w.cell_declaration, w.hidden, w.layer_input_size(task.layer) or 1)
    return (
        tuple((p.rows, p.cols) for p in found if not p.recurrent) or None,
        tuple((p.rows, p.cols) for p in found if p.recurrent) or None,
    )


class AccelCostModel:
    """Task costs on an :class:`AcceleratorMachine` for one simulation (holds buffer state).

    Implements the cost-object interface of :func:`wpsim.sim.engine.run_plan`: ``start``
    and ``dram_share_Bps``.
    """

    def __init__(
        self,
        machine: AcceleratorMachine,
        plan: Plan | None,
        warm: bool = False,
        workload: Workload | None = None,
    ) -> None:
        """``plan`` None: only :meth:`task_compute_s` of ``workload`` (the closed forms)."""
        self.machine = machine
        self.warm = warm
        self.seen: list[set] = [set() for _ in range(machine.cores)]
        self.plan = plan
        w = plan.workload if plan is not None else workload
        assert w is not None, "a plan or a workload"
        self.w = w
        self.macs = machine.macs_per_core(w.dtype)
        self.array_rows = max(self.macs / machine.dot_product_width, 1.0)
        self.buffers = [LRUCache(machine.weight_buffer.size_bytes) for _ in range(machine.cores)]
        self.producer_core = [-1] * (plan.n_tasks if plan is not None else 0)
        self.state_vector_bytes = w.gathered_state_bytes
        self._compute_memo: dict[tuple, float] = {}

    # ---- compute --------------------------------------------------------------------------
    def _mac_cycles(self, flops: float, shapes: Shapes | None, nnz: float, k: int) -> float:
        """Cycles of ``flops`` of products by the matrices ``shapes`` (``nnz`` entries in all),
        each split by rows over ``k`` cores and tiled onto the MAC array."""
        if not flops:
            return 0.0
        if shapes is None:  # shape unknown (weight gradients): the array at full occupancy
            return flops / 2.0 / self.macs
        products = flops / (2.0 * nnz)
        per_product = sum(
            math.ceil(math.ceil(rows / k) / self.array_rows)
            * math.ceil(cols / self.machine.dot_product_width)
            for rows, cols in shapes
        )
        return products * per_product

    def compute_s(self, tid: int, k: int) -> float:
        """MAC, vector and pipeline-latency time of task ``tid`` on ``k`` cores."""
        assert self.plan is not None, "a cost model of a plan"
        return self.task_compute_s(self.plan.tasks[tid], k)

    def task_compute_s(self, t: Task, k: int) -> float:
        """:meth:`compute_s` of a task given by its fields (those of a whole class of tasks)."""
        key = (t.kind, t.layer, t.flops_in, t.flops_rec, t.flops_elem, t.steps, t.recurrent, k)
        memo = self._compute_memo.get(key)
        if memo is not None:
            return memo
        m, w = self.machine, self.w
        in_shape, rec_shape = _shapes(t, w)
        in_nnz = sum(rows * cols for rows, cols in in_shape) if in_shape else 1.0
        cycles = self._mac_cycles(t.flops_in, in_shape, in_nnz, k)
        if t.flops_rec:
            cycles += self._mac_cycles(
                t.flops_rec, rec_shape, float(w.weight_hh_nonzeros()), k
            )  # a dense array computes the zeros of a pruned matrix too
        mac = cycles / m.mac_efficiency / m.clock_hz
        vector = t.flops_elem / (k * m.vector_lanes * m.clock_hz)
        dependent = t.steps if t.recurrent else (1 if t.flops_in else 0)
        value = mac + vector + dependent * m.mac_pipeline_latency_s
        self._compute_memo[key] = value
        return value

    # ---- one task -------------------------------------------------------------------------
    def start(self, tid: int, cores: tuple[int, ...], busy_on_socket: int) -> TaskCost:
        """Cost of ``tid`` starting now on ``cores``; updates the weight buffers."""
        m = self.machine
        plan = self.plan
        assert plan is not None, "a cost model of a plan"
        task = plan.tasks[tid]
        k = len(cores)
        # where tid's outputs will be (read by its successors only, which start after it ends)
        self.producer_core[tid] = cores[0]
        level_bytes: dict[str, float] = {}
        buffer_s = 0.0
        dram = 0.0
        for j, core in enumerate(cores):
            lru = self.buffers[core]
            core_buffer = 0.0
            core_dram = 0.0
            for key, size in task.weights:
                part = size / k
                block = key if k == 1 else (key, k, j)
                preloaded = self.warm and block not in self.seen[core] and part <= lru.capacity
                self.seen[core].add(block)
                if lru.lookup(block) or preloaded:
                    core_buffer += part
                else:
                    core_dram += part
                lru.insert(block, part)
            if core_buffer:
                level_bytes[BUFFER] = level_bytes.get(BUFFER, 0.0) + core_buffer
            if core_dram:
                level_bytes[DRAM] = level_bytes.get(DRAM, 0.0) + core_dram
            buffer_s = max(buffer_s, core_buffer / m.weight_buffer.bandwidth_Bps)
            dram = max(dram, core_dram)
        activations = (task.in_bytes + task.out_bytes) / k
        spill = max(0.0, activations - m.activation_buffer.size_bytes)
        if spill:
            dram += spill
            level_bytes[DRAM] = level_bytes.get(DRAM, 0.0) + spill * k
        handoff_bytes = 0
        for i, p in enumerate(plan.preds[tid]):
            pc = self.producer_core[p]
            if pc >= 0 and pc not in cores:
                handoff_bytes += plan.pred_bytes[tid][i]
        fixed = m.task_overhead_s
        handoff_s = sync_s = 0.0
        if handoff_bytes:
            handoff_s = m.noc.latency_s + handoff_bytes / m.noc.bandwidth_Bps
            fixed += handoff_s
        if k > 1:
            n_sync = task.steps if task.flops_rec else 1
            gather = (k - 1) / k * self.state_vector_bytes / m.noc.bandwidth_Bps
            sync_s = n_sync * (m.barrier_s(k) + gather)
            fixed += sync_s
        return TaskCost(
            fixed,
            self.compute_s(tid, k),
            buffer_s,
            dram,
            level_bytes,
            handoff_bytes,
            overhead_s=m.task_overhead_s,
            handoff_s=handoff_s,
            sync_s=sync_s,
        )

    def dram_share_Bps(self, streams: int) -> float:
        """Bandwidth one streaming core gets while ``streams`` cores stream."""
        memory = self.machine.memory
        return min(memory.per_core_bandwidth_Bps, memory.bandwidth_Bps / max(streams, 1))


# ---- simulation -----------------------------------------------------------------------------


def _plan(workload: Workload, policy: Policy, chunk: int, granularity: str) -> Plan:
    return compile_plan(
        build(workload, granularity=granularity, **policy.graph_options(workload, chunk))
    )


def _run(
    machine: AcceleratorMachine,
    plan: Plan,
    policy: Policy,
    cost: str,
    hooks: list | None = None,
    warm: bool = False,
) -> Trace:
    from wpsim.sim.engine import run_plan

    groups = policy.core_groups(machine.cores)
    model = IdealCostModel(plan) if cost == "ideal" else AccelCostModel(machine, plan, warm)
    return run_plan(plan, groups, policy, model, machine.cores, 1, LEVELS, hooks)


def sequential_time(
    machine: AcceleratorMachine,
    workload: Workload,
    chunk: int = 1,
    granularity: str = "cell",
    cost: str = "model",
    instances: int = 1,
    warm: bool = False,
) -> float:
    """The single-core design: ``sequential`` on one core (all instances, one after another)."""
    policy = get_policy("sequential", instances=instances)
    plan = _plan(workload, policy, chunk, granularity)
    return _run(machine, plan, policy, cost, warm=warm).makespan_s


def simulate(
    workload: Workload,
    machine: AcceleratorMachine,
    policy: Policy | str = "helper",
    cores: int | None = None,
    chunk: int = 1,
    granularity: str = "cell",
    cost: str = "model",
    hooks: list | None = None,
    sequential_s: float | None = None,
    warm: bool = False,
) -> Result:
    """Simulate ``workload`` on the accelerator under ``policy`` (same engine as the CPU).

    ``warm``: weights that fit were loaded before the run (only capacity misses cost DRAM); by
    default every layer's first use is a cold DRAM read, as on the CPU.

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> m = load_machine(resolve_machine_path("lstm_accel_2core"))
    >>> w = Workload(cell="lstm", layers=2, hidden=256, input=256, seq_len=50, dtype="float16")
    >>> round(simulate(w, m, "pipeline", warm=True).speedup, 2)  # weights preloaded
    1.93
    >>> round(simulate(w, m, "pipeline").speedup, 2)  # each core first loads its layer from DRAM
    1.45
    """
    policy, machine = _prepare(policy, machine, cores, cost)
    plan = _plan(workload, policy, chunk, granularity)
    trace = _run(machine, plan, policy, cost, hooks, warm)
    if sequential_s is None:
        sequential_s = sequential_time(
            machine, workload, chunk, granularity, cost, policy.instances, warm
        )
    extra = _extra(machine, workload, chunk, granularity, cost) | {"warm": warm}
    return Result.from_trace(
        trace,
        policy.describe(),
        machine.cores,
        sequential_s,
        LEVELS,
        plan.tasks,
        extra,
        dram_level=DRAM,
        preds=plan.preds,
    )


def _prepare(
    policy: Policy | str, machine: AcceleratorMachine, cores: int | None, cost: str
) -> tuple[Policy, AcceleratorMachine]:
    if isinstance(policy, str):
        policy = get_policy(policy)
    kind = getattr(policy, "machine_kind", None)
    if kind not in (None, "accelerator"):
        raise ConfigError(
            f"--policy {policy.name}: runs on a {kind} machine, not on "
            f"'{machine.name}' (an accelerator)"
        )
    if cores is not None:
        machine = machine.with_cores(cores)
    if cost not in ("model", "ideal"):
        raise ConfigError(f"--cost: got {cost!r}, expected 'model' or 'ideal'")
    return policy, machine


def _extra(
    machine: AcceleratorMachine, workload: Workload, chunk: int, granularity: str, cost: str
) -> dict[str, Any]:
    return {
        "machine": machine.name,
        "chunk": chunk,
        "granularity": granularity,
        "cost": cost,
        "weight_buffer_bytes": machine.weight_buffer.size_bytes,
        "peak_flops_per_core": machine.peak_flops_per_core(workload.dtype),
    }


# ---- closed forms ---------------------------------------------------------------------------


def _predict_makespan(
    workload: Workload,
    machine: AcceleratorMachine,
    policy: Policy,
    chunk: int,
    granularity: str,
    cost: str,
    warm: bool = False,
) -> tuple[float, float, tuple[dict, dict], int]:
    """(makespan, DRAM bytes, why, tasks) of ``policy`` from steady-state task costs; ``why``:
    the makespan by cause along the critical path, and the core-seconds of all tasks by cause
    (:mod:`wpsim.breakdown`). The graph is never built: the costs are those of its classes of
    equal tasks (:mod:`wpsim.sim.closed_forms.tasks`), the schedule that of :mod:`wpsim.sim.closed_forms`.

    Residency (per core, ``k`` cores per group, ``G`` groups): a group keeps the weights of the
    layers it runs; with one group (``sequential``, ``helper`` over all cores) one layer at a time
    must fit (layer-major order), with ``G > 1`` groups (``pipeline``, ``wavefront``) the
    ``ceil(LD/G)`` layers it interleaves must fit together (``W/k`` each), else every step
    streams, the streaming groups sharing DRAM. The first use of a layer's weights is a cold
    DRAM read (unless ``warm``). ``multiprogram``: each instance on its block of cores, the DRAM
    bandwidth divided between the instances (they stream at the same moments).
    """
    if policy.name == "multiprogram":
        n = policy.instances
        groups = policy.core_groups(machine.cores)
        sizes = [sum(1 for g in range(len(groups)) if g * n // len(groups) == i) for i in range(n)]
        inner = get_policy("wavefront", helpers=policy.helpers)
        shared_memory = machine.memory.model_copy(
            update={"bandwidth_Bps": machine.memory.bandwidth_Bps / n}
        )
        worst, dram = 0.0, 0.0
        critical: dict[str, float] = {}
        core_s: dict[str, float] = {}
        for size in sorted(set(sizes)):
            sub = machine.model_copy(update={"memory": shared_memory}).with_cores(
                size * len(groups[0])
            )
            makespan, sub_dram, (sub_critical, sub_core_s), _ = _predict_makespan(
                workload, sub, inner, chunk, granularity, cost, warm
            )
            if makespan > worst or not critical:  # the slowest instance sets the makespan
                critical = sub_critical
            worst = max(worst, makespan)
            dram += sub_dram * sizes.count(size)
            for cause, seconds in sub_core_s.items():
                core_s[cause] = core_s.get(cause, 0.0) + seconds * sizes.count(size)
        return worst, dram, (critical, core_s), _n_tasks(workload, policy, chunk, granularity)
    options = policy.graph_options(workload, chunk)
    hoist = options.get("hoist_input")
    ts = task_set(
        [workload],
        np.array([options.get("chunk", 1)]),
        None if hoist is None else np.array([hoist]),
        options.get("instances", 1),
        granularity,
    )
    groups = policy.core_groups(machine.cores)
    k, n_groups = len(groups[0]), len(groups)
    records: dict[tuple[int, int], tuple[float, TaskCost]] = {}
    cost_of: list[list[np.ndarray]] = []
    if cost == "ideal":
        for r, row in enumerate(ts.rows):
            cost_of.append([])
            for s, slot in enumerate(row.slots):
                c = float(slot.flops[0]) / (k * 1e9)
                records[(r, s)] = (c, TaskCost(0.0, c, 0.0, 0.0, {}, 0))
                cost_of[-1].append(np.array([c]))
        makespan, terms = _schedule(ts, policy, n_groups, cost_of)
        return makespan, 0.0, _why(terms, records, k, ts), int(ts.n_tasks[0])
    model = AccelCostModel(machine, None, workload=workload)
    w = workload
    # the weights of each (instance, layer, direction): its largest set of blocks
    layer_bytes: dict[tuple, float] = {}
    for weight_set in ts.weight_sets:
        layer_bytes[weight_set.key] = max(
            layer_bytes.get(weight_set.key, 0.0), float(weight_set.size[0])
        )
    capacity = machine.weight_buffer.size_bytes
    if policy.name == "sequential" or n_groups == 1:
        resident = {key: size / k <= capacity for key, size in layer_bytes.items()}
        streams = k
    else:
        keys = sorted(layer_bytes)
        home = {key: i % n_groups for i, key in enumerate(keys)}
        load = [0.0] * n_groups
        for key, nbytes in layer_bytes.items():
            load[home[key]] += nbytes / k
        resident = {key: load[home[key]] <= capacity for key in keys}
        streaming = sum(1 for g in range(n_groups) if load[g] > capacity)
        streams = k * max(1, min(streaming, w.directions * w.layers))
    dram_total = 0.0
    m = machine
    for r, row in enumerate(ts.rows):
        cost_of.append([])
        ws = ts.weight_sets[row.weight_set] if row.weight_set >= 0 else None
        for s, slot in enumerate(row.slots):
            task = _slot_task(row, slot)
            compute = model.task_compute_s(task, k)
            weight_bytes = float(ws.size[0]) if ws is not None else 0.0
            per_core = weight_bytes / k
            cold = ws is not None and slot.cold and not warm
            level = BUFFER
            count = float(slot.count[0])
            if ws is not None and (cold or not resident.get(row.key, False)):
                share = model.dram_share_Bps(k if cold else streams)
                memory = per_core / share
                dram_total += weight_bytes * count
                level = DRAM
            else:
                memory = per_core / m.weight_buffer.bandwidth_Bps
            fixed = m.task_overhead_s
            handoff_s = sync_s = 0.0
            if n_groups > 1 and slot.max_in_bytes[0] and policy.name != "sequential":
                handoff_s = m.noc.latency_s + float(slot.max_in_bytes[0]) / m.noc.bandwidth_Bps
                fixed += handoff_s
            if k > 1:
                n_sync = task.steps if task.flops_rec else 1
                gather = (k - 1) / k * model.state_vector_bytes / m.noc.bandwidth_Bps
                sync_s = n_sync * (m.barrier_s(k) + gather)
                fixed += sync_s
            seconds = fixed + max(compute, memory)
            cost_of[-1].append(np.array([seconds]))
            records[(r, s)] = (
                seconds,
                TaskCost(
                    fixed,
                    compute,
                    memory if level == BUFFER else 0.0,
                    per_core if level == DRAM else 0.0,
                    {level: per_core} if per_core else {},
                    0,
                    overhead_s=m.task_overhead_s,
                    handoff_s=handoff_s,
                    sync_s=sync_s,
                ),
            )
    makespan, terms = _schedule(ts, policy, n_groups, cost_of)
    return makespan, dram_total, _why(terms, records, k, ts), int(ts.n_tasks[0])


def _slot_task(row: Row, slot: Slot) -> Task:
    """A :class:`~wpsim.model.graph.Task` with a slot's fields (its compute time's inputs)."""
    instance, layer, direction = row.key
    return Task(
        0,
        row.kind,
        layer,
        direction,
        0,
        int(slot.steps[0]),
        float(slot.flops_in[0]),
        float(slot.flops_rec[0]),
        float(slot.flops_elem[0]),
        (),
        0,
        0,
        instance,
    )


def _n_tasks(workload: Workload, policy: Policy, chunk: int, granularity: str) -> int:
    options = policy.graph_options(workload, chunk)
    hoist = options.get("hoist_input")
    return int(
        task_set(
            [workload],
            np.array([options.get("chunk", 1)]),
            None if hoist is None else np.array([hoist]),
            options.get("instances", 1),
            granularity,
        ).n_tasks[0]
    )


def _why(terms: dict, records: dict, k: int, ts: TaskSet) -> tuple[dict, dict]:
    """The break-downs of a closed form: along the terms of its makespan, and the core-seconds
    of every task (its cost times the ``k`` cores of its group)."""
    from wpsim.sim.closed_forms import every_task_terms

    parts: dict = {}  # each class's parts, for both views
    critical = breakdown.from_terms(terms, records.__getitem__, LEVELS, memo=parts)
    core_s = breakdown.from_terms(every_task_terms(ts), records.__getitem__, LEVELS, k, parts)
    return critical, core_s


def _schedule(ts: TaskSet, policy: Policy, n_groups: int, cost_of: list) -> tuple[float, dict]:
    """The makespan, and the same as ``{(row, slot): coefficient}`` terms whose costs times
    coefficients sum to it (see :func:`wpsim.sim.closed_forms.schedule_makespan`); the ``pipeline`` policy over
    more layers than groups has its own form here (each group runs its layers one after the
    other)."""
    from wpsim.sim.closed_forms import schedule_makespan

    rows = ts.rows
    simple_grid = (
        ts.all_cells
        and all(row.chain == "forward" and row.key[0] == 0 for row in rows)
        and len({row.key for row in rows}) == len(rows)  # one stream
        and policy.instances == 1
    )
    name = policy.name
    if not (simple_grid and name == "pipeline" and len(rows) > n_groups > 1):
        makespan, terms = schedule_makespan(ts, policy, np.array([float(n_groups)]), cost_of, True)
        return float(makespan[0]), terms
    # round robin: group g runs layers g, g+G, ...; it starts when the first chunk has passed
    # layers 0..g-1 and is then busy with all chunks of its layers
    n = int(ts.n[0])
    steady, first, steady_slot = [], [], []
    for row_costs in cost_of:
        c0, mid, last = (float(c[0]) for c in row_costs)
        if n == 1:
            value, slot = c0, 0
        elif n == 2:
            value, slot = last, 2
        else:
            value = max(mid, last)
            slot = 1 if mid == value else 2
        steady.append(value)
        steady_slot.append(slot)
        first.append(c0)
    busy = [0.0] * n_groups
    for layer in range(len(rows)):
        busy[layer % n_groups] += n * steady[layer] + first[layer] - steady[layer]
    ends = [sum(first[:g]) + busy[g] for g in range(n_groups)]
    last_group = ends.index(max(ends))
    terms = {}
    for layer in range(last_group):
        terms[(layer, 0)] = terms.get((layer, 0), 0.0) + 1.0
    for layer in range(last_group, len(rows), n_groups):
        for key, coefficient in (((layer, steady_slot[layer]), n - 1.0), ((layer, 0), 1.0)):
            terms[key] = terms.get(key, 0.0) + coefficient
    return max(ends), terms


def predict(
    workload: Workload,
    machine: AcceleratorMachine,
    policy: Policy | str = "helper",
    cores: int | None = None,
    chunk: int = 1,
    granularity: str = "cell",
    cost: str = "model",
    warm: bool = False,
) -> Result:
    """Closed-form counterpart of :func:`simulate` (same :class:`~wpsim.result.Result`)."""
    policy, machine = _prepare(policy, machine, cores, cost)
    makespan, dram, (critical, core_s), n_tasks = _predict_makespan(
        workload, machine, policy, chunk, granularity, cost, warm
    )
    sequential = get_policy("sequential", instances=policy.instances)
    sequential_s = _predict_makespan(workload, machine, sequential, chunk, granularity, cost, warm)[
        0
    ]
    busy = sequential_s / (makespan * machine.cores) if makespan else 0.0
    return Result(
        engine="analytic",
        policy=policy.describe(),
        cores=machine.cores,
        makespan_s=makespan,
        sequential_s=sequential_s,
        n_tasks=n_tasks,
        utilization=min(1.0, busy),
        dram_bytes=dram,
        level_bytes={DRAM: dram},
        extra=_extra(machine, workload, chunk, granularity, cost) | {"warm": warm},
        breakdown_s=critical,
        core_breakdown_s=breakdown.spread(core_s, machine.cores, makespan),
    )
