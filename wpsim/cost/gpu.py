"""GPU models: persistent RNN kernels, per-step GEMMs, and the layer x time wavefront on streams.

Notation: ``S`` SMs at clock ``f``; ``P = S * f * flops_per_cycle_per_sm[dtype]`` the peak;
``s`` bytes per element; ``G`` gates, ``H`` hidden units, ``B`` batch, ``d`` density.

Persistent kernel (one layer, all ``S`` SMs, weights loaded into registers once)
------------------------------------------------------------------------------
* On-chip weights: the recurrent matrices of the cell's declaration (dense ``G*H x H`` entries
  of ``s`` bytes for the Elman RNN, LSTM and GRU; a projected LSTM's ``G*H x P`` and ``P x H``
  ``W_hr``); sparse: one row per warp, each row's ``d*cols`` non-zeros padded to a multiple of
  the warp width, each entry a value plus an ``index_bytes`` column index. The layer is
  persistent iff these bytes fit ``S * register_file_bytes_per_sm * register_fraction`` and one
  batch column of the activations every SM reads each step fits ``shared_memory_bytes_per_sm *
  shared_memory_fraction`` (larger batches are processed in slices of columns that fit; the
  broadcast below counts them all). Those activations are the states the recurrent products
  read (:func:`wpsim.cells.gathered_states`, their widths from the declaration): ``h``, ``H*s``
  for the Elman RNN, LSTM and GRU, ``P*s`` for a projected LSTM (an SM keeps its units'
  element-wise work and holds ``W_hr`` by those units' columns, so it multiplies only values it
  computed; the partial products sum into the next ``h``), nothing for a cell whose recurrence
  is element-wise (SRU, QRNN, IndRNN: no matrix either, so any ``H`` fits).
  :func:`max_persistent_hidden` is the largest ``H`` that fits, for the workload's cell, dtype,
  density and batch.
* Step time::

      compute = F / (P * efficiency * issue)      F = 2 * stored entries * B  (+ element-wise)
      bcast   = S * B*H*s / L2 bandwidth           every SM reads the whole h_{t-1} (those states)
      latency = sync + 2 * L2 latency              producer's store, consumer's load
      step    = max(latency + max(compute, bcast) / pieces, compute, bcast)

  ``issue`` is 1 for dense weights (each activation loaded from shared memory feeds a thread's
  whole tile of rows). For sparse weights every stored entry needs its own shared-memory load of
  ``h`` at its column index: ``issue = B / (B + loads * conflicts)`` with
  ``loads = ceil(B / per_load)`` (``per_load = wide_load_bytes / s`` batch columns with wide
  loads, else 1) and ``conflicts`` = 1 with a bank-aware layout, else the expected worst bank
  occupancy of 32 random addresses (``random_bank_conflict_degree``).
  ``pieces`` is how finely the step's work overlaps the synchronisation: with a global
  ``barrier`` the kernel software-pipelines independent batch columns (Diamos et al.: a column's
  barrier hides behind the other columns' math), ``pieces = B``; with per-producer timestamp
  ``flags`` (Zhu et al.) a consumer starts on each producer's slice as soon as it is flagged,
  ``pieces = S``. One column or one slice is then exposed per step.

Matrix products (cuBLAS / cuSPARSE per step, cuDNN's standard algorithm)
-----------------------------------------------------------------------
A product of a weight matrix of ``M x K`` entries with ``n`` right-hand columns takes
``flops / (P_gemm * e(n, M*K))``: ``P_gemm`` is the tensor-core peak for a dtype the GPU has
matrix units for (``tensor_flops_per_cycle_per_sm``), else the vector peak; ``e`` is the
machine file's own efficiency, measured by a GEMM benchmark of that GPU (``GemmSpec``).
Element-wise work runs at the vector peak times ``e(n)``. Kernels are issued as on a real GPU:
the host enqueues at most one per ``kernel_launch_s``, and a kernel starts ``kernel_gap_s`` after
the one it depends on, so ``k`` dependent kernels around ``busy`` seconds of work take::

    issue(k, busy) + busy = max(k * launch, k * gap + busy)

(short kernels wait for the host; longer ones expose only the gap). A recurrent step is
``kernels_per_step`` kernels (``backward_kernels_per_step`` for a backward step; the product
and the element-wise cell) around
``busy = max(compute, bytes / bandwidth)``, the weights from L2 when they stay there between
steps (an LRU of weight blocks of the L2's size) and from DRAM otherwise; a sparse product reads
the CSR arrays (values and 4-byte indices) at ``sparse_bandwidth_efficiency`` of the bandwidth.
The input projections of all steps are one GEMM per layer (``B*T`` columns), before the
recurrent loop; a skip-input layer (``input: 0``) has none.

Training (cuDNN's three calls: forward, backward data, backward weights)
------------------------------------------------------------------------
Forward as inference. Backward data: per layer, top first, ``T`` steps of the transposed
recurrent product (the same flops, twice the element-wise work), then ``dX = dA W_ih`` as one
GEMM of ``B*T`` columns; these products read the weights transposed and run at the machine's
``transposed_efficiency_by_n`` (its "T N" GEMMs) where the file has one. Backward weights: one GEMM per layer-direction, ``dW = dA^T [x, h]``
(``G*H x (I+H)`` weights, ``B*T`` columns), after all backward steps. A persistent kernel keeps
the transposed weights on chip for its backward steps (the persistent-rnn library does), loading
them once more. Every result's ``extra["phase_s"]`` splits the time into ``forward``,
``backward_data`` and ``backward_weights`` (each task's busy time; for the one-kernel-at-a-time
policies they add up to the makespan).

Streams (cuDNN's layer overlap)
-------------------------------
Each layer has a stream; a cell (its input and recurrent products, per step) starts when the
layer below and the previous step are done, as in the CPU wavefront. Kernels running at the same
time share the SMs (each gets at most ``1 / running`` of the GPU, or its own ``e(B)`` if lower)
and the DRAM bandwidth (processor sharing in the engine).

What the time is made of (:mod:`wpsim.breakdown`)
------------------------------------------------
Each task's :class:`~wpsim.cost.base.TaskCost` records its kernels' issue time (``dispatch``), a
persistent kernel's one-time weight load (``memory.DRAM``) and the part of its steps that is
synchronisation (``sync``) and broadcast of ``h`` beyond the arithmetic (``memory.L2``), and the
weight reads by level (``memory.L2``, ``memory.DRAM``). The closed forms give every kernel they
add as such a record, so ``Result.breakdown_s`` and ``core_breakdown_s`` come from both engines;
one kernel at a time, the closed form's equal the simulation's.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from wpsim.cells import gathered_state_width, products
from wpsim.cells import nonzeros as stored
from wpsim.cost.base import DRAM, TaskCost
from wpsim.cost.caches import LRUCache
from wpsim.machines.gpu import ZHU_2018, GpuMachine, PersistentKernel
from wpsim.model.graph import Task
from wpsim.model.plan import Plan
from wpsim.model.workload import INDEX_BYTES, Workload, declaration

L2 = "L2"


LEVELS = [L2, DRAM, "handoff"]


def recurrent_shapes(workload: Workload, hidden: int | None = None) -> tuple[tuple[int, int], ...]:
    """``(rows, columns)`` of each recurrent matrix of the cell (``W_hh``, ``G*H x H``; none for
    SRU, QRNN and IndRNN) for a layer of ``hidden`` units (default: the workload's)."""
    return _recurrent_shapes(workload.cell, workload.hidden if hidden is None else hidden)


@functools.lru_cache(maxsize=1024)
def _recurrent_shapes(cell: str, hidden: int) -> tuple[tuple[int, int], ...]:
    found = products(declaration(cell), hidden, hidden)
    return tuple((p.rows, p.cols) for p in found if p.recurrent)


def stored_entries(machine: GpuMachine, workload: Workload, hidden: int | None = None) -> int:
    """Entries a persistent kernel keeps for the recurrent matrices (sparse rows padded to the
    warp width)."""
    density = workload.density
    total = 0
    for rows, cols in recurrent_shapes(workload, hidden):
        if density >= 1.0:
            total += rows * cols
            continue
        warp = machine.persistent.warp_width
        per_row = max(warp, math.ceil(density * cols / warp) * warp)
        total += rows * min(per_row, math.ceil(cols / warp) * warp)
    return total


def onchip_weight_bytes(machine: GpuMachine, workload: Workload, hidden: int | None = None) -> int:
    """Bytes of the recurrent weights of one layer-direction as a persistent kernel stores them."""
    h = workload.hidden if hidden is None else hidden
    entries = stored_entries(machine, workload, h)
    per_entry = workload.dtype_bytes + (machine.persistent.index_bytes if workload.sparse else 0)
    return entries * per_entry


def weight_capacity_bytes(machine: GpuMachine) -> float:
    """Register-file bytes that can hold weights, all SMs together."""
    return machine.register_file_bytes * machine.persistent.register_fraction


def activation_capacity_bytes(machine: GpuMachine) -> float:
    """Shared-memory bytes per SM usable for the activations ``h`` read each step."""
    return machine.shared_memory_bytes_per_sm * machine.persistent.shared_memory_fraction


def activation_bytes(workload: Workload, hidden: int | None = None) -> int:
    """Bytes of one batch column of what every SM reads each step of a persistent kernel: the
    states the recurrent products read, for a layer of ``hidden`` units (default: the
    workload's).

    Examples
    --------
    >>> projected = Workload(cell="lstm(proj_size=64)", hidden=1024, input=64, seq_len=1)
    >>> activation_bytes(projected), activation_bytes(projected.model_copy(update={"cell": "lstm"}))
    (256, 4096)
    """
    h = workload.hidden if hidden is None else hidden
    return workload.dtype_bytes * gathered_state_width(workload.cell_declaration, h)


def fits_on_chip(machine: GpuMachine, workload: Workload, hidden: int | None = None) -> bool:
    """Whether a layer of ``hidden`` units (default: the workload's) can be persistent."""
    h = workload.hidden if hidden is None else hidden
    activations = activation_bytes(workload, h)  # one batch column at a time
    weights = onchip_weight_bytes(machine, workload, h)
    return weights <= weight_capacity_bytes(machine) and activations <= activation_capacity_bytes(
        machine
    )


def max_persistent_hidden(machine: GpuMachine, workload: Workload) -> int:
    """The largest hidden size whose recurrent weights fit on chip (0 if none).

    For the workload's cell (gates), dtype and density; weights and activations grow with ``H``,
    so the answer is found by bisection.

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> titanx = load_machine(resolve_machine_path("titanx_maxwell"))
    >>> max_persistent_hidden(titanx, Workload(cell="rnn", hidden=1, input=1, seq_len=1))
    1152
    """
    if not fits_on_chip(machine, workload, 1):
        return 0
    low, high = 1, 2
    while fits_on_chip(machine, workload, high):
        low, high = high, high * 2
        if high > 10_000_000:
            return low
    while high - low > 1:
        mid = (low + high) // 2
        if fits_on_chip(machine, workload, mid):
            low = mid
        else:
            high = mid
    return low


def elementwise_flops(workload: Workload) -> float:
    """Element-wise flops of one step of one layer-direction (the cell's declaration)."""
    return workload.step_flops(0).elementwise


def persistent_step(
    machine: GpuMachine,
    workload: Workload,
    kernel: PersistentKernel = ZHU_2018,
    backward: bool = False,
) -> dict[str, Any]:
    """Time of one recurrent step of a persistent kernel, and its parts (see module doc).

    ``backward``: a back-propagation step (transposed weights, twice the element-wise work).
    """
    w, m, spec = workload, machine, machine.persistent
    s, b = w.dtype_bytes, w.batch
    entries = stored_entries(m, w)
    peak = m.peak_flops(w.dtype)
    flops = 2.0 * entries * b + (2.0 if backward else 1.0) * elementwise_flops(w)
    if w.sparse:
        per_load = max(1, spec.wide_load_bytes // s) if kernel.wide_loads else 1
        loads = math.ceil(b / per_load)
        conflicts = 1.0 if kernel.bank_aware else spec.random_bank_conflict_degree
        issue = b / (b + loads * conflicts)
    else:
        issue = 1.0
    compute = flops / (peak * spec.efficiency * issue)
    bcast = m.sms * w.gathered_state_bytes / m.l2.bandwidth_Bps  # h to every SM
    sync = m.sync.global_barrier_s if kernel.sync == "barrier" else m.sync.flag_s
    latency = sync + 2.0 * m.l2.latency_s
    pieces = b if kernel.sync == "barrier" else m.sms
    step = max(latency + max(compute, bcast) / pieces, compute, bcast)
    return {
        "algorithm": "persistent",
        "kernel": kernel.label,
        "fits": fits_on_chip(m, w),
        "weight_bytes": onchip_weight_bytes(m, w),
        "capacity_bytes": weight_capacity_bytes(m),
        "compute_s": compute,
        "bcast_s": bcast,
        "latency_s": latency,
        "issue_factor": issue,
        "step_s": step,
        "flops": 2.0 * w.weight_hh_nonzeros() * b,
    }


def persistent_step_parts(step: dict[str, Any]) -> tuple[tuple[str, float], ...]:
    """What one step of :func:`persistent_step` is besides arithmetic: ``(("sync", s),
    ("memory.L2", s))``, the synchronisation the step's work does not hide (``step - max(compute,
    bcast)``) and the broadcast of ``h`` beyond the arithmetic (``max(0, bcast - compute)``);
    the rest, ``compute``, is arithmetic (:mod:`wpsim.breakdown`).

    Examples
    --------
    >>> persistent_step_parts({"compute_s": 2.0, "bcast_s": 3.0, "step_s": 4.0})
    (('sync', 1.0), ('memory.L2', 1.0))
    """
    compute, bcast, step = step["compute_s"], step["bcast_s"], step["step_s"]
    return (("sync", step - max(compute, bcast)), ("memory.L2", max(0.0, bcast - compute)))


def issue_s(machine: GpuMachine, kernels: float, busy_s: float) -> float:
    """Time ``kernels`` dependent kernels add to ``busy_s`` seconds of their work (module doc):
    the GPU's gap before each, or the host's launch rate when the kernels are shorter.

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> v100 = load_machine(resolve_machine_path("v100"))
    >>> issue_s(v100, 2, 0.0) == 2 * v100.kernel_launch_s
    True
    >>> issue_s(v100, 2, 1e-3) == 2 * v100.kernel_gap_s
    True
    """
    return max(kernels * machine.kernel_gap_s, kernels * machine.kernel_launch_s - busy_s)


def gemm_s(
    machine: GpuMachine,
    workload: Workload,
    flops: float,
    n_columns: float,
    weight_elements: float,
    transposed: bool = False,
) -> float:
    """Compute time of a dense product of ``weight_elements`` weights with ``n_columns`` columns
    (``transposed``: with the weights transposed, a backward-data product)."""
    if not flops:  # a cell without a recurrent matrix (SRU, QRNN) has no recurrent product
        return 0.0
    m, dtype = machine, workload.dtype
    efficiency = m.gemm_efficiency(n_columns, weight_elements, dtype, transposed)
    return flops / (m.gemm_peak_flops(dtype) * efficiency)


def elementwise_s(machine: GpuMachine, workload: Workload, flops: float, n_columns: float) -> float:
    """Compute time of element-wise work on ``n_columns`` columns (vector units)."""
    return flops / (machine.peak_flops(workload.dtype) * machine.gemm.efficiency(n_columns))


def recurrent_elements(workload: Workload) -> float:
    """Entries of the dense recurrent matrices (``W_hh``, ``G*H x H``; 0 for SRU, QRNN)."""
    return float(sum(rows * cols for rows, cols in recurrent_shapes(workload)))


def csr_bytes(workload: Workload) -> float:
    """Bytes of the recurrent matrices in CSR (values, column indices, row pointers), at the
    workload's density (1: every entry stored, as a sparse library would hold a dense matrix)."""
    w = workload
    return float(
        sum(
            stored(rows * cols, w.density) * (w.dtype_bytes + INDEX_BYTES)
            + (rows + 1) * INDEX_BYTES
            for rows, cols in recurrent_shapes(w)
        )
    )


def input_elements(workload: Workload, layer: int) -> float:
    """Entries of the matrices off the recurrence of ``layer`` (``W_ih``, ``G*H x I_l``)."""
    return float(workload.weight_ih_bytes(layer) // workload.dtype_bytes)


def dense_hh_bytes(workload: Workload, layer: int) -> float:
    """Bytes of the ``hh`` weight block of ``layer`` stored dense (as cuBLAS multiplies a pruned
    matrix)."""
    return float(workload.weight_block_bytes(layer, dense=True)["hh"])


def gemm_step(
    machine: GpuMachine,
    workload: Workload,
    sparse: bool = False,
    in_l2: bool | None = None,
    backward: bool = False,
) -> dict[str, Any]:
    """Time of one recurrent step as a per-step (sparse) GEMM with weights from L2 or DRAM.

    ``in_l2``: whether the weights stay in L2 between steps (default: they fit the L2);
    ``backward``: a back-propagation step (``W_hh^T``, twice the element-wise work).
    """
    w, m = workload, machine
    elementwise = (2.0 if backward else 1.0) * elementwise_flops(w)
    if sparse:
        nbytes = csr_bytes(w)  # as cuSPARSE stores it, whatever the density
        flops = 2.0 * w.weight_hh_nonzeros() * w.batch
        efficiency = m.gemm.sparse_bandwidth_efficiency
        # cuSPARSE runs on the vector units: no tensor cores, no tile-fill loss by size
        compute = (flops + elementwise) / (m.peak_flops(w.dtype) * m.gemm.efficiency(w.batch))
    else:
        nbytes = recurrent_elements(w) * w.dtype_bytes
        flops = 2.0 * recurrent_elements(w) * w.batch
        efficiency = 1.0
        compute = gemm_s(m, w, flops, w.batch, recurrent_elements(w), transposed=backward)
        compute += elementwise_s(m, w, elementwise, w.batch)
    if in_l2 is None:
        in_l2 = nbytes <= m.l2.size_bytes
    bandwidth = (m.l2.bandwidth_Bps if in_l2 else m.memory.bandwidth_Bps) * efficiency
    memory = nbytes / bandwidth
    busy = max(compute, memory)
    launch = issue_s(m, m.gemm.step_kernels(backward), busy)
    return {
        "algorithm": "sparse_gemm" if sparse else "gemm",
        "fits": True,
        "weight_bytes": nbytes,
        "level": L2 if in_l2 else DRAM,
        "compute_s": compute,
        "memory_s": memory,
        "launch_s": launch,
        "step_s": launch + busy,
        "flops": 2.0 * w.weight_hh_nonzeros() * w.batch,
    }


def best_fallback(machine: GpuMachine, workload: Workload) -> dict[str, Any]:
    """The faster of dense and (for sparse weights) sparse GEMM per step."""
    dense = gemm_step(machine, workload)
    if not workload.sparse:
        return dense
    sparse = gemm_step(machine, workload, sparse=True)
    return sparse if sparse["step_s"] < dense["step_s"] else dense


def read_weights(l2: LRUCache, key: str, nbytes: float, times: int) -> tuple[float, float]:
    """Read a weight block ``times`` times through the L2's LRU: (L2 bytes, DRAM bytes).

    The first read of a block the L2 does not hold comes from DRAM; later reads hit if the block
    fits (and stays: the LRU is updated).
    """
    if l2.lookup(key):
        return nbytes * times, 0.0
    l2.insert(key, nbytes)
    if key in l2.blocks:  # fits: the later reads hit
        return nbytes * (times - 1), nbytes
    return 0.0, nbytes * times


def phase_of(kind: str) -> str:
    """``forward``, ``backward_data`` or ``backward_weights`` for a task kind."""
    if kind == "wgrad":
        return "backward_weights"
    return "backward_data" if kind.endswith("_bwd") else "forward"


class GpuCostModel:
    """Task costs on a :class:`GpuMachine` for one simulation (holds the L2's LRU state).

    ``algorithm``: ``gemm``, ``sparse_gemm``, ``persistent`` or ``streams`` (per-step GEMMs on
    concurrent streams). Implements ``start`` and ``dram_share_Bps``.
    """

    def __init__(
        self, machine: GpuMachine, plan: Plan, algorithm: str, kernel: PersistentKernel = ZHU_2018
    ) -> None:
        self.machine = machine
        self.plan = plan
        self.algorithm = algorithm
        self.kernel = kernel
        w = plan.workload
        self.w = w
        self.l2 = LRUCache(machine.l2.size_bytes)
        self.started_layers: set[tuple] = set()
        self.layer_algorithm: dict[tuple, str] = {}
        if algorithm == "persistent":
            step = persistent_step(machine, w, kernel)
            self.persistent = step if step["fits"] else None
            self.persistent_bwd = persistent_step(machine, w, kernel, backward=True)
            self.fallback = best_fallback(machine, w)
            # what a step is besides arithmetic, forward and backward (wpsim.breakdown)
            self.step_parts = {
                False: persistent_step_parts(step),
                True: persistent_step_parts(self.persistent_bwd),
            }

    def _read(self, key: str, nbytes: float, times: int) -> tuple[float, float]:
        return read_weights(self.l2, key, nbytes, times)

    def start(self, tid: int, cores: tuple[int, ...], busy_on_socket: int) -> TaskCost:
        m, w = self.machine, self.w
        t = self.plan.tasks[tid]
        share = 1.0 / (1 + busy_on_socket)
        layer_key = (t.instance, t.layer, t.direction)
        backward = t.kind == "cell_bwd"
        # backward-data products multiply by the weights transposed (GemmSpec)
        transposed = phase_of(t.kind) == "backward_data"
        is_cell = t.kind in ("cell", "cell_bwd") and t.flops_rec
        if is_cell and self.algorithm == "persistent":
            kernel_key = (*layer_key, backward)  # the backward kernel loads W_hh^T once more
            first = kernel_key not in self.started_layers
            self.started_layers.add(kernel_key)
            if self.persistent is not None:
                self.layer_algorithm[layer_key] = "persistent"
                step = self.persistent_bwd if backward else self.persistent
                launch = m.kernel_launch_s if first else 0.0
                load = float(step["weight_bytes"]) if first else 0.0
                load_s = load / m.memory.bandwidth_Bps
                # launch, then the one-time load of the weights into registers, then the steps
                fixed = launch + load_s
                compute = t.steps * step["step_s"]
                if t.flops_in:  # input projection left in the cell (chunked graphs)
                    compute += self._gemm(
                        t.flops_in, w.batch * t.steps, self._ih_elements(t), share, transposed
                    )
                # the steps' synchronisation and broadcast of h are part of compute_s
                parts = tuple((cause, t.steps * s) for cause, s in self.step_parts[backward])
                level: dict[str, float] = {DRAM: load} if load else {}
                return TaskCost(
                    fixed, compute, 0.0, 0.0, level, 0, launch, load_s=load_s, compute_parts=parts
                )
            self.layer_algorithm[layer_key] = self.fallback["algorithm"]
            algorithm = self.fallback["algorithm"]
        elif is_cell:
            algorithm = "sparse_gemm" if self.algorithm == "sparse_gemm" else "gemm"
            self.layer_algorithm[layer_key] = algorithm
        else:
            algorithm = "gemm"
        # GEMM-based task. A cell of k steps: its input projection as one GEMM of B*k columns
        # (W_ih read once), then k per-step recurrent products (W_hh read at every step). Any
        # other task (hoisted input GEMM and its backward, output layer, weight gradients): one
        # GEMM of B*steps columns.
        level = {}
        l2_s, dram_eff = 0.0, 0.0
        dense_hh = dense_hh_bytes(w, t.layer) if t.layer < w.layers else 0.0
        size: float  # (a block's bytes, or the dense matrix's)
        for key, size in t.weights:
            recurrent_block = is_cell and key.endswith("hh")
            if algorithm == "gemm" and recurrent_block and w.sparse:
                size = dense_hh  # cuBLAS multiplies the pruned matrix as a dense one
            sparse_block = algorithm == "sparse_gemm" and recurrent_block
            efficiency = m.gemm.sparse_bandwidth_efficiency if sparse_block else 1.0
            on_l2, on_dram = self._read(key, float(size), t.steps if recurrent_block else 1)
            if on_l2:
                level[L2] = level.get(L2, 0.0) + on_l2
                l2_s += on_l2 / (m.l2.bandwidth_Bps * efficiency)
            if on_dram:
                level[DRAM] = level.get(DRAM, 0.0) + on_dram
                dram_eff += on_dram / efficiency
        if is_cell:
            if algorithm == "sparse_gemm":
                compute = self._vector(t.flops_rec + t.flops_elem, w.batch, share)
            else:
                rec = t.flops_rec
                if w.sparse:
                    rec = 2.0 * recurrent_elements(w) * w.batch * t.steps
                compute = self._gemm(rec, w.batch, recurrent_elements(w), share, transposed)
                compute += self._vector(t.flops_elem, w.batch, share)
            kernels = t.steps * m.gemm.step_kernels(backward)
            if t.flops_in:
                compute += self._gemm(
                    t.flops_in, w.batch * t.steps, self._ih_elements(t), share, transposed
                )
                kernels += 1
        else:
            elements = t.weight_bytes / w.dtype_bytes
            compute = self._gemm(
                t.flops_in + t.flops_rec, w.batch * t.steps, elements, share, transposed
            )
            compute += self._vector(t.flops_elem, w.batch * t.steps, share)
            kernels = 1
        # the launches as if the task ran alone (DRAM at full bandwidth): a deterministic fixed
        # part, the sharing of SMs and DRAM shows in the busy time
        busy = max(compute, l2_s + dram_eff / m.memory.bandwidth_Bps)
        launch = issue_s(m, kernels, busy)
        return TaskCost(launch, compute, l2_s, dram_eff, level, 0, launch)

    def _gemm(
        self, flops: float, n_columns: float, elements: float, share: float, transposed: bool
    ) -> float:
        m, dtype = self.machine, self.w.dtype
        efficiency = min(m.gemm_efficiency(n_columns, elements, dtype, transposed), share)
        return flops / (m.gemm_peak_flops(dtype) * efficiency)

    def _vector(self, flops: float, n_columns: float, share: float) -> float:
        if not flops:
            return 0.0
        m = self.machine
        efficiency = min(m.gemm.efficiency(n_columns), share)
        return flops / (m.peak_flops(self.w.dtype) * efficiency)

    def _ih_elements(self, t: Task) -> float:
        return input_elements(self.w, t.layer)

    def dram_share_Bps(self, streams: int) -> float:
        return self.machine.memory.bandwidth_Bps / max(streams, 1)
