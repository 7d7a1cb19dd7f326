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

Per-step GEMM (cuBLAS / cuSPARSE per step, cuDNN's standard algorithm)
----------------------------------------------------------------------
``step = kernels_per_step * launch + max(F / (P * e(B)), bytes / bandwidth)`` where the weights
come from L2 when they stay there between steps (an LRU of weight blocks of the L2's size) and
from DRAM otherwise; a sparse product reads the CSR arrays (values and 4-byte indices) at
``sparse_bandwidth_efficiency`` of the bandwidth. The input projections of all steps are one
GEMM per layer (``B*T`` columns), before the recurrent loop.

Training (simulation only): a backward cell costs a persistent step too (the persistent-rnn
library keeps the transposed weights on chip for back-propagation), weight gradients are one GEMM
per layer; the closed forms cover inference.

Streams (cuDNN's layer overlap)
-------------------------------
Each layer has a stream; a cell (its input and recurrent products, per step) starts when the
layer below and the previous step are done, as in the CPU wavefront. Kernels running at the same
time share the SMs (each gets at most ``1 / running`` of the GPU, or its own ``e(B)`` if lower)
and the DRAM bandwidth (processor sharing in the engine).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

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
    machine: GpuMachine, workload: Workload, kernel: PersistentKernel = ZHU_2018
) -> dict[str, Any]:
    """Time of one recurrent step of a persistent kernel, and its parts (see module doc)."""
    w, m, spec = workload, machine, machine.persistent
    s, b = w.dtype_bytes, w.batch
    entries = stored_entries(m, w.gates, w.hidden, w.density)
    peak = m.peak_flops(w.dtype)
    flops = 2.0 * entries * b + _elementwise_flops(w)
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


def gemm_step(
    machine: GpuMachine, workload: Workload, sparse: bool = False, in_l2: bool | None = None
) -> dict[str, Any]:
    """Time of one recurrent step as a per-step (sparse) GEMM with weights from L2 or DRAM.

    ``in_l2``: whether the weights stay in L2 between steps (default: they fit the L2).
    """
    w, m = workload, machine
    if sparse:
        nbytes = float(w.weight_hh_nonzeros() * (w.dtype_bytes + INDEX_BYTES)
                       + (w.gates * w.hidden + 1) * INDEX_BYTES)  # fmt: skip
        flops = 2.0 * w.weight_hh_nonzeros() * w.batch
        efficiency = m.gemm.sparse_bandwidth_efficiency
    else:
        nbytes = float(w.gates * w.hidden * w.hidden * w.dtype_bytes)
        flops = 2.0 * w.gates * w.hidden * w.hidden * w.batch
        efficiency = 1.0
    if in_l2 is None:
        in_l2 = nbytes <= m.l2.size_bytes
    bandwidth = (m.l2.bandwidth_Bps if in_l2 else m.memory.bandwidth_Bps) * efficiency
    compute = (flops + _elementwise_flops(w)) / (m.peak_flops(w.dtype) * m.gemm.efficiency(w.batch))
    memory = nbytes / bandwidth
    launch = m.gemm.kernels_per_step * m.kernel_launch_s
    return {
        "algorithm": "sparse_gemm" if sparse else "gemm",
        "fits": True,
        "weight_bytes": nbytes,
        "level": L2 if in_l2 else DRAM,
        "compute_s": compute,
        "memory_s": memory,
        "launch_s": launch,
        "step_s": launch + max(compute, memory),
        "flops": 2.0 * w.weight_hh_nonzeros() * w.batch,
    }


def best_fallback(machine: GpuMachine, workload: Workload) -> dict[str, Any]:
    """The faster of dense and (for sparse weights) sparse GEMM per step."""
    dense = gemm_step(machine, workload)
    if not workload.sparse:
        return dense
    sparse = gemm_step(machine, workload, sparse=True)
    return sparse if sparse["step_s"] < dense["step_s"] else dense


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
        self.peak = machine.peak_flops(w.dtype)
        self.l2 = LRUCache(machine.l2.size_bytes)
        self.started_layers: set[tuple] = set()
        self.layer_algorithm: dict[tuple, str] = {}
        if algorithm == "persistent":
            step = persistent_step(machine, w, kernel)
            self.persistent = step if step["fits"] else None
            self.fallback = best_fallback(machine, w)
            self.step_parts = persistent_step_parts(step)

    def _product(self, flops: float, n_columns: float, share: float) -> float:
        efficiency = min(self.machine.gemm.efficiency(n_columns), share)
        return flops / (self.peak * efficiency)

    def _read(self, key, nbytes: float, times: int, efficiency: float = 1.0):
        """Read a weight block ``times`` times; returns (L2 bytes, DRAM bytes), LRU updated."""
        if self.l2.lookup(key):
            return nbytes * times, 0.0
        self.l2.insert(key, nbytes)
        if key in self.l2.blocks:  # fits: the later reads hit
            return nbytes * (times - 1), nbytes
        return 0.0, nbytes * times

    def start(self, tid: int, cores: tuple[int, ...], busy_on_socket: int) -> TaskCost:
        m, w = self.machine, self.w
        t = self.plan.tasks[tid]
        share = 1.0 / (1 + busy_on_socket)
        launch = m.kernel_launch_s
        layer_key = (t.instance, t.layer, t.direction)
        is_cell = t.kind in ("cell", "cell_bwd") and t.flops_rec
        if is_cell and self.algorithm == "persistent":
            first = layer_key not in self.started_layers
            self.started_layers.add(layer_key)
            if self.persistent is not None:
                self.layer_algorithm[layer_key] = "persistent"
                load = float(self.persistent["weight_bytes"]) if first else 0.0
                # launch, then the one-time load of the weights into registers, then the steps
                fixed = launch + load / m.memory.bandwidth_Bps if first else 0.0
                compute = t.steps * self.persistent["step_s"]
                if t.flops_in:  # input projection left in the cell (chunked graphs)
                    compute += self._product(t.flops_in, w.batch * t.steps, share)
                return TaskCost(
                    fixed,
                    compute,
                    0.0,
                    0.0,
                    {DRAM: load} if load else {},
                    0,
                    dispatch_s=launch if first else 0.0,
                    load_s=load / m.memory.bandwidth_Bps if first else 0.0,
                    compute_parts=tuple((cause, t.steps * s) for cause, s in self.step_parts),
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
        # other task (hoisted input GEMM, output layer): one GEMM of B*steps columns.
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
            rec = t.flops_rec
            if algorithm == "gemm" and w.sparse:
                rec = 2.0 * w.gates * w.hidden * w.hidden * w.batch * t.steps
            compute = self._product(rec + t.flops_elem, w.batch, share)
            fixed = t.steps * m.gemm.kernels_per_step * launch
            if t.flops_in:
                compute += self._product(t.flops_in, w.batch * t.steps, share)
                fixed += launch
        else:
            compute = self._product(t.flops, w.batch * t.steps, share)
            fixed = launch
        return TaskCost(fixed, compute, l2_s, dram_eff, level, 0, dispatch_s=fixed)

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
    launch_s: float, compute_s: float, memory_s: float, level: str, nbytes: float, **parts: Any
) -> tuple[float, TaskCost]:
    """One kernel of a closed form as ``(seconds, TaskCost)``: its launch, then its arithmetic
    overlapped with reading ``nbytes`` from ``level`` in ``memory_s`` (``parts``: a persistent
    kernel's ``load_s`` and ``compute_parts``), for :mod:`wpsim.breakdown`."""
    load_s = parts.get("load_s", 0.0)
    cost = TaskCost(
        launch_s + load_s, compute_s, memory_s if level == L2 else 0.0,
        nbytes if level == DRAM else 0.0, {level: nbytes} if nbytes else {}, 0,
        dispatch_s=launch_s, **parts,
    )  # fmt: skip
    return launch_s + load_s + max(compute_s, memory_s), cost


def _closed_form(machine: GpuMachine, workload: Workload, policy: Policy, chunk: int):
    """Closed-form makespan, DRAM bytes and per-layer algorithm (see module doc), and for
    :mod:`wpsim.breakdown`: the makespan as ``(coefficient, (seconds, TaskCost))`` terms of its
    kernels, all kernels as such terms (their counts), and how many streams run them at once.

    One kernel at a time (``gemm``, ``sparse_gemm``, ``persistent``): per layer-direction, the
    input GEMM (``B*T`` columns; its weights read once from DRAM), then ``T`` steps (the first
    read of per-step weights is cold; a persistent kernel loads its weights once). ``streams``:
    the CPU wavefront's band formula over per-layer step costs, with the DRAM bandwidth and the
    SMs shared by the ``min(layers, streams)`` layers running at once.
    """
    w, m = workload, machine
    peak = m.peak_flops(w.dtype)
    launch = m.kernel_launch_s
    T, b = w.seq_len, w.batch
    algorithms: list[str] = []
    dram = 0.0
    terms: list[tuple[float, tuple[float, TaskCost]]] = []  # what the makespan is made of
    if policy.algorithm == "streams":
        # the larger of the wavefront's critical path (band formula over unshared cell costs)
        # and the time the shared resources need for all cells (DRAM bytes, flops at full rate)
        n_streams = _n_streams(m, policy, w)
        n_chunks = w.n_chunks(chunk)
        all_bytes = sum(w.layer_weight_bytes(layer) for layer in range(w.layers))
        resident = w.directions * all_bytes <= m.l2.size_bytes
        costs, memory_total, flops_total, cells = [], 0.0, 0.0, []
        for layer in range(w.layers):
            ih_bytes = w.weight_ih_bytes(layer) + w.bias_bytes() // 2
            hh_bytes = w.weight_hh_bytes() + w.bias_bytes() // 2
            rate = m.l2.bandwidth_Bps if resident else m.memory.bandwidth_Bps
            in_flops = 2.0 * w.gates * w.hidden * w.layer_input_size(layer) * b * chunk
            rec_flops = (2.0 * w.weight_hh_nonzeros() * b + _elementwise_flops(w)) * chunk
            compute = in_flops / (peak * m.gemm.efficiency(b * chunk))
            compute += rec_flops / (peak * m.gemm.efficiency(b))
            nbytes = ih_bytes + chunk * hh_bytes
            launches = (chunk * m.gemm.kernels_per_step + 1) * launch
            costs.append(launches + max(compute, nbytes / rate))
            cells.append(
                _kernel(launches, compute, nbytes / rate, L2 if resident else DRAM, nbytes)
            )
            memory_total += n_chunks * nbytes / rate
            flops_total += n_chunks * (in_flops + rec_flops)
            dram += nbytes * (1 if resident else n_chunks) * w.directions
            algorithms.append("gemm")
        from wpsim.analytic import _band_makespan

        band = _band_makespan(costs, n_chunks, min(n_streams, w.layers))
        bound = max(memory_total, flops_total / (peak * m.gemm.efficiency_by_n[-1][1]))
        makespan = max(band, bound) * w.directions
        repeat = w.directions * policy.instances
        if band >= bound:
            from wpsim.analytic import _band_terms

            terms = [(c * repeat, cells[layer])
                     for layer, c in _band_terms(costs, n_chunks, min(n_streams, w.layers))]  # fmt: skip
        else:  # the shared resources' time for all cells: memory or arithmetic
            level = (L2 if resident else DRAM) if bound == memory_total else None
            terms = [(repeat, _kernel(0.0, bound if level is None else 0.0,
                                      bound if level else 0.0, level or DRAM, float(bool(level))))]  # fmt: skip
        lanes = min(n_streams, w.layers)
        work = [(n_chunks * repeat, cell) for cell in cells]
        if band < bound:  # every stream waits on the saturated resource throughout
            work = [(c * lanes, kernel) for c, kernel in terms]
        return makespan * policy.instances, dram * policy.instances, algorithms, terms, work, lanes
    if w.phase == "training":
        raise ConfigError(
            "the GPU closed forms cover inference; simulate training (wpsim simulate/compare)"
        )
    total = 0.0
    for layer in range(w.layers):
        ih_bytes = w.weight_ih_bytes(layer) + w.bias_bytes() // 2
        in_flops = 2.0 * w.gates * w.hidden * w.layer_input_size(layer) * b * T
        input_gemm = launch + max(
            in_flops / (peak * m.gemm.efficiency(b * T)), ih_bytes / m.memory.bandwidth_Bps
        )
        terms.append((1.0, _kernel(launch, in_flops / (peak * m.gemm.efficiency(b * T)),
                                   ih_bytes / m.memory.bandwidth_Bps, DRAM, ih_bytes)))  # fmt: skip
        dram += ih_bytes
        if policy.algorithm == "persistent":
            step = persistent_step(m, w, policy.kernel)
            if not step["fits"]:
                step = best_fallback(m, w)
        elif policy.algorithm == "sparse_gemm":
            step = gemm_step(m, w, sparse=True)
        else:
            step = gemm_step(m, w)
        algorithms.append(step["algorithm"])
        if step["algorithm"] == "persistent":
            recurrent = launch + step["weight_bytes"] / m.memory.bandwidth_Bps + T * step["step_s"]
            dram += step["weight_bytes"]
            parts = tuple((cause, T * s) for cause, s in persistent_step_parts(step))
            terms.append((1.0, _kernel(launch, T * step["step_s"], 0.0, DRAM, 0.0,
                                       load_s=step["weight_bytes"] / m.memory.bandwidth_Bps,
                                       compute_parts=parts)))  # fmt: skip
        else:
            hh_bytes = float(w.weight_hh_bytes() + w.bias_bytes() // 2)
            if step["algorithm"] == "gemm":
                hh_bytes = float(w.gates * w.hidden * w.hidden * w.dtype_bytes
                                 + w.bias_bytes() // 2)  # fmt: skip
            in_l2 = hh_bytes <= m.l2.size_bytes
            sparse = step["algorithm"] == "sparse_gemm"
            efficiency = m.gemm.sparse_bandwidth_efficiency if sparse else 1.0
            nonzeros = w.weight_hh_nonzeros() if sparse else w.gates * w.hidden * w.hidden
            flops = 2.0 * nonzeros * b + _elementwise_flops(w)
            compute = flops / (peak * m.gemm.efficiency(b))
            per_step = m.gemm.kernels_per_step * launch
            dram_read = hh_bytes / (m.memory.bandwidth_Bps * efficiency)
            l2_read = hh_bytes / (m.l2.bandwidth_Bps * efficiency)
            if in_l2:
                recurrent = per_step * T + max(compute, dram_read) + (T - 1) * max(compute, l2_read)
                dram += hh_bytes
                terms.append((T - 1.0, _kernel(per_step, compute, l2_read, L2, hh_bytes)))
            else:
                recurrent = T * (per_step + max(compute, dram_read))
                dram += hh_bytes * T
            terms.append((1.0 if in_l2 else float(T),
                          _kernel(per_step, compute, dram_read, DRAM, hh_bytes)))  # fmt: skip
        total += input_gemm + recurrent
    total *= w.directions
    dram *= w.directions
    terms = [(c * w.directions, kernel) for c, kernel in terms]
    if w.output != "none":
        out_bytes = w.output_weight_bytes()
        out_flops = (2.0 * w.output_size * w.directions * w.hidden + w.output_size) * b
        if w.output == "softmax":
            out_flops += 4.0 * w.output_size * b
        in_l2 = out_bytes <= m.l2.size_bytes
        compute = out_flops / (peak * m.gemm.efficiency(b))
        first = launch + max(compute, out_bytes / m.memory.bandwidth_Bps)
        rest = launch + max(
            compute, out_bytes / (m.l2.bandwidth_Bps if in_l2 else m.memory.bandwidth_Bps)
        )
        total += first + (T - 1) * rest
        dram += out_bytes * (1 if in_l2 else T)
        terms.append((1.0, _kernel(launch, compute, out_bytes / m.memory.bandwidth_Bps, DRAM,
                                   out_bytes)))  # fmt: skip
        rest_level = L2 if in_l2 else DRAM
        rest_s = out_bytes / (m.l2.bandwidth_Bps if in_l2 else m.memory.bandwidth_Bps)
        terms.append((T - 1.0, _kernel(launch, compute, rest_s, rest_level, out_bytes)))
    terms = [(c * policy.instances, kernel) for c, kernel in terms]
    return total * policy.instances, dram * policy.instances, algorithms, terms, terms, 1


def _terms_breakdown(terms: list[tuple[float, tuple[float, TaskCost]]]) -> dict[str, float]:
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
    the recurrent step time, TFLOP/s and, for persistent kernels, whether the layer fits.

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
        makespan, dram, algorithms, terms, work, lanes = _closed_form(
            machine, workload, policy, chunk
        )
        sequential_s = _closed_form(machine, workload, baseline, chunk)[0]
        n_tasks = _plan(workload, policy, chunk).n_tasks
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
