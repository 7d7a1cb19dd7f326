"""Machine descriptions of kind ``gpu`` (validated like :mod:`wpsim.machines.cpu`), and the
software mechanisms of a persistent kernel (:class:`PersistentKernel`).

Units: seconds, bytes, bytes per second, hertz. Every value in a shipped file carries its source
in a same-line comment (``spec:``, ``estimate:``, ``assumption:``, ``configuration:``, ...).
:mod:`wpsim.sim.gpu` holds the GPU's cost model and closed forms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field, field_validator

from wpsim.config import NotBool
from wpsim.errors import ConfigError
from wpsim.machines.fields import (
    Dtype,
    Fraction,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Strict,
    increasing_points,
)


class L2Spec(Strict):
    """The GPU's shared L2 cache."""

    size_bytes: PositiveInt
    bandwidth_Bps: PositiveFloat  # aggregate, all SMs
    latency_s: NonNegativeFloat  # one load that hits (one direction of a hand-off)


class GpuMemorySpec(Strict):
    """Device memory (GDDR/HBM): sustained bandwidth of all SMs together."""

    bandwidth_Bps: PositiveFloat
    latency_s: NonNegativeFloat


class GpuSyncSpec(Strict):
    """Grid-wide synchronisation of a persistent kernel, once per time step.

    ``global_barrier_s``: all blocks arrive on a counter in global memory and spin until the last
    one arrives. ``flag_s``: a consumer polls one producer's timestamp flag (Lamport timestamps;
    the producer's store latency is counted separately as an L2 hand-off).
    """

    global_barrier_s: NonNegativeFloat  # one grid-wide barrier through global memory
    flag_s: NonNegativeFloat  # one poll that finds a producer's timestamp flag


class PersistentSpec(Strict):
    """Capacity and efficiency of persistent RNN kernels (weights resident on chip).

    * ``register_fraction``: share of the register file that can hold weights (the rest holds
      each thread's working set: accumulators, staged activations, addresses);
    * ``shared_memory_fraction``: share of shared memory usable for the activations ``h`` that
      every SM reads each step;
    * ``efficiency``: fraction of peak the FMA stream of a persistent kernel sustains;
    * sparse weights: each stored entry is a value plus an ``index_bytes`` column index, one row per
      warp, each row padded to a multiple of ``warp_width`` entries; ``wide_load_bytes`` is the
      width of one shared-memory load (several batch columns of ``h`` at once);
      ``random_bank_conflict_degree`` is how many serialised shared-memory wavefronts a warp's
      loads of ``h`` at random column indices need without a bank-aware layout.
    """

    register_fraction: Fraction  # of the register file, can hold weights
    shared_memory_fraction: Fraction  # of shared memory, can hold h
    efficiency: Fraction  # of peak, the FMA stream sustains
    index_bytes: PositiveInt  # column index per stored sparse weight
    warp_width: PositiveInt  # threads per warp; sparse rows padded to it
    wide_load_bytes: PositiveInt  # widest shared-memory load per thread
    random_bank_conflict_degree: Annotated[float, Field(ge=1), NotBool]  # without bank-aware layout


def _log2_interpolate(table: list[tuple[float, float]], x: float) -> float:
    """Linear interpolation of ``table`` (``[x, y]`` points, x increasing) in log2 x, clamped."""
    xs = [math.log2(point) for point, _ in table]
    ys = [y for _, y in table]
    lx = math.log2(max(x, 1.0))
    if lx <= xs[0]:
        return ys[0]
    if lx >= xs[-1]:
        return ys[-1]
    i = next(i for i in range(1, len(xs)) if lx <= xs[i])
    return ys[i - 1] + (lx - xs[i - 1]) / (xs[i] - xs[i - 1]) * (ys[i] - ys[i - 1])


