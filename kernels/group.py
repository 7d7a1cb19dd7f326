"""A task's products shared among the members of a core group (of k >= 1 workers).

How a group of k > 1 workers splits the products of one task is described in
:mod:`kernels.tasks`; :class:`GroupProducts` holds this member's part: its rows of the products
on the recurrence and their exchange through ``rb{g}``, its share of the products off the
recurrence, and the hooks through which :class:`kernels.declared.CellKernel` runs them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from kernels.arrays import recurrent_products
from kernels.declared import CellKernel
from kernels.params import row_block
from kernels.products import Recurrent, matmul_xwt, recurrent_rows, split_rows

__all__ = ["INPUT_SPLIT_BY_TIME_MAX_BYTES", "GroupProducts", "input_split_by_time_max_bytes"]

#: Largest weight (bytes) whose product off the recurrence a split task divides over time
#: steps rather than the weight's rows, given a step for each member (env
#: ``WPSIM_INPUT_SPLIT_BY_TIME_MAX_BYTES`` overrides it). Split by rows, each member streams
#: 1/k of the weight but computes a narrow block of columns and copies it into place, which
#: costs more than reading all of a small weight (benchmarks/kernel.py records a case). Split
#: by time, each member reads all of the weight (no matter while it fits the core's cache) and
#: writes whole rows in place. The bound is half the L2 of the development machine.
INPUT_SPLIT_BY_TIME_MAX_BYTES = 1 << 20


def input_split_by_time_max_bytes() -> int:
    """:data:`INPUT_SPLIT_BY_TIME_MAX_BYTES`, or the environment's override."""
    value = os.environ.get("WPSIM_INPUT_SPLIT_BY_TIME_MAX_BYTES")
    return int(value) if value else INPUT_SPLIT_BY_TIME_MAX_BYTES


