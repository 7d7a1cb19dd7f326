"""Work, span and parallelism of task graphs, and their closed forms.

Pure functions over the graphs of :mod:`wpsim.model.graph` (integer nodes with a ``task`` attribute).
All passes are linear in nodes + edges.

Closed forms (cell granularity, ``n = ceil(T / chunk)`` time-chunks, L layers):

* unidirectional inference: span ``L + n - 1`` tasks; widest wavefront ``min(L, n)``;
* bidirectional inference: span ``L * n`` (layer l+1 waits for the reverse chain of layer l);
* an output layer adds one task to the span;
* training: span ``2 * S + 1`` where S is the inference span (forward, then the mirrored
  backward path, then one weight-gradient task);
* ``hoist_input = T`` (layerwise graphs): span ``L * (n + 1)`` for unidirectional inference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import networkx as nx

from wpsim.model.workload import Workload


def work(graph: nx.DiGraph) -> dict[str, float]:
    """Total flops and number of tasks.

    Examples
    --------
    >>> from wpsim.model.graph import build
    >>> from wpsim.model.workload import Workload
    >>> work(build(Workload(cell="rnn", layers=1, hidden=2, input=2, seq_len=3)))
    {'n_tasks': 3, 'total_flops': 72.0}
    """
    total = 0.0
    for _, task in graph.nodes(data="task"):
        total += task.flops
    return {"n_tasks": graph.number_of_nodes(), "total_flops": total}


def _longest_chains(
    graph: nx.DiGraph, best_predecessors: bool = True
) -> tuple[list[int], dict[int, int], dict[int, float], dict[int, int], dict[int, int]]:
    """One linear pass (Kahn's order, lowest id first among the ready): for every node the
    number of tasks and the flops on the longest chain ending there, and the best predecessor of
    each (ties to the lowest id; left empty without ``best_predecessors``, which saves two
    dicts of a graph's size: about 120 MiB of peak memory at 1M tasks)."""
    pred = graph.pred
    succ = graph.succ
    nodes = graph.nodes
    indegree = {v: len(pred[v]) for v in graph}
    frontier = sorted(v for v, d in indegree.items() if d == 0)
    order: list[int] = []
    tasks_to: dict[int, int] = {}
    flops_to: dict[int, float] = {}
    best_t: dict[int, int] = {}
    best_f: dict[int, int] = {}
    while frontier:
        next_frontier: list[int] = []
        for v in frontier:
            order.append(v)
            bt, bf, at, af = 0, 0.0, -1, -1
            for u in pred[v]:
                tu, fu = tasks_to[u], flops_to[u]
                if tu > bt or (tu == bt and at >= 0 and u < at):
                    bt, at = tu, u
                if fu > bf or (fu == bf and af >= 0 and u < af):
                    bf, af = fu, u
            tasks_to[v] = bt + 1
            flops_to[v] = bf + nodes[v]["task"].flops
            if best_predecessors:
                best_t[v], best_f[v] = at, af
            for w in succ[v]:
                indegree[w] -= 1
                if indegree[w] == 0:
                    next_frontier.append(w)
        frontier = sorted(next_frontier)
    if len(order) != graph.number_of_nodes():
        raise nx.NetworkXUnfeasible("the task graph has a cycle")
    return order, tasks_to, flops_to, best_t, best_f


def _trace_back(end: int, best: dict[int, int]) -> list[int]:
    path = [end]
    while best[path[-1]] >= 0:
        path.append(best[path[-1]])
    path.reverse()
    return path


def critical_path(graph: nx.DiGraph, weight: str | None = None) -> tuple[float, list[int]]:
    """Longest path through the DAG, counting tasks (``weight=None``) or flops (``"flops"``).

    Ties between equally long predecessors go to the lowest node id, so the path is deterministic.

    Returns
    -------
    (length, path)
        Number of tasks (or total flops) on the path, and its node ids from source to sink.

    Examples
    --------
    >>> from wpsim.model.graph import build
    >>> from wpsim.model.workload import Workload
    >>> length, path = critical_path(build(Workload(cell="gru", layers=3, hidden=4, input=4, seq_len=5)))
    >>> length, len(path)
    (7, 7)
    """
    if weight not in (None, "flops"):
        raise ValueError(f"weight: got {weight!r}, expected None or 'flops'")
    if graph.number_of_nodes() == 0:
        return 0, []
    _, tasks_to, flops_to, best_t, best_f = _longest_chains(graph)
    dist, best = (tasks_to, best_t) if weight is None else (flops_to, best_f)
    end = max(dist, key=lambda v: (dist[v], -v))
    return dist[end], _trace_back(end, best)


def generations(graph: nx.DiGraph) -> list[list[int]]:
    """Topological generations (wavefronts): generation g holds the tasks whose longest chain of
    predecessors has g tasks. Each generation is sorted by node id."""
    if graph.number_of_nodes() == 0:
        return []
    _, tasks_to, _, _, _ = _longest_chains(graph, best_predecessors=False)
    out: list[list[int]] = [[] for _ in range(max(tasks_to.values()))]
    for v in sorted(tasks_to):
        out[tasks_to[v] - 1].append(v)
    return out


def parallelism_profile(graph: nx.DiGraph) -> list[int]:
    """Width of each wavefront (number of tasks per topological generation)."""
    return [len(gen) for gen in generations(graph)]


def summarize(graph: nx.DiGraph) -> dict[str, Any]:
    """Every analysis number ``wpsim graph`` prints, as a JSON-ready dict (one linear pass)."""
    w = work(graph)
    if w["n_tasks"]:
        _, tasks_to, flops_to, _, _ = _longest_chains(graph, best_predecessors=False)
        span_tasks = max(tasks_to.values())
        span_flops = max(flops_to.values())
        profile = [0] * span_tasks
        for depth in tasks_to.values():
            profile[depth - 1] += 1
    else:
        span_tasks, span_flops, profile = 0, 0.0, []
    return {
        "n_tasks": w["n_tasks"],
        "n_edges": graph.number_of_edges(),
        "total_flops": w["total_flops"],
        "critical_path_tasks": span_tasks,
        "critical_path_flops": span_flops,
        "max_width": max(profile, default=0),
        "avg_parallelism": w["total_flops"] / span_flops if span_flops else 0.0,
        "avg_parallelism_tasks": w["n_tasks"] / span_tasks if span_tasks else 0.0,
        "n_generations": len(profile),
        "granularity": graph.graph.get("granularity"),
        "chunk": graph.graph.get("chunk"),
    }


# ---- closed forms ---------------------------------------------------------------------------


def closed_form_span_tasks(
    workload: Workload, chunk: int = 1, hoist_input: int | None = None
) -> int:
    """Critical path in tasks of the cell-granularity graph, in closed form (see module doc).

    Examples
    --------
    >>> from wpsim.model.workload import Workload
    >>> closed_form_span_tasks(Workload(cell="lstm", layers=4, hidden=8, input=8, seq_len=100))
    103
    """
    n = workload.n_chunks(chunk)
    L = workload.layers
    if hoist_input is not None:
        if hoist_input != workload.seq_len or workload.bidirectional:
            raise ValueError("closed form known for hoist_input = seq_len, unidirectional only")
        span = L * (n + 1)
    elif workload.bidirectional:
        span = L * n
    else:
        span = L + n - 1
    if workload.output != "none":
        span += 1
    if workload.phase == "training":
        span = 2 * span + 1
    return span


def closed_form_n_tasks(workload: Workload, chunk: int = 1) -> int:
    """Number of tasks of the cell-granularity graph.

    ``D*L*n`` cells plus ``n`` output tasks; training doubles them and adds one weight-gradient
    task per (layer, direction) and one for the output layer.
    """
    n = workload.n_chunks(chunk)
    forward = workload.directions * workload.layers * n + (n if workload.output != "none" else 0)
    if workload.phase == "inference":
        return forward
    wgrads = workload.directions * workload.layers + (1 if workload.output != "none" else 0)
    return 2 * forward + wgrads


def closed_form_max_width(workload: Workload, chunk: int = 1) -> int:
    """Widest wavefront of unidirectional inference without output layer: ``min(L, n)``."""
    if workload.bidirectional or workload.phase != "inference" or workload.output != "none":
        raise ValueError("closed form known for unidirectional inference without output layer")
    return min(workload.layers, workload.n_chunks(chunk))


def closed_form_total_flops(workload: Workload) -> float:
    """Total forward flops (independent of chunking), from the cell's declaration.

    ``sum_l D * T * (step flops of layer l)`` (for the LSTM ``2*G*H*(I_l*B) + 2*nnz*B + E*H*B``;
    :meth:`Workload.step_flops`) plus the output layer.
    """
    from wpsim.model.graph import SOFTMAX_FLOPS_PER_ELEMENT

    w = workload
    T, B, H = w.seq_len, w.batch, w.output_width
    total = 0.0
    for layer in range(w.layers):
        total += w.directions * T * w.step_flops(layer).total
    if w.output != "none":
        O = w.output_size
        total += T * (2 * O * w.directions * H * B + O * B)
        if w.output == "softmax":
            total += T * SOFTMAX_FLOPS_PER_ELEMENT * O * B
    return total


def wavefront_makespan_units(layers: int, chunks: int, cores: int) -> int:
    """Makespan, in task units, of the wavefront policy on a ``layers x chunks`` grid of
    unit-cost tasks with ``cores`` cores (unidirectional inference, no overheads).

    If ``cores >= min(layers, chunks)`` every ready task runs at once and the makespan is the span
    ``L + n - 1``. Otherwise the schedule settles into bands of ``P`` layers, each core keeping
    one layer of the band (weights hot) and moving to layer ``l + P`` when it finishes layer l:
    core q runs layer ``q + b*P`` from time ``q + b*n``, so the last layer ``L - 1`` ends at
    ``(L-1) mod P + (floor((L-1)/P) + 1) * n``.

    Examples
    --------
    >>> wavefront_makespan_units(3, 3, 2)
    6
    >>> wavefront_makespan_units(4, 100, 4)
    103
    """
    if cores >= min(layers, chunks):
        return layers + chunks - 1
    return (layers - 1) % cores + ((layers - 1) // cores + 1) * chunks


def speedup_bounds(work_units: float, span_units: float, cores: int) -> tuple[float, float]:
    """Lower and upper bound on a greedy schedule's makespan: ``max(W/P, S)`` and ``W/P + S``."""
    return max(work_units / cores, span_units), work_units / cores + span_units


def format_summary(summary: dict[str, Any], title: str = "") -> str:
    """Human-readable table of :func:`summarize`'s output."""
    rows: Sequence[tuple[str, str]] = [
        ("tasks", f"{summary['n_tasks']:,}"),
        ("edges", f"{summary['n_edges']:,}"),
        ("total work", f"{summary['total_flops'] / 1e9:,.4f} GFLOP"),
        (
            "critical path",
            f"{summary['critical_path_tasks']:,} tasks, "
            f"{summary['critical_path_flops'] / 1e9:,.4f} GFLOP",
        ),
        ("widest wavefront", f"{summary['max_width']:,} tasks"),
        ("wavefronts", f"{summary['n_generations']:,}"),
        (
            "average parallelism",
            f"{summary['avg_parallelism']:.2f} (flops), "
            f"{summary['avg_parallelism_tasks']:.2f} (tasks)",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [title] if title else []
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines)


__all__ = [
    "work",
    "critical_path",
    "generations",
    "parallelism_profile",
    "summarize",
    "closed_form_span_tasks",
    "closed_form_n_tasks",
    "closed_form_max_width",
    "closed_form_total_flops",
    "wavefront_makespan_units",
    "speedup_bounds",
    "format_summary",
]
