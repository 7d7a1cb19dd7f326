"""Machine descriptions (``hw_configs/*.yaml``) as validated models.

A machine file has a ``kind``: ``cpu`` (this module), ``accelerator`` and ``gpu`` (see
:mod:`wpsim.machines.accelerator` and :mod:`wpsim.machines.gpu`). Every value in a shipped file carries its source in a comment next to it, and
calibrated files carry a ``calibration`` block (date, CPU model, library versions).

Units: seconds, bytes, bytes per second, hertz. Field names say which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from wpsim.config import NotBool
from wpsim.errors import ConfigError
from wpsim.machines.fields import (
    CellName,
    Fraction,
    NonNegativeFloat,
    PositiveFloat,
    Strict,
    UnitInterval,
    increasing_points,
    piecewise_linear,
)


class CacheLevel(Strict):
    """One cache level. ``scope: core`` is private to each core, ``socket`` is shared per socket."""

    name: str
    scope: Literal["core", "socket"]
    size_bytes: Annotated[int, NotBool] = Field(..., ge=1)
    bandwidth_Bps: PositiveFloat  # sustained read bandwidth one core gets from this level
    latency_s: NonNegativeFloat
    #: Private levels only, optional: ``[ratio, fraction]`` points, the fraction of a weight
    #: block's bytes this level serves when the weights read since the block's last use (its
    #: reuse distance, itself included) are ``ratio`` times the level's size; linear between
    #: points, the end values outside. Without it the level is a strict LRU (1 up to its size,
    #: 0 beyond). Real caches fall off smoothly: on the calibration machine a working set of 1x
    #: the L2 is still ~70% served from it, 1.5x ~20% (``wpsim calibrate`` measures it).
    hit_curve: list[tuple[PositiveFloat, UnitInterval]] | None = None

    @field_validator("hit_curve")
    @classmethod
    def _increasing_ratios(cls, curve):
        return curve if curve is None else increasing_points(curve, "[ratio, fraction]", "ratios")


class MemorySpec(Strict):
    """DRAM of one socket: its total bandwidth is shared by the cores streaming from it."""

    bandwidth_Bps: PositiveFloat  # sustained, per socket (all channels)
    per_core_bandwidth_Bps: PositiveFloat  # the most one core can draw on its own
    latency_s: NonNegativeFloat


class HandoffSpec(Strict):
    """Moving a hidden state produced on one core to another (cache-to-cache transfer)."""

    latency_s: NonNegativeFloat
    bandwidth_Bps: PositiveFloat
    cross_socket_latency_s: NonNegativeFloat


class BarrierSpec(Strict):
    """A barrier across k cores costs ``base_s + per_doubling_s * ceil(log2 k)`` (tree barrier)."""

    base_s: NonNegativeFloat
    per_doubling_s: NonNegativeFloat


class EfficiencySpec(Strict):
    """Achieved fraction of peak flops by shape.

    ``gemm_by_n`` is a table of ``[n, fraction]`` for a matrix product whose right-hand side has
    ``n`` columns (batch x steps): n = 1 is a GEMV. Between points it is interpolated linearly in
    log2(n); outside, the end values hold. ``elementwise`` is the fraction of peak reached by the
    gate nonlinearities and state update.
    """

    gemm_by_n: list[tuple[PositiveFloat, Fraction]]
    elementwise: Fraction
    #: ``[n, H, fraction]`` for the product X(n, H) @ W(G*H, H)^T as measured at each hidden size
    #: (``wpsim calibrate`` already measures it); when given, interpolated in log2(n) and log2(H)
    #: instead of ``gemm_by_n`` (the best over H), which overstates skinny products at large H.
    gemm_by_n_h: list[tuple[PositiveFloat, PositiveFloat, Fraction]] | None = None
    #: By cell type, the ``gemm_by_n_h`` grid measured with that cell's own ``W (G*H, H)``; used
    #: for its workloads instead of ``gemm_by_n_h`` (measured with ``W (4H, H)``): a skinny
    #: product's rate depends on where its matrix fits, and an Elman matrix is 4x smaller.
    gemm_by_n_h_by_cell: (
        dict[CellName, list[tuple[PositiveFloat, PositiveFloat, Fraction]]] | None
    ) = None
    #: By cell type, the same grid with the weights hot: a ``W`` larger than half the largest
    #: private cache timed on the rows that fit. Used for a product whose weights on one core
    #: fit that cache (a core's share of a split recurrent product), where the grids above,
    #: measured streaming such a ``W`` from the shared cache, would charge that stream although
    #: the weights stay in the core's cache.
    gemm_by_n_h_hot: dict[CellName, list[tuple[PositiveFloat, PositiveFloat, Fraction]]] | None = (
        None
    )
    #: By cell type, ``[H, B, seconds]``: one step's element-wise work of a forward cell task
    #: (bias add, gate nonlinearities, state update, with numpy's per-call overhead, beyond the
    #: ``task_overhead_s`` and ``step_overhead_s`` of the call) at hidden size H and batch B, as
    #: measured (``wpsim calibrate``). When given for the workload's cell
    #: it replaces ``elementwise`` for forward cell tasks, interpolated in log2(H) and log2(B): a
    #: fraction of peak cannot describe work whose time is mostly per-call overhead at small
    #: shapes and memory passes over strided gate slices at large ones.
    elementwise_step_s: (
        dict[CellName, list[tuple[PositiveFloat, PositiveFloat, PositiveFloat]]] | None
    ) = None

    #: Seconds of one product call that do not shrink with its size (the numpy call and the
    #: BLAS kernel's start-up; ``wpsim calibrate`` measures it as ``2 t(half the rows) - t(all
    #: rows)``). The grids above hold it within a whole product; a product split across ``k``
    #: cores costs each member ``fixed + (whole - fixed) / k``, not ``whole / k``.
    product_fixed_s: Annotated[float, NotBool] = Field(0.0, ge=0)

    @field_validator("elementwise_step_s")
    @classmethod
    def _full_grid(cls, tables):
        for cell, points in (tables or {}).items():
            hs = {h for h, _, _ in points}
            bs = {b for _, b, _ in points}
            if len(points) != len(hs) * len(bs) or len({(h, b) for h, b, _ in points}) != len(
                points
            ):
                raise ValueError(f"{cell}: [H, B, seconds] points must form a full H x B grid")
        return tables

    @field_validator("gemm_by_n")
    @classmethod
    def _sorted_nonempty(cls, table: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return increasing_points(table, "[n, fraction]", "n")


#: The per-cell tables of a cell's kernel that ``wpsim calibrate`` measures for every registered
#: cell (:meth:`CpuMachine.cell_calibration`).
CELL_KERNEL_TABLES = ("efficiency.elementwise_step_s", "task_overhead_s", "step_overhead_s")


@dataclass(frozen=True)
class CellCalibration:
    """A machine file's calibration of one cell (:meth:`CpuMachine.cell_calibration`): its
    GEMM grids (its own, else the LSTM-shaped ``gemm_by_n_h``), its element-wise grid and fixed
    costs, and the names of the per-cell tables (:data:`CELL_KERNEL_TABLES`) the file gives
    other cells but not this one."""

    gemm_by_n_h: list[tuple[float, float, float]] | None
    gemm_by_n_h_hot: list[tuple[float, float, float]] | None
    elementwise_step_s: list[tuple[float, float, float]] | None
    task_overhead_s: float
    step_overhead_s: float
    backward_step_overhead_s: float
    missing: tuple[str, ...]


class CpuMachine(Strict):
    """A multi-socket, multi-core CPU. See ``docs/reference/machines.md`` for every field."""

    kind: Literal["cpu"] = "cpu"
    name: str
    sockets: Annotated[int, NotBool] = Field(..., ge=1, le=64)
    cores_per_socket: Annotated[int, NotBool] = Field(..., ge=1, le=4096)
    clock_hz: PositiveFloat
    peak_flops_per_cycle: dict[Literal["float32", "float64", "float16"], PositiveFloat]
    caches: list[CacheLevel]
    memory: MemorySpec
    handoff: HandoffSpec
    barrier: BarrierSpec
    dispatch_overhead_s: NonNegativeFloat
    efficiency: EfficiencySpec
    corun_slowdown_per_core: NonNegativeFloat = 0.0
    #: Dispatch overhead when every core of the socket is busy, so the runtime's scheduler has to
    #: take a core from a worker to hand out the next task (default: ``dispatch_overhead_s``):
    #: a number, or ``[task_s, overhead_s]`` points by the task's own time (linear between the
    #: points, flat outside them), for runtimes whose cost differs between short and long tasks.
    dispatch_overhead_busy_s: (
        NonNegativeFloat | list[tuple[NonNegativeFloat, NonNegativeFloat]] | None
    ) = None
    #: Per-task overhead of a task split across a group holding every core of the socket (the
    #: barriers between the members and their skew; a number, or ``[task_s, overhead_s]`` points
    #: by a member's own time: the slower member decides each step, more so for longer ones);
    #: default: ``dispatch_s(all_busy=True)``.
    dispatch_overhead_group_s: (
        NonNegativeFloat | list[tuple[NonNegativeFloat, NonNegativeFloat]] | None
    ) = None
    #: Per-task overhead when ONE group of cores runs the whole graph in an order fixed in
    #: advance (``sequential``, ``layerwise``: with one group the order cannot depend on timing;
    #: ``kernels.executor`` then hands the whole order out at once, no round trip per task);
    #: default: ``dispatch_overhead_s``. A whole-socket group takes ``dispatch_overhead_group_s``.
    #: A number or ``[task_s, overhead_s]`` points, as ``dispatch_overhead_busy_s``.
    dispatch_overhead_sequence_s: (
        NonNegativeFloat | list[tuple[NonNegativeFloat, NonNegativeFloat]] | None
    ) = None
    #: The runtime computes a recurrent product of at most this many batch rows on one core as
    #: that many GEMVs (``kernels.products.gemv_max_batch()``); a product split across helpers stays one
    #: GEMM. 0: always one GEMM.
    recurrent_gemv_max_batch: Annotated[int, NotBool] = Field(0, ge=0)
    #: A task split across helpers projects its inputs split over time steps (every member
    #: reads all of ``W_ih`` and writes whole rows) when ``W_ih`` has at most this many bytes,
    #: else split by gate rows (1/k of ``W_ih`` each); ``kernels.executor`` does so up to
    #: ``INPUT_SPLIT_BY_TIME_MAX_BYTES``. 0: always by gate rows.
    input_split_by_time_max_bytes: Annotated[int, NotBool] = Field(0, ge=0)
    #: Whether a task split across helper cores also splits the element-wise work of its
    #: recurrent tasks (a threaded runtime's parallel loop does); ``false``: one member's time
    #: holds all of it (``kernels.executor``: after each step's barrier every member runs the
    #: whole element-wise update, so that no second barrier is needed, or, where the recurrence
    #: is element-wise only (SRU, QRNN, IndRNN), the lead runs it while the others share the
    #: products).
    elementwise_split_across_helpers: bool = Field(True, strict=True)
    #: Fixed time per recurrent step of a cell, by cell type: the runtime's per-step cost of
    #: launching the element-wise cell math (interpreter and ufunc dispatch for numpy kernels;
    #: 0 for compiled runtimes unless measured).
    step_overhead_s: dict[CellName, NonNegativeFloat] = {}
    #: Fixed time per task with recurrent work, by cell type, besides its steps: the runtime's
    #: per-call cost of a chunk task (argument checks, buffers, the input projection's call; for
    #: numpy kernels the intercept of a task's time against its number of steps at a tiny size).
    task_overhead_s: dict[CellName, NonNegativeFloat] = {}
    #: Fixed time per backward (BPTT) step, by cell type; a cell missing here takes its
    #: ``step_overhead_s`` (a runtime's autograd or backward kernels: :mod:`wpsim.sim.runtime`).
    backward_step_overhead_s: dict[CellName, NonNegativeFloat] = {}
    calibration: dict[str, Any] | None = None
    #: Set by :meth:`with_cores`: the cores per socket of the whole machine, of which a run uses
    #: ``cores_per_socket``; the others stay free for the runtime (see ``dispatch_s``).
    physical_cores_per_socket: Annotated[int, NotBool] | None = Field(None, ge=1)

    @field_validator(
        "dispatch_overhead_busy_s", "dispatch_overhead_sequence_s", "dispatch_overhead_group_s"
    )
    @classmethod
    def _busy_points_increase(cls, value: Any) -> Any:
        if value == []:
            raise ValueError("a number, or at least one [task_s, overhead_s] point")
        if isinstance(value, list):
            increasing_points(value, "[task_s, overhead_s]", "task_s")
        return value

    @field_validator("caches")
    @classmethod
    def _hierarchy_is_possible(cls, caches: list[CacheLevel]) -> list[CacheLevel]:
        if not caches:
            raise ValueError("at least one cache level")
        names = [c.name for c in caches]
        if len(set(names)) != len(names):
            raise ValueError(f"distinct cache names (got {names})")
        seen_socket = False
        for inner, outer in zip(caches, caches[1:], strict=False):
            if outer.size_bytes < inner.size_bytes:
                raise ValueError(
                    f"each level at least as large as the one inside it "
                    f"({outer.name} {outer.size_bytes} B < {inner.name} {inner.size_bytes} B)"
                )
        for level in caches:
            if level.hit_curve is not None and level.scope != "core":
                raise ValueError(f"{level.name}: hit_curve is for private (scope: core) levels")
            if level.scope == "socket":
                seen_socket = True
            elif seen_socket:
                raise ValueError(
                    f"private (core) levels before shared (socket) ones ({level.name})"
                )
        return caches

    @model_validator(mode="after")
    def _needs_peak_for_some_dtype(self) -> CpuMachine:
        if not self.peak_flops_per_cycle:
            raise ValueError("peak_flops_per_cycle for at least one dtype")
        return self

    # ---- derived ---------------------------------------------------------------------------
    @property
    def total_cores(self) -> int:
        return self.sockets * self.cores_per_socket

    def peak_flops_per_core(self, dtype: str) -> float:
        """Peak flop/s of one core for ``dtype`` (clock x flops per cycle)."""
        try:
            return self.clock_hz * self.peak_flops_per_cycle[dtype]  # type: ignore[index]
        except KeyError:
            raise ConfigError(
                f"machine '{self.name}': field 'peak_flops_per_cycle': no entry for dtype {dtype!r}"
            ) from None

    @property
    def private_levels(self) -> list[CacheLevel]:
        return [c for c in self.caches if c.scope == "core"]

    @property
    def shared_level(self) -> CacheLevel | None:
        shared = [c for c in self.caches if c.scope == "socket"]
        return shared[-1] if shared else None

    @property
    def socket_cores(self) -> int:
        """Cores per socket of the whole machine (``with_cores`` may use fewer)."""
        return self.physical_cores_per_socket or self.cores_per_socket

    def dispatch_variant(
        self, all_busy: bool, whole_socket_group: bool = False, sequence: bool = False
    ) -> float | list[tuple[float, float]]:
        """The dispatch overhead that applies, as the machine gives it: a number, or
        ``[task_s, overhead_s]`` points (read them with :meth:`dispatch_s`).

        ``dispatch_overhead_group_s`` for a task split across a group of every core of the
        socket, ``dispatch_overhead_sequence_s`` for the tasks of a run with one group
        (``sequence``), ``dispatch_overhead_busy_s`` when every core of the socket is busy (a
        whole-socket group counts as busy where the group value is missing), else
        ``dispatch_overhead_s``; a missing variant falls back to the next one.
        """
        if whole_socket_group and self.dispatch_overhead_group_s is not None:
            return self.dispatch_overhead_group_s
        if sequence and not whole_socket_group and self.dispatch_overhead_sequence_s is not None:
            return self.dispatch_overhead_sequence_s
        if (all_busy or whole_socket_group) and self.dispatch_overhead_busy_s is not None:
            return self.dispatch_overhead_busy_s
        return self.dispatch_overhead_s

    def dispatch_s(
        self,
        all_busy: bool,
        whole_socket_group: bool = False,
        task_s: float = 0.0,
        sequence: bool = False,
    ) -> float:
        """Per-task dispatch overhead of a task whose own time is ``task_s``: the
        :meth:`dispatch_variant` that applies, read at ``task_s`` where it is a table.

        Examples
        --------
        >>> from wpsim.machines import load_machine, resolve_machine_path
        >>> m = load_machine(resolve_machine_path("desktop8"))
        >>> m = m.model_copy(update={"dispatch_overhead_busy_s": [[1e-5, 2e-5], [3e-5, 4e-5]]})
        >>> [round(m.dispatch_s(True, task_s=t) * 1e6) for t in (0.0, 2e-5, 1.0)]
        [20, 30, 40]
        """
        variant = self.dispatch_variant(all_busy, whole_socket_group, sequence)
        return piecewise_linear(variant, task_s) if isinstance(variant, list) else variant

    def step_overhead(self, cell: str | None, backward: bool = False) -> float:
        """Fixed seconds per recurrent step of ``cell`` (``backward``: a BPTT step); 0 for a
        cell without an entry (None: a cell no calibration measured, see
        :meth:`cell_calibration`)."""
        if cell is None:
            return 0.0
        if backward and cell in self.backward_step_overhead_s:
            return self.backward_step_overhead_s[cell]
        return self.step_overhead_s.get(cell, 0.0)

    def _cell_kernel_tables(self) -> dict[str, dict[str, Any]]:
        """:data:`CELL_KERNEL_TABLES` by name, each a mapping by cell (empty where absent)."""
        tables = (
            self.efficiency.elementwise_step_s or {},
            self.task_overhead_s,
            self.step_overhead_s,
        )
        return dict(zip(CELL_KERNEL_TABLES, tables, strict=True))

    def cell_calibration(self, cell: str | None) -> CellCalibration:
        """What this machine file measured of the kernels of ``cell`` (a workload's
        :attr:`~wpsim.model.workload.Workload.calibration_key`; None: a cell declared in YAML,
        which no calibration measured), and the per-cell tables it lacks.

        A cell without an entry is charged as a machine without the table charges every cell:
        the products at ``gemm_by_n_h`` (measured with ``W (4H, H)``) or ``gemm_by_n``, the
        forward element-wise work at the fraction ``efficiency.elementwise`` of peak, no fixed
        cost per task or step. ``wpsim calibrate`` measures the element-wise tables and fixed
        costs (:data:`CELL_KERNEL_TABLES`) of every registered cell, so a file that has them
        for some cells but not this one (``missing``) predates the cell, or the cell is
        declared in YAML; :meth:`fallback_note` says so in a result.

        Examples
        --------
        >>> from wpsim.machines import load_machine, resolve_machine_path
        >>> m = load_machine(resolve_machine_path("xeon_kvm_2core"))
        >>> m.cell_calibration("gru").missing, m.cell_calibration(None).task_overhead_s
        ((), 0.0)
        """
        eff = self.efficiency
        own = (eff.gemm_by_n_h_by_cell or {}).get(cell) if cell else None
        elementwise = (eff.elementwise_step_s or {}).get(cell) if cell else None
        missing = tuple(
            name
            for name, table in self._cell_kernel_tables().items()
            if table and cell not in table
        )
        return CellCalibration(
            gemm_by_n_h=own or eff.gemm_by_n_h,
            gemm_by_n_h_hot=(eff.gemm_by_n_h_hot or {}).get(cell) if cell else None,
            elementwise_step_s=elementwise,
            task_overhead_s=self.task_overhead_s.get(cell, 0.0) if cell else 0.0,
            step_overhead_s=self.step_overhead(cell),
            backward_step_overhead_s=self.step_overhead(cell, backward=True),
            missing=missing,
        )

    def fallback_note(self, cell: str | None, label: str) -> str | None:
        """A result's note when the file lacks per-cell tables for ``cell`` that it gives other
        cells (:meth:`cell_calibration`), or None.

        Examples
        --------
        >>> from wpsim.machines import load_machine, resolve_machine_path
        >>> m = load_machine(resolve_machine_path("xeon_kvm_2core")).model_copy(update={"name": "m"})
        >>> print(m.fallback_note("sru", "sru"))  # doctest: +NORMALIZE_WHITESPACE
        machine 'm' has no efficiency.elementwise_step_s, task_overhead_s, step_overhead_s for
        cell 'sru' (it has them for gru, lstm, rnn; the file predates the cell): charged its
        forward element-wise work at efficiency.elementwise and its fixed cost per task and per
        step as 0 (wpsim calibrate measures every registered cell)
        >>> m.fallback_note("lstm", "lstm(proj_size=64)") is None
        True
        """
        missing = self.cell_calibration(cell).missing
        if not missing:
            return None
        charged = []
        if "efficiency.elementwise_step_s" in missing:
            charged.append("its forward element-wise work at efficiency.elementwise")
        fixed = [
            what
            for name, what in (("task_overhead_s", "per task"), ("step_overhead_s", "per step"))
            if name in missing
        ]
        if fixed:
            charged.append(f"its fixed cost {' and '.join(fixed)} as 0")
        tables = self._cell_kernel_tables()
        having = sorted(set.intersection(*(set(tables[name]) for name in missing)))
        why, remedy = (
            ("a cell declared in YAML", "a registered cell is calibrated")
            if cell is None
            else ("the file predates the cell", "wpsim calibrate measures every registered cell")
        )
        return (
            f"machine '{self.name}' has no {', '.join(missing)} for cell '{label}' (it has them "
            f"for {', '.join(having)}; {why}): charged {' and '.join(charged)} ({remedy})"
        )

    def socket_of(self, core: int) -> int:
        return core // self.cores_per_socket

    def barrier_s(self, n_cores: int) -> float:
        """Cost of a barrier across ``n_cores`` (0 for one core)."""
        if n_cores <= 1:
            return 0.0
        return self.barrier.base_s + self.barrier.per_doubling_s * (n_cores - 1).bit_length()

    def with_cores(self, n_cores: int) -> CpuMachine:
        """This machine restricted to its first ``n_cores`` cores (filling socket 0 first)."""
        if n_cores < 1 or n_cores > self.total_cores:
            raise ConfigError(
                f"machine '{self.name}': --cores {n_cores}: expected 1..{self.total_cores}"
            )
        per_socket = min(n_cores, self.cores_per_socket)
        sockets = -(-n_cores // per_socket)
        if sockets * per_socket != n_cores:
            raise ConfigError(
                f"machine '{self.name}': --cores {n_cores}: expected at most {self.cores_per_socket}"
                f" or a multiple of it (whole sockets)"
            )
        physical = self.physical_cores_per_socket or self.cores_per_socket
        return self.model_copy(
            update={
                "sockets": sockets,
                "cores_per_socket": per_socket,
                "physical_cores_per_socket": physical,
            }
        )
