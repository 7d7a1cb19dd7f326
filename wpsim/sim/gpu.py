"""GPU policies evaluated: simulated on the engine with :class:`~wpsim.cost.gpu.GpuCostModel`, or
in closed form (one kernel at a time; the streams wavefront). The model's formulas (persistent
kernels, per-step GEMMs, what the time is made of) are in :mod:`wpsim.cost.gpu`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from wpsim import breakdown
from wpsim.cost.base import DRAM, TaskCost
from wpsim.cost.caches import LRUCache
from wpsim.cost.gpu import (
    L2,
    LEVELS,
    GpuCostModel,
    best_fallback,
    dense_hh_bytes,
    elementwise_flops,
    elementwise_s,
    fits_on_chip,
    gemm_s,
    gemm_step,
    input_elements,
    issue_s,
    max_persistent_hidden,
    persistent_step,
    persistent_step_parts,
    phase_of,
    read_weights,
    recurrent_elements,
    recurrent_shapes,
)
from wpsim.errors import ConfigError
from wpsim.machines.gpu import GpuMachine, PersistentKernel
from wpsim.model.graph import build
from wpsim.model.plan import Plan, compile_plan
from wpsim.model.workload import Workload
from wpsim.policies import Policy, get_policy
from wpsim.result import Result

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


@runtime_checkable
class _GpuPolicy(Protocol):
    """What the GPU model reads of a policy besides :class:`Policy`'s own: the GPU policies'
    algorithm and persistent kernel (:mod:`wpsim.policies.gpu`), which :func:`_resolve` gives."""

    algorithm: str
    kernel: PersistentKernel


def _plan(workload: Workload, policy: Policy, chunk: int) -> Plan:
    return compile_plan(
        build(workload, granularity="cell", **policy.graph_options(workload, chunk))
    )


def _n_tasks(workload: Workload, policy: Policy, chunk: int) -> int:
    """Tasks of the policy's graph, counted from its classes (:mod:`wpsim.sim.closed_forms.tasks`)."""
    from wpsim.sim.closed_forms.tasks import task_set

    options = policy.graph_options(workload, chunk)
    hoist = options.get("hoist_input")
    return int(
        task_set(
            [workload],
            np.array([options.get("chunk", 1)]),
            None if hoist is None else np.array([hoist]),
            options.get("instances", 1),
        ).n_tasks[0]
    )


def _n_streams(machine: GpuMachine, policy: Policy, workload: Workload) -> int:
    assert isinstance(policy, _GpuPolicy)  # resolved by _resolve
    if policy.algorithm != "streams":
        return 1
    per_instance = workload.layers * workload.directions
    return max(1, min(per_instance * policy.instances, machine.max_concurrent_kernels))


def _simulate_makespan(machine, workload, policy, chunk, hooks=None):
    from wpsim.sim.engine import run_plan

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
#: What :func:`_closed_form` returns: makespan (s), DRAM bytes, per-layer algorithms, seconds by
#: phase, the makespan's terms, all kernels' terms, streams running kernels at once
ClosedForm = tuple[float, float, list[str], dict[str, float], Terms, Terms, int]


