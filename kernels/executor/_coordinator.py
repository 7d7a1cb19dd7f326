"""The coordinator: start the workers, drive the policy, collect trace and outputs, clean up.

The scheduling loop is :func:`wpsim.engine.run_plan` with real time instead of simulated time:
count unfinished predecessors, ``policy.push`` each task that becomes ready, and whenever groups
are idle ask ``policy.assign(idle)`` (idle groups in ascending order) for work. Completions seen
in one scan of the mailboxes are all processed before the policy is asked again, like the
engine's deferred dispatch for events at the same instant.

With ONE group of workers (``sequential``, ``layerwise``, any policy on one worker) the order
cannot depend on timing: the policy's choices are the same whenever the tasks finish. So the
coordinator runs the loop above once without the workers (:func:`static_order`), writes the
order to the segment and hands it out as one command (sequence mode). The members then run task
after task with no round trip through the coordinator: measured here (2 vCPUs, VM), that round
trip is 40-75 us a task, the wake-up of a parked process on this hypervisor.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import select
import signal
import statistics
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

import numpy as np
import scipy.sparse as sp

from kernels.executor import _layout as lay
from kernels.executor._runner import RUNNABLE_KINDS, array_specs
from kernels.executor._watchdog import Watchdog, process_state, stall_limit_s
from kernels.executor._worker import Fault, WorkerSpec, sched_yield, worker_main
from kernels.params import compute_dtype, init_input, init_params, param_shapes
from wpsim.errors import ConfigError, ExecutionError
from wpsim.trace import Trace
from wpsim.workload import Workload

#: Why spawn: the workers must load numpy with single-threaded BLAS (the environment variables
#: are read when the BLAS library loads, so they must be in the environment of a fresh
#: interpreter), and the parent may already run threads (a BLAS pool, torch's OpenMP pool in
#: the benchmark, pytest plugins): forking a multi-threaded process can deadlock a child on a
#: lock held by a thread that does not exist there. The price is start-up (~0.6 s, the
#: workers import numpy/scipy in parallel), paid once per :func:`execute`, not per repeat.
START_METHOD = "spawn"
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
#: How long a worker spins on shared memory before it parks (env ``WPSIM_EXECUTOR_SPIN_US``).
DEFAULT_SPIN_US = 50.0
#: How long the coordinator spins (yielding) when a CPU is free for it, before it parks (env
#: ``WPSIM_EXECUTOR_IDLE_SPIN_US``); with every CPU busy it parks at once.
DEFAULT_IDLE_SPIN_US = 1000.0
#: ``0`` turns sequence mode off (every task through the coordinator; calibration measures both).
SEQUENCE_ENV = "WPSIM_EXECUTOR_SEQUENCE"
#: Test hook (``mode:task``, e.g. ``raise:3``): inject a failure when no ``fail_at_task`` given.
FAULT_ENV = "WPSIM_EXECUTOR_FAULT"
#: Test hook: write the worker pids and the segment name to this file once they are started.
PIDFILE_ENV = "WPSIM_EXECUTOR_PIDFILE"
FAULT_MODES = ("raise", "kill", "hang", "start")
START_TIMEOUT_S = 120.0


@dataclass
class ExecutionResult:
    """A measured run of a task graph under a policy.

    Attributes
    ----------
    outputs : dict of str to ndarray
        ``output`` (what :func:`kernels.forward` returns first), ``h_n`` and, for lstm, ``c_n``;
        in the workload's dtype; instance 0 when there are several.
    grads : dict of str to ndarray or None
        Training: what :func:`kernels.backward` returns (every parameter, ``x``, ``h0``, lstm
        ``c0``) for the loss gradient ``grad_output``.
    trace : Trace
        One record per task of the repeat whose makespan is the median: ``cores`` is the group
        of worker indices that ran it, ``start_s``/``end_s`` are seconds since the coordinator
        began the repeat. The executor cannot observe cache traffic: ``level_bytes`` is empty
        and ``hit`` is True for every record.
    measured_makespan_s : float
        Median over repeats of the time from the coordinator's first dispatch to the end of the
        last task (so it includes every dispatch and hand-off).
    makespans_s : list of float
        Every repeat's makespan (warm-up runs excluded).
    policy : str
    workers : int
        Workers asked for; ``groups`` says which ran (a policy may use fewer).
    groups : list of tuple of int
    n_tasks : int
    chunk : int
    tasks : list of Task
        The executed graph's tasks by id (labels for the trace).
    startup_s : float
        Time to start the workers and map the segment (not in any makespan).
    workload : Workload
    start_method : str
    """

    outputs: dict[str, np.ndarray]
    grads: dict[str, np.ndarray] | None
    trace: Trace
    measured_makespan_s: float
    makespans_s: list[float]
    policy: str
    workers: int
    groups: list[tuple[int, ...]]
    n_tasks: int
    chunk: int
    tasks: list = field(repr=False)
    startup_s: float
    workload: Workload = field(repr=False)
    start_method: str = START_METHOD

    @property
    def median_makespan_s(self) -> float:
        return statistics.median(self.makespans_s)

    @property
    def min_makespan_s(self) -> float:
        return min(self.makespans_s)

    @property
    def labels(self) -> list[str]:
        return [t.label for t in self.tasks]

    @property
    def work_s(self) -> float:
        """Core-seconds spent in tasks (duration times group size, summed)."""
        tr = self.trace
        return sum((e - s) * len(c) for s, e, c in zip(tr.start_s, tr.end_s, tr.cores, strict=True))

    @property
    def n_started(self) -> int:
        return len({c for g in self.groups for c in g})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no arrays, no trace)."""
        return {
            "engine": "measured",
            "workload": self.workload.name,
            "policy": self.policy,
            "workers": self.workers,
            "workers_started": self.n_started,
            "groups": [list(g) for g in self.groups],
            "n_tasks": self.n_tasks,
            "chunk": self.chunk,
            "measured_makespan_s": self.measured_makespan_s,
            "median_makespan_s": self.median_makespan_s,
            "min_makespan_s": self.min_makespan_s,
            "makespans_s": list(self.makespans_s),
            "repeats": len(self.makespans_s),
            "trace_makespan_s": self.trace.makespan_s,
            "work_s": self.work_s,
            "utilization": self.utilization,
            "startup_s": self.startup_s,
            "start_method": self.start_method,
        }

    @property
    def utilization(self) -> float:
        per_core = self.trace.utilization(self.workers)
        started = sorted({c for g in self.groups for c in g})
        return sum(per_core[c] for c in started) / len(started) if started else 0.0

    def to_result(self, sequential_s: float | None = None):
        """The measurement as a :class:`wpsim.result.Result` (``engine="measured"``).

        ``sequential_s`` defaults to :attr:`work_s` (the measured task time run back to back),
        so ``speedup`` is then the measured parallelism, not a speed-up over a separate run.
        """
        from wpsim.result import Result

        started = sorted({c for g in self.groups for c in g})
        per_core = self.trace.utilization(self.workers)
        return Result(
            engine="measured",
            policy=self.policy,
            cores=self.workers,
            makespan_s=self.measured_makespan_s,
            sequential_s=self.work_s if sequential_s is None else sequential_s,
            n_tasks=self.n_tasks,
            utilization=self.utilization,
            dram_bytes=0.0,
            per_core_utilization=[per_core[c] for c in range(self.workers)],
            extra={
                "chunk": self.chunk,
                "workers_started": len(started),
                "makespans_s": list(self.makespans_s),
            },  # fmt: skip
            trace=self.trace,
            tasks=self.tasks,
        )


