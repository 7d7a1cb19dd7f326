"""Simulator speed: tasks/s of the simpy engine with the full cost model against a heapq floor.

The graph is a 10-layer x 10,000-step LSTM inference (100k tasks) on 16 cores of the Xeon 8160
description, wavefront policy. The floor is a minimal list scheduler on the same compiled graph
(heapq of completion times, a ready heap, constant task time): what a Python event loop costs
with no model at all. Targets: >= 250,000 tasks/s and >= 0.25x the floor. A third line times
simpy's event loop alone on the same graph (the engine's completion events, a ready heap, unit
task time): what is left for the policy, the cost model and the trace is the difference.

Both are timed with Python's cyclic garbage collector paused (the engine pauses it itself, see
:func:`wpsim.sim.engine.gc_paused`; the floor gets the same), best of ``--repeats`` runs each,
alternating, so that the ratio compares like with like on a noisy machine.

A measurement behind a rule of the hot loops (as recorded when the rule was chosen; the comment
that carried it named no machine): in :meth:`wpsim.cost.cpu.CpuCostModel.start`, iterating the
predecessors with ``zip`` over two short lists cost 0.2-0.3 us a task, a third of that loop, so
it indexes instead.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import time

import simpy
from simpy.events import NORMAL

from wpsim.cost.cpu import CpuCostModel
from wpsim.machines import load_machine, resolve_machine_path
from wpsim.model.graph import build
from wpsim.model.plan import compile_plan
from wpsim.model.workload import Workload
from wpsim.policies import get_policy
from wpsim.sim.engine import Completion, gc_paused, machine_levels, run_plan


def heapq_floor(plan, n_cores: int) -> float:
    """List scheduling with unit task time: returns the makespan (the work is the point)."""
    remaining = [len(p) for p in plan.preds]
    ready = [tid for tid in range(plan.n_tasks) if remaining[tid] == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int, int]] = []
    free = list(range(n_cores))
    now = 0.0
    while ready or running:
        while ready and free:
            core = free.pop()
            tid = heapq.heappop(ready)
            heapq.heappush(running, (now + 1.0, tid, core))
        now, tid, core = heapq.heappop(running)
        free.append(core)
        for s in plan.succs[tid]:
            remaining[s] -= 1
            if remaining[s] == 0:
                heapq.heappush(ready, s)
    return now


def simpy_floor(plan, n_cores: int) -> float:
    """The engine's event loop alone: simpy, one reusable completion event a core (as the
    engine has), a ready heap by task id, unit task time; no policy, cost model or trace.
    Returns the makespan."""
    env = simpy.Environment()
    remaining = [len(p) for p in plan.preds]
    ready = [tid for tid in range(plan.n_tasks) if remaining[tid] == 0]
    heapq.heapify(ready)
    free = list(range(n_cores))
    running = [0] * n_cores
    completions = [Completion(env, core) for core in range(n_cores)]

    def start(core: int, tid: int) -> None:
        running[core] = tid
        event = completions[core]
        event.callbacks = callbacks
        env.schedule(event, NORMAL, 1.0)

    def on_completion(event: Completion) -> None:
        core = event._value
        for s in plan.succs[running[core]]:
            remaining[s] -= 1
            if remaining[s] == 0:
                heapq.heappush(ready, s)
        free.append(core)
        while ready and free:
            start(free.pop(), heapq.heappop(ready))

    callbacks = (on_completion,)
    while ready and free:
        start(free.pop(), heapq.heappop(ready))
    env.run()
    return env.now


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--layers", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument(
        "--hidden",
        type=int,
        default=256,
        help="hidden and input size (1024: weights stream from DRAM)",
    )
    parser.add_argument("--cores", type=int, default=16)
    parser.add_argument("--policy", default="wavefront")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (best counts)")
    args = parser.parse_args()
    machine = load_machine(resolve_machine_path("xeon8160_2s")).with_cores(args.cores)
    workload = Workload(
        cell="lstm", layers=args.layers, hidden=args.hidden, input=args.hidden, seq_len=args.steps
    )
    t0 = time.perf_counter()
    plan = compile_plan(build(workload))
    t1 = time.perf_counter()
    engine_s, floor_s, simpy_s = [], [], []
    for _ in range(args.repeats):
        trace = cost = None  # the previous run's, freed here: the next run must not pay for it
        gc.collect()
        t = time.perf_counter()
        policy = get_policy(args.policy)
        cost = CpuCostModel(machine, plan)
        trace = run_plan(
            plan,
            policy.core_groups(args.cores),
            policy,
            cost,
            machine.cores_per_socket,
            machine.sockets,
            machine_levels(machine),
        )
        engine_s.append(time.perf_counter() - t)
        gc.collect()
        with gc_paused():
            t = time.perf_counter()
            heapq_floor(plan, args.cores)
            floor_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            simpy_floor(plan, args.cores)
            simpy_s.append(time.perf_counter() - t)
    n = plan.n_tasks
    engine_rate, floor_rate = n / min(engine_s), n / min(floor_s)
    print(
        f"graph: {n:,} tasks, built and compiled in {t1 - t0:.2f} s; simulated makespan "
        f"{trace.makespan_s * 1e3:.1f} ms on {args.cores} cores ({args.policy})"
    )
    print(
        f"  engine (simpy + full cost model) {engine_rate:>12,.0f} tasks/s  (best of {args.repeats})"
    )
    print(f"  heapq list scheduler (floor)     {floor_rate:>12,.0f} tasks/s")
    simpy_rate = n / min(simpy_s)
    print(
        f"  simpy event loop alone           {simpy_rate:>12,.0f} tasks/s  "
        f"({simpy_rate / floor_rate:.2f}x the floor: the most a simpy engine can reach)"
    )
    ratio = engine_rate / floor_rate
    graph_options = ("layers", "steps", "hidden", "cores", "policy")
    if any(getattr(args, name) != parser.get_default(name) for name in graph_options):
        print(
            f"  ratio engine / floor             {ratio:>12.2f}   (the targets are for the "
            "default graph and policy)"
        )
        return
    print(
        f"  ratio engine / floor             {ratio:>12.2f}   (target >= 0.25: "
        f"{'PASS' if ratio >= 0.25 else 'MISS'})"
    )
    print(
        f"  engine rate target >= 250,000 tasks/s: {'PASS' if engine_rate >= 250_000 else 'MISS'}"
    )


if __name__ == "__main__":
    main()
