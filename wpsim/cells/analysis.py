"""What follows from a cell's declaration: its rolled graph, what leaves the recurrence, flops,
weight blocks and bytes. Nothing here is written per cell.

The rolled graph
----------------
One node per op; an edge ``u -> v`` when ``v`` reads ``u``'s value at the same step (``delay=0``)
or, through a state whose ``next`` is ``u``, at the next step (``delay=1``, attribute ``state``).
An op lies **on the recurrence** when it is in a strongly connected component with a cycle
(more than one op, or a self-loop). The others leave it and run for k steps at once
(multi-time-step execution, Sung & Park 2018): those with no recurrent ancestor **before** the
recurrence, the others **after** it (:func:`op_phases`). :func:`schedule` orders the components
into stages: runs of off-recurrence ops batched over the k steps, and loops over the steps.

The input projection
--------------------
:func:`input_products` are the products of the layer input itself: their operand is the input at
the step or at earlier steps (``x``, a state that carries an earlier input, as QRNN's
``x_{t-1}``, or a ``concat``/``identity`` of these). They need nothing the layer computes, so a
graph that hoists the input projection out of the cells (``layerwise``: one GEMM per layer, for
every step) computes them, and only them, in its input task; the simulator charges them there and
the executor runs them there. Other products off the recurrence (MinimalRNN's ``U_z tanh(W_x
x + b)``) stay in the cell, batched over its steps.

Flop convention (per step and batch row; :data:`OP_FLOPS`)
-----------------------------------------------------------
* ``matmul`` by a (R, C) parameter: ``2*R*C``; by a recurrent matrix stored sparse (density
  below 1): ``2*nnz`` with ``nnz = max(1, round(density * R*C))``;
* ``add``, ``sub``, ``mul``, ``one_minus``, ``sigmoid``, ``tanh``, ``relu``: 1 a unit (an
  activation counts as one flop, whatever its cost in instructions);
* ``identity`` and ``concat``: 0 (they move data).

This is the convention of wpsim's flop counts for the Elman RNN, LSTM and GRU (4, 21 and 17
element-wise flops a unit), which the declarations reproduce exactly.

Weight blocks
-------------
The parameters read by an op on the recurrence form the block ``hh`` (read at every step), the
others the block ``ih`` (read once per k batched steps). A 2-D parameter of ``hh`` is a
*recurrent matrix*: with density below 1 it is stored in CSR (values, column indices and row
pointers of :data:`CSR_INDEX_BYTES` bytes each), like wpsim's sparse ``W_hh``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import networkx as nx

from wpsim.cells.spec import (
    ACTIVATIONS,
    INPUT,
    Cell,
    Op,
    State,
    evaluate_size,
    size_env,
    value_widths,
)

__all__ = [
    "CSR_INDEX_BYTES",
    "OP_FLOPS",
    "Product",
    "Stage",
    "StepFlops",
    "WeightBlock",
    "elementwise_flops_per_unit",
    "gate_count",
    "group_flops",
    "input_lag",
    "input_products",
    "nonzeros",
    "op_flops",
    "op_groups",
    "op_phases",
    "output_width",
    "param_shapes",
    "param_block",
    "parameter_count",
    "products",
    "recurrent_matrices",
    "recurrence_inputs",
    "recurrent_ops",
    "rolled_graph",
    "schedule",
    "state_bytes",
    "state_widths",
    "step_flops",
    "weight_blocks",
]

#: Bytes of one CSR column index or row pointer.
CSR_INDEX_BYTES = 4
#: Flops per output unit of each element-wise op (``matmul`` is counted from its shape).
OP_FLOPS: dict[str, int] = {
    "add": 1,
    "sub": 1,
    "mul": 1,
    "one_minus": 1,
    "sigmoid": 1,
    "tanh": 1,
    "relu": 1,
    "identity": 0,
    "concat": 0,
}
#: Phases of :func:`op_phases`.
BEFORE, RECURRENCE, AFTER = "before", "recurrence", "after"


# ---- the rolled graph and the recurrence ----------------------------------------------------
def rolled_graph(cell: Cell) -> nx.DiGraph:
    """The rolled op graph of ``cell``: nodes are op names (attributes ``kind`` and ``index``,
    the op's position in the declaration); edges carry ``delay`` 0 or 1 and, for delay 1, the
    ``state`` they carry.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> g = rolled_graph(get_cell("rnn"))
    >>> sorted((u, v) for u, v, d in g.edges(data="delay") if d == 1)
    [('h_new', 'gh')]
    """
    graph = nx.DiGraph()
    for index, op in enumerate(cell.ops):
        graph.add_node(op.name, kind=op.kind, index=index)
    next_of = {s.name: s.next for s in cell.states}
    for op in cell.ops:
        for a in op.args:
            if graph.has_node(a.name):
                graph.add_edge(a.name, op.name, delay=0)
            elif a.name in next_of and graph.has_node(next_of[a.name]):
                graph.add_edge(next_of[a.name], op.name, delay=1, state=a.name)
    return graph


@functools.cache
def _phases(cell: Cell) -> tuple[tuple[str, str], ...]:
    graph = rolled_graph(cell)
    cyclic: set[str] = set()
    for component in nx.strongly_connected_components(graph):
        node = next(iter(component))
        if len(component) > 1 or graph.has_edge(node, node):
            cyclic |= component
    after: set[str] = set()
    for node in cyclic:
        after |= nx.descendants(graph, node)
    return tuple(
        (op.name, RECURRENCE if op.name in cyclic else AFTER if op.name in after else BEFORE)
        for op in cell.ops
    )


def recurrent_ops(cell: Cell) -> frozenset[str]:
    """The ops on the recurrence (on a cycle of the rolled graph).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> sorted(recurrent_ops(get_cell("qrnn")))
    ['c_new', 'fc']
    """
    return frozenset(name for name, phase in _phases(cell) if phase == RECURRENCE)


def op_phases(cell: Cell) -> dict[str, str]:
    """Each op's phase: ``"before"`` the recurrence (no recurrent ancestor), ``"recurrence"``
    (on a cycle) or ``"after"`` it (off the cycles but reading their values); the ops before and
    after run batched over the k steps of a chunk.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> phases = op_phases(get_cell("sru"))
    >>> phases["gx"], phases["f"], phases["r"], phases["h_new"]
    ('before', 'recurrence', 'after', 'after')
    """
    return dict(_phases(cell))


@dataclass(frozen=True)
class Stage:
    """A run of ops executed together: ``recurrent`` ones loop over the k steps, one step at a
    time; the others run once over all k steps (batched)."""

    ops: tuple[str, ...]
    recurrent: bool


@functools.cache
def schedule(cell: Cell) -> tuple[Stage, ...]:
    """The stages of one chunk, in an order that respects every dependency (a topological order
    of the strongly connected components; ties broken by declaration order). Within a stage, ops
    are in declaration order.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [(s.recurrent, s.ops) for s in schedule(get_cell("qrnn"))]  # doctest: +NORMALIZE_WHITESPACE
    [(False, ('gx', 'a', 'z', 'f', 'o', 'omf', 'fz')), (True, ('fc', 'c_new')),
     (False, ('h_new',))]
    """
    graph = rolled_graph(cell)
    condensed = nx.condensation(graph)
    index = nx.get_node_attributes(graph, "index")
    cyclic = recurrent_ops(cell)

    def first(component: int) -> int:
        return min(index[name] for name in condensed.nodes[component]["members"])

    stages: list[tuple[list[str], bool]] = []
    for component in nx.lexicographical_topological_sort(condensed, key=first):
        members = sorted(condensed.nodes[component]["members"], key=index.__getitem__)
        recurrent = members[0] in cyclic
        if stages and not recurrent and not stages[-1][1]:
            stages[-1][0].extend(members)
        else:
            stages.append((members, recurrent))
    return tuple(Stage(tuple(sorted(ops, key=index.__getitem__)), rec) for ops, rec in stages)


def recurrence_inputs(cell: Cell) -> tuple[str, ...]:
    """The values computed before the recurrence that ops on it read: what a batched stage of k
    steps hands to the recurrent loop (the pre-activations ``W_ih x + b_ih`` of an LSTM; ``G*H``
    wide for the Elman RNN, LSTM and GRU), in declaration order.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> recurrence_inputs(get_cell("lstm")), recurrence_inputs(get_cell("sru"))
    (('gx_b',), ('gx', 'fx'))
    """
    phases = dict(_phases(cell))
    on_cycle = {name for name, phase in phases.items() if phase == RECURRENCE}
    read = {a.name for op in cell.ops if op.name in on_cycle for a in op.args}
    return tuple(op.name for op in cell.ops if op.name in read and phases[op.name] == BEFORE)


def gathered_states(cell: Cell) -> tuple[str, ...]:
    """The states the products on the recurrence read, in declaration order: what every core
    computing a share of a step's products needs whole from the previous step (none for a cell
    whose recurrence is element-wise).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> gathered_states(get_cell("lstm", proj_size=2)), gathered_states(get_cell("sru"))
    (('h',), ())
    """
    on_cycle = recurrent_ops(cell)
    read = {
        a.name for op in cell.ops if op.kind == "matmul" and op.name in on_cycle for a in op.args
    }
    return tuple(s.name for s in cell.states if s.name in read)


def _carries_input(cell: Cell, name: str, seen: frozenset[str] = frozenset()) -> bool:
    """Whether the value ``name`` is the layer input at the step or at earlier steps, moved but
    not computed: ``x``, a state whose next value is such a value, or a ``concat``/``identity``
    of such values (a value that carries itself round a cycle is none)."""
    item = cell.lookup(name)
    if item == INPUT:
        return True
    if name in seen:
        return False
    seen = seen | {name}
    if isinstance(item, State):
        return _carries_input(cell, item.next, seen)
    if isinstance(item, Op) and item.kind in ("concat", "identity"):
        return all(_carries_input(cell, a.name, seen) for a in item.args)
    return False


@functools.cache
def input_products(cell: Cell) -> tuple[str, ...]:
    """The products of the layer input (see the module docstring), in declaration order: what
    an input task hoisted out of the cells computes for every step.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> input_products(get_cell("lstm")), input_products(get_cell("qrnn", window=2))
    (('gx',), ('gx',))
    >>> input_products(get_cell("minimalrnn"))  # U_z z multiplies tanh(W_x x + b_z)
    ('zx',)
    """
    on_cycle = recurrent_ops(cell)
    return tuple(
        op.name
        for op in cell.ops
        if op.kind == "matmul" and op.name not in on_cycle and _carries_input(cell, op.args[1].name)
    )


def input_lag(cell: Cell) -> int:
    """How many steps back the :func:`input_products` read the layer input (through the states
    that carry it): 0, or 1 for QRNN with a window of 2 (``x_{t-1}``).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> input_lag(get_cell("qrnn")), input_lag(get_cell("qrnn", window=2))
    (0, 1)
    """

    def lag(name: str) -> int:
        item = cell.lookup(name)
        if isinstance(item, State):
            return 1 + lag(item.next)
        if isinstance(item, Op):
            return max(lag(a.name) for a in item.args)
        return 0  # the input itself

    return max((lag(cell.op(name).args[1].name) for name in input_products(cell)), default=0)


# ---- sizes ----------------------------------------------------------------------------------
def param_shapes(cell: Cell, hidden: int, input_size: int) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape for one layer-direction, in declaration (state_dict) order.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> param_shapes(get_cell("lstm", proj_size=3), hidden=5, input_size=2)  # doctest: +NORMALIZE_WHITESPACE
    {'weight_ih': (20, 2), 'weight_hh': (20, 3), 'bias_ih': (20,), 'bias_hh': (20,),
     'weight_hr': (3, 5)}
    """
    return dict(_param_shapes(cell, hidden, input_size))


