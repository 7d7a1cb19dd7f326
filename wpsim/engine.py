"""Discrete-event simulation of a task graph under a policy (simpy).

Each core group is a simpy process. An idle group waits on its own wake event; when tasks become
ready the policy's ``assign`` picks work for idle groups, and only the groups that got a task are
woken (no thundering herd). A task's duration comes from the cost model; tasks that stream from
DRAM share their socket's bandwidth (:class:`DramPool`), so their completion times move whenever
another streaming task starts or ends.

Determinism and tie-breaking: simpy processes events in (time, insertion) order. When a task
ends at time t and other events are due at t too, the engine defers the policy's decision to the
end of time t, so every completion at t is seen first and idle groups are offered to the policy in
ascending group order; the policy breaks ties by its priority (ending in task id). Same inputs,
same trace.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import simpy

from wpsim.cost import DRAM, CpuCostModel, IdealCostModel, TaskCost
from wpsim.errors import ConfigError
from wpsim.graph import build
from wpsim.hardware import CpuMachine
from wpsim.plan import Plan, compile_plan
from wpsim.policies import Policy, get_policy
from wpsim.result import Result
from wpsim.trace import Trace
from wpsim.workload import Workload

TaskHook = Callable[[dict[str, Any]], None]


class DramPool:
    """Processor sharing of each socket's DRAM bandwidth among the groups streaming from it.

    A streaming task progresses at rate ``1 / duration(share)``; whenever the number of streams
    on a socket changes, every streaming task on it banks its progress and is rescheduled at the
    new rate. Stale completion timeouts are ignored by version number.
    """

    def __init__(self, env: simpy.Environment, cost, n_sockets: int) -> None:
        self.env = env
        self.cost = cost
        self.streams = [0] * n_sockets
        self.active: dict[
            int, list
        ] = {}  # group -> [cost, remaining, rate, last, version, event, sockets]

    def join(self, group: int, cost: TaskCost, cores_by_socket: dict[int, int]) -> simpy.Event:
        for socket, count in cores_by_socket.items():
            self.streams[socket] += count
        event = self.env.event()
        self.active[group] = [cost, 1.0, 0.0, self.env.now, 0, event, cores_by_socket]
        self._reschedule(set(cores_by_socket))
        return event

    def leave(self, group: int) -> None:
        entry = self.active.pop(group)
        for socket, count in entry[6].items():
            self.streams[socket] -= count
        self._reschedule(set(entry[6]))

    def _reschedule(self, sockets: set[int]) -> None:
        now = self.env.now
        for group in sorted(self.active):
            entry = self.active[group]
            if sockets.isdisjoint(entry[6]):
                continue
            cost, remaining, rate, last = entry[0], entry[1], entry[2], entry[3]
            remaining = max(0.0, remaining - (now - last) * rate)
            share = min(self.cost.dram_share_Bps(self.streams[s]) for s in entry[6])
            duration = cost.duration(share)
            entry[1], entry[2], entry[3] = remaining, 1.0 / duration, now
            entry[4] += 1
            timeout = self.env.timeout(remaining * duration)
            timeout.callbacks.append(self._fire(group, entry[4]))

    def _fire(self, group: int, version: int):
        def callback(_event) -> None:
            entry = self.active.get(group)
            if entry is not None and entry[4] == version and not entry[5].triggered:
                entry[5].succeed()

        return callback


def run_plan(
    plan: Plan,
    groups: list[tuple[int, ...]],
    policy: Policy,
    cost,
    cores_per_socket: int,
    n_sockets: int,
    levels: list[str],
    hooks: list[TaskHook] | None = None,
) -> Trace:
    """Simulate ``plan`` on ``groups`` under ``policy`` with ``cost``; return the trace."""
    env = simpy.Environment()
    trace = Trace(levels)
    n = plan.n_tasks
    remaining = [len(p) for p in plan.preds]
    succs = plan.succs
    policy.reset(plan, groups)
    for tid in range(n):
        if remaining[tid] == 0:
            policy.push(tid)
    n_groups = len(groups)
    is_idle = [True] * n_groups
    wake: list[simpy.Event] = [env.event() for _ in range(n_groups)]
    socket_of_group = [cores[0] // cores_per_socket for cores in groups]
    sockets_of_group = []
    for cores in groups:
        by_socket: dict[int, int] = {}
        for c in cores:
            by_socket[c // cores_per_socket] = by_socket.get(c // cores_per_socket, 0) + 1
        sockets_of_group.append(by_socket)
    busy_on_socket = [0] * n_sockets
    dram = DramPool(env, cost, n_sockets)
    state = {"done": 0, "pending_dispatch": False}

    def dispatch(current: int | None) -> int | None:
        """Ask the policy for work for idle groups; wake them. Returns ``current``'s own task."""
        idle = [g for g in range(n_groups) if is_idle[g]]
        if not idle:
            return None
        mine = None
        for g, tid in policy.assign(idle):
            if not is_idle[g]:
                raise RuntimeError(f"policy {policy.name!r} assigned task {tid} to busy group {g}")
            is_idle[g] = False
            if g == current:
                mine = tid
            else:
                wake[g].succeed(tid)
        return mine

    def deferred_dispatch(_event) -> None:
        state["pending_dispatch"] = False
        dispatch(None)

    append = trace.append
    push = policy.push
    timeout = env.timeout
    cost_start = cost.start
    cost_finish = cost.finish

    def group_process(g: int):
        cores = groups[g]
        n_cores = len(cores)
        socket = socket_of_group[g]
        tid = yield wake[g]
        while True:
            start = env.now
            tc = cost_start(tid, cores, busy_on_socket[socket])
            busy_on_socket[socket] += n_cores
            if tc.dram_bytes:
                yield dram.join(g, tc, sockets_of_group[g])
                dram.leave(g)
            else:
                yield timeout(
                    tc.fixed_s + (tc.compute_s if tc.compute_s > tc.cache_s else tc.cache_s)
                )
            end = env.now
            busy_on_socket[socket] -= n_cores
            cost_finish(tid, cores)
            level_bytes = tc.level_bytes
            append(tid, cores, start, end, level_bytes, DRAM not in level_bytes, tc.handoff_bytes)
            if hooks:
                record = {"task": tid, "cores": cores, "start_s": start, "end_s": end,
                          "level_bytes": level_bytes}  # fmt: skip
                for hook in hooks:
                    hook(record)
            state["done"] += 1
            for s in succs[tid]:
                remaining[s] -= 1
                if remaining[s] == 0:
                    push(s)
            is_idle[g] = True
            nxt = None
            if env.peek() == end:
                # other events are due now: decide once all of them have been seen
                if not state["pending_dispatch"]:
                    state["pending_dispatch"] = True
                    timeout(0).callbacks.append(deferred_dispatch)
            else:
                nxt = dispatch(g)
            if nxt is None:
                wake[g] = env.event()
                nxt = yield wake[g]
            tid = nxt

    for g in range(n_groups):
        env.process(group_process(g))
    dispatch(None)
    env.run()
    if state["done"] != n:
        raise RuntimeError(
            f"simulation stalled: {state['done']} of {n} tasks ran under policy {policy.name!r} "
            "(a policy must eventually assign every ready task)"
        )
    return trace


