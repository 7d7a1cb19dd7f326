"""``sequential``: one core runs every task in task-id (layer-major) order: the speed-up baseline."""

from __future__ import annotations

from wpsim.policies.base import StaticPolicy


class Sequential(StaticPolicy):
    """One core, tasks in id order (layer by layer, time steps in order)."""

    name = "sequential"
    description = "one core, layer-major order (the speed-up baseline)"

    def core_groups(self, n_cores: int) -> list[tuple[int, ...]]:
        return [(0,)]

    def home_group(self, tid: int) -> int:
        return 0

    def priority(self, tid: int) -> tuple:
        return (tid,)