@functools.lru_cache(maxsize=1024)
def _param_shapes(cell: Cell, hidden: int, input_size: int) -> dict[str, tuple[int, ...]]:
    # kept per (cell, sizes), as value_widths: asked for every layer of every candidate
    env = size_env(cell, hidden, input_size)
    return {p.name: tuple(evaluate_size(d, env) for d in p.shape) for p in cell.params}


def parameter_count(cell: Cell, hidden: int, input_size: int) -> int:
    """Number of parameters of one layer-direction (dense).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> parameter_count(get_cell("gru"), hidden=4, input_size=3)  # 3*4*(3 + 4 + 2)
    108
    """
    return sum(math.prod(shape) for shape in param_shapes(cell, hidden, input_size).values())


def state_widths(cell: Cell, hidden: int, input_size: int) -> dict[str, int]:
    """Features per batch row of each state handed from one step to the next.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> state_widths(get_cell("qrnn", window=2), hidden=8, input_size=5)
    {'c': 8, 'xp': 5}
    """
    widths = value_widths(cell, hidden, input_size)
    return {s.name: widths[s.name] for s in cell.states}


def state_bytes(cell: Cell, hidden: int, input_size: int, batch: int, dtype_bytes: int) -> int:
    """Bytes of the states one step hands to the next (h, and c for an LSTM, ...).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> state_bytes(get_cell("lstm"), hidden=512, input_size=512, batch=1, dtype_bytes=4)
    4096
    """
    return sum(state_widths(cell, hidden, input_size).values()) * batch * dtype_bytes


