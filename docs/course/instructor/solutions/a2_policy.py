"""Reference solution of assignment 2: layer-affine helper groups sized to the private cache.

On the course machine (``docs/course/a2/small_cache.yaml``) one core's 256 KiB L2 cannot hold a
layer's weights (516 KiB for the 128-unit LSTM of the assignment). ``wavefront`` runs each cell
on one core, so every step of every layer streams the whole layer from the shared L3 (about
17 us at 13.7 B/cycle, a little more than the 15 us of the cell's GEMVs), and since the widest
wavefront is 4 cells, 12 of the 16 cores idle.

This policy splits every cell of a layer across a group of ``k`` helper cores. Core ``j`` of a
group reads only slice ``j`` of the weights (``W / k``), so with ``k`` large enough the slices of
the layers a group serves stay in its cores' L2. Two choices make that work:

* **group size**: the smallest ``k`` (a divisor of the core count) whose slices of all the
  layers mapped to one group fit the private cache, but at least ``cores // layers`` so that no
  group is left without a layer (more helpers also divide the compute);
* **static layer affinity**: layer-direction ``i`` always runs on group ``i mod G``, so its
  slices never move and stay hot from the second step on (a dynamic policy may hand a layer to
  a group whose cache holds another one).

Inside a group, ready tasks run oldest wavefront first. The price of splitting is a barrier and
an all-gather of the hidden state after every step, which the cost model charges; on the course
machine it is far below what the split saves: the compute of a cell is divided by ``k`` and its
weights come from L2 at 23 B/cycle instead of L3 at 13.7.
"""

from __future__ import annotations

import math
from typing import Any

from wpsim.plan import Plan
from wpsim.policies import register
from wpsim.policies.base import StaticPolicy
from wpsim.workload import Workload


@register
class CacheFitHelpers(StaticPolicy):
    """Helper groups just large enough for each core's weight slices to fit its private cache;
    layers statically mapped to groups (round robin)."""

    name = "cache-fit-helpers"
    description = "helper groups sized so weight slices fit the private cache; layer affinity"

    #: Capacity of the largest private cache level: the L2 of docs/course/a2/small_cache.yaml.
    PRIVATE_CACHE_BYTES = 256 * 1024

    def graph_options(self, workload: Workload, chunk: int) -> dict[str, Any]:
        """The default cell graph; remember the workload to size the groups."""
        self._workload = workload
        return super().graph_options(workload, chunk)

    def group_size(self, n_cores: int) -> int:
        """Cores per group for this workload on ``n_cores`` cores (see the module docstring)."""
        w = self._workload
        layer_directions = w.layers * w.directions * self.instances
        largest = max(w.layer_weight_bytes(layer) for layer in range(w.layers))
        floor_k = max(1, n_cores // layer_directions)
        for k in range(floor_k, n_cores + 1):
            if n_cores % k:
                continue
            per_group = math.ceil(layer_directions / (n_cores // k))
            if per_group * largest / k <= self.PRIVATE_CACHE_BYTES:
                return k
        return floor_k  # nothing fits: one layer-direction per group, the widest split of it

    def core_groups(self, n_cores: int) -> list[tuple[int, ...]]:
        k = self.group_size(n_cores)
        return [tuple(range(g * k, (g + 1) * k)) for g in range(n_cores // k)]

    def reset(self, plan: Plan, groups: list[tuple[int, ...]]) -> None:
        super().reset(plan, groups)
        keys = sorted({(t.instance, t.layer, t.direction) for t in plan.tasks})
        home = {key: i % len(groups) for i, key in enumerate(keys)}
        self._home = [home[(t.instance, t.layer, t.direction)] for t in plan.tasks]

    def home_group(self, tid: int) -> int:
        return self._home[tid]
