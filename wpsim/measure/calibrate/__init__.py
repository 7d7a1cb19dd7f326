"""Measure this machine and write a machine file (``wpsim calibrate``).

Every field of :class:`wpsim.machines.cpu.CpuMachine` that the cost model (:mod:`wpsim.cost.cpu`) uses is
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
    (:mod:`wpsim.cost.cpu` takes ``max(products, memory)``). ``gemm_by_n_h_by_cell``: the same grid
    with the Elman and GRU cells' own ``W (G*H, H)`` (a skinny product's rate depends on where
    its matrix fits, and theirs are smaller; another cell takes ``gemm_by_n_h``:
    :data:`~wpsim.measure.calibrate.compute.GEMM_CELLS`). ``gemm_by_n_h_hot``: for each of the
    three, the points whose ``W`` is larger than half the largest private cache again, timed on
    the rows that fit and scaled by the row ratio (the rate with the weights hot, for a product
    whose weights on one core fit that cache: one core's share of a split product); the other
    points as above.
``recurrent_gemv_max_batch`` and ``elementwise_split_across_helpers``
    ``kernels.products.gemv_max_batch()``: the executor runs a one-core recurrent product of at
    most this batch as one GEMV per batch row; and ``false``: a split step's element-wise
    update runs whole on every member (configurations of the kernels, not measurements).
``efficiency.elementwise_step_s`` and ``efficiency.elementwise``
    the non-GEMM work of the chunk tasks of every registered cell (:func:`wpsim.cells.cell_names`,
    with its default options; bias adds, gate nonlinearities, state updates: the task as the
    executor runs it, :func:`kernels.tasks.forward_task`, the kernel interpreting the cell's
    declaration, with every product's output a zero fill) for H in 128..1024, batch 1..16, per
    step; the cells share the time of each point (``ELEM_BUDGET_S``). ``elementwise_step_s`` is
    the grid of seconds per step by cell, H and batch, net of the task and step overheads below,
    which the cost model interpolates for forward cell tasks (a cell's grid serves its options
    too; a cell declared in YAML, or registered after the file was written, is charged at
    ``elementwise`` and a result says so: :meth:`wpsim.machines.cpu.CpuMachine.cell_calibration`);
    ``elementwise`` is the geometric mean over every cell's shapes of ``E*H*B / (time x peak)``,
    for other element-wise work (the per-shape values spread widely because numpy's per-call
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
    for every registered cell, a cell task (:func:`kernels.tasks.forward_task`) at H = 4,
    batch 1, with 1 and with 32 steps per chunk: the intercept and the slope of its time
    against its steps (the per-call and per-step costs of the kernel, all interpreter and ufunc
    dispatch at that size), every product's output a fill: the products' own calls are in the
    GEMM timings.
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

The measurements run in a child process (``python -m wpsim.measure.calibrate.child --child``,
:mod:`~wpsim.measure.calibrate.child`); the file is
written to a temporary name and renamed, so an interrupted run leaves the previous file untouched.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from wpsim.errors import ConfigError, WpsimError
from wpsim.machines.host import CpuSpec, read_cpu_spec
from wpsim.measure.calibrate.machine_file import Calibration, build_machine_file
from wpsim.measure.calibrate.timing import SINGLE_THREAD_ENV, Progress


# ---- the parent: run the child, build the file ----------------------------------------------------
def run_measurements(
    spec: CpuSpec,
    quick: bool = False,
    cores: Sequence[int] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
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
    root = str(Path(__file__).resolve().parent.parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    command = [sys.executable, "-m", "wpsim.measure.calibrate.child", "--child", json.dumps(config)]
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
    out: str | Path,
    quick: bool = False,
    progress: Progress | None = None,
    cores: Sequence[int] | None = None,
) -> Calibration:
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
    from wpsim.machines import machine_from_dict

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
