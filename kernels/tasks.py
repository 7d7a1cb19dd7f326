"""The numpy work of every task of a workload's graph, on named arrays, for any declared cell.

A cell task runs :class:`kernels.declared.CellKernel` (the forward and BPTT interpreted from the
workload's cell declaration, :mod:`wpsim.cells`) over its steps; nothing here knows a cell by
name. :class:`TaskRunner` knows nothing about processes either: it gets the arrays (views of the
executor's shared segment, or plain arrays for the in-process reference,
:mod:`kernels.reference`), its rank in its core group and a ``barrier`` callable.

The arrays are :mod:`kernels.arrays`'s.

Tasks:

* ``input_gemm`` (hoisted graphs): the products of the layer input
  (:func:`wpsim.cells.input_products`, the rule the simulator's graph charges them by), over its
  steps, into ``gx``; the cell tasks read them (a copy) instead of multiplying. An operand that
  reads earlier inputs (QRNN's window ``[x_t, x_{t-1}]``) is assembled from the layer input
  shifted by a step (the state's initial value before the first step). The other products off
  the recurrence (MinimalRNN's ``U_z z``) stay in the cell tasks.
* ``cell``: the chunk forward; ``cell_bwd``: its BPTT, which keeps the gradient of every op that
  reads a parameter; ``wgrad``: the parameters' gradients over all T steps, one GEMM per
  product; ``input_gemm_bwd``: ``dx`` of the hoisted products, ``g W``, each run of the operand
  added to the input of its step (or to the initial state's gradient).
* ``output``, ``output_bwd``: the output layer (and the output layer's ``wgrad``).

Split tasks (a group of k > 1 workers runs one task): every product on the recurrence splits
the rows of its weight (``a W^T``) forward and its columns (``g W``) backward
(:func:`kernels.products.recurrent_rows`); each member writes its block into ``rb{g}``, a
barrier, then every member assembles the whole product and runs the (cheap) element-wise work
itself, so the next step needs no second barrier; only rank 0 writes the shared results.
Products off the recurrence split over time rows (or, for a large weight, its rows) into ``gx``,
then a barrier; the parameters' gradients split over the parameters. The backward's products off
the recurrence (``dx``) are computed by every member (only rank 0 writes them).

A cell without a product on the recurrence (SRU, QRNN, IndRNN: an element-wise recurrence) runs
it once, on the lead (rank 0): the others only take their share of the products of the layer
input (forward, into ``gx``, one barrier each; backward, ``dx`` after the lead's BPTT has
written the products' gradients, one barrier), as the simulator charges a split task's
element-wise work to one member (``elementwise_split_across_helpers: false``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from kernels.arrays import (
    batched_products,
    hoisted_products,
    layer_kernels,
    param_ops,
    recurrent_products,
    saved_names,
)
from kernels.cells import output_forward
from kernels.declared import CellKernel, Saved
from kernels.declared.chunk import extended_views
from kernels.inputs import InputPiece, assemble, input_operand, rows_needed, send_back
from kernels.params import (
    chunk_bounds,
    compute_dtype,
    layer_params,
    network_cell,
    row_block,
    suffix,
)
from kernels.products import Recurrent, matmul_xwt, recurrent_rows, split_rows
from wpsim.cells import Cell, input_products, output_width
from wpsim.errors import ConfigError
from wpsim.model.workload import Workload

__all__ = [
    "INPUT_SPLIT_BY_TIME_MAX_BYTES",
    "RUNNABLE_KINDS",
    "TaskRunner",
    "TaskSpec",
    "forward_task",
    "input_split_by_time_max_bytes",
    "recurrent_product_ops",
]

#: (kind, instance, layer, direction, t0, steps): what a worker needs to know about a task.
TaskSpec = tuple[str, int, int, int, int, int]

RUNNABLE_KINDS = (
    "cell",
    "input_gemm",
    "output",
    "cell_bwd",
    "input_gemm_bwd",
    "output_bwd",
    "wgrad",
)

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


class TaskRunner:
    """Runs tasks of one execution on named arrays, as member ``rank`` of a group of ``size``.

    Parameters
    ----------
    workload : Workload
    tasks : list of TaskSpec
        Indexed by task id.
    arrays : dict of str to ndarray
        The arrays of :func:`kernels.arrays.array_specs`.
    hoisted : bool
        The graph has ``input_gemm`` tasks (input products outside the cells).
    training : bool
    chunk : int
        Steps per cell task of the graph (for the chunk index of a cell).
    rank, size : int
        Position in the core group and its size.
    barrier : callable, optional
        Waits until every member of the group has called it as often (required when size > 1).
    scratch : str, optional
        Name of the group's exchange array (``rb{g}``) when size > 1.
    """

    def __init__(
        self,
        workload: Workload,
        tasks: list[TaskSpec],
        arrays: dict[str, np.ndarray],
        *,
        hoisted: bool,
        training: bool,
        chunk: int,
        rank: int = 0,
        size: int = 1,
        barrier: Callable[[], None] | None = None,
        scratch: str | None = None,
    ) -> None:
        if size > 1 and (barrier is None or scratch is None):
            raise ValueError("a split group needs a barrier and a scratch array")
        self.w = workload
        self.tasks = tasks
        self.a = arrays
        self.hoisted = hoisted
        self.training = training
        self.chunk = chunk
        self.rank = rank
        self.size = size
        self.barrier = barrier or (lambda: None)
        self.scratch = arrays[scratch] if scratch else None
        self.cell = network_cell(workload)
        self.kernels = layer_kernels(workload, self.cell)
        self.dt = compute_dtype(workload)
        self.T, self.B = workload.seq_len, workload.batch
        self.width = output_width(self.cell, workload.hidden)
        self.D, self.L = workload.directions, workload.layers
        self.n_chunks = len(chunk_bounds(self.T, chunk))
        self.leader = rank == 0
        self._params: dict[int, dict[str, np.ndarray]] = {}
        self._lp: dict[tuple[int, int, int], dict[str, Any]] = {}
        self._hooks: dict[tuple[int, int, int], tuple[dict, dict]] = {}
        self._rows: dict[tuple, tuple[slice, np.ndarray] | None] = {}
        self._private: dict[tuple, np.ndarray] = {}
        self._task_hooks: dict[tuple, Callable] = {}
        self._private_pieces: dict[tuple, tuple[InputPiece, ...]] = {}
        self._private_products: dict[tuple, list[str]] = {}
        self._parity = 0
        self._run = {
            "cell": self._cell,
            "input_gemm": self._input_gemm,
            "output": self._output,
            "cell_bwd": self._cell_bwd,
            "input_gemm_bwd": self._input_gemm_bwd,
            "output_bwd": self._output_bwd,
            "wgrad": self._wgrad,
        }

    # ---- entry point -----------------------------------------------------------------------
    def run(self, tid: int) -> None:
        """Run this member's share of task ``tid``."""
        kind, i, l, d, t0, steps = self.tasks[tid]
        fn = self._run.get(kind)
        if fn is None:
            raise ConfigError(f"task kind {kind!r} cannot run for real")
        fn(i, l, d, t0, t0 + steps)

    def warm(self) -> None:
        """Build every layer's parameter views and split products up front."""
        for i in {t[1] for t in self.tasks}:
            for l in range(self.L):
                for d in range(self.D):
                    self._layer(i, l, d)
                    if self.size > 1:
                        self._split_hooks(i, l, d)

    # ---- helpers ----------------------------------------------------------------------------
    def _share(self, n: int) -> slice | None:
        """This member's part of ``n`` rows (None when it has none)."""
        if self.size == 1:
            return slice(0, n)
        parts = split_rows(n, self.size)
        return parts[self.rank] if self.rank < len(parts) else None

    def _params_of(self, i: int) -> dict[str, np.ndarray]:
        params = self._params.get(i)
        if params is None:
            prefix = f"p{i}."
            params = self._params[i] = {
                k[len(prefix) :]: v for k, v in self.a.items() if k.startswith(prefix)
            }
        return params

    def _layer(self, i: int, l: int, d: int) -> dict[str, Any]:
        key = (i, l, d)
        lp = self._lp.get(key)
        if lp is None:
            lp = self._lp[key] = layer_params(
                self._params_of(i), l, d == 1, sparse=self.w.sparse, dtype=self.dt, cell=self.cell
            )
        return lp

    def _buffer(self, tag: str, shape: tuple[int, ...]) -> np.ndarray:
        """A private scratch array (non-leaders of a group write their copies here)."""
        key = (tag, shape)
        buf = self._private.get(key)
        if buf is None:
            buf = self._private[key] = np.empty(shape, self.dt)
        return buf

    def _layer_input(self, i: int, l: int, a: int, b: int) -> np.ndarray:
        """Input of layer ``l`` for steps ``a..b-1``: x, or the layer below (directions
        concatenated)."""
        if l == 0:
            return self.a["x"][a:b]
        parts = [self.a[f"h{i}.{l - 1}.{dd}"][a:b] for dd in range(self.D)]
        return parts[0] if self.D == 1 else np.concatenate(parts, axis=2)

    def _top(self, i: int, a: int, b: int) -> np.ndarray:
        return self._layer_input(i, self.L, a, b)

    def _prev(self, d: int, a: int, b: int) -> int | None:
        """The step before the chunk ``a..b-1`` in processing order (None at the start)."""
        if d == 0:
            return a - 1 if a > 0 else None
        return b if b < self.T else None

    def _state_at(self, key: str, l: int, state: str, t: int) -> np.ndarray:
        """The value of ``state`` after step ``t``."""
        if self.kernels[l].next_of[state] == self.cell.output:
            return self.a[f"h{key}"][t]
        return self.a[f"s{key}.{state}"][t]

    def _initial_states(self, key: str, l: int, d: int, a: int, b: int) -> dict[str, Any]:
        prev = self._prev(d, a, b)
        if prev is None:  # the sequence's initial states, when given
            return {s: self.a.get(f"init{key}.{s}") for s in self.kernels[l].next_of}
        return {s: self._state_at(key, l, s, prev) for s in self.kernels[l].next_of}

    # ---- split products -----------------------------------------------------------------------
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

    def _split_hooks(self, i: int, l: int, d: int) -> tuple[dict, dict]:
        """Product hooks of a split group: the recurrent products by rows (forward) and by
        columns (backward) through the exchange array, the products off the recurrence into
        their ``gx`` arrays (see the module docstring)."""
        key = (i, l, d)
        hooks = self._hooks.get(key)
        if hooks is not None:
            return hooks
        kernel = self.kernels[l]
        plan = kernel.plan
        lp = self._layer(i, l, d)
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

    def _weight_rows(self, i: int, l: int, d: int, op: str) -> tuple[slice, np.ndarray] | None:
        """This member's rows of ``op``'s weight (one aligned block), or None."""
        key = (i, l, d, op)
        if key not in self._rows:
            kernel = self.kernels[l]
            w = kernel.plan.ops[op].args[0]
            weight = self._layer(i, l, d)[w.name]
            span = kernel.plan.region(w)
            if span is not None:
                weight = weight[span[0] : span[1]]
            parts = split_rows(weight.shape[0], self.size)
            mine = None
            if self.rank < len(parts):
                mine = (parts[self.rank], row_block(weight, parts[self.rank]))
            self._rows[key] = mine
        return self._rows[key]

    def _product_into(self, i: int, l: int, d: int, op: str, a: np.ndarray, a0: int) -> None:
        """This member's share of ``op``'s product off the recurrence of the operand ``a``
        (steps ``a0..``) into ``gx{key}.{op}``: split over time steps, or over the weight's
        rows for a large weight (see :data:`INPUT_SPLIT_BY_TIME_MAX_BYTES`)."""
        kernel = self.kernels[l]
        w = kernel.plan.ops[op].args[0]
        weight = self._layer(i, l, d)[w.name]
        span = kernel.plan.region(w)
        if span is not None:
            weight = weight[span[0] : span[1]]
        gx = self.a[f"gx{i}.{l}.{d}.{op}"][a0 : a0 + len(a)]
        steps = len(a)
        small = not sp.issparse(weight) and weight.nbytes <= input_split_by_time_max_bytes()
        if self.size == 1 or (self.size <= steps and small):
            sub = self._share(steps)
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
        out = self._buffer("gx_rows", (rows, cols.stop - cols.start))
        matmul_xwt(a2, block, out)
        gx.reshape(rows, gx.shape[2])[:, cols] = out

    # ---- forward tasks ------------------------------------------------------------------------
    def _pieces(self, l: int, op: str) -> tuple[InputPiece, ...]:
        key = ("pieces", l, op)
        found = self._private_pieces.get(key)
        if found is None:
            found = self._private_pieces[key] = input_operand(self.kernels[l], op)
        return found

    def _input_operand(self, i: int, l: int, d: int, op: str, a: int, b: int) -> np.ndarray:
        """The operand of the product ``op`` of the layer input at steps ``a..b-1``: the input,
        or its runs at earlier steps (QRNN's ``[x_t, x_{t-1}]``, :func:`kernels.inputs.assemble`)."""
        x = self._layer_input(i, l, a, b)
        pieces = self._pieces(l, op)
        if len(pieces) == 1 and pieces[0].lag == 0 and pieces[0].width == x.shape[2]:
            return x
        key = f"{i}.{l}.{d}"
        out = np.empty((b - a, self.B, sum(p.width for p in pieces)), self.dt)
        return assemble(
            pieces,
            lambda lo, hi: self._layer_input(i, l, lo, hi),
            lambda state: self.a.get(f"init{key}.{state}"),
            d == 1,
            a,
            b,
            self.T,
            out,
        )

    def _input_gemm(self, i: int, l: int, d: int, a: int, b: int) -> None:
        for op in hoisted_products(self.kernels[l]):
            self._product_into(i, l, d, op, self._input_operand(i, l, d, op, a, b), a)

    # the hooks of a task are made once (a kernel keeps its inference program for the same
    # hook functions, see kernels.declared.CellKernel.forward)
    def _copy_hook(self, name: str, a: int, b: int) -> Callable:
        key = ("copy", name, a, b)
        hook = self._task_hooks.get(key)
        if hook is None:
            source = self.a[name][a:b]

            def hook(_operand: np.ndarray, out: np.ndarray) -> None:
                np.copyto(out, source)

            self._task_hooks[key] = hook
        return hook

    def _split_batched_hook(self, i: int, l: int, d: int, op: str, a: int, b: int) -> Callable:
        key = ("split", i, l, d, op, a, b)
        hook = self._task_hooks.get(key)
        if hook is None:
            result = self.a[f"gx{i}.{l}.{d}.{op}"][a:b]

            def hook(operand: np.ndarray, out: np.ndarray) -> None:
                self._product_into(i, l, d, op, operand, a)
                self.barrier()
                np.copyto(out, result)

            self._task_hooks[key] = hook
        return hook

    def _split_products(self, l: int) -> list[str]:
        """The products off the recurrence a split group's members share in a cell task (the
        hoisted ones are the input task's), in the order the kernel runs them. Without a
        product on the recurrence, only the lead runs the kernel: the others share the
        products whose operand they read from the layer input (:meth:`_input_operand`), and
        the lead computes any other alone."""
        key = ("split", l)
        found = self._private_products.get(key)
        if found is None:
            kernel = self.kernels[l]
            plan = kernel.plan
            hoisted = hoisted_products(kernel) if self.hoisted else []
            alone = not recurrent_products(kernel)
            ops = [name for stage in plan.stages for name in stage.ops]
            found = [
                op
                for op in ops
                if op in batched_products(kernel)
                and op not in hoisted
                and not (alone and op not in input_products(kernel.cell))
            ]
            self._private_products[key] = found
        return found

    def _cell(self, i: int, l: int, d: int, a: int, b: int) -> None:
        key = f"{i}.{l}.{d}"
        kernel = self.kernels[l]
        split = self._split_products(l) if self.size > 1 else []
        if self.size > 1 and not self.leader and not recurrent_products(kernel):
            # an element-wise recurrence runs once, on the lead: the others only take their
            # share of its products (one barrier each, as the lead's hooks)
            for op in split:
                self._product_into(i, l, d, op, self._input_operand(i, l, d, op, a, b), a)
                self.barrier()
            return
        lp = self._layer(i, l, d)
        products: dict[str, Callable] = {}
        hoisted = hoisted_products(kernel) if self.hoisted else []
        for op in hoisted:
            products[op] = self._copy_hook(f"gx{key}.{op}", a, b)
        if self.size > 1:
            products.update(self._split_hooks(i, l, d)[0])
            for op in split:
                products[op] = self._split_batched_hook(i, l, d, op, a, b)
        h_all = self.a[f"h{key}"]
        out = h_all[a:b] if self.leader else self._buffer("h", (b - a, self.B, self.width))
        save = self.training and self.leader
        run = kernel.forward(
            lp,
            self._layer_input(i, l, a, b),
            self._initial_states(key, l, d, a, b),
            reverse=d == 1,
            save=save,
            out=out,
            products=products or None,
        )
        if not self.leader:
            return
        last = a if d == 1 else b - 1
        for s, v in kernel.next_of.items():
            if v != self.cell.output:
                self.a[f"s{key}.{s}"][last] = run.states[s]
        if save:
            assert run.saved is not None
            for name in saved_names(kernel):
                self.a[f"v{key}.{name}"][a:b] = run.saved.values[name]

    def _output(self, i: int, l: int, d: int, a: int, b: int) -> None:
        sub = self._share(b - a)
        if sub is None:
            return
        s, e = a + sub.start, a + sub.stop
        p = self._params_of(i)
        y = output_forward(
            p["weight_out"], p["bias_out"], self._top(i, s, e), softmax=self.w.output == "softmax"
        )
        self.a[f"y{i}"][s:e] = y

    # ---- backward tasks -----------------------------------------------------------------------
    def _dh_from_above(self, i: int, l: int, d: int, a: int, b: int) -> np.ndarray:
        """Gradient w.r.t. this direction's output for steps ``a..b-1`` from outside the
        recurrence."""
        cols = slice(d * self.width, (d + 1) * self.width)
        if l == self.L - 1:
            src = self.a[f"dtop{i}"] if self.w.output != "none" else self.a["gout"]
            return src[a:b, :, cols]
        parts = [self.a[f"dx{i}.{l + 1}.{dd}"][a:b, :, cols] for dd in range(self.D)]
        # the same order whatever the schedule: 0 + dx_fwd (exact), then + dx_rev
        return parts[0] if self.D == 1 else parts[0] + parts[1]

    def _saved(self, i: int, l: int, d: int, a: int, b: int) -> Saved:
        """What the forward of the chunk ``a..b-1`` kept, read back from the arrays."""
        key = f"{i}.{l}.{d}"
        kernel = self.kernels[l]
        plan = kernel.plan
        reverse = d == 1
        initial = self._initial_states(key, l, d, a, b)
        states0 = {
            s: np.zeros((self.B, kernel.widths[s]), self.dt) if v is None else v
            for s, v in initial.items()
        }
        values = {name: self.a[f"v{key}.{name}"][a:b] for name in saved_names(kernel)}
        values[self.cell.output] = self.a[f"h{key}"][a:b]
        extended = {}
        for v in plan.extended:
            state = plan.state_of[v]
            seq = self._layer_input(i, l, a, b) if v == "x" else values[v]
            parts = [seq, states0[state][None]] if reverse else [states0[state][None], seq]
            ext = np.concatenate(parts)
            extended[v] = ext
            if v in values:
                values[v] = extended_views(ext, reverse)[0]
        x = self._layer_input(i, l, a, b)
        return Saved(x, states0, values, extended, reverse)

    def _cell_bwd(self, i: int, l: int, d: int, a: int, b: int) -> None:
        key = f"{i}.{l}.{d}"
        kernel = self.kernels[l]
        lp = self._layer(i, l, d)
        c_idx = a // self.chunk
        nxt = (
            (c_idx + 1 if c_idx + 1 < self.n_chunks else None)
            if d == 0
            else (c_idx - 1 if c_idx > 0 else None)
        )
        d_states = {
            s: self.a.get(f"dfin{key}.{s}") if nxt is None else self.a[f"ds{key}.{s}"][nxt]
            for s in kernel.next_of
        }
        # an element-wise recurrence split over a group: the lead runs its backward, then the
        # members share the products' part of dx (as an input task's backward does)
        alone = self.size > 1 and not recurrent_products(kernel)
        split = self._split_products(l) if alone else []
        if alone and not self.leader:
            self.barrier()  # the lead's gradients written
            self._products_bwd(i, l, d, a, b, split, c_idx)
            return
        products_t: dict[str, Callable] = {}
        hoisted = hoisted_products(kernel) if self.hoisted else []
        for op in [*hoisted, *split]:  # their part of dx is the input_gemm_bwd task's, or
            # the group's after the lead's backward

            def nothing(_g: np.ndarray, out: np.ndarray) -> None:
                out.fill(0)

            products_t[op] = nothing
        if self.size > 1:
            products_t.update(self._split_hooks(i, l, d)[1])
        back = kernel.backward(
            lp,
            self._saved(i, l, d, a, b),
            self._dh_from_above(i, l, d, a, b),
            d_states,
            products_t=products_t or None,
            op_grads=True,
        )
        if not self.leader:
            return
        assert back.op_grads is not None and back.dx is not None
        for s, g in back.dstates.items():
            self.a[f"ds{key}.{s}"][c_idx] = g
        for op, g in back.op_grads.items():
            self.a[f"dg{key}.{op}"][a:b] = g
        self.a[f"dx{key}"][a:b] = back.dx
        if alone:
            self.barrier()
            self._products_bwd(i, l, d, a, b, split, c_idx)

    def _input_gemm_bwd(self, i: int, l: int, d: int, a: int, b: int) -> None:
        """``dx`` of the hoisted products (:meth:`_products_bwd`)."""
        ops = hoisted_products(self.kernels[l])
        if (a, b) != (0, self.T) and any(p.lag for op in ops for p in self._pieces(l, op)):
            # a run of an earlier step would add to another input task's steps
            raise ConfigError(
                f"kernels: the input projection of {self.cell.label} reads earlier inputs; "
                "its input task must cover the whole sequence (hoist_input = seq_len)"
            )
        first = 0 if d == 0 else self.n_chunks - 1  # the chunk of the first step processed
        self._products_bwd(i, l, d, a, b, ops, first)

    def _products_bwd(
        self, i: int, l: int, d: int, a: int, b: int, ops: list[str], chunk: int
    ) -> None:
        """``dx`` of the products ``ops`` of the layer input over this member's share of the
        steps ``a..b-1``: ``g W`` from their gradients ``dg`` (the steps it needs), sent back
        to the input's steps (:func:`kernels.inputs.send_back`); the runs that were states as
        the task's first step entered go to their gradients ``ds`` at index ``chunk`` (by the
        member holding the first step processed)."""
        sub = self._share(b - a)
        if sub is None:
            return
        key = f"{i}.{l}.{d}"
        s, e = a + sub.start, a + sub.stop
        kernel = self.kernels[l]
        lp = self._layer(i, l, d)
        reverse = d == 1

        def entering(state: str) -> np.ndarray:
            return self.a[f"ds{key}.{state}"][chunk]

        holds_first = e == b if reverse else s == a
        for op in ops:
            w = kernel.plan.ops[op].args[0]
            weight = lp[w.name]
            span = kernel.plan.region(w)
            if span is not None:
                weight = weight[span[0] : span[1]]
            pieces = self._pieces(l, op)
            lo, hi = rows_needed(pieces, s, e, a, b, reverse)
            g = self.a[f"dg{key}.{op}"][lo:hi]
            rows = (hi - lo) * self.B
            grad = (g.reshape(rows, g.shape[2]) @ weight).reshape(hi - lo, self.B, -1)
            dx = self.a[f"dx{key}"]
            send_back(pieces, grad, lo, dx, entering if holds_first else None, s, e, a, b, reverse)

    def _output_bwd(self, i: int, l: int, d: int, a: int, b: int) -> None:
        # mirrors kernels.cells.output_backward, without its per-chunk weight gradients (the
        # output layer's wgrad task does them as one GEMM over all steps)
        sub = self._share(b - a)
        if sub is None:
            return
        s, e = a + sub.start, a + sub.stop
        v = self._params_of(i)["weight_out"]
        rows, n_out = (e - s) * self.B, v.shape[0]
        g = np.ascontiguousarray(self.a["gout"][s:e], dtype=v.dtype).reshape(rows, n_out)
        if self.w.output == "softmax":
            yf = self.a[f"y{i}"][s:e].reshape(rows, n_out)
            g = yf * (g - np.einsum("ij,ij->i", g, yf)[:, None])
        self.a[f"gy{i}"][s:e].reshape(rows, n_out)[...] = g
        dtop = self.a[f"dtop{i}"][s:e]
        np.dot(g, v, out=dtop.reshape(rows, dtop.shape[2]))

    def _wgrad(self, i: int, l: int, d: int, a: int, b: int) -> None:
        T, B = self.T, self.B
        if l == self.L:  # the output layer
            n_out = self.w.output_size
            sub = self._share(n_out)
            if sub is None:
                return
            g = self.a[f"gy{i}"].reshape(T * B, n_out)[:, sub]
            top = self._top(i, 0, T)
            top = top.reshape(T * B, top.shape[2])
            self.a[f"g{i}.weight_out"][sub] = g.T @ top
            self.a[f"g{i}.bias_out"][sub] = g.sum(axis=0)
            return
        key = f"{i}.{l}.{d}"
        kernel = self.kernels[l]
        names = list(kernel.param_shapes)
        mine = names if self.size == 1 else names[self.rank :: self.size]
        if not mine:
            return
        values = {name: self.a[f"v{key}.{name}"] for name in saved_names(kernel)}
        values[self.cell.output] = self.a[f"h{key}"]
        values["x"] = self._layer_input(i, l, 0, T)
        op_grads = {op: self.a[f"dg{key}.{op}"] for op in param_ops(kernel)}
        states0 = {s: self.a.get(f"init{key}.{s}") for s in kernel.next_of}
        grads = kernel.param_grads(values, op_grads, states0, reverse=d == 1, names=mine)
        name = suffix(l, d == 1)
        for param, g in grads.items():
            self.a[f"g{i}.{param}{name}"][...] = g


