"""A chunk's buffers and runs, bound once: what :class:`kernels.declared.CellKernel` executes.

A forward is built (:func:`build_forward`) for given arrays: the input it reads, the initial
states, and optionally buffers that receive the output, kept values and final states. Running it
(:meth:`ForwardProgram.run`) does no set-up: it copies what it must gather (a bidirectional
layer's input, an extended state's initial slot), runs every stage's runs and copies the final
states out. An executor binds one per task and runs it at each call (:mod:`kernels.tasks`);
:meth:`CellKernel.forward <kernels.declared.CellKernel.forward>` builds one per call, or keeps
one for calls of the same shapes and copies its input in.

Buffers: a value lives in a (k, B, width) array ("full"), a (k+1, B, width) one holding a state's
initial value in the extra slot ("extended"), or one or two per-step buffers ("single",
"rotating"): :meth:`kernels.declared.ChunkPlan.value_kind`. A value may be bound to a buffer the
caller gives (``into``), or read from one (``inputs``: a value computed elsewhere, whose op does
not run). Scratch buffers may come from a ``pool`` shared by programs that never run at the same
time (the tasks of one worker): keyed by name, kind and shape, they hold nothing between runs.

The runs see each operand as a sequence indexed by the step (:mod:`kernels.declared.steps`): a
recurrent stage runs them for each step ``j`` of the chunk on per-step views; a stage off the
recurrence runs them once, at index 0 of one-element lists holding the whole (k, B, width) arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from kernels.declared.plan import ChunkPlan
from kernels.declared.steps import (
    ALL,
    Const,
    ProductFn,
    activation_rule,
    forward_run,
    pass_gradient,
    product_rule,
    through_product,
)

__all__ = [
    "BackwardProgram",
    "ForwardProgram",
    "Saved",
    "allocate",
    "backward_runs",
    "bind_states",
    "build_backward",
    "build_forward",
    "extended_views",
    "program_bytes",
    "run_stage",
    "scratch",
    "sequence",
    "zeros",
]

#: The index at which a stage off the recurrence runs (its operands are one-element lists).
WHOLE = (0,)
#: What a program's objects take (:func:`program_bytes`), rounded up from tracemalloc's count
#: of forward programs of every registered cell at H = 4 and 64, 1 to 64 steps (a least-squares
#: fit: about 600 bytes a run and 90 a view, within 20% of each program; Python 3.11). The
#: estimate is 1.0-1.55 times the count of backward programs.
PROGRAM_BYTES, RUN_BYTES, VIEW_BYTES = 1000, 700, 100


def extended_views(ext: np.ndarray, reverse: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """Views of a (k+1, B, w) array holding a state's next value at k steps and its initial
    value in one more slot: (the k values in time order, the state's value read at each step,
    the initial value's slot).

    Examples
    --------
    >>> ext = np.arange(4.0).reshape(4, 1, 1)
    >>> [v[:, 0, 0].tolist() if hasattr(v, "shape") else v for v in extended_views(ext, False)]
    [[1.0, 2.0, 3.0], [0.0, 1.0, 2.0], 0]
    """
    k = len(ext) - 1
    if reverse:
        return ext[:k], ext[1:], k
    return ext[1:], ext[:k], 0


def scratch(pool: dict | None, key: tuple, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised buffer: from ``pool`` under ``key`` (made there once), or a new one."""
    if pool is None:
        return np.empty(shape, dtype)
    key = (*key, shape, dtype)
    if key not in pool:
        pool[key] = np.empty(shape, dtype)
    return pool[key]


def zeros(pool: dict | None, key: tuple, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Zeros that nothing writes (a missing state, or its gradient): shared through ``pool``."""
    if pool is None:
        return np.zeros(shape, dtype)
    key = ("zeros", *key, shape, dtype)
    if key not in pool:
        pool[key] = np.zeros(shape, dtype)
    return pool[key]


def allocate(
    plan: ChunkPlan,
    dtype: np.dtype,
    name: str,
    kind: str,
    size: tuple[int, int],
    reverse: bool,
    *,
    pool: dict | None = None,
    tag: str = "value",
) -> tuple[Any, tuple[np.ndarray, np.ndarray, int] | None, np.ndarray]:
    """An uninitialised buffer of ``kind`` for value ``name`` over ``size`` = (k steps, batch):
    returns (the sequence; for an extended one (array, earlier view, initial slot), else None;
    the whole buffer). From ``pool`` when given, under ``tag`` (a value's, a gradient's).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> plan = ChunkPlan(get_cell("gru"), hidden=2, input_size=3)
    >>> seq, ext, base = allocate(plan, np.dtype("float64"), "h_new", "rotating", (3, 1), False)
    >>> len(seq), seq[0].shape, np.shares_memory(seq[0], seq[2]), np.shares_memory(*seq[:2]), ext
    (3, (1, 2), True, False, None)
    >>> base.shape
    (2, 1, 2)
    """
    k, batch = size
    width = plan.widths[name]
    count = 2 if kind == "rotating" else 1
    if kind == "extended":
        shape = (k + 1, batch, width)
    elif kind == "full":
        shape = (k, batch, width)
    else:
        shape = (count, batch, width)
    array = scratch(pool, (tag, name, kind), shape, dtype)
    if kind == "extended":
        values, earlier, slot = extended_views(array, reverse)
        return values, (array, earlier, slot), array
    if kind == "full":
        return array, None, array
    return [array[j % count] for j in range(k)], None, array


def sequence(table: dict, arrays: Mapping, spec: tuple, per_step: bool, cache: dict) -> Any:
    """An operand (``spec`` of :attr:`ChunkPlan.arg_specs`) as a sequence: a Const for a
    parameter (``arrays``); else from ``table`` (values or gradients), as per-step views in a
    recurrent stage; ``cache`` shares them between the ops of one program."""
    key = (spec, per_step)
    found = cache.get(key)
    if found is not None:
        return found
    name, span, is_param = spec
    if is_param:
        value = arrays[name]
        found = Const(value if span is None else value[span[0] : span[1]])
    else:
        found = table[name]
        if span is not None:
            lo, hi = span
            if isinstance(found, np.ndarray):
                found = found[..., lo:hi]
            else:
                found = [b[:, lo:hi] for b in found]
        if per_step and isinstance(found, np.ndarray):
            found = list(found)
    cache[key] = found
    return found


def bind_states(
    plan: ChunkPlan, table: dict, extended: Mapping, initial: Mapping, order: range
) -> None:
    """Make each state readable at every step in ``table``: its initial value at the first
    processed step, its next value of the step before at the others."""
    first, k = order[0], len(order)
    shift = 1 if order.step < 0 else -1
    for s, v in plan.next_of.items():
        if v in extended:
            table[s] = extended[v][1]
            continue
        values = table[v]
        table[s] = [initial[s] if j == first else values[j + shift] for j in range(k)]


def run_stage(runs: list[Callable], recurrent: bool, order: Iterable[int]) -> None:
    """Run a stage's runs: at each step of ``order`` (recurrent), or once on whole arrays."""
    if recurrent:
        for j in order:
            for run in runs:
                run(j)
    else:
        for run in runs:
            run(ALL)


def program_bytes(program: ForwardProgram | BackwardProgram) -> int:
    """An estimate of the memory ``program`` holds besides its buffers (the pool's, the
    caller's): :data:`PROGRAM_BYTES` plus :data:`RUN_BYTES` a run and :data:`VIEW_BYTES` a
    per-step view."""
    runs = sum(len(runs) for runs, _ in program.stages)
    tables = (*program.sequences, program.values, program.grads)
    views = sum(len(v) for table in tables for v in table.values() if isinstance(v, list))
    return PROGRAM_BYTES + RUN_BYTES * runs + VIEW_BYTES * views


@dataclass
class Saved:
    """What a chunk's backward needs from its forward (``save=True``): the input, the initial
    states, the values kept over the chunk (by name, time order), the (k+1)-slot arrays of the
    extended ones, and the direction."""

    x: np.ndarray
    states0: dict[str, np.ndarray]
    values: dict[str, np.ndarray]
    extended: dict[str, np.ndarray]
    reverse: bool


class ForwardProgram:
    """A forward bound to its arrays (see the module docstring).

    Attributes
    ----------
    x : ndarray or None
        The input the program reads (None when it gathers column blocks).
    initial : dict of str to ndarray
        The initial states it reads.
    values : dict
        The sequence of each value by name (``x``, every op).
    extended : dict
        Each extended value's (array, earlier view, initial slot).
    stages : list of (runs, recurrent)
    copies, finals : list of (target, source)
        Copied before the stages, and after them.
    steps : tuple of int
        The chunk's step indices in processing order.
    """

    def __init__(self, x: np.ndarray | None, initial: dict[str, np.ndarray], order: range):
        self.x = x
        self.initial = initial
        self.values: dict[str, Any] = {}
        self.extended: dict[str, tuple] = {}
        self.stages: list[tuple[list[Callable], bool]] = []
        self.copies: list[tuple[np.ndarray, np.ndarray]] = []
        self.finals: list[tuple[np.ndarray, np.ndarray]] = []
        self.order = order
        self.steps = tuple(order)
        self.grads: dict[str, Any] = {}  # none: the same fields as a BackwardProgram
        self.sequences: tuple[dict, ...] = ()

    def run(self) -> None:
        """Run the chunk forward once on the bound arrays."""
        copyto = np.copyto
        for target, source in self.copies:
            copyto(target, source)
        for runs, recurrent in self.stages:
            for j in self.steps if recurrent else WHOLE:
                for run in runs:
                    run(j)
        for target, source in self.finals:
            copyto(target, source)


def build_forward(
    plan: ChunkPlan,
    dtype: np.dtype,
    arrays: Mapping[str, Any],
    prods: Mapping[str, Any],
    x: np.ndarray | tuple[np.ndarray, ...],
    initial: dict[str, np.ndarray],
    order: range,
    *,
    save: bool,
    products: Mapping[str, ProductFn] | None = None,
    into: Mapping[str, np.ndarray] | None = None,
    inputs: Mapping[str, np.ndarray] | None = None,
    finals: Mapping[str, np.ndarray] | None = None,
    pool: dict | None = None,
) -> ForwardProgram:
    """The forward of ``plan`` over the steps ``order`` reading ``x`` (k, B, I), or its column
    blocks (gathered into one buffer at each run), and the ``initial`` states (B, width).

    ``arrays`` are the parameters and ``prods`` each ``matmul`` op's
    :class:`~kernels.declared.steps.Product` (:meth:`CellKernel._prepare`); ``products[op]``
    replaces one. ``into``: buffers (k, B, width) that receive values over the chunk (the
    output, kept values); ``inputs``: values (k, B, width) computed elsewhere, read instead of
    running their op; ``finals``: buffers (B, width) that receive states after the last step;
    ``pool``: scratch shared with other programs (module docstring). Checks nothing: the caller
    gives arrays of the right shapes and dtype.
    """
    whole, parts = (None, x) if isinstance(x, tuple) else (x, ())
    k, batch = len(order), (whole if whole is not None else parts[0]).shape[1]
    size, reverse = (k, batch), order.step < 0
    program = ForwardProgram(whole, initial, order)
    values, extended = program.values, program.extended
    into, inputs = into or {}, inputs or {}
    if "x" in plan.extended or parts:
        kind = "extended" if "x" in plan.extended else "full"
        values["x"], ext, _ = allocate(plan, dtype, "x", kind, size, reverse, pool=pool)
        if ext:
            extended["x"] = ext
        if parts:
            at = 0
            for part in parts:
                width = part.shape[2]
                program.copies.append((values["x"][..., at : at + width], part))
                at += width
        elif whole is not None:
            program.copies.append((values["x"], whole))
    else:
        values["x"] = whole
    for op in plan.cell.ops:
        name = op.name
        kind = plan.value_kind(name, save)
        target = into.get(name)
        if target is not None and kind != "extended":
            values[name] = target
            if name in inputs:
                program.copies.append((target, inputs[name]))
            continue
        if name in inputs and kind != "extended":
            values[name] = inputs[name]
            continue
        values[name], ext, _ = allocate(plan, dtype, name, kind, size, reverse, pool=pool)
        if ext:
            extended[name] = ext
        if name in inputs:
            program.copies.append((values[name], inputs[name]))
        if target is not None:
            program.finals.append((target, values[name]))
    for v, (ext, _, slot) in extended.items():
        program.copies.append((ext[slot], initial[plan.state_of[v]]))
    last = order[-1]
    for s, target in (finals or {}).items():
        program.finals.append((target, values[plan.next_of[s]][last]))
    bind_states(plan, values, extended, initial, order)
    hooks = products or {}
    cache: dict = {}
    lists: dict = {}  # a batched stage's operands, as one-element lists

    def batched_operand(spec: tuple) -> Any:
        found = lists.get(spec)
        if found is None:
            found = sequence(values, arrays, spec, False, cache)
            found = lists[spec] = found if isinstance(found, Const) else [found]
        return found

    for stage in plan.stages:
        per_step = stage.recurrent
        runs = []
        for name in stage.ops:
            if name in inputs:
                continue
            kind = plan.ops[name].kind
            if per_step:
                args = [sequence(values, arrays, a, True, cache) for a in plan.arg_specs[name]]
                target = sequence(values, arrays, plan.self_spec[name], True, cache)
            else:
                args = [batched_operand(a) for a in plan.arg_specs[name]]
                target = batched_operand(plan.self_spec[name])
            product = hooks.get(name)
            if kind == "matmul" and product is None:
                product = prods[name].step if per_step else prods[name].batched
            runs.append(forward_run(kind, args, target, product, plan.columns.get(name, ())))
        if runs:
            program.stages.append((runs, per_step))
    program.sequences = (cache,)
    return program


class BackwardProgram:
    """A chunk's BPTT bound to its arrays (:func:`build_backward`): ``setup`` (gradient buffers
    zeroed where the plan needs zeros, the final states' gradients seeded), the runs of each
    stage in backward order, and ``finals`` copied out; ``values``, ``grads`` and ``initial``
    (the gradients w.r.t. the initial states) by name."""

    def __init__(self, order: range) -> None:
        self.values: dict[str, Any] = {}
        self.grads: dict[str, Any] = {}
        self.initial: dict[str, np.ndarray] = {}
        self.setup: list[Callable[[], Any]] = []
        self.stages: list[tuple[list[Callable], bool]] = []
        self.finals: list[tuple[np.ndarray, np.ndarray]] = []
        self.order = order
        self.steps = tuple(reversed(order))
        self.sequences: tuple[dict, ...] = ()

    def run(self) -> None:
        """Run the chunk's BPTT once on the bound arrays."""
        for step in self.setup:
            step()
        for runs, recurrent in self.stages:
            if recurrent:
                for j in self.steps:
                    for run in runs:
                        run(j)
            else:
                for run in runs:
                    run(ALL)
        copyto = np.copyto
        for target, source in self.finals:
            copyto(target, source)


def build_backward(
    plan: ChunkPlan,
    dtype: np.dtype,
    arrays: Mapping[str, Any],
    prods: Mapping[str, Any],
    saved: Saved,
    d_output: np.ndarray | None,
    d_states: Mapping[str, np.ndarray | None],
    *,
    need_dx: bool = True,
    products_t: Mapping[str, ProductFn] | None = None,
    into: Mapping[str, np.ndarray] | None = None,
    dstates_into: Mapping[str, np.ndarray] | None = None,
    pool: dict | None = None,
) -> BackwardProgram:
    """The BPTT of ``plan`` over the chunk whose forward ``saved`` describes, reading the
    gradient w.r.t. the output ``d_output`` (k, B, width; None: zeros) and w.r.t. each final
    state ``d_states`` (B, width; missing or None: zeros), all read at each run.

    ``into``: buffers that receive gradients after the run, by op name (an op that reads a
    parameter), or ``x``; ``dstates_into``: buffers (B, width) that receive the gradients
    w.r.t. the initial states; ``products_t`` and ``pool`` as for :func:`build_forward`. Checks
    nothing: the caller gives arrays of the right shapes and of ``dtype``.
    """
    x = saved.x
    k, batch = x.shape[:2]
    reverse = saved.reverse
    order = range(k - 1, -1, -1) if reverse else range(k)
    first, last = order[0], order[-1]
    shift = 1 if reverse else -1
    program = BackwardProgram(order)
    values, grads, initial, setup = program.values, program.grads, program.initial, program.setup
    values.update({"x": x, **saved.values})
    for v, ext in saved.extended.items():
        values[v] = extended_views(ext, reverse)[0]
    extended = {v: (ext, *extended_views(ext, reverse)[1:]) for v, ext in saved.extended.items()}
    bind_states(plan, values, extended, saved.states0, order)
    skipped = set() if need_dx else {"x"} | {s for s, v in plan.next_of.items() if v == "x"}
    for r, kind in plan.grad_kind.items():
        if r in skipped:
            continue
        grads[r], grad_ext, base = allocate(
            plan, dtype, r, kind, (k, batch), reverse, pool=pool, tag="grad"
        )
        if plan.grad_gaps[r]:  # regions no contribution reaches (or every one adds)
            setup.append(partial(base.fill, 0))
        if grad_ext:
            grads[plan.state_of[r]] = grad_ext[1]
            initial[plan.state_of[r]] = grad_ext[0][grad_ext[2]]
    for name, r in plan.grad_root.items():
        if r in grads:
            grads[name] = grads[r]
    for s, v in plan.next_of.items():
        if s in skipped:
            continue
        shape = (batch, plan.widths[s])
        if s not in initial:
            start = initial[s] = scratch(pool, ("grad", s, "initial"), shape, dtype)
            if plan.zero_initial[v]:
                setup.append(partial(start.fill, 0))
            later = grads[v]
            grads[s] = [start if j == first else later[j + shift] for j in range(k)]
        final = d_states.get(s)
        if final is None:
            final = zeros(pool, (s,), shape, dtype)
        target = grads[v][last]
        if plan.grad_kind[v] in ("rotating", "single"):
            for lo, hi in plan.seeds[v]:
                setup.append(partial(np.copyto, target[:, lo:hi], final[:, lo:hi]))
        else:
            setup.append(partial(np.add, target, final, out=target))
    output = plan.cell.output
    if d_output is None:
        d_output = zeros(pool, (output, k), (k, batch, plan.widths[output]), dtype)
    hooks = products_t or {}
    cache: dict = {}
    value_cache: dict = {}
    for stage in reversed(plan.stages):
        per_step = stage.recurrent
        runs = []
        if output in stage.ops:
            g = sequence(grads, arrays, plan.self_spec[output], per_step, cache)
            dy = list(d_output) if per_step else d_output
            runs.append(pass_gradient(dy, g, plan.writes[("dy", 0)], negate=False))
        for name in reversed(stage.ops):
            runs += backward_runs(
                plan,
                dtype,
                name,
                values,
                grads,
                arrays,
                prods,
                hooks,
                per_step,
                (k, batch),
                skipped,
                cache,
                value_cache,
                pool,
            )
        program.stages.append((runs, per_step))
    for name, target in (into or {}).items():
        program.finals.append((target, grads[name]))
    for s, target in (dstates_into or {}).items():
        program.finals.append((target, initial[s]))
    program.sequences = (cache, value_cache)
    return program


def backward_runs(
    plan: ChunkPlan,
    dtype: np.dtype,
    name: str,
    values: dict[str, Any],
    grads: dict[str, Any],
    arrays: Mapping[str, Any],
    prods: Mapping[str, Any],
    hooks: Mapping[str, ProductFn],
    per_step: bool,
    size: tuple[int, int],
    skipped: set[str],
    cache: dict,
    value_cache: dict,
    pool: dict | None = None,
) -> list[Callable]:
    """The runs that add op ``name``'s contributions to its operands' gradients."""
    g = sequence(grads, arrays, plan.self_spec[name], per_step, cache)
    runs = []
    for index, (rule, operand, spec, write, width, reads, columns) in enumerate(plan.rules[name]):
        if operand in skipped:
            continue
        target = sequence(grads, arrays, spec, per_step, cache)
        # scratch for a contribution computed before it is added
        shape = (*size[int(per_step) :], width)
        tmp = scratch(pool, ("tmp", name, index), shape, dtype) if width else None
        if rule == "pass" and columns is not None:  # this operand's columns of a concat
            lo, hi = columns
            part = [c[:, lo:hi] for c in g] if per_step else g[..., lo:hi]
            runs.append(pass_gradient(part, target, write, negate=False))
        elif rule in ("pass", "negate"):
            runs.append(pass_gradient(g, target, write, negate=rule == "negate"))
        elif rule == "mul":
            other = sequence(values, arrays, reads, per_step, value_cache)
            runs.append(product_rule(g, other, target, write, tmp))
        elif rule == "matmul":
            fn = hooks.get(name) or prods[name].transposed
            runs.append(through_product(fn, g, target, write, tmp))
        else:
            y = sequence(values, arrays, reads, per_step, value_cache)
            assert tmp is not None  # an activation's rule always has scratch (ChunkPlan.rules)
            runs.append(activation_rule(rule, g, y, target, write, tmp))
    return runs
