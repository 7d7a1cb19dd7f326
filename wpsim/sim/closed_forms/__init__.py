"""Closed-form makespan for every policy (fast what-if sweeps), without building the graph.

The analytic model uses the simulator's cost formulas (:mod:`wpsim.cost.cpu`) but replaces the
event-by-event cache state with each policy's steady state, and the schedule with closed forms.
It never builds the task graph: :mod:`wpsim.sim.closed_forms.tasks` derives the graph's classes of equal
tasks from the workload, :mod:`wpsim.sim.closed_forms.costs` costs each class once, and
:mod:`wpsim.sim.closed_forms.path` finds the longest path through the layer x time grid in time
independent of the sequence length. Everything is evaluated for a block of points at once
(:func:`predict_many`); :func:`predict` is a block of one.

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
* any other graph (bidirectional, training, output layer): ``max(work / G, critical path)``
  with the critical path from the per-task costs, exact when ``G`` is at least the widest
  wavefront and a lower bound otherwise;
* ``multiprogram``: the slowest instance on its block of groups.

The op granularity is not modelled in closed form (``predict`` says so; ``simulate`` runs it):
its ops of one step sit on every third or fourth wavefront, so the live set the residency needs
is not a property of intervals of wavefronts as it is for cells.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from wpsim import breakdown
from wpsim.cost.base import DRAM
from wpsim.errors import ConfigError
from wpsim.machines.cpu import CpuMachine
from wpsim.model.workload import Workload
from wpsim.policies import Policy, get_policy
from wpsim.result import Result
from wpsim.sim.closed_forms.costs import BlockCosts, Floats, Ints, Placement, SlotKey
from wpsim.sim.closed_forms.path import Grid, RowFn, Why
from wpsim.sim.closed_forms.tasks import Sizes, TaskSet, chunk_shape, fill_live, structure, task_set
from wpsim.sim.closed_forms.tasks import vertical as _vertical

#: A block's break-downs by cause: along the critical path, and of the cores' time.
Breakdowns = tuple[dict[str, float], dict[str, float]]
#: What a one-core baseline gave, by (workload, chunk, cores a socket, ...): seconds, error.
Baselines = dict[tuple[Hashable, ...], tuple[float, Exception | None]]


def band_makespan(layer_costs: list[float], chunks: int, groups: int) -> float:
    """Bands of ``groups`` layers: each full band ``n * max``, the last ``(len - 1 + n) * max``."""
    if groups >= min(len(layer_costs), chunks):
        return sum(layer_costs) + (chunks - 1) * max(layer_costs)
    bands = [layer_costs[i : i + groups] for i in range(0, len(layer_costs), groups)]
    full = sum(chunks * max(band) for band in bands[:-1])
    last = bands[-1]
    return full + (len(last) - 1 + chunks) * max(last)


def band_terms(layer_costs: list[float], chunks: int, groups: int) -> list[tuple[int, float]]:
    """:func:`band_makespan` as ``(layer, coefficient)`` terms: the sum of ``coefficient *
    layer_costs[layer]`` is the makespan (each band's slowest layer, the first of equals).

    Examples
    --------
    >>> band_terms([1.0, 3.0, 2.0], chunks=4, groups=3)  # 1 + 3 + 2 + (4 - 1) * 3
    [(0, 1.0), (1, 1.0), (2, 1.0), (1, 3.0)]
    >>> band_terms([1.0, 3.0, 2.0], chunks=4, groups=2)  # 4 * 3, then (1 - 1 + 4) * 2
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


def _band_array(steady: list[Floats], n: Floats, groups: Floats) -> Floats:
    """:func:`band_makespan` at each point (the same operations in the same order)."""
    out = np.zeros(n.shape)
    n_layers = len(steady)
    for g in np.unique(groups):
        at = groups == g
        costs = [c[at] for c in steady]
        chunks = n[at]
        whole = 0.0
        for c in costs:
            whole = whole + c
        top = costs[0]
        for c in costs[1:]:
            top = np.maximum(top, c)
        one_band = whole + (chunks - 1) * top
        bands = [costs[i : i + int(g)] for i in range(0, n_layers, int(g))]
        full = 0.0
        for band in bands[:-1]:
            full = full + chunks * _max(band)
        banded = full + (len(bands[-1]) - 1 + chunks) * _max(bands[-1])
        out[at] = np.where(g >= np.minimum(n_layers, chunks), one_band, banded)
    return out


def _max(values: list[Floats]) -> Floats:
    top = values[0]
    for value in values[1:]:
        top = np.maximum(top, value)
    return top


# ---- a block of points -------------------------------------------------------------------------


@dataclass
class Predictions:
    """:func:`predict_many`'s answer: arrays over the points, and the points that failed."""

    makespan_s: Floats
    sequential_s: Floats
    n_tasks: Floats
    dram_bytes: Floats
    utilization: Floats
    cores: Ints
    errors: dict[int, Exception] = field(default_factory=dict)
    why: Breakdowns | None = None  # a block of one: (critical path, core-seconds)


@dataclass
class _Part:
    """What :func:`_evaluate` gives for some points."""

    makespan: Floats
    n_tasks: Floats
    dram: Floats
    why: Breakdowns | None = None


def predict_many(
    workloads: Sequence[Workload],
    machine: CpuMachine,
    policy: Policy | str,
    cores: Sequence[int | None] | None = None,
    chunks: Sequence[int] | None = None,
    granularity: str = "cell",
    cost: str = "model",
    baselines: Baselines | None = None,
) -> Predictions:
    """:func:`predict` for many points at once: point ``i`` is ``workloads[i]`` on
    ``cores[i]`` cores with ``chunks[i]`` steps per task, all under one policy and machine
    (numpy arrays of every number over the points; the points sharing a graph structure are
    evaluated together). A point whose options fail (more helpers than cores, cores that are
    not whole sockets...) is in ``errors`` with its one-line error; its numbers are nan.

    ``baselines``: a dict the caller passes to the calls of one machine (other policies,
    the same workload objects, kept alive meanwhile) so that they share the one-core baselines
    (:func:`_sequential`) instead of evaluating them again for each policy.

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> m = load_machine(resolve_machine_path("xeon8160_2s"))
    >>> w = Workload(cell="lstm", layers=4, hidden=256, input=256, seq_len=48)
    >>> p = predict_many([w] * 3, m, "wavefront", cores=[1, 4, 16], cost="ideal")
    >>> [round(float(s), 3) for s in p.sequential_s / p.makespan_s]
    [1.0, 3.765, 3.765]
    """
    if cost not in ("model", "ideal"):
        raise ConfigError(f"--cost: got {cost!r}, expected 'model' or 'ideal'")
    if not isinstance(machine, CpuMachine):
        raise ConfigError(f"machine '{machine.name}' is a {machine.kind}; use its own policies")
    if isinstance(policy, str):
        policy = get_policy(policy)
    n_points = len(workloads)
    cores = [None] * n_points if cores is None else list(cores)
    chunks = [1] * n_points if chunks is None else list(chunks)
    errors: dict[int, Exception] = {}
    # the machine cut to each distinct number of cores, or why it cannot be
    cut: dict[int | None, CpuMachine | ConfigError] = {}
    for c in dict.fromkeys(cores):
        try:
            cut[c] = machine.with_cores(c) if c is not None else machine
        except ConfigError as error:
            cut[c] = error
    machines = list(map(cut.__getitem__, cores))
    if any(isinstance(m, ConfigError) for m in cut.values()):
        errors.update((i, m) for i, m in enumerate(machines) if isinstance(m, ConfigError))
    ok = [i for i in range(n_points) if i not in errors] if errors else list(range(n_points))
    # the machines of the points in ok, in order
    usable = [m for m in machines if isinstance(m, CpuMachine)] if errors else machines
    total_of = {c: m.total_cores if isinstance(m, CpuMachine) else 0 for c, m in cut.items()}
    total = np.array(list(map(total_of.__getitem__, cores)), dtype=np.int64)

    def nan() -> Floats:
        return np.full(n_points, np.nan)

    out = Predictions(nan(), nan(), nan(), nan(), nan(), total, errors)
    if not ok:
        return out
    ok_workloads = [workloads[i] for i in ok] if errors else list(workloads)
    ok_chunks = [chunks[i] for i in ok] if errors else chunks
    part = _evaluate(
        ok_workloads,
        cast(list[CpuMachine], usable),
        policy,
        ok_chunks,
        granularity,
        cost,
        errors,
        ok,
        why=n_points == 1,
    )
    seq = _sequential(
        ok_workloads,
        cast(list[CpuMachine], usable),
        policy.instances,
        ok_chunks,
        granularity,
        cost,
        errors,
        ok,
        {} if baselines is None else baselines,
    )
    at = np.array(ok)
    out.makespan_s[at] = part.makespan
    out.n_tasks[at] = part.n_tasks
    out.dram_bytes[at] = part.dram
    out.sequential_s[at] = seq
    with np.errstate(invalid="ignore", divide="ignore"):
        busy = seq / (part.makespan * total[at])
    out.utilization[at] = np.where(part.makespan > 0, np.minimum(1.0, busy), 0.0)
    for i in errors:
        for array in (
            out.makespan_s,
            out.sequential_s,
            out.n_tasks,
            out.dram_bytes,
            out.utilization,
        ):
            array[i] = np.nan
    out.why = part.why
    return out


def _sequential(
    workloads: list[Workload],
    machines: list[CpuMachine],
    instances: int,
    chunks: list[int],
    granularity: str,
    cost: str,
    errors: dict[int, Exception],
    index: list[int],
    known: Baselines,
) -> Floats:
    """The one-core baseline at each point: the ``sequential`` policy on core 0, which depends
    on the machine only through its cores per socket (whether one core is a whole socket), so
    it is evaluated once per distinct (workload, chunk, that); ``known`` holds those already
    evaluated (by earlier calls on the same machine), as (seconds, error or None). An error
    is recorded for the first point of its kind in this call, as if evaluated here."""
    sequential = get_policy("sequential", instances=instances)
    socket_cores = {key: m.socket_cores for key, m in {id(m): m for m in machines}.items()}
    # each point's (workload, chunk, cores a socket), numbered in order of first appearance
    local = zip(
        map(id, workloads), chunks, map(socket_cores.__getitem__, map(id, machines)), strict=True
    )
    number: dict[tuple[int, int, int], int] = {}
    which = np.array([number.setdefault(key, len(number)) for key in local], dtype=int)
    first = np.unique(which, return_index=True)[1].tolist()  # each one's first point
    keys = [(*key, instances, granularity, cost) for key in number]
    todo = [j for j, key in enumerate(keys) if key not in known]
    if todo:
        new_errors: dict[int, Exception] = {}
        part = _evaluate(
            [workloads[first[j]] for j in todo],
            [machines[first[j]] for j in todo],
            sequential,
            [chunks[first[j]] for j in todo],
            granularity,
            cost,
            new_errors,
            list(range(len(todo))),
        )
        for t, j in enumerate(todo):
            known[keys[j]] = (float(part.makespan[t]), new_errors.get(t))
    for j, key in enumerate(keys):
        error = known[key][1]
        if error is not None:
            errors.setdefault(index[first[j]], error)
    return np.array([known[key][0] for key in keys])[which]


def _evaluate(
    workloads: list[Workload],
    machines: list[CpuMachine],
    policy: Policy,
    chunks: list[int],
    granularity: str,
    cost: str,
    errors: dict[int, Exception],
    index: list[int],
    why: bool = False,
    in_multiprogram: bool = False,
) -> _Part:
    """(makespan, tasks, DRAM bytes) of ``policy`` at each point (``index``: the points'
    numbers, to record errors under); ``why``: a block of one also gets its break-downs."""
    n_points = len(workloads)
    part = _Part(np.full(n_points, np.nan), np.full(n_points, np.nan), np.full(n_points, np.nan))
    # each point's machine by its number among the distinct ones (in order of first appearance)
    number: dict[int, int] = {}
    machine_of = np.array([number.setdefault(id(m), len(number)) for m in machines], dtype=int)
    distinct_machines = list({id(m): m for m in machines}.values())
    # the policy's groups by number of cores, or why it has none (per distinct machine: a
    # block repeats them)
    groups_of: dict[int, list[tuple[int, ...]]] = {}
    refused: dict[int, ConfigError] = {}
    groups_at: dict[int, list[tuple[int, ...]]] = {}  # by the machine's id
    for m in distinct_machines:
        cores = m.total_cores
        if cores not in groups_of and cores not in refused:
            try:
                groups_of[cores] = policy.core_groups(cores)
            except ConfigError as error:
                refused[cores] = error
        if cores in groups_of:
            groups_at[id(m)] = groups_of[cores]
    usable = np.array([id(m) in groups_at for m in distinct_machines])[machine_of]
    for i in np.flatnonzero(~usable).tolist():
        errors.setdefault(index[i], refused[machines[i].total_cores])
    valid: list[int] = np.flatnonzero(usable).tolist()
    if policy.name == "multiprogram":
        return _multiprogram(
            workloads,
            machines,
            policy,
            chunks,
            granularity,
            cost,
            errors,
            index,
            valid,
            groups_of,
            part,
            why,
        )
    # blocks of points with one graph structure and one shape of chunking, found once per
    # distinct (workload, chunk): a block repeats them over the machines
    pairs = zip(
        map(id, map(workloads.__getitem__, valid)), map(chunks.__getitem__, valid), strict=True
    )
    pair_number: dict[tuple[int, int], int] = {}
    pair_of = np.array([pair_number.setdefault(p, len(pair_number)) for p in pairs], dtype=int)
    block_number: dict[tuple[Hashable, ...], int] = {}
    workload_number: dict[int, int] = {}
    opts_of: list[dict[str, Any]] = []  # by pair
    block_of, workload_of = [], []  # by pair
    for j in np.unique(pair_of, return_index=True)[1].tolist():  # each pair's first point
        workload, chunk = workloads[valid[j]], chunks[valid[j]]
        opts = policy.graph_options(workload, chunk)
        n = -(-workload.seq_len // opts.get("chunk", 1))
        key = (
            structure(workload),
            opts.get("hoist_input") is not None,
            opts.get("instances", 1),
            min(n, 3),
        )
        opts_of.append(opts)
        block_of.append(block_number.setdefault(key, len(block_number)))
        workload_of.append(workload_number.setdefault(id(workload), len(workload_number)))
    distinct_workloads = list({id(w): w for w in map(workloads.__getitem__, valid)}.values())
    chunk_of = np.array([opts.get("chunk", 1) for opts in opts_of], dtype=float)
    hoist_of = np.array([opts.get("hoist_input", np.nan) for opts in opts_of], dtype=float)
    block_at = np.array(block_of, dtype=int)[pair_of]
    valid_at = np.array(valid, dtype=int)
    for block in range(len(block_number)):
        at = np.flatnonzero(block_at == block)  # the block's points, among the valid ones
        members = valid_at[at]
        pair_at = pair_of[at]
        used_workloads, workload_at = np.unique(np.array(workload_of)[pair_at], return_inverse=True)
        used_machines, machine_at = np.unique(machine_of[members], return_inverse=True)
        block_machines = [distinct_machines[u] for u in used_machines.tolist()]
        hoisted = opts_of[int(pair_at[0])].get("hoist_input") is not None
        try:
            makespan, n_tasks, dram, block_why = _evaluate_block(
                [distinct_workloads[u] for u in used_workloads.tolist()],
                workload_at,
                block_machines,
                machine_at,
                [groups_at[id(m)] for m in block_machines],
                chunk_of[pair_at],
                hoist_of[pair_at] if hoisted else None,
                opts_of[int(pair_at[0])].get("instances", 1),
                policy,
                granularity,
                cost,
                why,
                in_multiprogram,
            )
        except ConfigError as error:
            for i in members.tolist():
                errors.setdefault(index[i], error)  # (the first error a point meets)
            continue
        part.makespan[members], part.n_tasks[members], part.dram[members] = makespan, n_tasks, dram
        part.why = block_why
    return part


def _multiprogram(
    workloads: list[Workload],
    machines: list[CpuMachine],
    policy: Policy,
    chunks: list[int],
    granularity: str,
    cost: str,
    errors: dict[int, Exception],
    index: list[int],
    valid: list[int],
    groups_of: dict[int, list[tuple[int, ...]]],
    part: _Part,
    why: bool,
) -> _Part:
    """The slowest of the instances, each a wavefront on its block of groups (of ``n``
    instances, group g goes to instance ``g * n // G``)."""
    n = policy.instances
    single = get_policy("wavefront", helpers=policy.helpers)
    # sizes of the instances' blocks of groups, by point
    sizes_of = {}
    for i in valid:
        groups = groups_of[machines[i].total_cores]
        G = len(groups)
        sizes = [sum(1 for g in range(G) if g * n // G == j) for j in range(n)]
        sizes_of[i] = (sizes, len(groups[0]))
    # n_tasks: the multiprogram graph (all instances)
    tasks_of: dict[int, float] = {}
    for i in valid:
        opts = policy.graph_options(workloads[i], chunks[i])
        ts = task_set(
            [workloads[i]],
            np.array([opts.get("chunk", 1)]),
            None,
            opts.get("instances", 1),
            granularity,
        )
        tasks_of[i] = float(ts.n_tasks[0])
    worst = {i: 0.0 for i in valid}
    dram = {i: 0.0 for i in valid}
    critical: dict[int, dict[str, float] | None] = {}  # the slowest instance's path
    busy: dict[int, dict[str, float]] = {}  # all instances' core-seconds
    subs: dict[tuple[int, int], CpuMachine | ConfigError] = {}
    # every distinct size of every point, ascending (as the instances are visited)
    for rank in range(2):
        todo = []
        for i in valid:
            distinct = sorted(set(sizes_of[i][0]))
            if rank < len(distinct):
                todo.append((i, distinct[rank]))
        if not todo:
            break
        sub_machines: list[CpuMachine] = []
        members: list[tuple[int, int]] = []
        for i, size in todo:
            key = (id(machines[i]), size * sizes_of[i][1])
            if key not in subs:
                try:
                    subs[key] = machines[i].with_cores(size * sizes_of[i][1])
                except ConfigError as error:
                    subs[key] = error
            made = subs[key]
            if isinstance(made, ConfigError):
                errors.setdefault(index[i], made)
                continue
            sub_machines.append(made)
            members.append((i, size))
        if not members:
            continue
        sub_errors: dict[int, Exception] = {}
        sub = _evaluate(
            [workloads[i] for i, _ in members],
            sub_machines,
            single,
            [chunks[i] for i, _ in members],
            granularity,
            cost,
            sub_errors,
            list(range(len(members))),
            why=why,
            in_multiprogram=True,
        )
        for j, (i, size) in enumerate(members):
            if j in sub_errors:
                errors.setdefault(index[i], sub_errors[j])
                continue
            makespan = float(sub.makespan[j])
            count = sizes_of[i][0].count(size)
            if makespan > worst[i] or i not in critical:  # the slowest instance sets it
                critical[i] = sub.why[0] if sub.why else None
            worst[i] = max(worst[i], makespan)
            dram[i] += float(sub.dram[j]) * count
            if sub.why:
                acc = busy.setdefault(i, dict.fromkeys(sub.why[1], 0.0))
                for cause, seconds in sub.why[1].items():
                    acc[cause] += seconds * count
    for i in valid:
        if index[i] in errors:
            continue
        part.makespan[i], part.n_tasks[i], part.dram[i] = worst[i], tasks_of[i], dram[i]
        path = critical.get(i)
        if why and path is not None:
            part.why = (path, busy[i])
    return part


def _evaluate_block(
    workloads: list[Workload],
    workload_of: Ints,
    machines: list[CpuMachine],
    machine_of: Ints,
    groups: list[list[tuple[int, ...]]],
    chunk: Floats,
    hoist_input: Floats | None,
    instances: int,
    policy: Policy,
    granularity: str,
    cost: str,
    why: bool,
    in_multiprogram: bool,
) -> tuple[Floats, Floats, Floats, Breakdowns | None]:
    """One block: the same graph structure and shape of chunking at every point: (makespan,
    tasks, DRAM bytes) at each point, and a block of one's break-downs with ``why``. Point
    ``i`` is ``workloads[workload_of[i]]`` on ``machines[machine_of[i]]`` (whose core groups
    are ``groups[machine_of[i]]``) with the graph options ``chunk[i]``, ``hoist_input[i]`` and
    ``instances``."""
    sizes = Sizes(workloads, workload_of)
    ts = task_set(workloads, chunk, hoist_input, instances, granularity, sizes)
    fill_live(ts, sizes)
    # each distinct machine (and its core groups) once, then spread over the points

    def spread(values: list[float]) -> np.ndarray:
        return np.array(values, dtype=float)[machine_of]

    distinct = list(zip(machines, groups, strict=True))
    at = Placement(
        cores=spread([m.total_cores for m, _ in distinct]),
        cores_per_socket=spread([m.cores_per_socket for m, _ in distinct]),
        socket_cores=spread([m.socket_cores for m, _ in distinct]),
        k=spread([len(gs[0]) for _, gs in distinct]),
        groups=spread([len(gs) for _, gs in distinct]),
        first_cores={m.total_cores: [g[0] for g in gs] for m, gs in distinct},
        machine=machine_of,
    )
    G = at.groups
    sequence = (G == 1) & (not in_multiprogram)
    machine = machines[int(machine_of[0])]  # (the first point's)
    costs = BlockCosts(machine, sizes, ts, at, policy.name, sequence, cost == "ideal")
    handoff = (policy.name != "sequential") & (G > 1)
    track = why and len(chunk) == 1
    by_slot, task_costs = costs.costs(handoff, track)
    cost_of = [[by_slot[(r, s)] for s in range(len(row.slots))] for r, row in enumerate(ts.rows)]
    records = {key: (float(by_slot[key][0]), cost) for key, cost in task_costs.items()}
    dram = np.zeros(chunk.shape)
    if cost != "ideal":
        # a set of weight blocks streamed from DRAM is read by all its tasks, otherwise by the
        # cold first one only
        for ws, (level, _bw) in zip(ts.weight_sets, costs.level, strict=True):
            dram = dram + np.where(level < 0, ws.size * ws.count, ws.size)
    makespan, terms = schedule_makespan(ts, policy, G, cost_of, track)
    block_why = None
    if track:
        levels = [c.name for c in machine.caches] + [DRAM]
        parts: dict[SlotKey, dict[str, float]] = {}
        all_terms = every_task_terms(ts)
        block_why = (
            breakdown.from_terms(terms, records.__getitem__, levels, memo=parts),
            breakdown.from_terms(all_terms, records.__getitem__, levels, float(at.k[0]), parts),
        )
    return makespan, ts.n_tasks, dram, block_why


def every_task_terms(ts: TaskSet) -> dict[tuple[int, int], float]:
    """Every task once: ``{(row, slot): number of tasks}`` (a block of one)."""
    return {
        (r, s): float(slot.count[0])
        for r, row in enumerate(ts.rows)
        for s, slot in enumerate(row.slots)
        if slot.count[0]
    }


def schedule_makespan(
    ts: TaskSet, policy: Policy, G: Floats, cost_of: list[list[Floats]], track: bool
) -> tuple[Floats, dict[SlotKey, float]]:
    """The makespan at each point, and with ``track`` the same as terms ``{(row, slot):
    coefficient}`` such that the coefficients times those classes' costs sum to it (the
    critical-path view of :mod:`wpsim.breakdown`)."""
    total: Floats = np.zeros(G.shape)
    for row, row_costs in zip(ts.rows, cost_of, strict=True):
        for slot, seconds in zip(row.slots, row_costs, strict=True):
            total = total + np.where(slot.count > 0, slot.count * seconds, 0.0)
    one_group = (G == 1) | (policy.name == "sequential")
    if bool(np.all(one_group)):
        return total, every_task_terms(ts) if track else {}
    n = ts.n
    # the layer x time grid of one unidirectional inference (several instances share the
    # groups: the critical path and the work decide, as for any other graph)
    simple_grid = (
        ts.all_cells
        and policy.name in ("wavefront", "pipeline", "helper")
        and all(row.chain == "forward" and row.key[0] == 0 for row in ts.rows)
        and len({row.key for row in ts.rows}) == len(ts.rows)  # one stream
    )
    terms: dict[SlotKey, float] = {}
    if simple_grid:
        shape = int(chunk_shape(n)[0])
        steady: list[Floats] = []
        steady_slot: list[int] = []
        cold_extra: Floats = np.zeros(G.shape)
        for row_costs in cost_of:
            first, mid, last = row_costs
            if shape == 1:
                value, which = first, 0
            elif shape == 2:
                value, which = last, 2
            else:
                value = np.maximum(mid, last)
                which = 1 if float(mid[0]) == float(value[0]) else 2
            steady.append(value)
            steady_slot.append(which)
            cold_extra = cold_extra + np.maximum(0.0, first - value)
        makespan = _band_array(steady, n, G) + cold_extra
        if track:
            for layer, (row_costs, which) in enumerate(zip(cost_of, steady_slot, strict=True)):
                if float(row_costs[0][0]) > float(steady[layer][0]):  # the cold task in place
                    for key, sign in (((layer, 0), 1.0), ((layer, which), -1.0)):
                        terms[key] = terms.get(key, 0.0) + sign
            band = band_terms([float(c[0]) for c in steady], int(n[0]), int(G[0]))
            for layer, coefficient in band:
                key = (layer, steady_slot[layer])
                terms[key] = terms.get(key, 0.0) + coefficient
    else:
        critical, chain = _critical_path(ts, cost_of, track)
        work = total / G
        makespan = np.maximum(work, critical)
        if track:
            if float(work[0]) > float(critical[0]):  # bound by the work: all tasks, spread
                terms = {key: count / float(G[0]) for key, count in every_task_terms(ts).items()}
            else:
                terms = chain
    if track and bool(one_group[0]):
        terms = every_task_terms(ts)
    return np.where(one_group, total, makespan), terms


def _critical_path(
    ts: TaskSet, cost_of: list[list[Floats]], track: bool
) -> tuple[Floats, dict[SlotKey, float]]:
    """The longest path through the task graph at each point (:mod:`wpsim.sim.closed_forms.path`),
    and with ``track`` its tasks as ``{(row, slot): count}`` (the first of equal paths)."""
    from wpsim.sim.closed_forms.tasks import topological_order

    grid = Grid(ts.n, track=track)
    chains: dict[int, RowFn] = {}  # the finish times of a row of several tasks
    singles: dict[int, tuple[Floats, Why | None]] = {}  # (finish time, why) of a single task
    rows = ts.rows

    def finish(r: int) -> tuple[Floats, Why | None]:
        """The latest finish of row ``r``'s tasks."""
        return grid.row_max(chains[r]) if r in chains else singles[r]

    for r in topological_order([(row.same, row.const, row.whole) for row in rows]):
        row = rows[r]
        keys = ((r, 0), (r, 1), (r, 2))
        if row.chain == "single":
            candidates = [finish(p) for p in row.whole]
            start, start_why = grid.best(candidates) if candidates else (0.0 * ts.n, _root(track))
            singles[r] = (start + cost_of[r][0], _extend(start_why, (r, 0)))
            continue
        consts = [singles[p] for p in row.const]
        v = _vertical(
            grid, [chains[p] for p in row.same], [c[0] for c in consts], [c[1] for c in consts]
        )
        costs = tuple(cost_of[r])
        if row.chain == "none":
            chains[r] = grid.add(v, costs, keys)
        else:
            chains[r] = grid.chain(v, costs, keys, forward=row.chain == "forward")
    # the latest finish of all (the first row of equals, in task-id order)
    longest, longest_why = grid.best([finish(r) for r in range(len(rows))])
    if not track or longest_why is None:
        return longest, {}
    # (path.Why records any hashable key; the ones given here are all (row, slot))
    return longest, {cast(SlotKey, key): count for key, count in longest_why.counts().items()}


def _root(track: bool) -> Why | None:
    return Why(None, None, 0.0) if track else None


def _extend(why: Why | None, key: SlotKey) -> Why | None:
    return None if why is None else Why(why, key, 1.0)


# ---- one point ---------------------------------------------------------------------------------


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
    :func:`wpsim.sim.engine.simulate`; it builds no task graph, so its time and memory do not
    grow with the sequence length.

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> m = load_machine(resolve_machine_path("xeon8160_2s"))
    >>> w = Workload(cell="lstm", layers=4, hidden=256, input=256, seq_len=48)
    >>> r = predict(w, m, "wavefront", cores=4, cost="ideal")
    >>> round(r.speedup, 3)  # 4 x 48 tasks in 4 + 48 - 1 steps
    3.765
    >>> long = Workload(cell="lstm", layers=8, hidden=512, input=512, seq_len=100_000_000)
    >>> f"{predict(long, m, 'wavefront', cores=16).n_tasks:,}"  # in milliseconds
    '800,000,000'
    """
    from wpsim.sim.options import prepare_run

    machine, policy = prepare_run(machine, policy, cores, cost)
    p = predict_many([workload], machine, policy, [None], [chunk], granularity, cost)
    if p.errors:
        raise p.errors[0]
    makespan = float(p.makespan_s[0])
    critical, core_s = p.why if p.why is not None else ({}, {})
    extra = {"machine": machine.name, "chunk": chunk, "granularity": granularity, "cost": cost}
    # a cell the machine file's per-cell tables miss is charged by its defaults: said here
    note = machine.fallback_note(workload.calibration_key, workload.cell)
    if note and cost == "model":
        extra["note"] = note
    return Result(
        engine="analytic",
        policy=policy.describe(),
        cores=machine.total_cores,
        makespan_s=makespan,
        sequential_s=float(p.sequential_s[0]),
        n_tasks=int(p.n_tasks[0]),
        utilization=float(p.utilization[0]),
        dram_bytes=float(p.dram_bytes[0]),
        level_bytes={DRAM: float(p.dram_bytes[0])},
        extra=extra,
        breakdown_s=critical,
        core_breakdown_s=breakdown.spread(core_s, machine.total_cores, makespan),
    )


def clear_caches() -> None:
    """Forget cached live sets and workloads' numbers (results are the same; this only frees
    memory)."""
    from wpsim.sim.closed_forms.tasks import live_pattern, workload_numbers

    live_pattern.cache_clear()
    workload_numbers.cache_clear()


__all__ = ["Predictions", "predict", "predict_many"]
