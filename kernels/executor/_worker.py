"""The worker process: attach the segment, then wait for commands, run tasks, report.

Waiting for a command spins on the worker's command word for ``spin_s`` seconds, calling
``os.sched_yield`` between reads (the coordinator is often woken onto this worker's CPU and
must get it at once), then parks in ``select`` on the worker's command pipe (the coordinator
writes one byte after each command, so a parked worker wakes at once; a spinning worker finds
the bytes later and drains them). Waiting at a group barrier spins without yielding for
``spin_s`` (pinned members are on distinct CPUs), then yields, and after a millisecond sleeps
50 us per check.

A command is one task id, or :data:`~kernels.executor._layout.SEQUENCE_TASK`: run the segment's
whole ``order`` array (a policy with one group of workers, whose order the coordinator knows in
advance), with a group barrier between two tasks, and report once at the end.

Never an orphan: the worker ignores SIGINT (Ctrl-C reaches the whole process group; the
coordinator alone decides to stop), asks the kernel to SIGKILL it when its parent dies
(``PR_SET_PDEATHSIG``, Linux), and also exits when its command pipe reaches end-of-file or its
parent id changes (other systems).
"""

from __future__ import annotations

import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from time import perf_counter
from typing import TYPE_CHECKING

from kernels.executor import _layout as lay

if TYPE_CHECKING:
    from wpsim.model.workload import Workload

sched_yield = getattr(os, "sched_yield", lambda: time.sleep(0))

#: ``(mode, task id)``: the test hook; modes ``raise``, ``kill`` (SIGKILL itself), ``hang``,
#: ``start`` (fail while starting, before any task).
Fault = tuple[str, int]


class Aborted(Exception):
    """The coordinator raised the abort flag while this worker waited at a barrier."""


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, pickled once at start-up."""

    index: int
    cpu: int | None
    parent_pid: int
    shm_name: str
    layout: lay.Layout
    workload: Workload
    tasks: list
    hoisted: bool
    training: bool
    chunk: int
    group: tuple[int, ...]
    group_index: int
    spin_s: float
    fault: Fault | None = None


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _Worker:
    def __init__(self, spec: WorkerSpec, cmd_fd: int, wake_fd: int) -> None:
        from kernels.tasks import TaskRunner

        self.spec = spec
        self.cmd_fd = cmd_fd
        self.wake_fd = wake_fd
        self.seg = lay.Segment(spec.layout, spec.shm_name)
        self.q = self.seg.q
        self.d = self.seg.d
        slot = lay.Layout.slot
        w = spec.index
        self.s_cmd, self.s_done = slot(w, lay.CMD), slot(w, lay.DONE)
        self.s_status, self.s_bar = slot(w, lay.STATUS), slot(w, lay.BARRIER)
        self.s_start, self.s_end = slot(w, lay.T_START), slot(w, lay.T_END)
        self.s_current = slot(w, lay.CURRENT)
        self.peer_bars = [slot(m, lay.BARRIER) for m in spec.group if m != w]
        self.bar = self.q[self.s_bar]
        size = len(spec.group)
        self.runner = TaskRunner(
            spec.workload,
            spec.tasks,
            self.seg.arrays,
            hoisted=spec.hoisted,
            training=spec.training,
            chunk=spec.chunk,
            rank=spec.group.index(w),
            size=size,
            barrier=self.barrier if size > 1 else None,
            scratch=f"rb{spec.group_index}" if size > 1 else None,
        )
        self.runner.warm()
        self.last_seq = self.q[self.s_cmd] >> 32

    # ---- signalling -----------------------------------------------------------------------
    def post(self) -> None:
        try:
            os.write(self.wake_fd, b"\0")
        except BlockingIOError:  # the pipe is full: a wake-up is pending anyway
            pass
        except BrokenPipeError:  # the coordinator is gone
            os._exit(0)

    def barrier(self) -> None:
        """Spin-then-yield barrier over the group's members (single-writer counters)."""
        q = self.q
        self.bar += 1
        target = self.bar
        q[self.s_bar] = target
        for slot in self.peer_bars:
            if q[slot] >= target:
                continue
            # pinned members sit on distinct CPUs: spin without yielding first (a yield would
            # hand the CPU to any other runnable process for a whole time slice); unpinned
            # ones may share a CPU with the member they wait for: yield from the start
            now = perf_counter()
            yield_after = now + (self.spec.spin_s if self.spec.cpu is not None else 0.0)
            sleep_after = now + 1e-3
            n = 0
            while q[slot] < target:
                n += 1
                if n & 15 == 0:
                    if q[lay.ABORT]:
                        raise Aborted()
                    now = perf_counter()
                    if now > sleep_after:
                        time.sleep(50e-6)
                    elif now > yield_after:
                        sched_yield()

    def wait_command(self) -> int:
        q, s_cmd, last = self.q, self.s_cmd, self.last_seq
        spin_until = perf_counter() + self.spec.spin_s
        while True:
            word = q[s_cmd]
            if word >> 32 != last:
                return word
            if perf_counter() > spin_until:
                break
            sched_yield()
        fd = self.cmd_fd
        while True:
            try:
                while True:
                    if not os.read(fd, 4096):  # end of file: the coordinator is gone
                        os._exit(0)
            except BlockingIOError:
                pass
            word = q[s_cmd]
            if word >> 32 != last:
                return word
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready and os.getppid() != self.spec.parent_pid:
                os._exit(0)

    # ---- main loop ------------------------------------------------------------------------------
    def run_task(self, tid: int) -> None:
        """Run this member's share of task ``tid`` (the test hook's fault first, if it is
        this task's and this member leads the group)."""
        fault = self.spec.fault
        if fault is not None and tid == fault[1] and self.runner.leader:
            self.inject(fault[0], tid)
        self.runner.run(tid)

    def loop(self) -> None:
        q, d = self.q, self.d
        # the plain runner unless a fault is to be injected (nothing extra per task then)
        run = self.runner.run if self.spec.fault is None else self.run_task
        while True:
            word = self.wait_command()
            seq, tid = word >> 32, word & lay.TASK_MASK
            self.last_seq = seq
            if tid == lay.EXIT_TASK:
                return
            start = perf_counter()
            try:
                if tid == lay.SEQUENCE_TASK:
                    self.run_sequence(run)
                else:
                    run(tid)
            except Aborted:
                return
            except BaseException as exc:  # noqa: BLE001 - reported to the coordinator
                self.seg.write_error(self.spec.index, _one_line(exc))
                q[self.s_status] = 1
            end = perf_counter()
            d[self.s_start] = start
            d[self.s_end] = end
            q[self.s_done] = seq
            self.post()

    def run_sequence(self, run: Callable[[int], object]) -> None:
        """Run every task of the segment's ``order`` array with ``run``, recording each one's
        start and end in ``spans{w}``. Members of a group meet at a barrier between two tasks: the next task
        reads what the group's leader wrote in the last one (the state, a projection's rows),
        which the coordinator's hand-out ensured in the dynamic mode."""
        arrays = self.seg.arrays
        order = arrays["order"]
        spans = arrays[f"spans{self.spec.index}"]
        q, s_current = self.q, self.s_current
        barrier = self.barrier if len(self.spec.group) > 1 else None
        for pos, tid in enumerate(order.tolist()):
            q[s_current] = tid
            if barrier is not None and pos:
                barrier()
            start = perf_counter()
            run(tid)
            spans[pos, 0] = start
            spans[pos, 1] = perf_counter()

    @staticmethod
    def inject(mode: str, tid: int) -> None:
        if mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "hang":
            while True:
                time.sleep(3600)
        raise RuntimeError(f"injected failure at task {tid} (test hook)")


