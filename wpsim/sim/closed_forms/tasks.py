"""The tasks of a workload's graph by class, without building the graph (for the closed forms).

:func:`wpsim.model.graph.build` makes one task per (instance, phase, layer, direction, chunk); the
closed forms need only what tells tasks apart in cost. This module derives it from the workload
and the graph options, for a *block* of points at once (numpy arrays over points that share the
graph's structure: the same cell, layers, directions, phase, output layer, hoisting and shape of
chunking; sizes, chunks and machines may differ).

Rows and slots
--------------
A :class:`Row` is the tasks of one kind of one (instance, layer, direction), in chunk order, as
:mod:`wpsim.sim.closed_forms.path` reads them: a forward chain, a reverse chain, tasks without a chain
(output layer), or a single task (a weight gradient, an input projection hoisted out of the
cells). Its tasks fall into three *slots*: the first (``c = 0``), the middle ones and the last
(``c = n - 1``), which differ in the steps of the last chunk, in which edges reach them (the
largest incoming edge is what a hand-off costs) and in that the first task of each set of
weights reads them cold (:class:`Slot` ``cold``: the first by task id, ``c = 0`` also for a
reverse chain, as the graph numbers them). Rows are listed in task-id order.

Every slot's fields are those of :class:`wpsim.model.graph.Task` (flops, steps, bytes), computed with
the same formulas in the same order as ``graph.build``, so equal tasks get bit-equal numbers.

Residency (the live set)
------------------------
The closed forms place weights by the most weight bytes (and layer-directions) any one wavefront
touches: a task's *generation* is the number of tasks on its longest chain of predecessors.
With unit costs the longest-path algebra of :mod:`wpsim.sim.closed_forms.path` gives each row's
generations as the interval between its earliest and latest (consecutive chunks of a row differ
by at most one generation), which depends only on the structure and on ``n``: it is computed
once per ``n`` (:func:`live_pattern`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from wpsim.cells import input_products, products
from wpsim.errors import ConfigError
from wpsim.model.graph import SOFTMAX_FLOPS_PER_ELEMENT
from wpsim.model.workload import Workload
from wpsim.sim.closed_forms.path import Grid, RowFn

FIRST, MID, LAST = 0, 1, 2


@dataclass(slots=True)
class Slot:
    """A class of a row's tasks (arrays over points; ``count`` may be 0 where the row has
    fewer chunks)."""

    count: np.ndarray
    steps: np.ndarray
    flops_in: np.ndarray
    flops_rec: np.ndarray
    flops_elem: np.ndarray
    in_bytes: np.ndarray
    out_bytes: np.ndarray
    max_in_bytes: np.ndarray  # the largest incoming edge (0 without one)
    cold: bool = False  # the first task of its set of weights

    @property
    def flops(self) -> np.ndarray:
        return self.flops_in + self.flops_rec + self.flops_elem


@dataclass(slots=True)
class Row:
    """One kind of task of one (instance, layer, direction).

    ``chain``: ``forward``, ``reverse``, ``none`` (no chain) or ``single`` (one task);
    ``slots``: first, middle, last (a single task: one slot); ``parts``: the weight blocks its
    tasks read (``ih``, ``hh``, ``out``) and ``weight_set`` their set in
    :attr:`TaskSet.weight_sets` (-1: none); ``same``: rows whose task at the same chunk each task
    needs; ``const``: single-task rows every task needs; ``whole``: (a single task) rows all of
    whose tasks it needs. Predecessors are listed in task-id order.
    """

    kind: str
    key: tuple[int, int, int]
    chain: str
    slots: list[Slot]
    parts: tuple[str, ...] = ()
    weight_set: int = -1
    same: list[int] = field(default_factory=list)
    const: list[int] = field(default_factory=list)
    whole: list[int] = field(default_factory=list)

    def skeleton(self) -> tuple:
        """What the generations depend on (hashable)."""
        return (
            self.kind,
            self.key,
            self.chain,
            self.parts,
            tuple(self.same),
            tuple(self.const),
            tuple(self.whole),
        )


@dataclass(slots=True)
class WeightSet:
    """A set of weight blocks read together (a task's ``weights``): per block, whether it is
    an input projection's ``W_ih`` (``.ih``: split over time steps when small) and its bytes."""

    key: tuple[int, int, int]  # the (instance, layer, direction) it belongs to
    is_ih: list[bool]
    sizes: list[np.ndarray]
    count: np.ndarray  # tasks reading it

    @property
    def size(self) -> np.ndarray:
        total = self.sizes[0]
        for size in self.sizes[1:]:
            total = total + size
        return total


@dataclass(slots=True)
class TaskSet:
    """All task classes of a block's graph."""

    rows: list[Row]
    weight_sets: list[WeightSet]
    n_tasks: np.ndarray
    n: np.ndarray  # chunks per row
    all_cells: bool
    layer_keys: list[tuple[int, int, int]]  # every (instance, layer, direction) with weights
    live_bytes: np.ndarray | None = None  # filled by :func:`fill_live`
    live_layers: np.ndarray | None = None


def structure(workload: Workload) -> tuple:
    """What a block's workloads must share (the graph's shape, apart from the chunking)."""
    return (
        workload.cell,
        workload.layers,
        workload.bidirectional,
        workload.phase,
        workload.output,
        workload.dtype,
        workload.skip_input,
        workload.streams,
    )


class Sizes:
    """The workloads' numbers as arrays over points (floats: exact below 2**53). Every per-cell
    number comes from the cell's declaration through the workload (:meth:`Workload.step_flops`,
    :meth:`Workload.weight_block_bytes`, ...), as :func:`wpsim.model.graph.build` reads them.

    ``workloads``: each point's; or, with ``which``, the distinct ones and each point's index
    among them."""

    def __init__(self, workloads: list[Workload], which: np.ndarray | None = None) -> None:
        w0 = workloads[0]
        self.L, self.phase, self.output = w0.layers, w0.phase, w0.output
        self.cell = w0.calibration_key  # the key of the machine's per-cell calibrations
        self.skip_input = w0.skip_input
        self.D = w0.directions
        self.streams = w0.streams
        self.s = float(w0.dtype_bytes)
        self.dtype = w0.dtype
        decl = w0.cell_declaration
        #: the layer's output is a state (h of rnn, lstm, gru; not SRU's): a cell task writes
        #: the other states only besides its outputs
        self.output_is_state = any(state.next == decl.output for state in decl.states)
        #: the cell reads parameters on the recurrence (a "hh" weight block; none for QRNN)
        self.has_hh = w0.weight_block_bytes(0)["hh"] > 0
        #: the input projection hoisted, the cell keeps products off the recurrence (those not
        #: of the layer input, as MinimalRNN's U_z z) and reads the ih block too
        off_recurrence = [p for p in products(decl, 1, 1) if not p.recurrent]
        self.keeps_products = len(off_recurrence) > len(input_products(decl))

        # each distinct workload once (a block repeats them over cores and chunks)
        if which is None:
            first: dict[int, int] = {}
            which = np.array([first.setdefault(id(w), len(first)) for w in workloads])
            workloads = list({id(w): w for w in workloads}.values())
        self._which, self._distinct = which, workloads
        self._numbers = [workload_numbers(w) for w in self._distinct]
        self._columns: dict[tuple, np.ndarray] = {}
        column = self.column
        self.h = column(lambda w: w.hidden, ("h",))  # the hidden size (efficiency tables read it)
        self.ow = column(lambda w: w.output_width, ("ow",))  # features of a layer's output
        self.b = column(lambda w: w.batch, ("b",))
        self.T = column(lambda w: w.seq_len, ("T",))
        self.input = column(lambda w: w.input, ("input",))
        self.o = column(lambda w: w.output_size, ("o",))
        self.gathered = column(lambda w: w.gathered_state_bytes, ("gathered",))
        self.bias_width = column(lambda w: w.bias_gradient_width, ("bias_width",))

    def column(self, get: Callable[[Workload], float], key: tuple) -> np.ndarray:
        """``get`` of each point's workload, as an array over points (kept under ``key``, and
        each workload's value under ``key`` in :func:`workload_numbers`)."""
        if key in self._columns:
            return self._columns[key]
        values = []
        for workload, known in zip(self._distinct, self._numbers, strict=True):
            value = known.get(key)
            if value is None:
                value = known[key] = get(workload)
            values.append(value)
        column = self._columns[key] = np.array(values, dtype=float)[self._which]
        return column

    def width(self, layer: int) -> np.ndarray:
        return self.input if layer == 0 else self.D * self.ow

    def flops(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flops of one step of ``layer`` for the batch: products off the recurrence, on it,
        element-wise (:meth:`Workload.step_flops`)."""
        return (
            self.column(lambda w: w.step_flops(layer).matmul_batched, ("in", layer)),
            self.column(lambda w: w.step_flops(layer).matmul_recurrent, ("rec", layer)),
            self.column(lambda w: w.step_flops(layer).elementwise, ("elem", layer)),
        )

    def input_flops(self, layer: int) -> np.ndarray:
        """Flops of one step's products of the layer input (what a hoisted input GEMM runs:
        :attr:`wpsim.cells.StepFlops.matmul_input`)."""
        return self.column(lambda w: w.step_flops(layer).matmul_input, ("input", layer))

    def handoff(self, layer: int) -> np.ndarray:
        """Features a hoisted input GEMM hands to the cells (``G*H`` for rnn, lstm, gru)."""
        return self.column(lambda w: w.handoff_width(layer), ("handoff", layer))

    def state(self, layer: int) -> np.ndarray:
        return self.column(lambda w: w.state_bytes(layer), ("state", layer))

    def ih_bytes(self, layer: int) -> np.ndarray:
        """The ``ih`` weight block (``weight_ih`` and ``bias_ih`` for the LSTM)."""
        return self.column(lambda w: w.weight_block_bytes(layer)["ih"], ("ih", layer))

    def hh_block(self, layer: int = 0) -> np.ndarray:
        """The ``hh`` weight block (``weight_hh`` and ``bias_hh``; CSR when sparse)."""
        return self.column(lambda w: w.weight_block_bytes(layer)["hh"], ("hh", layer))

    def out_block(self) -> np.ndarray:
        return (self.o * self.D * self.ow + self.o) * self.s


@lru_cache(maxsize=4096)
def workload_numbers(workload: Workload) -> dict[tuple, float]:
    """A workload's numbers by :meth:`Sizes.column` key, filled as they are read (a sweep
    evaluates each workload under several policies and chunks: each number is computed once)."""
    return {}


def _zero_like(a: np.ndarray) -> np.ndarray:
    return np.zeros(a.shape)


class _Builder:
    """Rows of the cell graph (see :func:`task_set`)."""

    def __init__(
        self, sz: Sizes, chunk: np.ndarray, hoist: bool, instances: int, shape: int
    ) -> None:
        self.sz, self.hoist, self.instances, self.shape = sz, hoist, instances, shape
        T = sz.T
        self.C = np.asarray(chunk, dtype=float)
        self.n = np.ceil(T / self.C)
        self.k_full = np.minimum(self.C, T)
        self.k_last = T - (self.n - 1) * self.C
        self.one = np.ones(T.shape)
        self.rows: list[Row] = []
        self.weight_sets: list[WeightSet] = []
        self.set_of: dict[tuple, int] = {}

    # ---- slots ----------------------------------------------------------------------------
    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        one = self.one
        if self.shape == 1:
            return one, 0 * one, 0 * one
        return one, self.n - 2, one

    def steps(self) -> list[np.ndarray]:
        return [self.k_full if self.shape > 1 else self.sz.T, self.k_full, self.k_last]

    def hoisted(self, layer: int) -> bool:
        """Whether ``layer``'s input projections are hoisted (a skip-input layer has none)."""
        return self.hoist and not (layer == 0 and self.sz.skip_input)

    def cell_slots(self, layer: int, direction: int) -> list[Slot]:
        sz = self.sz
        hoist = self.hoisted(layer)
        s, b, h = sz.s, sz.b, sz.ow
        width = sz.width(layer)
        in_per_step, rec_per_step, elem_per_step = sz.flops(layer)
        kept_per_step = in_per_step - sz.input_flops(layer)  # what a hoisted cell keeps
        pre = sz.handoff(layer)
        state = sz.state(layer)
        # a cell task writes its outputs and the states that are not the output (c of an LSTM)
        c_bytes = state - b * h * s if sz.output_is_state else state
        # a skip-input layer reads its input x (B x H) and adds it to the gates
        in_width = pre if hoist else (sz.h if layer == 0 and sz.skip_input else width)
        slots = []
        for position, (count, k) in enumerate(zip(self.counts(), self.steps(), strict=True)):
            # the recurrent predecessor: forward chunks after the first, reverse before the last
            if self.shape == 1:
                chained = False
            elif direction == 0:
                chained = position != FIRST
            else:
                chained = position != LAST
            edges = []
            if hoist:
                edges.append(pre * b * k * s)
            elif layer > 0:
                edges.append(b * k * h * s)
            if chained:
                edges.append(state)
            slots.append(
                Slot(
                    count,
                    k,
                    kept_per_step * k if hoist else in_per_step * k,
                    rec_per_step * k,
                    elem_per_step * k,
                    in_width * b * k * s + state,
                    b * k * h * s + c_bytes,
                    _max(edges, k),
                    cold=position == FIRST,
                )
            )
        return slots

    def output_slots(self) -> list[Slot]:
        sz = self.sz
        s, b, h, o = sz.s, sz.b, sz.ow, sz.o
        dh = sz.D * h
        per_step = 2.0 * o * dh * b + o * b
        soft = SOFTMAX_FLOPS_PER_ELEMENT * o * b if sz.output == "softmax" else 0 * o
        return [
            Slot(
                count,
                k,
                per_step * k,
                _zero_like(k),
                soft * k,
                b * k * dh * s,
                b * k * o * s,
                b * k * h * s,
                cold=position == FIRST,
            )
            for position, (count, k) in enumerate(zip(self.counts(), self.steps(), strict=True))
        ]

    def input_gemm_slot(self, layer: int) -> Slot:
        sz = self.sz
        s, b, h, T = sz.s, sz.b, sz.ow, sz.T
        width = sz.width(layer)
        in_per_step = sz.input_flops(layer)
        biggest = b * self.k_full * h * s if layer > 0 else _zero_like(T)
        return Slot(
            self.one,
            T,
            in_per_step * T,
            _zero_like(T),
            _zero_like(T),
            b * T * width * s,
            sz.handoff(layer) * b * T * s,
            biggest,
            cold=True,
        )

    # ---- rows -----------------------------------------------------------------------------
    def weight_set(
        self, name: tuple, key: tuple, is_ih: list[bool], sizes: list[np.ndarray]
    ) -> int:
        index = self.set_of.get(name)
        if index is None:
            index = self.set_of[name] = len(self.weight_sets)
            self.weight_sets.append(WeightSet(key, is_ih, sizes, _zero_like(self.n)))
        return index

    def add(self, row: Row) -> int:
        if row.weight_set >= 0 and bool(np.any(self.weight_sets[row.weight_set].count)):
            # another stream's rows read these weights first: none of this row's tasks is cold
            for slot in row.slots:
                slot.cold = False
        self.rows.append(row)
        if row.weight_set >= 0:
            ws = self.weight_sets[row.weight_set]
            for slot in row.slots:
                ws.count = ws.count + slot.count
        return len(self.rows) - 1

    def forward(self, instance: int) -> None:
        """The forward rows of one instance and stream, in task-id order (``graph.build``;
        the streams of an instance share its weight sets)."""
        sz = self.sz
        below: list[int] = []
        for layer in range(sz.L):
            current = []
            ih = sz.ih_bytes(layer)
            hh = sz.hh_block(layer)
            for d in range(sz.D):
                key = (instance, layer, d)
                chain = "forward" if d == 0 else "reverse"
                slots = self.cell_slots(layer, d)
                if self.hoisted(layer):
                    ws = self.weight_set((key, "ih"), key, [True], [ih])
                    gemm = self.add(
                        Row(
                            "input_gemm",
                            key,
                            "single",
                            [self.input_gemm_slot(layer)],
                            ("ih",),
                            ws,
                            whole=list(below),
                        )
                    )
                    if sz.keeps_products and sz.has_hh:
                        ws = self.weight_set((key, "ih+hh"), key, [True, False], [ih, hh])
                        row = Row("cell", key, chain, slots, ("ih", "hh"), ws, const=[gemm])
                    elif sz.keeps_products:
                        ws = self.weight_set((key, "ih"), key, [True], [ih])
                        row = Row("cell", key, chain, slots, ("ih",), ws, const=[gemm])
                    elif sz.has_hh:
                        ws = self.weight_set((key, "hh"), key, [False], [hh])
                        row = Row("cell", key, chain, slots, ("hh",), ws, const=[gemm])
                    else:  # no weights on the recurrence (QRNN): the cells read none
                        row = Row("cell", key, chain, slots, (), -1, const=[gemm])
                    current.append(self.add(row))
                elif sz.has_hh:
                    ws = self.weight_set((key, "ih+hh"), key, [True, False], [ih, hh])
                    current.append(
                        self.add(Row("cell", key, chain, slots, ("ih", "hh"), ws, same=list(below)))
                    )
                else:
                    ws = self.weight_set((key, "ih"), key, [True], [ih])
                    current.append(
                        self.add(Row("cell", key, chain, slots, ("ih",), ws, same=list(below)))
                    )
            below = current
        if sz.output != "none":
            key = (instance, sz.L, 0)
            ws = self.weight_set((key, "out"), key, [False], [sz.out_block()])
            self.add(
                Row("output", key, "none", self.output_slots(), ("out",), ws, same=list(below))
            )

    def backward(self) -> None:
        """``graph.Builder.add_backward``: every forward row mirrored, in the same order (a
        backward chain runs the other way; a task needs its forward twin and the twins of the
        forward task's successors), then one weight gradient per (instance, layer, direction)
        whose tasks read weights, sorted."""
        forward = list(self.rows)
        twin = {i: len(forward) + i for i in range(len(forward))}
        for i, row in enumerate(forward):
            chain = {"forward": "reverse", "reverse": "forward"}.get(row.chain, row.chain)
            new = Row(
                row.kind + "_bwd",
                row.key,
                chain,
                [_backward_slot(slot) for slot in row.slots],
                row.parts,
                row.weight_set,
            )
            if row.chain == "single":  # its successors need it whole: it needs theirs whole
                new.whole = [i] + [twin[j] for j, s in enumerate(forward) if i in s.const]
            else:
                new.same = [i] + [twin[j] for j, s in enumerate(forward) if i in s.same]
                new.const = [twin[j] for j, s in enumerate(forward) if i in s.whole]
            self.add(new)
        for key in sorted({row.key for row in forward if row.weight_set >= 0}):
            members = [i for i, row in enumerate(forward) if row.key == key and row.weight_set >= 0]
            self._add_wgrad(key, members, [twin[i] for i in members])

    def _add_wgrad(self, key: tuple, members: list[int], bwd_rows: list[int]) -> None:
        """The weight gradient of ``key``: the products of all its forward tasks, the bias
        sums over every step; it reads the gradient of each weight block (names sorted)."""
        sz = self.sz
        flops = _zero_like(self.n)
        in_bytes = _zero_like(self.n)
        biggest = _zero_like(self.n)
        blocks: dict[str, tuple[bool, np.ndarray]] = {}
        for i in members:
            row = self.rows[i]
            weights = self.weight_sets[row.weight_set]
            for slot in row.slots:
                flops = flops + (slot.flops_in + slot.flops_rec) * slot.count
                in_bytes = in_bytes + slot.in_bytes * slot.count
                biggest = np.where(slot.count > 0, np.maximum(biggest, slot.in_bytes), biggest)
            for part, is_ih, size in zip(row.parts, weights.is_ih, weights.sizes, strict=True):
                blocks[part] = (is_ih, size)
        names = sorted(blocks)  # "hh" < "ih": graph.build sorts the blocks by name
        # every stream's rows: the streams share the weights
        bias = sz.bias_width * sz.b * sz.T * sz.streams if key[1] < sz.L else _zero_like(self.n)
        out = _zero_like(self.n)
        for part in names:
            out = out + blocks[part][1]
        slot = Slot(
            self.one, sz.T, flops, _zero_like(flops), bias, in_bytes, out, biggest, cold=True
        )
        ws = self.weight_set(
            (key, "grad"), key, [blocks[p][0] for p in names], [blocks[p][1] for p in names]
        )
        self.add(Row("wgrad", key, "single", [slot], (), ws, whole=bwd_rows))


