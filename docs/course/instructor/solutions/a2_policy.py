"""Reference solution of assignment 2: layer-affine helper groups and multi-step cells, both
sized by the cost model's own formulas on the machine the policy runs on.

On the course machine (``docs/course/a2/small_cache.yaml``) one core's 256 KiB L2 cannot hold a
layer's weights (516 KiB for the 128-unit LSTM of the assignment). ``wavefront`` runs each cell
on one core, so every step of every layer streams the whole layer from the shared L3, and since
the widest wavefront is 4 cells, 12 of the 16 cores idle. ``layerwise`` splits every step across
all 16 cores (slices of 32 KiB stay in L2) but runs one layer at a time and pays a 16-core
barrier after every step. The policy takes the middle road and adds one more idea:

* **helper groups**: ``G`` groups of ``k`` cores; every task of a group is split ``k`` ways
  (core ``j`` reads slice ``j`` of the weights, ``W / k``), so the slices of the layers a group
  serves can stay in its cores' private cache;
* **static layer affinity**: layer-direction ``i`` always runs on group ``i mod G`` (its
  backward cells and weight gradient too), so its slices never move;
* **multi-step cells**: a task covers ``K`` time steps (``chunk``): its input projection is one
  GEMM over ``K`` columns instead of ``K`` GEMVs (efficiency ``e(K)`` instead of ``e(1)``), at
  the price of a longer pipeline fill (``G - 1`` tasks before the last group starts).

``k`` and ``K`` are chosen by estimating the makespan of every candidate with the cost model's
formulas (docs/reference/cost-model.md) and the machine's parameters: a task of layer ``l``
costs ``dispatch + sync + elementwise + max(products, weight reads)`` (its flops from the cell's
declaration, :meth:`~wpsim.model.workload.Workload.step_flops`, so any registered or YAML cell is
sized the same way), the weights come from the first private cache level that holds the group's slices (else the shared level, else DRAM), and
a group runs ``ceil(T / K) * layers_per_group`` tasks after ``min(layers, G) - 1`` tasks of
fill. The estimate ignores hand-offs and DRAM sharing; it only has to rank the candidates.

Inside a group, ready tasks run oldest wavefront first (the default priority).
"""

from __future__ import annotations

import math
from typing import Any

from wpsim.machines.cpu import CpuMachine
from wpsim.model.plan import Plan
from wpsim.model.workload import Workload
from wpsim.policies import register
from wpsim.policies.base import StaticPolicy

#: Time steps per task tried.
STEPS = (1, 2, 4, 8, 16)


def gemm_efficiency(table: list[tuple[float, float]], columns: float) -> float:
    """The machine's GEMM efficiency at ``columns``, interpolated in log2 as the cost model does."""
    points = sorted(table)
    if columns <= points[0][0]:
        return points[0][1]
    for (n0, e0), (n1, e1) in zip(points, points[1:], strict=False):
        if columns <= n1:
            f = math.log2(columns / n0) / math.log2(n1 / n0)
            return e0 + f * (e1 - e0)
    return points[-1][1]


@register
class CacheFitPipeline(StaticPolicy):
    """Layer-affine helper groups and multi-step cells, sized by a cost estimate."""

    name = "cache-fit-pipeline"
    description = "layer-affine helper groups and multi-step cells, sized by a cost estimate"

    def __init__(self, machine: CpuMachine | None = None) -> None:
        super().__init__()
        if machine is None:
            raise ValueError("cache-fit-pipeline needs the machine: CacheFitPipeline(machine=m)")
        self.machine = machine

    def graph_options(self, workload: Workload, chunk: int) -> dict[str, Any]:
        """Tasks of ``K`` steps; remember the workload to size the groups."""
        self._workload = workload
        _, steps = self.choose(workload, self.machine.total_cores)
        return {"chunk": steps, "instances": self.instances}

    def core_groups(self, n_cores: int) -> list[tuple[int, ...]]:
        k, _ = self.choose(self._workload, n_cores)
        return [tuple(range(g * k, (g + 1) * k)) for g in range(n_cores // k)]

    def reset(self, plan: Plan, groups: list[tuple[int, ...]]) -> None:
        super().reset(plan, groups)
        keys = sorted({(t.instance, t.layer, t.direction) for t in plan.tasks})
        home = {key: i % len(groups) for i, key in enumerate(keys)}
        self._home = [home[(t.instance, t.layer, t.direction)] for t in plan.tasks]

    def home_group(self, tid: int) -> int:
        return self._home[tid]

    # ---- the estimate ------------------------------------------------------------------------
    def choose(self, w: Workload, n_cores: int) -> tuple[int, int]:
        """``(k, K)``: cores per group (a divisor of ``n_cores``) and steps per task."""
        candidates = [
            (self.estimate_s(w, n_cores, k, steps), k, steps)
            for k in range(1, n_cores + 1)
            if n_cores % k == 0
            for steps in STEPS
            if steps <= w.seq_len
        ]
        _, k, steps = min(candidates)
        return k, steps

    def estimate_s(self, w: Workload, n_cores: int, k: int, steps: int) -> float:
        """Estimated makespan with groups of ``k`` cores and tasks of ``steps`` steps."""
        m = self.machine
        layer_directions = w.layers * w.directions * self.instances
        groups = n_cores // k
        per_group = math.ceil(layer_directions / groups)
        peak = m.clock_hz * m.peak_flops_per_cycle.get(w.dtype, m.peak_flops_per_cycle["float32"])
        table = m.efficiency.gemm_by_n
        private = [c for c in m.caches if c.scope == "core"]
        shared = [c for c in m.caches if c.scope != "core"]
        B = w.batch
        barrier = m.barrier.base_s + m.barrier.per_doubling_s * math.log2(k) if k > 1 else 0.0
        slowest = 0.0
        for layer in range(w.layers):
            # a step's flops from the cell's declaration (wpsim.cells): the products off the
            # recurrence run as one GEMM of B * steps columns, those on it one of B a step
            flops = w.step_flops(layer)
            products = (
                flops.matmul_batched * steps / gemm_efficiency(table, B * steps)
                + flops.matmul_recurrent * steps / gemm_efficiency(table, B)
            ) / (k * peak)
            elementwise = flops.elementwise * steps / (m.efficiency.elementwise * k * peak)
            weights = w.layer_weight_bytes(layer)
            level = next((c for c in private if per_group * weights / k <= c.size_bytes), None)
            if level is None:
                level = next(
                    (c for c in shared if layer_directions * weights <= c.size_bytes), None
                )
            bandwidth = level.bandwidth_Bps if level else m.memory.per_core_bandwidth_Bps
            reads = steps * weights / k / bandwidth
            task = m.dispatch_overhead_s + steps * barrier + elementwise + max(products, reads)
            slowest = max(slowest, task)
        tasks_per_group = math.ceil(w.seq_len / steps) * per_group
        return (tasks_per_group + min(layer_directions, groups) - 1) * slowest
