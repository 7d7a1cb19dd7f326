"""What a worker does for one task: the numpy work of every task kind, on shared arrays.

:class:`TaskRunner` knows nothing about processes: it gets the arrays (views of the shared
segment), its rank in its core group and a ``barrier`` callable, so it can also run in-process
(rank 0 of a group of 1) for debugging.

Buffers (``i`` instance, ``l`` layer, ``d`` direction; T steps, B batch, H hidden, GH = G*H,
I_l the layer's input width, O output size, D directions; all in the compute dtype):

==================  ===============  =======================================================
name                shape            contents
==================  ===============  =======================================================
``x``               (T, B, I)        network input (shared by all instances)
``p{i}.{param}``    PyTorch shapes   parameters (one copy per instance)
``h{i}.{l}.{d}``    (T, B, H)        hidden state after every step
``c{i}.{l}.{d}``    (T, B, H)        lstm cell state (inference: chunk boundaries only)
``gx{i}.{l}.{d}``   (T, B, GH)       input projections (hoisted graphs; split cells)
``y{i}``            (T, B, O)        output layer (when the workload has one)
``gout``            like the output  loss gradient w.r.t. the output (training)
``gates…, tc…, hn…``                 saved activations of the forward (training)
``dgi…, dgh…``      (T, B, GH)       gate gradients, input and recurrent side (training)
``dx{i}.{l}.{d}``   (T, B, I_l)      gradient w.r.t. the layer input, per direction
``dhb…, dcb…``      (chunks, B, H)   gradient w.r.t. each chunk's entering state
``gy{i}, dtop{i}``                   output-layer gradients (training with an output layer)
``g{i}.{param}``    PyTorch shapes   parameter gradients (training)
``rb{g}``           (2, k, B*m)      double-buffered exchange blocks of a group of k > 1
==================  ===============  =======================================================

Each array element has one writer per run, so repeated runs overwrite and nothing accumulates.

Split tasks (a group of k > 1 workers runs one task): a cell splits the rows of ``W_hh`` (the
recurrent GEMM ``h W_hh^T``, :func:`kernels.products.recurrent_rows`), each member writes its
block into ``rb{g}``, a barrier, then every member assembles the full gate pre-activations and
runs the (cheap) element-wise update itself, so the next step needs no second barrier; only
rank 0 writes the shared results. The backward splits the columns of ``W_hh`` (``dg W_hh``
needs no reduction that way). Non-recurrent work (input projections, output layer, input
gradients) is split over time rows, weight gradients over gate rows: no barrier needed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from kernels.cells import (
    cell_chunk_backward,
    cell_chunk_forward,
    folded_bias,
    input_projection,
    layer_weight_grads,
    output_forward,
)
from kernels.params import (
    LAYER_KINDS,
    WEIGHT_ORDER,
    compute_dtype,
    layer_params,
    param_shapes,
    row_block,
    suffix,
)
from kernels.products import Recurrent, matmul_xwt, recurrent_rows, split_rows
from kernels.reference import chunk_bounds
from wpsim.errors import ConfigError
from wpsim.model.workload import Workload

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


#: Largest ``W_ih`` (bytes) whose projection a split task divides over time steps rather than
#: gate rows, given a step for each member (env ``WPSIM_INPUT_SPLIT_BY_TIME_MAX_BYTES``
#: overrides it). Split by rows, each member streams 1/k of ``W_ih`` but computes a narrow
#: block of columns, adds the bias to it and copies it into place, which costs more than
#: reading all of a small ``W_ih`` (benchmarks/kernel.py records a case). Split by time, each member reads all of ``W_ih`` (no matter while it fits the core's cache)
#: and writes whole rows in place. The bound is half the L2 of the development machine.
INPUT_SPLIT_BY_TIME_MAX_BYTES = 1 << 20


def input_split_by_time_max_bytes() -> int:
    """:data:`INPUT_SPLIT_BY_TIME_MAX_BYTES`, or the environment's override."""
    value = os.environ.get("WPSIM_INPUT_SPLIT_BY_TIME_MAX_BYTES")
    return int(value) if value else INPUT_SPLIT_BY_TIME_MAX_BYTES


