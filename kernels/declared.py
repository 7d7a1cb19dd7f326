"""Forward and BPTT of any declared cell, interpreted from its declaration (:mod:`wpsim.cells`).

:class:`CellKernel` runs one layer-direction over a chunk of k steps: time-major arrays (``x``
is (k, B, I)), the declaration's parameters under their short names (PyTorch's layout for the
cells PyTorch has), float32 or float64, dense weights or CSR ``scipy.sparse`` ones.

How a chunk runs (multi-time-step execution)
--------------------------------------------
The stages of :func:`wpsim.cells.schedule` run in order. A stage off the recurrence runs once
over all k steps: each ``matmul`` is one GEMM of ``k*B`` rows and each element-wise op one call
on (k, B, width) arrays. A recurrent stage loops over the steps. The backward runs the stages in
reverse, the recurrent ones step by step in the opposite direction; the gradient of every
parameter is formed at the end from the whole chunk (one GEMM per product, one sum per bias).

Buffers are allocated once per call. A value lives in a (k, B, width) array when the backward
needs it, another stage reads it or it is the output; otherwise in one buffer (two for a value
that becomes a state, read one step later) reused at every step. Gradients likewise; a gradient
that passes unchanged through ``add``/``identity`` shares its buffer with the op's, and the first
contribution to a buffer (or a gate block of it) is written in place rather than added to zeros.

Directions: with ``reverse=True`` the steps are processed from the last to the first; arrays are
always indexed in time order. States are carried in processing order (the "previous" step of a
reverse chunk is the next one in time).

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
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp

from kernels.cells import Recurrent, matmul_xwt, sigmoid
from kernels.params import WEIGHT_ORDER, aligned, row_block
from wpsim.cells import (
    Cell,
    Operand,
    param_shapes,
    schedule,
    value_gates,
    value_widths,
)

__all__ = ["CellKernel", "ChunkBackward", "ChunkForward", "Saved", "init_params"]

ALL = slice(None)
_UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply}
#: ``fn(a, out)`` writing ``a @ W^T`` (forward) or ``g @ W`` (backward) into ``out``.
ProductFn = Callable[[np.ndarray, np.ndarray], None]


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
        order = WEIGHT_ORDER if len(shape) == 2 else "C"
        params[name] = aligned(np.asarray(value, order=order))
    return params


class _Const:
    """A parameter seen as a sequence: the same array at every index."""

    __slots__ = ("value",)

    def __init__(self, value: np.ndarray) -> None:
        self.value = value

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.value


class _Product:
    """``a @ W^T`` and ``g @ W`` for one ``matmul`` op's weight (dense or CSR)."""

    def __init__(self, weight: Any, batch: int, dtype: np.dtype) -> None:
        self.weight = weight
        self.sparse = sp.issparse(weight)
        self.recurrent = Recurrent(weight, batch, dtype)

    def step(self, a: np.ndarray, out: np.ndarray) -> None:
        self.recurrent.hh(a, out)

    def batched(self, a: np.ndarray, out: np.ndarray) -> None:
        flat = out.reshape(-1, out.shape[-1])
        a2 = a.reshape(-1, a.shape[-1])
        if self.sparse:
            flat[...] = (self.weight @ a2.T).T
        else:
            matmul_xwt(a2, self.weight, flat)

    def transposed(self, g: np.ndarray, out: np.ndarray) -> None:
        """``out[...] = g @ W`` for (B, R) or (k, B, R) ``g``."""
        if self.sparse:
            if g.ndim == 2:
                self.recurrent.hh_t(g, out)
            else:
                out[...] = (self.weight.T @ g.reshape(-1, g.shape[-1]).T).T.reshape(out.shape)
        elif out.flags.c_contiguous:
            np.dot(g.reshape(-1, g.shape[-1]), self.weight, out=out.reshape(-1, out.shape[-1]))
        else:
            np.matmul(g, self.weight, out=out)


@dataclass
class Saved:
    """What :meth:`CellKernel.backward` needs from a forward (``save=True``): the input, the
    initial states, the values kept over the chunk (by name, time order) and the direction."""

    x: np.ndarray
    states0: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    extended: dict[str, np.ndarray]
    reverse: bool


class ChunkForward(NamedTuple):
    """:meth:`CellKernel.forward`'s result: ``output`` (k, B, width) in time order, the final
    ``states`` (after the last processed step) by name, and ``saved`` (None unless asked)."""

    output: np.ndarray
    states: dict[str, np.ndarray]
    saved: Saved | None


