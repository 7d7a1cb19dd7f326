"""Discrete-event simulation of a task graph under a policy (simpy).

Each core group is a small state machine on simpy events. When tasks become ready, the policy's
``assign`` picks work for idle groups and only the groups that got a task start (no thundering
herd); starting a task schedules its completion event, whose callback ends the task, releases its
successors and asks the policy for work again. (A generator process per group would need a wake
event, besides the completion, whenever another group hands it work: up to two events per task.)
A task's duration comes from the cost model; tasks that stream from DRAM share their socket's
bandwidth (:class:`~wpsim.sim.dram.DramPool`), so their completion times move whenever another streaming task
on their socket starts or ends and their share changes.

Determinism and tie-breaking: simpy processes events in (time, insertion) order. When a task
ends at time t and other events are due at t too (within rounding: :data:`SIMULTANEOUS_REL`), the
engine defers the policy's decision to the last of them, so every completion at t is seen first
and idle groups are offered to the policy in ascending group order; the policy breaks ties by its
priority (ending in task id). Of the groups it assigns work to, the one whose completion
triggered the decision starts first, then the others in the order ``assign`` returned them. Same
inputs, same trace.

Memory: one record per task (the trace) and one pending event per busy group, whatever the
simulated time.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

import simpy
from simpy.events import NORMAL, Timeout

from wpsim.cost.base import DRAM, CostModel, TaskCost
from wpsim.cost.cpu import CpuCostModel, IdealCostModel
from wpsim.machines.cpu import CpuMachine
from wpsim.model.graph import build
from wpsim.model.plan import Plan, compile_plan
from wpsim.model.workload import Workload
from wpsim.policies import Policy, get_policy
from wpsim.result import Result
from wpsim.sim.dram import DramPool
from wpsim.sim.loop import Schedule
from wpsim.sim.options import prepare_run
from wpsim.trace import Trace

TaskHook = Callable[[dict[str, Any]], None]


#: Events closer together than this fraction of the simulated time are simultaneous: the same
#: durations summed along different paths (or a DRAM stream's progress banked at a rate change)
#: differ in their last bits, and which tasks the tie rule sees together must not hang on them.
SIMULTANEOUS_REL = 1e-12


class Completion(simpy.Event):
    """The end of a group's current task (not streaming from DRAM), reused for each of its tasks.

    A group runs one task at a time and starts its next one only from this event's callback,
    once simpy has taken the event off its queue; so one event object a group suffices, and it
    saves an allocation and simpy's Timeout set-up a task. Its value is the group.
    """

    def __init__(self, env: simpy.Environment, group: int) -> None:
        super().__init__(env)
        self._ok = True
        self._value = group


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (as a ``with`` block or a decorator).

    A simulation allocates millions of short-lived objects while it keeps one record per task,
    so the collector would rescan the records again and again (a third of the run time) and find
    nothing: the engine forms no reference cycles per task.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@gc_paused()
def run_plan(
    plan: Plan,
    groups: list[tuple[int, ...]],
    policy: Policy,
    cost: CostModel,
    cores_per_socket: int,
    n_sockets: int,
    levels: list[str],
    hooks: list[TaskHook] | None = None,
) -> Trace:
    """Simulate ``plan`` on ``groups`` under ``policy`` with ``cost``; return the trace.

    A core group is a small state machine driven by simpy events: starting a task schedules one
    completion event (the group's :class:`Completion`, or the :class:`~wpsim.sim.dram.DramPool`'s timeout for a
    task that streams from DRAM) whose callback ends the task, releases its successors and asks
    the policy for more work. One event per task and no generator to resume is what keeps the
    engine fast; the garbage collector is paused meanwhile (:func:`gc_paused`).

    ``hooks`` are called at the end of every task with a dict: ``task``, ``cores``,
    ``start_s``, ``end_s``, ``level_bytes`` and ``dispatch_s`` (the dispatch overhead the cost
    model charged it).
    """
    env = simpy.Environment()
    trace = Trace(levels)
    loop = Schedule(plan, policy, groups)  # the scheduling loop shared with the executor
    n_groups = len(groups)
    socket_of_group = [cores[0] // cores_per_socket for cores in groups]
    # each group's cores by socket
    sockets_of_group = [dict(Counter(c // cores_per_socket for c in cores)) for cores in groups]
    busy_on_socket = [0] * n_sockets
    n_cores_of_group = [len(cores) for cores in groups]
    running: list[tuple[int, float, TaskCost] | None] = [None] * n_groups  # (task, start_s, cost)
    records: list[tuple] = []  # (task, cores, start_s, end_s, cost): the trace, built at the end
    pending_dispatch = [False]

    # local names: this is the hot loop
    assign = loop.assign
    end_task = loop.end
    cost_start = cost.start
    peek = env.peek
    schedule = env.schedule
    record = records.append

    def start(g: int, tid: int, now: float) -> None:
        socket = socket_of_group[g]
        tc = cost_start(tid, groups[g], busy_on_socket[socket])
        busy_on_socket[socket] += n_cores_of_group[g]
        running[g] = (tid, now, tc)
        if tc.dram_bytes:
            dram.join(g, tc, sockets_of_group[g])
        else:
            event = completions[g]
            # a tuple shared by every start (simpy types callbacks as a list; it only iterates it)
            event.callbacks = completion_callbacks  # type: ignore[assignment]
            schedule(event, NORMAL, tc.cached_s)

    def start_assigned(assigned: list[tuple[int, int]], current: int | None, now: float) -> None:
        """Start what the policy assigned, ``current``'s task first."""
        for g, tid in assigned:
            if g == current:
                start(g, tid, now)
        for g, tid in assigned:
            if g != current:
                start(g, tid, now)

    def dispatch(current: int | None, now: float) -> None:
        """Offer the idle groups to the policy and start what it assigns, ``current``'s first."""
        assigned = assign()
        if assigned:
            start_assigned(assigned, current, now)

    def deferred_dispatch(_event: simpy.Event) -> None:
        now = env.now
        due_s = peek()
        if due_s - now <= now * SIMULTANEOUS_REL:  # another event, a rounding error later
            Timeout(env, due_s - now).callbacks.append(deferred_dispatch)  # (after it)
            return
        pending_dispatch[0] = False
        dispatch(None, now)

    def end(g: int) -> None:
        """End group ``g``'s task."""
        entry = running[g]
        assert entry is not None, "the group runs a task"
        tid, start_s, tc = entry
        cores = groups[g]
        now = env.now
        busy_on_socket[socket_of_group[g]] -= n_cores_of_group[g]
        record((tid, cores, start_s, now, tc))
        if hooks:
            event = {
                "task": tid,
                "cores": cores,
                "start_s": start_s,
                "end_s": now,
                "level_bytes": tc.level_bytes,
                "dispatch_s": tc.dispatch_s,
            }
            for hook in hooks:
                hook(event)
        if peek() - now <= now * SIMULTANEOUS_REL:
            # other events are due now: decide once all of them have been seen
            end_task(g, tid)
            if not pending_dispatch[0]:
                pending_dispatch[0] = True
                Timeout(env, 0.0).callbacks.append(deferred_dispatch)
            return
        # the task's end and dispatch(g, now), in one call, with its usual case inline (one
        # task assigned): this runs once a task, and each call saved is ~5% of
        # benchmarks/engine.py's run time
        assigned = end_task(g, tid, True)
        if len(assigned) == 1:
            g, tid = assigned[0]
            start(g, tid, now)
        elif assigned:
            start_assigned(assigned, g, now)

    def on_completion(event: Completion) -> None:
        # a Python function, not functools.partial(end, g): a call from simpy's step to Python
        # through C costs more than Python to Python (which CPython 3.11 runs in place)
        end(event._value)

    completions = [Completion(env, g) for g in range(n_groups)]
    # simpy sets an event's callbacks to None once processed: they are set again at each start
    completion_callbacks = (on_completion,)

    dram = DramPool(env, cost, n_sockets, end)
    dispatch(None, env.now)
    env.run()
    if loop.ended != plan.n_tasks:
        raise loop.stalled("simulation")
    if records:
        # columns by itemgetter: zip(*records) makes an iterator a record (3% of the run)
        tasks, cores_col, starts, ends, costs = (
            list(map(itemgetter(i), records)) for i in range(5)
        )
        level_bytes = [tc.level_bytes for tc in costs]
        trace.extend(
            tasks,
            cores_col,
            starts,
            ends,
            level_bytes,
            [DRAM not in d for d in level_bytes],
            [tc.handoff_bytes for tc in costs],
        )
        trace.costs = costs  # (its dispatch_s column is read from them when asked for)
    return trace


