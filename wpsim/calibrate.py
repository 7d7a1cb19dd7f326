"""Measure this machine and write a machine file (``wpsim calibrate``).

Every field of :class:`wpsim.hardware.CpuMachine` that the cost model (:mod:`wpsim.cost`) uses is
measured here, with the same meaning the model gives it; what cannot be measured from Python is
read from the operating system (``spec:``) or carried over with its original source comment.

What is measured, and how (all timings are medians of repeats; BLAS is pinned to one thread in
every measuring process: ``OPENBLAS_NUM_THREADS=1`` etc. in the environment before numpy is
imported, plus :func:`threadpoolctl.threadpool_limits`; each process is pinned to one core):

``clock_hz`` and ``peak_flops_per_cycle``
    flops per cycle from the CPU flags (``avx512f``: 64 fp32, ``avx2`` + ``fma``: 32, ``avx``: 16,
    else 8; fp64 half). The clock is the larger of ``/proc/cpuinfo`` MHz and the clock implied by
    the fastest GEMM measured below at that many flops per cycle. A guest sees only the TSC rate;
    the cores boost above it, and a fraction of peak cannot exceed 1. So the clock is a measured
    *lower bound* of the running clock, and efficiencies are fractions of ``clock x flops/cycle``.
``efficiency.gemm_by_n`` and ``efficiency.gemm_by_n_h``
    ``X (n, H) @ W^T`` with ``W (4H, H)`` fp32 (the LSTM recurrent and input products of the
    kernels, same numpy call) for n in 1..256 and H in 128..1024, weights hot. ``gemm_by_n_h``
    holds every measured point (the cost model interpolates in log n and log H: skinny products
    run at different fractions of peak at different H); ``gemm_by_n`` the best fraction over H
    for each n (the compute ceiling, used where a machine has no grid). Bandwidth limits of
    weights that do not fit a private cache are also the memory term's business
    (:mod:`wpsim.cost` takes ``max(products, memory)``). ``gemm_by_n_h_by_cell``: the same grid
    with the Elman and GRU cells' own ``W (G*H, H)`` (a skinny product's rate depends on where
    its matrix fits, and theirs are smaller). ``gemm_by_n_h_hot``: for each cell, the points
    whose ``W`` is larger than half the largest private cache again, timed on the rows that fit
    and scaled by the row ratio (the rate with the weights hot, for a product whose weights on
    one core fit that cache: one core's share of a split product); the other points as above.
``recurrent_gemv_max_batch`` and ``elementwise_split_across_helpers``
    ``kernels.cells.gemv_max_batch()``: the executor runs a one-core recurrent product of at
    most this batch as one GEMV per batch row; and ``false``: a split step's element-wise
    update runs whole on every member (configurations of the kernels, not measurements).
``efficiency.elementwise_step_s`` and ``efficiency.elementwise``
    the non-GEMM work of the RNN, LSTM and GRU chunk tasks (bias add, gate nonlinearities,
    state update: :func:`kernels.cells.cell_chunk_forward` with a precomputed input projection
    and the recurrent product replaced by a zero fill) for H in 128..1024, batch 1..16, per
    step. ``elementwise_step_s`` is the grid of seconds per step by H and batch, net of the
    task and step overheads below, which the cost model interpolates for forward cell tasks;
    ``elementwise`` is the geometric mean over the shapes of ``E*H*B / (time x peak)``, for
    other element-wise work (the per-shape values spread widely because numpy's per-call
    overhead does not scale with the flops).
cache ``bandwidth_Bps``
    read bandwidth with a working set of half of each level: the kernels' access pattern (a
    row-major matrix times a vector, batched over a zero-stride view so that one numpy call
    streams >= 64 MiB) and a pure streaming read (batched dot product, recorded only). Every
    level takes the GEMV rate: it is what weight streaming achieves, and the rate the hit
    curve's fractions are relative to. (The streaming read doubles with 64-byte alignment, 75 to
    147 GB/s over 1 MiB here; the larger of the two, as private levels once took, charged bytes
    served by L2 at half their real time.)
cache ``hit_curve`` (the largest private level)
    two matrices (fp32, in the kernels' order) times a vector, re-read again and again, their
    total 0.25-3 x the level's size; a rate ``r`` between the level's own ``hi`` (at most half
    its size) and the outer level's ``lo`` (at 3x) means a fraction ``f`` served by the level,
    ``1/r = f/hi + (1-f)/lo``: the level's hit fraction by reuse distance (:func:`hit_curve`).
``task_overhead_s`` / ``step_overhead_s``
    :func:`kernels.cells.cell_chunk_forward` at H = 4, batch 1, with 1 and with 32 steps per
    chunk: the intercept and the slope of its time against its steps (the per-call and per-step
    costs of the kernel, all interpreter and ufunc dispatch at that size), with the input
    projection given and the recurrent product a fill: the products' own calls are in the GEMM
    timings.
``memory.per_core_bandwidth_Bps`` / ``memory.bandwidth_Bps``
    the GEMV read over a matrix of at least 4 x the shared cache, on one core, then on every
    measured core at once (the sum).
``handoff.latency_s`` / ``handoff.bandwidth_Bps``
    two processes on different cores in shared memory, ping-pong: one hand-off is the producer's
    store of S bytes plus a flag and the consumer's spin and load of the S bytes (half a round
    trip). Latency at S = 0; bandwidth from the slope over S = 4 KiB .. 256 KiB.
``barrier``
    two processes meeting at a flag barrier in shared memory (each stores its epoch, then spins on
    the other's). ``per_doubling_s`` = 2 x the measured hand-off latency (arrival and release of
    one tree level, the rule of every machine file), ``base_s`` = the measured 2-process barrier
    minus one level.
``dispatch_overhead_s``
    with :mod:`kernels.executor` present: 1-worker ``sequential`` runs of one-layer LSTM graphs
    (H = 128..512, one step per task) and of a graph of trivial cells (H = 1, recorded only):
    the makespan per task (median makespan of repeats; the median of three executions per graph)
    minus the in-process time of the same cell, with every task handed out by the coordinator
    (``WPSIM_EXECUTOR_SEQUENCE=0``: the round trip a task pays under a policy with several
    groups while a core is free); and the same runs with the whole order handed out at once, as
    the executor does for a run with one group: ``dispatch_overhead_sequence_s``. In the model a
    task costs ``dispatch + work`` back to back on its core, and a one-layer chain on one worker
    never waits for a dependency, so this is everything per task that is not the kernel, tails
    included (a mean, not a median: the model sums these costs). The same with every core
    running a worker (``multiprogram``, one independent instance per core, makespan x workers /
    tasks; medians of four executions per point): ``dispatch_overhead_busy_s``, a table of two
    points by task time, cells shorter than a worker's spin window (H = 128) and cells that
    outlast it (H = 256 and 384; the only point with ``--quick``). There the coordinator has no
    free core and takes its CPU time from the workers. And ``layerwise`` on every core over a
    one-layer RNN of H = 16, and unless quick an LSTM of H = 256 and a GRU of H = 512 (each step
    one task split across all workers; makespan / tasks - what the model charges a member apart
    from it, in process: its rows of the product and the step with the product a fill, median
    of five executions): ``dispatch_overhead_group_s`` by a member's time, the overhead of a
    task of a whole-socket group (the barriers, the members' skew and the wait for the slower
    one; the executor hands the whole order out at once). Without the executor: a shared-memory
    signalling microbenchmark: a master sends a task id to a worker process on another core
    through a pipe and waits for its reply (what a central task queue costs per task).
``corun_slowdown_per_core``
    the numpy LSTM cell at H = 512 (batch 1, one step per call) on one core, then on two cores at
    once (rounds alternate to cancel drift): ``slowdown - 1`` per additional busy core.

Cache sizes and topology come from ``lscpu`` and ``/sys/devices/system/cpu`` (``spec:``). Cache
and DRAM latencies are not used by the cost model and cannot be measured without compiled code;
they are carried over from the previous file (with its comment) or set by a stated assumption.

The measurements run in a child process (``python -m wpsim.calibrate --child``); the file is
written to a temporary name and renamed, so an interrupted run leaves the previous file untouched.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wpsim.errors import ConfigError, WpsimError
from wpsim.workload import GATES

#: Environment that pins every BLAS / OpenMP library to one thread (set before numpy import).
SINGLE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "BLIS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}

#: Shapes measured (full run, quick run).
GEMM_N = (1, 2, 4, 8, 16, 32, 64, 256)
GEMM_N_QUICK = (1, 4, 16, 64, 256)
GEMM_H = (128, 256, 512, 1024)
GEMM_H_QUICK = (128, 512)
ELEM_H = (128, 256, 512, 1024)
ELEM_H_QUICK = (128, 512)
ELEM_B = (1, 4, 16)
ELEM_B_QUICK = (1, 16)
ELEM_STEPS = 8  # steps per chunk task in the element-wise measurement
HANDOFF_SIZES = (0, 4096, 16384, 65536, 262144)
CORUN_HIDDEN = 512

Progress = Callable[[str], None]


# ---- what the operating system says ---------------------------------------------------------------
@dataclass
class CacheInfo:
    """One data/unified cache level as sysfs describes it."""

    name: str
    level: int
    size_bytes: int
    shared_cpus: str
    scope: str  # "core" or "socket"
    source: str


@dataclass
class CpuSpec:
    """What ``lscpu``, ``/proc/cpuinfo`` and sysfs say about this machine."""

    model: str
    vendor: str
    flags: set[str]
    mhz: float | None
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    hypervisor: str | None
    caches: list[CacheInfo] = field(default_factory=list)
    topology_source: str = ""


def _parse_size(text: str) -> int:
    """``'32K'``, ``'512 KiB'``, ``'32768K'``, ``'1M'`` -> bytes."""
    match = re.match(r"^\s*([\d.]+)\s*([KMG]?)(i?B)?\s*$", text.strip(), re.IGNORECASE)
    if not match:
        raise ValueError(f"cannot parse a cache size from {text!r}")
    scale = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # first processor only
            continue
        fields.setdefault(key.strip(), value.strip())
    return fields


def _sysfs_caches(cpu: int = 0) -> list[CacheInfo]:
    base = Path(f"/sys/devices/system/cpu/cpu{cpu}/cache")
    caches: list[CacheInfo] = []
    for index in sorted(base.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = int((index / "level").read_text())
            size = (index / "size").read_text().strip()
            shared = (index / "shared_cpu_list").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind not in ("Data", "Unified"):
            continue
        n_shared = sum(
            (int(b) - int(a) + 1) if b else 1
            for a, _, b in (part.partition("-") for part in shared.split(",") if part)
        )
        caches.append(
            CacheInfo(
                name=f"L{level}d" if kind == "Data" else f"L{level}",
                level=level,
                size_bytes=_parse_size(size),
                shared_cpus=shared,
                scope="socket" if n_shared > 1 else "core",
                source=f"/sys/devices/system/cpu/cpu{cpu}/cache/{index.name}/size = {size}, "
                f"shared by cpus {shared}",
            )
        )
    caches.sort(key=lambda c: c.level)
    # the schema wants private levels before shared ones
    seen_shared = False
    for cache in caches:
        if cache.scope == "socket":
            seen_shared = True
        elif seen_shared:
            cache.scope = "socket"
    return caches


#: Environment variable that overrides the CPU model name read from the operating system.
CPU_MODEL_ENV = "WPSIM_CPU_MODEL"


def read_cpu_spec() -> CpuSpec:
    """Read the CPU model, flags, clock, topology and caches of this machine.

    Returns
    -------
    CpuSpec
    """
    ls = _lscpu()
    info = _cpuinfo()
    flags = set((info.get("flags") or ls.get("Flags", "")).split())
    mhz = None
    for text in (info.get("cpu MHz"), ls.get("CPU MHz"), ls.get("CPU max MHz")):
        try:
            mhz = float(text) if text else None
        except ValueError:
            mhz = None
        if mhz:
            break
    n_cpus = os.cpu_count() or 1
    try:
        sockets = int(ls.get("Socket(s)", "1"))
        cores = int(ls.get("Core(s) per socket", str(n_cpus)))
        threads = int(ls.get("Thread(s) per core", "1"))
        topology = (
            f"lscpu Socket(s): {sockets}, Core(s) per socket: {cores}, "
            f"Thread(s) per core: {threads}"
        )
    except ValueError:
        sockets, cores, threads = 1, n_cpus, 1
        topology = f"os.cpu_count() = {n_cpus} (lscpu unavailable)"
    model = info.get("model name") or ls.get("Model name") or platform.processor() or "unknown"
    return CpuSpec(
        # WPSIM_CPU_MODEL overrides the name (the test suite sets a fake one: see wpsim.host)
        model=os.environ.get(CPU_MODEL_ENV) or model,
        vendor=info.get("vendor_id") or ls.get("Vendor ID", "unknown"),
        flags=flags,
        mhz=mhz,
        sockets=max(1, sockets),
        cores_per_socket=max(1, cores),
        threads_per_core=max(1, threads),
        hypervisor=ls.get("Hypervisor vendor"),
        caches=_sysfs_caches(),
        topology_source=topology,
    )


def cpu_model_label(spec: CpuSpec) -> str:
    """The CPU model as a calibration block records it (``cpu_model``; prefixed with ``CPU``
    where it would start like a number)."""
    return _label(spec.model, "CPU")


def calibration_mismatch(machine: Any, spec: CpuSpec | None = None) -> str | None:
    """Why ``machine``'s calibration may not describe this computer, or None if it does.

    A machine file written by ``wpsim calibrate`` records the CPU model and core count it was
    measured on. Predicting this computer's runs with another computer's numbers (a machine
    file checked in from elsewhere, or a cloud instance of another CPU) quietly skews every
    comparison, so :func:`wpsim.validate.validate` and the accuracy benchmark say so.

    Examples
    --------
    >>> from wpsim.hardware import load_machine, resolve_machine_path
    >>> calibration_mismatch(load_machine(resolve_machine_path("xeon8160_2s"))) is None
    True
    """
    calibration = getattr(machine, "calibration", None) or {}
    measured_on = calibration.get("cpu_model")
    if measured_on is None:  # a spec-sheet machine: describes what it says, not this computer
        return None
    spec = spec or read_cpu_spec()
    here = _label(spec.model, "CPU")
    if str(measured_on) != here:
        return (
            f"'{machine.name}' was calibrated on {measured_on!r} but this computer is {here!r}; "
            "run `wpsim calibrate` here first"
        )
    cores_here = spec.sockets * spec.cores_per_socket
    if machine.total_cores != cores_here:
        return (
            f"'{machine.name}' describes {machine.total_cores} cores but this computer has "
            f"{cores_here}; run `wpsim calibrate` here first"
        )
    return None


def flops_per_cycle(flags: set[str]) -> tuple[dict[str, float], str]:
    """Peak fp32/fp64 flops per cycle per core from the CPU flags, and the rule used.

    Examples
    --------
    >>> flops_per_cycle({"avx2", "fma"})[0]
    {'float32': 32.0, 'float64': 16.0}
    >>> flops_per_cycle({"sse2"})[0]
    {'float32': 8.0, 'float64': 4.0}
    """
    if "avx512f" in flags:
        fp32, rule = 64.0, "avx512f: 2 x 512-bit FMA x 16 fp32 lanes x 2 flop"
    elif "avx2" in flags and "fma" in flags:
        fp32, rule = 32.0, "avx2+fma: 2 x 256-bit FMA x 8 fp32 lanes x 2 flop"
    elif "avx" in flags:
        fp32, rule = 16.0, "avx (no fma): 256-bit add + mul x 8 fp32 lanes"
    else:
        fp32, rule = 8.0, "sse2: 128-bit add + mul x 4 fp32 lanes"
    return {"float32": fp32, "float64": fp32 / 2}, rule


# ---- child-side measurement primitives ---------------------------------------------------------
def _pin(core: int | None) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {core})
        except OSError:
            pass


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        return float("nan")
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


def time_call(
    fn: Callable[[], Any], min_reps: int = 5, budget_s: float = 0.2, max_reps: int = 2000
) -> float:
    """Median wall time of ``fn()`` over at least ``min_reps`` calls (more while the budget lasts).

    One warm-up call is not counted.
    """
    fn()
    times: list[float] = []
    clock = time.perf_counter
    deadline = clock() + budget_s
    while len(times) < max_reps and (len(times) < min_reps or clock() < deadline):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return _median(times)


def _timed_weight(rng: Any, rows: int, hidden: int) -> Any:
    """A random fp32 ``W (rows, hidden)`` as the kernels hold one (their order, aligned)."""
    import numpy as np

    from kernels.params import WEIGHT_ORDER, aligned

    w = rng.standard_normal((rows, hidden), dtype=np.float32)
    return aligned(np.asarray(w, order=WEIGHT_ORDER))


def measure_gemm(
    hs: Sequence[int], ns: Sequence[int], budget_s: float, gates: int = 4,
    hot_bytes: int | None = None,
) -> dict[str, float]:  # fmt: skip
    """Seconds per ``X (n, H) @ W^T`` with ``W (gates*H, H)`` fp32 stored as the kernels store
    it (:data:`kernels.params.WEIGHT_ORDER`) and computed as they compute it
    (:func:`kernels.cells.matmul_xwt`), keyed ``"n,H"``.

    With ``hot_bytes``, a ``W`` larger than that is timed on as many of its rows as fit and the
    time scaled up by the row ratio: the rate of the product with its weights in the core's
    cache. The cost model charges reading weights from further out by its memory term (taking
    the larger of the two), so a rate measured on weights streamed from the shared cache would
    charge that twice over, and wrongly where the weights do fit, as one core's share of a
    split product does (GRU, H = 512: 71 us predicted for a split step that takes 56 us).
    """
    import numpy as np

    from kernels.cells import matmul_xwt
    from kernels.params import aligned

    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    for h in hs:
        rows = gates * h
        if hot_bytes is not None:
            rows = max(1, min(rows, hot_bytes // (4 * h)))
        w = _timed_weight(rng, rows, h)
        for n in ns:
            x = aligned(rng.standard_normal((n, h), dtype=np.float32))
            y = aligned(np.empty((n, rows), np.float32))
            seconds = time_call(lambda x=x, y=y, w=w: matmul_xwt(x, w, y), 5, budget_s)
            out[f"{n},{h}"] = seconds * (gates * h) / rows
    return out


#: (gates, H, batch) of the products whose fixed part :func:`measure_product_fixed` times: whole
#: matrices of at most 1 MiB, so that half of one is no faster for fitting a cache the whole
#: does not fit.
PRODUCT_FIXED_SHAPES = ((1, 128, 16), (1, 256, 1), (4, 256, 1), (4, 128, 4), (3, 128, 2))


def measure_product_fixed(budget_s: float) -> dict[str, float]:
    """Seconds of a product call that do not shrink with its size: ``2 t(half) - t(whole)``
    for the recurrent products of :data:`PRODUCT_FIXED_SHAPES`, ``whole`` all rows of ``W``,
    ``half`` its first half as a layerwise member holds it (:func:`kernels.params.row_block`),
    both as the kernels compute them (:func:`kernels.cells.matmul_xwt`). Keyed
    ``"gates,H,batch"``; the value the machine file gets is their median.
    """
    import numpy as np

    from kernels.cells import matmul_xwt, split_rows
    from kernels.params import aligned, row_block

    rng = np.random.default_rng(7)
    out: dict[str, float] = {}
    for gates, h, batch in PRODUCT_FIXED_SHAPES:
        w = _timed_weight(rng, gates * h, h)
        half = row_block(w, split_rows(gates * h, 2)[0])
        x = aligned(rng.standard_normal((batch, h), dtype=np.float32))
        y_whole = aligned(np.empty((batch, w.shape[0]), np.float32))
        y_half = aligned(np.empty((batch, half.shape[0]), np.float32))
        whole_s = time_call(lambda x=x, w=w, y=y_whole: matmul_xwt(x, w, y), 20, budget_s)
        half_s = time_call(lambda x=x, w=half, y=y_half: matmul_xwt(x, w, y), 20, budget_s)
        out[f"{gates},{h},{batch}"] = 2 * half_s - whole_s
    return out


def measure_peak_gemm(size: int, budget_s: float) -> float:
    """Seconds of one square fp32 GEMM of ``size`` (the fastest kernel numpy offers)."""
    import numpy as np

    rng = np.random.default_rng(1)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty((size, size), np.float32)
    fn = lambda: np.dot(a, b, out=c)  # noqa: E731
    fn()
    times = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)  # the peak is the best the core does, not its typical rate


def _zero_product(_h: Any, dest: Any) -> None:
    """A recurrent product that costs nothing but filling its output (the products are timed
    apart, see :func:`measure_gemm`)."""
    dest.fill(0.0)


def measure_elementwise(
    cells: Sequence[str], hs: Sequence[int], bs: Sequence[int], steps: int, budget_s: float
) -> dict[str, float]:
    """Seconds per step of the non-GEMM work of a chunk task, keyed ``"cell,H,B"``."""
    import numpy as np

    from kernels.cells import _folded_bias, cell_chunk_forward
    from kernels.params import aligned

    rng = np.random.default_rng(2)
    out: dict[str, float] = {}

    for cell in cells:
        g = GATES[cell]
        for h in hs:
            params = {
                "weight_ih": rng.standard_normal((g * h, h), dtype=np.float32) * 0.05,
                "weight_hh": rng.standard_normal((g * h, h), dtype=np.float32) * 0.05,
                "bias_ih": rng.standard_normal(g * h, dtype=np.float32),
                "bias_hh": rng.standard_normal(g * h, dtype=np.float32),
            }
            bias = _folded_bias(cell, params["bias_ih"], params["bias_hh"])
            for b in bs:
                x = np.zeros((steps, b, h), np.float32)
                base = aligned(rng.standard_normal((steps, b, g * h), dtype=np.float32))
                gx = aligned(np.empty_like(base))

                def task(x=x, base=base, gx=gx, cell=cell, params=params, bias=bias) -> None:
                    np.copyto(gx, base)
                    flat = gx.reshape(-1, gx.shape[-1])
                    np.add(flat, bias, out=flat)  # the input projection's bias add
                    cell_chunk_forward(
                        cell,
                        params,
                        x,
                        None,
                        None,
                        save=False,
                        gates_x=gx,
                        recurrent=_zero_product,
                    )

                copy_s = time_call(lambda gx=gx, base=base: np.copyto(gx, base), 5, budget_s / 4)
                out[f"{cell},{h},{b}"] = max(time_call(task, 5, budget_s) - copy_s, 1e-9) / steps
    return out


def _elementwise_grid(
    per_step: dict[str, float], overheads: dict[str, dict[str, float]], steps: int
) -> dict[str, list[tuple[int, int, float]]]:
    """``{"cell,H,B": seconds per step}`` (chunks of ``steps`` steps) as ``{cell: [(H, B,
    seconds), ...]}`` sorted by H then B, net of the kernel call's fixed costs (``overheads``:
    :func:`measure_step_overhead`'s), which the cost model charges apart.

    Examples
    --------
    >>> calls = {"lstm": {"task_s": 8e-6, "step_s": 6e-6}}
    >>> _elementwise_grid({"lstm,256,1": 2e-5, "lstm,128,1": 1e-5}, calls, 8)
    {'lstm': [(128, 1, 3e-06), (256, 1, 1.3e-05)]}
    """
    grid: dict[str, list[tuple[int, int, float]]] = {}
    for key, seconds in per_step.items():
        cell, h, b = key.split(",")
        fixed = overheads.get(cell, {"task_s": 0.0, "step_s": 0.0})
        net = seconds - fixed["step_s"] - fixed["task_s"] / steps
        grid.setdefault(cell, []).append((int(h), int(b), float(f"{max(net, 1e-9):.4g}")))
    return {cell: sorted(points) for cell, points in grid.items()}


def _batched_gemv_Bps(block_bytes: int, total_bytes: int, budget_s: float) -> float:
    """Read rate of a row-major fp32 matrix times a vector, the matrix a ``block_bytes`` block
    repeated (zero stride) until ``total_bytes`` are read in one numpy call."""
    import numpy as np
    from numpy.lib.stride_tricks import as_strided

    from kernels.params import aligned

    cols = 256 if block_bytes >= 256 * 4 * 4 else max(16, block_bytes // 64)
    rows = max(1, block_bytes // (4 * cols))
    block = aligned(np.random.default_rng(3).random((rows, cols), dtype=np.float32))
    reps = max(1, total_bytes // block.nbytes)
    view = as_strided(block, shape=(reps, rows, cols), strides=(0, cols * 4, 4))
    x = np.ones(cols, np.float32)
    y = np.empty((reps, rows), np.float32)
    seconds = time_call(lambda: np.matmul(view, x, out=y), 3, budget_s)
    return reps * block.nbytes / seconds


def _batched_dot_Bps(block_bytes: int, total_bytes: int, budget_s: float) -> float:
    """Read rate of dot products of two halves of a ``block_bytes`` buffer, repeated."""
    import numpy as np
    from numpy.lib.stride_tricks import as_strided

    from kernels.params import aligned

    n = max(16, block_bytes // 8 // 16 * 16)  # both halves start 64-byte aligned
    buf = aligned(np.random.default_rng(4).random(2 * n, dtype=np.float32))
    a, b = buf[:n], buf[n:]
    reps = max(1, total_bytes // buf.nbytes)
    view = as_strided(a, shape=(reps, n), strides=(0, 4))
    out = np.empty(reps, np.float32)
    seconds = time_call(lambda: np.vecdot(view, b, out=out), 3, budget_s)
    return reps * buf.nbytes / seconds


def _dram_gemv_Bps(nbytes: int, budget_s: float) -> float:
    import numpy as np

    from kernels.params import aligned

    cols = 1024
    rows = max(1, nbytes // (4 * cols))
    m = aligned(np.ones((rows, cols), np.float32))
    x = np.ones(cols, np.float32)
    y = np.empty(rows, np.float32)
    seconds = time_call(lambda: np.dot(m, x, out=y), 3, budget_s)
    return m.nbytes / seconds


HIT_CURVE_RATIOS = (0.25, 0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0)


def measure_reuse_rates(size: int, budget_s: float) -> dict[str, float]:
    """Read rate (bytes/s) of two weight-like matrices (fp32, Fortran order, 256 columns) times
    a vector, read again and again, their total ``ratio`` times ``size``: a working set re-read
    at a reuse distance of ``ratio x size``. Keyed by the ratios of :data:`HIT_CURVE_RATIOS`."""
    import numpy as np

    from kernels.params import aligned

    rng = np.random.default_rng(4)
    out: dict[str, float] = {}
    for ratio in HIT_CURVE_RATIOS:
        rows = max(16, int(ratio * size) // (2 * 4 * 256))
        mats = [aligned(rng.random((rows, 256), dtype=np.float32), "F") for _ in range(2)]
        x = np.ones(256, np.float32)
        ys = [np.empty(rows, np.float32) for _ in mats]

        def run(mats=mats, ys=ys, x=x) -> None:
            for _ in range(8):
                for m, y in zip(mats, ys, strict=True):
                    np.dot(m, x, out=y)

        seconds = time_call(run, 10, budget_s) / 8
        out[f"{ratio:g}"] = sum(m.nbytes for m in mats) / seconds
    return out


def _gemm_rates(seconds_by_key: dict[str, float], gates: int) -> dict[tuple[int, int], float]:
    """Flop rates of :func:`measure_gemm`'s timings (``W (gates*H, H)``), keyed ``(n, H)``.

    Examples
    --------
    >>> _gemm_rates({"2,8": 1e-6}, 4)
    {(2, 8): 1024000000.0}
    """
    rates = {}
    for key, seconds in seconds_by_key.items():
        n, h = (int(v) for v in key.split(","))
        rates[(n, h)] = 2.0 * n * gates * h * h / seconds
    return rates


def hit_curve(rates: dict[str, float]) -> list[tuple[float, float]]:
    """Served fractions from :func:`measure_reuse_rates`: with ``hi`` the best rate at ratios up
    to 0.5 (the level itself) and ``lo`` the rate at the largest ratio (the level outside), a
    rate ``r`` means a fraction ``f`` of the bytes came from the level, ``1/r = f/hi +
    (1-f)/lo``; clamped to [0, 1] and made non-increasing (noise). From ratio 0.5 on.

    Examples
    --------
    >>> hit_curve({"0.5": 70e9, "1": 1 / (0.5 / 70e9 + 0.5 / 28e9), "3": 28e9})
    [(0.5, 1.0), (1.0, 0.5), (3.0, 0.0)]
    """
    ratios = sorted((float(k), v) for k, v in rates.items())
    hi = max(v for r, v in ratios if r <= 0.5)
    lo = ratios[-1][1]
    curve: list[tuple[float, float]] = []
    for ratio, rate in ratios:
        if ratio < 0.5:
            continue
        f = 1.0 if hi <= lo else (1 / rate - 1 / lo) / (1 / hi - 1 / lo)
        f = min(max(0.0, f), 1.0, curve[-1][1] if curve else 1.0)
        curve.append((ratio, round(f, 3)))
    return curve


def measure_bandwidth(
    levels: Sequence[tuple[str, int, str]], dram_bytes: int, budget_s: float, sweep: bool = False
) -> dict[str, Any]:
    """Per-level read bandwidths (bytes/s) by two access patterns, and DRAM's.

    With ``sweep``, also the GEMV read rate over working sets from 1/8 to 2x the shared level.
    """
    total = 64 << 20
    out: dict[str, dict[str, float]] = {}
    for name, size, scope in levels:
        # half of a private level; a quarter of a shared one (other cores and tenants use it)
        block = max(4096, size // 2 if scope == "core" else size // 4)
        out[name] = {
            "working_set_bytes": float(block),
            "gemv_Bps": _batched_gemv_Bps(block, total, budget_s),
            "stream_Bps": _batched_dot_Bps(block, total, budget_s),
        }
    if sweep:
        for name, size, scope in levels:
            if scope == "socket":  # how sharp the shared level's edge is (recorded only)
                out[name]["capacity_sweep_gemv_Bps"] = {
                    str(int(size * f)): _dram_gemv_Bps(int(size * f), budget_s)
                    for f in (0.125, 0.25, 0.375, 0.5, 0.75, 1.0, 1.5, 2.0)
                }
    out["DRAM"] = {
        "working_set_bytes": float(dram_bytes),
        "gemv_Bps": _dram_gemv_Bps(dram_bytes, 2 * budget_s),
    }
    return out


# ---- pairs of processes (fork + anonymous shared memory) -----------------------------------------
class _Shared:
    """An anonymous shared mapping with flag slots (one cache line each) and a payload area."""

    def __init__(self, payload_bytes: int, n_flags: int = 8) -> None:
        import mmap

        import numpy as np

        self.n_flags = n_flags
        self.mm = mmap.mmap(-1, 64 * n_flags + max(payload_bytes, 64))
        self.flags = [
            np.frombuffer(self.mm, dtype=np.int64, count=1, offset=64 * i) for i in range(n_flags)
        ]
        self.payload = np.frombuffer(self.mm, dtype=np.uint8, offset=64 * n_flags)

    def reset(self) -> None:
        for f in self.flags:
            f[0] = 0


def _fork_run(targets: list[Callable[[Any], Any]]) -> list[Any]:
    """Run each ``target(conn)`` in a forked process; return what each sends back."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    pipes = [ctx.Pipe(duplex=False) for _ in targets]
    procs = []
    for target, (_, send) in zip(targets, pipes, strict=True):

        def body(target=target, send=send) -> None:
            try:
                send.send(("ok", target()))
            except BaseException as error:  # noqa: BLE001 - reported to the parent
                send.send(("error", repr(error)))

        proc = ctx.Process(target=body, daemon=True)
        proc.start()
        procs.append(proc)
    for _, send in pipes:  # the children hold theirs: a child that dies ends its pipe
        send.close()
    results = []
    try:
        for (recv, _), proc in zip(pipes, procs, strict=True):
            try:
                status, value = recv.recv()
            except EOFError:
                proc.join(timeout=5)
                raise RuntimeError(
                    f"measuring process {proc.pid} ended without a result (exit code "
                    f"{proc.exitcode})"
                ) from None
            if status != "ok":
                raise RuntimeError(f"measuring process failed: {value}")
            results.append(value)
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.terminate()
    return results