class GroupProducts:
    """Member ``rank`` of a group of ``size`` workers: its share of the products of the tasks
    of layers ``kernels`` on ``arrays``.

    Parameters
    ----------
    arrays : dict of str to ndarray
        The arrays of :func:`kernels.arrays.array_specs`.
    kernels : list of CellKernel
        One per layer.
    layer : callable
        ``layer(i, l, d)``: the parameters of a layer-direction of instance ``i``.
    batch : int
    dtype : dtype
    rank, size : int
    barrier : callable
        Waits until every member has called it as often.
    scratch : ndarray, optional
        The group's exchange array ``rb{g}`` (size > 1).
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        kernels: list[CellKernel],
        layer: Callable[[int, int, int], dict[str, Any]],
        *,
        batch: int,
        dtype: np.dtype,
        rank: int,
        size: int,
        barrier: Callable[[], None],
        scratch: np.ndarray | None,
    ) -> None:
        self.a = arrays
        self.kernels = kernels
        self.layer = layer
        self.B = batch
        self.dt = dtype
        self.rank = rank
        self.size = size
        self.barrier = barrier
        self.scratch = scratch
        self._parity = 0
        self._hooks: dict[tuple[int, int, int], tuple[dict, dict]] = {}
        self._rows: dict[tuple, tuple[slice, np.ndarray] | None] = {}
        self._private: dict[tuple, np.ndarray] = {}
        self._task_hooks: dict[tuple, Callable] = {}

    def share(self, n: int) -> slice | None:
        """This member's part of ``n`` rows (None when it has none)."""
        if self.size == 1:
            return slice(0, n)
        parts = split_rows(n, self.size)
        return parts[self.rank] if self.rank < len(parts) else None

    def _exchange(self, parts: list[slice], width_rows: int) -> list[list[tuple[slice, Any]]]:
        """Views of the exchange array: for each parity, each member's (columns, block)."""
        B, scratch = self.B, self.scratch
        assert scratch is not None
        return [
            [
                (s, scratch[p, m, : B * (s.stop - s.start)].reshape(B, s.stop - s.start))
                for m, s in enumerate(parts)
            ]
            for p in range(2)
        ]

    def hooks(self, i: int, l: int, d: int) -> tuple[dict, dict]:
        """Product hooks of a split group: the recurrent products by rows (forward) and by
        columns (backward) through the exchange array, the products off the recurrence into
        their ``gx`` arrays (see :mod:`kernels.tasks`)."""
        key = (i, l, d)
        hooks = self._hooks.get(key)
        if hooks is not None:
            return hooks
        kernel = self.kernels[l]
        plan = kernel.plan
        lp = self.layer(i, l, d)
        forward: dict[str, Callable] = {}
        backward: dict[str, Callable] = {}
        for op in recurrent_products(kernel):
            w = plan.ops[op].args[0]
            weight = lp[w.name]
            span = plan.region(w)
            if span is not None:
                rows = slice(*span)
                weight = weight[rows].tocsr() if sp.issparse(weight) else row_block(weight, rows)
            forward[op], backward[op] = self._split_recurrent(weight)
        return self._hooks.setdefault(key, (forward, backward))

    def _split_recurrent(self, weight: Any) -> tuple[Callable, Callable]:
        B, r, barrier = self.B, self.rank, self.barrier
        n_rows, n_cols = weight.shape
        rows, cols = split_rows(n_rows, self.size), split_rows(n_cols, self.size)
        row_blocks, col_blocks = self._exchange(rows, n_rows), self._exchange(cols, n_cols)
        my_rows = None  # this member's rows of the product: (a, out) -> None
        if r < len(rows) and sp.issparse(weight):
            w_sparse = weight[rows[r]]  # a CSR slice

            def my_rows(a: np.ndarray, out: np.ndarray) -> None:
                recurrent_rows(w_sparse, a, None, out=out)

        elif r < len(rows):
            w_rows = row_block(weight, rows[r])

            def my_rows(a: np.ndarray, out: np.ndarray) -> None:
                matmul_xwt(a, w_rows, out)

        cols_of = None
        if r < len(cols):
            part = weight[:, cols[r]]
            cols_of = Recurrent(part.tocsr() if sp.issparse(part) else part, B, self.dt)

        def product(a: np.ndarray, out: np.ndarray) -> None:
            p = self._parity
            parts = row_blocks[p]
            if my_rows is not None:
                my_rows(a, parts[r][1])
            barrier()
            for s, block in parts:
                out[:, s] = block
            self._parity = p ^ 1

        def product_t(g: np.ndarray, out: np.ndarray) -> None:
            p = self._parity
            parts = col_blocks[p]
            if cols_of is not None:
                cols_of.hh_t(np.ascontiguousarray(g), parts[r][1])
            barrier()
            for s, block in parts:
                out[:, s] = block
            self._parity = p ^ 1

        return product, product_t

    def _op_weight(self, i: int, l: int, d: int, op: str) -> Any:
        """The weight ``op`` multiplies by (its region of the layer's array, if it has one)."""
        w = self.kernels[l].plan.ops[op].args[0]
        weight = self.layer(i, l, d)[w.name]
        span = self.kernels[l].plan.region(w)
        return weight if span is None else weight[span[0] : span[1]]

    def _weight_rows(self, i: int, l: int, d: int, op: str) -> tuple[slice, np.ndarray] | None:
        """This member's rows of ``op``'s weight (one aligned block), or None."""
        key = (i, l, d, op)
        if key not in self._rows:
            weight = self._op_weight(i, l, d, op)
            parts = split_rows(weight.shape[0], self.size)
            mine = None
            if self.rank < len(parts):
                mine = (parts[self.rank], row_block(weight, parts[self.rank]))
            self._rows[key] = mine
        return self._rows[key]

    def product_into(self, i: int, l: int, d: int, op: str, a: np.ndarray, a0: int) -> None:
        """This member's share of ``op``'s product off the recurrence of the operand ``a``
        (steps ``a0..``) into ``gx{key}.{op}``: split over time steps, or over the weight's
        rows for a large weight (see :data:`INPUT_SPLIT_BY_TIME_MAX_BYTES`)."""
        weight = self._op_weight(i, l, d, op)
        gx = self.a[f"gx{i}.{l}.{d}.{op}"][a0 : a0 + len(a)]
        steps = len(a)
        small = not sp.issparse(weight) and weight.nbytes <= input_split_by_time_max_bytes()
        if self.size == 1 or (self.size <= steps and small):
            sub = self.share(steps)
            if sub is None:
                return
            part = np.ascontiguousarray(a[sub], dtype=self.dt)
            rows = part.shape[0] * part.shape[1]
            out = gx[sub].reshape(rows, gx.shape[2])
            if sp.issparse(weight):
                out[...] = (weight @ part.reshape(rows, -1).T).T
            else:
                matmul_xwt(part.reshape(rows, -1), weight, out)
            return
        mine = self._weight_rows(i, l, d, op)
        if mine is None:
            return
        cols, block = mine
        rows = steps * self.B
        a2 = np.ascontiguousarray(a, dtype=self.dt).reshape(rows, a.shape[2])
        # into a contiguous buffer, then copied: writing this member's columns of gx in place
        # (strided) is slower
        shape = (rows, cols.stop - cols.start)
        if shape not in self._private:
            self._private[shape] = np.empty(shape, self.dt)
        out = self._private[shape]
        matmul_xwt(a2, block, out)
        gx.reshape(rows, gx.shape[2])[:, cols] = out

    def products(
        self, i: int, l: int, d: int, a: int, b: int, shared: list[str]
    ) -> dict[str, Callable]:
        """The product hooks of a cell task of steps ``a..b-1`` (none for a group of one): the
        products on the recurrence by rows, the ``shared`` ones off it by steps into ``gx``
        (:func:`kernels.tasks.shared_products`)."""
        if self.size == 1:
            return {}
        products = dict(self.hooks(i, l, d)[0])
        for op in shared:
            products[op] = self._batched_hook(i, l, d, op, a, b)
        return products

    def _batched_hook(self, i: int, l: int, d: int, op: str, a: int, b: int) -> Callable:
        key = ("split", i, l, d, op, a, b)
        hook = self._task_hooks.get(key)
        if hook is None:
            result = self.a[f"gx{i}.{l}.{d}.{op}"][a:b]

            def hook(operand: np.ndarray, out: np.ndarray) -> None:
                self.product_into(i, l, d, op, operand, a)
                self.barrier()
                np.copyto(out, result)

            self._task_hooks[key] = hook
        return hook
