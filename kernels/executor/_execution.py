"""One execution of a task graph by the worker processes: the shared segment, the workers'
start, the scheduling loop (the whole order handed out at once for one group, task by task
otherwise), the collection of the timestamps, and the shut-down."""

from __future__ import annotations

import math
import multiprocessing
import os
import select
import signal
from collections.abc import Mapping
from time import perf_counter
from typing import Any

import numpy as np
import scipy.sparse as sp

from kernels.arrays import array_specs, final_states, initial_state_grads
from kernels.executor import _layout as lay
from kernels.executor._process import (
    START_METHOD,
    WorkerProcess,
    describe_exit,
    sigint_deferred,
    single_thread_blas_env,
)
from kernels.executor._watchdog import Watchdog, process_state, stall_limit_s
from kernels.executor._worker import Fault, WorkerSpec, sched_yield, worker_main
from kernels.params import compute_dtype, param_shapes
from wpsim.errors import ConfigError, ExecutionError
from wpsim.model.plan import Plan
from wpsim.model.workload import Workload
from wpsim.policies import Policy
from wpsim.sim.loop import Schedule
from wpsim.trace import Trace

#: How long the coordinator spins (yielding) when a CPU is free for it, before it parks (env
#: ``WPSIM_EXECUTOR_IDLE_SPIN_US``); with every CPU busy it parks at once.
DEFAULT_IDLE_SPIN_US = 1000.0


#: ``0`` turns sequence mode off (every task through the coordinator; calibration measures both).
SEQUENCE_ENV = "WPSIM_EXECUTOR_SEQUENCE"


#: Test hook: write the worker pids and the segment name to this file once they are started.
PIDFILE_ENV = "WPSIM_EXECUTOR_PIDFILE"


START_TIMEOUT_S = 120.0


# ---- helpers ------------------------------------------------------------------------------------
def microseconds(variable: str, default: float) -> float:
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


def static_order(plan: Plan, policy: Policy, groups: list[tuple[int, ...]]) -> list[int]:
    """The order in which ONE group runs ``plan`` under ``policy``: the scheduling loop with every
    task finishing at once (with one group, when tasks finish cannot change the policy's choices).

    Examples
    --------
    >>> from wpsim.model.graph import build
    >>> from wpsim.model.plan import compile_plan
    >>> from wpsim.policies import get_policy
    >>> from wpsim.model.workload import Workload
    >>> plan = compile_plan(build(Workload(cell="rnn", layers=2, hidden=4, input=4, seq_len=2)))
    >>> [plan.tasks[t].label for t in static_order(plan, get_policy("sequential"), [(0,)])]
    ['cell[l0,fwd,t0]', 'cell[l0,fwd,t1]', 'cell[l1,fwd,t0]', 'cell[l1,fwd,t1]']
    """
    if len(groups) != 1:
        raise ValueError(f"a static order needs one group, got {len(groups)}")
    loop = Schedule(plan, policy, groups)
    order: list[int] = []
    while loop.ended < plan.n_tasks:
        assigned = loop.assign()
        if not assigned:
            raise loop.stalled("execution")
        for g, tid in assigned:
            order.append(tid)
            loop.end(g, tid)  # a task's end, for the order: at once
    return order