def _max(values: list[np.ndarray], like: np.ndarray) -> np.ndarray:
    out = _zero_like(like)
    for value in values:
        out = np.maximum(out, value)
    return out


def _backward_slot(slot: Slot) -> Slot:
    """The backward twin of a forward task: the same products, twice the element-wise work;
    its largest incoming edge is the saved activations (``in + out`` bytes), which no edge of
    a forward successor's twin exceeds."""
    return Slot(
        slot.count,
        slot.steps,
        slot.flops_in,
        slot.flops_rec,
        2.0 * slot.flops_elem,
        slot.out_bytes + slot.in_bytes,
        slot.in_bytes,
        slot.in_bytes + slot.out_bytes,
    )


def chunk_shape(n: np.ndarray) -> np.ndarray:
    """1, 2 or 3 (n >= 3) at each point: what :class:`~wpsim.sim.closed_forms.path.Grid` needs equal."""
    return np.minimum(n, 3).astype(int)


def task_set(
    workloads: list[Workload],
    chunk: np.ndarray,
    hoist_input: np.ndarray | None,
    instances: int,
    granularity: str = "cell",
    sizes: Sizes | None = None,
) -> TaskSet:
    """The task classes of ``build(workload, granularity, chunk, hoist_input, instances)`` for a
    block of workloads with one :func:`structure` and one :func:`chunk_shape`.

    ``hoist_input``: the input projections hoisted out of the cells (the ``layerwise`` policy),
    supported for a whole sequence at once (``hoist_input >= seq_len``). ``sizes``: the
    workloads' :class:`Sizes`, when the caller has them.

    Examples
    --------
    >>> import numpy as np
    >>> w = Workload(cell="lstm", layers=2, hidden=8, input=4, seq_len=7)
    >>> ts = task_set([w], np.array([3]), None, 1)
    >>> [(r.kind, r.chain) for r in ts.rows], int(ts.n_tasks[0])
    ([('cell', 'forward'), ('cell', 'forward')], 6)
    >>> [float(s.steps[0]) for s in ts.rows[0].slots]  # chunks of 3, 3 and 1 steps
    [3.0, 3.0, 1.0]
    """
    if granularity != "cell":
        raise ConfigError(
            "--granularity op: the closed forms (predict) cover the cell graph; "
            "use --granularity cell, or simulate"
        )
    sz = Sizes(workloads) if sizes is None else sizes
    chunk = np.asarray(chunk, dtype=float)
    hoist = hoist_input is not None
    if hoist and bool(np.any(np.asarray(hoist_input, dtype=float) < sz.T)):
        raise ConfigError(
            "hoist_input: the closed forms (predict) model the input projection hoisted for the "
            "whole sequence (hoist_input >= seq_len); simulate other values"
        )
    n = np.ceil(sz.T / chunk)
    shapes = np.unique(chunk_shape(n))
    if len(shapes) != 1:
        raise ValueError("a block's points must share the shape of their chunking")
    builder = _Builder(sz, chunk, hoist, instances, int(shapes[0]))
    for instance in range(instances):
        for _stream in range(sz.streams):
            builder.forward(instance)
    if sz.phase == "training":
        builder.backward()
    rows = builder.rows
    n_tasks = _zero_like(n)
    for row in rows:
        for slot in row.slots:
            n_tasks = n_tasks + slot.count
    keys = sorted({row.key for row in rows if row.weight_set >= 0})
    return TaskSet(
        rows, builder.weight_sets, n_tasks, n, all(row.kind == "cell" for row in rows), keys
    )