# ---- helpers ------------------------------------------------------------------------------------
def _microseconds(variable: str, default: float) -> float:
    """A spin budget in seconds from ``variable`` (microseconds) or ``default``."""
    text = os.environ.get(variable)
    if text is None:
        return default * 1e-6
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"{variable}: got {text!r}, expected microseconds") from None
    if value < 0 or not math.isfinite(value):
        raise ConfigError(f"{variable}: got {text!r}, expected a value >= 0")
    return value * 1e-6


def _fault_from_env() -> Fault | None:
    text = os.environ.get(FAULT_ENV)
    if not text:
        return None
    mode, _, tid = text.partition(":")
    if mode not in ("raise", "kill", "hang") or not tid.isdigit():
        raise ConfigError(
            f"{FAULT_ENV}: got {text!r}, expected MODE:TASK with MODE raise|kill|hang"
        )
    return mode, int(tid)


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that does not re-run the caller's ``__main__``.

    ``spawn`` normally re-imports the parent's main module in the child (so that functions
    defined there can be unpickled). A worker needs nothing from it, and re-running it costs
    the caller's imports (pytest, torch) per worker and breaks scripts that lack the
    ``if __name__ == "__main__"`` guard; so the main-module entries are dropped from the
    child's preparation data while this process starts.
    """

    @staticmethod
    def _Popen(process_obj):
        from multiprocessing import spawn

        original = spawn.get_preparation_data

        def without_main(name):
            data = original(name)
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
            return data

        spawn.get_preparation_data = without_main
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            spawn.get_preparation_data = original


@contextmanager
def _single_thread_blas_env():
    """Set the BLAS thread variables while workers start (spawn copies the environment)."""
    saved = {k: os.environ.get(k) for k in BLAS_ENV}
    os.environ.update(dict.fromkeys(BLAS_ENV, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def _sigint_deferred():
    """Ignore Ctrl-C and SIGTERM while cleaning up (main thread only), so cleanup always
    completes (the shared-memory segment is removed: no resource_tracker warning)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


def _stalled(done: int, n: int, policy) -> ExecutionError:
    return ExecutionError(
        f"execution stalled: {done} of {n} tasks ran under policy {policy.name!r} "
        "(a policy must eventually assign every ready task)"
    )


