"""Synchronisation and co-running: hand-off between cores, barriers, the executor's pipe
dispatch, and the slowdown of cores that run cells side by side."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from wpsim.cells import get_cell
from wpsim.measure.calibrate.timing import (
    Shared,
    fork_run,
    median,
    pin,
    run_together,
    spin_until,
    zero_product,
)

HANDOFF_SIZES = (0, 4096, 16384, 65536, 262144)


CORUN_HIDDEN = 512


def measure_handoff(cores: tuple[int, int], sizes: Sequence[int], rounds: int) -> dict[str, float]:
    """Median one-way hand-off time (half a ping-pong round trip) per payload size, keyed by bytes."""
    import numpy as np

    shared = Shared(max(sizes))
    result: dict[str, float] = {}
    for size in sizes:
        shared.reset()
        payload = shared.payload[:size]

        def ping(size: int = size, payload: np.ndarray = payload) -> float:
            pin(cores[0])
            mine = np.full(size, 1, np.uint8)
            got = np.empty(size, np.uint8)
            deadline = time.perf_counter() + 60
            trips = []
            for i in range(1, rounds + 1):
                t0 = time.perf_counter()
                if size:
                    np.copyto(payload, mine)
                shared.flags[0][0] = i
                spin_until(shared.flags[1], i, deadline)
                if size:
                    np.copyto(got, payload)
                trips.append(time.perf_counter() - t0)
            return median(trips[rounds // 10 :]) / 2

        def pong(size: int = size, payload: np.ndarray = payload) -> None:
            pin(cores[1])
            mine = np.full(size, 2, np.uint8)
            got = np.empty(size, np.uint8)
            deadline = time.perf_counter() + 60
            for i in range(1, rounds + 1):
                spin_until(shared.flags[0], i, deadline)
                if size:
                    np.copyto(got, payload)
                    np.copyto(payload, mine)
                shared.flags[1][0] = i

        result[str(size)] = fork_run([ping, pong])[0]
    return result


def measure_barrier(cores: Sequence[int], rounds: int) -> float:
    """Median seconds per barrier of ``len(cores)`` processes (flag barrier in shared memory)."""
    shared = Shared(64, n_flags=max(8, len(cores)))

    def member(rank: int) -> Callable[[], float]:
        def run() -> float:
            pin(cores[rank])
            flags = shared.flags
            mine = flags[rank]
            others = [flags[j] for j in range(len(cores)) if j != rank]
            deadline = time.perf_counter() + 60
            stamps = []
            for epoch in range(1, rounds + 1):
                mine[0] = epoch
                for other in others:
                    spin_until(other, epoch, deadline)
                stamps.append(time.perf_counter())
            gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
            return median(gaps[len(gaps) // 10 :])

        return run

    times = fork_run([member(r) for r in range(len(cores))])
    return max(times)


def measure_pipe_dispatch(cores: tuple[int, int], rounds: int) -> float:
    """Median round trip of a task id through a pipe to a worker process on another core."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    to_worker, from_master = ctx.Pipe()

    def worker() -> None:
        pin(cores[1])
        while True:
            message = from_master.recv_bytes()
            if message == b"stop":
                return
            from_master.send_bytes(message)

    proc = ctx.Process(target=worker, daemon=True)
    proc.start()
    pin(cores[0])
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
    return median(trips[rounds // 10 :])


def cell_task(cell: str, hidden: int, batch: int, steps: int) -> Callable[[], Any]:
    """One inference task of the registered cell ``cell`` (input = hidden, fp32) as the
    executor runs it (:func:`kernels.tasks.forward_task`: the kernel interprets the cell's
    declaration), products included."""
    from kernels.tasks import forward_task

    return forward_task(get_cell(cell), hidden, batch, steps, seed=5)


def split_member_cell(cell: str, hidden: int, members: int) -> Callable[[], Any]:
    """What the cost model charges one member of a ``layerwise`` step of ``cell`` apart from
    the group overhead (batch 1, input products hoisted), in process: its rows of each product
    on the recurrence, then the step as :func:`measure_elementwise` times it (every product's
    output a fill). So the group overhead keeps everything else: the exchange of the members'
    rows, the barriers, the skew and the wait for the slower member."""
    import numpy as np

    from kernels.params import row_block
    from kernels.products import matmul_xwt, split_rows
    from kernels.tasks import forward_task, recurrent_product_ops

    declared = get_cell(cell)
    on_recurrence = set(recurrent_product_ops(declared))

    def product(op: str, weight: Any) -> Callable[[Any, Any], None]:
        if op not in on_recurrence:
            return zero_product
        rows = split_rows(weight.shape[0], members)
        mine = row_block(weight, rows[0])
        block = np.zeros((1, rows[0].stop - rows[0].start), np.float32)

        def member_rows(a: Any, out: Any) -> None:
            matmul_xwt(a, mine, block)  # as the executor's member computes its rows
            zero_product(a, out)

        return member_rows

    return forward_task(declared, hidden, 1, 1, product=product, seed=6)


def measure_group(
    make_task: Callable[[], Callable[[], Any]], cores: Sequence[int], window_s: float
) -> list[float]:
    """Run the same task on ``cores`` at once for ``window_s``; median seconds per call on each."""
    shared = Shared(64, n_flags=max(8, len(cores) + 1))

    def member(rank: int) -> Callable[[], float]:
        def run() -> float:
            pin(cores[rank])
            task = make_task()
            task()
            shared.flags[rank + 1][0] = 1  # ready
            spin_until(shared.flags[0], 1, time.perf_counter() + 60)  # go
            clock = time.perf_counter
            end = clock() + window_s
            times: list[float] = []
            while clock() < end or len(times) < 3:
                t0 = clock()
                task()
                times.append(clock() - t0)
            return median(times)

        return run

    return run_together(shared, [member(r) for r in range(len(cores))])


def measure_corun(
    cores: Sequence[int], hidden: int, rounds: int, window_s: float
) -> dict[str, Any]:
    """Solo and co-running times of the LSTM cell, alternating rounds; slowdown per round."""
    make = lambda: cell_task("lstm", hidden, 1, 1)  # noqa: E731
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
        "slowdown": median(ratios),
    }
