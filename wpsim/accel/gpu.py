"""GPU models: persistent RNN kernels, per-step GEMMs, and the layer x time wavefront on streams.

Notation: ``S`` SMs at clock ``f``; ``P = S * f * flops_per_cycle_per_sm[dtype]`` the peak;
``s`` bytes per element; ``G`` gates, ``H`` hidden units, ``B`` batch, ``d`` density.

Persistent kernel (one layer, all ``S`` SMs, weights loaded into registers once)
------------------------------------------------------------------------------
* On-chip weights: dense ``G*H x H`` entries of ``s`` bytes; sparse: one row per warp, each row's
  ``d*H`` non-zeros padded to a multiple of the warp width, each entry a value plus an
  ``index_bytes`` column index. The layer is persistent iff these bytes fit
  ``S * register_file_bytes_per_sm * register_fraction`` and one batch column of the activations
  every SM reads each step (``H*s``) fits ``shared_memory_bytes_per_sm * shared_memory_fraction``
  (larger batches are processed in slices of columns that fit; the broadcast below counts them
  all).
  :func:`max_persistent_hidden` is the largest ``H`` that fits, for the workload's cell, dtype,
  density and batch.
* Step time::

      compute = F / (P * efficiency * issue)      F = 2 * stored entries * B  (+ element-wise)
      bcast   = S * B*H*s / L2 bandwidth           every SM reads the whole h_{t-1}
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
GEMM of ``B*T`` columns. Backward weights: one GEMM per layer-direction, ``dW = dA^T [x, h]``
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
Each task's :class:`~wpsim.cost.TaskCost` records its kernels' issue time (``dispatch``), a
persistent kernel's one-time weight load (``memory.DRAM``) and the part of its steps that is
synchronisation (``sync``) and broadcast of ``h`` beyond the arithmetic (``memory.L2``), and the
weight reads by level (``memory.L2``, ``memory.DRAM``). The closed forms give every kernel they
add as such a record, so ``Result.breakdown_s`` and ``core_breakdown_s`` come from both engines;
one kernel at a time, the closed form's equal the simulation's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from wpsim import breakdown
from wpsim.accel.machines import GpuMachine
from wpsim.cost import DRAM, LRUCache, TaskCost
from wpsim.errors import ConfigError
from wpsim.graph import build
from wpsim.plan import Plan, compile_plan
from wpsim.policies import Policy, get_policy
from wpsim.result import Result
from wpsim.workload import ELEMENTWISE_FLOPS, INDEX_BYTES, Workload

L2 = "L2"
LEVELS = [L2, DRAM, "handoff"]


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


# ---- capacity -------------------------------------------------------------------------------


def stored_entries(machine: GpuMachine, gates: int, hidden: int, density: float) -> int:
    """Entries a persistent kernel keeps for ``W_hh`` (sparse rows padded to the warp width)."""
    rows = gates * hidden
    if density >= 1.0:
        return rows * hidden
    warp = machine.persistent.warp_width
    per_row = max(warp, math.ceil(density * hidden / warp) * warp)
    return rows * min(per_row, math.ceil(hidden / warp) * warp)


def onchip_weight_bytes(machine: GpuMachine, workload: Workload, hidden: int | None = None) -> int:
    """Bytes of the recurrent weights of one layer-direction as a persistent kernel stores them."""
    h = workload.hidden if hidden is None else hidden
    entries = stored_entries(machine, workload.gates, h, workload.density)
    per_entry = workload.dtype_bytes + (machine.persistent.index_bytes if workload.sparse else 0)
    return entries * per_entry


def weight_capacity_bytes(machine: GpuMachine) -> float:
    """Register-file bytes that can hold weights, all SMs together."""
    return machine.register_file_bytes * machine.persistent.register_fraction


def activation_capacity_bytes(machine: GpuMachine) -> float:
    """Shared-memory bytes per SM usable for the activations ``h`` read each step."""
    return machine.shared_memory_bytes_per_sm * machine.persistent.shared_memory_fraction


def fits_on_chip(machine: GpuMachine, workload: Workload, hidden: int | None = None) -> bool:
    """Whether a layer of ``hidden`` units (default: the workload's) can be persistent."""
    h = workload.hidden if hidden is None else hidden
    activations = h * workload.dtype_bytes  # one batch column at a time
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
    >>> from wpsim.hardware import load_machine, resolve_machine_path
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


# ---- per-step times -------------------------------------------------------------------------


def _elementwise_flops(workload: Workload) -> float:
    return float(ELEMENTWISE_FLOPS[workload.cell] * workload.hidden * workload.batch)


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
    entries = stored_entries(m, w.gates, w.hidden, w.density)
    peak = m.peak_flops(w.dtype)
    flops = 2.0 * entries * b + (2.0 if backward else 1.0) * _elementwise_flops(w)
    if w.sparse:
        per_load = max(1, spec.wide_load_bytes // s) if kernel.wide_loads else 1
        loads = math.ceil(b / per_load)
        conflicts = 1.0 if kernel.bank_aware else spec.random_bank_conflict_degree
        issue = b / (b + loads * conflicts)
    else:
        issue = 1.0
    compute = flops / (peak * spec.efficiency * issue)
    bcast = m.sms * b * w.hidden * s / m.l2.bandwidth_Bps
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
    >>> from wpsim.hardware import load_machine, resolve_machine_path
    >>> v100 = load_machine(resolve_machine_path("v100"))
    >>> issue_s(v100, 2, 0.0) == 2 * v100.kernel_launch_s
    True
    >>> issue_s(v100, 2, 1e-3) == 2 * v100.kernel_gap_s
    True
    """
    return max(kernels * machine.kernel_gap_s, kernels * machine.kernel_launch_s - busy_s)


def gemm_s(
    machine: GpuMachine, workload: Workload, flops: float, n_columns: float, weight_elements: float
) -> float:
    """Compute time of a dense product of ``weight_elements`` weights with ``n_columns`` columns."""
    m, dtype = machine, workload.dtype
    return flops / (m.gemm_peak_flops(dtype) * m.gemm_efficiency(n_columns, weight_elements, dtype))


def elementwise_s(machine: GpuMachine, workload: Workload, flops: float, n_columns: float) -> float:
    """Compute time of element-wise work on ``n_columns`` columns (vector units)."""
    return flops / (machine.peak_flops(workload.dtype) * machine.gemm.efficiency(n_columns))


def _recurrent_elements(workload: Workload) -> float:
    """Entries of the dense recurrent weight matrix ``W_hh`` (``G*H x H``)."""
    return float(workload.gates * workload.hidden * workload.hidden)


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
    elementwise = (2.0 if backward else 1.0) * _elementwise_flops(w)
    if sparse:
        nbytes = float(w.weight_hh_nonzeros() * (w.dtype_bytes + INDEX_BYTES)
                       + (w.gates * w.hidden + 1) * INDEX_BYTES)  # fmt: skip
        flops = 2.0 * w.weight_hh_nonzeros() * w.batch
        efficiency = m.gemm.sparse_bandwidth_efficiency
        # cuSPARSE runs on the vector units: no tensor cores, no tile-fill loss by size
        compute = (flops + elementwise) / (m.peak_flops(w.dtype) * m.gemm.efficiency(w.batch))
    else:
        nbytes = float(w.gates * w.hidden * w.hidden * w.dtype_bytes)
        flops = 2.0 * w.gates * w.hidden * w.hidden * w.batch
        efficiency = 1.0
        compute = gemm_s(m, w, flops, w.batch, _recurrent_elements(w))
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


# ---- the cost object for the engine ---------------------------------------------------------


class GpuCostModel:
    """Task costs on a :class:`GpuMachine` for one simulation (holds the L2's LRU state).

    ``algorithm``: ``gemm``, ``sparse_gemm``, ``persistent`` or ``streams`` (per-step GEMMs on
    concurrent streams). Implements ``start`` and ``dram_share_Bps``.
    """

    def __init__(self, machine: GpuMachine, plan: Plan, algorithm: str,
                 kernel: PersistentKernel = ZHU_2018) -> None:  # fmt: skip
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

    def _read(self, key, nbytes: float, times: int):
        return read_weights(self.l2, key, nbytes, times)

    def start(self, tid: int, cores: tuple[int, ...], busy_on_socket: int) -> TaskCost:
        m, w = self.machine, self.w
        t = self.plan.tasks[tid]
        share = 1.0 / (1 + busy_on_socket)
        layer_key = (t.instance, t.layer, t.direction)
        backward = t.kind == "cell_bwd"
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
                        t.flops_in, w.batch * t.steps, self._ih_elements(t), share
                    )
                # the steps' synchronisation and broadcast of h are part of compute_s
                parts = tuple((cause, t.steps * s) for cause, s in self.step_parts[backward])
                level = {DRAM: load} if load else {}
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
        level: dict[str, float] = {}
        l2_s, dram_eff = 0.0, 0.0
        dense_hh = float(w.gates * w.hidden * w.hidden * w.dtype_bytes + w.bias_bytes() // 2)
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
                    rec = 2.0 * w.gates * w.hidden * w.hidden * w.batch * t.steps
                compute = self._gemm(rec, w.batch, _recurrent_elements(w), share)
                compute += self._vector(t.flops_elem, w.batch, share)
            kernels = t.steps * m.gemm.step_kernels(backward)
            if t.flops_in:
                compute += self._gemm(t.flops_in, w.batch * t.steps, self._ih_elements(t), share)
                kernels += 1
        else:
            elements = t.weight_bytes / w.dtype_bytes
            compute = self._gemm(t.flops_in + t.flops_rec, w.batch * t.steps, elements, share)
            compute += self._vector(t.flops_elem, w.batch * t.steps, share)
            kernels = 1
        # the launches as if the task ran alone (DRAM at full bandwidth): a deterministic fixed
        # part, the sharing of SMs and DRAM shows in the busy time
        busy = max(compute, l2_s + dram_eff / m.memory.bandwidth_Bps)
        launch = issue_s(m, kernels, busy)
        return TaskCost(launch, compute, l2_s, dram_eff, level, 0, launch)

    def _gemm(self, flops: float, n_columns: float, elements: float, share: float) -> float:
        m, dtype = self.machine, self.w.dtype
        efficiency = min(m.gemm_efficiency(n_columns, elements, dtype), share)
        return flops / (m.gemm_peak_flops(dtype) * efficiency)

    def _vector(self, flops: float, n_columns: float, share: float) -> float:
        if not flops:
            return 0.0
        m = self.machine
        efficiency = min(m.gemm.efficiency(n_columns), share)
        return flops / (m.peak_flops(self.w.dtype) * efficiency)

    def _ih_elements(self, t) -> float:
        w = self.w
        return float(w.gates * w.hidden * w.layer_input_size(t.layer))

    def dram_share_Bps(self, streams: int) -> float:
        return self.machine.memory.bandwidth_Bps / max(streams, 1)


# ---- evaluation -----------------------------------------------------------------------------

#: CPU policy names accepted on a GPU, and the GPU policy they mean there.
GPU_ALIASES = {"sequential": "gemm", "layerwise": "gemm", "wavefront": "streams"}


def _resolve(policy: Policy | str, machine: GpuMachine) -> Policy:
    if isinstance(policy, str):
        policy = get_policy(policy)
    if getattr(policy, "machine_kind", None) != "gpu":
        alias = GPU_ALIASES.get(policy.name)
        if alias is None:
            raise ConfigError(
                f"--policy {policy.name}: not a GPU policy; on '{machine.name}' use one of "
                "gemm, sparse_gemm, streams, persistent, persistent_barrier (or sequential, "
                "layerwise, wavefront)"
            )
        policy = get_policy(alias, instances=policy.instances)
    return policy


def _plan(workload: Workload, policy: Policy, chunk: int) -> Plan:
    return compile_plan(
        build(workload, granularity="cell", **policy.graph_options(workload, chunk))
    )


def _n_tasks(workload: Workload, policy: Policy, chunk: int) -> int:
    """Tasks of the policy's graph, counted from its classes (:mod:`wpsim.analytic_tasks`)."""
    from wpsim.analytic_tasks import task_set

    options = policy.graph_options(workload, chunk)
    hoist = options.get("hoist_input")
    return int(task_set([workload], np.array([options.get("chunk", 1)]),
                        None if hoist is None else np.array([hoist]),
                        options.get("instances", 1)).n_tasks[0])  # fmt: skip


def _n_streams(machine: GpuMachine, policy: Policy, workload: Workload) -> int:
    if policy.algorithm != "streams":
        return 1
    per_instance = workload.layers * workload.directions
    return max(1, min(per_instance * policy.instances, machine.max_concurrent_kernels))


def _simulate_makespan(machine, workload, policy, chunk, hooks=None):
    from wpsim.engine import run_plan

    plan = _plan(workload, policy, chunk)
    policy.enable_gpu()
    groups = policy.core_groups(_n_streams(machine, policy, workload))
    model = GpuCostModel(machine, plan, policy.algorithm, policy.kernel)
    trace = run_plan(plan, groups, policy, model, len(groups), 1, LEVELS, hooks)
    return plan, trace, model


def _kernel(
    launch_s: float,
    compute_s: float,
    memory_s: float,
    level_bytes: dict[str, float],
    l2_s: float = 0.0,
    load_s: float = 0.0,
    compute_parts: tuple[tuple[str, float], ...] = (),
) -> tuple[float, TaskCost]:
    """One kernel of a closed form as ``(seconds, TaskCost)``, for :mod:`wpsim.breakdown`.

    Its launch, a persistent kernel's one-time load of its weights (``load_s``), then its
    arithmetic overlapped with reading ``level_bytes`` (``{level: bytes}``) in ``memory_s``,
    ``l2_s`` of it from the L2 and the rest from DRAM; ``compute_parts``: what of
    ``compute_s`` is not arithmetic (:func:`persistent_step_parts`).

    Examples
    --------
    >>> seconds, cost = _kernel(1.0, 2.0, 3.0, {"DRAM": 8.0})
    >>> seconds, breakdown.from_terms({0: 1.0}, lambda key: (seconds, cost), LEVELS)["memory.DRAM"]
    (4.0, 1.0)
    """
    dram_bytes = level_bytes.get(DRAM, 0.0) if memory_s else 0.0  # read during the overlap
    fixed = launch_s + load_s
    cost = TaskCost(
        fixed,
        compute_s,
        l2_s,
        dram_bytes,
        level_bytes,
        0,
        launch_s,
        load_s=load_s,
        compute_parts=compute_parts,
    )
    return fixed + max(compute_s, memory_s), cost


#: ``(coefficient, (seconds, TaskCost))`` terms of kernels (:func:`_closed_form`)
Terms = list[tuple[float, tuple[float, TaskCost]]]


def _closed_form(machine: GpuMachine, workload: Workload, policy: Policy, chunk: int):
    """Closed-form makespan, DRAM bytes, per-layer algorithm and time by phase (module doc),
    and for :mod:`wpsim.breakdown`: the makespan as :data:`Terms` of its kernels, all kernels
    as such terms (their counts), and how many streams run them at once.

    One kernel at a time (``gemm``, ``sparse_gemm``, ``persistent``): :class:`_OneAtATime` walks
    the layers in the order the policy runs their kernels and keeps the L2's LRU of the few
    weight blocks, so it equals the simulation. ``streams``: the CPU wavefront's band formula
    over per-layer step costs, with the DRAM bandwidth and the SMs shared by the
    ``min(layers, streams)`` layers running at once; for training, the backward steps form a
    second band and the weight-gradient GEMMs follow one after the other.
    """
    if policy.algorithm == "streams":
        return _streams_closed_form(machine, workload, policy, chunk)
    walk = _OneAtATime(machine, workload, policy)
    walk.run()
    n = policy.instances
    phases = {name: seconds * n for name, seconds in walk.phase_s.items()}
    terms = [(count * n, kernel) for count, kernel in walk.terms]
    return walk.total_s * n, walk.dram * n, walk.algorithms, phases, terms, terms, 1


class _OneAtATime:
    """The closed form of the one-kernel-at-a-time policies, phase by phase.

    The order is the simulation's (lowest task id first among the ready ones): forward layer by
    layer (input GEMM, then the steps; output layer last); backward: the output layer's steps,
    then per layer from the top, per direction, the recurrent steps then the input GEMM's
    backward; last the weight-gradient GEMMs, layer by layer (the output layer's last).
    """

    def __init__(self, machine: GpuMachine, workload: Workload, policy: Policy) -> None:
        self.m, self.w, self.policy = machine, workload, policy
        self.l2 = LRUCache(machine.l2.size_bytes)
        self.phase_s = {"forward": 0.0, "backward_data": 0.0, "backward_weights": 0.0}
        self.total_s, self.dram = 0.0, 0.0
        #: every kernel in order as ``[count, (seconds, TaskCost)]``, equal ones in a row as one
        self.terms: list[list] = []
        self.algorithms: list[str] = []
        self.step = self.step_bwd = None
        if policy.algorithm == "persistent":
            step = persistent_step(machine, workload, policy.kernel)
            if step["fits"]:
                self.step = step
                self.step_bwd = persistent_step(machine, workload, policy.kernel, backward=True)
        self.sparse = policy.algorithm == "sparse_gemm" or (
            policy.algorithm == "persistent" and self.step is None
            and best_fallback(machine, workload)["algorithm"] == "sparse_gemm"
        )  # fmt: skip

    # ---- one kernel -------------------------------------------------------------------------
    def _add(self, phase: str, kernel: tuple[float, TaskCost], count: int = 1) -> None:
        seconds = kernel[0] * count if count != 1 else kernel[0]
        self.phase_s[phase] += seconds
        self.total_s += seconds
        terms = self.terms
        if terms and terms[-1][1] == kernel:
            terms[-1][0] += count
        else:
            terms.append([count, kernel])

    def _repeat(self, phase: str, times: int, step) -> None:
        """``step()`` (one kernel: it reads through the L2 and returns itself) ``times`` times,
        in time independent of ``times``: once a step leaves the L2's LRU as the step before left
        it and costs what it cost, every later step starts from the same state and repeats it,
        so the rest are added at once."""
        previous = None
        for done in range(1, times + 1):
            before = self.dram
            kernel = step()
            self._add(phase, kernel)
            state = (tuple(self.l2.blocks.items()), kernel, self.dram - before)
            if state == previous:
                rest = times - done
                if rest:
                    self._add(phase, kernel, rest)
                    self.dram += state[2] * rest
                return
            previous = state

    def _read(
        self, key: str, nbytes: float, times: int, level: dict[str, float], efficiency: float = 1.0
    ) -> tuple[float, float]:
        """Read a block ``times`` times: the memory time and its L2 part; counts the DRAM
        bytes and adds the bytes read from each level to ``level``."""
        on_l2, on_dram = read_weights(self.l2, key, nbytes, times)
        self.dram += on_dram
        m = self.m
        for name, read in ((L2, on_l2), (DRAM, on_dram)):
            if read:
                level[name] = level.get(name, 0.0) + read
        l2_s = on_l2 / m.l2.bandwidth_Bps / efficiency
        return (on_l2 / m.l2.bandwidth_Bps + on_dram / m.memory.bandwidth_Bps) / efficiency, l2_s

    def _gemm_task(self, phase: str, flops: float, elem: float, n: float, elements: float,
                   blocks: list[tuple[str, float]]) -> None:  # fmt: skip
        self._add(phase, self._gemm_kernel(flops, elem, n, elements, blocks))

    def _gemm_kernel(self, flops: float, elem: float, n: float, elements: float,
                     blocks: list[tuple[str, float]]) -> tuple[float, TaskCost]:  # fmt: skip
        m, w = self.m, self.w
        compute = gemm_s(m, w, flops, n, elements)
        if elem:
            compute += elementwise_s(m, w, elem, n)
        level: dict[str, float] = {}
        memory = l2_s = 0.0
        for key, size in blocks:
            block_s, block_l2_s = self._read(key, size, 1, level)
            memory += block_s
            l2_s += block_l2_s
        busy = max(compute, memory)
        return _kernel(issue_s(m, 1, busy), compute, memory, level, l2_s)

    # ---- layers -----------------------------------------------------------------------------
    def _keys(self, layer: int, direction: int) -> tuple[str, str]:
        suffix = "_reverse" if direction else ""
        return f"l{layer}{suffix}.ih", f"l{layer}{suffix}.hh"

    def _recurrent(self, phase: str, layer: int, direction: int) -> None:
        """The ``T`` recurrent steps of one layer-direction (forward or backward data)."""
        m, w = self.m, self.w
        backward = phase == "backward_data"
        T, b = w.seq_len, w.batch
        ih_key, hh_key = self._keys(layer, direction)
        half_bias = w.bias_bytes() // 2
        # a skip-input layer's cells read their bias block each step (its "ih" block)
        ih_block = float(half_bias) if w.layer_input_size(layer) == 0 else None
        if self.step is not None:
            step = self.step_bwd if backward else self.step
            load = float(step["weight_bytes"])
            self.dram += load
            # launch, the one-time load of the weights into registers, then the T steps (their
            # synchronisation and broadcast of h as parts of the step time)
            load_s = load / m.memory.bandwidth_Bps
            parts = tuple((cause, T * s) for cause, s in persistent_step_parts(step))
            kernel = _kernel(
                m.kernel_launch_s, T * step["step_s"], 0.0, {DRAM: load}, 0.0, load_s, parts
            )
            self._add(phase, kernel)
            return  # the weights stay in registers: nothing goes through the L2's LRU
        if self.sparse:
            nbytes = float(w.weight_hh_bytes() + half_bias)
            efficiency = m.gemm.sparse_bandwidth_efficiency
            flops = 2.0 * w.weight_hh_nonzeros() * b + (
                2.0 if backward else 1.0
            ) * _elementwise_flops(w)
            compute = flops / (m.peak_flops(w.dtype) * m.gemm.efficiency(b))
        else:
            nbytes = float(w.gates * w.hidden * w.hidden * w.dtype_bytes + half_bias)
            efficiency = 1.0
            compute = gemm_s(
                m, w, 2.0 * w.gates * w.hidden * w.hidden * b, b, _recurrent_elements(w)
            )
            compute += elementwise_s(m, w, (2.0 if backward else 1.0) * _elementwise_flops(w), b)

        def step() -> tuple[float, TaskCost]:
            level: dict[str, float] = {}
            memory, l2_s = self._read(hh_key, nbytes, 1, level, efficiency)
            if ih_block is not None:
                block_s, block_l2_s = self._read(ih_key, ih_block, 1, level)
                memory += block_s
                l2_s += block_l2_s
            busy = max(compute, memory)
            launch = issue_s(m, m.gemm.step_kernels(backward), busy)
            return _kernel(launch, compute, memory, level, l2_s)

        self._repeat(phase, T, step)

    def _input_gemm(self, phase: str, layer: int, direction: int) -> None:
        w = self.w
        width = w.layer_input_size(layer)
        if width == 0:
            return
        flops = 2.0 * w.gates * w.hidden * width * w.batch * w.seq_len
        size = float(w.weight_ih_bytes(layer) + w.bias_bytes() // 2)
        key = self._keys(layer, direction)[0]
        self._gemm_task(phase, flops, 0.0, w.batch * w.seq_len, size / w.dtype_bytes,
                        [(key, size)])  # fmt: skip

    def _output(self, phase: str) -> None:
        w = self.w
        if w.output == "none":
            return
        b, o = w.batch, w.output_size
        flops = (2.0 * o * w.directions * w.hidden + o) * b
        soft = 4.0 * o * b if w.output == "softmax" else 0.0
        if phase == "backward_data":
            soft *= 2.0
        size = float(w.output_weight_bytes())
        blocks = [(f"l{w.layers}.out", size)]
        self._repeat(phase, w.seq_len,
                     lambda: self._gemm_kernel(flops, soft, b, size / w.dtype_bytes, blocks))  # fmt: skip

    def _weight_gradients(self) -> None:
        w = self.w
        n = w.batch * w.seq_len
        for layer in range(w.layers):
            width = w.layer_input_size(layer)
            for direction in range(w.directions):
                ih_key, hh_key = self._keys(layer, direction)
                ih = float(w.weight_ih_bytes(layer) + w.bias_bytes() // 2)
                hh = float(w.weight_hh_bytes() + w.bias_bytes() // 2)
                flops = 2.0 * w.gates * w.hidden * width * n + 2.0 * w.weight_hh_nonzeros() * n
                elements = (ih + hh) / w.dtype_bytes
                bias = float(w.gates * w.hidden * n)
                self._gemm_task("backward_weights", flops, bias, n, elements,
                                [(f"grad.{ih_key}", ih), (f"grad.{hh_key}", hh)])  # fmt: skip
        if w.output != "none":
            size = float(w.output_weight_bytes())
            flops = (2.0 * w.output_size * w.directions * w.hidden + w.output_size) * n
            self._gemm_task("backward_weights", flops, 0.0, n, size / w.dtype_bytes,
                            [(f"grad.l{w.layers}.out", size)])  # fmt: skip

    def run(self) -> None:
        w = self.w
        for layer in range(w.layers):
            for direction in range(w.directions):
                self._input_gemm("forward", layer, direction)
                self._recurrent("forward", layer, direction)
            self.algorithms.append(self._algorithm())
        self._output("forward")
        if w.phase != "training":
            return
        self._output("backward_data")
        for layer in reversed(range(w.layers)):
            for direction in range(w.directions):
                self._recurrent("backward_data", layer, direction)
                self._input_gemm("backward_data", layer, direction)
        self._weight_gradients()

    def _algorithm(self) -> str:
        if self.step is not None:
            return "persistent"
        return "sparse_gemm" if self.sparse else "gemm"


def _streams_closed_form(machine: GpuMachine, workload: Workload, policy: Policy, chunk: int):
    """The larger of the wavefront's critical path (band formula over unshared cell costs) and
    the time the shared resources need for all cells (DRAM bytes, flops at full rate).

    The break-down (:func:`_closed_form`'s terms): a band's makespan is its cells' parts
    (:func:`wpsim.analytic._band_terms`); a makespan set by the shared resources is all that
    resource (memory at the level the weights come from, or arithmetic), every stream waiting
    on it throughout; the weight-gradient GEMMs run one at a time."""
    from wpsim.analytic import _band_makespan, _band_terms

    w, m = workload, machine
    peak = m.gemm_peak_flops(w.dtype)
    b = w.batch
    n_streams = _n_streams(m, policy, w)
    n_chunks = w.n_chunks(chunk)
    all_bytes = sum(w.layer_weight_bytes(layer) for layer in range(w.layers))
    resident = w.directions * all_bytes <= m.l2.size_bytes
    rate = m.l2.bandwidth_Bps if resident else m.memory.bandwidth_Bps
    passes = [("forward", 1.0)] + ([("backward_data", 2.0)] if w.phase == "training" else [])
    phases = {"forward": 0.0, "backward_data": 0.0, "backward_weights": 0.0}
    dram, algorithms = 0.0, ["gemm"] * w.layers
    level = L2 if resident else DRAM
    lanes = min(n_streams, w.layers)  # layers running at once
    terms: Terms = []  # what the makespan is made of
    work: Terms = []  # every kernel, for the view over the streams
    for phase, elem_factor in passes:
        costs, memory_total, flops_total = [], 0.0, 0.0
        cells, bytes_total = [], 0.0
        for layer in range(w.layers):
            ih_bytes = w.weight_ih_bytes(layer) + w.bias_bytes() // 2
            hh_bytes = w.weight_hh_bytes() + w.bias_bytes() // 2
            width = w.layer_input_size(layer)
            in_flops = 2.0 * w.gates * w.hidden * width * b * chunk
            rec_flops = 2.0 * w.weight_hh_nonzeros() * b * chunk
            elem = elem_factor * _elementwise_flops(w) * chunk
            compute = (
                gemm_s(m, w, in_flops, b * chunk, w.gates * w.hidden * width) if width else 0.0
            )
            compute += gemm_s(m, w, rec_flops, b, _recurrent_elements(w))
            compute += elementwise_s(m, w, elem, b)
            nbytes = ih_bytes + chunk * hh_bytes
            kernels = chunk * m.gemm.step_kernels(phase == "backward_data") + (1 if width else 0)
            memory = nbytes / rate
            busy = max(compute, memory)
            l2_s = memory if resident else 0.0
            cells.append(_kernel(issue_s(m, kernels, busy), compute, memory, {level: nbytes}, l2_s))
            costs.append(cells[-1][0])
            memory_total += n_chunks * nbytes / rate
            bytes_total += n_chunks * nbytes
            flops_total += n_chunks * (in_flops + rec_flops + elem)
            dram += nbytes * (1 if resident else n_chunks) * w.directions
        band = _band_makespan(costs, n_chunks, lanes)
        bound = max(memory_total, flops_total / (peak * m.gemm.efficiency_by_n[-1][1]))
        phases[phase] = max(band, bound) * w.directions
        if band >= bound:
            band_terms = _band_terms(costs, n_chunks, lanes)
            terms += [(c * w.directions, cells[layer]) for layer, c in band_terms]
            work += [(n_chunks * w.directions, cell) for cell in cells]
        else:  # the shared resources' time for all cells: memory, or arithmetic
            if bound == memory_total:
                l2_s = bound if resident else 0.0
                resource = _kernel(0.0, 0.0, bound, {level: bytes_total}, l2_s)
            else:
                resource = _kernel(0.0, bound, 0.0, {})
            terms.append((w.directions, resource))
            work.append((w.directions * lanes, resource))
    if w.phase == "training":
        n = b * w.seq_len
        for layer in range(w.layers):
            width = w.layer_input_size(layer)
            flops = 2.0 * w.gates * w.hidden * (width + w.hidden) * n
            elements = w.gates * w.hidden * (width + w.hidden)
            busy = gemm_s(m, w, flops, n, elements)
            gemm = _kernel(issue_s(m, 1, busy), busy, 0.0, {})
            phases["backward_weights"] += w.directions * gemm[0]
            terms.append((w.directions, gemm))
            work.append((w.directions, gemm))
    n = policy.instances
    phases = {name: seconds * n for name, seconds in phases.items()}
    terms = [(c * n, kernel) for c, kernel in terms]
    work = [(c * n, kernel) for c, kernel in work]
    return sum(phases.values()), dram * n, algorithms, phases, terms, work, lanes


def _terms_breakdown(terms: Terms) -> dict[str, float]:
    """The sum of ``coefficient * kernel`` terms of :func:`_closed_form` by cause."""
    return breakdown.from_terms(dict(enumerate(c for c, _ in terms)), lambda i: terms[i][1], LEVELS)


def _useful_flops(workload: Workload, instances: int) -> float:
    from wpsim.analysis import closed_form_total_flops

    return closed_form_total_flops(workload) * instances


def evaluate(
    engine: str,
    workload: Workload,
    machine: GpuMachine,
    policy: Policy | str = "persistent",
    cores: int | None = None,
    chunk: int = 1,
    granularity: str = "cell",
    cost: str = "model",
    hooks: list | None = None,
) -> Result:
    """Simulate (``engine="simulate"``) or predict (``"predict"``) ``workload`` on a GPU.

    ``sequential_s`` (the speed-up baseline) is the ``gemm`` policy: one per-step GEMM after the
    other, layer by layer. ``extra`` holds ``max_persistent_hidden``, the algorithm of each layer,
    the recurrent step time, TFLOP/s, ``phase_s`` (the time by phase: ``forward``,
    ``backward_data``, ``backward_weights``) and, for persistent kernels, whether the layer fits.

    Examples
    --------
    >>> from wpsim.hardware import load_machine, resolve_machine_path
    >>> v100 = load_machine(resolve_machine_path("v100"))
    >>> w = Workload(cell="rnn", hidden=2304, input=2304, seq_len=16, batch=4, density=0.3)
    >>> r = evaluate("predict", w, v100, "persistent")
    >>> r.extra["algorithms"], round(r.extra["recurrent_step_s"] * 1e6, 2), r.speedup > 4
    (['persistent'], 2.31, True)
    """
    if granularity != "cell":
        raise ConfigError("--granularity op: the GPU models run the cell graph; use cell")
    if cost != "model":
        raise ConfigError("--cost ideal: the GPU models have no idealised variant; use model")
    policy = _resolve(policy, machine)
    if cores is not None:
        machine = machine.with_cores(cores)
    baseline = get_policy("gemm", instances=policy.instances)
    trace, tasks, level_bytes = None, None, {DRAM: 0.0}
    if engine == "predict":
        makespan, dram, algorithms, phase_s, terms, work, lanes = _closed_form(
            machine, workload, policy, chunk
        )
        sequential_s = _closed_form(machine, workload, baseline, chunk)[0]
        n_tasks = _n_tasks(workload, policy, chunk)
        level_bytes = {DRAM: dram}
        why = _terms_breakdown(terms)
        # the core view is over the streams that run kernels at once (one, unless ``streams``)
        why_cores = breakdown.spread(_terms_breakdown(work), lanes, makespan)
    else:
        plan, trace, model = _simulate_makespan(machine, workload, policy, chunk, hooks)
        makespan = trace.makespan_s
        sequential_s = _simulate_makespan(machine, workload, baseline, chunk)[1].makespan_s
        n_tasks, tasks = plan.n_tasks, plan.tasks
        level_bytes = {name: trace.total_bytes(name) for name in LEVELS}
        # the core view over the streams the kernels ran on (one, unless ``streams``)
        why = breakdown.critical_path_breakdown(trace, plan.preds, LEVELS)
        why_cores = breakdown.core_breakdown(trace, _n_streams(machine, policy, workload), LEVELS)
        dram = level_bytes[DRAM]
        algorithms = [model.layer_algorithm.get((0, layer, 0), "gemm")
                      for layer in range(workload.layers)]  # fmt: skip
        phase_s = {"forward": 0.0, "backward_data": 0.0, "backward_weights": 0.0}
        for tid, start, end in zip(trace.task, trace.start_s, trace.end_s, strict=True):
            phase_s[phase_of(tasks[tid].kind)] += end - start
    flops = _useful_flops(workload, policy.instances)
    peak = machine.peak_flops(workload.dtype)
    if policy.algorithm == "persistent":
        step = persistent_step(machine, workload, policy.kernel)
        if not step["fits"]:
            step = best_fallback(machine, workload)
    elif policy.algorithm == "sparse_gemm":
        step = gemm_step(machine, workload, sparse=True)
    else:
        step = gemm_step(machine, workload)
    extra: dict[str, Any] = {
        "machine": machine.name,
        "chunk": chunk,
        "granularity": granularity,
        "cost": cost,
        "baseline": "gemm",
        "max_persistent_hidden": max_persistent_hidden(machine, workload),
        "persistent_fits": fits_on_chip(machine, workload),
        "algorithm": algorithms[0] if len(set(algorithms)) == 1 else ",".join(algorithms),
        "persistent_kernel": policy.kernel.label if policy.algorithm == "persistent" else None,
        "algorithms": algorithms,
        "recurrent_step_s": step["step_s"],
        "recurrent_tflops": step["flops"] / step["step_s"] / 1e12,
        "tflops": flops / makespan / 1e12 if makespan else 0.0,
        "peak_tflops": peak / 1e12,
        "phase_s": phase_s,
    }
    if policy.algorithm == "persistent" and "persistent" not in algorithms:
        extra["note"] = (
            f"H={workload.hidden} does not fit on chip (largest: "
            f"{extra['max_persistent_hidden']}); ran {extra['algorithm']} per step instead"
        )
    return Result(
        engine="simulate" if engine != "predict" else "analytic",
        policy=policy.describe(),
        cores=machine.sms,
        makespan_s=makespan,
        sequential_s=sequential_s,
        n_tasks=n_tasks,
        utilization=min(1.0, flops / (peak * makespan)) if makespan else 0.0,
        dram_bytes=dram,
        level_bytes=level_bytes,
        extra=extra,
        breakdown_s=why,
        core_breakdown_s=why_cores,
        trace=trace,
        tasks=tasks,
    )
