"""Compute: GEMM and GEMV rates by shape, the product's fixed cost, the peak, and the
element-wise (non-GEMM) work of a chunk task."""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from wpsim.cells import get_cell
from wpsim.measure.calibrate.timing import time_call, zero_product

#: The cells whose own GEMM grids a machine file holds (``gemm_by_n_h_by_cell``,
#: ``gemm_by_n_h_hot``), each timed with its ``W (G*H, H)`` (the LSTM's grid is
#: ``gemm_by_n_h``); a workload of another cell is charged by ``gemm_by_n_h``. The element-wise
#: tables and a kernel call's fixed costs are measured for every registered cell
#: (:func:`wpsim.cells.cell_names`).
GEMM_CELLS = ("rnn", "lstm", "gru")
#: Shapes measured (full run, quick run).
GEMM_N = (1, 2, 4, 8, 16, 32, 64, 256)


GEMM_N_QUICK = (1, 4, 16, 64, 256)


GEMM_H = (128, 256, 512, 1024)


GEMM_H_QUICK = (128, 512)


ELEM_H = (128, 256, 512, 1024)


ELEM_H_QUICK = (128, 512)


ELEM_B = (1, 4, 16)


ELEM_B_QUICK = (1, 16)


ELEM_STEPS = 8  # steps per chunk task in the element-wise measurement


#: Seconds of timing at each (H, batch) point of the element-wise measurement, shared by every
#: registered cell (full run, quick run): each cell gets its share, so that a registered cell
#: adds no more to a calibration than its kernels' set-up.
ELEM_BUDGET_S = 0.75


ELEM_BUDGET_S_QUICK = 0.15


def _timed_weight(rng: Any, rows: int, hidden: int) -> Any:
    """A random fp32 ``W (rows, hidden)`` as the kernels hold one (their order, aligned)."""
    import numpy as np

    from kernels.params import WEIGHT_ORDER, aligned

    w = rng.standard_normal((rows, hidden), dtype=np.float32)
    return aligned(np.asarray(w, order=WEIGHT_ORDER))