@functools.lru_cache(maxsize=1024)
def gathered_state_width(cell: Cell, hidden: int) -> int:
    """Features per batch row of the :func:`gathered_states` (``H`` for the Elman RNN, LSTM and
    GRU, ``P`` for a projected LSTM, 0 for SRU, QRNN and IndRNN).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [gathered_state_width(get_cell(n), 8) for n in ("lstm", "sru")]
    [8, 0]
    >>> gathered_state_width(get_cell("lstm", proj_size=3), 8)
    3
    """
    widths = state_widths(cell, hidden, hidden)
    return sum(widths[name] for name in gathered_states(cell))


@functools.lru_cache(maxsize=1024)
def output_width(cell: Cell, hidden: int) -> int:
    """Features of the layer's output per batch row (``H``, or ``P`` for a projected LSTM): a
    stacked layer's input is ``directions * output_width``.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> output_width(get_cell("lstm"), 8), output_width(get_cell("lstm", proj_size=3), 8)
    (8, 3)
    """
    return value_widths(cell, hidden, 1)[cell.output]


def gate_count(cell: Cell) -> int:
    """``G``: the most gate blocks any parameter declares (1 when none does). It is what wpsim's
    workloads call ``gates`` (rnn 1, lstm 4, gru 3); sizes and costs need not use it, every
    shape is in :func:`param_shapes`.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [gate_count(get_cell(n)) for n in ("rnn", "lstm", "gru", "sru", "qrnn", "mgu")]
    [1, 4, 3, 4, 3, 2]
    """
    return max((len(p.gates) for p in cell.params), default=0) or 1


