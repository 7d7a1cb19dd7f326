"""The stall watchdog: a worker that makes no progress for too long ends the run.

A worker makes progress when it finishes a task (dynamic mode: the coordinator sees its ``DONE``
word) or starts the next task of its sequence (sequence mode: its ``CURRENT`` word changes). A
task may run for :func:`stall_limit_s`: its predicted length at a pessimistic rate,
:data:`SLOWEST_FLOPS_PER_S`, but never less than a floor (:data:`STALL_FLOOR_S`, or
``--stall-timeout``), so that a loaded machine's scheduling delays never end a healthy run. A
worker stopped (SIGSTOP), deadlocked or stuck in the kernel then ends the run with one line
naming the worker, its process state and the task, instead of hanging it forever.

The coordinator checks at most every :data:`CHECK_INTERVAL_S` and whenever it wakes from waiting
(at least once a second). If the coordinator itself did not run for :data:`SUSPENDED_GAP_S` (it
was stopped, or the machine slept), the clocks restart: the workers were not the slow ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from time import perf_counter

#: Shortest time a task may go without progress (``--stall-timeout`` replaces it). Tasks of the
#: executor take microseconds to a second; scheduling delays on a loaded machine stay well
#: below this.
STALL_FLOOR_S = 10.0
#: Rate at which a task's flops are assumed to run when its limit is derived: below a third of
#: the slowest rate calibrated for the kernels on the development machine (element-wise gate
#: math at 0.00166 of a 163 GFLOP/s core, 0.27 GFLOP/s; hw_configs/xeon_kvm_2core.yaml), so only a
#: stalled task reaches it.
SLOWEST_FLOPS_PER_S = 1e8
#: Longest interval between two checks while tasks complete.
CHECK_INTERVAL_S = 0.25
#: A pause of the coordinator itself longer than this restarts the clocks.
SUSPENDED_GAP_S = 5.0


def stall_limit_s(flops: float, floor_s: float = STALL_FLOOR_S) -> float:
    """Seconds a task of ``flops`` may run without progress.

    Examples
    --------
    >>> stall_limit_s(1e6), stall_limit_s(5e9)
    (10.0, 50.0)
    """
    return max(floor_s, flops / SLOWEST_FLOPS_PER_S)


def process_state(pid: int | None) -> str:
    """The state of process ``pid`` in words, from ``/proc`` (empty where unknown).

    Examples
    --------
    >>> process_state(None)
    ''
    """
    if pid is None:
        return ""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            text = handle.read()
    except OSError:
        return ""
    state = text.rsplit(")", 1)[-1].split()[0] if ")" in text else ""
    return {
        "T": "stopped (SIGSTOP?)",
        "t": "stopped by a debugger",
        "D": "waiting in the kernel (uninterruptible)",
        "Z": "exited",
        "R": "running",
        "S": "sleeping",
    }.get(state, state)


class Watchdog:
    """When each worker's current task started, as the coordinator saw it.

    Parameters
    ----------
    flops : sequence of float
        Flops of every task, by task id (the limits are derived from them).
    floor_s : float, optional
        The shortest limit (default :data:`STALL_FLOOR_S`).
    """

    def __init__(self, flops: Sequence[float], floor_s: float | None = None) -> None:
        self.flops = flops
        self.floor_s = STALL_FLOOR_S if floor_s is None else float(floor_s)
        self.since: dict[int, float] = {}
        self.task: dict[int, int] = {}
        self.next_check = 0.0
        self.last_check = perf_counter()

    def start(self, worker: int, tid: int, now: float) -> None:
        """``worker`` began ``tid`` (or was seen to) at ``now``."""
        self.since[worker] = now
        self.task[worker] = tid

    def stop(self, worker: int) -> None:
        """``worker`` finished its task: nothing to watch until its next one."""
        self.since.pop(worker, None)
        self.task.pop(worker, None)

    def due(self, now: float) -> bool:
        """Whether a check is due (cheap: call it every loop)."""
        return now >= self.next_check

    def stalled(
        self, now: float, finished: Callable[[int], bool], prefer: Callable[[int], bool]
    ) -> tuple[int, int, float] | None:
        """``(worker, task, seconds)`` of a worker past its task's limit, or None.

        ``finished(worker)``: it completed its share already (a group member waiting for the
        others is not the one stalling). Among several, one for which ``prefer(worker)`` holds
        (e.g. a stopped process) is named first.
        """
        self.next_check = now + CHECK_INTERVAL_S
        gap = now - self.last_check
        self.last_check = now
        if gap > SUSPENDED_GAP_S:  # the coordinator itself did not run: restart the clocks
            for worker in self.since:
                self.since[worker] += gap
            return None
        late = []
        for worker, since in self.since.items():
            tid = self.task[worker]
            if tid < 0 or tid >= len(self.flops):
                continue
            if now - since > stall_limit_s(self.flops[tid], self.floor_s) and not finished(worker):
                late.append(worker)
        if not late:
            return None
        worker = next((w for w in late if prefer(w)), late[0])
        return worker, self.task[worker], now - self.since[worker]


__all__ = [
    "CHECK_INTERVAL_S",
    "SLOWEST_FLOPS_PER_S",
    "STALL_FLOOR_S",
    "Watchdog",
    "process_state",
    "stall_limit_s",
]
