"""Longest paths through a layer x time grid of tasks, in time independent of its length.

A *row* is the tasks of one (instance, layer, direction) of one kind, indexed by their chunk
``c = 0 .. n-1``: a recurrent chain running forward (``c`` increasing) or in reverse, or tasks
with no chain between them (an output layer). Within a row the tasks fall into three classes
by cost, the first (``c = 0``), the middle ones and the last (``c = n - 1``): a chain's first
and last tasks lack a recurrent predecessor or successor, the last chunk may be short, the
first task of a layer is cold. Rows depend on each other chunk by chunk (layer ``l`` at ``c``
needs layer ``l - 1`` at ``c``) or as a whole (a weight gradient needs all of a row).

The finish time ``F(c)`` of a row's task at chunk ``c`` is then, on the middle chunks
``1 <= c <= n - 2``, the maximum of a few affine functions of ``c`` (*pieces*): unrolling the
chain ``F(c) = x + max(F(c - 1), V(c))`` over a vertical input ``V(c) = a + b c`` gives, for
each ``c``, the best of entering the row at ``s = c`` or at ``s = 1`` (the expression is affine
in ``s``), ``a + x + b c`` or ``a + b + x c``; a reverse chain likewise enters at ``s = c`` or
``s = n - 2``. A slope is therefore always the middle cost ``x`` of some chain row (plus or
minus): a piece is an intercept and a *symbol* naming that slope, and pieces with the same
symbol merge by taking the larger intercept. The first and last chunks are kept as explicit
values. So every row costs ``O(rows)`` pieces whatever ``n`` is, and a graph ``O(rows^2)``.

All values are numpy arrays over *points* (independent evaluations with the same rows:
different sizes, chunks, machines' numbers), so one pass evaluates a block of points. With
``track`` (a block of one point) every value also records the tasks it adds up, as
``{task class: count}``, for the break-down by cause (:mod:`wpsim.breakdown`).

Exactness: in exact arithmetic the result equals the longest path of the graph; in floating
point it differs from a task-by-task sum by rounding (about ``1e-16`` relative per task).

Examples
--------
Two layers of three tasks, costs 1 and 2 (the second layer is slower): the path runs up the
first column and along the slow row, ``1 + 2 * 3 = 7``.

>>> import numpy as np
>>> grid = Grid(np.array([3]), track=False)
>>> one, two = np.array([1.0]), np.array([2.0])
>>> low = grid.chain(grid.zero(), (one, one, one), forward=True)
>>> high = grid.chain(low, (two, two, two), forward=True)
>>> float(grid.row_max(high)[0][0])
7.0
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

#: the symbol of slope 0 (a constant: a single task seen by every chunk of a row)
ZERO = 0


class Why:
    """The tasks a value adds up: its parent's, plus ``count`` tasks of class ``key`` (a linked
    list, so that extending a value costs O(1); :meth:`counts` walks it once at the end)."""

    __slots__ = ("parent", "key", "count")

    def __init__(self, parent: Why | None, key: Hashable | None, count: float) -> None:
        self.parent = parent
        self.key = key
        self.count = float(count)

    def counts(self) -> dict[Hashable, float]:
        """``{task class: number of tasks}`` along the path."""
        out: dict[Hashable, float] = {}
        node: Why | None = self
        while node is not None:
            if node.key is not None and node.count:
                out[node.key] = out.get(node.key, 0.0) + node.count
            node = node.parent
        return {key: count for key, count in out.items() if count}


def _extend(why: Why | None, key: Hashable | None, count: float) -> Why | None:
    return None if why is None else Why(why, key, count)


@dataclass(slots=True)
class Piece:
    """``F(c) >= intercept + slope(symbol) * c`` on the middle chunks."""

    intercept: np.ndarray
    symbol: int
    why: Why | None


@dataclass(slots=True)
class RowFn:
    """Finish times of a row's tasks: ``first`` (c = 0), ``last`` (c = n - 1; the same task as
    ``first`` when n = 1) and ``pieces`` on ``1 <= c <= n - 2`` (none unless n >= 3)."""

    first: np.ndarray
    last: np.ndarray
    pieces: list[Piece]
    first_why: Why | None = None
    last_why: Why | None = None


class Grid:
    """The longest-path algebra for a block of points with ``n`` chunks each.

    Parameters
    ----------
    n : numpy.ndarray
        Chunks per row at each point; all at least 3, all 2, or all 1 (the three shapes a row
        can have: with middle chunks, two ends, one task).
    track : bool
        Record the tasks behind every value (a block of one point only).
    """

    def __init__(self, n: np.ndarray, track: bool = False) -> None:
        n = np.asarray(n)
        self.n = n
        shapes = {int(min(int(v), 3)) for v in np.unique(n)}
        if len(shapes) != 1:
            raise ValueError("a block's points must all have n >= 3, all n == 2 or all n == 1")
        self.shape = shapes.pop()
        if track and n.size != 1:
            raise ValueError("track needs a block of one point")
        self.track = track
        self.zeros = np.zeros(n.shape)
        #: slope of each symbol, and the task class (with its sign) whose count it multiplies
        self.slopes: list[np.ndarray] = [self.zeros]
        self.slope_keys: list[tuple[Hashable | None, float]] = [(None, 0.0)]
        self._mid = n - 2  # the last middle chunk

    # ---- symbols and values -----------------------------------------------------------------
    def symbol(self, slope: np.ndarray, key: Hashable | None, sign: float) -> int:
        """A new symbol: slope ``slope`` (= ``sign`` times the cost of task class ``key``)."""
        self.slopes.append(slope)
        self.slope_keys.append((key, sign))
        return len(self.slopes) - 1

    def _root(self) -> Why | None:
        return Why(None, None, 0.0) if self.track else None

    def zero(self) -> RowFn:
        """A row finishing at 0 everywhere (the vertical input of a row with none)."""
        root = self._root()
        pieces = [Piece(self.zeros, ZERO, root)] if self.shape == 3 else []
        return RowFn(self.zeros, self.zeros, pieces, root, root)

    def const(self, value: np.ndarray, why: Why | None) -> RowFn:
        """Every chunk sees ``value`` (a single task all of a row depends on)."""
        pieces = [Piece(value, ZERO, why)] if self.shape == 3 else []
        return RowFn(value, value, pieces, why, why)

    def _at(self, piece: Piece, c: np.ndarray | int) -> tuple[np.ndarray, Why | None]:
        """A piece's value at chunk ``c``, and its tasks."""
        value = piece.intercept + self.slopes[piece.symbol] * c
        if piece.why is None:
            return value, None
        key, sign = self.slope_keys[piece.symbol]
        return value, _extend(piece.why, key, sign * float(np.asarray(c).reshape(-1)[0]))

    def best(
        self, candidates: Sequence[tuple[np.ndarray, Why | None]]
    ) -> tuple[np.ndarray, Why | None]:
        """The elementwise maximum of values (the first of equals for the record)."""
        value, why = candidates[0]
        for other, other_why in candidates[1:]:
            if self.track and bool(np.any(other > value)):
                why = other_why
            value = np.maximum(value, other)
        return value, why

    def interior(self, fn: RowFn, c: np.ndarray | int) -> tuple[np.ndarray, Why | None]:
        """``F(c)`` for a middle chunk ``c`` (n >= 3)."""
        return self.best([self._at(piece, c) for piece in fn.pieces])

    # ---- combining rows ---------------------------------------------------------------------
    def vmax(self, fns: Sequence[RowFn]) -> RowFn:
        """The chunk-by-chunk maximum of rows (a task's predecessors in other rows), in order:
        the first of equal values is kept."""
        if len(fns) == 1:
            return fns[0]
        first, first_why = self.best([(fn.first, fn.first_why) for fn in fns])
        last, last_why = self.best([(fn.last, fn.last_why) for fn in fns])
        return RowFn(
            first, last, self._merge([p for fn in fns for p in fn.pieces]), first_why, last_why
        )

    def _merge(self, pieces: list[Piece]) -> list[Piece]:
        """Pieces of one symbol merged (larger intercept), then those no larger than another
        anywhere on the middle chunks dropped (affine: compared at both ends)."""
        by_symbol: dict[int, Piece] = {}
        for piece in pieces:
            kept = by_symbol.get(piece.symbol)
            if kept is None:
                by_symbol[piece.symbol] = piece
            else:
                why = kept.why
                if self.track and bool(np.any(piece.intercept > kept.intercept)):
                    why = piece.why
                by_symbol[piece.symbol] = Piece(
                    np.maximum(kept.intercept, piece.intercept), piece.symbol, why
                )
        merged = list(by_symbol.values())
        if len(merged) < 2:
            return merged
        ends = [
            (p.intercept + self.slopes[p.symbol], p.intercept + self.slopes[p.symbol] * self._mid)
            for p in merged
        ]
        keep = []
        for i, (lo, hi) in enumerate(ends):
            dominated = False
            for j, (other_lo, other_hi) in enumerate(ends):
                if j == i or not (np.all(other_lo >= lo) and np.all(other_hi >= hi)):
                    continue
                equal = np.all(other_lo == lo) and np.all(other_hi == hi)
                if not equal or j < i:  # equal pieces: the first stays
                    dominated = True
                    break
            if not dominated:
                keep.append(merged[i])
        return keep

    # ---- rows -------------------------------------------------------------------------------
    def add(self, v: RowFn, costs: tuple, keys: tuple = (None, None, None)) -> RowFn:
        """A row without a chain: task ``c`` starts when ``V(c)`` is done and costs
        ``costs[0]`` (c = 0), ``costs[1]`` (middle) or ``costs[2]`` (c = n - 1)."""
        x0, x, xl = costs
        k0, k, kl = keys
        first = v.first + x0
        if self.shape == 1:
            why = _extend(v.first_why, k0, 1.0)
            return RowFn(first, first, [], why, why)
        pieces = [Piece(p.intercept + x, p.symbol, _extend(p.why, k, 1.0)) for p in v.pieces]
        return RowFn(
            first, v.last + xl, pieces, _extend(v.first_why, k0, 1.0), _extend(v.last_why, kl, 1.0)
        )

    def chain(
        self, v: RowFn, costs: tuple, keys: tuple = (None, None, None), forward: bool = True
    ) -> RowFn:
        """A recurrent chain: task ``c`` needs ``V(c)`` and the previous task of the chain
        (``c - 1`` forward, ``c + 1`` in reverse); costs and keys as in :meth:`add`."""
        x0, x, xl = costs
        k0, k, kl = keys
        if self.shape == 1:
            return self.add(v, costs, keys)
        if self.shape == 2:
            if forward:
                first, first_why = v.first + x0, _extend(v.first_why, k0, 1.0)
                before, why = self.best([(v.last, v.last_why), (first, first_why)])
                return RowFn(first, before + xl, [], first_why, _extend(why, kl, 1.0))
            last, last_why = v.last + xl, _extend(v.last_why, kl, 1.0)
            before, why = self.best([(v.first, v.first_why), (last, last_why)])
            return RowFn(before + x0, last, [], _extend(why, k0, 1.0), last_why)
        sign = 1.0 if forward else -1.0
        own = self.symbol(x if forward else -x, k, sign)
        pieces = []
        for p in v.pieces:  # enter at s = c (the vertical input first, as the graph prefers it)
            pieces.append(Piece(p.intercept + x, p.symbol, _extend(p.why, k, 1.0)))
        if forward:
            first, first_why = v.first + x0, _extend(v.first_why, k0, 1.0)
            for p in v.pieces:  # enter at s = 1, then along the chain
                value, why = self._at(p, 1)
                pieces.append(Piece(value, own, why))
            pieces.append(Piece(first, own, first_why))
            pieces = self._merge(pieces)
            fn = RowFn(first, first, pieces, first_why, None)
            before, why = self.best([(v.last, v.last_why), self.interior(fn, self._mid)])
            fn.last, fn.last_why = before + xl, _extend(why, kl, 1.0)
            return fn
        last, last_why = v.last + xl, _extend(v.last_why, kl, 1.0)
        whole = (self.n - 1) * x  # a reverse piece's intercept holds the chain down to c = 0
        for p in v.pieces:  # enter at s = n - 2, then along the chain
            value, why = self._at(p, self._mid)
            pieces.append(Piece(value + whole, own, _extend(why, k, float(self.n[0]) - 1.0)))
        pieces.append(Piece(last + whole, own, _extend(last_why, k, float(self.n[0]) - 1.0)))
        pieces = self._merge(pieces)
        fn = RowFn(last, last, pieces, None, last_why)
        before, why = self.best([(v.first, v.first_why), self.interior(fn, 1)])
        fn.first, fn.first_why = before + x0, _extend(why, k0, 1.0)
        return fn

    # ---- reading rows -----------------------------------------------------------------------
    def row_max(self, fn: RowFn) -> tuple[np.ndarray, Why | None]:
        """The latest finish of a row's tasks."""
        candidates = [(fn.first, fn.first_why), (fn.last, fn.last_why)]
        if self.shape == 3:
            candidates += [self.interior(fn, 1), self.interior(fn, self._mid)]
        return self.best(candidates)

    def row_min(self, fn: RowFn) -> np.ndarray:
        """The earliest finish of a row's tasks (the interior's minimum, a convex function, is
        at an end or next to where two pieces cross)."""
        lowest = np.minimum(fn.first, fn.last)
        if self.shape != 3:
            return lowest
        n = self.n
        points = [np.ones(n.shape), self._mid.astype(float)]
        for i, p in enumerate(fn.pieces):
            for q in fn.pieces[i + 1 :]:
                dslope = self.slopes[q.symbol] - self.slopes[p.symbol]
                with np.errstate(divide="ignore", invalid="ignore"):
                    cross = np.where(dslope != 0, (p.intercept - q.intercept) / dslope, 1.0)
                cross = np.clip(cross, 1, self._mid)
                points += [np.floor(cross), np.ceil(cross)]
        for c in points:
            lowest = np.minimum(lowest, self.interior(fn, c)[0])
        return lowest


__all__ = ["Grid", "RowFn", "Piece", "Why", "ZERO"]
