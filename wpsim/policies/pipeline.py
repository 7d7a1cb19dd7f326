"""``pipeline``: layers statically mapped to core groups (the accelerator's multithreading mode).

Layer-direction ``i`` (in order instance, layer, direction; the output layer last) lives on group
``i mod G``; its backward cells and weight gradient stay there too (weights stay put). Each group
runs its ready tasks oldest wavefront first.
"""

from __future__ import annotations

from wpsim.model.plan import Plan
from wpsim.policies.base import StaticPolicy


class Pipeline(StaticPolicy):
    """Static layer-to-group mapping, round robin."""

    name = "pipeline"
    description = "layers statically mapped to cores (round robin), pipelined over time"

    def reset(self, plan: Plan, groups: list[tuple[int, ...]]) -> None:
        super().reset(plan, groups)
        n_groups = len(groups)
        self._home = [i % n_groups for i in plan.layer_id]  # layer ids are in key order

    def home_group(self, tid: int) -> int:
        return self._home[tid]
