"""Declared cells (:mod:`kernels.declared`, interpreted from the declaration) against today's
hand-written kernels (:mod:`kernels.cells`), side by side in one run.

For the Elman RNN, LSTM and GRU at a grid of hidden sizes and batches, one chunk of ``--steps``
steps of one layer-direction, float32, one BLAS thread (as the executor's workers run):

* inference: ``CellKernel.forward(save=False)`` against ``cell_chunk_forward(save=False)``;
* training: forward with activations saved, the chunk's backward and every weight gradient:
  ``forward`` + ``backward`` against ``cell_chunk_forward`` + ``cell_chunk_backward`` +
  ``layer_weight_grads``.

Both compute the same numbers (checked here at each configuration). The table gives the minimum
of ``--repeats`` alternating runs after a warm-up, and the ratio declared / hand-written (below 1:
the declared kernel is faster); the last lines give the geometric means.

Run: ``.venv/bin/python benchmarks/cells.py`` (~1 min) or ``--quick`` (~10 s).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from kernels.cells import (  # noqa: E402
    cell_chunk_backward,
    cell_chunk_forward,
    layer_weight_grads,
)
from kernels.declared import CellKernel, init_params  # noqa: E402
from wpsim.cells import get_cell  # noqa: E402

#: (hidden, batch)
GRID = [(32, 1), (128, 1), (128, 16), (512, 1), (512, 8), (1024, 4)]
QUICK_GRID = [(32, 1), (256, 4)]
CELLS = ("rnn", "lstm", "gru")


def best_of(repeats: int, *fns) -> list[float]:
    """Minimum time of each function over ``repeats`` alternating rounds (after a warm-up)."""
    for fn in fns:
        fn()
    best = [math.inf] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - start)
    return best


def measure(cell: str, hidden: int, batch: int, steps: int, repeats: int) -> tuple[float, ...]:
    kernel = CellKernel(get_cell(cell), hidden, hidden, "float32")
    params = init_params(kernel, seed=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps, batch, hidden)).astype(np.float32)
    h0 = np.zeros((batch, hidden), np.float32)
    c0 = h0.copy() if cell == "lstm" else None
    dy = rng.standard_normal((steps, batch, hidden)).astype(np.float32)

    def declared_inference():
        return kernel.forward(params, x, save=False).output

    def hand_inference():
        return cell_chunk_forward(cell, params, x, h0, c0, save=False)[0]

    def declared_training():
        run = kernel.forward(params, x)
        return kernel.backward(params, run.saved, dy).dparams

    def hand_training():
        h_seq, _, _, saved = cell_chunk_forward(cell, params, x, h0, c0)
        _, _, _, gates = cell_chunk_backward(cell, params, saved, dy)
        return layer_weight_grads(cell, x, h_seq, h0, gates["dgates_ih"], gates["dgates_hh"])

    np.testing.assert_allclose(declared_inference(), hand_inference(), rtol=1e-4, atol=1e-5)
    ours, theirs = declared_training(), hand_training()
    for key in theirs:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-3, atol=1e-3, err_msg=key)
    return tuple(
        best_of(repeats, declared_inference, hand_inference, declared_training, hand_training)
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per chunk (default 20)")
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds (default 7)")
    parser.add_argument("--quick", action="store_true", help="a small grid, fewer repeats")
    args = parser.parse_args(argv)
    grid = QUICK_GRID if args.quick else GRID
    repeats = 3 if args.quick else args.repeats
    print(f"one layer-direction, {args.steps} steps, float32, 1 BLAS thread; min of {repeats}")
    print(
        f"{'cell':<5} {'H':>5} {'B':>3} | {'inference ms':>21} {'ratio':>6} | "
        f"{'training ms':>21} {'ratio':>6}"
    )
    print(f"{'':<15}| {'declared':>10} {'hand':>10} {'':>6} | {'declared':>10} {'hand':>10}")
    ratios: dict[str, list[float]] = {"inference": [], "training": []}
    with threadpool_limits(1):
        for cell in CELLS:
            for hidden, batch in grid:
                di, hi, dt, ht = measure(cell, hidden, batch, args.steps, repeats)
                ratios["inference"].append(di / hi)
                ratios["training"].append(dt / ht)
                print(
                    f"{cell:<5} {hidden:>5} {batch:>3} | {di * 1e3:>10.3f} {hi * 1e3:>10.3f} "
                    f"{di / hi:>6.2f} | {dt * 1e3:>10.3f} {ht * 1e3:>10.3f} {dt / ht:>6.2f}"
                )
    for phase, values in ratios.items():
        mean = math.exp(sum(math.log(v) for v in values) / len(values))
        print(
            f"{phase}: declared / hand-written, geometric mean {mean:.2f} "
            f"(min {min(values):.2f}, max {max(values):.2f})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