def prepare_run(
    machine: CpuMachine, policy: Policy | str, cores: int | None, cost: str
) -> tuple[CpuMachine, Policy]:
    """Check the options shared by :func:`simulate` and :func:`wpsim.analytic.predict`; return
    the machine cut to ``cores`` and the policy object."""
    if not isinstance(machine, CpuMachine):
        raise ConfigError(f"machine '{machine.name}' is a {machine.kind}; use its own policies")
    if isinstance(policy, str):
        policy = get_policy(policy)
    if cores is not None:
        machine = machine.with_cores(cores)
    if cost not in ("model", "ideal"):
        raise ConfigError(f"--cost: got {cost!r}, expected 'model' or 'ideal'")
    return machine, policy


def machine_levels(machine: CpuMachine) -> list[str]:
    return [c.name for c in machine.caches] + [DRAM, "handoff"]


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

    Examples
    --------
    >>> from wpsim.hardware import load_machine, resolve_machine_path
    >>> from wpsim.workload import Workload
    >>> m = load_machine(resolve_machine_path("xeon8160_2s"))
    >>> w = Workload(cell="lstm", layers=4, hidden=256, input=256, seq_len=50)
    >>> r = simulate(w, m, "wavefront", cores=4)
    >>> r.n_tasks, r.speedup > 2
    (200, True)
    """
    machine, policy = prepare_run(machine, policy, cores, cost)
    plan = compile_plan(
        build(workload, granularity=granularity, **policy.graph_options(workload, chunk))
    )
    groups = policy.core_groups(machine.total_cores)
    model = IdealCostModel(plan) if cost == "ideal" else CpuCostModel(machine, plan)
    levels = machine_levels(machine)
    trace = run_plan(plan, groups, policy, model, machine.cores_per_socket, machine.sockets,
                     levels, hooks)  # fmt: skip
    if sequential_s is None:
        sequential_s = sequential_time(
            workload, machine, chunk, granularity, cost, policy.instances
        )
    extra = {"machine": machine.name, "chunk": chunk, "granularity": granularity, "cost": cost}
    return Result.from_trace(trace, policy.describe(), machine.total_cores, sequential_s, levels,
                             plan.tasks, extra)  # fmt: skip


def sequential_time(workload: Workload, machine: CpuMachine, chunk: int = 1,
                    granularity: str = "cell", cost: str = "model", instances: int = 1) -> float:  # fmt: skip
    """Makespan of the ``sequential`` policy (one core, layer-major order): the speed-up baseline."""
    policy = get_policy("sequential", instances=instances)
    plan = compile_plan(
        build(workload, granularity=granularity, **policy.graph_options(workload, chunk))
    )
    model = IdealCostModel(plan) if cost == "ideal" else CpuCostModel(machine, plan)
    trace = run_plan(plan, policy.core_groups(machine.total_cores), policy, model,
                     machine.cores_per_socket, machine.sockets, machine_levels(machine))  # fmt: skip
    return trace.makespan_s
