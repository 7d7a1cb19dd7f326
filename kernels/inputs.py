"""The layer input a hoisted product reads, for any declared cell.

A product of the layer input (:func:`wpsim.cells.input_products`) multiplies ``x``, or runs of
the input at earlier steps carried by states (QRNN's window ``[x_t, x_{t-1}]``), so it can run
for many steps at once outside the cell's kernel: in an ``input_gemm`` task for every step, or
shared by the members of a split group (:mod:`kernels.tasks`). Here: the operand as runs of the
input (:func:`input_operand`), assembled from the input and the states' initial values
(:func:`assemble`), and the operand's gradient sent back to the input's steps and to the
gradients of the states as they entered (:func:`send_back`).

Steps are in time order; "before" means in processing order (the step after, in time, for a
reverse direction).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from kernels.declared import CellKernel
from wpsim.cells import Op, Operand, State

__all__ = ["InputPiece", "assemble", "input_operand", "rows_needed", "send_back"]


@dataclass(frozen=True)
class InputPiece:
    """A run of ``width`` columns of a hoisted product's operand, from ``lo``: the columns
    ``x_lo..`` of the layer input ``lag`` steps before (in processing order). Where that step
    is before the sequence's first, they are the initial value of a state: ``chain[j]`` (the
    state and the column its run starts at) for the j-th step processed."""

    lo: int
    width: int
    lag: int
    x_lo: int
    chain: tuple[tuple[str, int], ...]


def input_operand(kernel: CellKernel, op: str) -> tuple[InputPiece, ...]:
    """The operand of the hoisted product ``op`` as runs of the layer input (the analysis'
    rule admits ``x``, the states that carry earlier inputs and ``concat``/``identity`` of them).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> for piece in input_operand(CellKernel(get_cell("qrnn", window=2), 4, 3), "gx"):
    ...     print(piece.lo, piece.width, piece.lag, piece.chain)
    0 3 0 ()
    3 3 1 (('xp', 0),)
    """
    plan = kernel.plan
    cell = plan.cell

    def restrict(pieces: list[InputPiece], lo: int, hi: int, at: int) -> list[InputPiece]:
        """The pieces within columns ``lo..hi``, moved to start at ``at``."""
        found = []
        for p in pieces:
            start, stop = max(p.lo, lo), min(p.lo + p.width, hi)
            if start < stop:
                shift = start - p.lo
                chain = tuple((s, c + shift) for s, c in p.chain)
                found.append(
                    InputPiece(at + start - lo, stop - start, p.lag, p.x_lo + shift, chain)
                )
        return found

    def operand(a: Operand) -> list[InputPiece]:
        span = plan.region(a) or (0, plan.widths[a.name])
        return restrict(of_value(a.name), *span, 0)

    def of_value(name: str) -> list[InputPiece]:
        item = cell.lookup(name)
        if name == "x":
            return [InputPiece(0, plan.widths["x"], 0, 0, ())]
        if isinstance(item, State):
            return [
                InputPiece(p.lo, p.width, p.lag + 1, p.x_lo, ((name, p.lo), *p.chain))
                for p in of_value(item.next)
            ]
        assert isinstance(item, Op) and item.kind in ("concat", "identity"), name
        if item.kind == "identity":
            return operand(item.args[0])
        pieces = []
        for a, (lo, _) in zip(item.args, plan.columns[name], strict=True):
            pieces += [InputPiece(p.lo + lo, p.width, p.lag, p.x_lo, p.chain) for p in operand(a)]
        return pieces

    return tuple(operand(plan.ops[op].args[1]))


def assemble(
    pieces: tuple[InputPiece, ...],
    read: Callable[[int, int], np.ndarray],
    initial: Callable[[str], np.ndarray | None],
    reverse: bool,
    a: int,
    b: int,
    steps: int,
    out: np.ndarray,
) -> np.ndarray:
    """Fill ``out`` (``b - a``, B, width) with the operand at steps ``a..b-1`` of a sequence of
    ``steps``: ``read(lo, hi)`` gives the layer input at steps ``lo..hi-1``, ``initial(state)``
    a state's initial value (None: zeros); a run ``lag`` steps back before the sequence's first
    step is the initial value of the state its chain names.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> pieces = input_operand(CellKernel(get_cell("qrnn", window=2), 4, 1), "gx")
    >>> x = np.arange(3.0).reshape(3, 1, 1)
    >>> out = assemble(pieces, lambda lo, hi: x[lo:hi], lambda s: None, False, 0, 3, 3,
    ...                np.empty((3, 1, 2)))
    >>> out[:, 0].tolist()  # [x_t, x_{t-1}], x_{-1} = 0
    [[0.0, 0.0], [1.0, 0.0], [2.0, 1.0]]
    """
    for p in pieces:
        cols, xc = slice(p.lo, p.lo + p.width), slice(p.x_lo, p.x_lo + p.width)
        if not reverse:  # step t reads the input at t - lag, the initial states before step lag
            first = max(a, p.lag)
            if first < b:
                out[first - a :, :, cols] = read(first - p.lag, b - p.lag)[..., xc]
            before = range(a, min(b, p.lag))
        else:  # processed backwards: step t reads the input at t + lag
            last = min(b, steps - p.lag)
            if a < last:
                out[: last - a, :, cols] = read(a + p.lag, last + p.lag)[..., xc]
            before = range(max(a, steps - p.lag), b)
        for t in before:
            state, lo = p.chain[steps - 1 - t if reverse else t]
            given = initial(state)
            out[t - a, :, cols] = 0.0 if given is None else given[:, lo : lo + p.width]
    return out


def rows_needed(
    pieces: tuple[InputPiece, ...], s: int, e: int, a: int, b: int, reverse: bool
) -> tuple[int, int]:
    """The steps of the operand's gradient that the input's gradient at steps ``s..e-1`` of a
    task over ``a..b-1`` reads: those steps, and up to the longest lag after them."""
    lag = max(p.lag for p in pieces)
    return (max(s - lag, a), e) if reverse else (s, min(e + lag, b))


def send_back(
    pieces: tuple[InputPiece, ...],
    grad: np.ndarray,
    lo: int,
    dx: np.ndarray,
    entering: Callable[[str], np.ndarray] | None,
    s: int,
    e: int,
    a: int,
    b: int,
    reverse: bool,
) -> None:
    """Add the operand's gradient ``grad`` (at steps ``lo..``, :func:`rows_needed`) to the
    input's gradient ``dx`` at steps ``s..e-1`` of a task over ``a..b-1``: each run to the
    input's step it was. A run that was a state as the task's first step entered (before step
    ``a`` in processing order) goes to ``entering(state)`` (B, width), when given (the
    holder of the first step processed gives it).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> pieces = input_operand(CellKernel(get_cell("qrnn", window=2), 4, 1), "gx")
    >>> grad, dx, xp0 = np.ones((3, 1, 2)), np.zeros((3, 1, 1)), np.zeros((1, 1))
    >>> send_back(pieces, grad, 0, dx, lambda s: xp0, 0, 3, 0, 3, False)
    >>> dx[:, 0, 0].tolist(), xp0.tolist()  # x_t's and, a step later, x_{t-1}'s
    ([2.0, 2.0, 1.0], [[1.0]])
    """
    hi = lo + len(grad)
    for p in pieces:
        cols, xc = slice(p.lo, p.lo + p.width), slice(p.x_lo, p.x_lo + p.width)
        # the input at step t gets the gradient of the operand at t + lag (t - lag processed
        # backwards)
        shift = -p.lag if reverse else p.lag
        t0, t1 = max(s, lo - shift), min(e, hi - shift)
        if t0 < t1:
            dx[t0:t1, :, xc] += grad[t0 + shift - lo : t1 + shift - lo, :, cols]
        if entering is None:
            continue
        entered = range(max(a, b - p.lag), b) if reverse else range(a, min(b, a + p.lag))
        for u in entered:
            state, col = p.chain[b - 1 - u if reverse else u - a]
            entering(state)[:, col : col + p.width] += grad[u - lo, :, cols]