# ---- products and flops ---------------------------------------------------------------------
def nonzeros(entries: int, density: float) -> int:
    """Stored entries of a matrix of ``entries`` kept at ``density``: all of them, or
    ``max(1, round(density * entries))``.

    Examples
    --------
    >>> nonzeros(100, 1.0), nonzeros(100, 0.25), nonzeros(3, 0.01)
    (100, 25, 1)
    """
    return entries if density >= 1.0 else max(1, round(density * entries))


@dataclass(frozen=True)
class Product:
    """A ``matmul`` op: ``op = x @ W^T`` with ``W`` the (``rows``, ``cols``) parameter ``param``
    (its gate block ``gate`` when given); ``recurrent`` when the op is on the recurrence, and then
    ``nonzeros`` counts the entries stored at the workload's density."""

    op: str
    param: str
    gate: str
    rows: int
    cols: int
    recurrent: bool
    nonzeros: int

    @property
    def flops_per_row(self) -> float:
        """Flops per batch row: ``2 * nonzeros``."""
        return 2.0 * self.nonzeros


def products(cell: Cell, hidden: int, input_size: int, density: float = 1.0) -> tuple[Product, ...]:
    """Every matrix product of one step, in declaration order, with its shape.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [(p.op, p.rows, p.cols, p.recurrent) for p in products(get_cell("lstm"), 8, 5)]
    [('gx', 32, 5, False), ('gh', 32, 8, True)]
    """
    shapes = param_shapes(cell, hidden, input_size)
    gates = {p.name: p.gates for p in cell.params}
    on_cycle = recurrent_ops(cell)
    found = []
    for op in cell.ops:
        if op.kind != "matmul":
            continue
        w = op.args[0]
        rows, cols = shapes[w.name]
        if w.gate:
            rows //= len(gates[w.name])
        recurrent = op.name in on_cycle
        stored = nonzeros(rows * cols, density) if recurrent else rows * cols
        found.append(Product(op.name, w.name, w.gate, rows, cols, recurrent, stored))
    return tuple(found)


def op_flops(
    cell: Cell, hidden: int, input_size: int, batch: int = 1, density: float = 1.0
) -> dict[str, float]:
    """Flops of every op for one step of ``batch`` rows (see the module's convention).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> op_flops(get_cell("rnn"), hidden=4, input_size=3)
    {'gx': 24.0, 'gx_b': 4.0, 'gh': 32.0, 'gh_b': 4.0, 'a': 4.0, 'h_new': 4.0}
    """
    widths = value_widths(cell, hidden, input_size)
    by_product = {p.op: p for p in products(cell, hidden, input_size, density)}
    return {
        op.name: (
            by_product[op.name].flops_per_row * batch
            if op.kind == "matmul"
            else float(OP_FLOPS[op.kind] * widths[op.name] * batch)
        )
        for op in cell.ops
    }