def forward_task(
    cell: Cell,
    hidden: int,
    batch: int,
    steps: int,
    *,
    product: Callable[[str, Any], Callable | None] | None = None,
    seed: int = 0,
) -> Callable[[], Any]:
    """One inference cell task of one layer-direction (input width ``hidden``, float32, random
    parameters) as :class:`TaskRunner` runs it, as a callable of no argument: what calibration
    times (:mod:`wpsim.measure.calibrate`).

    ``product(op, weight)`` may return the function ``(a, out)`` that computes the ``matmul``
    op ``op`` (of ``weight``, its gate block where it multiplies one) in place of the kernel,
    or None to keep the kernel's.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> task = forward_task(get_cell("sru"), 8, 1, 4, product=lambda op, w: None)
    >>> task().output.shape
    (4, 1, 8)
    """
    kernel = CellKernel(cell, hidden, hidden, "float32")
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in kernel.param_shapes.items():
        value = (rng.standard_normal(shape) * 0.05).astype(np.float32)
        params[name] = row_block(value, slice(None)) if len(shape) == 2 else value
    x = rng.standard_normal((steps, batch, hidden)).astype(np.float32)
    hooks = {}
    if product is not None:
        plan = kernel.plan
        for op in plan.cell.ops:
            if op.kind != "matmul":
                continue
            weight = params[op.args[0].name]
            span = plan.region(op.args[0])
            if span is not None:
                weight = row_block(weight, slice(*span))
            fn = product(op.name, weight)
            if fn is not None:
                hooks[op.name] = fn
    return lambda: kernel.forward(params, x, save=False, products=hooks or None)


def recurrent_product_ops(cell: Cell) -> list[str]:
    """The ``matmul`` ops of ``cell`` on the recurrence (one step at a time).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> recurrent_product_ops(get_cell("lstm", proj_size=2)), recurrent_product_ops(get_cell("sru"))
    (['gh', 'h_new'], [])
    """
    return recurrent_products(CellKernel(cell, 1, 1))
