"""Forward and BPTT of one layer-direction of a declared cell over a chunk of k steps.

:class:`CellKernel` runs the :class:`~kernels.declared.plan.ChunkPlan` of a declaration: time-
major arrays (``x`` is (k, B, I)), the declaration's parameters under their short names
(PyTorch's layout for the cells PyTorch has), float32 or float64, dense weights or CSR
``scipy.sparse`` ones.

The stages of :func:`wpsim.cells.schedule` run in order. A stage off the recurrence runs once
over all k steps: each ``matmul`` is one GEMM of ``k*B`` rows and each element-wise op one call
on (k, B, width) arrays (multi-time-step execution). A recurrent stage loops over the steps. The
backward runs the stages in reverse, the recurrent ones step by step in the opposite direction;
every parameter's gradient is formed at the end from the whole chunk (one GEMM per product, one
sum per bias).

Directions: with ``reverse=True`` the steps are processed from the last to the first; arrays are
always indexed in time order. States are carried in processing order (the step before a step of
a reverse chunk is the next one in time).

Examples
--------
>>> import numpy as np
>>> from wpsim.cells import get_cell
>>> kernel = CellKernel(get_cell("gru"), hidden=4, input_size=3, dtype="float64")
>>> params = init_params(kernel, seed=0)
>>> x = np.random.default_rng(1).standard_normal((5, 2, 3))
>>> run = kernel.forward(params, x)
>>> run.output.shape, sorted(run.states)
((5, 2, 4), ['h'])
>>> grads = kernel.backward(params, run.saved, d_output=np.ones((5, 2, 4)))
>>> grads.dx.shape, sorted(grads.dparams), grads.dstates["h"].shape
((5, 2, 3), ['bias_hh', 'bias_ih', 'weight_hh', 'weight_ih'], (2, 4))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from kernels.declared.plan import ChunkPlan
from kernels.declared.program import (
    BackwardProgram,
    ForwardProgram,
    Saved,
    build_backward,
    build_forward,
    zeros,
)
from kernels.declared.steps import Product, ProductFn
from kernels.params import WEIGHT_ORDER, MemoryOrder, aligned, row_block
from wpsim.cells import Cell, Operand

__all__ = ["CellKernel", "ChunkBackward", "ChunkForward", "Prepared", "Saved", "init_params"]

#: Parameter sets whose products a kernel keeps (both directions of a layer, and a spare), and
#: inference programs it keeps (see :meth:`CellKernel.forward`).
PREPARED_SETS = 4
#: Largest buffers an inference program may hold between calls: where a call's fixed cost
#: matters (small sizes), not where its buffers would weigh on memory.
PROGRAM_MAX_BYTES = 1 << 20


def init_params(kernel: CellKernel, seed: int = 0) -> dict[str, np.ndarray]:
    """Parameters of one layer-direction drawn like PyTorch's: every entry from
    ``uniform(-1/sqrt(H), 1/sqrt(H))`` by ``numpy.random.default_rng(seed)``, in declaration
    order, in float64 and cast to the kernel's dtype; matrices in :data:`WEIGHT_ORDER`.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> p = init_params(CellKernel(get_cell("lstm", proj_size=2), 3, 4), seed=0)
    >>> {name: v.shape for name, v in p.items()}["weight_hr"]
    (2, 3)
    """
    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(kernel.hidden)
    params = {}
    for name, shape in kernel.param_shapes.items():
        value = rng.uniform(-bound, bound, size=shape).astype(kernel.dtype)
        order: MemoryOrder = WEIGHT_ORDER if len(shape) == 2 else "C"
        params[name] = aligned(np.asarray(value, order=order))
    return params


class ChunkForward(NamedTuple):
    """:meth:`CellKernel.forward`'s result: ``output`` (k, B, width) in time order, the final
    ``states`` (after the last processed step) by name, and ``saved`` (None unless asked)."""

    output: np.ndarray
    states: dict[str, np.ndarray]
    saved: Saved | None


class Prepared(NamedTuple):
    """:meth:`CellKernel.prepare`'s result: the parameters as the kernel computes with them
    (``arrays``) and each ``matmul`` op's :class:`~kernels.declared.steps.Product`."""

    arrays: dict[str, Any]
    products: dict[str, Product]