def _closed_form(machine: GpuMachine, workload: Workload, policy: Policy, chunk: int) -> ClosedForm:
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
    assert isinstance(policy, _GpuPolicy)  # resolved by _resolve
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
        self.step: dict[str, Any] | None = None
        self.step_bwd: dict[str, Any] | None = None
        assert isinstance(policy, _GpuPolicy)  # resolved by _resolve
        if policy.algorithm == "persistent":
            step = persistent_step(machine, workload, policy.kernel)
            if step["fits"]:
                self.step = step
                self.step_bwd = persistent_step(machine, workload, policy.kernel, backward=True)
        self.sparse = policy.algorithm == "sparse_gemm" or (
            policy.algorithm == "persistent"
            and self.step is None
            and best_fallback(machine, workload)["algorithm"] == "sparse_gemm"
        )

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

    def _repeat(self, phase: str, times: int, step: Callable[[], tuple[float, TaskCost]]) -> None:
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

    def _gemm_task(
        self,
        phase: str,
        flops: float,
        elem: float,
        n: float,
        elements: float,
        blocks: list[tuple[str, float]],
    ) -> None:
        self._add(phase, self._gemm_kernel(flops, elem, n, elements, blocks, phase))

    def _gemm_kernel(
        self,
        flops: float,
        elem: float,
        n: float,
        elements: float,
        blocks: list[tuple[str, float]],
        phase: str,
    ) -> tuple[float, TaskCost]:
        """One GEMM kernel; the backward-data phase multiplies by the transposed weights."""
        m, w = self.m, self.w
        compute = gemm_s(m, w, flops, n, elements, transposed=phase == "backward_data")
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
        blocks = w.weight_block_bytes(layer)
        flops = w.step_flops(layer)
        width = w.layer_input_size(layer)
        # the products off the recurrence that the input GEMM leaves in the cells (as the
        # graph's hoisted cells keep them, wpsim.cells.input_products: MinimalRNN's U_z z), one
        # GEMM of B columns a step
        kept = flops.matmul_batched - flops.matmul_input if width else 0.0
        # a skip-input layer's cells read their bias block each step (its "ih" block), and
        # cells that keep products their matrices
        ih_block = float(blocks["ih"]) if width == 0 or kept else None
        kept_s = gemm_s(m, w, kept, b, input_elements(w, layer), backward) if kept else 0.0
        if not flops.matmul_recurrent:
            # an element-wise recurrence (SRU, QRNN, IndRNN): no product to keep on chip or to
            # launch; one element-wise kernel a step, reading the recurrent vectors
            elem = (2.0 if backward else 1.0) * elementwise_flops(w)
            read = [(hh_key, float(blocks["hh"]))] if blocks["hh"] else []
            if ih_block:
                read.append((ih_key, ih_block))
            elements = sum(size for _, size in read) / w.dtype_bytes if kept else 0.0
            for _ in range(T):
                self._gemm_task(phase, kept, elem, b, elements, read)
            return
        if self.step is not None:
            persistent = self.step_bwd if backward else self.step
            assert persistent is not None  # set with self.step
            load = float(persistent["weight_bytes"])
            self.dram += load
            # launch, the one-time load of the weights into registers, then the T steps (their
            # synchronisation and broadcast of h as parts of the step time)
            load_s = load / m.memory.bandwidth_Bps
            parts = tuple((cause, T * s) for cause, s in persistent_step_parts(persistent))
            compute_s = T * (persistent["step_s"] + kept_s)
            kernel = _kernel(m.kernel_launch_s, compute_s, 0.0, {DRAM: load}, 0.0, load_s, parts)
            self._add(phase, kernel)
            return  # the weights stay in registers: nothing goes through the L2's LRU
        if self.sparse:
            nbytes = float(blocks["hh"])
            efficiency = m.gemm.sparse_bandwidth_efficiency
            rec_flops = 2.0 * w.weight_hh_nonzeros() * b + (
                2.0 if backward else 1.0
            ) * elementwise_flops(w)
            compute = rec_flops / (m.peak_flops(w.dtype) * m.gemm.efficiency(b))
        else:
            nbytes = dense_hh_bytes(w, layer)
            efficiency = 1.0
            compute = gemm_s(
                m, w, 2.0 * recurrent_elements(w) * b, b, recurrent_elements(w), transposed=backward
            )
            compute += elementwise_s(m, w, (2.0 if backward else 1.0) * elementwise_flops(w), b)
        compute += kept_s
        kernels = m.gemm.step_kernels(backward) + (1 if kept else 0)

        def step() -> tuple[float, TaskCost]:
            level: dict[str, float] = {}
            memory, l2_s = self._read(hh_key, nbytes, 1, level, efficiency)
            if ih_block is not None:
                block_s, block_l2_s = self._read(ih_key, ih_block, 1, level)
                memory += block_s
                l2_s += block_l2_s
            busy = max(compute, memory)
            launch = issue_s(m, kernels, busy)
            return _kernel(launch, compute, memory, level, l2_s)

        self._repeat(phase, T, step)

    def _input_gemm(self, phase: str, layer: int, direction: int) -> None:
        w = self.w
        width = w.layer_input_size(layer)
        if width == 0:
            return
        # the products of the layer input (wpsim.cells.input_products), as the graph hoists
        flops = w.step_flops(layer).matmul_input * w.seq_len
        size = float(w.weight_block_bytes(layer)["ih"])
        key = self._keys(layer, direction)[0]
        self._gemm_task(phase, flops, 0.0, w.batch * w.seq_len, size / w.dtype_bytes, [(key, size)])

    def _output(self, phase: str) -> None:
        w = self.w
        if w.output == "none":
            return
        b, o = w.batch, w.output_size
        flops = (2.0 * o * w.directions * w.output_width + o) * b
        soft = 4.0 * o * b if w.output == "softmax" else 0.0
        if phase == "backward_data":
            soft *= 2.0
        size = float(w.output_weight_bytes())
        blocks = [(f"l{w.layers}.out", size)]
        self._repeat(
            phase,
            w.seq_len,
            lambda: self._gemm_kernel(flops, soft, b, size / w.dtype_bytes, blocks, phase),
        )

    def _weight_gradients(self) -> None:
        w = self.w
        n = w.batch * w.seq_len
        for layer in range(w.layers):
            for direction in range(w.directions):
                ih_key, hh_key = self._keys(layer, direction)
                blocks = w.weight_block_bytes(layer)
                ih, hh = float(blocks["ih"]), float(blocks["hh"])
                step = w.step_flops(layer)  # one step of the batch; a row's is 1/B of it
                flops = (step.matmul_batched + step.matmul_recurrent) / w.batch * n
                elements = (ih + hh) / w.dtype_bytes
                bias = float(w.bias_gradient_width * n)
                self._gemm_task(
                    "backward_weights",
                    flops,
                    bias,
                    n,
                    elements,
                    [(f"grad.{ih_key}", ih), (f"grad.{hh_key}", hh)],
                )
        if w.output != "none":
            size = float(w.output_weight_bytes())
            flops = (2.0 * w.output_size * w.directions * w.output_width + w.output_size) * n
            self._gemm_task(
                "backward_weights",
                flops,
                0.0,
                n,
                size / w.dtype_bytes,
                [(f"grad.l{w.layers}.out", size)],
            )

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


