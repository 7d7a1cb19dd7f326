"""Real executor against PyTorch on the same machine, in one run.

For each workload of a small grid (stacked LSTM/GRU inference, L = 2-8 layers, H = 256-1024,
batch 1-4) it times, side by side:

* ``torch.nn.LSTM`` / ``torch.nn.GRU`` forward (``torch.no_grad``) with
  ``torch.set_num_threads(n)`` for n = 1..N (N = ``os.cpu_count()``), loaded with the SAME
  parameters and input (the outputs are compared, so both compute the same thing);
* the executor (:class:`kernels.executor.Executor`): ``sequential`` on 1 worker and
  ``wavefront`` on n = 1..N workers, with chunked input projections (``--chunk``, default 20
  steps per task: PyTorch runs one input GEMM per layer, a chunk of k steps runs one GEMM of k
  columns). Why 20: the 2-worker wavefront at T = 100 measured, 2026-11-30 on the 2-vCPU Xeon
  (min of 5), chunks 5 / 10 / 20 / 25: lstm L2 H256 B1 6.47 / 4.82 / 3.95 / 4.30 ms, lstm L4
  H512 B1 53.6 / 47.6 / 46.5 / 48.0, lstm L8 H256 B4 42.1 / 32.2 / 28.6 / 28.1, gru L4 H512
  B2 48.2 / 45.4 / 40.5 / 40.1, lstm L4 H1024 B1 194 / 192 / 182 / 182: fewer, larger input
  GEMMs and fewer round trips through the coordinator outweigh the longer pipeline fill;
* the same numpy kernels in-process (:func:`kernels.forward`, one BLAS thread), which separates
  the kernels' own speed from what the processes add.

Each executor configuration keeps its workers alive (:class:`kernels.executor.Executor`) and
its runs alternate with torch runs at the same core count, so both see the same machine load;
the table gives the minimum of ``--repeats`` such runs after a warm-up (worker start-up is not
timed: it is paid once per execution, not per forward pass), the ratio executor / torch at equal
core counts (lower is better for the executor), and the goal line compares the 2-worker
wavefront with 2-thread torch (goal: within 1.25x, geometric mean over the grid). The last lines
say how much CPU time other processes took during the run: this machine is shared, and a busy
run is flagged as unreliable.

Run: ``.venv/bin/python benchmarks/kernel.py`` (~2-3 min) or ``--quick`` (~20 s).

Measurements behind rules of the kernels and of calibration, as recorded when each rule was
chosen (the comments that carried them named no machine; rerun on yours to check):

* :class:`kernels.products.Recurrent`, one GEMV per batch row: with an OpenBLAS build lacking the
  small-matrix kernel and W (2048, 512) in Fortran order, a 2-row GEMM took 191 us a row, 2
  GEMVs 147; at 4 rows the GEMM took 102 us a row, GEMVs 148.
* ``kernels.group.INPUT_SPLIT_BY_TIME_MAX_BYTES``: an Elman layer at H = 128 with
  1024 rows (64 KiB of ``W_ih``) split by gate rows took 312-333 us on 2 workers, 172 us split
  by time steps; an H = 1024 LSTM layer's 16 steps split by time took 3.0 ms on each of 2
  workers, 1.8 ms split by rows.
* The split input projection's bias: added in place on a member's strided columns of ``gx``
  (1024 x 64) it took 95 us; into a contiguous buffer 23 us, and the copy into place 45 us.
* Calibration's executor overheads (:mod:`wpsim.measure.calibrate.overheads`): one execution
  of a sequence of H = 128 tasks ran at 39 instead of 25 us a task throughout (hence medians of
  three); with every core running a worker, the dispatch of H = 128 tasks varied from 48 to
  110 us between runs (hence four executions a point).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from kernels import forward, init_input, init_params  # noqa: E402
from kernels.executor import Executor  # noqa: E402
from wpsim.model.workload import Workload  # noqa: E402

GOAL_WORKERS = 2
GOAL_RATIO = 1.25
PAUSE_S = 0.01
BUSY_FRACTION = 0.05  # other processes' share of the CPU time above which a run is unreliable

#: (cell, layers, hidden, batch)
DEFAULT_GRID = [
    ("lstm", 2, 256, 1),
    ("lstm", 4, 512, 1),
    ("lstm", 8, 256, 4),
    ("lstm", 4, 1024, 1),
    ("lstm", 8, 512, 2),
    ("gru", 4, 512, 2),
    ("gru", 8, 256, 1),
    ("gru", 2, 1024, 4),
]
QUICK_GRID = [("lstm", 2, 256, 1), ("lstm", 4, 512, 1), ("gru", 2, 512, 2)]


class TorchRunner:
    """The equivalent torch module at a thread count, loaded with the same parameters."""

    def __init__(self, workload: Workload, params, x) -> None:
        import torch

        self.torch = torch
        cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[workload.cell]
        self.module = cls(workload.input, workload.hidden, workload.layers)
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in params.items()}
        self.module.load_state_dict(state)
        self.module.eval()
        self.x = torch.from_numpy(x)

    def run(self, threads: int) -> tuple[float, np.ndarray]:
        self.torch.set_num_threads(threads)
        with self.torch.no_grad():
            start = time.perf_counter()
            out, _ = self.module(self.x)
            elapsed = time.perf_counter() - start
        return elapsed, out.numpy()


def numpy_time(workload: Workload, params, x, chunk: int) -> float:
    """One in-process :func:`kernels.forward` (the executor's kernels, no processes)."""
    with threadpool_limits(limits=1, user_api="blas"):
        start = time.perf_counter()
        forward(workload, params, x, chunk=chunk)
        return time.perf_counter() - start


def interleaved(executor: Executor, torch: TorchRunner, threads: int, repeats: int, numpy_run=None):
    """Alternate executor, torch (and numpy) runs: all see the same machine load; minima."""
    executor.run(record=False)
    torch.run(threads)
    t_exec, t_torch, t_numpy = [], [], []
    for _ in range(repeats):
        t_exec.append(executor.run())
        time.sleep(PAUSE_S)  # let torch's OpenMP threads stop spinning before the next run
        elapsed, y_torch = torch.run(threads)
        t_torch.append(elapsed)
        time.sleep(PAUSE_S)
        if numpy_run is not None:
            t_numpy.append(numpy_run())
    return min(t_exec), min(t_torch), y_torch, min(t_numpy, default=float("nan"))


def dispatch_gap_s(result) -> float:
    """Median idle gap between consecutive tasks on one worker (dispatch + hand-off)."""
    tr = result.trace
    by_core: dict[tuple, list] = {}
    for cores, s, e in zip(tr.cores, tr.start_s, tr.end_s, strict=True):
        by_core.setdefault(cores, []).append((s, e))
    gaps = []
    for spans in by_core.values():
        spans.sort()
        gaps += [b[0] - a[1] for a, b in zip(spans, spans[1:], strict=False)]
    return statistics.median(gaps) if gaps else float("nan")


class CpuMeter:
    """CPU time other processes used while we ran (/proc/stat busy minus our own CPU time)."""

    def __init__(self) -> None:
        self.tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start = self._sample()

    def _sample(self):
        try:
            with open("/proc/stat") as handle:
                fields = [int(v) for v in handle.readline().split()[1:]]
        except OSError:
            return None
        busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
        t = os.times()
        own = t.user + t.system + t.children_user + t.children_system
        return busy / self.tick, own, time.perf_counter()

    def foreign_fraction(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None:
            return None
        busy = end[0] - self.start[0]
        own = end[1] - self.start[1]
        wall = end[2] - self.start[2]
        return max(0.0, busy - own) / (wall * (os.cpu_count() or 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="three small workloads (~20 s)")
    parser.add_argument("--seq-len", type=int, default=100, help="time steps (default 100)")
    parser.add_argument(
        "--chunk", type=int, default=20, help="executor steps per task (default 20)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed runs (default 7; 3 quick)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="largest worker/thread count N (default: the CPU count)",
    )
    args = parser.parse_args(argv)
    grid = QUICK_GRID if args.quick else DEFAULT_GRID
    repeats = args.repeats or (3 if args.quick else 7)
    counts = list(range(1, args.workers + 1))
    import torch

    print(
        f"executor vs torch {torch.__version__}: inference, T={args.seq_len}, chunk "
        f"{args.chunk}, min of {repeats} interleaved runs, N = 1..{args.workers} "
        f"(cpu_count {os.cpu_count()})"
    )
    head = f"{'workload':<22}{'numpy 1t':>10}{'torch 1t':>10}{'exec seq':>10}{'ratio':>7}"
    for n in counts:
        head += f"{f'torch {n}t':>10}{f'wave {n}w':>10}{'ratio':>7}"
    head += f"{'gap':>8}{'max|dy|':>9}"
    print(head)
    print("-" * len(head))
    goal_ratios = []
    meter = CpuMeter()
    started = time.perf_counter()
    for cell, layers, hidden, batch in grid:
        w = Workload(
            cell=cell,
            layers=layers,
            hidden=hidden,
            input=hidden,
            seq_len=args.seq_len,
            batch=batch,
            name=f"{cell} L{layers} H{hidden} B{batch}",
        )
        params, x = init_params(w), init_input(w)
        runner = TorchRunner(w, params, x)
        with Executor(w, "sequential", 1, chunk=args.chunk, params=params, x=x) as ex:
            t_seq, t_torch1, y_torch, t_np = interleaved(
                ex, runner, 1, repeats, partial(numpy_time, w, params, x, args.chunk)
            )
            worst = float(np.abs(ex.result().outputs["output"] - y_torch).max())
        row = (
            f"{w.name:<22}{t_np * 1e3:>8.1f}ms{t_torch1 * 1e3:>8.1f}ms{t_seq * 1e3:>8.1f}ms"
            f"{t_seq / t_torch1:>6.2f}x"
        )
        gap = float("nan")
        for n in counts:
            with Executor(w, "wavefront", n, chunk=args.chunk, params=params, x=x) as ex:
                t_wave, t_torch, y_torch, _ = interleaved(ex, runner, n, repeats)
                result = ex.result()
            worst = max(worst, float(np.abs(result.outputs["output"] - y_torch).max()))
            ratio = t_wave / t_torch
            if n == GOAL_WORKERS:
                goal_ratios.append(ratio)
            if n == counts[-1]:
                gap = dispatch_gap_s(result)
            row += f"{t_torch * 1e3:>8.1f}ms{t_wave * 1e3:>8.1f}ms{ratio:>6.2f}x"
        row += f"{gap * 1e6:>6.0f}us{worst:>9.1e}"
        print(row, flush=True)
    foreign = meter.foreign_fraction()
    print(
        f"\n(numpy 1t = kernels.forward in-process, one BLAS thread: the executor's kernels "
        f"without processes; ratio = executor / torch at the same core count, lower is better "
        f"for the executor; gap = median idle time between two tasks on one worker at N; "
        f"{time.perf_counter() - started:.0f} s in all)"
    )
    if foreign is not None:
        busy = foreign > BUSY_FRACTION
        note = "  WARNING: the machine was busy, times are unreliable" if busy else ""
        print(f"other processes used {100 * foreign:.0f}% of the CPU time during the run{note}")
    if goal_ratios:
        geo = math.exp(sum(math.log(r) for r in goal_ratios) / len(goal_ratios))
        verdict = "MET" if geo <= GOAL_RATIO else "NOT MET"
        if foreign is not None and foreign > BUSY_FRACTION:
            verdict = "inconclusive (the machine was busy; run again when it is idle)"
        print(
            f"goal: {GOAL_WORKERS}-worker wavefront within {GOAL_RATIO}x of {GOAL_WORKERS}-thread "
            f"torch: geometric mean {geo:.2f}x (best {min(goal_ratios):.2f}x, worst "
            f"{max(goal_ratios):.2f}x) -> {verdict}"
        )
    else:
        print(
            f"goal: {GOAL_WORKERS}-worker wavefront within {GOAL_RATIO}x of {GOAL_WORKERS}-thread "
            f"torch: not measured (fewer than {GOAL_WORKERS} workers)"
        )
    return 0


if __name__ == "__main__":
    from wpsim.interrupts import sigterm_as_interrupt

    # SIGTERM stops the executor's workers as Ctrl-C does, instead of killing this process alone
    with sigterm_as_interrupt():
        try:
            sys.exit(main())
        except KeyboardInterrupt:
            print(f"{Path(__file__).name}: interrupted", file=sys.stderr)
            sys.exit(130)