def static_order(plan, policy, groups: list[tuple[int, ...]]) -> list[int]:
    """The order in which ONE group runs ``plan`` under ``policy``: the scheduling loop with every
    task finishing at once (with one group, when tasks finish cannot change the policy's choices).

    Examples
    --------
    >>> from wpsim.graph import build
    >>> from wpsim.plan import compile_plan
    >>> from wpsim.policies import get_policy
    >>> from wpsim.workload import Workload
    >>> plan = compile_plan(build(Workload(cell="rnn", layers=2, hidden=4, input=4, seq_len=2)))
    >>> [plan.tasks[t].label for t in static_order(plan, get_policy("sequential"), [(0,)])]
    ['cell[l0,fwd,t0]', 'cell[l0,fwd,t1]', 'cell[l1,fwd,t0]', 'cell[l1,fwd,t1]']
    """
    if len(groups) != 1:
        raise ValueError(f"a static order needs one group, got {len(groups)}")
    remaining = [len(p) for p in plan.preds]
    policy.reset(plan, groups)
    for tid in range(plan.n_tasks):
        if remaining[tid] == 0:
            policy.push(tid)
    order: list[int] = []
    while len(order) < plan.n_tasks:
        assigned = policy.assign([0])
        if not assigned:
            raise _stalled(len(order), plan.n_tasks, policy)
        for _, tid in assigned:
            order.append(tid)
            for s in plan.succs[tid]:
                remaining[s] -= 1
                if remaining[s] == 0:
                    policy.push(s)
    return order


def _check_inputs(workload, params, x, grad_output, seed):
    shapes = param_shapes(workload)
    for name, shape in shapes.items():
        if name not in params:
            raise ConfigError(
                f"params: missing parameter '{name}' for this {workload.cell} workload"
            )
        if tuple(params[name].shape) != shape:
            raise ConfigError(
                f"params: parameter '{name}' has shape {tuple(params[name].shape)}, expected {shape}"
            )
    want = (workload.seq_len, workload.batch, workload.input)
    if np.shape(x) != want:
        raise ConfigError(f"x: got shape {np.shape(x)}, expected {want} (seq_len, batch, input)")
    out_width = (
        workload.output_size if workload.output != "none" else workload.directions * workload.hidden
    )
    gshape = (workload.seq_len, workload.batch, out_width)
    if workload.phase == "training":
        if grad_output is None:
            grad_output = np.random.default_rng(seed + 1).standard_normal(gshape)
        elif np.shape(grad_output) != gshape:
            raise ConfigError(f"grad_output: got shape {np.shape(grad_output)}, expected {gshape}")
    return params, x, grad_output


