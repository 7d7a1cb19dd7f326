"""The measuring child process (``python -m wpsim.measure.calibrate.child --child CONFIG``): runs
the measurements a configuration asks for and prints one JSON event per line."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from wpsim.cells import cell_names, gate_count, get_cell
from wpsim.measure.calibrate.compute import (
    ELEM_B,
    ELEM_B_QUICK,
    ELEM_BUDGET_S,
    ELEM_BUDGET_S_QUICK,
    ELEM_H,
    ELEM_H_QUICK,
    ELEM_STEPS,
    GEMM_CELLS,
    GEMM_H,
    GEMM_H_QUICK,
    GEMM_N,
    GEMM_N_QUICK,
    measure_elementwise,
    measure_gemm,
    measure_peak_gemm,
    measure_product_fixed,
)
from wpsim.measure.calibrate.memory import (
    measure_bandwidth,
    measure_dram_concurrent,
    measure_reuse_rates,
)
from wpsim.measure.calibrate.overheads import measure_executor_dispatch, measure_step_overhead
from wpsim.measure.calibrate.sync import (
    CORUN_HIDDEN,
    HANDOFF_SIZES,
    measure_barrier,
    measure_corun,
    measure_handoff,
    measure_pipe_dispatch,
)
from wpsim.measure.calibrate.timing import pin


# ---- the child process ----------------------------------------------------------------------------
def _emit(event: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


def child_main(config: dict[str, Any]) -> None:
    """Run every measurement (in a process whose BLAS is pinned to one thread); JSON lines out."""
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(1)
    import numpy as np

    quick = bool(config.get("quick"))
    cores = tuple(config["cores"])
    main_core = cores[0]
    pin(main_core)
    budget = 0.05 if quick else 0.25
    raw: dict[str, Any] = {}
    steps = [
        "peak GEMM",
        "GEMM efficiency",
        "element-wise efficiency",
        "cache and DRAM bandwidth",
        "hand-off ping-pong",
        "barrier",
        "dispatch overhead",
        "co-running slowdown",
        "per-step overhead",
    ]
    total = len(steps)

    def step(i: int, what: str) -> float:
        _emit("progress", message=f"[{i}/{total}] {what}")
        return time.perf_counter()

    t = step(1, "peak: 1024^3 fp32 GEMM, best of repeats")
    raw["peak_gemm"] = {"size": 1024, "seconds": measure_peak_gemm(1024, 0.3 if quick else 1.0)}
    _emit("done", seconds=time.perf_counter() - t)

    hs = GEMM_H_QUICK if quick else GEMM_H
    ns = GEMM_N_QUICK if quick else GEMM_N
    t = step(
        2, f"GEMM X(n,H) @ W(4H,H)^T, n = {','.join(map(str, ns))}, H = {','.join(map(str, hs))}"
    )
    raw["gemm_s"] = measure_gemm(hs, ns, budget)
    raw["product_fixed_s"] = measure_product_fixed(budget / 4)
    # the other cells' own matrices: a skinny product's rate depends on where its matrix fits
    raw["gemm_s_by_cell"] = {
        cell: measure_gemm(hs, ns, budget / 2, gate_count(get_cell(cell)))
        for cell in GEMM_CELLS
        if cell != "lstm"  # gemm_s is the LSTM's
    }
    # and with the weights hot: at most half the largest private cache (as its bandwidth is
    # measured), for the hidden sizes whose matrix is larger
    private = [c["size_bytes"] for c in config["caches"] if c["scope"] == "core"]
    if private:
        hot = max(private) // 2
        raw["gemm_hot_bytes"] = hot
        raw["gemm_s_hot"] = {
            cell: measure_gemm(
                [h for h in hs if gate_count(get_cell(cell)) * h * h * 4 > hot],
                ns,
                budget / 2,
                gate_count(get_cell(cell)),
                hot_bytes=hot,
            )
            for cell in GEMM_CELLS
        }
    _emit("done", seconds=time.perf_counter() - t)

    # the element-wise work and fixed costs of every registered cell, from its declaration
    cells = cell_names()
    eh = ELEM_H_QUICK if quick else ELEM_H
    eb = ELEM_B_QUICK if quick else ELEM_B
    share = (ELEM_BUDGET_S_QUICK if quick else ELEM_BUDGET_S) / len(cells)
    t = step(
        3,
        f"gate math of {', '.join(cells)}, H = {','.join(map(str, eh))}, "
        f"batch = {','.join(map(str, eb))}",
    )
    raw["elementwise_s_per_step"] = measure_elementwise(cells, eh, eb, ELEM_STEPS, share)
    _emit("done", seconds=time.perf_counter() - t)

    levels = [(c["name"], c["size_bytes"], c["scope"]) for c in config["caches"]]
    shared_size = max([c["size_bytes"] for c in config["caches"]] or [32 << 20])
    dram_bytes = max(4 * shared_size, (128 << 20) if quick else (256 << 20))
    t = step(
        4,
        f"read bandwidth of {', '.join(n for n, _, _ in levels)} and DRAM ({dram_bytes >> 20} MiB)",
    )
    raw["bandwidth"] = measure_bandwidth(levels, dram_bytes, budget, sweep=not quick)
    private = [(name, size) for name, size, scope in levels if scope == "core"]
    if private:  # the largest private level: the one that holds a layer's weights, or nearly
        name, size = private[-1]
        raw["reuse_rates"] = {"level": name, "Bps_by_ratio": measure_reuse_rates(size, budget)}
    if len(cores) > 1:
        # alternate one core alone and every core at once, so that drift cancels
        solo, together = [], []
        for _ in range(1 if quick else 3):
            solo.append(measure_dram_concurrent(cores[:1], dram_bytes, 0.2 if quick else 0.5)[0])
            together.append(measure_dram_concurrent(cores, dram_bytes, 0.2 if quick else 0.5))
        raw["bandwidth"]["DRAM"]["solo_rounds_Bps"] = solo
        raw["bandwidth"]["DRAM"]["concurrent_rounds_Bps"] = together
    _emit("done", seconds=time.perf_counter() - t)

    if len(cores) > 1:
        pair = (cores[0], cores[1])
        t = step(5, f"hand-off ping-pong between cores {pair[0]} and {pair[1]}")
        raw["handoff_s"] = measure_handoff(pair, HANDOFF_SIZES, 300 if quick else 2000)
        if config.get("cross_socket_core") is not None:
            far = (cores[0], int(config["cross_socket_core"]))
            raw["handoff_cross_socket_s"] = measure_handoff(far, (0,), 300 if quick else 2000)
        _emit("done", seconds=time.perf_counter() - t)
        t = step(6, f"barrier of {len(pair)} processes")
        raw["barrier_s"] = {"2": measure_barrier(pair, 500 if quick else 5000)}
        _emit("done", seconds=time.perf_counter() - t)
    else:
        _emit("progress", message="[5-6/9] hand-off and barrier: skipped (one core)")

    t = step(7, "dispatch overhead")
    executor = measure_executor_dispatch(
        (256,) if quick else (128, 256, 512),
        60 if quick else 150,
        2 if quick else 5,
        100 if quick else 300,
        len(cores),
    )
    pin(main_core)
    if executor is not None:
        raw["dispatch"] = {"method": "kernels.executor", **executor}
    elif len(cores) > 1:
        rt = measure_pipe_dispatch((cores[0], cores[1]), 300 if quick else 3000)
        raw["dispatch"] = {"method": "pipe round trip to a worker process", "dispatch_s": rt}
    else:
        raw["dispatch"] = {"method": "none (one core, no executor)", "dispatch_s": 0.0}
    _emit("done", seconds=time.perf_counter() - t)

    if len(cores) > 1:
        t = step(8, f"co-running LSTM cell H={CORUN_HIDDEN}: 1 core, then {len(cores)} at once")
        rounds, window = (2, 0.25) if quick else (5, 0.6)
        raw["corun"] = measure_corun(cores, CORUN_HIDDEN, rounds, window)
        if not quick:
            raw["corun_other_sizes"] = [measure_corun(cores, h, 3, 0.4) for h in (128, 1024)]
        _emit("done", seconds=time.perf_counter() - t)
    else:
        _emit("progress", message="[8/9] co-running slowdown: skipped (one core)")

    t = step(9, "per-step overhead of the cell math (H = 4, 32 steps per chunk)")
    raw["kernel_call_overhead_s"] = measure_step_overhead(cells, 32, budget)
    _emit("done", seconds=time.perf_counter() - t)

    raw["threadpool_info"] = [
        {
            "library": f"{entry.get('internal_api', '?')} {entry.get('version', '?')}",
            "file": entry.get("prefix", "?"),
            "architecture": entry.get("architecture") or "unknown",
            "threading_layer": entry.get("threading_layer") or "unknown",
            "num_threads": entry.get("num_threads"),
        }
        for entry in threadpool_info()
    ]
    raw["numpy"] = f"numpy {np.__version__}"
    _emit("result", raw=raw)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--child":
        child_main(json.loads(argv[1]))
        return 0
    print("usage: wpsim calibrate --out FILE [--quick]", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover - the measuring child
    sys.exit(main(sys.argv[1:]))
