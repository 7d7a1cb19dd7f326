"""Memory: bandwidth of the cache levels and DRAM, hit curves of weights that outgrow a cache,
and DRAM shared by several cores at once."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from wpsim.measure.calibrate.timing import Shared, median, pin, run_together, spin_until, time_call


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

        def run(
            mats: list[np.ndarray] = mats, ys: list[np.ndarray] = ys, x: np.ndarray = x
        ) -> None:
            for _ in range(8):
                for m, y in zip(mats, ys, strict=True):
                    np.dot(m, x, out=y)

        seconds = time_call(run, 10, budget_s) / 8
        out[f"{ratio:g}"] = sum(m.nbytes for m in mats) / seconds
    return out


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
    out: dict[str, dict[str, Any]] = {}
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


def measure_dram_concurrent(cores: Sequence[int], nbytes: int, budget_s: float) -> list[float]:
    """Per-core DRAM read rates (bytes/s) while every core in ``cores`` reads at once."""
    shared = Shared(64, n_flags=max(8, len(cores) + 1))

    def member(rank: int) -> Callable[[], float]:
        def run() -> float:
            import numpy as np

            from kernels.params import aligned

            pin(cores[rank])
            cols = 1024
            m = aligned(np.ones((max(1, nbytes // (4 * cols)), cols), np.float32))
            x = np.ones(cols, np.float32)
            y = np.empty(m.shape[0], np.float32)
            np.dot(m, x, out=y)
            shared.flags[rank + 1][0] = 1
            spin_until(shared.flags[0], 1, time.perf_counter() + 60)
            clock = time.perf_counter
            end = clock() + budget_s
            times: list[float] = []
            while clock() < end or len(times) < 3:
                t0 = clock()
                np.dot(m, x, out=y)
                times.append(clock() - t0)
            return m.nbytes / median(times)

        return run

    return run_together(shared, [member(r) for r in range(len(cores))])