# ---- the live set --------------------------------------------------------------------------


def generations(skeleton: tuple, n: int) -> list[tuple[float, float]]:
    """Each row's (first, last) generation with ``n`` chunks: its tasks' longest chains of
    predecessors, counted in tasks (``skeleton``: the rows' :meth:`Row.skeleton`)."""
    grid = Grid(np.array([n]))
    one = np.ones(1)
    values: list = [None] * len(skeleton)
    spans: list = [None] * len(skeleton)
    for r in topological_order([(same, const, whole) for *_, same, const, whole in skeleton]):
        _kind, _key, chain, _parts, same, const, whole = skeleton[r]
        if chain == "single":
            value = one
            for i in whole:
                p = values[i] if isinstance(values[i], np.ndarray) else grid.row_max(values[i])[0]
                value = np.maximum(value, p + 1.0)
            values[r] = value
            spans[r] = (float(value[0]) - 1.0,) * 2
            continue
        v = vertical(grid, [values[i] for i in same], [values[i] for i in const])
        costs = (one, one, one)
        fn = (
            grid.add(v, costs)
            if chain == "none"
            else grid.chain(v, costs, forward=chain == "forward")
        )
        values[r] = fn
        spans[r] = (float(grid.row_min(fn)[0]) - 1.0, float(grid.row_max(fn)[0][0]) - 1.0)
    return spans


