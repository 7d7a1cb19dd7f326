"""Machine descriptions of kind ``accelerator`` and ``gpu`` (validated like :mod:`wpsim.hardware`).

Units: seconds, bytes, bytes per second, hertz. Every value in a shipped file carries its source
in a same-line comment (``spec:``, ``estimate:``, ``assumption:``, ``configuration:``, ...).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, field_validator

from wpsim.errors import ConfigError
from wpsim.hardware import (
    BarrierSpec,
    Fraction,
    MemorySpec,
    NonNegativeFloat,
    PositiveFloat,
    _NotBool,
    _Strict,
    increasing_points,
)

Dtype = Literal["float32", "float64", "float16", "bfloat16"]
#: Most cores of an accelerator, in a machine file or as ``--cores`` (a what-if).
MAX_CORES = 4096
PositiveInt = Annotated[int, Field(ge=1), _NotBool]


# ---- multi-core LSTM accelerator ------------------------------------------------------------


class BufferSpec(_Strict):
    """An on-chip SRAM buffer of one core."""

    size_bytes: PositiveInt  # capacity
    bandwidth_Bps: PositiveFloat  # read bandwidth into the datapath


class NocSpec(_Strict):
    """The on-chip network between cores: one message costs ``latency + bytes / bandwidth``."""

    latency_s: NonNegativeFloat  # one message
    bandwidth_Bps: PositiveFloat  # one link, per direction


class AcceleratorMachine(_Strict):
    """A multi-core LSTM accelerator (Peng et al., MCSoC 2019 style).

    Each core has a MAC array of ``macs_per_cycle[dtype]`` multiply-accumulates per cycle, arranged
    as rows of ``dot_product_width`` MACs (one output row per array row), a vector unit of
    ``vector_lanes`` element-wise operations per cycle (gate nonlinearities, state update), a
    weight buffer and an activation buffer. Cores talk over an on-chip network (``noc``) and share
    one DRAM (``memory``). Weights that fit a core's weight buffer stay there across steps; the
    others stream from DRAM at every step. See :mod:`wpsim.accel.accelerator` for the cost model.
    """

    kind: Literal["accelerator"] = "accelerator"
    name: str
    cores: Annotated[int, Field(ge=1, le=MAX_CORES), _NotBool]  # identical cores on the chip
    clock_hz: PositiveFloat
    macs_per_cycle: dict[Dtype, PositiveFloat]  # per core, by dtype (2 flops per MAC)
    dot_product_width: PositiveInt  # MACs per array row (columns consumed per cycle)
    mac_efficiency: Fraction  # fraction of cycles the array issues (stalls not modelled)
    mac_pipeline_latency_s: NonNegativeFloat  # fill of each dependent (recurrent) product
    vector_lanes: PositiveInt  # element-wise operations per cycle per core
    weight_buffer: BufferSpec  # per core; weights that fit stay across steps
    activation_buffer: BufferSpec  # per core; activations beyond it spill to DRAM
    noc: NocSpec  # hand-offs between cores, helper-core all-gathers
    memory: MemorySpec  # one DRAM shared by all cores
    barrier: BarrierSpec  # helper-core barrier per step
    task_overhead_s: NonNegativeFloat  # controller cost of issuing one task

    @field_validator("macs_per_cycle")
    @classmethod
    def _some_dtype(cls, table: dict[str, float]) -> dict[str, float]:
        if not table:
            raise ValueError("an entry for at least one dtype")
        return table

    # ---- the interface the engine's CPU machine also offers -----------------------------------
    @property
    def total_cores(self) -> int:
        return self.cores

    @property
    def cores_per_socket(self) -> int:
        return self.cores

    @property
    def sockets(self) -> int:
        return 1

    def macs_per_core(self, dtype: str) -> float:
        """MACs per cycle of one core for ``dtype`` (one-line error if the design lacks it)."""
        try:
            return self.macs_per_cycle[dtype]  # type: ignore[index]
        except KeyError:
            raise ConfigError(
                f"machine '{self.name}': field 'macs_per_cycle': no entry for dtype {dtype!r}"
            ) from None

    def peak_flops_per_core(self, dtype: str) -> float:
        """Peak flop/s of one core (2 flops per MAC)."""
        return 2.0 * self.macs_per_core(dtype) * self.clock_hz

    def barrier_s(self, n_cores: int) -> float:
        """Barrier over ``n_cores`` cores: ``base + per_doubling * ceil(log2 k)`` (0 for one)."""
        if n_cores <= 1:
            return 0.0
        return self.barrier.base_s + self.barrier.per_doubling_s * (n_cores - 1).bit_length()

    def with_cores(self, n_cores: int) -> AcceleratorMachine:
        """The same core design replicated ``n_cores`` times (a what-if: 1 to :data:`MAX_CORES`,
        the bound of a machine file's ``cores``)."""
        if not 1 <= n_cores <= MAX_CORES:
            raise ConfigError(f"machine '{self.name}': --cores {n_cores}: expected 1..{MAX_CORES}")
        return self.model_copy(update={"cores": n_cores})

    def with_weight_buffer(self, size_bytes: int) -> AcceleratorMachine:
        """The same design with a weight buffer of ``size_bytes`` per core (a what-if)."""
        buffer = self.weight_buffer.model_copy(update={"size_bytes": int(size_bytes)})
        return self.model_copy(update={"weight_buffer": buffer})


# ---- GPU ------------------------------------------------------------------------------------


class L2Spec(_Strict):
    """The GPU's shared L2 cache."""

    size_bytes: PositiveInt
    bandwidth_Bps: PositiveFloat  # aggregate, all SMs
    latency_s: NonNegativeFloat  # one load that hits (one direction of a hand-off)


class GpuMemorySpec(_Strict):
    """Device memory (GDDR/HBM): sustained bandwidth of all SMs together."""

    bandwidth_Bps: PositiveFloat
    latency_s: NonNegativeFloat


class GpuSyncSpec(_Strict):
    """Grid-wide synchronisation of a persistent kernel, once per time step.

    ``global_barrier_s``: all blocks arrive on a counter in global memory and spin until the last
    one arrives. ``flag_s``: a consumer polls one producer's timestamp flag (Lamport timestamps;
    the producer's store latency is counted separately as an L2 hand-off).
    """

    global_barrier_s: NonNegativeFloat  # one grid-wide barrier through global memory
    flag_s: NonNegativeFloat  # one poll that finds a producer's timestamp flag


class PersistentSpec(_Strict):
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
    random_bank_conflict_degree: Annotated[
        float, Field(ge=1), _NotBool
    ]  # without bank-aware layout


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


class GemmSpec(_Strict):
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
    * ``sparse_bandwidth_efficiency``: fraction of the memory bandwidth a CSR sparse-times-dense
      product sustains (indirect, irregular access).
    """

    efficiency_by_n: list[tuple[PositiveFloat, Fraction]]  # [n columns, fraction of peak]
    efficiency_by_weights: list[tuple[PositiveFloat, Fraction]] = []  # [M*K entries, factor]
    tensor_efficiency_by_n: list[tuple[PositiveFloat, Fraction]] | None = None  # tensor cores
    sparse_bandwidth_efficiency: Fraction  # of memory bandwidth, CSR SpMM
    kernels_per_step: PositiveInt  # launches per recurrent step
    backward_kernels_per_step: PositiveInt | None = None  # per backward step (None: the same)

    def step_kernels(self, backward: bool = False) -> int:
        """Kernels launched per recurrent step (``backward``: a backward-data step)."""
        if backward and self.backward_kernels_per_step is not None:
            return self.backward_kernels_per_step
        return self.kernels_per_step

    @field_validator("efficiency_by_n", "tensor_efficiency_by_n")
    @classmethod
    def _sorted_nonempty(cls, table: list[tuple[float, float]] | None):
        return None if table is None else increasing_points(table, "[n, fraction]", "n")

    @field_validator("efficiency_by_weights")
    @classmethod
    def _sorted_weights(cls, table: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return increasing_points(table, "[M*K, factor]", "M*K") if table else table

    def efficiency(
        self, n_columns: float, weight_elements: float | None = None, tensor: bool = False
    ) -> float:
        """Fraction of peak for ``n_columns`` right-hand columns and a weight matrix of
        ``weight_elements`` entries (None: a large one); ``tensor`` selects the tensor-core curve.

        Examples
        --------
        >>> g = GemmSpec(efficiency_by_n=[[16, 0.1], [64, 0.5]], efficiency_by_weights=[
        ...     [1024, 0.5], [4096, 1.0]], sparse_bandwidth_efficiency=0.5, kernels_per_step=2)
        >>> [round(g.efficiency(*args), 3) for args in [(16,), (16, 2048), (1,), (1000, 16)]]
        [0.1, 0.075, 0.1, 0.5]
        """
        curve = self.efficiency_by_n
        if tensor and self.tensor_efficiency_by_n is not None:
            curve = self.tensor_efficiency_by_n
        fraction = _log2_interpolate(curve, n_columns)
        if weight_elements is not None and self.efficiency_by_weights:
            loss = 1.0 - _log2_interpolate(self.efficiency_by_weights, weight_elements)
            if len(curve) >= 2:  # wide products have column tiles enough for every SM
                loss *= _log2_interpolate([(curve[-2][0], 1.0), (curve[-1][0], 0.0)], n_columns)
            fraction *= 1.0 - loss
        return fraction


class GpuMachine(_Strict):
    """A GPU: streaming multiprocessors (SMs) with a register file and shared memory each, an L2
    and device memory. See :mod:`wpsim.accel.gpu` for the persistent and GEMM models."""

    kind: Literal["gpu"] = "gpu"
    name: str
    sms: Annotated[int, Field(ge=1, le=100_000), _NotBool]  # streaming multiprocessors
    clock_hz: PositiveFloat
    flops_per_cycle_per_sm: dict[Dtype, PositiveFloat]  # vector units, by dtype (FMA = 2 flops)
    # matrix (tensor-core) units, by dtype: GEMMs of these dtypes run there (cuDNN/cuBLAS tensor-op
    # math); element-wise work and persistent kernels use the vector rate above
    tensor_flops_per_cycle_per_sm: dict[Dtype, PositiveFloat] = {}  # matrix units, by dtype
    register_file_bytes_per_sm: PositiveInt
    shared_memory_bytes_per_sm: PositiveInt  # the most one thread block may use
    l2: L2Spec
    memory: GpuMemorySpec
    # Kernel issue (module doc of wpsim.accel.gpu): the host enqueues dependent kernels at most
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

    def gemm_efficiency(self, n_columns: float, weight_elements: float | None, dtype: str) -> float:
        """Fraction of :meth:`gemm_peak_flops` a product reaches (see :class:`GemmSpec`)."""
        return self.gemm.efficiency(n_columns, weight_elements, self.uses_tensor_cores(dtype))

    @property
    def register_file_bytes(self) -> int:
        return self.sms * self.register_file_bytes_per_sm

    def with_cores(self, n_sms: int) -> GpuMachine:
        """The first ``n_sms`` SMs (a what-if; L2 and DRAM unchanged)."""
        if n_sms < 1 or n_sms > self.sms:
            raise ConfigError(f"machine '{self.name}': --cores {n_sms}: expected 1..{self.sms} SMs")
        return self.model_copy(update={"sms": n_sms})


MACHINE_KINDS = {"accelerator": AcceleratorMachine, "gpu": GpuMachine}