class ChunkBackward(NamedTuple):
    """:meth:`CellKernel.backward`'s result: ``dx`` (k, B, I) or None, the gradients w.r.t. the
    initial ``dstates`` by name, and ``dparams`` by parameter name (dense)."""

    dx: np.ndarray | None
    dstates: dict[str, np.ndarray]
    dparams: dict[str, np.ndarray]


def _first_writes(regions: list[tuple[int, int]], width: int):
    """For contributions to regions of a buffer of ``width`` in execution order: which write
    (True) rather than add, and the regions none covers (they must be zero). None when a
    contribution covers part of what came before (the buffer is then zeroed and added to)."""
    covered: list[tuple[int, int]] = []
    writes = []
    for lo, hi in regions:
        overlap = sum(max(0, min(hi, b) - max(lo, a)) for a, b in covered)
        if overlap == 0:
            writes.append(True)
            covered.append((lo, hi))
        elif overlap == hi - lo:
            writes.append(False)
        else:
            return None
    gaps, at = [], 0
    for lo, hi in sorted(covered):
        if lo > at:
            gaps.append((at, lo))
        at = hi
    if at < width:
        gaps.append((at, width))
    return writes, gaps


def _extended_views(ext: np.ndarray, reverse: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Views of a (k+1, B, w) array holding a state's next value at k steps and its initial
    value in one more slot: (the k values in time order, the state's value read at each step,
    the initial value's slot)."""
    k = len(ext) - 1
    if reverse:
        return ext[:k], ext[1:], k
    return ext[1:], ext[:k], 0


class CellKernel:
    """The numpy forward and BPTT of ``cell`` for layers of ``hidden`` units whose input has
    ``input_size`` features, in ``dtype`` (float32 or float64).

    Everything that depends only on the declaration and the sizes (stages, widths, which values
    are kept, which gradient buffers are shared and which contributions write rather than add)
    is worked out here, once; :meth:`forward` and :meth:`backward` take any batch and chunk
    length.
    """

    def __init__(self, cell: Cell, hidden: int, input_size: int, dtype: Any = "float64") -> None:
        self.cell = cell
        self.hidden = hidden
        self.input_size = input_size
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"kernels compute in float32 or float64, got {self.dtype}")
        self.widths = value_widths(cell, hidden, input_size)
        self.param_shapes = param_shapes(cell, hidden, input_size)
        self.gates = value_gates(cell)
        self.stages = schedule(cell)
        self.ops = {op.name: op for op in cell.ops}
        self.index = {op.name: i for i, op in enumerate(cell.ops)}
        self.stage_of = {"x": -1}
        for number, stage in enumerate(self.stages):
            self.stage_of.update(dict.fromkeys(stage.ops, number))
        self.params = {p.name: p for p in cell.params}
        self.next_of = {s.name: s.next for s in cell.states}
        self.state_of = {s.next: s.name for s in cell.states}
        # uses of every value (x, states, ops) as operands: (op name, position)
        self.uses: dict[str, list[tuple[str, int]]] = {name: [] for name in self.widths}
        for op in cell.ops:
            for position, a in enumerate(op.args):
                if a.name not in self.params:
                    self.uses[a.name].append((op.name, position))
        self.batched_read = {
            s: any(not self._recurrent(op) for op, _ in self.uses[s]) for s in self.next_of
        }
        # a value whose state is read by a batched stage lives in k+1 slots, the state's
        # initial value in the extra one, so that the state's reads are a view of it
        self.extended = {v for s, v in self.next_of.items() if self.batched_read[s]}
        self._forward_full = {save: self._full_values(save) for save in (False, True)}
        self._plan_gradients()

    # ---- static analysis ------------------------------------------------------------------
    def _recurrent(self, op: str) -> bool:
        return self.stages[self.stage_of[op]].recurrent

    def _region(self, a: Operand) -> tuple[int, int] | None:
        """Columns of ``a``'s gate block in its value (None for the whole value)."""
        if not a.gate:
            return None
        blocks = self.gates[a.name]
        rows = self.param_shapes[a.name][0] if a.name in self.params else self.widths[a.name]
        size = rows // len(blocks)
        start = blocks.index(a.gate) * size
        return start, start + size

    def _value_of(self, name: str) -> str:
        """The value whose array holds ``name``'s values (a state's is its next value)."""
        return self.next_of.get(name, name)

    def _full_values(self, save: bool) -> set[str]:
        """Ops whose values need (k, B, width) arrays (the others use per-step buffers)."""
        kept = set()
        if save:
            for op in self.cell.ops:
                values = [a.name for a in op.args if a.name not in self.params]
                if op.kind == "mul":
                    kept.update(values)
                elif op.kind == "matmul":
                    kept.add(op.args[1].name)
                elif op.kind in ("sigmoid", "tanh", "relu"):
                    kept.add(op.name)
        kept = {self._value_of(name) for name in kept}
        full = set()
        for op in self.cell.ops:
            stage = self.stage_of[op.name]
            readers = list(self.uses[op.name])
            if op.name in self.state_of:
                readers += self.uses[self.state_of[op.name]]
            if (
                not self.stages[stage].recurrent
                or op.name == self.cell.output
                or op.name in kept
                or op.name in self.extended
                or any(self.stage_of[reader] != stage for reader, _ in readers)
            ):
                full.add(op.name)
        return full

    def _plan_gradients(self) -> None:
        """Shared gradient buffers, buffer kinds, and which contributions write or add."""
        cell = self.cell
        # a value used once, whole, by add/identity (or as sub's first operand) has the
        # gradient of that op: it shares its buffer
        alias: dict[str, str] = {}
        for op in cell.ops:
            if op.kind not in ("add", "sub", "identity"):
                continue
            for position, a in enumerate(op.args):
                if (op.kind == "sub" and position == 1) or a.gate or a.name not in self.ops:
                    continue
                if (
                    self.uses[a.name] == [(op.name, position)]
                    and a.name != cell.output
                    and a.name not in self.state_of
                ):
                    alias[a.name] = op.name

        def root(name: str) -> str:
            while name in alias:
                name = alias[name]
            return name

        self.grad_root = {name: root(name) for name in self.widths if name not in self.next_of}
        members: dict[str, list[str]] = {}
        for name, r in self.grad_root.items():
            members.setdefault(r, []).append(name)
        needs_param_grads = {
            op.name for op in cell.ops if any(a.name in self.params for a in op.args)
        }
        # contributions to each root: (order key, (op, position) or kind, region)
        n = len(cell.ops)
        self.writes: dict[tuple[str, int], bool] = {}
        self.grad_kind: dict[str, str] = {}
        self.grad_gaps: dict[str, list[tuple[int, int]]] = {}
        self.seeds: dict[str, list[tuple[int, int]]] = {}
        self.zero_initial: dict[str, bool] = {}  # states: zero the buffer of dstate0
        for r, group in members.items():
            width = self.widths[r]
            home = self.stage_of.get(r, -1)
            events = []
            for name in [r] + ([self.state_of[r]] if r in self.state_of else []):
                for op, position in self.uses[name]:
                    if alias.get(name) == op:
                        continue
                    stage = self.stage_of[op]
                    later_step = name != r  # a state read: the contribution comes one step later
                    key = (-stage, 0 if later_step else 2, n - self.index[op])
                    span = self._region(self.ops[op].args[position]) or (0, width)
                    events.append((key, (op, position), span, later_step))
            if r == cell.output:
                events.append(((-home, 1, 0), "dy", (0, width), False))
            events.sort(key=lambda e: e[0])
            has_state_reads = any(e[3] for e in events)
            per_step = (
                r != "x"
                and self.stages[home].recurrent
                and r not in self.extended
                and not (set(group) & needs_param_grads)
                and all(self.stage_of.get(m) == home for m in group)
                and all(-e[0][0] == home for e in events)
            )
            plan = _first_writes([e[2] for e in events], width)
            if plan is None or (has_state_reads and not per_step):
                writes, gaps = [False] * len(events), [(0, width)]
                per_step = False
            else:
                writes, gaps = plan
            for event, write in zip(events, writes, strict=True):
                if event[1] != "dy":
                    self.writes[event[1]] = write
                else:
                    self.writes[("dy", 0)] = write
            kind = "full"
            if r in self.extended:
                kind = "extended"
            elif per_step:
                kind = "rotating" if r in self.state_of else "single"
            self.grad_kind[r] = kind
            self.grad_gaps[r] = gaps
            if r in self.state_of:
                s_events = [(e[2], w) for e, w in zip(events, writes, strict=True) if e[3]]
                # the last processed step has no later step: its state gradient is seeded,
                # in the regions the state's reads write, with the given final-state gradient
                self.seeds[r] = [span for span, write in s_events if write] if per_step else []
                covered = sum(hi - lo for span, write in s_events if write for lo, hi in [span])
                self.zero_initial[r] = not per_step or covered < width
        self.alias = alias

    # ---- forward --------------------------------------------------------------------------
    def _prepare(self, params: Mapping[str, Any], batch: int) -> tuple[dict, dict]:
        """Parameters in the kernel's dtype, and a :class:`_Product` per ``matmul`` op."""
        arrays: dict[str, Any] = {}
        for name, shape in self.param_shapes.items():
            if name not in params:
                raise ValueError(f"params: missing {name!r} of {self.cell.label}")
            value = params[name]
            if tuple(value.shape) != shape:
                raise ValueError(
                    f"params: {name!r} has shape {tuple(value.shape)}, expected {shape}"
                )
            if sp.issparse(value):
                value = value.tocsr()
                arrays[name] = value if value.dtype == self.dtype else value.astype(self.dtype)
            elif len(shape) == 2:
                arrays[name] = aligned(np.asarray(value, dtype=self.dtype, order=WEIGHT_ORDER))
            else:
                arrays[name] = np.ascontiguousarray(value, dtype=self.dtype)
        products = {}
        for op in self.cell.ops:
            if op.kind == "matmul":
                w = op.args[0]
                weight = arrays[w.name]
                span = self._region(w)
                if span is not None:
                    rows = slice(*span)
                    weight = (
                        weight[rows].tocsr() if sp.issparse(weight) else row_block(weight, rows)
                    )
                products[op.name] = _Product(weight, batch, self.dtype)
        return arrays, products

    def _state(self, value: Any, batch: int, name: str) -> np.ndarray:
        shape = (batch, self.widths[name])
        if value is None:
            return np.zeros(shape, self.dtype)
        value = np.ascontiguousarray(value, dtype=self.dtype)
        if value.shape != shape:
            raise ValueError(f"state {name!r} must have shape {shape}, got {value.shape}")
        return value

    def _operand(self, steps: dict, arrays: dict, a: Operand) -> Any:
        """``a`` as a sequence indexable by a step (or by ALL)."""
        if a.name in self.params:
            value = arrays[a.name]
            span = self._region(a)
            return _Const(value if span is None else value[slice(*span)])
        base = steps[a.name]
        span = self._region(a)
        if span is None:
            return base
        if isinstance(base, np.ndarray):
            return base[..., span[0] : span[1]]
        return [b[:, span[0] : span[1]] for b in base]

    def _bind_states(self, steps: dict, bounds: dict, initial: dict, order: range) -> None:
        """Make each state readable at every step: its initial value at the first processed
        step, its next value of the step before at the others."""
        first = order[0]
        k = len(order)
        for s, v in self.next_of.items():
            if v in self.extended:
                steps[s] = bounds[v][1]
                continue
            values = steps[v]
            shift = 1 if order.step < 0 else -1
            steps[s] = [initial[s] if j == first else values[j + shift] for j in range(k)]

    def _allocate(self, name: str, kind: str, k: int, batch: int, reverse: bool, zero=False):
        """An array (or per-step buffers) for ``name``: returns (indexable, (extended, view of
        the earlier step, slot of the initial value) or None)."""
        width = self.widths[name]
        make = np.zeros if zero else np.empty
        if kind == "extended":
            ext = make((k + 1, batch, width), self.dtype)
            values, earlier, slot = _extended_views(ext, reverse)
            return values, (ext, earlier, slot)
        if kind == "full":
            return make((k, batch, width), self.dtype), None
        count = 2 if kind == "rotating" else 1
        buffers = make((count, batch, width), self.dtype)
        return [buffers[j % count] for j in range(k)], None

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
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[0] < 1:
            raise ValueError(f"x must have shape (k, B, {self.input_size}), got {x.shape}")
        k, batch, _ = x.shape
        states = dict(states or {})
        unknown = set(states) - set(self.next_of)
        if unknown:
            raise ValueError(f"unknown state {sorted(unknown)[0]!r}; states: {list(self.next_of)}")
        initial = {s: self._state(states.get(s), batch, s) for s in self.next_of}
        arrays, prods = self._prepare(params, batch)
        order = range(k - 1, -1, -1) if reverse else range(k)
        full = self._forward_full[save]
        steps: dict[str, Any] = {}
        bounds: dict[str, tuple] = {}
        if "x" in self.extended:
            steps["x"], bounds["x"] = self._allocate("x", "extended", k, batch, reverse)
            steps["x"][...] = x
        else:
            steps["x"] = x
        for op in self.cell.ops:
            name = op.name
            if name == self.cell.output and out is not None and name not in self.extended:
                if out.shape != (k, batch, self.widths[name]) or not out.flags.c_contiguous:
                    raise ValueError(f"out must be C-contiguous {(k, batch, self.widths[name])}")
                steps[name] = out
                continue
            kind = "extended" if name in self.extended else "full" if name in full else (
                "rotating" if name in self.state_of else "single")  # fmt: skip
            steps[name], extended = self._allocate(name, kind, k, batch, reverse)
            if extended:
                bounds[name] = extended
        for v, (ext, _, slot) in bounds.items():
            ext[slot] = initial[self.state_of[v]]
        self._bind_states(steps, bounds, initial, order)
        hooks = dict(products or {})
        for stage in self.stages:
            runs = [self._forward_op(op, steps, arrays, prods, hooks, stage.recurrent)
                    for op in stage.ops]  # fmt: skip
            if stage.recurrent:
                for j in order:
                    for run in runs:
                        run(j)
            else:
                for run in runs:
                    run(ALL)
        last = order[-1]
        finals = {s: np.array(steps[v][last]) for s, v in self.next_of.items()}
        output = steps[self.cell.output]
        if out is not None and output is not out:
            out[...] = output
            output = out
        saved = None
        if save:
            values = {name: steps[name] for name in full if isinstance(steps[name], np.ndarray)}
            saved = Saved(
                steps["x"], initial, values, {v: b[0] for v, b in bounds.items()}, reverse
            )
        return ChunkForward(output, finals, saved)

    def _forward_op(self, name, steps, arrays, prods, hooks, recurrent) -> Callable:
        op = self.ops[name]
        out = steps[name]
        args = [self._operand(steps, arrays, a) for a in op.args]
        kind = op.kind
        if kind == "matmul":
            a = args[1]
            fn = hooks.get(name) or (prods[name].step if recurrent else prods[name].batched)

            def run(j):
                fn(a[j], out[j])

        elif kind in _UFUNCS:
            ufunc, a, b = _UFUNCS[kind], args[0], args[1]

            def run(j):
                ufunc(a[j], b[j], out=out[j])

        elif kind == "concat":
            parts, at = [], 0
            for a, operand in zip(args, op.args, strict=True):
                width = self._operand_width(operand)
                parts.append((a, at, at + width))
                at += width

            def run(j):
                o = out[j]
                for a, lo, hi in parts:
                    o[..., lo:hi] = a[j]

        else:
            a = args[0]
            if kind == "one_minus":

                def run(j):
                    np.subtract(1.0, a[j], out=out[j])

            elif kind == "sigmoid":

                def run(j):
                    sigmoid(a[j], out[j])

            elif kind == "tanh":

                def run(j):
                    np.tanh(a[j], out=out[j])

            elif kind == "relu":

                def run(j):
                    np.maximum(a[j], 0.0, out=out[j])

            else:  # identity

                def run(j):
                    np.copyto(out[j], a[j])

        return run

    def _operand_width(self, a: Operand) -> int:
        span = self._region(a)
        return self.widths[a.name] if span is None else span[1] - span[0]

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

        Returns
        -------
        ChunkBackward
            ``dx`` (k, B, I), ``dstates`` (B, width) by state, ``dparams`` by parameter name
            (dense, also for a sparse weight).
        """
        x = saved.x
        k, batch, _ = x.shape
        reverse = saved.reverse
        arrays, prods = self._prepare(params, batch)
        order = range(k - 1, -1, -1) if reverse else range(k)
        first, last = order[0], order[-1]
        shift = 1 if reverse else -1
        steps: dict[str, Any] = {"x": x, **saved.values}
        bounds = {v: (ext, *_extended_views(ext, reverse)[1:]) for v, ext in saved.extended.items()}
        self._bind_states(steps, bounds, saved.states0, order)
        skipped = set() if need_dx else {"x"} | {s for s, v in self.next_of.items() if v == "x"}
        grads: dict[str, Any] = {}
        initial_grads: dict[str, np.ndarray] = {}
        for r, kind in self.grad_kind.items():
            if r in skipped:
                continue
            zero = bool(self.grad_gaps[r])
            grads[r], extended = self._allocate(r, kind, k, batch, reverse, zero=zero)
            if extended:
                ext, earlier, slot = extended
                grads[self.state_of[r]] = earlier
                initial_grads[self.state_of[r]] = ext[slot]
        for name, r in self.grad_root.items():
            if r in grads:
                grads[name] = grads[r]
        d_states = dict(d_states or {})
        for s, v in self.next_of.items():
            if s in skipped:
                continue
            if s not in initial_grads:
                make = np.zeros if self.zero_initial[v] else np.empty
                initial = initial_grads[s] = make((batch, self.widths[s]), self.dtype)
                values = grads[v]
                grads[s] = [initial if j == first else values[j + shift] for j in range(k)]
            final = d_states.get(s)
            final = np.zeros((batch, self.widths[s]), self.dtype) if final is None else final
            final = self._state(final, batch, s)
            target = grads[v][last]
            if self.grad_kind[v] in ("rotating", "single"):
                for lo, hi in self.seeds[v]:
                    target[:, lo:hi] = final[:, lo:hi]
            else:
                target += final
        out_width = self.widths[self.cell.output]
        if d_output is None:
            d_output = np.zeros((k, batch, out_width), self.dtype)
        d_output = np.asarray(d_output, dtype=self.dtype)
        if d_output.shape != (k, batch, out_width):
            raise ValueError(
                f"d_output must have shape {(k, batch, out_width)}, got {d_output.shape}"
            )
        hooks = dict(products_t or {})
        for stage in reversed(self.stages):
            runs = []
            if self.cell.output in stage.ops:
                runs.append(self._gradient_of_output(grads, d_output))
            for name in reversed(stage.ops):
                runs += self._backward_op(
                    name, steps, grads, arrays, prods, hooks, stage.recurrent, batch, k, skipped
                )
            if stage.recurrent:
                for j in reversed(order):
                    for run in runs:
                        run(j)
            else:
                for run in runs:
                    run(ALL)
        dparams = self._param_grads(steps, grads, saved, order)
        dstates = {s: initial_grads[s] for s in self.next_of if s not in skipped}
        return ChunkBackward(grads.get("x") if need_dx else None, dstates, dparams)

    def _gradient_of_output(self, grads: dict, d_output: np.ndarray) -> Callable:
        target = grads[self.cell.output]
        if self.writes[("dy", 0)]:

            def run(j):
                np.copyto(target[j], d_output[j])

        else:

            def run(j):
                t = target[j]
                np.add(t, d_output[j], out=t)

        return run

    def _backward_op(self, name, steps, grads, arrays, prods, hooks, recurrent, batch, k, skipped):
        """The runs that add op ``name``'s contributions to its operands' gradients."""
        op = self.ops[name]
        g = grads[name]
        runs = []
        for position, a in enumerate(op.args):
            if a.name in self.params or a.name in skipped or self.alias.get(a.name) == name:
                continue
            target = self._operand(grads, arrays, a)
            write = self.writes[(name, position)]
            shape = (
                (batch, self._operand_width(a)) if recurrent else (k, batch, self._operand_width(a))
            )
            kind = op.kind
            if kind in ("add", "identity") or (kind == "sub" and position == 0):
                runs.append(_pass(g, target, write, negate=False))
            elif kind in ("one_minus", "sub"):
                runs.append(_pass(g, target, write, negate=True))
            elif kind == "concat":
                lo = sum(self._operand_width(b) for b in op.args[:position])
                part = (
                    [v[:, lo : lo + shape[-1]] for v in g]
                    if isinstance(g, list)
                    else g[..., lo : lo + shape[-1]]
                )
                runs.append(_pass(part, target, write, negate=False))
            elif kind == "mul":
                other = self._operand(steps, arrays, op.args[1 - position])
                runs.append(_product_rule(g, other, target, write, np.empty(shape, self.dtype)))
            elif kind == "matmul":
                fn = hooks.get(name) or prods[name].transposed
                runs.append(_through_product(fn, g, target, write, np.empty(shape, self.dtype)))
            else:
                runs.append(
                    _activation_rule(
                        kind, g, steps[name], target, write, np.empty(shape, self.dtype)
                    )
                )
        return runs

    def _param_grads(self, steps, grads, saved, order) -> dict[str, np.ndarray]:
        """Every parameter's gradient over the whole chunk: one GEMM per product."""
        dparams = {name: np.zeros(shape, self.dtype) for name, shape in self.param_shapes.items()}
        for op in self.cell.ops:
            for position, a in enumerate(op.args):
                if a.name not in self.params:
                    continue
                span = self._region(a)
                target = dparams[a.name] if span is None else dparams[a.name][span[0] : span[1]]
                g = grads[op.name]
                if op.kind == "matmul":
                    for g2, a2 in self._rows(g, op.args[1], steps, saved, order):
                        target += g2.T @ a2
                elif op.kind == "mul":
                    for g2, a2 in self._rows(g, op.args[1 - position], steps, saved, order):
                        target += np.einsum("ij,ij->j", g2, a2)
                elif op.kind == "sub" and position == 1:
                    target -= g.sum(axis=(0, 1))
                else:
                    target += g.sum(axis=(0, 1))
        return dparams

    def _rows(self, g, a: Operand, steps, saved, order):
        """Row blocks ``(g2, a2)`` pairing the op's gradient rows with operand ``a``'s values."""
        width = g.shape[-1]
        span = self._region(a)
        cut = (lambda v: v) if span is None else (lambda v: v[..., span[0] : span[1]])
        values = steps[a.name]
        if isinstance(values, np.ndarray):
            return [(g.reshape(-1, width), cut(values).reshape(-1, self._operand_width(a)))]
        # a state read through per-step views: its next value at the earlier steps, and the
        # initial state at the first processed step
        v = steps[self.next_of[a.name]]
        c = self._operand_width(a)
        initial = cut(saved.states0[a.name])
        if order.step < 0:  # reverse: step j reads step j + 1
            pairs = [(g[:-1], cut(v[1:])), (g[-1:], initial[None])]
        else:
            pairs = [(g[1:], cut(v[:-1])), (g[:1], initial[None])]
        return [(gg.reshape(-1, width), aa.reshape(-1, c)) for gg, aa in pairs if len(gg)]


# ---- the backward rules, as runs over a step index (or ALL) ---------------------------------
def _pass(g, target, write: bool, negate: bool) -> Callable:
    """``target (+)= g`` (or ``-g``)."""
    if write:
        if negate:

            def run(j):
                np.negative(g[j], out=target[j])

        else:

            def run(j):
                np.copyto(target[j], g[j])

    else:
        ufunc = np.subtract if negate else np.add

        def run(j):
            t = target[j]
            ufunc(t, g[j], out=t)

    return run


def _product_rule(g, other, target, write: bool, tmp: np.ndarray) -> Callable:
    """``target (+)= g * other``."""
    if write:

        def run(j):
            np.multiply(g[j], other[j], out=target[j])

    else:

        def run(j):
            np.multiply(g[j], other[j], out=tmp)
            t = target[j]
            np.add(t, tmp, out=t)

    return run


def _through_product(fn: ProductFn, g, target, write: bool, tmp: np.ndarray) -> Callable:
    """``target (+)= g @ W``."""
    if write:

        def run(j):
            fn(g[j], target[j])

    else:

        def run(j):
            fn(g[j], tmp)
            t = target[j]
            np.add(t, tmp, out=t)

    return run


def _activation_rule(kind: str, g, y, target, write: bool, tmp: np.ndarray) -> Callable:
    """``target (+)= g * act'(x)``, the derivative from the output ``y``: ``y (1 - y)``,
    ``1 - y^2`` or ``y > 0``."""

    def derivative(j):
        yj = y[j]
        if kind == "sigmoid":
            np.subtract(1.0, yj, out=tmp)
            np.multiply(tmp, yj, out=tmp)
        elif kind == "tanh":
            np.multiply(yj, yj, out=tmp)
            np.subtract(1.0, tmp, out=tmp)
        else:  # relu: its output is >= 0, and sign(y) is 1 where it is positive
            np.sign(yj, out=tmp)

    if write:

        def run(j):
            derivative(j)
            np.multiply(g[j], tmp, out=target[j])

    else:

        def run(j):
            derivative(j)
            np.multiply(tmp, g[j], out=tmp)
            t = target[j]
            np.add(t, tmp, out=t)

    return run