def worker_main(spec: WorkerSpec, cmd_conn: Connection, wake_conn: Connection) -> None:
    """Entry point of a worker process (``multiprocessing`` target)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal()
    if os.getppid() != spec.parent_pid:  # the parent died before PDEATHSIG was armed
        os._exit(0)
    if spec.cpu is not None:
        try:
            os.sched_setaffinity(0, {spec.cpu})
        except (AttributeError, OSError):
            pass
    from threadpoolctl import threadpool_limits

    limits = threadpool_limits(limits=1)  # noqa: F841 - held for the process lifetime
    cmd_fd, wake_fd = cmd_conn.fileno(), wake_conn.fileno()
    os.set_blocking(cmd_fd, False)
    os.set_blocking(wake_fd, False)
    worker = None
    code = 0
    try:
        if spec.fault is not None and spec.fault[0] == "start":
            raise RuntimeError("injected start-up failure (test hook)")
        worker = _Worker(spec, cmd_fd, wake_fd)
        worker.q[lay.Layout.slot(spec.index, lay.PID)] = os.getpid()
        worker.q[lay.Layout.slot(spec.index, lay.READY)] = 1
        worker.post()
        worker.loop()
    except BaseException as exc:  # noqa: BLE001 - start-up failure, reported then exit
        code = 1
        try:
            seg = worker.seg if worker is not None else lay.Segment(spec.layout, spec.shm_name)
            seg.write_error(spec.index, _one_line(exc))
            seg.q[lay.Layout.slot(spec.index, lay.STATUS)] = 2
            os.write(wake_fd, b"\0")
        except Exception:  # noqa: BLE001
            traceback.print_exc()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # no finalisers: the coordinator owns the segment