class ChunkBackward(NamedTuple):
    """:meth:`CellKernel.backward`'s result: ``dx`` (k, B, I) or None, the gradients w.r.t. the
    initial ``dstates`` by name, ``dparams`` by parameter name (dense), and ``op_grads``: the
    gradient (k, B, width) of each op that reads a parameter, by op name, when asked instead of
    ``dparams`` (for :meth:`CellKernel.param_grads` over a whole sequence)."""

    dx: np.ndarray | None
    dstates: dict[str, np.ndarray]
    dparams: dict[str, np.ndarray]
    op_grads: dict[str, np.ndarray] | None = None


class CellKernel:
    """The numpy forward and BPTT of ``cell`` for layers of ``hidden`` units whose input has
    ``input_size`` features, in ``dtype`` (float32 or float64).

    Everything that depends only on the declaration and the sizes is worked out once
    (:class:`~kernels.declared.plan.ChunkPlan`, attribute ``plan``); :meth:`forward` and
    :meth:`backward` take any batch and chunk length.
    """

    def __init__(self, cell: Cell, hidden: int, input_size: int, dtype: Any = "float64") -> None:
        self.cell = cell
        self.hidden = hidden
        self.input_size = input_size
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"kernels compute in float32 or float64, got {self.dtype}")
        self.plan = ChunkPlan(cell, hidden, input_size)
        self.widths = self.plan.widths
        self.param_shapes = self.plan.param_shapes
        self.next_of = self.plan.next_of
        self._prepared: dict[tuple, tuple] = {}
        self._programs: dict[tuple, ForwardProgram] = {}

    # ---- shared helpers -------------------------------------------------------------------
    def prepare(self, params: Mapping[str, Any], batch: int) -> Prepared:
        """The parameters as the kernel computes with them at ``batch`` rows, and their
        products: made once for the programs of many chunks (:meth:`bind`), which then share
        them (copies where a product multiplies a gate block of a weight, or a parameter is
        not in the kernel's dtype and order: a change in place is not seen)."""
        arrays, products, _ = self._prepare(params, batch)
        return Prepared(arrays, products)

    def _prepare(self, params: Mapping[str, Any], batch: int) -> tuple[dict, dict, tuple | None]:
        """Parameters in the kernel's dtype, a :class:`Product` per ``matmul`` op, and a key
        naming this parameter set, or None.

        When every parameter is already as the kernel computes with it (its dtype, matrices in
        :data:`WEIGHT_ORDER` and aligned), nothing is copied, and the products of the last few
        parameter sets are kept by the identity of their arrays (a parameter changed in place
        is then seen as it is); the key names such a set."""
        key = (batch, *(id(params.get(name)) for name in self.param_shapes))
        memo = self._prepared.get(key)
        if memo is not None:
            return memo[0], memo[1], key
        arrays: dict[str, Any] = {}
        copied = False
        for name, shape in self.param_shapes.items():
            if name not in params:
                raise ValueError(f"params: missing {name!r} of {self.cell.label}")
            value = params[name]
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"params: {name!r} has shape {tuple(value.shape)}, expected {shape}"
                )
            if sp.issparse(value):
                converted = value.tocsr()
                if converted.dtype != self.dtype:
                    converted = converted.astype(self.dtype)
            elif len(shape) == 2:
                converted = aligned(np.asarray(value, dtype=self.dtype, order=WEIGHT_ORDER))
            else:
                converted = np.ascontiguousarray(value, dtype=self.dtype)
            copied = copied or converted is not value
            arrays[name] = converted
        products = {}
        for op in self.plan.cell.ops:
            if op.kind == "matmul":
                w = op.args[0]
                weight = arrays[w.name]
                span = self.plan.region(w)
                if span is not None:
                    rows = slice(*span)
                    copied = True
                    weight = (
                        weight[rows].tocsr() if sp.issparse(weight) else row_block(weight, rows)
                    )
                products[op.name] = Product(weight, batch, self.dtype)
        if not copied:
            if len(self._prepared) >= PREPARED_SETS:
                self._prepared.pop(next(iter(self._prepared)))
            self._prepared[key] = (arrays, products, params)
            return arrays, products, key
        return arrays, products, None

    def _state(self, value: Any, batch: int, name: str) -> np.ndarray:
        shape = (batch, self.widths[name])
        if value is None:
            return np.zeros(shape, self.dtype)
        value = np.ascontiguousarray(value, dtype=self.dtype)
        if value.shape != shape:
            raise ValueError(f"state {name!r} must have shape {shape}, got {value.shape}")
        return value

    # ---- forward --------------------------------------------------------------------------
    def forward(
        self,
        params: Mapping[str, Any],
        x: np.ndarray,
        states: Mapping[str, np.ndarray | None] | None = None,
        *,
        reverse: bool = False,
        save: bool = True,
        out: np.ndarray | None = None,
        products: Mapping[str, ProductFn] | None = None,
    ) -> ChunkForward:
        """Run the chunk forward.

        Parameters
        ----------
        params : mapping
            Every parameter of the declaration by its short name (``weight_ih``, ...).
        x : ndarray, shape (k, B, I)
            The inputs of the k steps, time order.
        states : mapping, optional
            Initial value (B, width) of each state by name; missing or None means zeros.
        reverse : bool
            Process the steps from the last to the first.
        save : bool
            Keep what :meth:`backward` needs (``saved``).
        out : ndarray, shape (k, B, width), optional
            C-contiguous buffer for the output (e.g. a time slice of a layer-wide array).
        products : mapping, optional
            ``products[op](a, out)`` computes a ``matmul`` op instead of the kernel (the hook
            through which an executor splits a product across workers): ``a @ W^T`` for one
            step's (B, C) operand, or the whole chunk's (k, B, C) one for a batched op.
        """
        plan = self.plan
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[0] < 1:
            raise ValueError(f"x must have shape (k, B, {self.input_size}), got {x.shape}")
        k, batch, _ = x.shape
        initial = self._initial(states, batch)
        if out is not None:
            self._check_buffer("out", out, (k, batch, self.widths[plan.cell.output]))
        arrays, prods, reusable = self._prepare(params, batch)
        order = range(k - 1, -1, -1) if reverse else range(k)
        # an inference call keeps nothing it builds: where that is small, its program (buffers
        # and runs) is kept for the next call with the same shapes and parameters, which copies
        # its input and states in and its output out
        # (a program built with product hooks is kept for the same hook functions)
        bound = k * batch * sum(self.widths.values()) * self.dtype.itemsize
        keep = not save and reusable is not None and bound <= PROGRAM_MAX_BYTES
        hooks = tuple(sorted((op, id(fn)) for op, fn in (products or {}).items()))
        key = (k, batch, reverse, reusable, hooks)
        program = self._programs.get(key) if keep else None
        if program is None and keep:
            mine = {s: v.copy() for s, v in initial.items()}
            program = build_forward(
                plan,
                self.dtype,
                arrays,
                prods,
                np.empty_like(x),
                mine,
                order,
                save=save,
                products=products,
            )
            if len(self._programs) >= PREPARED_SETS:
                self._programs.pop(next(iter(self._programs)))
            self._programs[key] = program
        if keep:
            assert program is not None and program.x is not None  # kept, or built just above
            program.x[...] = x
            for s, value in initial.items():
                program.initial[s][...] = value
        else:
            into = {plan.cell.output: out} if out is not None else None
            program = build_forward(
                plan,
                self.dtype,
                arrays,
                prods,
                x,
                initial,
                order,
                save=save,
                products=products,
                into=into,
            )
        program.run()
        values = program.values
        last = order[-1]
        finals = {s: np.array(values[v][last]) for s, v in self.next_of.items()}
        result = values[plan.cell.output]
        if out is not None and result is not out:
            out[...] = result
            result = out
        elif program.x is not x:  # a kept program's buffer: the caller gets its own copy
            result = result.copy()
        saved = None
        if save:
            kept = {name: values[name] for name in plan.full[True]}
            kept = {name: v for name, v in kept.items() if isinstance(v, np.ndarray)}
            ext = {v: e[0] for v, e in program.extended.items()}
            saved = Saved(values["x"], initial, kept, ext, order.step < 0)
        return ChunkForward(result, finals, saved)

    def bind(
        self,
        params: Mapping[str, Any] | Prepared,
        x: np.ndarray | tuple[np.ndarray, ...],
        states: Mapping[str, np.ndarray | None] | None = None,
        *,
        reverse: bool = False,
        save: bool = False,
        into: Mapping[str, np.ndarray] | None = None,
        inputs: Mapping[str, np.ndarray] | None = None,
        finals: Mapping[str, np.ndarray] | None = None,
        products: Mapping[str, ProductFn] | None = None,
        pool: dict | None = None,
    ) -> ForwardProgram:
        """The chunk forward bound to arrays that it reads and writes where they are, at each
        :meth:`ForwardProgram.run <kernels.declared.program.ForwardProgram.run>`: no set-up,
        no allocation and no copy of its input or output per run (what an executor's task runs
        again and again, :mod:`kernels.tasks`). The same arithmetic as :meth:`forward`.

        Parameters
        ----------
        params : mapping or Prepared
            As for :meth:`forward`, or :meth:`prepare`'s result for this batch (shared between
            programs; see there).
        x : ndarray (k, B, I), or tuple of ndarrays (k, B, I_i)
            The input, or its column blocks (side by side, gathered at each run).
        states : mapping, optional
            Initial value (B, width) of each state by name, read at each run; missing or None:
            zeros.
        reverse, save, products
            As for :meth:`forward` (``save`` keeps every value the backward reads in full).
        into : mapping, optional
            Buffers (k, B, width) that receive values by op name (the output, kept values).
        inputs : mapping, optional
            Values (k, B, width) computed elsewhere, by op name (a hoisted input product):
            read instead of running the op.
        finals : mapping, optional
            Buffers (B, width) that receive states, by name, after the last processed step.
        pool : dict, optional
            Scratch buffers shared with other programs that never run at the same time.

        Examples
        --------
        >>> from wpsim.cells import get_cell
        >>> kernel = CellKernel(get_cell("lstm"), hidden=2, input_size=3)
        >>> params, x = init_params(kernel), np.ones((4, 1, 3))
        >>> h, c = np.empty((4, 1, 2)), np.empty((1, 2))
        >>> program = kernel.bind(params, x, into={"h_new": h}, finals={"c": c})
        >>> program.run()
        >>> run = kernel.forward(params, x)
        >>> bool((h == run.output).all() and (c == run.states["c"]).all())
        True
        """
        plan = self.plan
        parts = x if isinstance(x, tuple) else (x,)
        k, batch = parts[0].shape[:2]
        if sum(p.shape[2] for p in parts) != self.input_size:
            raise ValueError(f"x: its blocks must have {self.input_size} columns in all")
        for part in parts:
            self._check_buffer("x", part, (k, batch, part.shape[2]))
        initial = self._initial(states, batch, copy=False, pool=pool)
        for name, buffer in {**(into or {}), **(inputs or {})}.items():
            self._check_buffer(name, buffer, (k, batch, self.widths[name]))
        for s, buffer in (finals or {}).items():
            if buffer.shape != (batch, self.widths[s]) or buffer.dtype != self.dtype:
                raise ValueError(f"finals {s!r} must be {self.dtype} {(batch, self.widths[s])}")
        if isinstance(params, Prepared):
            arrays, prods = params
        else:
            arrays, prods = self.prepare(params, batch)
        order = range(k - 1, -1, -1) if reverse else range(k)
        return build_forward(
            plan,
            self.dtype,
            arrays,
            prods,
            x,
            initial,
            order,
            save=save,
            products=products,
            into=into,
            inputs=inputs,
            finals=finals,
            pool=pool,
        )

    def _check_buffer(self, name: str, buffer: np.ndarray, shape: tuple[int, ...]) -> None:
        if buffer.shape != shape or buffer.dtype != self.dtype or not buffer.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous {self.dtype} {shape}")

    def _initial(
        self,
        states: Mapping[str, np.ndarray | None] | None,
        batch: int,
        copy: bool = True,
        pool: dict | None = None,
    ) -> dict[str, np.ndarray]:
        """Each state's initial value (B, width): zeros where missing or None (shared through
        ``pool``: nothing writes an initial state); converted (``copy``) or checked to be as
        the kernel reads it."""
        states = dict(states or {})
        unknown = set(states) - set(self.next_of)
        if unknown:
            raise ValueError(f"unknown state {sorted(unknown)[0]!r}; states: {list(self.next_of)}")
        initial = {}
        for s in self.next_of:
            value = states.get(s)
            if value is not None and not copy:
                self._check_buffer(f"state {s!r}", value, (batch, self.widths[s]))
            elif value is None and pool is not None:
                value = zeros(pool, (s,), (batch, self.widths[s]), self.dtype)
            initial[s] = self._state(value, batch, s)
        return initial

    # ---- backward -------------------------------------------------------------------------
    def backward(
        self,
        params: Mapping[str, Any],
        saved: Saved,
        d_output: np.ndarray | None = None,
        d_states: Mapping[str, np.ndarray | None] | None = None,
        *,
        need_dx: bool = True,
        products_t: Mapping[str, ProductFn] | None = None,
        op_grads: bool = False,
    ) -> ChunkBackward:
        """BPTT of the chunk whose forward gave ``saved``.

        Parameters
        ----------
        params : mapping
            As given to :meth:`forward`.
        saved : Saved
            The forward's ``saved``.
        d_output : ndarray, shape (k, B, width), optional
            Gradient of the loss w.r.t. the output at each step (None: zeros).
        d_states : mapping, optional
            Gradient w.r.t. each final state (from the next chunk, or a loss on the last
            state); missing or None means zeros.
        need_dx : bool
            Compute ``dx`` (skip for a first layer whose input needs no gradient; the gradient
            of a state that carries the input, such as QRNN's ``xp``, is then left out too).
        products_t : mapping, optional
            ``products_t[op](g, out)`` writes ``g @ W`` for a ``matmul`` op instead of the
            kernel (see :meth:`forward`'s ``products``).
        op_grads : bool
            Return the gradients of the ops that read parameters (``op_grads``) instead of the
            parameters' (``dparams`` is then empty): an executor forms the parameters' gradients
            once over the whole sequence (:meth:`param_grads`).

        Returns
        -------
        ChunkBackward
            ``dx`` (k, B, I), ``dstates`` (B, width) by state, ``dparams`` by parameter name
            (dense, also for a sparse weight).
        """
        plan = self.plan
        k, batch, _ = saved.x.shape
        arrays, prods, _ = self._prepare(params, batch)
        width = self.widths[plan.cell.output]
        if d_output is not None:
            d_output = np.asarray(d_output, dtype=self.dtype)
            if d_output.shape != (k, batch, width):
                raise ValueError(
                    f"d_output must have shape {(k, batch, width)}, got {d_output.shape}"
                )
        d_states = d_states or {}
        finals = {s: self._state(d_states.get(s), batch, s) for s in self.next_of}
        program = build_backward(
            plan,
            self.dtype,
            arrays,
            prods,
            saved,
            d_output,
            finals,
            need_dx=need_dx,
            products_t=products_t,
        )
        program.run()
        grads = program.grads
        dstates = dict(program.initial)
        dx = grads.get("x") if need_dx else None
        if op_grads:
            wanted = {rule[0] for rule in plan.param_rules}
            return ChunkBackward(dx, dstates, {}, {op: grads[op] for op in wanted})
        dparams = self._param_grads(program.values, grads, saved, program.order)
        return ChunkBackward(dx, dstates, dparams)

    def bind_backward(
        self,
        params: Mapping[str, Any] | Prepared,
        saved: Saved,
        d_output: np.ndarray | None = None,
        d_states: Mapping[str, np.ndarray | None] | None = None,
        *,
        products_t: Mapping[str, ProductFn] | None = None,
        into: Mapping[str, np.ndarray] | None = None,
        dstates_into: Mapping[str, np.ndarray] | None = None,
        pool: dict | None = None,
    ) -> BackwardProgram:
        """The chunk's BPTT bound to arrays it reads and writes where they are, at each
        :meth:`BackwardProgram.run <kernels.declared.program.BackwardProgram.run>` (what an
        executor's backward task runs again and again): ``saved``'s arrays, ``d_output`` and
        ``d_states`` are read then. The same arithmetic as :meth:`backward` with ``op_grads``.

        ``into``: buffers (k, B, width) that receive the gradients of the ops that read a
        parameter, by op name, and ``x`` (k, B, I) the gradient w.r.t. the input;
        ``dstates_into``: buffers (B, width) that receive the gradients w.r.t. the initial
        states; ``params``, ``products_t`` and ``pool`` as for :meth:`bind` and
        :meth:`backward`.

        Examples
        --------
        >>> from wpsim.cells import get_cell
        >>> kernel = CellKernel(get_cell("gru"), hidden=2, input_size=3)
        >>> params, x = init_params(kernel), np.ones((4, 1, 3))
        >>> saved, dy = kernel.forward(params, x).saved, np.ones((4, 1, 2))
        >>> dx, dh = np.empty((4, 1, 3)), np.empty((1, 2))
        >>> kernel.bind_backward(params, saved, dy, into={"x": dx}, dstates_into={"h": dh}).run()
        >>> back = kernel.backward(params, saved, dy, op_grads=True)
        >>> bool((dx == back.dx).all() and (dh == back.dstates["h"]).all())
        True
        """
        plan = self.plan
        k, batch = saved.x.shape[:2]
        arrays = [saved.x, *saved.values.values(), *saved.extended.values()]
        arrays += [v for v in (d_output, *(d_states or {}).values()) if v is not None]
        for array in arrays:
            if array.dtype != self.dtype:
                raise ValueError(f"bind_backward reads {self.dtype} arrays, got {array.dtype}")
        width = self.widths[plan.cell.output]
        if d_output is not None and d_output.shape != (k, batch, width):
            raise ValueError(f"d_output must have shape {(k, batch, width)}")
        wanted = {rule[0] for rule in plan.param_rules} | {"x"}
        for name, buffer in (into or {}).items():
            if name not in wanted:
                raise ValueError(f"into: {name!r} is not x or an op that reads a parameter")
            shape = (k, batch, self.input_size if name == "x" else self.widths[name])
            self._check_buffer(name, buffer, shape)
        if isinstance(params, Prepared):
            arrays_, prods = params
        else:
            arrays_, prods = self.prepare(params, batch)
        return build_backward(
            plan,
            self.dtype,
            arrays_,
            prods,
            saved,
            d_output,
            dict(d_states or {}),
            products_t=products_t,
            into=into,
            dstates_into=dstates_into,
            pool=pool,
        )

    def param_grads(
        self,
        values: Mapping[str, np.ndarray],
        op_grads: Mapping[str, np.ndarray],
        states0: Mapping[str, np.ndarray | None] | None = None,
        *,
        reverse: bool = False,
        names: Any = None,
    ) -> dict[str, np.ndarray]:
        """The parameters' gradients over a whole sequence, one GEMM per product: from the
        values a forward saved (``x`` and the ops of ``plan.full[True]``, each (T, B, width) in
        time order), the ``op_grads`` of :meth:`backward` (concatenated over chunks), and the
        initial states (missing or None: zeros, whose terms are left out).

        ``names`` restricts the result to those parameters (a worker's share).

        Examples
        --------
        >>> from wpsim.cells import get_cell
        >>> kernel = CellKernel(get_cell("rnn"), hidden=3, input_size=2)
        >>> p = init_params(kernel, seed=0)
        >>> x = np.random.default_rng(0).standard_normal((4, 1, 2))
        >>> run = kernel.forward(p, x)
        >>> back = kernel.backward(p, run.saved, np.ones((4, 1, 3)), op_grads=True)
        >>> whole = kernel.backward(p, run.saved, np.ones((4, 1, 3)))
        >>> values = {"x": x, **run.saved.values}
        >>> g = kernel.param_grads(values, back.op_grads)
        >>> all(np.allclose(g[n], whole.dparams[n], rtol=1e-14) for n in g)
        True
        """
        states0 = states0 or {}
        steps = len(values["x"])
        order = range(steps - 1, -1, -1) if reverse else range(steps)
        start = {s: v for s, v in states0.items() if v is not None}
        table = dict(values)
        wanted = set(self.param_shapes) if names is None else set(names)
        dparams = {n: np.zeros(self.param_shapes[n], self.dtype) for n in wanted}
        return self._accumulate(
            dparams, op_grads, lambda g, a: self._whole_rows(g, a, table, start, order)
        )

    def _accumulate(
        self,
        dparams: dict[str, np.ndarray],
        grads: Mapping[str, np.ndarray],
        rows: Callable[[np.ndarray, Operand], list[tuple[np.ndarray, np.ndarray]]],
    ) -> dict[str, np.ndarray]:
        """Add every parameter rule's gradient into ``dparams`` (the parameters it holds): one
        GEMM per product over the row blocks ``rows(g, operand)`` gives."""
        for op, kind, position, param, span, other in self.plan.param_rules:
            if param not in dparams:
                continue
            target = dparams[param] if span is None else dparams[param][span[0] : span[1]]
            g = grads[op]
            if kind == "matmul":
                for g2, a2 in rows(g, other):
                    target += g2.T @ a2
            elif kind == "mul":
                for g2, a2 in rows(g, other):
                    target += np.einsum("ij,ij->j", g2, a2)
            elif kind == "sub" and position == 1:
                target -= g.sum(axis=(0, 1))
            else:
                target += g.sum(axis=(0, 1))
        return dparams

    def _whole_rows(
        self,
        g: np.ndarray,
        a: Operand,
        values: Mapping[str, np.ndarray],
        start: Mapping[str, np.ndarray],
        order: range,
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """As :meth:`_rows` over a whole sequence: a state's value at each step is its next
        value one step before, and its initial value (when given) at the first."""
        plan = self.plan
        width = g.shape[-1]
        span = plan.region(a)
        c = plan.operand_width(a)

        def cut(v):
            return v if span is None else v[..., span[0] : span[1]]

        if a.name not in self.next_of:
            return [(g.reshape(-1, width), cut(values[a.name]).reshape(-1, c))]
        v = values[self.next_of[a.name]]
        if order.step < 0:
            pairs = [(g[:-1], cut(v[1:]))]
            first = g[-1:]
        else:
            pairs = [(g[1:], cut(v[:-1]))]
            first = g[:1]
        if a.name in start:
            pairs.append((first, cut(np.asarray(start[a.name], self.dtype))[None]))
        return [(gg.reshape(-1, width), aa.reshape(-1, c)) for gg, aa in pairs if len(gg)]

    def _param_grads(
        self, values: Mapping[str, Any], grads: Mapping[str, np.ndarray], saved: Saved, order: range
    ) -> dict[str, np.ndarray]:
        """Every parameter's gradient over the whole chunk: one GEMM per product."""
        dparams = {name: np.zeros(shape, self.dtype) for name, shape in self.param_shapes.items()}
        return self._accumulate(dparams, grads, lambda g, a: self._rows(g, a, values, saved, order))

    def _rows(
        self, g: np.ndarray, a: Operand, values: Mapping[str, Any], saved: Saved, order: range
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Row blocks ``(g2, a2)`` pairing the op's gradient rows with operand ``a``'s values."""
        plan = self.plan
        width = g.shape[-1]
        span = plan.region(a)
        c = plan.operand_width(a)

        def cut(v):
            return v if span is None else v[..., span[0] : span[1]]

        seq = values[a.name]
        if isinstance(seq, np.ndarray):
            return [(g.reshape(-1, width), cut(seq).reshape(-1, c))]
        # a state read through per-step views: its next value at the steps before, and the
        # initial state at the first processed step
        v = values[self.next_of[a.name]]
        start = cut(saved.states0[a.name])[None]
        if order.step < 0:  # reverse: step j reads step j + 1
            pairs = [(g[:-1], cut(v[1:])), (g[-1:], start)]
        else:
            pairs = [(g[1:], cut(v[:-1])), (g[:1], start)]
        return [(gg.reshape(-1, width), aa.reshape(-1, c)) for gg, aa in pairs if len(gg)]
