"""``multiprogram``: N independent instances of the workload share the machine.

The graph holds ``instances`` disjoint copies (each with its own weights); the core groups are
divided into N contiguous blocks, instance i runs on block i as a wavefront. The speed-up is one of
throughput: N runs on one core one after the other, against N runs side by side.
"""

from __future__ import annotations

from wpsim.errors import ConfigError
from wpsim.model.plan import Plan
from wpsim.policies.base import Policy
from wpsim.policies.wavefront import Wavefront


class MultiProgram(Policy):
    """Instances on disjoint blocks of cores; a wavefront inside each block."""

    name = "multiprogram"
    description = "N independent instances on disjoint blocks of cores (throughput)"

    def reset(self, plan: Plan, groups: list[tuple[int, ...]]) -> None:
        super().reset(plan, groups)
        n = self.instances
        if len(groups) < n:
            raise ConfigError(
                f"--instances: got {n}, expected at most the {len(groups)} core groups available"
            )
        self._block_of_group = [g * n // len(groups) for g in range(len(groups))]
        self._tasks = plan.tasks
        self._inner: list[Wavefront] = []
        self._members: list[list[int]] = []  # per instance: its local group index -> global
        for i in range(n):
            members = [g for g in range(len(groups)) if self._block_of_group[g] == i]
            inner = Wavefront()
            inner.reset(plan, [groups[g] for g in members])
            self._inner.append(inner)
            self._members.append(members)
        self._local = {}
        for members in self._members:
            for local, g in enumerate(members):
                self._local[g] = local

    def push(self, tid: int) -> None:
        self._inner[self._tasks[tid].instance].push(tid)

    def assign(self, idle: list[int]) -> list[tuple[int, int]]:
        out = []
        for i, inner in enumerate(self._inner):
            mine = [self._local[g] for g in idle if self._block_of_group[g] == i]
            if mine:
                members = self._members[i]
                out += [(members[local], tid) for local, tid in inner.assign(mine)]
        out.sort()
        return out

    def describe(self) -> str:
        return f"multiprogram, instances={self.instances}"