def _streams_closed_form(
    machine: GpuMachine, workload: Workload, policy: Policy, chunk: int
) -> ClosedForm:
    """The larger of the wavefront's critical path (band formula over unshared cell costs) and
    the time the shared resources need for all cells (DRAM bytes, flops at full rate).

    The break-down (:func:`_closed_form`'s terms): a band's makespan is its cells' parts
    (:func:`wpsim.sim.closed_forms.band_terms`); a makespan set by the shared resources is all that
    resource (memory at the level the weights come from, or arithmetic), every stream waiting
    on it throughout; the weight-gradient GEMMs run one at a time."""
    from wpsim.sim.closed_forms import band_makespan, band_terms

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
            blocks = w.weight_block_bytes(layer)
            ih_bytes, hh_bytes = blocks["ih"], blocks["hh"]
            width = w.layer_input_size(layer)
            step = w.step_flops(layer)
            in_flops = step.matmul_batched * chunk
            rec_flops = step.matmul_recurrent * chunk
            elem = elem_factor * elementwise_flops(w) * chunk
            transposed = phase == "backward_data"
            compute = (
                gemm_s(m, w, in_flops, b * chunk, input_elements(w, layer), transposed)
                if width
                else 0.0
            )
            if rec_flops:
                compute += gemm_s(m, w, rec_flops, b, recurrent_elements(w), transposed)
                compute += elementwise_s(m, w, elem, b)
                nbytes = ih_bytes + chunk * hh_bytes
                kernels = chunk * m.gemm.step_kernels(phase == "backward_data") + (
                    1 if width else 0
                )
            else:  # an element-wise recurrence: one kernel a chunk, as the simulator runs it
                compute += elementwise_s(m, w, elem, b * chunk)
                nbytes = ih_bytes + hh_bytes
                kernels = 1
            memory = nbytes / rate
            busy = max(compute, memory)
            l2_s = memory if resident else 0.0
            cells.append(_kernel(issue_s(m, kernels, busy), compute, memory, {level: nbytes}, l2_s))
            costs.append(cells[-1][0])
            memory_total += n_chunks * nbytes / rate
            bytes_total += n_chunks * nbytes
            flops_total += n_chunks * (in_flops + rec_flops + elem)
            dram += nbytes * (1 if resident else n_chunks) * w.directions
        band = band_makespan(costs, n_chunks, lanes)
        bound = max(memory_total, flops_total / (peak * m.gemm.efficiency_by_n[-1][1]))
        phases[phase] = max(band, bound) * w.directions
        if band >= bound:
            coefficients = band_terms(costs, n_chunks, lanes)
            terms += [(c * w.directions, cells[layer]) for layer, c in coefficients]
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
            elements = input_elements(w, layer) + recurrent_elements(w)
            flops = 2.0 * elements * n
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
    from wpsim.model.analysis import closed_form_total_flops

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
    >>> from wpsim.machines import load_machine, resolve_machine_path
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
    if workload.streams > 1:
        raise ConfigError(
            f"workload streams {workload.streams}: the GPU models run one stream; use streams: 1 "
            "(a GPU runs several sequences as a larger batch)"
        )
    policy = _resolve(policy, machine)
    assert isinstance(policy, _GpuPolicy)
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
        algorithms = [
            model.layer_algorithm.get((0, layer, 0), "gemm") for layer in range(workload.layers)
        ]
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
        # a cell whose recurrence is element-wise (SRU, QRNN, IndRNN) has no persistent kernel
        reason = (
            f"H={workload.hidden} does not fit on chip (largest: {extra['max_persistent_hidden']})"
            if recurrent_shapes(workload)
            else f"{workload.cell} has no recurrent matrix to keep on chip"
        )
        extra["note"] = f"{reason}; ran {extra['algorithm']} per step instead"
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