# ---- one execution -----------------------------------------------------------------------------
class Execution:
    """Segment + workers + coordinator state for one :func:`execute` call."""

    def __init__(
        self,
        workload: Workload,
        policy: Policy,
        plan: Plan,
        groups: list[tuple[int, ...]],
        hoisted: bool,
        spin_s: float,
        fault: Fault | None,
        pin: bool,
        stall_timeout_s: float | None = None,
    ) -> None:
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
    def create_segment(
        self, params: Mapping[str, Any], x: np.ndarray, grad_output: np.ndarray | None
    ) -> None:
        w = self.workload
        specs = array_specs(
            w,
            self.policy.instances,
            self.hoisted,
            self.training,
            self.plan.chunk,
            [len(g) for g in self.groups],
        )
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
        assert self.seg is not None  # made by create_segment
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
        with single_thread_blas_env():
            for w in self.members:
                gi, group = group_of[w]
                spec = WorkerSpec(
                    index=w,
                    cpu=cpus[w % len(cpus)] if pin else None,
                    parent_pid=os.getpid(),
                    shm_name=self.seg.name,
                    layout=self.seg.layout,
                    workload=self.workload,
                    tasks=tasks,
                    hoisted=self.hoisted,
                    training=self.training,
                    chunk=self.plan.chunk,
                    group=group,
                    group_index=gi,
                    spin_s=self.spin_s,
                    fault=self.fault,
                )
                cmd_r, cmd_w = ctx.Pipe(duplex=False)
                self._conns.append(cmd_w)
                child_ends.append(cmd_r)
                fd = cmd_w.fileno()
                os.set_blocking(fd, False)
                self.cmd_fds[w] = fd
                proc = WorkerProcess(
                    target=worker_main,
                    args=(spec, cmd_r, wake_w),
                    name=f"wpsim-worker-{w}",
                    daemon=True,
                )
                self.procs[w] = proc
                proc.start()
                if spec.cpu is not None:  # now, not after the child's imports (it pins too)
                    assert proc.pid is not None  # started
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
        assert self.seg is not None  # made by create_segment
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
                        f"worker {w} (pid {proc.pid}) {describe_exit(proc.exitcode)} "
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
        assert self.wake_fd is not None  # opened by start_workers
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
        assert self.seg is not None  # made by create_segment
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
        assert self.seg is not None  # made by create_segment
        if self.sequence:
            return self.seg.q[lay.Layout.slot(w, lay.CURRENT)]
        return self.running.get(w)

    def _task_error(self, w: int) -> ExecutionError:
        assert self.seg is not None  # made by create_segment
        tid = self._current_task(w)
        where = self._label(tid) if tid is not None else "a task"
        return ExecutionError(f"{where} failed on worker {w}: {self.seg.read_error(w)}")

    def _check_dead(self) -> None:
        assert self.seg is not None  # made by create_segment
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
                f"worker {w} (pid {proc.pid}) {describe_exit(proc.exitcode)} {doing}"
            )

    def _check_stall(self, now: float) -> None:
        """End the run (:class:`ExecutionError`) when a worker is past its task's time limit."""
        assert self.seg is not None  # made by create_segment
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
        assert self.seg is not None  # made by create_segment
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
        trace.extend(
            order, [tuple(group)] * n, starts.tolist(), ends.tolist(), [{}] * n, [None] * n, [0] * n
        )
        return trace, float(ends.max())

    def _run_dynamic(self) -> tuple[Trace, float]:
        assert self.seg is not None  # made by create_segment
        plan, policy, groups = self.plan, self.policy, self.groups
        q, d, slot = self.seg.q, self.seg.d, lay.Layout.slot
        n = plan.n_tasks
        loop = Schedule(plan, policy, groups)  # the scheduling loop shared with the simulator
        n_groups = len(groups)
        task_of = [-1] * n_groups
        done_slots = [[slot(m, lay.DONE) for m in g] for g in groups]
        status_slots = [[slot(m, lay.STATUS) for m in g] for g in groups]
        trace = Trace([])
        busy: list[int] = []
        seq = self.seq
        spin_s = microseconds("WPSIM_EXECUTOR_IDLE_SPIN_US", DEFAULT_IDLE_SPIN_US)
        n_cpus = self.n_cpus
        sizes = [len(g) for g in groups]

        watchdog = self.watchdog

        def dispatch() -> None:
            assigned = loop.assign()
            if not assigned:
                return
            now = perf_counter()
            for g, tid in assigned:
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
        last_end = origin
        while loop.ended < n:
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
                trace.append(
                    tid, members, start - origin, end - origin, {}, None
                )  # hit: not observed
                last_end = max(last_end, end)
                loop.end(g, tid)  # a task's end, for the executor: every member's done flag
            dispatch()
            if not busy and loop.ended < n:
                raise loop.stalled("execution")
            now = perf_counter()
            if watchdog.due(now):  # other groups keep finishing: check the rest now and then
                self._check_stall(now)
        return trace, last_end - origin

    # ---- results --------------------------------------------------------------------------------
    def collect(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
        """The outputs (``output``, and ``{state}_n``: each state after the last step) and, in
        training, the gradients (every parameter, ``x``, and ``{state}0``: each initial state);
        see :func:`kernels.arrays.final_states`."""
        assert self.seg is not None  # made by create_segment
        w, a = self.workload, self.seg.arrays
        out_dt = np.dtype(w.dtype)
        L, D = w.layers, w.directions
        top = [a[f"h0.{L - 1}.{d}"] for d in range(D)]
        output = a["y0"] if w.output != "none" else np.concatenate(top, axis=2)
        outputs = {"output": np.array(output, dtype=out_dt)}
        outputs.update(final_states(w, a, out_dt))
        if not self.training:
            return outputs, None
        grads = {name: np.array(a[f"g0.{name}"], dtype=out_dt) for name in param_shapes(w)}
        dx = a["dx0.0.0"] if D == 1 else a["dx0.0.0"] + a["dx0.0.1"]
        grads["x"] = np.array(dx, dtype=out_dt)
        grads.update(initial_state_grads(w, a, out_dt))
        return outputs, grads

    # ---- tear-down ------------------------------------------------------------------------------
    def shutdown(self, graceful: bool) -> None:
        """Stop every worker (EXIT command, else SIGTERM, else SIGKILL), then free the segment."""
        with sigint_deferred():
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
