"""The op granularity's task kinds, found from a cell's declaration (nothing here is per cell).

Each op of a cell goes to one *kind* of task, run once a step (or once for the k steps of a chunk
when every op of the kind is off the recurrence, Sung & Park's multi-time-step execution):

* ``input_proj``: the products before the recurrence (computed from the input alone) and the
  element-wise ops that prepare their input (QRNN's window ``concat(x, x_prev)``);
* ``rec_proj``: the products on the recurrence (``W_hh h``);
* ``gates`` and ``state``: the other element-wise ops before or on the recurrence, split as
  :func:`wpsim.cells.op_groups` splits them (the gate activations and what they need within the
  step; the ops that combine them with the carried state);
* ``readout``: the ops after the recurrence (SRU's highway output ``r*c + (1-r)*W_p x``, QRNN's
  ``o * c``), which read it but feed no state.

A kind whose ops would both feed and read another kind within a step is split in two (``rec_proj``
and ``rec_proj_2`` of an LSTM with a projection: ``W_hh h`` comes before the gates, ``W_hr (o *
tanh c)`` after them), so that the tasks of a step form a DAG. A kind is *hoistable* when none of
its ops is on the recurrence (:func:`wpsim.cells.op_phases`).

Bytes, per batch row (what :mod:`wpsim.model.graph` multiplies by ``B * dtype bytes``): an edge
carries the values one kind produces and another reads (a state's value across a step); a task
reads the values it takes from other kinds (``x`` included) and the states it reads, a ``state``
kind all the states (it rewrites them); it writes the values other kinds, the next step or the
layer above read. Weights: a kind reads the weight block of the matrices its products multiply; a
block without a matrix (SRU's and IndRNN's recurrent vectors) is read by the kinds whose ops read
its vectors.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import networkx as nx

from wpsim.cells import Cell, Op, op_flops, op_groups, op_phases, param_block, value_widths
from wpsim.cells.spec import INPUT

__all__ = ["KIND_ORDER", "KindFlow", "LayerOps", "OpKind", "layer_ops", "op_kinds"]

#: The base kinds, in the order a step's tasks are created.
KIND_ORDER = ("input_proj", "rec_proj", "gates", "state", "readout")


@dataclass(frozen=True)
class OpKind:
    """One kind of op task: its ``name`` (``base``, or ``base_2``... when split), its ops in
    declaration order, whether one of them is on the recurrence, and the weight blocks
    (``"ih"``, ``"hh"``) it reads."""

    name: str
    base: str
    ops: tuple[str, ...]
    recurrent: bool
    weight_parts: tuple[str, ...]


@dataclass(frozen=True)
class KindFlow:
    """Values that kind ``source`` hands to kind ``target`` (``delay`` 1: to the next step)."""

    source: str
    target: str
    delay: int
    values: tuple[str, ...]


def _base_kind(cell: Cell, name: str, kind: str, feeds_product: set[str]) -> str:
    phase = op_phases(cell)[name]
    if phase == "after":
        return "readout"
    if kind == "matmul":
        return "rec_proj" if phase == "recurrence" else "input_proj"
    if phase == "before" and name in feeds_product:
        return "input_proj"  # prepares a product's input (QRNN's window concat(x, x_prev))
    return op_groups(cell)[name]


def _feeding_products(cell: Cell) -> set[str]:
    """The element-wise ops before the recurrence that a product before it reads (within the
    step, directly or through other such ops)."""
    phases = op_phases(cell)
    feeding: set[str] = set()
    for op in reversed(cell.ops):
        if phases[op.name] != "before":
            continue
        if op.kind == "matmul" or op.name in feeding:
            feeding |= {a.name for a in op.args if isinstance(cell.lookup(a.name), Op)}
    return {name for name in feeding if cell.op(name).kind != "matmul"}


@functools.cache
def _kinds(cell: Cell) -> tuple[tuple[OpKind, ...], tuple[tuple[str, str], ...]]:
    ops_of: dict[int, list[str]] = {}
    base_of: dict[int, str] = {}
    group_of: dict[str, int] = {}
    latest: dict[str, int] = {}
    same_step = nx.DiGraph()
    feeds_product = _feeding_products(cell)
    for op in cell.ops:  # declaration order: every operand is defined above its use
        base = _base_kind(cell, op.name, op.kind, feeds_product)
        preds = {group_of[a.name] for a in op.args if a.name in group_of}
        gid = latest.get(base)
        if gid is None or any(
            p != gid and same_step.has_node(gid) and nx.has_path(same_step, gid, p) for p in preds
        ):
            gid = len(ops_of)  # a new kind of this base: joining the last would close a cycle
            ops_of[gid], base_of[gid], latest[base] = [], base, gid
            same_step.add_node(gid)
        ops_of[gid].append(op.name)
        group_of[op.name] = gid
        same_step.add_edges_from((p, gid) for p in preds if p != gid)
    count: dict[str, int] = {}
    names: dict[int, str] = {}
    for gid in sorted(ops_of):
        base = base_of[gid]
        count[base] = count.get(base, 0) + 1
        names[gid] = base if count[base] == 1 else f"{base}_{count[base]}"
    phases = op_phases(cell)
    blocks = param_block(cell)
    matrices = {p.name for p in cell.params if len(p.shape) == 2}
    with_matrix = {blocks[name] for name in matrices}
    kinds = []
    for gid in sorted(ops_of, key=lambda g: (KIND_ORDER.index(base_of[g]), names[g])):
        parts = set()
        for name in ops_of[gid]:
            op = cell.op(name)
            for a in op.args:
                if a.name not in blocks:
                    continue
                block = blocks[a.name]
                if a.name in matrices or block not in with_matrix:
                    parts.add(block)
        kinds.append(
            OpKind(
                names[gid],
                base_of[gid],
                tuple(ops_of[gid]),
                any(phases[name] == "recurrence" for name in ops_of[gid]),
                tuple(p for p in ("ih", "hh") if p in parts),
            )
        )
    return tuple(kinds), tuple((name, names[gid]) for name, gid in group_of.items())


def op_kinds(cell: Cell) -> tuple[OpKind, ...]:
    """The task kinds of ``cell``'s op granularity, in creation order.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [(k.name, k.recurrent) for k in op_kinds(get_cell("sru"))]
    [('input_proj', False), ('state', True), ('readout', False)]
    >>> [(k.name, k.recurrent) for k in op_kinds(get_cell("qrnn", window=2))]
    [('input_proj', False), ('gates', False), ('state', True), ('readout', False)]
    >>> [k.name for k in op_kinds(get_cell("lstm", proj_size=2))]
    ['input_proj', 'rec_proj', 'rec_proj_2', 'gates', 'state']
    """
    return _kinds(cell)[0]


def kind_of(cell: Cell) -> dict[str, str]:
    """Each op's task kind.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> kind_of(get_cell("rnn"))["gx_b"]
    'gates'
    """
    return dict(_kinds(cell)[1])


@functools.cache
def kind_flows(cell: Cell) -> tuple[KindFlow, ...]:
    """The values handed between kinds (same step, delay 0) and across a step (delay 1, through
    the states), sorted by (source, target, delay).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [(f.source, f.target, f.delay, f.values) for f in kind_flows(get_cell("rnn"))]
    [('gates', 'rec_proj', 1, ('h',)), ('input_proj', 'gates', 0, ('gx',)), ('rec_proj', 'gates', 0, ('gh',))]
    """
    kind = kind_of(cell)
    next_of = {s.name: s.next for s in cell.states}
    flows: dict[tuple[str, str, int], list[str]] = {}
    for op in cell.ops:
        for a in op.args:
            if a.name in kind and kind[a.name] != kind[op.name]:
                key, value = (kind[a.name], kind[op.name], 0), a.name
            elif a.name in next_of and next_of[a.name] in kind:
                key, value = (kind[next_of[a.name]], kind[op.name], 1), a.name
            else:
                continue
            values = flows.setdefault(key, [])
            if value not in values:
                values.append(value)
    return tuple(KindFlow(s, t, d, tuple(v)) for (s, t, d), v in sorted(flows.items()))


@dataclass(frozen=True)
class LayerOps:
    """One step of one layer-direction at the op granularity: per kind, its flops for the batch
    (``flops_in``: products off the recurrence; ``flops_rec``: on it; ``flops_elem``) and the
    widths (features per batch row) it reads and writes; per flow, the width it carries; the
    kinds reading the layer input ``x`` directly (wired to the layer below), and those reading
    a state whose next value is ``x`` (wired to the layer below's previous step)."""

    kinds: tuple[OpKind, ...]
    flops: dict[str, tuple[float, float, float]]
    in_width: dict[str, int]
    out_width: dict[str, int]
    flows: tuple[tuple[KindFlow, int], ...]
    output_kind: str
    reads_input: tuple[str, ...]
    reads_previous_input: tuple[str, ...]


@functools.lru_cache(maxsize=1024)
def layer_ops(cell: Cell, hidden: int, input_size: int, batch: int, density: float) -> LayerOps:
    """The op tasks of one step of a layer whose input is ``input_size`` wide (0: a skip-input
    layer, whose ``input_proj`` kind is gone and whose other ops are those of an input ``hidden``
    wide).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> ops = layer_ops(get_cell("lstm"), hidden=4, input_size=3, batch=1, density=1.0)
    >>> ops.flops["gates"], ops.in_width["state"], ops.out_width["state"]
    ((0.0, 0.0, 64.0), 24, 8)
    """
    skip = input_size == 0
    width = hidden if skip else input_size
    widths = value_widths(cell, hidden, width)
    flops = op_flops(cell, hidden, width, batch, density)
    phases = op_phases(cell)
    kinds = tuple(k for k in op_kinds(cell) if not (skip and k.base == "input_proj"))
    present = {k.name for k in kinds}
    kind = kind_of(cell)
    states = {s.name for s in cell.states}
    next_of = {s.name: s.next for s in cell.states}
    all_states = sum(widths[s] for s in states)
    by_kind: dict[str, tuple[float, float, float]] = {}
    in_width: dict[str, int] = {}
    out_width: dict[str, int] = {}
    for k in kinds:
        f_in = f_rec = f_elem = 0.0
        read: list[str] = []
        for name in k.ops:
            op = cell.op(name)
            if op.kind == "matmul":
                if phases[name] == "recurrence":
                    f_rec += flops[name]
                else:
                    f_in += flops[name]
            else:
                f_elem += flops[name]
            for a in op.args:
                outside = a.name == INPUT or (a.name in kind and kind[a.name] != k.name)
                if (outside or a.name in states) and a.name not in read:
                    read.append(a.name)
        by_kind[k.name] = (f_in, f_rec, f_elem)
        values = sum(widths[v] for v in read if v not in states)
        in_width[k.name] = values + (
            all_states if k.base == "state" else sum(widths[v] for v in read if v in states)
        )
    flows = tuple(
        (f, sum(widths[v] for v in f.values))
        for f in kind_flows(cell)
        if f.source in present and f.target in present
    )
    for k in kinds:
        written = {v for f in kind_flows(cell) if f.source == k.name for v in f.values}
        written = {next_of.get(v, v) for v in written}  # a state's value is its next op's
        if kind[cell.output] == k.name:
            written.add(cell.output)
        out_width[k.name] = sum(widths[v] for v in written)
    reads_input = tuple(
        k.name for k in kinds if any(a.name == INPUT for n in k.ops for a in cell.op(n).args)
    )
    carried_inputs = {s for s, n in next_of.items() if n == INPUT}
    reads_previous = tuple(
        k.name
        for k in kinds
        if any(a.name in carried_inputs for n in k.ops for a in cell.op(n).args)
    )
    return LayerOps(
        kinds,
        by_kind,
        in_width,
        out_width,
        flows,
        kind[cell.output],
        reads_input,
        reads_previous,
    )
