"""Executor overheads: the dispatch cost of a task and the fixed cost of a recurrent step, as
the real executor (:mod:`kernels.executor`) pays them."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from wpsim.cells import get_cell
from wpsim.measure.calibrate.sync import cell_task, split_member_cell
from wpsim.measure.calibrate.timing import median, time_call, zero_product


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
    across all workers): makespan per task minus :func:`split_member_cell`, the overhead of a
    whole-socket group task, by a member's time (``whole_socket_group_points``).
    """
    try:
        from kernels import executor
    except ImportError:
        return None
    if not hasattr(executor, "execute"):
        return None
    from wpsim.model.workload import Workload

    if hasattr(os, "sched_setaffinity"):  # the executor pins its own worker; the coordinator floats
        try:
            os.sched_setaffinity(0, range(os.cpu_count() or 1))
        except OSError:
            pass

    from wpsim.policies import get_policy

    def one(
        workload: Workload,
        cell_s: float,
        workers: int = 1,
        policy: str = "",
        sequence: bool = True,
    ) -> dict[str, Any]:
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
            result = executor.execute(workload, chosen, workers, chunk=1, repeats=repeats, warmup=1)
        finally:
            if saved is None:
                del os.environ[executor.SEQUENCE_ENV]
            else:
                os.environ[executor.SEQUENCE_ENV] = saved
        trace = result.trace
        assert trace is not None  # (the executor records one)
        gaps: list[float] = []
        for worker in range(workers):
            mine = sorted(
                (trace.start_s[i], trace.end_s[i])
                for i in range(len(trace))
                if trace.cores[i][0] == worker
            )
            gaps += [b[0] - a[1] for a, b in zip(mine, mine[1:], strict=False)]
        durations = [e - s for s, e in zip(trace.start_s, trace.end_s, strict=True)]
        gap, duration = median(gaps), median(durations)
        # tasks one after the other on each worker: independent instances share the workers out
        in_series = workers if policy == "multiprogram" else 1
        return {
            "hidden": float(workload.hidden),
            "workers": float(workers),
            "policy": policy,
            "n_tasks": float(result.n_tasks),
            "makespan_s": float(result.makespan_s),
            "median_gap_s": gap,
            "median_task_s": duration,
            "cell_in_process_s": cell_s,
            "median_based_dispatch_s": gap + max(duration - cell_s, 0.0),
            "dispatch_s": max(float(result.makespan_s) * in_series / result.n_tasks - cell_s, 0.0),
        }

    def lstm(h: int) -> Workload:
        return Workload(
            name=f"calibrate: lstm H={h}", cell="lstm", layers=1, hidden=h, input=h, seq_len=seq_len
        )

    def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
        """The execution with the median overhead, and every execution's overhead."""
        chosen = dict(sorted(runs, key=lambda r: r["dispatch_s"])[len(runs) // 2])
        chosen["runs_dispatch_s"] = [r["dispatch_s"] for r in runs]
        return chosen

    # each task through the coordinator (several groups), then the order handed out at once;
    # three executions each, interleaved, and their median: now and then one execution runs
    # about 1.5x slower throughout (benchmarks/kernel.py records a case), and the median drops it
    dynamic_runs: dict[int, list] = {h: [] for h in hiddens}
    sequence_runs: dict[int, list] = {h: [] for h in hiddens}
    for _ in range(3):
        for h in hiddens:
            cell_s = time_call(cell_task("lstm", h, 1, 1), 20, 0.2)  # next to its runs: it drifts
            dynamic_runs[h].append(one(lstm(h), cell_s, sequence=False))
            sequence_runs[h].append(one(lstm(h), cell_s))
    graphs = [median_run(dynamic_runs[h]) for h in hiddens]
    sequences = [median_run(sequence_runs[h]) for h in hiddens]
    trivial = Workload(
        name="calibrate: trivial cells",
        cell="rnn",
        layers=1,
        hidden=1,
        input=1,
        seq_len=trivial_tasks,
    )
    out: dict[str, Any] = {
        "graphs": graphs,
        "trivial": one(trivial, time_call(_trivial_cell(), 20, 0.2), sequence=False),
        "dispatch_s": median([g["dispatch_s"] for g in graphs]),
        "sequence": {"graphs": sequences},
    }
    if all_busy > 1:
        # Every core runs a worker, so the coordinator has no free core. The value varies from
        # run to run (it depends on where the OS puts the coordinator, by a factor of about 2),
        # hence four executions per point (two per size) and medians. It also differs
        # between cells shorter than a worker's spin window (kernels.executor DEFAULT_SPIN_US,
        # 50 us: H = 128) and cells that outlast it (H = 256, 384), as most real cells do: two
        # points of a table by task time.
        def busy_point(sizes: Sequence[int], kind: str) -> dict[str, Any]:
            runs = [
                one(lstm(h), time_call(cell_task("lstm", h, 1, 1), 20, 0.3), all_busy)
                for h in sizes
                for _ in range(max(2, 4 // len(sizes)))
            ]
            return {
                "kind": kind,
                "task_s": median([r["cell_in_process_s"] for r in runs]),
                "dispatch_s": median([r["dispatch_s"] for r in runs]),
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
            split = Workload(
                name=f"calibrate: split {cell} steps H={h}",
                cell=cell,
                layers=1,
                hidden=h,
                input=h,
                seq_len=3 * seq_len,
            )
            reference = split_member_cell(cell, h, all_busy)
            runs = [
                one(split, time_call(reference, 20, 0.2), all_busy, "layerwise") for _ in range(5)
            ]
            group_points.append({**median_run(runs), "cell": cell})
        out["whole_socket_group_points"] = group_points
    return out


def measure_step_overhead(
    cells: Sequence[str], steps: int, budget_s: float
) -> dict[str, dict[str, float]]:
    """Fixed per-task and per-step costs of each cell's kernel call: a cell task as the
    executor runs it (:func:`kernels.tasks.forward_task`, the kernel interpreting the cell's
    declaration) at H = 4, batch 1, with 1 and with ``steps`` steps per chunk, median seconds.
    At this size the arithmetic is negligible and what remains is interpreter and ufunc
    dispatch: the per-step cost is the slope between the two, the per-task cost the intercept.
    Measured as :func:`measure_elementwise` runs a task: every product's output a fill, because
    the cost model charges the products by the GEMM efficiencies, whose timings already hold
    their numpy calls. Returns ``{cell: {"task_s": ..., "step_s": ...}}``."""
    from kernels.tasks import forward_task

    out = {}
    for cell in cells:
        seconds = {}
        for k in (1, steps):
            run = forward_task(get_cell(cell), 4, 1, k, product=lambda op, w: zero_product)
            seconds[k] = time_call(run, 20, budget_s / 2)
        step_s = max(seconds[steps] - seconds[1], 0.0) / (steps - 1)
        out[cell] = {"task_s": max(seconds[1] - step_s, 0.0), "step_s": step_s}
    return out


def _trivial_cell() -> Callable[[], Any]:
    """One step of an Elman RNN cell of 1 unit at batch 1 (a few microseconds)."""
    from kernels.tasks import forward_task

    return forward_task(get_cell("rnn"), 1, 1, 1)