def array_specs(
    workload: Workload,
    instances: int,
    hoisted: bool,
    training: bool,
    chunk: int,
    group_sizes: list[int],
) -> dict[str, tuple]:
    """Names, shapes, dtypes (and memory order, when not C) of every shared array (see the
    module docstring).

    Examples
    --------
    >>> w = Workload(cell="lstm", layers=2, hidden=4, input=3, seq_len=5)
    >>> specs = array_specs(w, 1, hoisted=False, training=False, chunk=2, group_sizes=[1, 1])
    >>> sorted(specs)[:4], specs["h0.1.0"][0]
    (['c0.0.0', 'c0.1.0', 'h0.0.0', 'h0.1.0'], (5, 1, 4))
    """
    dt = compute_dtype(workload)
    T, B, H = workload.seq_len, workload.batch, workload.hidden
    GH, D, L = workload.gates * H, workload.directions, workload.layers
    n_chunks = -(-T // chunk)  # len(chunk_bounds(T, chunk)), without listing them
    split = any(k > 1 for k in group_sizes)
    cell = workload.cell
    specs: dict[str, tuple] = {"x": ((T, B, workload.input), dt)}
    shapes = param_shapes(workload)
    out_width = workload.output_size if workload.output != "none" else D * H
    if training:
        specs["gout"] = ((T, B, out_width), dt)
    for i in range(instances):
        for name, shape in shapes.items():
            # weights in the order the kernels multiply fastest (kernels.params.WEIGHT_ORDER)
            order = WEIGHT_ORDER if name.startswith("weight_") else "C"
            specs[f"p{i}.{name}"] = (shape, dt, order)
        if training:
            for name, shape in shapes.items():
                specs[f"g{i}.{name}"] = (shape, dt)
        for l in range(L):
            for d in range(D):
                key = f"{i}.{l}.{d}"
                specs[f"h{key}"] = ((T, B, H), dt)
                if cell == "lstm":
                    specs[f"c{key}"] = ((T, B, H), dt)
                if hoisted or split:
                    specs[f"gx{key}"] = ((T, B, GH), dt)
                if training:
                    if cell != "rnn":
                        specs[f"gates{key}"] = ((T, B, GH), dt)
                    if cell == "lstm":
                        specs[f"tc{key}"] = ((T, B, H), dt)
                        specs[f"dcb{key}"] = ((n_chunks, B, H), dt)
                    if cell == "gru":
                        specs[f"hn{key}"] = ((T, B, H), dt)
                        specs[f"dgh{key}"] = ((T, B, GH), dt)
                    specs[f"dgi{key}"] = ((T, B, GH), dt)
                    specs[f"dx{key}"] = ((T, B, workload.layer_input_size(l)), dt)
                    specs[f"dhb{key}"] = ((n_chunks, B, H), dt)
        if workload.output != "none":
            specs[f"y{i}"] = ((T, B, workload.output_size), dt)
            if training:
                specs[f"gy{i}"] = ((T, B, workload.output_size), dt)
                specs[f"dtop{i}"] = ((T, B, D * H), dt)
    for g, k in enumerate(group_sizes):
        if k > 1:
            width = max(-(-GH // k), -(-H // k))
            specs[f"rb{g}"] = ((2, k, B * width), dt)
    return specs


class TaskRunner:
    """Runs tasks of one execution on shared arrays, as member ``rank`` of a group of ``size``.

    Parameters
    ----------
    workload : Workload
    tasks : list of TaskSpec
        Indexed by task id.
    arrays : dict of str to ndarray
        The shared arrays (:func:`array_specs`).
    hoisted : bool
        The graph has ``input_gemm`` tasks (input projections outside the cells).
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
        self.cell = workload.cell
        self.dt = compute_dtype(workload)
        self.T, self.B, self.H = workload.seq_len, workload.batch, workload.hidden
        self.GH = workload.gates * self.H
        self.D, self.L = workload.directions, workload.layers
        self.n_chunks = len(chunk_bounds(self.T, chunk))
        self.leader = rank == 0
        self._params: dict[int, dict[str, np.ndarray]] = {}
        self._lp: dict[tuple[int, int, int], dict[str, Any]] = {}
        self._rec: dict[tuple[int, int, int], Recurrent] = {}
        self._hooks: dict[tuple[int, int, int], tuple[Callable, Callable]] = {}
        self._ih: dict[tuple[int, int, int], tuple[slice, np.ndarray, np.ndarray] | None] = {}
        self._private: dict[tuple, np.ndarray] = {}
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
        """Build every layer's parameter views and recurrent operators up front."""
        for i in {t[1] for t in self.tasks}:
            for l in range(self.L):
                for d in range(self.D):
                    if self.size > 1:
                        self._split_hooks(i, l, d)
                        self._ih_rows(i, l, d)
                    else:
                        self._recurrent(i, l, d)

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
                self._params_of(i), l, d == 1, sparse=self.w.sparse, dtype=self.dt
            )
        return lp

    def _recurrent(self, i: int, l: int, d: int) -> Recurrent:
        key = (i, l, d)
        rec = self._rec.get(key)
        if rec is None:
            rec = self._rec[key] = Recurrent(self._layer(i, l, d)["weight_hh"], self.B, self.dt)
        return rec

    def _buffer(self, tag: str, shape: tuple[int, ...]) -> np.ndarray:
        """A private scratch array (non-leaders of a group write their copies here)."""
        key = (tag, shape)
        buf = self._private.get(key)
        if buf is None:
            buf = self._private[key] = np.empty(shape, self.dt)
        return buf

    def _layer_input(self, i: int, l: int, a: int, b: int) -> np.ndarray:
        """Input of layer ``l`` for steps ``a..b-1``: x, or the layer below (directions concatenated)."""
        if l == 0:
            return self.a["x"][a:b]
        parts = [self.a[f"h{i}.{l - 1}.{dd}"][a:b] for dd in range(self.D)]
        return parts[0] if self.D == 1 else np.concatenate(parts, axis=2)

    def _top(self, i: int, a: int, b: int) -> np.ndarray:
        return self._layer_input(i, self.L, a, b)

    def _states(
        self, i: int, l: int, d: int, a: int, b: int
    ) -> tuple[np.ndarray | None, np.ndarray | None, int | None]:
        """State entering the chunk ``a..b-1``: the neighbouring step in processing order."""
        key = f"{i}.{l}.{d}"
        prev = (a - 1 if a > 0 else None) if d == 0 else (b if b < self.T else None)
        if prev is None:
            return None, None, prev
        h0 = self.a[f"h{key}"][prev]
        c0 = self.a[f"c{key}"][prev] if self.cell == "lstm" else None
        return h0, c0, prev

    # ---- split recurrent products -------------------------------------------------------------
    def _split_hooks(self, i: int, l: int, d: int) -> tuple[Callable, Callable]:
        """``recurrent(h, out)`` / ``recurrent_t(g, out)`` that share the product across the group."""
        key = (i, l, d)
        hooks = self._hooks.get(key)
        if hooks is not None:
            return hooks
        w_hh = self._layer(i, l, d)["weight_hh"]
        B, r, scratch = self.B, self.rank, self.scratch
        assert scratch is not None, "a group of several workers has scratch rows"
        rows = split_rows(self.GH, self.size)
        cols = split_rows(self.H, self.size)

        def blocks(parts: list[slice]) -> list[list[tuple[slice, np.ndarray]]]:
            return [
                [
                    (s, scratch[p, m, : B * (s.stop - s.start)].reshape(B, s.stop - s.start))
                    for m, s in enumerate(parts)
                ]
                for p in range(2)
            ]

        row_blocks, col_blocks = blocks(rows), blocks(cols)
        my_rows = None  # this member's rows of the product: (h, out) -> None
        if r < len(rows) and sp.issparse(w_hh):
            w_sparse = w_hh[rows[r]]  # a CSR slice

            def my_rows(h: np.ndarray, out: np.ndarray) -> None:
                recurrent_rows(w_sparse, h, None, out=out)
        elif r < len(rows):
            w_rows = row_block(w_hh, rows[r])

            def my_rows(h: np.ndarray, out: np.ndarray) -> None:
                matmul_xwt(h, w_rows, out)

        rec_cols = Recurrent(w_hh[:, cols[r]], B, self.dt) if r < len(cols) else None
        barrier = self.barrier

        def recurrent(h_prev: np.ndarray, out: np.ndarray) -> None:
            p = self._parity
            parts = row_blocks[p]
            if my_rows is not None:
                my_rows(h_prev, parts[r][1])
            barrier()
            for s, block in parts:
                out[:, s] = block
            self._parity = p ^ 1

        def recurrent_t(g: np.ndarray, out: np.ndarray) -> None:
            p = self._parity
            parts = col_blocks[p]
            if rec_cols is not None:
                rec_cols.hh_t(g, parts[r][1])
            barrier()
            for s, block in parts:
                out[:, s] = block
            self._parity = p ^ 1

        hooks = self._hooks[key] = (recurrent, recurrent_t)
        return hooks

    # ---- forward tasks ------------------------------------------------------------------------
    def _ih_rows(self, i: int, l: int, d: int) -> tuple[slice, np.ndarray, np.ndarray] | None:
        """This member's gate rows of ``W_ih`` (one aligned block in the kernels' order) and of
        the folded bias, or None when it has none."""
        key = (i, l, d)
        if key not in self._ih:
            parts = split_rows(self.GH, self.size)
            rows = None
            if self.rank < len(parts):
                part = parts[self.rank]
                lp = self._layer(i, l, d)
                weight = row_block(lp["weight_ih"], part)
                bias = folded_bias(self.cell, lp["bias_ih"], lp["bias_hh"])[part]
                rows = (part, weight, np.ascontiguousarray(bias))
            self._ih[key] = rows
        return self._ih[key]

    def _input_gemm(self, i: int, l: int, d: int, a: int, b: int) -> None:
        gx = self.a[f"gx{i}.{l}.{d}"][a:b]
        lp = self._layer(i, l, d)
        if self.size == 1:
            input_projection(self.cell, lp, self._layer_input(i, l, a, b), out=gx)
            return
        if self.size <= b - a and lp["weight_ih"].nbytes <= input_split_by_time_max_bytes():
            # split over time steps: each member projects its steps with all of W_ih, straight
            # into whole rows of gx (see INPUT_SPLIT_BY_TIME_MAX_BYTES)
            sub = self._share(b - a)
            if sub is not None:
                x = self._layer_input(i, l, a + sub.start, a + sub.stop)
                input_projection(self.cell, lp, x, out=gx[sub])
            return
        # split by gate rows, as the recurrent product: each member reads its 1/k of W_ih
        # (split over time steps, each would stream all of a large W_ih: slower, see
        # benchmarks/kernel.py)
        x = self._layer_input(i, l, a, b)
        mine = self._ih_rows(i, l, d)
        if mine is None:
            return
        part, weight, bias = mine
        rows = (b - a) * self.B
        x = np.ascontiguousarray(x, dtype=self.dt).reshape(rows, x.shape[2])
        # into a contiguous buffer, then copied: adding the bias in place on this member's
        # columns of gx (strided) is slower than adding it to the buffer and copying that
        out = self._buffer("gx_rows", (rows, part.stop - part.start))
        matmul_xwt(x, weight, out)
        out += bias
        gx.reshape(rows, self.GH)[:, part] = out

    def _cell(self, i: int, l: int, d: int, a: int, b: int) -> None:
        key = f"{i}.{l}.{d}"
        lp = self._layer(i, l, d)
        h_all = self.a[f"h{key}"]
        h0, c0, _ = self._states(i, l, d, a, b)
        rev = d == 1
        if self.size == 1:
            if self.hoisted:
                gates_x = x_chunk = self.a[f"gx{key}"][a:b]
            else:
                gates_x, x_chunk = None, self._layer_input(i, l, a, b)
            recurrent = self._recurrent(i, l, d).hh
            h_out = h_all[a:b]
            save = self.training
        else:
            gx = self.a[f"gx{key}"]
            if not self.hoisted:  # the chunk's input projection, split (see _input_gemm)
                self._input_gemm(i, l, d, a, b)
                self.barrier()
            gates_x = x_chunk = gx[a:b]
            recurrent = self._split_hooks(i, l, d)[0]
            h_out = h_all[a:b] if self.leader else self._buffer("h", (b - a, self.B, self.H))
            save = self.training and self.leader
        _, _, cT, saved = cell_chunk_forward(
            self.cell,
            lp,
            x_chunk,
            h0,
            c0,
            rev,
            save=save,
            gates_x=gates_x,
            h_out=h_out,
            recurrent=recurrent,
        )
        if not self.leader:
            return
        if save:
            assert saved is not None  # (asked for with save)
            if self.cell != "rnn":
                self.a[f"gates{key}"][a:b] = saved["gates"]
            if self.cell == "lstm":
                self.a[f"c{key}"][a:b] = saved["c"]
                self.a[f"tc{key}"][a:b] = saved["tanh_c"]
            elif self.cell == "gru":
                self.a[f"hn{key}"][a:b] = saved["hn"]
        elif self.cell == "lstm":
            self.a[f"c{key}"][a if rev else b - 1] = cT

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
        """Gradient w.r.t. this direction's h for steps ``a..b-1`` from outside the recurrence."""
        cols = slice(d * self.H, (d + 1) * self.H)
        if l == self.L - 1:
            src = self.a[f"dtop{i}"] if self.w.output != "none" else self.a["gout"]
            return src[a:b, :, cols]
        parts = [self.a[f"dx{i}.{l + 1}.{dd}"][a:b, :, cols] for dd in range(self.D)]
        # the same order as the reference: 0 + dx_fwd (exact), then + dx_rev
        return parts[0] if self.D == 1 else parts[0] + parts[1]

    def _cell_bwd(self, i: int, l: int, d: int, a: int, b: int) -> None:
        key = f"{i}.{l}.{d}"
        lp = self._layer(i, l, d)
        rev = d == 1
        B, H, GH, k = self.B, self.H, self.GH, b - a
        h0, c0, _ = self._states(i, l, d, a, b)
        zeros = self._buffer("zeros", (B, H))
        zeros.fill(0)
        saved = {"h0": zeros if h0 is None else h0, "h": self.a[f"h{key}"][a:b]}
        if self.cell == "lstm":
            saved.update(
                c0=zeros if c0 is None else c0,
                gates=self.a[f"gates{key}"][a:b],
                c=self.a[f"c{key}"][a:b],
                tanh_c=self.a[f"tc{key}"][a:b],
            )
        elif self.cell == "gru":
            saved.update(gates=self.a[f"gates{key}"][a:b], hn=self.a[f"hn{key}"][a:b])
        c_idx = a // self.chunk
        nxt = (
            (c_idx + 1 if c_idx + 1 < self.n_chunks else None)
            if d == 0
            else (c_idx - 1 if c_idx > 0 else None)
        )
        dhb = self.a[f"dhb{key}"]
        dcb = self.a.get(f"dcb{key}")
        dh_next = None if nxt is None else dhb[nxt]
        dc_next = None if nxt is None or dcb is None else dcb[nxt]
        if self.leader:
            dg = self.a[f"dgi{key}"][a:b]
            dgh = self.a[f"dgh{key}"][a:b] if self.cell == "gru" else None
        else:
            dg = self._buffer("dgi", (k, B, GH))
            dgh = self._buffer("dgh", (k, B, GH)) if self.cell == "gru" else None
        recurrent_t = (
            self._recurrent(i, l, d).hh_t if self.size == 1 else self._split_hooks(i, l, d)[1]
        )
        _, dh0, dc0, _ = cell_chunk_backward(
            self.cell,
            lp,
            saved,
            self._dh_from_above(i, l, d, a, b),
            dh_next,
            dc_next,
            rev,
            need_dx=False,
            dgates_out=dg,
            dgates_hh_out=dgh,
            recurrent_t=recurrent_t,
        )
        if self.leader:
            dhb[c_idx] = dh0
            if dcb is not None:
                dcb[c_idx] = dc0
        if not self.hoisted:  # dx = dG W_ih, split over time rows (every member holds dG)
            sub = self._share(k)
            if sub is not None:
                self._dx(lp, dg[sub], self.a[f"dx{key}"][a + sub.start : a + sub.stop])

    @staticmethod
    def _dx(lp: dict[str, Any], dg: np.ndarray, out: np.ndarray) -> None:
        w_ih = lp["weight_ih"]
        rows = dg.shape[0] * dg.shape[1]
        np.dot(dg.reshape(rows, dg.shape[2]), w_ih, out=out.reshape(rows, w_ih.shape[1]))

    def _input_gemm_bwd(self, i: int, l: int, d: int, a: int, b: int) -> None:
        sub = self._share(b - a)
        if sub is None:
            return
        key = f"{i}.{l}.{d}"
        s, e = a + sub.start, a + sub.stop
        self._dx(self._layer(i, l, d), self.a[f"dgi{key}"][s:e], self.a[f"dx{key}"][s:e])

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
        sub = self._share(self.GH)
        if sub is None:
            return
        key = f"{i}.{l}.{d}"
        dgh = self.a[f"dgh{key}"][:, :, sub] if self.cell == "gru" else None
        grads = layer_weight_grads(
            self.cell,
            self._layer_input(i, l, 0, T),
            self.a[f"h{key}"],
            None,
            self.a[f"dgi{key}"][:, :, sub],
            dgh,
            d == 1,
        )
        name = suffix(l, d == 1)
        for kind in LAYER_KINDS:
            self.a[f"g{i}.{kind}{name}"][sub] = grads[kind]