# ---- one execution -----------------------------------------------------------------------------
class _Execution:
    """Segment + workers + coordinator state for one :func:`execute` call."""

    def __init__(self, workload, policy, plan, groups, hoisted, spin_s, fault, pin,
                 stall_timeout_s=None) -> None:  # fmt: skip
        self.workload = workload
        self.watchdog = Watchdog([t.flops for t in plan.tasks], stall_timeout_s)
        self.policy = policy
        self.plan = plan
        self.groups = groups
        self.hoisted = hoisted
        self.training = workload.phase == "training"
        self.spin_s = spin_s
        self.fault = fault
        self.pin = pin
        try:
            self.n_cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            self.n_cpus = os.cpu_count() or 1
        self.members = sorted({c for g in groups for c in g})
        self.n_slots = max(self.members) + 1
        self.seq = [0] * self.n_slots
        self.running: dict[int, int] = {}  # worker -> task id
        self.use_sequence = len(groups) == 1 and os.environ.get(SEQUENCE_ENV, "1") != "0"
        self.sequence = False  # a sequence is out: the workers say what they run (CURRENT)
        self.order: list[int] | None = None  # sequence mode: the order, the same every repeat
        self.seg: lay.Segment | None = None
        self.procs: dict[int, Any] = {}
        self.cmd_fds: dict[int, int] = {}
        self.wake_fd: int | None = None
        self._conns: list = []

    # ---- set-up -----------------------------------------------------------------------------
    def create_segment(self, params, x, grad_output) -> None:
        w = self.workload
        specs = array_specs(w, self.policy.instances, self.hoisted, self.training,
                            self.plan.chunk, [len(g) for g in self.groups])  # fmt: skip
        if self.use_sequence:  # sequence mode: the order, each member's task spans
            n = self.plan.n_tasks
            specs["order"] = ((n,), np.dtype("int64"))
            specs.update({f"spans{m}": ((n, 2), np.dtype("float64")) for m in self.groups[0]})
        self.seg = lay.Segment(lay.plan_layout(self.n_slots, specs))
        arrays = self.seg.arrays
        dt = compute_dtype(w)
        arrays["x"][...] = np.asarray(x, dtype=dt)
        for i in range(self.policy.instances):
            for name in param_shapes(w):
                value = params[name]
                if sp.issparse(value):
                    value = value.toarray()
                arrays[f"p{i}.{name}"][...] = np.asarray(value, dtype=dt)
        if self.training:
            arrays["gout"][...] = np.asarray(grad_output, dtype=dt)

    def start_workers(self) -> None:
        ctx = multiprocessing.get_context(START_METHOD)
        wake_r, wake_w = ctx.Pipe(duplex=False)
        self._conns.append(wake_r)
        self.wake_fd = wake_r.fileno()
        os.set_blocking(self.wake_fd, False)
        tasks = [(t.kind, t.instance, t.layer, t.direction, t.t0, t.steps) for t in self.plan.tasks]
        try:
            cpus = sorted(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = []
        pin = self.pin and 0 < len(self.members) <= len(cpus)
        group_of = {c: (gi, g) for gi, g in enumerate(self.groups) for c in g}
        child_ends = [wake_w]
        with _single_thread_blas_env():
            for w in self.members:
                gi, group = group_of[w]
                spec = WorkerSpec(
                    index=w, cpu=cpus[w % len(cpus)] if pin else None, parent_pid=os.getpid(),
                    shm_name=self.seg.name, layout=self.seg.layout, workload=self.workload,
                    tasks=tasks, hoisted=self.hoisted, training=self.training,
                    chunk=self.plan.chunk, group=group, group_index=gi, spin_s=self.spin_s,
                    fault=self.fault,
                )  # fmt: skip
                cmd_r, cmd_w = ctx.Pipe(duplex=False)
                self._conns.append(cmd_w)
                child_ends.append(cmd_r)
                fd = cmd_w.fileno()
                os.set_blocking(fd, False)
                self.cmd_fds[w] = fd
                proc = _WorkerProcess(
                    target=worker_main, args=(spec, cmd_r, wake_w),
                    name=f"wpsim-worker-{w}", daemon=True,
                )  # fmt: skip
                self.procs[w] = proc
                proc.start()
                if spec.cpu is not None:  # now, not after the child's imports (it pins too)
                    try:
                        os.sched_setaffinity(proc.pid, {spec.cpu})
                    except OSError:
                        pass
        for conn in child_ends:  # the children hold their own copies now
            conn.close()
        pidfile = os.environ.get(PIDFILE_ENV)
        if pidfile:
            with open(pidfile, "w") as handle:
                pids = " ".join(str(p.pid) for p in self.procs.values())
                handle.write(f"{pids} {self.seg.name}\n")
        self._wait_ready()

    def _wait_ready(self) -> None:
        q, slot = self.seg.q, lay.Layout.slot
        deadline = perf_counter() + START_TIMEOUT_S
        stopped_since: dict[int, float] = {}  # the watchdog's floor applies to start-up too
        while True:
            self._drain()
            for w in self.members:
                if q[slot(w, lay.STATUS)]:
                    raise ExecutionError(f"worker {w} failed to start: {self.seg.read_error(w)}")
            if all(q[slot(w, lay.READY)] for w in self.members):
                return
            now = perf_counter()
            for w, proc in self.procs.items():
                if proc.exitcode is not None:
                    raise ExecutionError(
                        f"worker {w} (pid {proc.pid}) {_describe_exit(proc.exitcode)} "
                        "during start-up"
                    )
                state = process_state(proc.pid)
                if not state.startswith("stopped") or q[slot(w, lay.READY)]:
                    stopped_since.pop(w, None)
                elif now - stopped_since.setdefault(w, now) > self.watchdog.floor_s:
                    raise ExecutionError(
                        f"worker {w} (pid {proc.pid}) made no progress for "
                        f"{now - stopped_since[w]:.1f} s while starting; its process is {state}; "
                        f"limit {self.watchdog.floor_s:.1f} s (--stall-timeout); run stopped"
                    )
            if perf_counter() > deadline:
                raise ExecutionError(f"workers not ready after {START_TIMEOUT_S:.0f} s")
            self._park(0.5)

    # ---- signalling -----------------------------------------------------------------------------
    def _drain(self) -> None:
        try:
            while os.read(self.wake_fd, 4096):
                pass
        except BlockingIOError:
            pass

    def _park(self, timeout: float) -> None:
        fds = [self.wake_fd] + [p.sentinel for p in self.procs.values()]
        ready, _, _ = select.select(fds, [], [], timeout)
        if len(ready) > 1 or (ready and ready[0] != self.wake_fd):
            self._check_dead()

    def _send(self, w: int, tid: int) -> None:
        self.seq[w] += 1
        self.seg.q[lay.Layout.slot(w, lay.CMD)] = (self.seq[w] << 32) | tid
        try:
            os.write(self.cmd_fds[w], b"\0")
        except BlockingIOError:  # the worker is spinning and has not drained yet
            pass

    # ---- failures -------------------------------------------------------------------------------
    def _label(self, tid: int) -> str:
        return f"{self.plan.tasks[tid].label} (task {tid})"

    def _current_task(self, w: int) -> int | None:
        if self.sequence:
            return self.seg.q[lay.Layout.slot(w, lay.CURRENT)]
        return self.running.get(w)

    def _task_error(self, w: int) -> ExecutionError:
        tid = self._current_task(w)
        where = self._label(tid) if tid is not None else "a task"
        return ExecutionError(f"{where} failed on worker {w}: {self.seg.read_error(w)}")

    def _check_dead(self) -> None:
        for w, proc in self.procs.items():
            if proc.exitcode is None:
                continue
            status = self.seg.q[lay.Layout.slot(w, lay.STATUS)]
            if status == 1:
                raise self._task_error(w)
            if status == 2:  # reported a start-up failure, then exited
                raise ExecutionError(f"worker {w} failed to start: {self.seg.read_error(w)}")
            tid = self._current_task(w)
            doing = f"while running {self._label(tid)}" if tid is not None else "while idle"
            raise ExecutionError(
                f"worker {w} (pid {proc.pid}) {_describe_exit(proc.exitcode)} {doing}"
            )

    def _check_stall(self, now: float) -> None:
        """End the run (:class:`ExecutionError`) when a worker is past its task's time limit."""
        q, slot = self.seg.q, lay.Layout.slot

        def finished(w: int) -> bool:
            return q[slot(w, lay.DONE)] == self.seq[w]

        def stopped(w: int) -> bool:
            return process_state(self.procs[w].pid).startswith("stopped")

        late = self.watchdog.stalled(now, finished, stopped)
        if late is None:
            return
        w, tid, elapsed = late
        proc = self.procs[w]
        state = process_state(proc.pid)
        limit = stall_limit_s(self.plan.tasks[tid].flops, self.watchdog.floor_s)
        raise ExecutionError(
            f"worker {w} (pid {proc.pid}) made no progress for {elapsed:.1f} s on "
            f"{self._label(tid)}{'; its process is ' + state if state else ''}; limit "
            f"{limit:.1f} s (--stall-timeout); run stopped"
        )

    # ---- the schedule ---------------------------------------------------------------------------
    def run_once(self) -> tuple[Trace, float]:
        if self.use_sequence:
            return self._run_sequence()
        return self._run_dynamic()

    def _run_sequence(self) -> tuple[Trace, float]:
        """One group: hand the whole precomputed order to its members as one command."""
        plan, group = self.plan, self.groups[0]
        q, slot, arrays = self.seg.q, lay.Layout.slot, self.seg.arrays
        if self.order is None:
            self.order = static_order(plan, self.policy, self.groups)
            arrays["order"][...] = self.order
        order = self.order
        origin = perf_counter()
        self.sequence = True
        watchdog = self.watchdog
        for m in group:
            self._send(m, lay.SEQUENCE_TASK)
            watchdog.start(m, -1, origin)  # no task seen yet; the first one sets the clock
        done_slots = [slot(m, lay.DONE) for m in group]
        status_slots = [slot(m, lay.STATUS) for m in group]
        current_slots = [slot(m, lay.CURRENT) for m in group]
        while True:
            for m, s in zip(group, status_slots, strict=True):
                if q[s]:
                    raise self._task_error(m)
            if all(q[s] == self.seq[m] for m, s in zip(group, done_slots, strict=True)):
                break
            self._drain()
            self._park(1.0)
            now = perf_counter()
            for m, s in zip(group, current_slots, strict=True):  # progress: the next task began
                if q[s] != watchdog.task.get(m):
                    watchdog.start(m, q[s], now)
            self._check_stall(now)
        for m in group:
            watchdog.stop(m)
        self.sequence = False
        spans = np.stack([arrays[f"spans{m}"] for m in group])
        starts = spans[:, :, 0].min(axis=0) - origin
        ends = spans[:, :, 1].max(axis=0) - origin
        trace = Trace([])
        n = len(order)
        trace.extend(order, [tuple(group)] * n, starts.tolist(), ends.tolist(), [{}] * n,
                     [True] * n, [0] * n)  # fmt: skip
        return trace, float(ends.max())

    def _run_dynamic(self) -> tuple[Trace, float]:
        plan, policy, groups = self.plan, self.policy, self.groups
        q, d, slot = self.seg.q, self.seg.d, lay.Layout.slot
        n = plan.n_tasks
        succs = plan.succs
        remaining = [len(p) for p in plan.preds]
        policy.reset(plan, groups)
        for tid in range(n):
            if remaining[tid] == 0:
                policy.push(tid)
        n_groups = len(groups)
        idle = [True] * n_groups
        task_of = [-1] * n_groups
        done_slots = [[slot(m, lay.DONE) for m in g] for g in groups]
        status_slots = [[slot(m, lay.STATUS) for m in g] for g in groups]
        trace = Trace([])
        busy: list[int] = []
        seq = self.seq
        spin_s = _microseconds("WPSIM_EXECUTOR_IDLE_SPIN_US", DEFAULT_IDLE_SPIN_US)
        n_cpus = self.n_cpus
        sizes = [len(g) for g in groups]

        watchdog = self.watchdog

        def dispatch() -> None:
            free = [g for g in range(n_groups) if idle[g]]
            if not free:
                return
            now = perf_counter()
            for g, tid in policy.assign(free):
                if not idle[g]:
                    raise ExecutionError(
                        f"policy {policy.name!r} assigned task {tid} to busy group {g}"
                    )
                idle[g] = False
                task_of[g] = tid
                for m in groups[g]:
                    self.running[m] = tid
                    self._send(m, tid)
                    watchdog.start(m, tid, now)
                busy.append(g)

        def scan() -> list[int]:
            finished = []
            for g in busy:
                members = groups[g]
                complete = True
                for k, m in enumerate(members):
                    if q[done_slots[g][k]] == seq[m]:
                        if q[status_slots[g][k]]:
                            raise self._task_error(m)
                    else:
                        complete = False
                if complete:
                    finished.append(g)
            return finished

        origin = perf_counter()
        dispatch()
        done = 0
        last_end = origin
        while done < n:
            finished = scan()
            if not finished and sum(sizes[g] for g in busy) < n_cpus:
                # a CPU is free for the coordinator: spin (yielding) before parking. With
                # every CPU busy it parks at once: a runnable yielder waits for a busy worker's
                # whole time slice, a sleeper is woken onto the CPU that becomes idle.
                spin_until = perf_counter() + spin_s
                while not finished and perf_counter() < spin_until:
                    sched_yield()
                    finished = scan()
            while not finished:
                self._drain()
                finished = scan()
                if not finished:
                    self._park(1.0)
                    finished = scan()
                    if not finished:
                        self._check_stall(perf_counter())
            for g in sorted(finished):
                busy.remove(g)
                tid = task_of[g]
                members = groups[g]
                start = min(d[slot(m, lay.T_START)] for m in members)
                end = max(d[slot(m, lay.T_END)] for m in members)
                for m in members:
                    del self.running[m]
                    watchdog.stop(m)
                trace.append(tid, members, start - origin, end - origin, {}, True)
                last_end = max(last_end, end)
                done += 1
                for s in succs[tid]:
                    remaining[s] -= 1
                    if remaining[s] == 0:
                        policy.push(s)
                idle[g] = True
            dispatch()
            if not busy and done < n:
                raise _stalled(done, n, policy)
            now = perf_counter()
            if watchdog.due(now):  # other groups keep finishing: check the rest now and then
                self._check_stall(now)
        return trace, last_end - origin

    # ---- results --------------------------------------------------------------------------------
    def collect(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        w, a = self.workload, self.seg.arrays
        out_dt = np.dtype(w.dtype)
        T, L, D = w.seq_len, w.layers, w.directions

        def final(prefix: str) -> np.ndarray:
            return np.stack(
                [a[f"{prefix}0.{l}.{d}"][0 if d else T - 1] for l in range(L) for d in range(D)]
            ).astype(out_dt)

        top = [a[f"h0.{L - 1}.{d}"] for d in range(D)]
        output = a["y0"] if w.output != "none" else np.concatenate(top, axis=2)
        outputs = {"output": np.array(output, dtype=out_dt), "h_n": final("h")}
        if w.cell == "lstm":
            outputs["c_n"] = final("c")
        if not self.training:
            return outputs, None
        grads = {name: np.array(a[f"g0.{name}"], dtype=out_dt) for name in param_shapes(w)}
        dx = a["dx0.0.0"] if D == 1 else a["dx0.0.0"] + a["dx0.0.1"]
        grads["x"] = np.array(dx, dtype=out_dt)
        n_chunks = a["dhb0.0.0"].shape[0]

        def first(prefix: str) -> np.ndarray:
            return np.stack(
                [
                    a[f"{prefix}0.{l}.{d}"][n_chunks - 1 if d else 0]
                    for l in range(L)
                    for d in range(D)
                ]
            ).astype(out_dt)

        grads["h0"] = first("dhb")
        if w.cell == "lstm":
            grads["c0"] = first("dcb")
        return outputs, grads

    # ---- tear-down ------------------------------------------------------------------------------
    def shutdown(self, graceful: bool) -> None:
        """Stop every worker (EXIT command, else SIGTERM, else SIGKILL), then free the segment."""
        with _sigint_deferred():
            seg = self.seg
            if seg is not None:
                seg.q[lay.ABORT] = 1
                if graceful:
                    for w in self.procs:
                        self._send(w, lay.EXIT_TASK)
            deadline = perf_counter() + (2.0 if graceful else 0.0)
            for proc in self.procs.values():
                if proc.pid is None:
                    continue
                proc.join(max(0.0, deadline - perf_counter()))
                if proc.exitcode is None:
                    proc.terminate()
                    try:  # a stopped worker acts on SIGTERM only once continued
                        os.kill(proc.pid, signal.SIGCONT)
                    except OSError:
                        pass
            for proc in self.procs.values():
                if proc.pid is None:
                    continue
                proc.join(1.0)
                if proc.exitcode is None:
                    proc.kill()
                    proc.join(5.0)
                try:
                    proc.close()
                except ValueError:  # still running (uninterruptible): nothing more to do
                    pass
            self.procs = {}
            for conn in self._conns:
                conn.close()
            self._conns = []
            if seg is not None:
                seg.close()
                seg.unlink()
                self.seg = None


# ---- public entry points -----------------------------------------------------------------------
class Executor:
    """Worker processes kept alive for repeated runs of one workload under one policy.

    :func:`execute` is ``with Executor(...) as ex:`` around ``ex.run()`` calls; use the class
    directly to interleave runs with other measurements (``benchmarks/kernel.py`` alternates
    executor and PyTorch runs so that both see the same machine load).

    Parameters
    ----------
    workload, policy, workers, chunk, params, x, seed, grad_output, granularity, pin,
    fail_at_task, fail_mode
        As for :func:`execute`.

    Examples
    --------
    >>> from wpsim.workload import Workload
    >>> w = Workload(cell="rnn", layers=2, hidden=8, input=4, seq_len=6)
    >>> with Executor(w, "pipeline", workers=2, chunk=3) as ex:
    ...     makespans = [ex.run() for _ in range(3)]
    ...     result = ex.result()
    >>> len(result.makespans_s), result.outputs["output"].shape
    (3, (6, 1, 8))
    """

    def __init__(
        self,
        workload: Workload,
        policy: Any,
        workers: int,
        chunk: int = 1,
        params: Mapping[str, Any] | None = None,
        x: np.ndarray | None = None,
        seed: int = 0,
        *,
        grad_output: np.ndarray | None = None,
        granularity: str = "cell",
        pin: bool = True,
        fail_at_task: int | None = None,
        fail_mode: str = "raise",
        stall_timeout_s: float | None = None,
    ) -> None:
        from wpsim.graph import build
        from wpsim.plan import compile_plan
        from wpsim.policies import get_policy

        for name, value in (("workers", workers), ("chunk", chunk)):
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"--{name}: got {value!r}, expected an integer >= 1")
        if granularity != "cell":
            raise ConfigError(
                f"--granularity {granularity}: only cell tasks run for real (op-level tasks are "
                "too small to dispatch to processes); use the simulator for op granularity"
            )
        if isinstance(policy, str):
            policy = get_policy(policy)
        options = dict(policy.graph_options(workload, chunk))
        if options.get("granularity", "cell") != "cell":
            raise ConfigError(
                f"policy {policy.name!r} needs op granularity, which cannot run for real"
            )
        graph = build(workload, **options)
        plan = compile_plan(graph)
        kinds = sorted({t.kind for t in plan.tasks} - set(RUNNABLE_KINDS))
        if kinds:
            raise ConfigError(f"task kinds {', '.join(kinds)} cannot run for real")
        groups = [tuple(g) for g in policy.core_groups(workers)]
        if not groups or any(c < 0 or c >= workers for g in groups for c in g):
            raise ConfigError(
                f"policy {policy.name!r} gave core groups {groups} for {workers} workers"
            )
        if fail_at_task is not None:
            if fail_mode not in FAULT_MODES:
                raise ConfigError(
                    f"fail_mode: got {fail_mode!r}, expected one of {', '.join(FAULT_MODES)}"
                )
            fault: Fault | None = (fail_mode, int(fail_at_task))
        else:
            fault = _fault_from_env()
        self._inputs = _check_inputs(
            workload, params if params is not None else init_params(workload, seed),
            x if x is not None else init_input(workload, seed), grad_output, seed,
        )  # fmt: skip
        self.workload = workload
        self.policy = policy
        self.workers = int(workers)
        self.plan = plan
        self.groups = groups
        hoisted = graph.graph.get("hoist_input") is not None
        if stall_timeout_s is not None and not (0 < stall_timeout_s < math.inf):
            raise ConfigError(f"--stall-timeout: got {stall_timeout_s!r}, expected seconds > 0")
        self._run = _Execution(
            workload, policy, plan, groups, hoisted,
            _microseconds("WPSIM_EXECUTOR_SPIN_US", DEFAULT_SPIN_US), fault, pin, stall_timeout_s,
        )  # fmt: skip
        self._runs: list[tuple[Trace, float]] = []
        self.startup_s = float("nan")
        self._started = False
        self._closed = False

    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(graceful=exc_type is None)

    def start(self) -> None:
        """Create the segment and start the workers (``__enter__`` does it)."""
        if self._started:
            return
        self._started = True
        t0 = perf_counter()
        try:
            self._run.create_segment(*self._inputs)
            self._run.start_workers()
        except BaseException:
            self.close(graceful=False)
            raise
        self.startup_s = perf_counter() - t0

    def run(self, record: bool = True) -> float:
        """Run the graph once; return its makespan in seconds (kept for :meth:`result` if
        ``record``). On any failure every worker is stopped and the segment removed."""
        if self._closed or not self._started:
            raise ExecutionError("the executor is not running (use it as a context manager)")
        try:
            trace, makespan = self._run.run_once()
        except BaseException:
            self.close(graceful=False)
            raise
        if record:
            self._runs.append((trace, makespan))
        return makespan

    def result(self) -> ExecutionResult:
        """Outputs of the last run, the trace of the median recorded run, all makespans."""
        if not self._runs:
            raise ExecutionError("no recorded run yet")
        if self._closed:
            raise ExecutionError("the executor is closed; call result() inside the with block")
        outputs, grads = self._run.collect()
        makespans = [m for _, m in self._runs]
        median = statistics.median(makespans)
        trace = min(self._runs, key=lambda r: abs(r[1] - median))[0]
        return ExecutionResult(
            outputs=outputs,
            grads=grads,
            trace=trace,
            measured_makespan_s=median,
            makespans_s=makespans,
            policy=self.policy.describe(),
            workers=self.workers,
            groups=self.groups,
            n_tasks=self.plan.n_tasks,
            chunk=self.plan.chunk,
            tasks=self.plan.tasks,
            startup_s=self.startup_s,
            workload=self.workload,
        )

    def close(self, graceful: bool = True) -> None:
        """Stop the workers and remove the segment (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._run.shutdown(graceful)


def execute(
    workload: Workload,
    policy: Any,
    workers: int,
    chunk: int = 1,
    params: Mapping[str, Any] | None = None,
    x: np.ndarray | None = None,
    seed: int = 0,
    repeats: int = 1,
    *,
    warmup: int = 0,
    grad_output: np.ndarray | None = None,
    granularity: str = "cell",
    pin: bool = True,
    fail_at_task: int | None = None,
    fail_mode: str = "raise",
    stall_timeout_s: float | None = None,
) -> ExecutionResult:
    """Run ``workload``'s task graph for real on ``workers`` processes under ``policy``.

    The graph is the one the simulator builds for the policy (``policy.graph_options``), the
    core groups are ``policy.core_groups(workers)`` (one worker process per core of a group;
    cores no group uses get no process) and every decision comes from the policy's
    ``push``/``assign``, as in :func:`wpsim.engine.run_plan`.

    Parameters
    ----------
    workload : Workload
        Any cell, layers, direction, phase, dtype (float16 computed in float32), density
        (sparse ``W_hh`` run as CSR), output layer.
    policy : Policy or str
        A policy object (:func:`wpsim.policies.get_policy`) or a registered name.
    workers : int
        Worker processes available (the simulator's cores).
    chunk : int
        Time steps per cell task (policies may override, e.g. ``layerwise`` uses 1).
    params : mapping, optional
        Parameters (:func:`kernels.init_params` with ``seed`` by default).
    x : ndarray, optional
        Input, shape (seq_len, batch, input) (:func:`kernels.init_input` with ``seed`` by
        default).
    seed : int
        Seed of the default parameters and input.
    repeats : int
        Timed runs, with the same workers; all outputs are identical, times vary.
    warmup : int
        Untimed runs before them (page faults of the fresh segment, BLAS buffers).
    grad_output : ndarray, optional
        Training: the loss gradient w.r.t. the output (default: standard normal drawn
        with seed ``seed + 1``).
    granularity : {"cell"}
        Only whole-cell tasks run for real; ``"op"`` raises :class:`~wpsim.errors.ConfigError`.
    pin : bool
        Pin worker ``w`` to the ``w``-th allowed CPU (when there are enough CPUs). Turn off on
        a machine shared with other busy processes: a pinned worker cannot move away from them.
    fail_at_task : int, optional
        Test hook: the worker running this task fails as ``fail_mode`` says (``"raise"`` an
        exception, ``"kill"`` itself with SIGKILL, ``"hang"``; ``"start"``: every worker fails
        while starting). Also read from the environment variable
        ``WPSIM_EXECUTOR_FAULT=MODE:TASK`` when not given.
    stall_timeout_s : float, optional
        The stall watchdog's floor (:mod:`kernels.executor._watchdog`, default 10 s): a worker
        that makes no progress for this long, or for its task's predicted time at a pessimistic
        rate if longer, ends the run with one line naming it and its task.

    Returns
    -------
    ExecutionResult

    Raises
    ------
    ConfigError
        Bad arguments, an op-granularity request, a task kind that cannot run for real.
    ExecutionError
        A worker raised, died, stalled or could not start; one line naming the task. Every
        worker is stopped and the shared-memory segment removed before it propagates (also on
        Ctrl-C and SIGTERM).

    Examples
    --------
    >>> from wpsim.workload import Workload
    >>> w = Workload(cell="gru", layers=2, hidden=8, input=4, seq_len=4)
    >>> r = execute(w, "wavefront", workers=2, chunk=2)
    >>> r.n_tasks, r.outputs["output"].shape, len(r.trace)
    (4, (4, 1, 8), 4)
    """
    for name, value, low in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ConfigError(f"--{name}: got {value!r}, expected an integer >= {low}")
    with Executor(workload, policy, workers, chunk, params, x, seed, grad_output=grad_output,
                  granularity=granularity, pin=pin, fail_at_task=fail_at_task,
                  fail_mode=fail_mode, stall_timeout_s=stall_timeout_s) as ex:  # fmt: skip
        for _ in range(warmup):
            ex.run(record=False)
        for _ in range(repeats):
            ex.run()
        return ex.result()
