"""Timing helpers of the measuring child: pinning, medians of repeated calls, and pairs or groups
of processes that start together (fork with anonymous shared memory)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

#: Environment that pins every BLAS / OpenMP library to one thread (set before numpy import).
SINGLE_THREAD_ENV = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "BLIS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
}


Progress = Callable[[str], None]


# ---- child-side measurement primitives ---------------------------------------------------------
def pin(core: int | None) -> None:
    if core is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {core})
        except OSError:
            pass


def median(values: Sequence[float]) -> float:
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
    return median(times)


def zero_product(_h: Any, dest: Any) -> None:
    """A recurrent product that costs nothing but filling its output (the products are timed
    apart, see :func:`measure_gemm`)."""
    dest.fill(0.0)


# ---- pairs of processes (fork + anonymous shared memory) -----------------------------------------
class Shared:
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


def fork_run(targets: list[Callable[[], Any]]) -> list[Any]:
    """Run each ``target()`` in a forked process; return what each sends back."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    pipes = [ctx.Pipe(duplex=False) for _ in targets]
    procs = []
    for target, (_, send) in zip(targets, pipes, strict=True):

        def body(target: Callable[[], Any] = target, send: Any = send) -> None:
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


def spin_until(flag: Any, value: int, deadline: float) -> None:
    clock = time.perf_counter
    while flag[0] < value:
        if clock() > deadline:
            raise TimeoutError("partner process did not answer (core overloaded?)")


def run_together(shared: Any, members: list[Callable[[], Any]]) -> list[Any]:
    """Fork one process per member; release them at once when every one has reported ready
    (``shared.flags[rank + 1]``) by setting ``shared.flags[0]``; return their results."""
    import threading

    def starter() -> None:
        deadline = time.perf_counter() + 60
        for rank in range(len(members)):
            spin_until(shared.flags[rank + 1], 1, deadline)
        shared.flags[0][0] = 1

    thread = threading.Thread(target=starter, daemon=True)
    thread.start()
    results = fork_run(members)
    thread.join(timeout=5)
    return results