def measure_gemm(
    hs: Sequence[int],
    ns: Sequence[int],
    budget_s: float,
    gates: int = 4,
    hot_bytes: int | None = None,
) -> dict[str, float]:
    """Seconds per ``X (n, H) @ W^T`` with ``W (gates*H, H)`` fp32 stored as the kernels store
    it (:data:`kernels.params.WEIGHT_ORDER`) and computed as they compute it
    (:func:`kernels.products.matmul_xwt`), keyed ``"n,H"``.

    With ``hot_bytes``, a ``W`` larger than that is timed on as many of its rows as fit and the
    time scaled up by the row ratio: the rate of the product with its weights in the core's
    cache. The cost model charges reading weights from further out by its memory term (taking
    the larger of the two), so a rate measured on weights streamed from the shared cache would
    charge that twice over, and wrongly where the weights do fit, as one core's share of a
    split product does (GRU, H = 512: 71 us predicted for a split step that takes 56 us).
    """
    import numpy as np

    from kernels.params import aligned
    from kernels.products import matmul_xwt

    rng = np.random.default_rng(0)
    out: dict[str, float] = {}
    for h in hs:
        rows = gates * h
        if hot_bytes is not None:
            rows = max(1, min(rows, hot_bytes // (4 * h)))
        w = _timed_weight(rng, rows, h)
        for n in ns:
            x = aligned(rng.standard_normal((n, h), dtype=np.float32))
            y = aligned(np.empty((n, rows), np.float32))
            seconds = time_call(partial(matmul_xwt, x, w, y), 5, budget_s)
            out[f"{n},{h}"] = seconds * (gates * h) / rows
    return out


#: (gates, H, batch) of the products whose fixed part :func:`measure_product_fixed` times: whole
#: matrices of at most 1 MiB, so that half of one is no faster for fitting a cache the whole
#: does not fit.
PRODUCT_FIXED_SHAPES = ((1, 128, 16), (1, 256, 1), (4, 256, 1), (4, 128, 4), (3, 128, 2))


def measure_product_fixed(budget_s: float) -> dict[str, float]:
    """Seconds of a product call that do not shrink with its size: ``2 t(half) - t(whole)``
    for the recurrent products of :data:`PRODUCT_FIXED_SHAPES`, ``whole`` all rows of ``W``,
    ``half`` its first half as a layerwise member holds it (:func:`kernels.params.row_block`),
    both as the kernels compute them (:func:`kernels.products.matmul_xwt`). Keyed
    ``"gates,H,batch"``; the value the machine file gets is their median.
    """
    import numpy as np

    from kernels.params import aligned, row_block
    from kernels.products import matmul_xwt, split_rows

    rng = np.random.default_rng(7)
    out: dict[str, float] = {}
    for gates, h, batch in PRODUCT_FIXED_SHAPES:
        w = _timed_weight(rng, gates * h, h)
        half = row_block(w, split_rows(gates * h, 2)[0])
        x = aligned(rng.standard_normal((batch, h), dtype=np.float32))
        y_whole = aligned(np.empty((batch, w.shape[0]), np.float32))
        y_half = aligned(np.empty((batch, half.shape[0]), np.float32))
        whole_s = time_call(partial(matmul_xwt, x, w, y_whole), 20, budget_s)
        half_s = time_call(partial(matmul_xwt, x, half, y_half), 20, budget_s)
        out[f"{gates},{h},{batch}"] = 2 * half_s - whole_s
    return out


def measure_peak_gemm(size: int, budget_s: float) -> float:
    """Seconds of one square fp32 GEMM of ``size`` (the fastest kernel numpy offers)."""
    import numpy as np

    rng = np.random.default_rng(1)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    c = np.empty((size, size), np.float32)
    fn = lambda: np.dot(a, b, out=c)  # noqa: E731
    fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)  # the peak is the best the core does, not its typical rate


def measure_elementwise(
    cells: Sequence[str], hs: Sequence[int], bs: Sequence[int], steps: int, budget_s: float
) -> dict[str, float]:
    """Seconds per step of the non-GEMM work of a chunk task, keyed ``"cell,H,B"``: the task
    as the executor runs it (:func:`kernels.tasks.forward_task`, the kernel interpreting the
    cell's declaration: biases, nonlinearities, state updates), every product's output a fill
    (the products are timed apart, :func:`measure_gemm`), less the fills of the products off
    the recurrence (one pass over their (steps, B, width) outputs, which the GEMMs write in a
    real task)."""
    import numpy as np

    from kernels.arrays import batched_products
    from kernels.declared import CellKernel
    from kernels.tasks import forward_task

    out: dict[str, float] = {}
    for cell in cells:
        declared = get_cell(cell)
        for h in hs:
            kernel = CellKernel(declared, h, h, "float32")
            widths = [kernel.widths[op] for op in batched_products(kernel)]
            for b in bs:
                task = forward_task(declared, h, b, steps, product=lambda op, w: zero_product)
                filled = [np.empty((steps, b, width), np.float32) for width in widths]

                def fills(filled: list = filled) -> None:
                    for array in filled:
                        zero_product(None, array)

                fill_s = time_call(fills, 5, budget_s / 4) if filled else 0.0
                seconds = time_call(task, 5, budget_s) - fill_s
                out[f"{cell},{h},{b}"] = max(seconds, 1e-9) / steps
    return out


def elementwise_grid(
    per_step: dict[str, float], overheads: dict[str, dict[str, float]], steps: int
) -> dict[str, list[tuple[int, int, float]]]:
    """``{"cell,H,B": seconds per step}`` (chunks of ``steps`` steps) as ``{cell: [(H, B,
    seconds), ...]}`` sorted by H then B, net of the kernel call's fixed costs (``overheads``:
    :func:`measure_step_overhead`'s), which the cost model charges apart.

    Examples
    --------
    >>> calls = {"lstm": {"task_s": 8e-6, "step_s": 6e-6}}
    >>> elementwise_grid({"lstm,256,1": 2e-5, "lstm,128,1": 1e-5}, calls, 8)
    {'lstm': [(128, 1, 3e-06), (256, 1, 1.3e-05)]}
    """
    grid: dict[str, list[tuple[int, int, float]]] = {}
    for key, seconds in per_step.items():
        cell, h, b = key.split(",")
        fixed = overheads.get(cell, {"task_s": 0.0, "step_s": 0.0})
        net = seconds - fixed["step_s"] - fixed["task_s"] / steps
        grid.setdefault(cell, []).append((int(h), int(b), float(f"{max(net, 1e-9):.4g}")))
    return {cell: sorted(points) for cell, points in grid.items()}


def gemm_rates_by_shape(
    seconds_by_key: dict[str, float], gates: int
) -> dict[tuple[int, int], float]:
    """Flop rates of :func:`measure_gemm`'s timings (``W (gates*H, H)``), keyed ``(n, H)``.

    Examples
    --------
    >>> gemm_rates_by_shape({"2,8": 1e-6}, 4)
    {(2, 8): 1024000000.0}
    """
    rates = {}
    for key, seconds in seconds_by_key.items():
        n, h = (int(v) for v in key.split(","))
        rates[(n, h)] = 2.0 * n * gates * h * h / seconds
    return rates
