"""The scheduling loop the simulator and the real executor share.

A task is ready when all its predecessors have ended. The idle core groups, in ascending order,
are offered to the policy (:meth:`Schedule.assign`), which assigns ready tasks to some of them;
when a task ends (:meth:`Schedule.end`) the successors whose predecessors have all ended are
released to the policy and its group is idle again. Every engine runs this loop and differs
only in what a task's end means: a completion time from the cost model
(:func:`wpsim.sim.engine.run_plan`), a worker's done flag (:mod:`kernels.executor`), or, for
the order one group runs (:func:`kernels.executor._execution.static_order`), at once.

Examples
--------
>>> from wpsim.model.graph import build
>>> from wpsim.model.plan import compile_plan
>>> from wpsim.model.workload import Workload
>>> from wpsim.policies import get_policy
>>> plan = compile_plan(build(Workload(cell="rnn", layers=2, hidden=4, input=4, seq_len=2)))
>>> schedule = Schedule(plan, get_policy("wavefront"), [(0,), (1,)])
>>> schedule.assign()  # (group, task): only task 0 is ready
[(0, 0)]
>>> schedule.end(0, 0, offer=True)  # its successors: layer 0's next step, layer 1's first
[(0, 1), (1, 2)]
>>> schedule.ended, schedule.idle
(1, [])
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Callable
from itertools import compress
from operator import not_

from wpsim.errors import SchedulingError
from wpsim.model.plan import Plan
from wpsim.policies import Policy


class Schedule:
    """The state of one scheduling loop: tasks waiting for predecessors, idle groups, tasks
    ended. Making it resets ``policy`` on ``plan`` and ``groups`` and releases the tasks that
    have no predecessor.

    :meth:`assign` and :meth:`end` run once a task in the simulator's hot loop: they are
    closures over local variables (an attribute lookup a task would cost the engine a few per
    cent, see benchmarks/engine.py).
    """

    def __init__(self, plan: Plan, policy: Policy, groups: list[tuple[int, ...]]) -> None:
        self.policy = policy
        self.n_tasks = n_tasks = plan.n_tasks
        remaining = list(map(len, plan.preds))  # (map and compress: C loops over every task)
        policy.reset(plan, groups)
        push = policy.push
        for tid in compress(range(n_tasks), map(not_, remaining)):
            push(tid)
        idle: list[int] = list(range(len(groups)))  # idle groups, ascending
        self.idle = idle
        ended = [0]
        self._ended = ended
        succs = plan.succs
        policy_assign = policy.assign

        def assign() -> list[tuple[int, int]]:
            """Offer the idle groups to the policy; return its ``(group, task)`` assignments,
            whose groups are busy from now on.

            Raises
            ------
            SchedulingError
                When the policy assigns a task to a group that is not idle.
            """
            if not idle:
                return []
            assigned = policy_assign(idle)  # read-only for the policy
            for g, tid in assigned:
                try:
                    idle.remove(g)
                except ValueError:
                    raise busy_group(g, tid) from None
            return assigned

        def end(group: int, tid: int, offer: bool = False) -> list[tuple[int, int]]:
            """Task ``tid`` ended on ``group``: release its successors that have no predecessor
            left, and ``group`` is idle again; with ``offer``, then :meth:`assign` (in the same
            call: the simulator's hot loop does both once a task)."""
            ended[0] += 1
            for s in succs[tid]:
                remaining[s] -= 1
                if not remaining[s]:
                    push(s)
            insort(idle, group)
            if not offer:
                return []
            assigned = policy_assign(idle)  # assign(), inline
            for g, t in assigned:
                try:
                    idle.remove(g)
                except ValueError:
                    raise busy_group(g, t) from None
            return assigned

        def busy_group(g: int, tid: int) -> SchedulingError:
            return SchedulingError(f"policy {policy.name!r} assigned task {tid} to busy group {g}")

        self.assign: Callable[[], list[tuple[int, int]]] = assign
        self.end: Callable[..., list[tuple[int, int]]] = end

    @property
    def ended(self) -> int:
        """Tasks ended so far."""
        return self._ended[0]

    def stalled(self, engine: str) -> SchedulingError:
        """The error of a loop that ends (nothing runs) with tasks that never ran."""
        return SchedulingError(
            f"{engine} stalled: {self.ended} of {self.n_tasks} tasks ran under policy "
            f"{self.policy.name!r} (a policy must eventually assign every ready task)"
        )
