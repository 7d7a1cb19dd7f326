"""``layerwise``: oneDNN's "linear execution", what TensorFlow and PyTorch run on CPUs.

Per layer (and direction), one GEMM for the input projection of all time steps, then per step the
recurrent GEMM and element-wise cell split across all cores, with a barrier after each step. All
cores form one group; tasks run in layer-major order.
"""

from __future__ import annotations

from typing import Any

from wpsim.model.workload import Workload
from wpsim.policies.base import StaticPolicy


class Layerwise(StaticPolicy):
    """All cores on each step of one layer at a time; a barrier after each step."""

    name = "layerwise"
    description = "per layer: input GEMM for all steps, then each step split across all cores"

    def graph_options(self, workload: Workload, chunk: int) -> dict[str, Any]:
        return {"chunk": 1, "hoist_input": workload.seq_len, "instances": self.instances}

    def core_groups(self, n_cores: int) -> list[tuple[int, ...]]:
        return [tuple(range(n_cores))]

    def home_group(self, tid: int) -> int:
        return 0

    def priority(self, tid: int) -> tuple:
        return (tid,)