@dataclass(frozen=True)
class StepFlops:
    """Flops of one step: products off the recurrence (batched over k steps: ``B*k`` rows a
    GEMM), products on it (``B`` rows a step), element-wise ops (all of them, and those on
    the recurrence), and the products of the layer input (:func:`input_products`, part of
    ``matmul_batched``: what a hoisted input task computes)."""

    matmul_batched: float
    matmul_recurrent: float
    elementwise: float
    elementwise_recurrent: float
    matmul_input: float

    @property
    def total(self) -> float:
        return self.matmul_batched + self.matmul_recurrent + self.elementwise


def step_flops(
    cell: Cell, hidden: int, input_size: int, batch: int = 1, density: float = 1.0
) -> StepFlops:
    """The flops of one step of one layer-direction, by kind (what a task's cost needs:
    ``flops_in`` per step is ``matmul_batched``, ``flops_rec`` is ``matmul_recurrent``,
    ``flops_elem`` is ``elementwise``).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> step_flops(get_cell("lstm"), hidden=512, input_size=512)  # doctest: +NORMALIZE_WHITESPACE
    StepFlops(matmul_batched=2097152.0, matmul_recurrent=2097152.0, elementwise=10752.0,
              elementwise_recurrent=8704.0, matmul_input=2097152.0)
    """
    flops = op_flops(cell, hidden, input_size, batch, density)
    on_cycle = recurrent_ops(cell)
    of_input = input_products(cell)
    sums = {(kind, rec): 0.0 for kind in ("matmul", "elem") for rec in (False, True)}
    for op in cell.ops:
        kind = "matmul" if op.kind == "matmul" else "elem"
        sums[kind, op.name in on_cycle] += flops[op.name]
    return StepFlops(
        matmul_batched=sums["matmul", False],
        matmul_recurrent=sums["matmul", True],
        elementwise=sums["elem", False] + sums["elem", True],
        elementwise_recurrent=sums["elem", True],
        matmul_input=sum(flops[name] for name in of_input),
    )


def elementwise_flops_per_unit(cell: Cell, hidden: int, input_size: int) -> float:
    """Element-wise flops per hidden unit and batch row of one step (``E``: rnn 4, lstm 21,
    gru 17).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [elementwise_flops_per_unit(get_cell(n), 64, 32) for n in ("rnn", "lstm", "gru")]
    [4.0, 21.0, 17.0]
    """
    return step_flops(cell, hidden, input_size).elementwise / hidden


# ---- the op granularity's groups ------------------------------------------------------------
GROUPS = ("input_proj", "rec_proj", "gates", "state")


@functools.cache
def _groups(cell: Cell) -> tuple[tuple[str, str], ...]:
    states = {s.name for s in cell.states}
    # a value "touches the state" if it reads a state through element-wise ops only (a product
    # by a weight matrix is a new quantity, the pre-activation of a gate)
    touches: dict[str, bool] = {INPUT: False, **{name: True for name in states}}
    touches.update({p.name: False for p in cell.params})
    for op in cell.ops:
        touches[op.name] = op.kind != "matmul" and any(touches[a.name] for a in op.args)
    gate_activations = [
        op.name for op in cell.ops if op.kind in ACTIVATIONS and not touches[op.args[0].name]
    ]
    graph = rolled_graph(cell)
    same_step = graph.edge_subgraph([(u, v) for u, v, d in graph.edges(data="delay") if d == 0])
    in_gates: set[str] = set(gate_activations)
    for name in gate_activations:
        if name in same_step:
            in_gates |= nx.ancestors(same_step, name)
    on_cycle = recurrent_ops(cell)
    groups = []
    for op in cell.ops:
        if op.kind == "matmul":
            group = "rec_proj" if op.name in on_cycle else "input_proj"
        else:
            group = "gates" if op.name in in_gates else "state"
        groups.append((op.name, group))
    return tuple(groups)