def topological_order(preds: list[tuple[list[int], ...]]) -> list[int]:
    """Rows in an order where every row comes after those it needs (``preds[r]``: lists of
    row indices), the lowest index first among those ready (deterministic)."""
    import heapq

    needs = [set().union(*map(set, lists)) for lists in preds]
    users: list[list[int]] = [[] for _ in preds]
    for r, rows in enumerate(needs):
        for p in rows:
            users[p].append(r)
    waiting = [len(rows) for rows in needs]
    ready = [r for r, count in enumerate(waiting) if not count]
    heapq.heapify(ready)
    order = []
    while ready:
        r = heapq.heappop(ready)
        order.append(r)
        for u in users[r]:
            waiting[u] -= 1
            if not waiting[u]:
                heapq.heappush(ready, u)
    return order


def vertical(grid: Grid, same: list, const: list, const_why: list | None = None) -> RowFn:
    """The chunk-by-chunk input of a row: its ``same`` rows and the values of its ``const``
    single tasks (zero without any)."""
    fns = list(same)
    for i, value in enumerate(const):
        fns.append(grid.const(value, None if const_why is None else const_why[i]))
    return grid.vmax(fns) if fns else grid.zero()


@lru_cache(maxsize=512)
def live_pattern(skeleton: tuple, n: int) -> tuple[np.ndarray, np.ndarray, list[tuple]]:
    """Which weight blocks each generation touches, with ``n`` chunks: a 0/1 matrix
    (distinct rows: generations, columns: ``blocks``), the layer-directions of each such
    generation, and ``blocks`` (``(instance, layer, direction, part)``). Weight gradients,
    written once at the end, do not count."""
    spans = generations(skeleton, n)
    blocks: dict[tuple, list[tuple[float, float]]] = {}
    keys: dict[tuple, list[tuple[float, float]]] = {}
    for (kind, key, _chain, parts, *_), span in zip(skeleton, spans, strict=True):
        if kind == "wgrad" or not parts:
            continue
        for part in parts:
            blocks.setdefault((*key, part), []).append(span)
        keys.setdefault(key, []).append(span)
    names = list(blocks)
    starts = sorted({lo for spans_ in blocks.values() for lo, _ in spans_})

    def live(spans_: list, g: float) -> bool:
        return any(lo <= g <= hi for lo, hi in spans_)

    present = np.array([[live(blocks[name], g) for name in names] for g in starts], dtype=float)
    layers = np.array([sum(live(spans_, g) for spans_ in keys.values()) for g in starts])
    return present, layers, names


