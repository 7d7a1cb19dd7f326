"""Export task graphs: GraphML, DOT, and a layer x time picture."""

from __future__ import annotations

from pathlib import Path

import networkx as nx

from wpsim.model.graph import Task
from wpsim.outputs import atomic_write, check_figure, figure_format, write_with


def _flat_attributes(task: Task) -> dict[str, object]:
    return {
        "label": task.label,
        "kind": task.kind,
        "layer": task.layer,
        "direction": task.direction,
        "t0": task.t0,
        "steps": task.steps,
        "instance": task.instance,
        "flops": task.flops,
        "weights": ";".join(f"{key}:{size}" for key, size in task.weights),
        "weight_bytes": task.weight_bytes,
        "in_bytes": task.in_bytes,
        "out_bytes": task.out_bytes,
    }


def to_flat_graph(graph: nx.DiGraph) -> nx.DiGraph:
    """A copy whose node attributes are plain scalars (what GraphML and DOT can hold)."""
    flat = nx.DiGraph()
    flat.add_nodes_from((v, _flat_attributes(t)) for v, t in graph.nodes(data="task"))
    flat.add_edges_from((u, v, {"bytes": b}) for u, v, b in graph.edges(data="bytes"))
    return flat


def write_graphml(graph: nx.DiGraph, path: str | Path, flag: str = "") -> None:
    """Write GraphML (readable by networkx, Gephi, yEd), through :mod:`wpsim.outputs`."""
    flat = to_flat_graph(graph)
    write_with(path, lambda p: nx.write_graphml(flat, str(p)), flag)


def write_dot(graph: nx.DiGraph, path: str | Path, flag: str = "") -> None:
    """Write Graphviz DOT: one node per task labelled with its name and GFLOP, ranks by time."""
    lines = ["digraph wpsim {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for v, task in sorted(graph.nodes(data="task")):
        lines.append(f'  {v} [label="{task.label}\\n{task.flops / 1e6:.3g} MFLOP"];')
    for u, v, nbytes in sorted(graph.edges(data="bytes")):
        lines.append(f'  {u} -> {v} [label="{nbytes} B", fontsize=8];')
    lines.append("}")
    atomic_write(path, "\n".join(lines) + "\n", flag)


def plot_grid(graph: nx.DiGraph, path: str | Path, title: str = "", flag: str = "") -> None:
    """Draw the task graph as a layer x time grid (one box per task, arrows for dependencies).

    Forward tasks sit at (time, layer); the reverse direction is offset upwards; backward tasks
    are drawn to the right of the forward ones, mirrored in time.
    """
    check_figure(path, flag)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workload = graph.graph["workload"]
    T = workload.seq_len
    pos: dict[int, tuple[float, float]] = {}
    colors: dict[int, str] = {}
    palette = {"fwd": "#4C72B0", "rev": "#DD8452", "bwd": "#55A868", "other": "#8172B3"}
    for v, task in graph.nodes(data="task"):
        x = task.t0 + (task.steps - 1) / 2
        if task.is_backward:
            x = 2 * T + 1 - x if task.kind != "wgrad" else 2 * T + 2
        y = task.layer * workload.directions + task.direction * 0.9
        y += 0.3 * task.instance
        pos[v] = (x, y)
        if task.is_backward:
            colors[v] = palette["bwd"]
        elif task.kind in ("cell", "input_gemm") or task.kind in (
            "input_proj",
            "rec_proj",
            "gates",
            "state",
        ):
            colors[v] = palette["rev" if task.direction else "fwd"]
        else:
            colors[v] = palette["other"]
    width = min(16, 2 + 0.6 * (max(x for x, _ in pos.values()) + 1))
    height = min(10, 1.5 + 0.7 * (workload.layers * workload.directions + 1))
    fig, ax = plt.subplots(figsize=(width, height))
    nodes = graph.nodes
    for u, v in graph.edges:
        (x0, y0), (x1, y1) = pos[u], pos[v]
        saved = not nodes[u]["task"].is_backward and nodes[v]["task"].is_backward
        # saved activations (forward -> its backward task) as faint arcs, so the grid stays legible
        style = dict(
            arrowstyle="->",
            color="#bbbbbb" if saved else "#999999",
            lw=0.4 if saved else 0.6,
            shrinkA=7,
            shrinkB=7,
            connectionstyle="arc3,rad=-0.15" if saved else "arc3",
        )
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=style)
    for v, (x, y) in pos.items():
        ax.scatter([x], [y], s=220, marker="s", color=colors[v], zorder=3)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("time step (backward tasks mirrored to the right)")
    ax.set_ylabel("layer (x direction)")
    ax.set_title(
        title
        or f"{workload.cell_declaration.label.upper()} task graph: {graph.number_of_nodes()} tasks"
    )
    ax.grid(alpha=0.2)
    ax.margins(y=0.25)
    fig.tight_layout()
    try:
        write_with(path, lambda p: fig.savefig(p, dpi=110, format=figure_format(path)), flag)
    finally:
        plt.close(fig)