def op_groups(cell: Cell) -> dict[str, str]:
    """Each op's group in wpsim's op granularity: ``input_proj`` (products off the recurrence),
    ``rec_proj`` (products on it), ``gates`` (the gate activations and the element-wise ops they
    depend on within the step) and ``state`` (the other element-wise ops: those that combine the
    gates with the carried state).

    A *gate activation* is a nonlinearity of a value computed from products, inputs and
    parameters only (no state read through element-wise ops): ``i, f, g, o`` of an LSTM,
    ``r, z, n`` of a GRU, the Elman cell's ``tanh``; ``tanh(c')`` of an LSTM is not one.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> groups = op_groups(get_cell("lstm"))
    >>> sorted(name for name, g in groups.items() if g == "state")
    ['c_new', 'fc', 'h_new', 'ig', 'tc']
    """
    return dict(_groups(cell))


def group_flops(
    cell: Cell, hidden: int, input_size: int, batch: int = 1, density: float = 1.0
) -> dict[str, float]:
    """Flops of one step by :func:`op_groups` group (every group present, 0 when empty).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> group_flops(get_cell("gru"), hidden=1, input_size=1)
    {'input_proj': 6.0, 'rec_proj': 6.0, 'gates': 13.0, 'state': 4.0}
    """
    flops = op_flops(cell, hidden, input_size, batch, density)
    sums = dict.fromkeys(GROUPS, 0.0)
    for name, group in _groups(cell):
        sums[group] += flops[name]
    return sums


# ---- weights --------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightBlock:
    """Parameters read together: ``name`` ``"ih"`` (off the recurrence) or ``"hh"`` (on it),
    their names, and their bytes as stored (``sparse`` names the ones stored in CSR)."""

    name: str
    params: tuple[str, ...]
    bytes: int
    sparse: tuple[str, ...] = ()


@functools.cache
def _param_blocks(cell: Cell) -> tuple[tuple[str, str], ...]:
    on_cycle = recurrent_ops(cell)
    readers: dict[str, set[str]] = {p.name: set() for p in cell.params}
    for op in cell.ops:
        for a in op.args:
            if a.name in readers:
                readers[a.name].add(op.name)
    return tuple((p.name, "hh" if readers[p.name] & on_cycle else "ih") for p in cell.params)


def weight_blocks(
    cell: Cell, hidden: int, input_size: int, dtype_bytes: int, density: float = 1.0
) -> tuple[WeightBlock, ...]:
    """The blocks of one layer-direction's parameters (``ih`` then ``hh``, the empty ones left
    out), with their bytes: dense, or CSR for the recurrent matrices when ``density < 1``
    (``nnz * (dtype_bytes + 4) + (rows + 1) * 4``).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> for b in weight_blocks(get_cell("gru"), hidden=4, input_size=3, dtype_bytes=4):
    ...     print(b.name, b.params, b.bytes)
    ih ('weight_ih', 'bias_ih') 192
    hh ('weight_hh', 'bias_hh') 240
    >>> weight_blocks(get_cell("gru"), 4, 3, 4, density=0.5)[1].sparse
    ('weight_hh',)
    """
    shapes = param_shapes(cell, hidden, input_size)
    blocks = []
    for block in ("ih", "hh"):
        names = tuple(name for name, b in _param_blocks(cell) if b == block)
        if not names:
            continue
        total = 0
        sparse = []
        for name in names:
            shape = shapes[name]
            entries = math.prod(shape)
            if block == "hh" and len(shape) == 2 and density < 1.0:
                sparse.append(name)
                total += nonzeros(entries, density) * (dtype_bytes + CSR_INDEX_BYTES)
                total += (shape[0] + 1) * CSR_INDEX_BYTES
            else:
                total += entries * dtype_bytes
        blocks.append(WeightBlock(block, names, total, tuple(sparse)))
    return tuple(blocks)


def recurrent_matrices(cell: Cell) -> tuple[str, ...]:
    """The 2-D parameters read on the recurrence (stored sparse when the density is below 1).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> recurrent_matrices(get_cell("lstm", proj_size=2)), recurrent_matrices(get_cell("sru"))
    (('weight_hh', 'weight_hr'), ())
    """
    two_d = {p.name for p in cell.params if len(p.shape) == 2}
    return tuple(name for name, block in _param_blocks(cell) if block == "hh" and name in two_d)


def param_block(cell: Cell) -> dict[str, str]:
    """Each parameter's weight block, ``"ih"`` or ``"hh"`` (see :func:`weight_blocks`).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> param_block(get_cell("sru"))
    {'weight_ih': 'ih', 'weight_c': 'hh', 'bias': 'ih'}
    """
    return dict(_param_blocks(cell))