class GemmSpec(Strict):
    """Matrix products (cuBLAS/cuDNN style): per-step recurrent products, input and weight-gradient
    GEMMs; weights read from L2 or DRAM.

    Each GPU file carries its own measured efficiencies (a GEMM benchmark of that GPU, or the
    documented rule of its architecture): the fraction of peak for a product of a weight matrix of
    ``M x K`` entries with ``n`` right-hand columns is
    ``efficiency_by_n(n) x efficiency_by_weights(M*K)``, both interpolated in log2 and clamped:

    * ``efficiency_by_n``: ``[n, fraction of peak]`` for matrices large enough to fill the GPU;
    * ``efficiency_by_weights``: ``[M*K, factor]``, the share of that efficiency a smaller matrix
      keeps when its product has few columns (too few output tiles for all SMs): in full up to
      the curve's second-widest ``n``, fading (log2 n) to none at its widest, where the columns
      alone give every SM tiles; empty: 1 for every size;
    * ``tensor_efficiency_by_n``: the same curve for tensor-core GEMMs (dtypes in the machine's
      ``tensor_flops_per_cycle_per_sm``), relative to the tensor-core peak; absent:
      ``efficiency_by_n``;
    * ``transposed_efficiency_by_n``: the same curve for products that read the weight matrix
      transposed (BLAS ``op(A) = A^T``, the "T N" GEMMs of a benchmark): the backward-data
      products ``W^T dA`` of the recurrent and input weights. A library runs them with other
      kernels than the forward "N N" products, at its own rate (DeepBench's T N GEMMs reach
      0.5-1.1x the N N rate at the same shape, by GPU and ``n``); absent: ``efficiency_by_n``.
      Tensor-core products keep ``tensor_efficiency_by_n`` either way;
    * ``sparse_bandwidth_efficiency``: fraction of the memory bandwidth a CSR sparse-times-dense
      product sustains (indirect, irregular access).
    """

    efficiency_by_n: list[tuple[PositiveFloat, Fraction]]  # [n columns, fraction of peak]
    efficiency_by_weights: list[tuple[PositiveFloat, Fraction]] = []  # [M*K entries, factor]
    tensor_efficiency_by_n: list[tuple[PositiveFloat, Fraction]] | None = None  # tensor cores
    transposed_efficiency_by_n: list[tuple[PositiveFloat, Fraction]] | None = None  # W^T products
    sparse_bandwidth_efficiency: Fraction  # of memory bandwidth, CSR SpMM
    kernels_per_step: PositiveInt  # launches per recurrent step
    backward_kernels_per_step: PositiveInt | None = None  # per backward step (None: the same)

    def step_kernels(self, backward: bool = False) -> int:
        """Kernels launched per recurrent step (``backward``: a backward-data step)."""
        if backward and self.backward_kernels_per_step is not None:
            return self.backward_kernels_per_step
        return self.kernels_per_step

    @field_validator("efficiency_by_n", "tensor_efficiency_by_n", "transposed_efficiency_by_n")
    @classmethod
    def _sorted_nonempty(
        cls, table: list[tuple[float, float]] | None
    ) -> list[tuple[float, float]] | None:
        return None if table is None else increasing_points(table, "[n, fraction]", "n")

    @field_validator("efficiency_by_weights")
    @classmethod
    def _sorted_weights(cls, table: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return increasing_points(table, "[M*K, factor]", "M*K") if table else table

    def efficiency(
        self,
        n_columns: float,
        weight_elements: float | None = None,
        tensor: bool = False,
        transposed: bool = False,
    ) -> float:
        """Fraction of peak for ``n_columns`` right-hand columns and a weight matrix of
        ``weight_elements`` entries (None: a large one); ``tensor`` selects the tensor-core curve,
        ``transposed`` (a product with ``W^T``) the transposed one.

        Examples
        --------
        >>> g = GemmSpec(efficiency_by_n=[[16, 0.1], [64, 0.5]], efficiency_by_weights=[
        ...     [1024, 0.5], [4096, 1.0]], sparse_bandwidth_efficiency=0.5, kernels_per_step=2)
        >>> [round(g.efficiency(*args), 3) for args in [(16,), (16, 2048), (1,), (1000, 16)]]
        [0.1, 0.075, 0.1, 0.5]
        >>> t = g.model_copy(update={"transposed_efficiency_by_n": [(16, 0.08), (64, 0.3)]})
        >>> [t.efficiency(16, transposed=True), t.efficiency(16), g.efficiency(16, transposed=True)]
        [0.08, 0.1, 0.1]
        """
        curve = self.efficiency_by_n
        if tensor and self.tensor_efficiency_by_n is not None:
            curve = self.tensor_efficiency_by_n
        elif transposed and not tensor and self.transposed_efficiency_by_n is not None:
            curve = self.transposed_efficiency_by_n
        fraction = _log2_interpolate(curve, n_columns)
        if weight_elements is not None and self.efficiency_by_weights:
            loss = 1.0 - _log2_interpolate(self.efficiency_by_weights, weight_elements)
            if len(curve) >= 2:  # wide products have column tiles enough for every SM
                loss *= _log2_interpolate([(curve[-2][0], 1.0), (curve[-1][0], 0.0)], n_columns)
            fraction *= 1.0 - loss
        return fraction


class GpuMachine(Strict):
    """A GPU: streaming multiprocessors (SMs) with a register file and shared memory each, an L2
    and device memory. See :mod:`wpsim.sim.gpu` for the persistent and GEMM models."""

    kind: Literal["gpu"] = "gpu"
    name: str
    sms: Annotated[int, Field(ge=1, le=100_000), NotBool]  # streaming multiprocessors
    clock_hz: PositiveFloat
    flops_per_cycle_per_sm: dict[Dtype, PositiveFloat]  # vector units, by dtype (FMA = 2 flops)
    # matrix (tensor-core) units, by dtype: GEMMs of these dtypes run there (cuDNN/cuBLAS tensor-op
    # math); element-wise work and persistent kernels use the vector rate above
    tensor_flops_per_cycle_per_sm: dict[Dtype, PositiveFloat] = {}  # matrix units, by dtype
    register_file_bytes_per_sm: PositiveInt
    shared_memory_bytes_per_sm: PositiveInt  # the most one thread block may use
    l2: L2Spec
    memory: GpuMemorySpec
    # Kernel issue (module doc of wpsim.sim.gpu): the host enqueues dependent kernels at most
    # one per kernel_launch_s; the GPU leaves kernel_gap_s between a kernel and the next that
    # depends on it. k kernels around busy_s of work take max(k * launch, k * gap + busy_s).
    kernel_launch_s: NonNegativeFloat  # host: one launch call (cudaLaunchKernel, driver)
    kernel_gap_s: NonNegativeFloat  # GPU: from one kernel's end to a dependent kernel's start
    max_concurrent_kernels: PositiveInt  # streams that can run at once
    sync: GpuSyncSpec  # grid-wide synchronisation of persistent kernels
    persistent: PersistentSpec  # capacity and efficiency of persistent kernels
    gemm: GemmSpec  # per-step (sparse) GEMMs

    @field_validator("flops_per_cycle_per_sm")
    @classmethod
    def _some_dtype(cls, table: dict[str, float]) -> dict[str, float]:
        if not table:
            raise ValueError("an entry for at least one dtype")
        return table

    @property
    def total_cores(self) -> int:
        """SMs (what ``--cores`` restricts on a GPU)."""
        return self.sms

    def peak_flops(self, dtype: str) -> float:
        """Peak flop/s of the whole GPU for ``dtype``."""
        try:
            per_sm = self.flops_per_cycle_per_sm[dtype]  # type: ignore[index]
        except KeyError:
            raise ConfigError(
                f"machine '{self.name}': field 'flops_per_cycle_per_sm': no entry for dtype "
                f"{dtype!r}"
            ) from None
        return self.sms * self.clock_hz * per_sm

    def uses_tensor_cores(self, dtype: str) -> bool:
        """Whether GEMMs of ``dtype`` run on matrix (tensor-core) units."""
        return dtype in self.tensor_flops_per_cycle_per_sm

    def gemm_peak_flops(self, dtype: str) -> float:
        """Peak flop/s of a GEMM of ``dtype``: the tensor-core rate if the GPU has one for it."""
        if self.uses_tensor_cores(dtype):
            return self.sms * self.clock_hz * self.tensor_flops_per_cycle_per_sm[dtype]  # type: ignore[index]
        return self.peak_flops(dtype)

    def gemm_efficiency(
        self,
        n_columns: float,
        weight_elements: float | None,
        dtype: str,
        transposed: bool = False,
    ) -> float:
        """Fraction of :meth:`gemm_peak_flops` a product reaches (see :class:`GemmSpec`);
        ``transposed``: a product with the weights transposed (backward data)."""
        tensor = self.uses_tensor_cores(dtype)
        return self.gemm.efficiency(n_columns, weight_elements, tensor, transposed)

    @property
    def register_file_bytes(self) -> int:
        return self.sms * self.register_file_bytes_per_sm

    def with_cores(self, n_sms: int) -> GpuMachine:
        """The first ``n_sms`` SMs (a what-if; L2 and DRAM unchanged)."""
        if n_sms < 1 or n_sms > self.sms:
            raise ConfigError(f"machine '{self.name}': --cores {n_sms}: expected 1..{self.sms} SMs")
        return self.model_copy(update={"sms": n_sms})


@dataclass(frozen=True)
class PersistentKernel:
    """The software mechanisms of a persistent kernel.

    Attributes
    ----------
    sync : {"barrier", "flags"}
        Global barrier per step (Diamos et al. 2016) or per-producer timestamp flags (Lamport
        timestamps, Zhu et al. 2018).
    bank_aware : bool
        Sparse weights laid out so a warp's loads of ``h`` hit distinct shared-memory banks.
    wide_loads : bool
        One shared-memory load fetches ``h`` of several batch columns.
    """

    sync: str = "flags"
    bank_aware: bool = True
    wide_loads: bool = True

    def __post_init__(self) -> None:
        if self.sync not in ("barrier", "flags"):
            raise ConfigError(f"persistent sync: got {self.sync!r}, expected 'barrier' or 'flags'")

    @property
    def label(self) -> str:
        parts = [self.sync]
        if self.bank_aware:
            parts.append("bank-aware")
        if self.wide_loads:
            parts.append("wide loads")
        return ", ".join(parts)


DIAMOS_2016 = PersistentKernel(sync="barrier", bank_aware=False, wide_loads=False)
ZHU_2018 = PersistentKernel(sync="flags", bank_aware=True, wide_loads=True)
