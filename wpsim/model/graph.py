"""Task graphs of RNN workloads (networkx DiGraphs of :class:`Task`).

Nodes are integers ``0..n-1`` (creation order, which is layer-major and deterministic); each node
carries its :class:`Task` under the attribute ``"task"``; each edge carries ``"bytes"``, the
activation bytes handed from producer to consumer. Graph attributes: ``workload``,
``granularity``, ``chunk``, ``hoist_input`` and ``instances``.

Granularities
-------------
``cell``
    One task per (instance, phase, direction, layer, time-chunk). A chunk of ``k`` steps runs its
    input projection for the k steps as one GEMM (columns ``B*k``), then k recurrent steps.
    With ``hoist_input=K`` the input projections (:func:`wpsim.cells.input_products`: the
    products of the layer input, QRNN's ``W [x_t, x_{t-1}]`` included) leave the cells and become
    ``input_gemm`` tasks of K steps each (``hoist_input=seq_len`` is oneDNN's "linear
    execution": one GEMM per layer).
``op``
    The ops inside a cell, one task per op kind and step, the kinds found from the cell's
    declaration (:mod:`wpsim.model.ops`): ``input_proj`` (x W_ih^T), ``rec_proj`` (h W_hh^T;
    none for a cell without a recurrent matrix product, as SRU, QRNN and IndRNN), ``gates`` (gate
    pre-activation sums and nonlinearities; for the Elman cell the whole ``h = tanh(a)``),
    ``state`` (the state update), ``readout`` (ops after the recurrence: SRU's highway output),
    and at the top ``out_proj`` and ``softmax``. :func:`hoistable_kinds` finds the kinds none of
    whose ops lies on a recurrent cycle of the rolled graph; with ``chunk=K``
    :func:`batch_over_time` merges each of them over K consecutive steps (multi-time-step
    execution, Sung & Park 2018).

Training adds, for every forward task ``v``, a backward task whose dependencies mirror the forward
ones (the gradient graph is the transpose: forward edge u->v gives backward edge v'->u', so
backward (l, t) needs backward (l, t+1) and backward (l+1, t)), an edge ``v -> v'`` for the saved
activations, and one ``wgrad`` task per (instance, layer, direction) that accumulates the weight
gradients of all steps as one GEMM after the last backward task of that layer.

Flop formulas (B batch, H hidden, G gates, I_l layer input width, k steps, s dtype bytes,
nnz = stored entries of W_hh, E element-wise flops per unit: rnn 4, lstm 21, gru 17), all from
the cell's declaration (:meth:`Workload.step_flops`, :func:`wpsim.cells.step_flops`):

* products off the recurrence ``2*G*H*I_l*B*k`` (``flops_in``; all of SRU's and QRNN's matrix
  work); recurrent products ``2*nnz*B*k`` (``flops_rec``); element-wise ``E*H*B*k``;
* output layer ``2*O*D*H*B*k + O*B*k`` (+ ``4*O*B*k`` for softmax: max, exp, sum, divide);
* a backward task repeats its forward task's projection flops (dX = dA W_ih, dH = dA W_hh) and
  doubles its element-wise flops; ``wgrad`` costs the layer's projection flops over all steps
  (dW = dA^T [x, h]) plus ``G*H*B*T`` per bias pair (the widest vector parameter).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from wpsim.cells import input_lag
from wpsim.errors import ConfigError
from wpsim.model.ops import kind_flows, layer_ops, op_kinds
from wpsim.model.workload import Workload

SOFTMAX_FLOPS_PER_ELEMENT = 4

Weights = tuple[tuple[str, int], ...]


@dataclass(slots=True, eq=False)
class Task:
    """One schedulable unit of an RNN workload.

    Attributes
    ----------
    id : int
        Node id in the graph.
    kind : str
        ``cell``, ``output``, ``input_gemm``, an op name (``input_proj``, ``rec_proj``, ``gates``,
        ``state``, ``out_proj``, ``softmax``), any of these with a ``_bwd`` suffix, or ``wgrad``.
    layer : int
        Layer index; the output layer is ``layers``.
    direction : int
        0 forward in time, 1 reverse.
    t0, steps : int
        The task covers time steps ``t0 .. t0+steps-1``.
    flops_in, flops_rec, flops_elem : float
        Flops of the input-side GEMM (``B*steps`` columns), of the per-step recurrent products
        (``B`` columns each) and of element-wise work.
    weights : tuple of (str, int)
        Identity and size in bytes of each weight block read (shared tuple per layer).
    in_bytes, out_bytes : int
        Activation bytes read and written.
    instance : int
        Workload instance (multiprogramming); 0 otherwise.
    stream : int
        Training stream (the workload's ``streams``: sequences in flight that share the weights);
        0 otherwise, and for weight gradients (one for all streams).
    """

    id: int
    kind: str
    layer: int
    direction: int
    t0: int
    steps: int
    flops_in: float
    flops_rec: float
    flops_elem: float
    weights: Weights
    in_bytes: int
    out_bytes: int
    instance: int = 0
    stream: int = 0

    @property
    def flops(self) -> float:
        return self.flops_in + self.flops_rec + self.flops_elem

    @property
    def weight_bytes(self) -> int:
        return sum(size for _, size in self.weights)

    @property
    def recurrent(self) -> bool:
        """Whether the task runs its steps one after another with recurrent work: a cell task
        (whose recurrence may be element-wise only, as SRU's and QRNN's) or a task with recurrent
        products. The per-step overheads and the helpers' per-step barriers apply to these."""
        return bool(self.flops_rec) or self.kind in ("cell", "cell_bwd")

    @property
    def is_backward(self) -> bool:
        return self.kind.endswith("_bwd") or self.kind == "wgrad"

    @property
    def label(self) -> str:
        """Readable name, e.g. ``cell[l1,fwd,t4:8]`` or ``cell_bwd[l0,rev,t0]``."""
        direction = "rev" if self.direction else "fwd"
        steps = f"t{self.t0}" if self.steps == 1 else f"t{self.t0}:{self.t0 + self.steps}"
        prefix = f"i{self.instance}." if self.instance else ""
        prefix += f"s{self.stream}." if self.stream else ""
        if self.kind == "wgrad":
            return f"{prefix}wgrad[l{self.layer},{direction}]"
        return f"{prefix}{self.kind}[l{self.layer},{direction},{steps}]"


def _weight_key(instance: int, layer: int, direction: int, part: str) -> str:
    suffix = "_reverse" if direction else ""
    prefix = f"i{instance}." if instance else ""
    return f"{prefix}l{layer}{suffix}.{part}"


def _output_is_state(workload: Workload) -> bool:
    """Whether the layer's output is one of the states (h of the Elman RNN, LSTM, GRU; not SRU's
    or QRNN's h, which reads the state c)."""
    cell = workload.cell_declaration
    return any(state.next == cell.output for state in cell.states)


def _chunks(seq_len: int, chunk: int) -> list[tuple[int, int]]:
    return [(t0, min(chunk, seq_len - t0)) for t0 in range(0, seq_len, chunk)]


def build(
    workload: Workload,
    granularity: str = "cell",
    chunk: int = 1,
    hoist_input: int | None = None,
    instances: int = 1,
) -> nx.DiGraph:
    """Build the task graph of ``workload``.

    Parameters
    ----------
    workload : Workload
    granularity : {"cell", "op"}
    chunk : int
        Time steps per cell task (cell granularity) or per batched hoistable op (op granularity).
    hoist_input : int, optional
        Cell granularity only: move input projections into ``input_gemm`` tasks of this many steps.
    instances : int
        Independent copies of the workload in one graph (multiprogramming).

    Returns
    -------
    networkx.DiGraph

    Examples
    --------
    >>> from wpsim.model.workload import Workload
    >>> g = build(Workload(cell="lstm", layers=2, hidden=8, input=8, seq_len=3))
    >>> g.number_of_nodes(), g.number_of_edges()
    (6, 7)
    >>> g.nodes[4]["task"].label
    'cell[l1,fwd,t1]'
    """
    if granularity not in ("cell", "op"):
        raise ConfigError(f"--granularity: got {granularity!r}, expected 'cell' or 'op'")
    if chunk < 1:
        raise ConfigError(f"--chunk: got {chunk}, expected an integer >= 1")
    if instances < 1:
        raise ConfigError(f"--instances: got {instances}, expected an integer >= 1")
    if hoist_input is not None:
        if granularity != "cell":
            raise ConfigError(
                "--granularity op: the layerwise policy (one input GEMM per layer) runs the cell"
                " graph; use --granularity cell"
            )
        if hoist_input < 1:
            raise ConfigError(f"hoist_input: got {hoist_input}, expected an integer >= 1")
    graph = nx.DiGraph(
        workload=workload,
        granularity=granularity,
        chunk=chunk,
        hoist_input=hoist_input,
        instances=instances,
    )
    builder = _Builder(graph, workload)
    for instance in range(instances):
        for stream in range(workload.streams):
            builder.stream = stream  # every task added now belongs to this stream
            if granularity == "cell":
                builder.add_cell_forward(instance, chunk, hoist_input)
            else:
                builder.add_op_forward(instance)
    builder.stream = 0
    if granularity == "op" and chunk > 1:
        graph = batch_over_time(graph, chunk)
        builder = _Builder(graph, workload)
    if workload.phase == "training":
        builder.add_backward()
    return graph


class _Builder:
    """Adds tasks and edges to a graph; the formulas live here, once."""

    def __init__(self, graph: nx.DiGraph, workload: Workload) -> None:
        self.graph = graph
        self.w = workload
        self.next_id = graph.number_of_nodes()
        self.pending: list[tuple[int, dict]] = []
        self.stream = 0
        self._weights_cache: dict[tuple, Weights] = {}

    # ---- primitives -------------------------------------------------------------------
    def add(self, **fields: Any) -> int:
        fields.setdefault("stream", self.stream)
        task = Task(id=self.next_id, **fields)
        self.pending.append((task.id, {"task": task}))
        self.next_id += 1
        return task.id

    def flush(self, edges: list[tuple[int, int, int]]) -> None:
        """Insert the tasks added so far, then ``edges`` (networkx is faster in bulk)."""
        self.graph.add_nodes_from(self.pending)
        self.pending = []
        self.graph.add_weighted_edges_from(edges, weight="bytes")

    def weights(self, instance: int, layer: int, direction: int, parts: str) -> Weights:
        key = (instance, layer, direction, parts)
        cached = self._weights_cache.get(key)
        if cached is None:
            w = self.w
            blocks = []
            if layer == w.layers:  # the output layer
                blocks.append((_weight_key(instance, layer, 0, "out"), w.output_weight_bytes()))
            else:
                sizes = w.weight_block_bytes(layer)
                for part in ("ih", "hh"):
                    if part in parts and sizes[part]:  # QRNN has no "hh" block
                        blocks.append((_weight_key(instance, layer, direction, part), sizes[part]))
            cached = self._weights_cache[key] = tuple(blocks)
        return cached

    # ---- cell granularity -------------------------------------------------------------
    def add_cell_forward(self, instance: int, chunk: int, hoist_input: int | None) -> None:
        w = self.w
        s, b, h = w.dtype_bytes, w.batch, w.output_width
        chunks = _chunks(w.seq_len, chunk)
        lag = input_lag(w.cell_declaration)
        # cell_ids[d][c] of the layer below, for wiring the next layer
        below: list[list[int]] | None = None
        edges: list[tuple[int, int, int]] = []
        for layer in range(w.layers):
            width = w.layer_input_size(layer)
            flops = w.step_flops(layer)
            in_per_step, rec_per_step = flops.matmul_batched, flops.matmul_recurrent
            elem_per_step = flops.elementwise
            # hoisted, the input task computes the products of the layer input (for a cell
            # with a window, of the inputs before too: wired to the layer below's earlier
            # step); the cell keeps the other products off the recurrence, and the weights
            # they multiply (the ih block, read whole)
            of_input = flops.matmul_input
            kept = in_per_step - of_input
            pre = w.handoff_width(layer)  # what the ops before the recurrence hand to it
            state = w.state_bytes(layer)
            # a cell task writes its outputs and the states that are not the output (c of an LSTM)
            carried = state - (b * h * s if _output_is_state(w) else 0)
            current: list[list[int]] = []
            for direction in range(w.directions):
                hoisted: dict[int, int] = {}  # step -> input_gemm task id
                # a skip-input layer (width 0) has no input projection to hoist
                if hoist_input is not None and width > 0:
                    for t0, k in _chunks(w.seq_len, hoist_input):
                        tid = self.add(
                            kind="input_gemm",
                            layer=layer,
                            direction=direction,
                            t0=t0,
                            steps=k,
                            flops_in=of_input * k,
                            flops_rec=0.0,
                            flops_elem=0.0,
                            weights=self.weights(instance, layer, direction, "ih"),
                            in_bytes=b * k * width * s,
                            out_bytes=pre * b * k * s,
                            instance=instance,
                        )
                        for t in range(t0, t0 + k):
                            hoisted[t] = tid
                        if below is not None:
                            # the steps whose layer input it reads, earlier ones in processing
                            # order included
                            lo = t0 - lag if direction == 0 else t0
                            hi = t0 + k + (lag if direction == 1 else 0)
                            for d_below in range(w.directions):
                                for c, (ct0, ck) in enumerate(chunks):
                                    if ct0 < hi and ct0 + ck > lo:
                                        edges.append((below[d_below][c], tid, b * ck * h * s))
                ids = []
                parts = "hh" if hoisted and not kept else "ih+hh"
                weights = self.weights(instance, layer, direction, parts)
                # skip input reads x (B x H)
                in_width = pre if hoisted else (width or w.hidden)
                pending = self.pending
                for t0, k in chunks:
                    # the hot loop of large graphs: Task built positionally, no helper call
                    tid = self.next_id
                    self.next_id += 1
                    task = Task(
                        tid,
                        "cell",
                        layer,
                        direction,
                        t0,
                        k,
                        kept * k if hoisted else in_per_step * k,
                        rec_per_step * k,
                        elem_per_step * k,
                        weights,
                        in_width * b * k * s + state,
                        b * k * h * s + carried,
                        instance,
                        self.stream,
                    )
                    pending.append((tid, {"task": task}))
                    ids.append(tid)
                    if hoisted:
                        for source in sorted({hoisted[t] for t in range(t0, t0 + k)}):
                            edges.append((source, tid, pre * b * k * s))
                # recurrence: forward chunks in order, reverse chunks backwards in time
                order = ids if direction == 0 else ids[::-1]
                for prev, nxt in zip(order, order[1:], strict=False):
                    edges.append((prev, nxt, state))
                if below is not None and not hoisted:
                    for d_below in range(w.directions):
                        for c, (_, k) in enumerate(chunks):
                            edges.append((below[d_below][c], ids[c], b * k * h * s))
                current.append(ids)
            below = current
            # a layer at a time: the pending tasks and edges of the whole graph at once raised
            # the peak memory of building 1M tasks from 1,528 to 1,874 MiB
            self.flush(edges)
            edges = []
        if w.output != "none":
            assert below is not None  # (a workload has a layer at least)
            self._add_output_tasks(instance, chunks, below, edges)
        self.flush(edges)

    def _add_output_tasks(
        self,
        instance: int,
        chunks: list[tuple[int, int]],
        top: list[list[int]],
        edges: list[tuple[int, int, int]],
        kind: str = "output",
    ) -> list[int]:
        w = self.w
        s, b, h, o = w.dtype_bytes, w.batch, w.output_width, w.output_size
        dh = w.directions * h
        per_step = 2.0 * o * dh * b + o * b
        soft = SOFTMAX_FLOPS_PER_ELEMENT * o * b if w.output == "softmax" else 0
        ids = []
        for c, (t0, k) in enumerate(chunks):
            tid = self.add(
                kind=kind,
                layer=w.layers,
                direction=0,
                t0=t0,
                steps=k,
                flops_in=per_step * k,
                flops_rec=0.0,
                flops_elem=float(soft * k),
                weights=self.weights(instance, w.layers, 0, "out"),
                in_bytes=b * k * dh * s,
                out_bytes=b * k * o * s,
                instance=instance,
            )
            ids.append(tid)
            for d in range(w.directions):
                edges.append((top[d][c], tid, b * k * h * s))
        return ids

    # ---- op granularity ---------------------------------------------------------------
    def add_op_forward(self, instance: int) -> None:
        """The op tasks of every step (:mod:`wpsim.model.ops`: the kinds, their flops and bytes,
        all found from the cell's declaration)."""
        w = self.w
        s, b, h = w.dtype_bytes, w.batch, w.output_width
        T = w.seq_len
        edges: list[tuple[int, int, int]] = []
        vec = b * h * s
        # out_ids[d][t]: the task producing the layer's output at (layer, d, t)
        below: list[list[int]] | None = None
        for layer in range(w.layers):
            ops = layer_ops(w.cell_declaration, w.hidden, w.layer_input_size(layer), b, w.density)
            current = []
            for direction in range(w.directions):
                steps = range(T) if direction == 0 else range(T - 1, -1, -1)
                by_t: dict[int, int] = {}
                previous: dict[str, int] | None = None
                previous_t: int | None = None
                for t in steps:
                    ids: dict[str, int] = {}
                    for kind in ops.kinds:
                        f_in, f_rec, f_elem = ops.flops[kind.name]
                        weights = (
                            self.weights(instance, layer, direction, "+".join(kind.weight_parts))
                            if kind.weight_parts
                            else ()
                        )
                        ids[kind.name] = self.add(
                            kind=kind.name,
                            layer=layer,
                            direction=direction,
                            t0=t,
                            steps=1,
                            flops_in=f_in,
                            flops_rec=f_rec,
                            flops_elem=f_elem,
                            weights=weights,
                            in_bytes=ops.in_width[kind.name] * b * s,
                            out_bytes=ops.out_width[kind.name] * b * s,
                            instance=instance,
                        )
                    for flow, width in ops.flows:
                        if flow.delay == 0:
                            edges.append((ids[flow.source], ids[flow.target], width * b * s))
                        elif previous is not None:
                            edges.append((previous[flow.source], ids[flow.target], width * b * s))
                    if below is not None:
                        for d_below in range(w.directions):
                            for name in ops.reads_input:
                                edges.append((below[d_below][t], ids[name], vec))
                            if previous_t is not None:
                                for name in ops.reads_previous_input:
                                    edges.append((below[d_below][previous_t], ids[name], vec))
                    previous, previous_t = ids, t
                    by_t[t] = ids[ops.output_kind]
                current.append([by_t[t] for t in range(T)])
            below = current
        if w.output != "none":
            assert below is not None  # (a workload has a layer at least)
            o = w.output_size
            dh = w.directions * h
            for t in range(T):
                op = self.add(
                    kind="out_proj",
                    layer=w.layers,
                    direction=0,
                    t0=t,
                    steps=1,
                    flops_in=2.0 * o * dh * b + o * b,
                    flops_rec=0.0,
                    flops_elem=0.0,
                    weights=self.weights(instance, w.layers, 0, "out"),
                    in_bytes=b * dh * s,
                    out_bytes=b * o * s,
                    instance=instance,
                )
                for d in range(w.directions):
                    edges.append((below[d][t], op, vec))
                if w.output == "softmax":
                    sm = self.add(
                        kind="softmax",
                        layer=w.layers,
                        direction=0,
                        t0=t,
                        steps=1,
                        flops_in=0.0,
                        flops_rec=0.0,
                        flops_elem=float(SOFTMAX_FLOPS_PER_ELEMENT * o * b),
                        weights=(),
                        in_bytes=b * o * s,
                        out_bytes=b * o * s,
                        instance=instance,
                    )
                    edges.append((op, sm, b * o * s))
        self.flush(edges)

    # ---- training -----------------------------------------------------------------------
    def add_backward(self) -> None:
        """Mirror every forward task, transpose the edges, add per-layer weight gradients."""
        graph = self.graph
        forward = [graph.nodes[v]["task"] for v in range(graph.number_of_nodes())]
        offset = self.next_id
        edges: list[tuple[int, int, int]] = []
        for task in forward:
            bid = self.add(
                kind=task.kind + "_bwd",
                layer=task.layer,
                direction=task.direction,
                t0=task.t0,
                steps=task.steps,
                flops_in=task.flops_in,
                flops_rec=task.flops_rec,
                flops_elem=2.0 * task.flops_elem,
                weights=task.weights,
                in_bytes=task.out_bytes + task.in_bytes,
                out_bytes=task.in_bytes,
                instance=task.instance,
                stream=task.stream,
            )
            assert bid == offset + task.id
            edges.append((task.id, bid, task.in_bytes + task.out_bytes))  # saved activations
        for u, v, nbytes in graph.edges(data="bytes"):
            if u < offset and v < offset:
                edges.append((offset + v, offset + u, nbytes))
        # one weight-gradient task per (instance, layer, direction) whose tasks read weights
        groups: dict[tuple[int, int, int], list[Task]] = {}
        for task in forward:
            if task.weights:
                groups.setdefault((task.instance, task.layer, task.direction), []).append(task)
        w = self.w
        for (instance, layer, direction), tasks in sorted(groups.items()):
            blocks = {key: size for t in tasks for key, size in t.weights}
            grad_weights = tuple((f"grad.{key}", size) for key, size in sorted(blocks.items()))
            rows = w.batch * w.seq_len * w.streams  # every stream's rows: the weights are shared
            bias = 0.0 if layer == w.layers else float(w.bias_gradient_width * rows)
            wid = self.add(
                kind="wgrad",
                layer=layer,
                direction=direction,
                t0=0,
                steps=w.seq_len,
                flops_in=sum(t.flops_in + t.flops_rec for t in tasks),
                flops_rec=0.0,
                flops_elem=bias,
                weights=grad_weights,
                in_bytes=sum(t.in_bytes for t in tasks),
                out_bytes=sum(s for _, s in grad_weights),
                instance=instance,
            )
            for t in tasks:
                edges.append((offset + t.id, wid, t.in_bytes))
        self.flush(edges)


# ---- generalized graph analysis (op granularity) ------------------------------------------


def rolled_cell_graph(workload: Workload) -> nx.DiGraph:
    """The rolled graph of one layer's op task kinds (:mod:`wpsim.model.ops`): edges marked
    ``delay=1`` cross time steps; ``input_proj_next_layer`` stands for the layer above's kinds
    that read this layer's output.

    Examples
    --------
    >>> from wpsim.model.workload import Workload
    >>> sorted(rolled_cell_graph(Workload(cell="rnn", hidden=4, input=4, seq_len=2)).edges)
    [('gates', 'input_proj_next_layer'), ('gates', 'rec_proj'), ('input_proj', 'gates'), ('rec_proj', 'gates')]
    """
    cell = workload.cell_declaration
    rolled = nx.DiGraph()
    rolled.add_nodes_from(kind.name for kind in op_kinds(cell))
    for flow in kind_flows(cell):
        rolled.add_edge(flow.source, flow.target, delay=flow.delay)
    out = layer_ops(cell, workload.hidden, workload.hidden, 1, workload.density).output_kind
    rolled.add_edge(out, "input_proj_next_layer", delay=0)
    if workload.output != "none":
        rolled.add_edge(out, "out_proj", delay=0)
        if workload.output == "softmax":
            rolled.add_edge("out_proj", "softmax", delay=0)
    return rolled


def hoistable_kinds(workload: Workload) -> set[str]:
    """Task kinds that lie on no recurrent cycle (can be batched over time): the op kinds none of
    whose ops is on the recurrence of the cell's rolled graph (:func:`wpsim.cells.op_phases`),
    and the output layer's.

    Examples
    --------
    >>> from wpsim.model.workload import Workload
    >>> sorted(hoistable_kinds(Workload(cell="lstm", hidden=4, input=4, seq_len=2, output="softmax", output_size=3)))
    ['input_proj', 'out_proj', 'softmax']
    >>> sorted(hoistable_kinds(Workload(cell="sru", hidden=4, input=4, seq_len=2)))
    ['input_proj', 'readout']
    """
    kinds = {kind.name for kind in op_kinds(workload.cell_declaration) if not kind.recurrent}
    if workload.output != "none":
        kinds.add("out_proj")
        if workload.output == "softmax":
            kinds.add("softmax")
    return kinds


def batch_over_time(graph: nx.DiGraph, chunk: int) -> nx.DiGraph:
    """Merge each hoistable op over ``chunk`` consecutive steps into one task (quotient graph).

    Tasks of a hoistable kind with the same (instance, kind, layer, direction) and the same
    ``t0 // chunk`` become one task whose flops and bytes are the sums and whose input GEMM has
    ``B*chunk`` columns. Edges between merged groups carry the summed bytes. Node ids are
    renumbered in order of first appearance, so the result is deterministic.
    """
    workload: Workload = graph.graph["workload"]
    hoist = hoistable_kinds(workload)
    group_of: dict[int, tuple] = {}
    for v in sorted(graph.nodes):
        t: Task = graph.nodes[v]["task"]
        key = (
            (t.instance, t.stream, t.kind, t.layer, t.direction, t.t0 // chunk)
            if t.kind in hoist
            else ("v", v)
        )
        group_of[v] = key
    new_id: dict[tuple, int] = {}
    merged: dict[int, Task] = {}
    for v in sorted(graph.nodes):
        t = graph.nodes[v]["task"]
        key = group_of[v]
        if key not in new_id:
            nid = new_id[key] = len(new_id)
            merged[nid] = Task(
                id=nid,
                kind=t.kind,
                layer=t.layer,
                direction=t.direction,
                t0=t.t0,
                steps=t.steps,
                flops_in=t.flops_in,
                flops_rec=t.flops_rec,
                flops_elem=t.flops_elem,
                weights=t.weights,
                in_bytes=t.in_bytes,
                out_bytes=t.out_bytes,
                instance=t.instance,
                stream=t.stream,
            )
        else:
            m = merged[new_id[key]]
            m.t0 = min(m.t0, t.t0)
            m.steps += t.steps
            m.flops_in += t.flops_in
            m.flops_rec += t.flops_rec
            m.flops_elem += t.flops_elem
            m.in_bytes += t.in_bytes
            m.out_bytes += t.out_bytes
    result = nx.DiGraph(**{**graph.graph, "chunk": chunk})
    result.add_nodes_from((nid, {"task": task}) for nid, task in merged.items())
    edge_bytes: dict[tuple[int, int], int] = {}
    for u, v, nbytes in graph.edges(data="bytes"):
        a, b = new_id[group_of[u]], new_id[group_of[v]]
        if a != b:
            edge_bytes[(a, b)] = edge_bytes.get((a, b), 0) + nbytes
    result.add_weighted_edges_from(((a, b, n) for (a, b), n in edge_bytes.items()), weight="bytes")
    return result


def tasks(graph: nx.DiGraph) -> Iterable[Task]:
    """The graph's tasks in id order."""
    nodes = graph.nodes
    return (nodes[v]["task"] for v in sorted(nodes))