def fill_live(ts: TaskSet, sizes: Sizes) -> None:
    """Set ``ts.live_bytes`` and ``ts.live_layers`` (per point): the most weight bytes, and
    the most layer-directions, any one generation touches."""
    skeleton = tuple(row.skeleton() for row in ts.rows)
    live = np.zeros(ts.n.shape)
    layers = np.ones(ts.n.shape)
    block_size = {
        "ih": sizes.ih_bytes,
        "hh": sizes.hh_block,
        "out": lambda _layer: sizes.out_block(),
    }
    by_block = None  # (points x blocks): the blocks are the skeleton's, whatever n is
    for n in np.unique(ts.n):
        present, n_layers, names = live_pattern(skeleton, int(n))
        if by_block is None:
            by_block = np.stack([block_size[part](layer) for _i, layer, _d, part in names], axis=1)
        at = ts.n == n
        live[at] = np.max(by_block[at] @ present.T, axis=1)
        layers[at] = n_layers.max()
    ts.live_bytes = live
    ts.live_layers = layers


__all__ = [
    "Row",
    "Slot",
    "TaskSet",
    "WeightSet",
    "Sizes",
    "task_set",
    "structure",
    "fill_live",
    "chunk_shape",
    "generations",
    "vertical",
    "live_pattern",
    "topological_order",
]
