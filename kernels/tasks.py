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
the recurrence (``dx``) are computed by every member (only rank 0 writes them). A member's
share of the products is its :class:`kernels.group.GroupProducts`.

A cell without a product on the recurrence (SRU, QRNN, IndRNN: an element-wise recurrence) runs
it once, on the lead (rank 0): the others only take their share of the products of the layer
input (forward, into ``gx``, one barrier each; backward, ``dx`` after the lead's BPTT has
written the products' gradients, one barrier), as the simulator charges a split task's
element-wise work to one member (``elementwise_split_across_helpers: false``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from kernels.arrays import (
    batched_products,
    hoisted_products,
    layer_kernels,
    param_ops,
    recurrent_products,
    saved_names,
)
from kernels.cells import output_forward
from kernels.declared import CellKernel, Prepared, Saved
from kernels.declared.program import (
    BackwardProgram,
    ForwardProgram,
    extended_views,
    program_bytes,
    scratch,
    zeros,
)
from kernels.group import GroupProducts
from kernels.inputs import InputPiece, assemble, input_operand, rows_needed, send_back
from kernels.params import (
    chunk_bounds,
    compute_dtype,
    layer_params,
    network_cell,
    row_block,
    suffix,
)
from wpsim.cells import Cell, input_products, output_width
from wpsim.errors import ConfigError
from wpsim.model.workload import Workload

__all__ = [
    "RUNNABLE_KINDS",
    "TaskRunner",
    "TASK_PROGRAMS_MAX_BYTES",
    "TaskSpec",
    "forward_task",
    "recurrent_product_ops",
    "task_programs_max_bytes",
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

#: Memory (bytes, as :func:`kernels.declared.program.program_bytes` estimates it) that one
#: runner may hold in the bound programs of its cell and cell_bwd tasks (env
#: ``WPSIM_TASK_PROGRAMS_MAX_BYTES`` overrides it). A bound program runs a task with no set-up
#: and no copy of what it reads or writes where it is; once the budget is spent, the later
#: tasks call the kernel (whose forward keeps a program per shape and copies the input and
#: states in and the results out; whose backward builds one per call). About 10-15 kB a
#: one-step LSTM task and 2-4 kB a further step: the budget holds about 600 one-step tasks,
#: and keeps a worker inside the 80 MiB that :data:`wpsim.guards.WORKER_BYTES` charges
#: (64 MiB measured without programs).
TASK_PROGRAMS_MAX_BYTES = 8 << 20


def task_programs_max_bytes() -> int:
    """:data:`TASK_PROGRAMS_MAX_BYTES`, or the environment's override."""
    value = os.environ.get("WPSIM_TASK_PROGRAMS_MAX_BYTES")
    return int(value) if value else TASK_PROGRAMS_MAX_BYTES


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
        self._private: dict[tuple, np.ndarray] = {}
        # what the declaration says of each layer's tasks (kernels.arrays), worked out once
        self._saved = [saved_names(k) for k in self.kernels]
        self._param_ops = [param_ops(k) for k in self.kernels]
        self._hoisted = [hoisted_products(k) if hoisted else [] for k in self.kernels]
        # a split group's cell task: the products its members share, and whether only the lead
        # runs the kernel (an element-wise recurrence; see the module docstring)
        self._lead_only = [size > 1 and not recurrent_products(k) for k in self.kernels]
        self._split = [
            shared_products(k, self._hoisted[l], self._lead_only[l]) if size > 1 else []
            for l, k in enumerate(self.kernels)
        ]
        self._private_pieces: dict[tuple, tuple[InputPiece, ...]] = {}
        self.group = GroupProducts(
            arrays,
            self.kernels,
            self._layer,
            batch=self.B,
            dtype=self.dt,
            rank=rank,
            size=size,
            barrier=self.barrier,
            scratch=self.scratch,
        )
        # bound programs of cell and cell_bwd tasks by task id (see warm)
        self._programs: dict[int, Callable[[], None]] = {}
        self._programs_bytes = 0
        self._pool: dict = {}
        self._prepared: dict[tuple[int, int, int], Prepared] = {}
        self._task_hooks: dict[tuple, Callable] = {}
        self._run = {
            "cell": self._call_cell,
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
        bound = self._programs.get(tid)
        if bound is not None:
            bound()
            return
        kind, i, l, d, t0, steps = self.tasks[tid]
        fn = self._run.get(kind)
        if fn is None:
            raise ConfigError(f"task kind {kind!r} cannot run for real")
        fn(i, l, d, t0, t0 + steps)

    def warm(self) -> None:
        """Build every layer's parameter views and split products up front, and bind the
        programs of the cell tasks (:meth:`_cell`) and their backward tasks
        (:meth:`_cell_bwd_program`) in task order until their estimated size reaches
        :func:`task_programs_max_bytes`. A runner that is not warmed, or a task past the
        budget, calls the kernel instead (:meth:`_call_cell`, :meth:`_cell_bwd`)."""
        for i in {t[1] for t in self.tasks}:
            for l in range(self.L):
                for d in range(self.D):
                    self._layer(i, l, d)
                    if self.size > 1:
                        self.group.hooks(i, l, d)
        budget = task_programs_max_bytes()
        for tid, (kind, i, l, d, t0, steps) in enumerate(self.tasks):
            if kind not in ("cell", "cell_bwd") or tid in self._programs:
                continue
            if self._lead_only[l] and not self.leader:
                continue  # no kernel runs here: only a share of the products
            if self._programs_bytes >= budget:
                break
            if kind == "cell":
                program: ForwardProgram | BackwardProgram = self._cell(i, l, d, t0, t0 + steps)
                self._programs[tid] = program.run
            else:
                self._programs[tid], program = self._cell_bwd_program(i, l, d, t0, t0 + steps)
            self._programs_bytes += program_bytes(program)

    # ---- helpers ----------------------------------------------------------------------------
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

    def _layer_input_blocks(
        self, i: int, l: int, a: int, b: int
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Input of layer ``l`` for steps ``a..b-1``: x, the layer below, or each direction's
        output of the layer below (its column blocks)."""
        if l == 0:
            return self.a["x"][a:b]
        parts = tuple(self.a[f"h{i}.{l - 1}.{dd}"][a:b] for dd in range(self.D))
        return parts[0] if self.D == 1 else parts

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
        for op in self._hoisted[l]:
            self.group.product_into(i, l, d, op, self._input_operand(i, l, d, op, a, b), a)

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

    def _prepared_of(self, i: int, l: int, d: int) -> Prepared:
        """The layer-direction's parameters and products, shared by its tasks' programs."""
        prepared = self._prepared.get((i, l, d))
        if prepared is None:
            kernel = self.kernels[l]
            prepared = self._prepared[(i, l, d)] = kernel.prepare(self._layer(i, l, d), self.B)
        return prepared

    def _call_cell(self, i: int, l: int, d: int, a: int, b: int) -> None:
        """A cell task as one call of the kernel's forward, which copies the input and the
        states into buffers it keeps and the results out: nothing is held per task (a runner
        that is not warmed, which runs each task once, or a task past the programs' budget)."""
        key = f"{i}.{l}.{d}"
        kernel = self.kernels[l]
        if self._lead_only[l] and not self.leader:
            # an element-wise recurrence runs once, on the lead: the others only take their
            # share of its products (one barrier each, as the lead's hooks)
            for op in self._split[l]:
                self.group.product_into(i, l, d, op, self._input_operand(i, l, d, op, a, b), a)
                self.barrier()
            return
        products = self.group.products(i, l, d, a, b, self._split[l])
        for op in self._hoisted[l]:
            products[op] = self._copy_hook(f"gx{key}.{op}", a, b)
        h_all = self.a[f"h{key}"]
        out = h_all[a:b] if self.leader else self._buffer("h", (b - a, self.B, self.width))
        save = self.training and self.leader
        run = kernel.forward(
            self._layer(i, l, d),
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
            for name in self._saved[l]:
                self.a[f"v{key}.{name}"][a:b] = run.saved.values[name]

    def _cell(self, i: int, l: int, d: int, a: int, b: int) -> ForwardProgram:
        """The chunk forward bound to the task's arrays (:meth:`CellKernel.bind`): it reads
        the layer input and the states where they are and writes the output, the kept values
        and the final states in place."""
        key = f"{i}.{l}.{d}"
        kernel = self.kernels[l]
        products = self.group.products(i, l, d, a, b, self._split[l])
        hoisted = self._hoisted[l]
        inputs = {op: self.a[f"gx{key}.{op}"][a:b] for op in hoisted}
        output = self.cell.output
        if not self.leader:
            out = self._buffer("h", (b - a, self.B, self.width))
            into, finals = {output: out}, None
        else:
            into = {output: self.a[f"h{key}"][a:b]}
            if self.training:
                into.update({name: self.a[f"v{key}.{name}"][a:b] for name in self._saved[l]})
            last = a if d == 1 else b - 1
            finals = {
                s: self.a[f"s{key}.{s}"][last] for s, v in kernel.next_of.items() if v != output
            }
        return kernel.bind(
            self._prepared_of(i, l, d),
            self._layer_input_blocks(i, l, a, b),
            self._initial_states(key, l, d, a, b),
            reverse=d == 1,
            save=self.training and self.leader,
            into=into,
            inputs=inputs,
            finals=finals,
            products=products or None,
            pool=self._pool,
        )

    def _output(self, i: int, l: int, d: int, a: int, b: int) -> None:
        sub = self.group.share(b - a)
        if sub is None:
            return
        s, e = a + sub.start, a + sub.stop
        p = self._params_of(i)
        y = output_forward(
            p["weight_out"], p["bias_out"], self._top(i, s, e), softmax=self.w.output == "softmax"
        )
        self.a[f"y{i}"][s:e] = y

    # ---- backward tasks -----------------------------------------------------------------------
    def _products_t(self, i: int, l: int, d: int) -> dict[str, Callable]:
        """The product hooks of a backward task: a hoisted product's part of dx is the
        input_gemm_bwd task's, and a lead-only group's shared products' part the group's after
        the lead's backward (zeros here); a split group's recurrent products by columns."""
        products_t: dict[str, Callable] = {}
        for op in [*self._hoisted[l], *(self._split[l] if self._lead_only[l] else [])]:
            products_t[op] = _no_product
        if self.size > 1:
            products_t.update(self.group.hooks(i, l, d)[1])
        return products_t

    def _cell_bwd(self, i: int, l: int, d: int, a: int, b: int) -> None:
        """A backward task bound for one run (a runner that is not warmed, or a task past the
        programs' budget): the kernel's backward builds its runs at each call anyway. A
        lead-only group's other members share the products' part of dx once the lead's BPTT
        has written the gradients (as an input task's backward does)."""
        if self._lead_only[l] and not self.leader:
            self.barrier()  # the lead's gradients written
            self._products_bwd(i, l, d, a, b, self._split[l], a // self.chunk)
            return
        self._cell_bwd_program(i, l, d, a, b)[0]()

    def _cell_bwd_program(
        self, i: int, l: int, d: int, a: int, b: int
    ) -> tuple[Callable[[], None], BackwardProgram]:
        """The chunk's BPTT bound to the task's arrays (:meth:`CellKernel.bind_backward`), after
        the copies that gather what the forward kept apart (a bidirectional layer's input, an
        extended value and its initial state) and the sum of the gradients from above; for a
        lead-only group, the members' share of the products' part of dx after it."""
        key = f"{i}.{l}.{d}"
        kernel = self.kernels[l]
        plan = kernel.plan
        k, reverse, pool = b - a, d == 1, self._pool
        before: list[Callable[[], Any]] = []

        def gathered(name: str, blocks: tuple[np.ndarray, ...]) -> np.ndarray:
            width = sum(block.shape[2] for block in blocks)
            out = scratch(pool, ("saved", name), (k, self.B, width), self.dt)
            at = 0
            for block in blocks:
                before.append(partial(np.copyto, out[..., at : at + block.shape[2]], block))
                at += block.shape[2]
            return out

        blocks = self._layer_input_blocks(i, l, a, b)
        x = gathered("x", blocks) if isinstance(blocks, tuple) else blocks
        initial = self._initial_states(key, l, d, a, b)
        states0 = {
            s: zeros(pool, (s,), (self.B, kernel.widths[s]), self.dt) if v is None else v
            for s, v in initial.items()
        }
        values = {name: self.a[f"v{key}.{name}"][a:b] for name in self._saved[l]}
        values[self.cell.output] = self.a[f"h{key}"][a:b]
        extended = {}
        for v in plan.extended:
            seq = x if v == "x" else values[v]
            ext = scratch(pool, ("saved", v, "extended"), (k + 1, *seq.shape[1:]), self.dt)
            inner, _, slot = extended_views(ext, reverse)
            before.append(partial(np.copyto, inner, seq))
            before.append(partial(np.copyto, ext[slot], states0[plan.state_of[v]]))
            extended[v] = ext
            if v in values:
                values[v] = inner
        cols = slice(d * self.width, (d + 1) * self.width)
        if l == self.L - 1:
            src = self.a[f"dtop{i}"] if self.w.output != "none" else self.a["gout"]
            d_output = src[a:b, :, cols]
        elif self.D == 1:
            d_output = self.a[f"dx{i}.{l + 1}.0"][a:b, :, cols]
        else:  # the same order whatever the schedule: 0 + dx_fwd (exact), then + dx_rev
            parts = [self.a[f"dx{i}.{l + 1}.{dd}"][a:b, :, cols] for dd in range(self.D)]
            d_output = scratch(pool, ("saved", "dy"), (k, self.B, self.width), self.dt)
            before.append(partial(np.add, parts[0], parts[1], out=d_output))
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
        into = dstates_into = None
        if self.leader:
            into = {op: self.a[f"dg{key}.{op}"][a:b] for op in self._param_ops[l]}
            into["x"] = self.a[f"dx{key}"][a:b]
            dstates_into = {s: self.a[f"ds{key}.{s}"][c_idx] for s in kernel.next_of}
        program = kernel.bind_backward(
            self._prepared_of(i, l, d),
            Saved(x, states0, values, extended, reverse),
            d_output,
            d_states,
            products_t=self._products_t(i, l, d) or None,
            into=into,
            dstates_into=dstates_into,
            pool=pool,
        )
        after: list[Callable[[], Any]] = []
        if self._lead_only[l]:  # the group shares the products' part of dx after the lead's
            ops = self._split[l]
            after = [self.barrier, partial(self._products_bwd, i, l, d, a, b, ops, c_idx)]
        if not before and not after:
            return program.run, program
        steps = (*before, program.run, *after)

        def task() -> None:
            for step in steps:
                step()

        return task, program

    def _input_gemm_bwd(self, i: int, l: int, d: int, a: int, b: int) -> None:
        """``dx`` of the hoisted products (:meth:`_products_bwd`)."""
        ops = self._hoisted[l]
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
        sub = self.group.share(b - a)
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
        sub = self.group.share(b - a)
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
            sub = self.group.share(n_out)
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
        values = {name: self.a[f"v{key}.{name}"] for name in self._saved[l]}
        values[self.cell.output] = self.a[f"h{key}"]
        values["x"] = self._layer_input(i, l, 0, T)
        op_grads = {op: self.a[f"dg{key}.{op}"] for op in self._param_ops[l]}
        states0 = {s: self.a.get(f"init{key}.{s}") for s in kernel.next_of}
        grads = kernel.param_grads(values, op_grads, states0, reverse=d == 1, names=mine)
        name = suffix(l, d == 1)
        for param, g in grads.items():
            self.a[f"g{i}.{param}{name}"][...] = g


def shared_products(kernel: CellKernel, hoisted: list[str], lead_only: bool) -> list[str]:
    """The products off the recurrence a split group's members share in a cell task (the
    ``hoisted`` ones are the input task's), in the order the kernel runs them. When only the
    lead runs the kernel (``lead_only``), the others share the products whose operand they
    read from the layer input (:meth:`TaskRunner._input_operand`), and the lead computes any
    other alone.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> kernel = CellKernel(get_cell("minimalrnn"), 4, 3)
    >>> shared_products(kernel, [], lead_only=False), shared_products(kernel, [], lead_only=True)
    (['zx', 'uz'], ['zx'])
    >>> shared_products(kernel, ["zx"], lead_only=False)
    ['uz']
    """
    batched = batched_products(kernel)
    ops = [name for stage in kernel.plan.stages for name in stage.ops]
    inputs = input_products(kernel.cell)
    return [
        op
        for op in ops
        if op in batched and op not in hoisted and not (lead_only and op not in inputs)
    ]


def _no_product(_g: np.ndarray, out: np.ndarray) -> None:
    out.fill(0)


def forward_task(
    cell: Cell,
    hidden: int,
    batch: int,
    steps: int,
    *,
    product: Callable[[str, Any], Callable | None] | None = None,
    seed: int = 0,
) -> Callable[[], None]:
    """One inference cell task of one layer-direction (input width ``hidden``, float32, random
    parameters) as :class:`TaskRunner` runs it (the chunk forward bound to its arrays, its
    final states copied out), as a callable of no argument: what calibration times
    (:mod:`wpsim.measure.calibrate`).

    ``product(op, weight)`` may return the function ``(a, out)`` that computes the ``matmul``
    op ``op`` (of ``weight``, its gate block where it multiplies one) in place of the kernel,
    or None to keep the kernel's.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> task = forward_task(get_cell("sru"), 8, 1, 4, product=lambda op, w: None)
    >>> task()
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
    output = kernel.plan.cell.output
    finals = {
        s: np.empty((batch, kernel.widths[s]), np.float32)
        for s, v in kernel.next_of.items()
        if v != output
    }
    out = np.empty((steps, batch, kernel.widths[output]), np.float32)
    program = kernel.bind(
        params, x, into={output: out}, finals=finals, products=hooks or None, pool={}
    )
    return program.run


def recurrent_product_ops(cell: Cell) -> list[str]:
    """The ``matmul`` ops of ``cell`` on the recurrence (one step at a time).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> recurrent_product_ops(get_cell("lstm", proj_size=2)), recurrent_product_ops(get_cell("sru"))
    (['gh', 'h_new'], [])
    """
    return recurrent_products(CellKernel(cell, 1, 1))
