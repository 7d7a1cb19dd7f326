"""GPU policies: ``gemm``, ``sparse_gemm``, ``streams``, ``persistent``, ``persistent_barrier``.

They run only on ``kind: gpu`` machines (:mod:`wpsim.cost.gpu` gives their costs); on a GPU the
CPU names ``sequential``/``layerwise`` mean ``gemm`` and ``wavefront`` means ``streams``. The
accelerator's three modes are the built-in ``multiprogram``, ``pipeline`` and ``helper``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from wpsim.errors import ConfigError
from wpsim.machines.gpu import DIAMOS_2016, ZHU_2018, PersistentKernel
from wpsim.model.workload import Workload
from wpsim.policies.base import StaticPolicy
from wpsim.policies.wavefront import Wavefront


class _GpuMixin:
    """Refuses to run outside :func:`wpsim.sim.gpu.evaluate` (a CPU engine would misread it)."""

    machine_kind: ClassVar[str] = "gpu"
    algorithm: ClassVar[str] = ""
    kernel: PersistentKernel = ZHU_2018
    _on_gpu = False

    def enable_gpu(self) -> None:
        self._on_gpu = True

    def _check(self) -> None:
        if not self._on_gpu:
            raise ConfigError(
                f"--policy {self.name}: a GPU policy; use a gpu machine "  # type: ignore[attr-defined]
                "(e.g. --hardware v100 or titanx_maxwell)"
            )


class _OneKernelAtATime(_GpuMixin, StaticPolicy):
    """Layer after layer; per layer the input GEMM of all steps, then the recurrent loop."""

    def graph_options(self, workload: Workload, chunk: int) -> dict[str, Any]:
        return {"chunk": 1, "hoist_input": workload.seq_len, "instances": self.instances}

    def core_groups(self, n_cores: int) -> list[tuple[int, ...]]:
        self._check()
        return [(0,)]

    def home_group(self, tid: int) -> int:
        return 0

    def priority(self, tid: int) -> tuple:
        return (tid,)


class Gemm(_OneKernelAtATime):
    """Dense GEMM per step (cuBLAS), weights from L2 or DRAM each step: the GPU baseline."""

    name = "gemm"
    description = "GPU: per-step dense GEMM (cuDNN standard, one layer at a time)"
    algorithm = "gemm"


class SparseGemm(_OneKernelAtATime):
    """CSR sparse x dense product per step (cuSPARSE), weights from L2 or DRAM each step."""

    name = "sparse_gemm"
    description = "GPU: per-step sparse GEMM (CSR), one layer at a time"
    algorithm = "sparse_gemm"


class Persistent(_OneKernelAtATime):
    """Persistent kernel: weights stay in registers across steps; per-producer timestamp flags,
    bank-aware sparse layout, wide loads (Zhu et al. 2018). Layers that do not fit on chip fall
    back to the faster per-step GEMM."""

    name = "persistent"
    description = "GPU: persistent kernel (weights on chip; timestamp flags; sparse-aware)"
    algorithm = "persistent"
    kernel = ZHU_2018


class PersistentBarrier(Persistent):
    """Persistent kernel with one global barrier per step and no sparse layout optimisations
    (Diamos et al. 2016)."""

    name = "persistent_barrier"
    description = "GPU: persistent kernel with a global barrier per step (Diamos et al. 2016)"
    kernel = DIAMOS_2016


class Streams(_GpuMixin, Wavefront):
    """The layer x time wavefront on CUDA streams (cuDNN's layer overlap): a cell starts when the
    layer below and the previous step are done; per-step GEMMs, one stream per layer."""

    name = "streams"
    description = "GPU: layer x time wavefront over CUDA streams (per-step GEMMs)"
    algorithm = "streams"

    def graph_options(self, workload: Workload, chunk: int) -> dict[str, Any]:
        """The cell graph: ``--chunk K`` runs the input projections of K steps as one GEMM."""
        return {"chunk": chunk, "instances": self.instances}

    def core_groups(self, n_cores: int) -> list[tuple[int, ...]]:
        self._check()
        return [(i,) for i in range(n_cores)]