def _spin_until(flag: Any, value: int, deadline: float) -> None:
    clock = time.perf_counter
    while flag[0] < value:
        if clock() > deadline:
            raise TimeoutError("partner process did not answer (core overloaded?)")


def measure_handoff(cores: tuple[int, int], sizes: Sequence[int], rounds: int) -> dict[str, float]:
    """Median one-way hand-off time (half a ping-pong round trip) per payload size, keyed by bytes."""
    import numpy as np

    shared = _Shared(max(sizes))
    result: dict[str, float] = {}
    for size in sizes:
        shared.reset()
        payload = shared.payload[:size]

        def ping(size=size, payload=payload) -> float:
            _pin(cores[0])
            mine = np.full(size, 1, np.uint8)
            got = np.empty(size, np.uint8)
            deadline = time.perf_counter() + 60
            trips = []
            for i in range(1, rounds + 1):
                t0 = time.perf_counter()
                if size:
                    np.copyto(payload, mine)
                shared.flags[0][0] = i
                _spin_until(shared.flags[1], i, deadline)
                if size:
                    np.copyto(got, payload)
                trips.append(time.perf_counter() - t0)
            return _median(trips[rounds // 10 :]) / 2

        def pong(size=size, payload=payload) -> None:
            _pin(cores[1])
            mine = np.full(size, 2, np.uint8)
            got = np.empty(size, np.uint8)
            deadline = time.perf_counter() + 60
            for i in range(1, rounds + 1):
                _spin_until(shared.flags[0], i, deadline)
                if size:
                    np.copyto(got, payload)
                    np.copyto(payload, mine)
                shared.flags[1][0] = i

        result[str(size)] = _fork_run([ping, pong])[0]
    return result


def measure_barrier(cores: Sequence[int], rounds: int) -> float:
    """Median seconds per barrier of ``len(cores)`` processes (flag barrier in shared memory)."""
    shared = _Shared(64, n_flags=max(8, len(cores)))

    def member(rank: int) -> Callable[[], float]:
        def run() -> float:
            _pin(cores[rank])
            flags = shared.flags
            mine = flags[rank]
            others = [flags[j] for j in range(len(cores)) if j != rank]
            deadline = time.perf_counter() + 60
            stamps = []
            for epoch in range(1, rounds + 1):
                mine[0] = epoch
                for other in others:
                    _spin_until(other, epoch, deadline)
                stamps.append(time.perf_counter())
            gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
            return _median(gaps[len(gaps) // 10 :])

        return run

    times = _fork_run([member(r) for r in range(len(cores))])
    return max(times)


def measure_pipe_dispatch(cores: tuple[int, int], rounds: int) -> float:
    """Median round trip of a task id through a pipe to a worker process on another core."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    to_worker, from_master = ctx.Pipe()

    def worker() -> None:
        _pin(cores[1])
        while True:
            message = from_master.recv_bytes()
            if message == b"stop":
                return
            from_master.send_bytes(message)

    proc = ctx.Process(target=worker, daemon=True)
    proc.start()
    _pin(cores[0])
    trips = []
    try:
        for i in range(rounds):
            t0 = time.perf_counter()
            to_worker.send_bytes(i.to_bytes(8, "little"))
            to_worker.recv_bytes()
            trips.append(time.perf_counter() - t0)
        to_worker.send_bytes(b"stop")
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.terminate()
    return _median(trips[rounds // 10 :])


def _one_layer(cell: str, hidden: int, rng: Any) -> dict[str, Any]:
    """Random fp32 parameters of one ``cell`` layer (input = hidden), as the kernels take them
    (:func:`kernels.params.layer_params`: their memory order, aligned)."""
    import numpy as np

    from kernels.params import layer_params

    g = GATES[cell] * hidden
    return layer_params(
        {
            "weight_ih_l0": rng.standard_normal((g, hidden), dtype=np.float32) * 0.05,
            "weight_hh_l0": rng.standard_normal((g, hidden), dtype=np.float32) * 0.05,
            "bias_ih_l0": np.zeros(g, np.float32),
            "bias_hh_l0": np.zeros(g, np.float32),
        },
        0,
    )


def _lstm_cell_task(hidden: int, batch: int, steps: int) -> Callable[[], Any]:
    import numpy as np

    from kernels.cells import Recurrent, cell_chunk_forward

    rng = np.random.default_rng(5)
    params = _one_layer("lstm", hidden, rng)
    x = rng.standard_normal((steps, batch, hidden), dtype=np.float32)
    rec = Recurrent(params["weight_hh"], batch, np.dtype(np.float32)).hh
    return lambda: cell_chunk_forward("lstm", params, x, None, None, save=False, recurrent=rec)


def _split_member_cell(cell: str, hidden: int, members: int) -> Callable[[], Any]:
    """What the cost model charges one member of a ``layerwise`` step of ``cell`` apart from
    the group overhead (batch 1, input projection hoisted), in process: its rows of the
    recurrent product, then the step as :func:`measure_elementwise` times it (the product's
    output a fill). So the group overhead keeps everything else: the exchange of the members'
    rows, the barriers, the skew and the wait for the slower member."""
    import numpy as np

    from kernels.cells import cell_chunk_forward, input_projection, matmul_xwt, split_rows
    from kernels.params import row_block

    rng = np.random.default_rng(6)
    params = _one_layer(cell, hidden, rng)
    x = rng.standard_normal((1, 1, hidden), dtype=np.float32)
    gates_x = input_projection(cell, params, x)
    rows = split_rows(GATES[cell] * hidden, members)
    mine = row_block(params["weight_hh"], rows[0])
    block = np.zeros((1, rows[0].stop - rows[0].start), np.float32)

    def recurrent(h_prev: Any, out: Any) -> None:
        matmul_xwt(h_prev, mine, block)  # as the executor's member computes its rows
        _zero_product(h_prev, out)

    return lambda: cell_chunk_forward(cell, params, x, None, None, save=False, gates_x=gates_x,
                                      recurrent=recurrent)  # fmt: skip


def _run_together(shared: Any, members: list[Callable[[Any], Any]]) -> list[Any]:
    """Fork one process per member; release them at once when every one has reported ready
    (``shared.flags[rank + 1]``) by setting ``shared.flags[0]``; return their results."""
    import threading

    def starter() -> None:
        deadline = time.perf_counter() + 60
        for rank in range(len(members)):
            _spin_until(shared.flags[rank + 1], 1, deadline)
        shared.flags[0][0] = 1

    thread = threading.Thread(target=starter, daemon=True)
    thread.start()
    results = _fork_run(members)
    thread.join(timeout=5)
    return results


def measure_group(
    make_task: Callable[[], Callable[[], Any]], cores: Sequence[int], window_s: float
) -> list[float]:
    """Run the same task on ``cores`` at once for ``window_s``; median seconds per call on each."""
    shared = _Shared(64, n_flags=max(8, len(cores) + 1))

    def member(rank: int) -> Callable[[], float]:
        def run() -> float:
            _pin(cores[rank])
            task = make_task()
            task()
            shared.flags[rank + 1][0] = 1  # ready
            _spin_until(shared.flags[0], 1, time.perf_counter() + 60)  # go
            clock = time.perf_counter
            end = clock() + window_s
            times = []
            while clock() < end or len(times) < 3:
                t0 = clock()
                task()
                times.append(clock() - t0)
            return _median(times)

        return run

    return _run_together(shared, [member(r) for r in range(len(cores))])


def measure_corun(
    cores: Sequence[int], hidden: int, rounds: int, window_s: float
) -> dict[str, Any]:
    """Solo and co-running times of the LSTM cell, alternating rounds; slowdown per round."""
    make = lambda: _lstm_cell_task(hidden, 1, 1)  # noqa: E731
    solo, together, ratios = [], [], []
    for _ in range(rounds):
        s = measure_group(make, cores[:1], window_s)[0]
        t = measure_group(make, cores, window_s)
        solo.append(s)
        together.append(t)
        ratios.append(sum(t) / len(t) / s)
    return {
        "hidden": hidden,
        "cores": list(cores),
        "solo_s": solo,
        "corun_s": together,
        "slowdown_per_round": ratios,
        "slowdown": _median(ratios),
    }


def measure_dram_concurrent(cores: Sequence[int], nbytes: int, budget_s: float) -> list[float]:
    """Per-core DRAM read rates (bytes/s) while every core in ``cores`` reads at once."""
    shared = _Shared(64, n_flags=max(8, len(cores) + 1))

    def member(rank: int) -> Callable[[], float]:
        def run() -> float:
            import numpy as np

            from kernels.params import aligned

            _pin(cores[rank])
            cols = 1024
            m = aligned(np.ones((max(1, nbytes // (4 * cols)), cols), np.float32))
            x = np.ones(cols, np.float32)
            y = np.empty(m.shape[0], np.float32)
            np.dot(m, x, out=y)
            shared.flags[rank + 1][0] = 1
            _spin_until(shared.flags[0], 1, time.perf_counter() + 60)
            clock = time.perf_counter
            end = clock() + budget_s
            times = []
            while clock() < end or len(times) < 3:
                t0 = clock()
                np.dot(m, x, out=y)
                times.append(clock() - t0)
            return m.nbytes / _median(times)

        return run

    return _run_together(shared, [member(r) for r in range(len(cores))])


def measure_executor_dispatch(
    hiddens: Sequence[int], seq_len: int, repeats: int, trivial_tasks: int, all_busy: int = 0
) -> dict[str, Any] | None:
    """Per-task overhead of :mod:`kernels.executor` on one worker, or None if it is missing.

    For each graph (one LSTM layer of ``seq_len`` one-step cells at each hidden size, plus a
    graph of ``trivial_tasks`` cells of an H = 1 Elman RNN), run on one worker under
    ``sequential``: the makespan per task minus the in-process time of the same cell (the
    coordinator's round trip plus the executor's work around the kernel, and any time the worker
    loses to the coordinator); the LSTM graphs also with the order handed out at once
    (``sequence``: a table by the cell's time). With ``all_busy`` workers, the same for
    independent instances on every core (makespan x workers / tasks). Makespans, not medians of
    task times: the model adds ``dispatch + work`` along a core, so the mean is what it needs;
    the median of the repeats' makespans keeps one disturbed repeat out. The median gap and
    median task time are recorded too. The LSTM graphs give the value (their tasks outlast the
    executor's spin window, as real cells do); the trivial graph is recorded for reference. With
    ``all_busy`` workers, also one-layer graphs under ``layerwise`` (every step one task split
    across all workers): makespan per task minus :func:`_split_member_cell`, the overhead of a
    whole-socket group task, by a member's time (``whole_socket_group_points``).
    """
    try:
        from kernels import executor
    except ImportError:
        return None
    if not hasattr(executor, "execute"):
        return None
    from wpsim.workload import Workload

    if hasattr(os, "sched_setaffinity"):  # the executor pins its own worker; the coordinator floats
        try:
            os.sched_setaffinity(0, range(os.cpu_count() or 1))
        except OSError:
            pass

    from wpsim.policies import get_policy

    def one(
        workload: Workload, cell_s: float, workers: int = 1, policy: str = "",
        sequence: bool = True,
    ) -> dict[str, float]:  # fmt: skip
        if not policy:
            policy = "sequential" if workers == 1 else "multiprogram"
        chosen = (
            get_policy("multiprogram", instances=workers)
            if policy == "multiprogram"
            else get_policy(policy)
        )
        saved = os.environ.get(executor.SEQUENCE_ENV)
        os.environ[executor.SEQUENCE_ENV] = "1" if sequence else "0"
        try:
            result = executor.execute(workload, chosen, workers, chunk=1, repeats=repeats,
                                      warmup=1)  # fmt: skip
        finally:
            if saved is None:
                del os.environ[executor.SEQUENCE_ENV]
            else:
                os.environ[executor.SEQUENCE_ENV] = saved
        trace = result.trace
        gaps: list[float] = []
        for worker in range(workers):
            mine = sorted(
                (trace.start_s[i], trace.end_s[i]) for i in range(len(trace))
                if trace.cores[i][0] == worker
            )  # fmt: skip
            gaps += [b[0] - a[1] for a, b in zip(mine, mine[1:], strict=False)]
        durations = [e - s for s, e in zip(trace.start_s, trace.end_s, strict=True)]
        gap, duration = _median(gaps), _median(durations)
        # tasks one after the other on each worker: independent instances share the workers out
        in_series = workers if policy == "multiprogram" else 1
        return {
            "hidden": float(workload.hidden),
            "workers": float(workers),
            "policy": policy,
            "n_tasks": float(result.n_tasks),
            "makespan_s": float(result.measured_makespan_s),
            "median_gap_s": gap,
            "median_task_s": duration,
            "cell_in_process_s": cell_s,
            "median_based_dispatch_s": gap + max(duration - cell_s, 0.0),
            "dispatch_s": max(
                float(result.measured_makespan_s) * in_series / result.n_tasks - cell_s, 0.0
            ),
        }

    def lstm(h: int) -> Workload:
        return Workload(name=f"calibrate: lstm H={h}", cell="lstm", layers=1, hidden=h, input=h,
                        seq_len=seq_len)  # fmt: skip

    def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
        """The execution with the median overhead, and every execution's overhead."""
        chosen = dict(sorted(runs, key=lambda r: r["dispatch_s"])[len(runs) // 2])
        chosen["runs_dispatch_s"] = [r["dispatch_s"] for r in runs]
        return chosen

    # each task through the coordinator (several groups), then the order handed out at once;
    # three executions each, interleaved: one of them is now and then 1.5x slower throughout
    # (measured here: H = 128 tasks 39 instead of 25 us in one execution of a sequence)
    dynamic_runs: dict[int, list] = {h: [] for h in hiddens}
    sequence_runs: dict[int, list] = {h: [] for h in hiddens}
    for _ in range(3):
        for h in hiddens:
            cell_s = time_call(_lstm_cell_task(h, 1, 1), 20, 0.2)  # next to its runs: it drifts
            dynamic_runs[h].append(one(lstm(h), cell_s, sequence=False))
            sequence_runs[h].append(one(lstm(h), cell_s))
    graphs = [median_run(dynamic_runs[h]) for h in hiddens]
    sequences = [median_run(sequence_runs[h]) for h in hiddens]
    trivial = Workload(name="calibrate: trivial cells", cell="rnn", layers=1, hidden=1, input=1,
                       seq_len=trivial_tasks)  # fmt: skip
    out: dict[str, Any] = {
        "graphs": graphs,
        "trivial": one(trivial, time_call(_trivial_cell(), 20, 0.2), sequence=False),
        "dispatch_s": _median([g["dispatch_s"] for g in graphs]),
        "sequence": {"graphs": sequences},
    }
    if all_busy > 1:
        # Every core runs a worker, so the coordinator has no free core. The value varies from
        # run to run (it depends on where the OS puts the coordinator: 48-110 us for H = 128
        # here), hence four executions per point (two per size) and medians. It also differs
        # between cells shorter than a worker's spin window (kernels.executor DEFAULT_SPIN_US,
        # 50 us: H = 128) and cells that outlast it (H = 256, 384), as most real cells do: two
        # points of a table by task time.
        def busy_point(sizes: Sequence[int], kind: str) -> dict[str, Any]:
            runs = [
                one(lstm(h), time_call(_lstm_cell_task(h, 1, 1), 20, 0.3), all_busy)
                for h in sizes
                for _ in range(max(2, 4 // len(sizes)))
            ]
            return {
                "kind": kind,
                "task_s": _median([r["cell_in_process_s"] for r in runs]),
                "dispatch_s": _median([r["dispatch_s"] for r in runs]),
                "runs": [{"hidden": r["hidden"], "dispatch_s": r["dispatch_s"]} for r in runs],
            }

        long = busy_point((256,) if len(hiddens) == 1 else (256, 384), "cells that outlast it")
        points = [long]
        if len(hiddens) > 1:
            short = busy_point((128,), "cells shorter than a worker's 50 us spin window")
            points = [short, long]
        busy = {"workers": float(all_busy), "points": points}
        out["all_cores_busy"] = busy
        # One task split across every core (the layerwise policy): each step is one task of a
        # group of all workers. Makespan per task minus what the model charges a member apart from
        # the group overhead, in process (timed again before each execution: it drifts, 3.7 vs 6.9
        # us for the tiny cell between two calibrations): the barriers, the skew, and the wait for
        # the slower member, which grows with the step. So a tiny Elman cell (all overhead) and,
        # unless quick, two real cells: points of a table by a member's time. Five executions
        # each.
        shapes = [("rnn", 16)] + ([] if len(hiddens) == 1 else [("lstm", 256), ("gru", 512)])
        group_points = []
        for cell, h in shapes:
            split = Workload(name=f"calibrate: split {cell} steps H={h}", cell=cell, layers=1,
                             hidden=h, input=h, seq_len=3 * seq_len)  # fmt: skip
            reference = _split_member_cell(cell, h, all_busy)
            runs = [
                one(split, time_call(reference, 20, 0.2), all_busy, "layerwise") for _ in range(5)
            ]
            group_points.append({**median_run(runs), "cell": cell})
        out["whole_socket_group_points"] = group_points
    return out


def measure_step_overhead(
    cells: Sequence[str], steps: int, budget_s: float
) -> dict[str, dict[str, float]]:
    """Fixed per-task and per-step costs of each cell's kernel call: ``cell_chunk_forward`` at
    H = 4, batch 1, with 1 and with ``steps`` steps per chunk, median seconds. At this size the
    arithmetic is negligible and what remains is interpreter and ufunc dispatch: the per-step
    cost is the slope between the two, the per-task cost the intercept. Measured as
    :func:`measure_elementwise` runs a task: the input projection given and the recurrent
    product a fill, because the cost model charges the products by the GEMM efficiencies, whose
    timings already hold their numpy calls (with them, this charged the Elman cell 1.9 us a
    step and 6.2 us a task, while a whole 8-step task at H = 256 takes 9.9 us without its
    products). Returns ``{cell: {"task_s": ..., "step_s": ...}}``."""
    import numpy as np

    from kernels.cells import cell_chunk_forward
    from kernels.params import layer_params

    out = {}
    for cell in cells:
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
        h = 4
        p = layer_params(
            {
                "weight_ih_l0": np.full((gates * h, h), 0.1, np.float32),
                "weight_hh_l0": np.full((gates * h, h), 0.1, np.float32),
                "bias_ih_l0": np.zeros(gates * h, np.float32),
                "bias_hh_l0": np.zeros(gates * h, np.float32),
            },
            0,
        )  # fmt: skip  (the kernels' memory order)
        h0 = np.zeros((1, h), np.float32)
        c0 = np.zeros((1, h), np.float32) if cell == "lstm" else None
        seconds = {}
        for k in (1, steps):
            x = np.ones((k, 1, h), np.float32)
            gates_x = np.full((k, 1, gates * h), 0.1, np.float32)
            run = functools.partial(cell_chunk_forward, cell, p, x, h0, c0, save=False,
                                    gates_x=gates_x, recurrent=_zero_product)  # fmt: skip
            seconds[k] = time_call(run, 20, budget_s / 2)
        step_s = max(seconds[steps] - seconds[1], 0.0) / (steps - 1)
        out[cell] = {"task_s": max(seconds[1] - step_s, 0.0), "step_s": step_s}
    return out


def _trivial_cell() -> Callable[[], Any]:
    """One step of an Elman RNN cell of 1 unit at batch 1 (a few microseconds)."""
    import numpy as np

    from kernels.cells import cell_chunk_forward

    p = {
        "weight_ih": np.ones((1, 1), np.float32),
        "weight_hh": np.ones((1, 1), np.float32),
        "bias_ih": np.zeros(1, np.float32),
        "bias_hh": np.zeros(1, np.float32),
    }
    x = np.ones((1, 1, 1), np.float32)
    return lambda: cell_chunk_forward("rnn", p, x, None, save=False)


# ---- the child process ----------------------------------------------------------------------------
def _emit(event: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


def child_main(config: dict[str, Any]) -> None:
    """Run every measurement (in a process whose BLAS is pinned to one thread); JSON lines out."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(1)
    import numpy as np

    quick = bool(config.get("quick"))
    cores = tuple(config["cores"])
    main_core = cores[0]
    _pin(main_core)
    budget = 0.05 if quick else 0.25
    raw: dict[str, Any] = {}
    steps = [
        "peak GEMM",
        "GEMM efficiency",
        "element-wise efficiency",
        "cache and DRAM bandwidth",
        "hand-off ping-pong",
        "barrier",
        "dispatch overhead",
        "co-running slowdown",
        "per-step overhead",
    ]
    total = len(steps)

    def step(i: int, what: str) -> float:
        _emit("progress", message=f"[{i}/{total}] {what}")
        return time.perf_counter()

    t = step(1, "peak: 1024^3 fp32 GEMM, best of repeats")
    raw["peak_gemm"] = {"size": 1024, "seconds": measure_peak_gemm(1024, 0.3 if quick else 1.0)}
    _emit("done", seconds=time.perf_counter() - t)

    hs = GEMM_H_QUICK if quick else GEMM_H
    ns = GEMM_N_QUICK if quick else GEMM_N
    t = step(
        2, f"GEMM X(n,H) @ W(4H,H)^T, n = {','.join(map(str, ns))}, H = {','.join(map(str, hs))}"
    )
    raw["gemm_s"] = measure_gemm(hs, ns, budget)
    raw["product_fixed_s"] = measure_product_fixed(budget / 4)
    # the other cells' own matrices: a skinny product's rate depends on where its matrix fits
    raw["gemm_s_by_cell"] = {
        cell: measure_gemm(hs, ns, budget / 2, GATES[cell]) for cell in ("rnn", "gru")
    }
    # and with the weights hot: at most half the largest private cache (as its bandwidth is
    # measured), for the hidden sizes whose matrix is larger
    private = [c["size_bytes"] for c in config["caches"] if c["scope"] == "core"]
    if private:
        hot = max(private) // 2
        raw["gemm_hot_bytes"] = hot
        raw["gemm_s_hot"] = {
            cell: measure_gemm(
                [h for h in hs if GATES[cell] * h * h * 4 > hot],
                ns,
                budget / 2,
                GATES[cell],
                hot_bytes=hot,
            )  # fmt: skip
            for cell in ("rnn", "lstm", "gru")
        }
    _emit("done", seconds=time.perf_counter() - t)

    eh = ELEM_H_QUICK if quick else ELEM_H
    eb = ELEM_B_QUICK if quick else ELEM_B
    t = step(
        3, f"RNN/LSTM/GRU gate math, H = {','.join(map(str, eh))}, batch = {','.join(map(str, eb))}"
    )
    raw["elementwise_s_per_step"] = measure_elementwise(
        ("rnn", "lstm", "gru"), eh, eb, ELEM_STEPS, budget
    )
    _emit("done", seconds=time.perf_counter() - t)

    levels = [(c["name"], c["size_bytes"], c["scope"]) for c in config["caches"]]
    shared_size = max([c["size_bytes"] for c in config["caches"]] or [32 << 20])
    dram_bytes = max(4 * shared_size, (128 << 20) if quick else (256 << 20))
    t = step(
        4,
        f"read bandwidth of {', '.join(n for n, _, _ in levels)} and DRAM ({dram_bytes >> 20} MiB)",
    )
    raw["bandwidth"] = measure_bandwidth(levels, dram_bytes, budget, sweep=not quick)
    private = [(name, size) for name, size, scope in levels if scope == "core"]
    if private:  # the largest private level: the one that holds a layer's weights, or nearly
        name, size = private[-1]
        raw["reuse_rates"] = {"level": name, "Bps_by_ratio": measure_reuse_rates(size, budget)}
    if len(cores) > 1:
        # alternate one core alone and every core at once, so that drift cancels
        solo, together = [], []
        for _ in range(1 if quick else 3):
            solo.append(measure_dram_concurrent(cores[:1], dram_bytes, 0.2 if quick else 0.5)[0])
            together.append(measure_dram_concurrent(cores, dram_bytes, 0.2 if quick else 0.5))
        raw["bandwidth"]["DRAM"]["solo_rounds_Bps"] = solo
        raw["bandwidth"]["DRAM"]["concurrent_rounds_Bps"] = together
    _emit("done", seconds=time.perf_counter() - t)

    if len(cores) > 1:
        pair = (cores[0], cores[1])
        t = step(5, f"hand-off ping-pong between cores {pair[0]} and {pair[1]}")
        raw["handoff_s"] = measure_handoff(pair, HANDOFF_SIZES, 300 if quick else 2000)
        if config.get("cross_socket_core") is not None:
            far = (cores[0], int(config["cross_socket_core"]))
            raw["handoff_cross_socket_s"] = measure_handoff(far, (0,), 300 if quick else 2000)
        _emit("done", seconds=time.perf_counter() - t)
        t = step(6, f"barrier of {len(pair)} processes")
        raw["barrier_s"] = {"2": measure_barrier(pair, 500 if quick else 5000)}
        _emit("done", seconds=time.perf_counter() - t)
    else:
        _emit("progress", message="[5-6/9] hand-off and barrier: skipped (one core)")

    t = step(7, "dispatch overhead")
    executor = measure_executor_dispatch(
        (256,) if quick else (128, 256, 512), 60 if quick else 150, 2 if quick else 5,
        100 if quick else 300, len(cores),
    )  # fmt: skip
    _pin(main_core)
    if executor is not None:
        raw["dispatch"] = {"method": "kernels.executor", **executor}
    elif len(cores) > 1:
        rt = measure_pipe_dispatch((cores[0], cores[1]), 300 if quick else 3000)
        raw["dispatch"] = {"method": "pipe round trip to a worker process", "dispatch_s": rt}
    else:
        raw["dispatch"] = {"method": "none (one core, no executor)", "dispatch_s": 0.0}
    _emit("done", seconds=time.perf_counter() - t)

    if len(cores) > 1:
        t = step(8, f"co-running LSTM cell H={CORUN_HIDDEN}: 1 core, then {len(cores)} at once")
        rounds, window = (2, 0.25) if quick else (5, 0.6)
        raw["corun"] = measure_corun(cores, CORUN_HIDDEN, rounds, window)
        if not quick:
            raw["corun_other_sizes"] = [measure_corun(cores, h, 3, 0.4) for h in (128, 1024)]
        _emit("done", seconds=time.perf_counter() - t)
    else:
        _emit("progress", message="[8/9] co-running slowdown: skipped (one core)")

    t = step(9, "per-step overhead of the cell math (H = 4, 32 steps per chunk)")
    raw["kernel_call_overhead_s"] = measure_step_overhead(("rnn", "lstm", "gru"), 32, budget)
    _emit("done", seconds=time.perf_counter() - t)

    raw["threadpool_info"] = [
        {
            "library": f"{entry.get('internal_api', '?')} {entry.get('version', '?')}",
            "file": entry.get("prefix", "?"),
            "architecture": entry.get("architecture") or "unknown",
            "threading_layer": entry.get("threading_layer") or "unknown",
            "num_threads": entry.get("num_threads"),
        }
        for entry in threadpool_info()
    ]
    raw["numpy"] = f"numpy {np.__version__}"
    _emit("result", raw=raw)


# ---- the parent: run the child, build the file ----------------------------------------------------
def run_measurements(
    spec: CpuSpec, quick: bool = False, cores: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run the measuring child process and return its raw measurements.

    Raises
    ------
    WpsimError
        If the child fails.
    KeyboardInterrupt
        Passed on after the child is stopped.
    """
    progress = progress or (lambda _m: None)
    n_cpus = os.cpu_count() or 1
    if cores is None:
        available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        available = available or list(range(n_cpus))
        cores = available[: min(len(available), spec.sockets * spec.cores_per_socket)]
    cross = None
    if spec.sockets > 1 and len(cores) > spec.cores_per_socket:
        cross = cores[spec.cores_per_socket]
        cores = cores[: spec.cores_per_socket]
    config = {
        "quick": quick,
        "cores": list(cores),
        "cross_socket_core": cross,
        "caches": [
            {"name": c.name, "size_bytes": c.size_bytes, "scope": c.scope} for c in spec.caches
        ],
    }
    env = {**os.environ, **SINGLE_THREAD_ENV}
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "wpsim.calibrate", "--child", json.dumps(config)]
    errors = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=errors, text=True, env=env, cwd=root
    )
    raw: dict[str, Any] | None = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except json.JSONDecodeError:
                continue
            if message["event"] == "progress":
                progress(f"calibrate: {message['message']} ...")
            elif message["event"] == "done":
                progress(f"calibrate:   done in {message['seconds']:.1f} s")
            elif message["event"] == "result":
                raw = message["raw"]
        proc.wait()
    except BaseException:
        proc.kill()
        proc.wait()
        errors.close()
        raise
    if proc.returncode != 0 or raw is None:
        errors.seek(0)
        tail = (errors.read().strip().splitlines() or ["(no output)"])[-1]
        errors.close()
        raise WpsimError(f"calibrate: the measuring process failed: {tail}")
    errors.close()
    raw["cores"] = list(cores)
    return raw


def _fmt(value: float) -> str:
    """A YAML float PyYAML reads as a float (always with a dot), 4 significant digits."""
    if value == 0:
        return "0.0"
    text = f"{value:.4g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        sign = exponent[0] if exponent[0] in "+-" else "+"
        text = f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    elif "." not in text:
        text += ".0"
    return text


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.3g} us"


def _prior_latencies(path: Path) -> dict[str, tuple[float, str]]:
    """Latency values and their comments from an existing machine file (carried over)."""
    found: dict[str, tuple[float, str]] = {}
    if not path.is_file():  # missing, or a device such as /dev/stdout: nothing to carry over
        return found
    section, cache = "", ""
    for line in path.read_text().splitlines():
        code, _, comment = line.partition("#")
        if line and not line[0].isspace():
            section = code.split(":")[0].strip()
        match = re.match(r"^\s*-?\s*name:\s*\"?([\w]+)\"?", code)
        if match and section == "caches":
            cache = match.group(1)
        match = re.match(r"^\s*latency_s:\s*([-+.\deE]+)\s*$", code)
        if match and comment.strip():
            key = f"caches.{cache}" if section == "caches" else section
            try:
                found[key] = (float(match.group(1)), comment.strip())
            except ValueError:
                pass
    return found


@dataclass
class Calibration:
    """A calibrated machine: the file text and the numbers behind it."""

    text: str
    values: dict[str, float]
    raw: dict[str, Any]


def build_machine_file(
    spec: CpuSpec, raw: dict[str, Any], date: str, prior: dict[str, tuple[float, str]] | None = None
) -> Calibration:
    """Turn raw measurements into a machine YAML with a source comment on every number.

    Parameters
    ----------
    spec : CpuSpec
    raw : dict
        What :func:`run_measurements` returned.
    date : str
        ISO date written into each comment and the calibration block.
    prior : dict, optional
        Latencies (and comments) to carry over from the previous file.
    """
    prior = prior or {}
    tag = f"wpsim calibrate {{}}, {date}"

    def measured(what: str) -> str:
        return "measured: " + tag.format(what)

    per_cycle, rule = flops_per_cycle(spec.flags)
    fp32 = per_cycle["float32"]
    gemm_rates = _gemm_rates(raw["gemm_s"], GATES["lstm"])
    peak_size = raw["peak_gemm"]["size"]
    peak_rate = 2.0 * peak_size**3 / raw["peak_gemm"]["seconds"]
    best_rate = max([peak_rate, *gemm_rates.values()])
    tsc_hz = (spec.mhz or 0.0) * 1e6
    clock = max(tsc_hz, best_rate / fp32)
    peak = clock * fp32
    clock_note = (
        f"effective clock = max(/proc/cpuinfo {tsc_hz / 1e6:.0f} MHz, best fp32 GEMM "
        f"{best_rate / 1e9:.1f} GFLOP/s / {fp32:.0f} flop/cycle): a lower bound of the running clock"
    )

    # GEMM efficiency: best over H for each n (the compute ceiling)
    by_n: dict[int, tuple[float, int]] = {}
    for (n, h), rate in gemm_rates.items():
        frac = min(rate / peak, 1.0)
        if n not in by_n or frac > by_n[n][0]:
            by_n[n] = (frac, h)
    table = sorted(by_n.items())
    # element-wise: geometric mean over LSTM/GRU shapes
    from wpsim.workload import ELEMENTWISE_FLOPS

    elem_fracs = {}
    for key, seconds in raw["elementwise_s_per_step"].items():
        cell, h, b = key.split(",")
        elem_fracs[key] = ELEMENTWISE_FLOPS[cell] * int(h) * int(b) / (seconds * peak)
    elementwise = math.exp(sum(math.log(f) for f in elem_fracs.values()) / len(elem_fracs))
    elementwise = min(max(elementwise, 1e-6), 1.0)
    # recorded only: per-step time = intercept + slope * H * B (numpy's per-call overhead is the
    # intercept, which a flops-proportional efficiency cannot express)
    elem_fit = {}
    for cell in sorted({key.split(",")[0] for key in raw["elementwise_s_per_step"]}):
        pts = [
            (int(k.split(",")[1]) * int(k.split(",")[2]), t)
            for k, t in raw["elementwise_s_per_step"].items()
            if k.startswith(cell + ",")
        ]
        if len(pts) >= 2:
            mx = sum(x for x, _ in pts) / len(pts)
            my = sum(y for _, y in pts) / len(pts)
            sxx = sum((x - mx) ** 2 for x, _ in pts)
            slope = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0
            elem_fit[cell] = {"intercept_s": my - slope * mx, "s_per_unit": slope}

    # bandwidths
    bw = raw["bandwidth"]
    levels = []
    previous = math.inf
    for cache in spec.caches:
        m = bw[cache.name]
        if cache.scope == "core":
            value = m["gemv_Bps"]
            how = (
                f"batched GEMV read bandwidth, working set {m['working_set_bytes'] / 1024:.0f} KiB "
                f"(streaming dot: {_si(m['stream_Bps'], 'B/s')})"
            )
        else:
            value = m["gemv_Bps"]
            how = (
                f"GEMV read bandwidth, working set {m['working_set_bytes'] / 2**20:.0f} MiB "
                f"(a quarter: the level is shared) "
                f"(streaming dot: {_si(m['stream_Bps'], 'B/s')})"
            )
        if value > previous:
            how += f"; {_si(value, 'B/s')} clamped to the level inside it"
            value = previous
        previous = value
        levels.append((cache, value, how))
    dram = bw["DRAM"]
    solo_rounds = dram.get("solo_rounds_Bps") or []
    per_core = min(_median([dram["gemv_Bps"], *solo_rounds]), previous)
    rounds = dram.get("concurrent_rounds_Bps") or [[per_core]]
    socket_bw = max(_median([sum(r) for r in rounds]), per_core)
    n_conc = len(rounds[0])

    # hand-off
    cores = raw.get("cores", [0])
    handoff = raw.get("handoff_s")
    if handoff:
        lat = float(handoff["0"])
        points = [(int(s), t - lat) for s, t in handoff.items() if int(s) > 0]
        denom = sum(s * d for s, d in points)
        hand_bw = sum(s * s for s, _ in points) / denom if denom > 0 else previous
        lat_note = measured(
            f"shared-memory ping-pong cores {cores[0]}-{cores[1]}, half round trip, 0 B"
        )
        bw_note = measured(
            "ping-pong slope over 4-256 KiB payloads (producer store + consumer load)"
        )
    else:
        lat, hand_bw = 0.0, previous
        lat_note = "unused: one core, no hand-off between cores"
        bw_note = "unused: one core, no hand-off between cores"
    cross = raw.get("handoff_cross_socket_s")
    if cross:
        cross_lat = max(float(cross["0"]), lat)
        cross_note = measured("ping-pong between sockets, half round trip, 0 B")
    else:
        cross_lat = lat
        cross_note = "unused (one socket): set to the within-socket hand-off latency"

    # barrier
    barrier2 = (raw.get("barrier_s") or {}).get("2")
    if barrier2 is not None:
        per_doubling = min(2 * lat, barrier2)
        base = barrier2 - per_doubling
        base_note = (
            f"estimate: measured 2-process flag barrier {_us(barrier2)} ({tag.format('barrier')})"
            f" minus one tree level"
        )
        dbl_note = (
            "estimate: 2 x measured hand-off latency per tree level (arrival + release), at most "
            "the measured 2-process barrier"
        )
    else:
        per_doubling, base = 0.0, 0.0
        base_note = dbl_note = "unused: one core, no barrier"

    dispatch = raw["dispatch"]
    dispatch_s = float(dispatch["dispatch_s"])
    if dispatch["method"] == "kernels.executor":
        graphs = dispatch["graphs"]
        dispatch_note = measured(
            "kernels.executor, 1 worker, sequential, every task through the coordinator: "
            "makespan per task - in-process cell time, median over one-layer LSTM graphs H="
            + ",".join(str(int(g["hidden"])) for g in graphs)
            + " ("
            + ", ".join(_us(g["dispatch_s"]) for g in graphs)
            + f"; trivial H=1 cells: {_us(dispatch['trivial']['dispatch_s'])})"
        )
    else:
        dispatch_note = measured(f"dispatch microbenchmark: {dispatch['method']}")

    sequence_lines: list[str] = []
    sequence = dispatch.get("sequence")
    if sequence:
        how = ("kernels.executor, 1 worker, sequential, the order handed out at once: makespan "
               "per task - in-process cell time")  # fmt: skip
        points = sorted(
            (g["cell_in_process_s"], g["dispatch_s"], g["hidden"]) for g in sequence["graphs"]
        )
        sequence_lines.append("dispatch_overhead_sequence_s:  # [task s, overhead s] by the "
                              "in-process time of the cell")  # fmt: skip
        for task_s, overhead_s, hidden in points:
            sequence_lines.append(
                f"  - [{_fmt(task_s)}, {_fmt(overhead_s)}]  # "
                + measured(f"{how}, one-layer LSTM H={int(hidden)}")
            )
    busy_lines: list[str] = []
    busy = dispatch.get("all_cores_busy")
    if busy:
        workers = int(busy["workers"])
        how = (
            f"kernels.executor, {workers} workers on {workers} cores (independent instances), "
            "one-layer LSTM: makespan x workers / tasks - in-process cell"
        )

        def runs_note(point: dict[str, Any]) -> str:
            runs = ", ".join(f"H={int(r['hidden'])} {_us(r['dispatch_s'])}" for r in point["runs"])
            return f"median cell {_us(point['task_s'])}, median of {runs}"

        points = busy["points"]
        if len(points) == 1:
            busy_lines.append(
                f"dispatch_overhead_busy_s: {_fmt(points[0]['dispatch_s'])}  # "
                + measured(f"{how}: {runs_note(points[0])}")
            )
        else:
            busy_lines.append(
                "dispatch_overhead_busy_s:  # every core busy: [task s, overhead s] by the "
                "task's own time (linear between, flat outside)"
            )
            for point in points:
                busy_lines.append(
                    f"  - [{_fmt(point['task_s'])}, {_fmt(point['dispatch_s'])}]  # "
                    + measured(f"{how}, {point['kind']}: {runs_note(point)}")
                )
    group = dispatch.get("whole_socket_group")
    group_points = dispatch.get("whole_socket_group_points") or ([group] if group else [])

    def group_note(point: dict[str, Any]) -> str:
        return measured(
            f"kernels.executor, layerwise on {int(point['workers'])} workers, one-layer "
            f"{point.get('cell', 'rnn').upper()} H={int(point['hidden'])} (every step one task "
            f"split across the workers): makespan / tasks - a member's product and step in process "
            f"{_us(point['cell_in_process_s'])}, median of "
            + ", ".join(_us(v) for v in point["runs_dispatch_s"])
        )

    if len(group_points) == 1:
        busy_lines.append(
            f"dispatch_overhead_group_s: {_fmt(group_points[0]['dispatch_s'])}  # "
            + group_note(group_points[0])
        )
    elif group_points:
        busy_lines.append(
            "dispatch_overhead_group_s:  # [member's time s, overhead s] by a member's own time"
        )
        for point in sorted(group_points, key=lambda p: p["cell_in_process_s"]):
            busy_lines.append(
                f"  - [{_fmt(point['cell_in_process_s'])}, {_fmt(point['dispatch_s'])}]  # "
                + group_note(point)
            )
    step_lines: list[str] = []
    overheads = raw.get("kernel_call_overhead_s") or {}
    for key, part, what in (
        ("task_overhead_s", "task_s", "the intercept (a task's fixed part)"),
        ("step_overhead_s", "step_s", "the slope (per step)"),
    ):
        if overheads:
            step_lines.append(f"{key}:")
        for cell, parts in sorted(overheads.items()):
            step_lines.append(
                f"  {cell}: {_fmt(float(f'{parts[part]:.4g}'))}  # "
                + measured(
                    f"{cell} cell_chunk_forward at H=4, batch 1, 1 and 32 steps per chunk: {what}"
                )
            )

    corun = raw.get("corun")
    if corun:
        busy = len(corun["cores"])
        corun_value = max(corun["slowdown"] - 1.0, 0.0) / max(busy - 1, 1)
        corun_note = measured(
            f"LSTM cell H={corun['hidden']} on 1 core vs {busy} at once: slowdown "
            f"{corun['slowdown']:.3f}x, minus 1, per additional core"
        )
    else:
        corun_value = 0.0
        corun_note = "unused: one core, nothing co-runs"

    def latency(key: str, fallback: float, note: str) -> tuple[float, str]:
        if key in prior and prior[key][1].startswith(
            ("spec", "measured", "estimate", "assumption", "configuration", "unused")
        ):
            return prior[key]
        return fallback, note

    cycles = {1: 4, 2: 14, 3: 50}
    lines = [
        f"# This machine, calibrated by `wpsim calibrate` on {date}: {spec.model} "
        f"({spec.vendor}; {spec.sockets} socket(s) x {spec.cores_per_socket} core(s)"
        f"{', hypervisor ' + spec.hypervisor if spec.hypervisor else ''}).",
        "#",
        "# Every measured value says what was measured; the raw measurements, the CPU model and the",
        "# library versions are in the `calibration:` block at the end. Re-run to refresh:",
        "#   wpsim calibrate --out FILE   (without --out: this computer's entry in the cache, `-m host`)",
        "# Cache and DRAM latencies are not used by the cost model and are not measured (numpy has",
        "# no dependent-load loop); they keep their previous source. Units: s, B, B/s, Hz.",
        "kind: cpu",
        f'name: "this host (calibrated {date}): {spec.model}, '
        f'{spec.sockets * spec.cores_per_socket} cores"',
        f"sockets: {spec.sockets}  # spec: {spec.topology_source}",
        f"cores_per_socket: {spec.cores_per_socket}  # spec: {spec.topology_source}",
        f"clock_hz: {_fmt(clock)}  # {measured(clock_note)}",
        "peak_flops_per_cycle:",
        f"  float32: {per_cycle['float32']:.0f}  # spec: cpu flags, {rule}",
        f"  float64: {per_cycle['float64']:.0f}  # spec: cpu flags, half the fp32 lanes",
        "caches:",
    ]
    for cache, value, how in levels:
        lat_value, lat_comment = latency(
            f"caches.{cache.name}",
            cycles.get(cache.level, 50) / clock,
            f"assumption: not measured (unused by the cost model): "
            f"{cycles.get(cache.level, 50)} cycles at the clock",
        )
        lines += [
            f"  - name: {cache.name}",
            f"    scope: {cache.scope}",
            f"    size_bytes: {cache.size_bytes}  # spec: {cache.source}",
            f"    bandwidth_Bps: {_fmt(value)}  # {measured(how)}",
            f"    latency_s: {_fmt(lat_value)}  # {lat_comment}",
        ]
        reuse = raw.get("reuse_rates")
        if reuse and reuse["level"] == cache.name:
            lines.append(
                "    hit_curve:  # [reuse distance / size, fraction served here]: 1/rate = f/hi + "
                "(1-f)/lo of two matrices x vector re-read"
            )
            for ratio, fraction in hit_curve(reuse["Bps_by_ratio"]):
                rate = reuse["Bps_by_ratio"][f"{ratio:g}"]
                lines.append(
                    f"      - [{ratio:g}, {fraction:g}]  # "
                    + measured(f"working set {ratio:g} x {cache.size_bytes} B, {_si(rate, 'B/s')}")
                )
    mem_lat, mem_lat_note = latency(
        "memory", 1.0e-7, "assumption: not measured (unused by the cost model): 100 ns"
    )
    lines += [
        "memory:",
        f"  bandwidth_Bps: {_fmt(socket_bw)}  # "
        + measured(f"GEMV read of {dram['working_set_bytes'] / 2**20:.0f} MiB on {n_conc} cores at once, sum, median of {len(rounds)} round(s)"),
        f"  per_core_bandwidth_Bps: {_fmt(per_core)}  # "
        + measured(f"GEMV read of {dram['working_set_bytes'] / 2**20:.0f} MiB on one core, median of {1 + len(solo_rounds)} run(s) alternating with the all-core runs"),
        f"  latency_s: {_fmt(mem_lat)}  # {mem_lat_note}",
        "handoff:",
        f"  latency_s: {_fmt(lat)}  # {lat_note}",
        f"  bandwidth_Bps: {_fmt(hand_bw)}  # {bw_note}",
        f"  cross_socket_latency_s: {_fmt(cross_lat)}  # {cross_note}",
        "barrier:",
        f"  base_s: {_fmt(base)}  # {base_note}",
        f"  per_doubling_s: {_fmt(per_doubling)}  # {dbl_note}",
        f"dispatch_overhead_s: {_fmt(dispatch_s)}  # {dispatch_note}",
        *sequence_lines,
        *busy_lines,
        *step_lines,
        "efficiency:",
        "  gemm_by_n:  # fraction of clock x flops/cycle: X(n,H) @ W(4H,H)^T, best over H (compute ceiling)",
    ]  # fmt: skip
    for n, (frac, h) in table:
        lines.append(
            f"    - [{n}, {_fmt(round(frac, 4))}]  # "
            + measured(f"GEMM n={n}, best at H={h} of H={','.join(str(k) for k in sorted({k[1] for k in gemm_rates}))}")
        )  # fmt: skip
    grid_hs = ",".join(str(h) for h in sorted({h for _, h in gemm_rates}))
    lines.append(
        "  gemm_by_n_h:  # [n, H, fraction of clock x flops/cycle]: X(n,H) @ W(4H,H)^T at each H"
    )
    for (n, h), rate in sorted(gemm_rates.items()):
        lines.append(
            f"    - [{n}, {h}, {_fmt(round(min(rate / peak, 1.0), 4))}]  # "
            + measured(f"GEMM n={n} H={h} (of H={grid_hs}), weights hot")
        )
    by_cell = raw.get("gemm_s_by_cell") or {}
    if by_cell:
        lines.append(
            "  gemm_by_n_h_by_cell:  # the same with each cell's own W(G*H,H) (lstm: gemm_by_n_h)"
        )
    for cell, seconds_by_key in sorted(by_cell.items()):
        lines.append(f"    {cell}:")
        for (n, h), rate in sorted(_gemm_rates(seconds_by_key, GATES[cell]).items()):
            lines.append(
                f"      - [{n}, {h}, {_fmt(round(min(rate / peak, 1.0), 4))}]  # "
                + measured(f"GEMM n={n} H={h}, W({GATES[cell]}H,H)")
            )
    hot_by_cell = raw.get("gemm_s_hot") or {}
    if hot_by_cell:
        hot_kib = int(raw["gemm_hot_bytes"]) // 1024
        lines.append(
            f"  gemm_by_n_h_hot:  # the same with W's rows up to {hot_kib} KiB (the weights hot), "
            "for a product whose weights on one core fit its largest private cache"
        )
    for cell, hot_seconds in sorted(hot_by_cell.items()):
        streamed = by_cell.get(cell) or raw["gemm_s"]
        lines.append(f"    {cell}:")
        for (n, h), rate in sorted(_gemm_rates({**streamed, **hot_seconds}, GATES[cell]).items()):
            how = (
                f"timed on the rows of W({GATES[cell]}H,H) that fit {hot_kib} KiB"
                if f"{n},{h}" in hot_seconds
                else f"W({GATES[cell]}H,H) fits {hot_kib} KiB: as gemm_by_n_h"
            )
            lines.append(
                f"      - [{n}, {h}, {_fmt(round(min(rate / peak, 1.0), 4))}]  # "
                + measured(f"GEMM n={n} H={h}, {how}")
            )
    fixed_points = raw.get("product_fixed_s")
    if fixed_points:
        fixed_s = max(0.0, _median(list(fixed_points.values())))
        lines.append(
            f"  product_fixed_s: {_fmt(fixed_s)}  # "
            + measured(
                "2 t(half the rows) - t(all rows) of X(B,H) @ W(G*H,H)^T, median over [G, H, B] "
                + ", ".join(f"[{k}]" for k in fixed_points)
                + f" (range {min(fixed_points.values()) * 1e6:.2f}-"
                f"{max(fixed_points.values()) * 1e6:.2f} us)"
            )
        )
    lines += [
        f"  elementwise: {_fmt(round(elementwise, 5))}  # "
        + measured(
            f"cell gate math, geometric mean over {len(elem_fracs)} shapes "
            f"(range {min(elem_fracs.values()):.3g}-{max(elem_fracs.values()):.3g})"
        ),
        "  elementwise_step_s:  # by cell, [H, B, seconds]: one step's gate math (forward cell tasks)",
    ]
    net_grid = _elementwise_grid(raw["elementwise_s_per_step"], overheads, ELEM_STEPS)
    for cell, points in net_grid.items():
        lines.append(f"    {cell}:")
        for h, b, seconds in points:
            lines.append(
                f"      - [{h}, {b}, {_fmt(seconds)}]  # "
                + measured(f"{cell} cell_chunk_forward without its GEMMs, H={h}, batch {b}, "
                           f"per step of {ELEM_STEPS}, less task_ and step_overhead_s")
            )  # fmt: skip
    lines += [
        f"corun_slowdown_per_core: {_fmt(round(corun_value, 4))}  # {corun_note}",
        *_runtime_lines(),
    ]
    values = {
        "clock_hz": clock,
        "peak_flops_per_core": peak,
        "elementwise": elementwise,
        "corun_slowdown_per_core": corun_value,
        "dispatch_overhead_s": dispatch_s,
        "handoff_latency_s": lat,
        "handoff_bandwidth_Bps": hand_bw,
        "dram_per_core_Bps": per_core,
        "dram_socket_Bps": socket_bw,
        **{f"{c.name}_bandwidth_Bps": v for c, v, _ in levels},
        **{f"gemm_n{n}": frac for n, (frac, _) in table},
    }
    if barrier2 is not None:
        values["barrier2_s"] = barrier2
    try:  # a YAML date, so that no value of the file is a string starting with a digit
        when: Any = _dt.date.fromisoformat(date)
    except ValueError:
        when = date
    block = {
        "date": when,
        "tool": "wpsim calibrate",
        "cpu_model": _label(spec.model, "CPU"),
        "cpu_vendor": spec.vendor,
        "hypervisor": spec.hypervisor or "none",
        "cpu_mhz_reported": spec.mhz,
        "cores_measured": raw.get("cores"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": _label(str(raw.get("numpy")), "numpy"),
        "blas": raw.get("threadpool_info"),
        "blas_threads_per_process": 1,
        "quick": bool(raw.get("quick", False)),
        "loadavg_1min": raw.get("loadavg_1min"),
        "derived": {k: float(v) for k, v in values.items()},
        "gemm_efficiency_by_n_H": {
            f"{n},{h}": round(min(r / peak, 1.0), 4) for (n, h), r in sorted(gemm_rates.items())
        },
        "elementwise_efficiency_by_shape": {k: float(f"{v:.4g}") for k, v in sorted(elem_fracs.items())},
        "elementwise_step_fit": elem_fit,
        "raw": _round_floats(raw),
    }  # fmt: skip
    body = yaml.safe_dump(block, sort_keys=False, default_flow_style=None, width=100)
    lines.append("calibration:")
    lines += ["  " + line for line in body.rstrip("\n").splitlines()]
    return Calibration(text="\n".join(lines) + "\n", values=values, raw=raw)


def _runtime_lines() -> list[str]:
    """How the runtime whose overheads were measured splits its work (with the kernels present:
    :mod:`kernels.executor`; otherwise nothing, and the machine file keeps the defaults)."""
    try:
        from kernels.cells import gemv_max_batch
        from kernels.executor._runner import input_split_by_time_max_bytes
    except ImportError:
        return []
    return [
        f"input_split_by_time_max_bytes: {input_split_by_time_max_bytes()}  # configuration: "
        "kernels.executor (a split task projects its inputs over time steps while W_ih has at "
        "most this many bytes, else by gate rows)",
        f"recurrent_gemv_max_batch: {gemv_max_batch()}  # configuration: kernels.cells."
        "gemv_max_batch() (the executor's one-core recurrent product runs one GEMV per batch row "
        "up to this batch)",
        "elementwise_split_across_helpers: false  # configuration: kernels.executor runs the "
        "whole element-wise update of a split step on every member (no second barrier)",
    ]


def _label(text: str, prefix: str) -> str:
    """``text``, prefixed when it would start like a number (a rule of the machine-file tests)."""
    return f"{prefix} {text}" if re.match(r"^[-+.\d]", text) else text


def _round_floats(node: Any) -> Any:
    if isinstance(node, float):
        return float(f"{node:.6g}")
    if isinstance(node, dict):
        return {k: _round_floats(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_round_floats(v) for v in node]
    return node


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`wpsim.outputs.atomic_write` (a temporary file
    created exclusively in the same folder, fsynced, renamed), creating missing folders."""
    from wpsim.outputs import atomic_write, output_folder

    output_folder(path.parent, "--out")
    atomic_write(path, text, "--out")


def calibrate(
    out: str | Path, quick: bool = False, progress: Progress | None = None,
    cores: Sequence[int] | None = None,
) -> Calibration:  # fmt: skip
    """Measure this machine and write ``out`` (a machine YAML in the CpuMachine schema).

    Parameters
    ----------
    out : path
        The machine file to (re)write; replaced only when every measurement finished.
    quick : bool
        Fewer shapes and repeats (about 15 s instead of about a minute; for tests).
    progress : callable, optional
        Receives one line per step.
    cores : sequence of int, optional
        The cores to measure on (default: every core this process may run on).

    Returns
    -------
    Calibration

    Raises
    ------
    WpsimError
        If a measurement fails or the result does not validate; ``out`` is then untouched.
    """
    from wpsim.hardware import machine_from_dict

    out = Path(out)
    progress = progress or (lambda _m: None)
    spec = read_cpu_spec()
    if not spec.caches:
        raise ConfigError("calibrate: no cache description in /sys/devices/system/cpu (Linux only)")
    progress(
        f"calibrate: {spec.model}, {spec.sockets} x {spec.cores_per_socket} cores, caches "
        + ", ".join(f"{c.name} {c.size_bytes // 1024} KiB ({c.scope})" for c in spec.caches)
    )
    started = time.perf_counter()
    load_before = _loadavg()
    if load_before is not None and load_before > 0.5:
        progress(
            f"calibrate: warning: the 1-minute load average is {load_before:.2f}: other processes "
            "are running and will bias the measurements (recorded in the calibration block)"
        )
    raw = run_measurements(spec, quick=quick, cores=cores, progress=progress)
    for what in disturbed_overheads(raw.get("dispatch") or {}):
        progress(
            f"calibrate: warning: {what} came out at 0 (the executor beat the same cell in "
            "process): something else ran meanwhile; run calibrate again with the machine idle"
        )
    raw["quick"] = quick
    raw["loadavg_1min"] = {"before": load_before, "after": _loadavg()}
    date = _dt.date.today().isoformat()
    result = build_machine_file(spec, raw, date, _prior_latencies(out))
    machine_from_dict(yaml.safe_load(result.text), str(out))  # must validate before we write
    write_atomically(out, result.text)
    progress(f"calibrate: wrote {out} in {time.perf_counter() - started:.0f} s")
    return result


def disturbed_overheads(dispatch: dict[str, Any]) -> list[str]:
    """The executor overheads of a calibration's ``dispatch`` measurements that came out at 0,
    as ``"name (H=...)"``: the executor ran a cell faster than the in-process reference timed
    next to it, which a quiet machine does not do (a disturbed calibration gave a sequence
    table of 0, 0 and a dispatch overhead twice the usual).

    Examples
    --------
    >>> disturbed_overheads({"sequence": {"graphs": [{"hidden": 256.0, "dispatch_s": 0.0}]}})
    ['dispatch_overhead_sequence_s (H=256)']
    """
    found = []
    named = [
        ("dispatch_overhead_s", (dispatch.get("graphs") or [])),
        ("dispatch_overhead_sequence_s", (dispatch.get("sequence") or {}).get("graphs") or []),
        ("dispatch_overhead_group_s", dispatch.get("whole_socket_group_points") or []),
    ]
    for name, points in named:
        for point in points:
            if isinstance(point, dict) and point.get("dispatch_s", 1.0) <= 0.0:
                found.append(f"{name} (H={int(point.get('hidden', 0))})")
    return found


def _main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--child":
        child_main(json.loads(argv[1]))
        return 0
    print("usage: wpsim calibrate --out FILE [--quick]", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover - the measuring child
    sys.exit(_main(sys.argv[1:]))