def cost_model(
    machine: CpuMachine, plan: Plan, groups: list[tuple[int, ...]], cost: str
) -> CpuCostModel | IdealCostModel:
    """The cost model of a run (``cost``: ``model`` or ``ideal``); a run with one group hands
    its order out at once (see :meth:`wpsim.machines.cpu.CpuMachine.dispatch_variant`)."""
    if cost == "ideal":
        return IdealCostModel(plan)
    return CpuCostModel(machine, plan, sequence=len(groups) == 1)


def machine_levels(machine: CpuMachine) -> list[str]:
    return [c.name for c in machine.caches] + [DRAM, "handoff"]


def cache_bandwidths(machine: CpuMachine) -> dict[str, float]:
    """Bandwidth of each cache level by name (to split a task's cache time among them)."""
    return {c.name: c.bandwidth_Bps for c in machine.caches}


@contextmanager
def _phase(progress: Callable[[str], None] | None, what: str) -> Iterator[None]:
    """Tell ``progress`` (if any) that ``what`` starts, and when it is done, in how long."""
    if progress is None:
        yield
        return
    progress(f"{what} ...")
    start_s = time.perf_counter()
    yield
    progress(f"  done in {time.perf_counter() - start_s:.1f} s")


def simulate(
    workload: Workload,
    machine: CpuMachine,
    policy: Policy | str = "wavefront",
    cores: int | None = None,
    chunk: int = 1,
    granularity: str = "cell",
    cost: str = "model",
    hooks: list[TaskHook] | None = None,
    sequential_s: float | None = None,
    progress: Callable[[str], None] | None = None,
) -> Result:
    """Simulate ``workload`` on ``machine`` under ``policy``.

    Parameters
    ----------
    cores : int, optional
        Use the first ``cores`` cores (default: all).
    cost : {"model", "ideal"}
        The full cost model, or idealised costs (flops / peak; no caches, overheads, contention).
    sequential_s : float, optional
        Baseline to reuse (otherwise simulated: the ``sequential`` policy, same graph options).
    progress : callable, optional
        Called with a line at the start and the end of each phase (building the graph, the
        run, the baseline's run): for large graphs, whose phases take seconds each.

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> from wpsim.model.workload import Workload
    >>> m = load_machine(resolve_machine_path("xeon8160_2s"))
    >>> w = Workload(cell="lstm", layers=4, hidden=256, input=256, seq_len=50)
    >>> r = simulate(w, m, "wavefront", cores=4)
    >>> r.n_tasks, r.speedup > 2
    (200, True)
    """
    machine, policy = prepare_run(machine, policy, cores, cost)
    with _phase(progress, "building and compiling the graph"):
        plan = compile_plan(
            build(workload, granularity=granularity, **policy.graph_options(workload, chunk))
        )
    groups = policy.core_groups(machine.total_cores)
    model = cost_model(machine, plan, groups, cost)
    levels = machine_levels(machine)
    what = f"running {policy.describe()} on {machine.total_cores} cores ({plan.n_tasks:,} tasks)"
    with _phase(progress, what):
        trace = run_plan(
            plan, groups, policy, model, machine.cores_per_socket, machine.sockets, levels, hooks
        )
    if sequential_s is None:
        baseline = get_policy("sequential", instances=policy.instances)
        same_graph = baseline.graph_options(workload, chunk) == policy.graph_options(
            workload, chunk
        )
        with _phase(progress, "running the one-core baseline"):
            sequential_s = sequential_time(
                workload,
                machine,
                chunk,
                granularity,
                cost,
                policy.instances,
                plan=plan if same_graph else None,
            )
    extra = {"machine": machine.name, "chunk": chunk, "granularity": granularity, "cost": cost}
    # a cell the machine file's per-cell tables miss is charged by its defaults: said here
    note = machine.fallback_note(workload.calibration_key, workload.cell)
    if note and cost == "model":
        extra["note"] = note
    return Result.from_trace(
        trace,
        policy.describe(),
        machine.total_cores,
        sequential_s,
        levels,
        plan.tasks,
        extra,
        preds=plan.preds,
        level_bw=cache_bandwidths(machine),
    )


def sequential_time(
    workload: Workload,
    machine: CpuMachine,
    chunk: int = 1,
    granularity: str = "cell",
    cost: str = "model",
    instances: int = 1,
    plan: Plan | None = None,
) -> float:
    """Makespan of the ``sequential`` policy (one core, layer-major order): the speed-up baseline.

    ``plan``: the sequential policy's graph, compiled, where the caller has it already (another
    policy with the same graph options: building and compiling a large graph takes as long as
    simulating it).
    """
    policy = get_policy("sequential", instances=instances)
    if plan is None:
        plan = compile_plan(
            build(workload, granularity=granularity, **policy.graph_options(workload, chunk))
        )
    groups = policy.core_groups(machine.total_cores)
    model = cost_model(machine, plan, groups, cost)
    trace = run_plan(
        plan,
        groups,
        policy,
        model,
        machine.cores_per_socket,
        machine.sockets,
        machine_levels(machine),
    )
    return trace.makespan_s
