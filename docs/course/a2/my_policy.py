"""Assignment 2: a scheduling policy that runs RNNs faster than every built-in policy on
machines with small private caches.

Write your policy in this one file, then grade it::

    python docs/course/a2/grade.py docs/course/a2/my_policy.py

Rules: one class, decorated with ``@register``, subclassing ``StaticPolicy`` or ``DynamicPolicy``
(see docs/reference/policies.md), with a ``name`` of its own; no built-in policy inside it
(subclassed, wrapped, called or copied). Read the handout first.
"""

from __future__ import annotations

from wpsim.hardware import CpuMachine
from wpsim.plan import Plan
from wpsim.policies import register
from wpsim.policies.base import StaticPolicy


@register
class MyPolicy(StaticPolicy):
    """TODO: one sentence: what does your policy do, and why is it faster?"""

    name = "my-policy"
    description = "TODO"

    def __init__(self, machine: CpuMachine | None = None) -> None:
        """The grader creates the policy as ``MyPolicy(machine=machine)`` for every case."""
        super().__init__()
        self.machine = machine  # cores, caches (size_bytes, bandwidth_Bps), clock, ...

    def core_groups(self, n_cores: int) -> list[tuple[int, ...]]:
        """Which cores run a task together. One core per group is what ``wavefront`` does."""
        # TODO: return a list of disjoint tuples of core ids in range(n_cores).
        raise NotImplementedError("TODO: core_groups (which cores run a task together?)")

    def reset(self, plan: Plan, groups: list[tuple[int, ...]]) -> None:
        """Called once before the run: ``plan.tasks[tid]`` has ``layer``, ``direction``, ..."""
        super().reset(plan, groups)
        # TODO: precompute whatever home_group needs.

    def home_group(self, tid: int) -> int:
        """The index (into ``groups``) of the group that runs task ``tid``."""
        # TODO: return a group index in range(len(self.groups)).
        raise NotImplementedError("TODO: home_group (which group runs this task?)")
