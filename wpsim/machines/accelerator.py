"""Machine descriptions of kind ``accelerator`` (validated like :mod:`wpsim.machines.cpu`).

Units: seconds, bytes, bytes per second, hertz. Every value in a shipped file carries its source
in a same-line comment (``spec:``, ``estimate:``, ``assumption:``, ``configuration:``, ...).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from wpsim.config import NotBool
from wpsim.errors import ConfigError
from wpsim.machines.cpu import BarrierSpec, MemorySpec
from wpsim.machines.fields import (
    Dtype,
    Fraction,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Strict,
)

#: Most cores of an accelerator, in a machine file or as ``--cores`` (a what-if).
MAX_CORES = 4096


# ---- multi-core LSTM accelerator ------------------------------------------------------------


class BufferSpec(Strict):
    """An on-chip SRAM buffer of one core."""

    size_bytes: PositiveInt  # capacity
    bandwidth_Bps: PositiveFloat  # read bandwidth into the datapath


class NocSpec(Strict):
    """The on-chip network between cores: one message costs ``latency + bytes / bandwidth``."""

    latency_s: NonNegativeFloat  # one message
    bandwidth_Bps: PositiveFloat  # one link, per direction


class AcceleratorMachine(Strict):
    """A multi-core LSTM accelerator (Peng et al., MCSoC 2019 style).

    Each core has a MAC array of ``macs_per_cycle[dtype]`` multiply-accumulates per cycle, arranged
    as rows of ``dot_product_width`` MACs (one output row per array row), a vector unit of
    ``vector_lanes`` element-wise operations per cycle (gate nonlinearities, state update), a
    weight buffer and an activation buffer. Cores talk over an on-chip network (``noc``) and share
    one DRAM (``memory``). Weights that fit a core's weight buffer stay there across steps; the
    others stream from DRAM at every step. See :mod:`wpsim.sim.accelerator` for the cost model.
    """

    kind: Literal["accelerator"] = "accelerator"
    name: str
    cores: Annotated[int, Field(ge=1, le=MAX_CORES), NotBool]  # identical cores on the chip
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
