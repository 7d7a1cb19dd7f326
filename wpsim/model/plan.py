"""A task graph compiled to flat lists for schedulers (the simulator and the real executor).

networkx is the right tool to build and analyse graphs; a scheduler touching every task and edge
millions of times wants plain lists indexed by task id. :class:`Plan` is that view.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from wpsim.model.graph import Task
from wpsim.model.workload import Workload


@dataclass(slots=True)
class Plan:
    """Flat view of a task graph.

    Attributes
    ----------
    tasks : list of Task
        ``tasks[i]`` is node ``i``.
    preds, succs : list of list of int
        Predecessors and successors of each task, sorted by id.
    pred_bytes : list of tuple of int
        Bytes on the edge from ``preds[i][j]`` to ``i`` (equal tuples are one object).
    generation : list of int
        Wavefront index: the number of tasks on the longest chain of predecessors.
    order : list of int
        A topological order (task ids are not one: reverse-direction and backward chains run
        from higher to lower ids).
    shape : list of int
        Tasks with the same work (flops of each kind and steps) share a shape number, so that
        a cost model can compute what depends only on the work once per shape.
    layer_id : list of int
        The task's layer: its index in ``layer_keys``.
    layer_keys : list of tuple of int
        Every (instance, layer, direction) of the graph, sorted.
    workload : Workload
    """

    tasks: list[Task]
    preds: list[list[int]]
    succs: list[list[int]]
    pred_bytes: list[tuple[int, ...]]
    generation: list[int]
    order: list[int]
    shape: list[int]
    layer_id: list[int]
    layer_keys: list[tuple[int, int, int]]
    workload: Workload
    granularity: str
    chunk: int

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)


def compile_plan(graph: nx.DiGraph) -> Plan:
    """Compile ``graph`` (integer nodes ``0..n-1``, as :func:`wpsim.model.graph.build` makes them).

    Examples
    --------
    >>> from wpsim.model.graph import build
    >>> from wpsim.model.workload import Workload
    >>> plan = compile_plan(build(Workload(cell="rnn", layers=2, hidden=4, input=4, seq_len=3)))
    >>> plan.generation
    [0, 1, 2, 1, 2, 3]
    """
    n = graph.number_of_nodes()
    if set(graph.nodes) != set(range(n)):
        raise ValueError("graph nodes must be the integers 0..n-1")
    tasks: list[Task] = [None] * n  # type: ignore[list-item]
    for i, task in graph.nodes(data="task"):
        tasks[i] = task
    # one pass over the edges (networkx's per-node views cost more than the work itself)
    incoming: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    outgoing: list[list[int]] = [[] for _ in range(n)]
    for u, v, nbytes in graph.edges(data="bytes"):
        outgoing[u].append(v)
        incoming[v].append((u, nbytes))
    for edges in incoming:
        edges.sort()
    # then fresh lists, each kind allocated in one run, of task ids allocated in order: the
    # scheduler reads them task after task, and lists grown by append, built between other
    # objects or holding the graph's own node ints lie scattered in memory (measured: 6% and
    # 4% of a simulation's time)
    ids = list(range(n))  # one int object a task id, in id order, for every list of ids
    succs = [[ids[v] for v in sorted(out)] for out in outgoing]
    preds = [[ids[u] for u, _ in edges] for edges in incoming]
    # equal tuples of edge bytes are one shared tuple: a few hot objects instead of one cold
    # list a task for the cost model to read (it reads them at every task start)
    interned: dict[tuple[int, ...], tuple[int, ...]] = {}
    pred_bytes = []
    for edges in incoming:
        key = tuple(nbytes for _, nbytes in edges)
        pred_bytes.append(interned.setdefault(key, key))
    del incoming, outgoing
    # Kahn's algorithm: a topological order, and each task's generation on the way
    generation = [0] * n
    waiting = list(map(len, preds))
    order = [v for v in range(n) if not waiting[v]]
    for v in order:  # grows while it is read
        g = generation[v] + 1
        for s in succs[v]:
            if generation[s] < g:
                generation[s] = g
            waiting[s] -= 1
            if not waiting[s]:
                order.append(s)
    if len(order) < n:
        raise ValueError("graph has a cycle")
    shapes: dict[tuple, int] = {}
    shape = [
        shapes.setdefault(
            (t.flops_in, t.flops_rec, t.flops_elem, t.steps, t.recurrent), len(shapes)
        )
        for t in tasks
    ]
    layer_keys = sorted({(t.instance, t.layer, t.direction) for t in tasks})
    index = {key: i for i, key in enumerate(layer_keys)}
    layer_id = [index[(t.instance, t.layer, t.direction)] for t in tasks]
    return Plan(
        tasks=tasks,
        preds=preds,
        succs=succs,
        pred_bytes=pred_bytes,
        generation=generation,
        order=order,
        shape=shape,
        layer_id=layer_id,
        layer_keys=layer_keys,
        workload=graph.graph["workload"],
        granularity=graph.graph["granularity"],
        chunk=graph.graph["chunk"],
    )
