"""Pictures of schedules: Gantt charts coloured by layer or by cause, and wavefront heat maps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from wpsim.graph import Task
from wpsim.outputs import check_figure, figure_format, write_with
from wpsim.trace import Trace


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


#: colours of the causes of a task's time (wpsim.breakdown); memory levels get reds, the
#: level furthest out the darkest
CAUSE_COLORS = {
    "dispatch": "#9e9e9e",
    "overhead": "#8d6e63",
    "handoff": "#43a047",
    "sync": "#8e24aa",
    "compute": "#1e88e5",
    "contention": "#90caf9",
    "busy": "#546e7a",
}
MEMORY_COLORS = ["#ffcc80", "#ffa726", "#f4511e", "#c62828", "#7f0000"]


def cause_colors(levels: Sequence[str]) -> dict[str, str]:
    """The colour of every cause of a machine with these memory ``levels`` (in order, the
    furthest last)."""
    memory = [name for name in levels if name != "handoff"]
    colors = dict(CAUSE_COLORS)
    start = max(0, len(MEMORY_COLORS) - len(memory))
    for i, name in enumerate(memory):
        colors[f"memory.{name}"] = MEMORY_COLORS[min(start + i, len(MEMORY_COLORS) - 1)]
    return colors


def draw_gantt(
    ax,
    trace: Trace,
    tasks: Sequence[Task],
    title: str = "",
    n_layers: int | None = None,
    n_cores: int | None = None,
    color_by: str = "layer",
    level_bw: Mapping[str, float] | None = None,
) -> None:
    """One row per core (idle ones too), one bar per task, coloured by layer (backward hatched)
    or, with ``color_by="cause"``, split into its time by cause (:mod:`wpsim.breakdown`; in a
    fixed order: dispatch, overhead, hand-off, sync, compute, contention, memory, since the
    model does not say in which order they come inside a task)."""
    if color_by == "cause":
        _draw_gantt_by_cause(ax, trace, title, n_cores, level_bw)
        return
    if color_by != "layer":
        raise ValueError(f"color_by: got {color_by!r}, expected 'layer' or 'cause'")
    plt = _pyplot()
    layers = n_layers or (max((t.layer for t in tasks), default=0) + 1)
    cmap = plt.get_cmap("tab10" if layers <= 10 else "viridis")
    scale, unit = _time_unit(trace.makespan_s)
    origin = min(trace.start_s, default=0.0)
    for i, tid in enumerate(trace.task):
        task = tasks[tid]
        color = cmap(task.layer % 10 if layers <= 10 else task.layer / max(layers - 1, 1))
        start = (trace.start_s[i] - origin) * scale
        width = (trace.end_s[i] - trace.start_s[i]) * scale
        for core in trace.cores[i]:
            ax.barh(core, width, left=start, height=0.8, color=color, edgecolor="none",
                    hatch="//" if task.is_backward else None)  # fmt: skip
    from matplotlib.ticker import MaxNLocator

    rows = n_cores or (max((c for cores in trace.cores for c in cores), default=0) + 1)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("core")
    if title:
        ax.set_title(title, fontsize=10)
    handles = [plt.Rectangle((0, 0), 1, 1, color=cmap(layer % 10 if layers <= 10 else layer / max(layers - 1, 1)))
               for layer in range(min(layers, 10))]  # fmt: skip
    ax.legend(handles, [f"layer {layer}" for layer in range(min(layers, 10))], fontsize=7, bbox_to_anchor=(1.0, 1.0),
              loc="upper left", ncol=1)  # fmt: skip


def _draw_gantt_by_cause(ax, trace: Trace, title: str, n_cores: int | None,
                         level_bw: Mapping[str, float] | None) -> None:  # fmt: skip
    from matplotlib.ticker import MaxNLocator

    from wpsim.breakdown import add_task

    plt = _pyplot()
    colors = cause_colors(trace.levels)
    order = ["dispatch", "overhead", "handoff", "sync", "compute", "contention"]
    order += [c for c in colors if c.startswith("memory.")] + ["busy"]
    scale, unit = _time_unit(trace.makespan_s)
    origin = min(trace.start_s, default=0.0)
    bars: dict[tuple[int, str], list[tuple[float, float]]] = {}  # (core, cause) -> (x, width)
    costs = trace.costs
    for i in range(len(trace)):
        parts: dict[str, float] = {}
        duration = trace.end_s[i] - trace.start_s[i]
        add_task(parts, costs[i] if costs else None, duration, 1.0, level_bw)
        x = (trace.start_s[i] - origin) * scale
        for cause in order:
            width = parts.get(cause, 0.0) * scale
            if width > 0.0:
                for core in trace.cores[i]:
                    bars.setdefault((core, cause), []).append((x, width))
                x += width
    for (core, cause), spans in bars.items():
        ax.broken_barh(spans, (core - 0.4, 0.8), facecolors=colors.get(cause, "black"))
    rows = n_cores or (max((c for cores in trace.cores for c in cores), default=0) + 1)
    ax.set_ylim(rows - 0.5, -0.5)
    ax.set_xlim(0, trace.makespan_s * scale or 1.0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("core")
    if title:
        ax.set_title(title, fontsize=10)
    shown = [cause for cause in order if any(c == cause for _, c in bars)]
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[cause]) for cause in shown]
    ax.legend(handles, shown, fontsize=7, bbox_to_anchor=(1.0, 1.0), loc="upper left", ncol=1)


def _time_unit(seconds: float) -> tuple[float, str]:
    if seconds >= 1:
        return 1.0, "s"
    if seconds >= 1e-3:
        return 1e3, "ms"
    return 1e6, "us"


def draw_wavefront_heatmap(ax, trace: Trace, tasks: Sequence[Task], title: str = "") -> None:
    """Start time of each forward cell on a layer x time grid: diagonals are wavefronts."""
    import numpy as np

    plt = _pyplot()
    forward = [(i, tasks[tid]) for i, tid in enumerate(trace.task)
               if not tasks[tid].is_backward and tasks[tid].kind in ("cell", "rec_proj")]  # fmt: skip
    if not forward:
        ax.set_axis_off()
        return
    rows = max(t.layer * 2 + t.direction for _, t in forward) + 1
    cols = max(t.t0 for _, t in forward) + 1
    grid = np.full((rows, cols), np.nan)
    scale, unit = _time_unit(trace.makespan_s)
    origin = min(trace.start_s, default=0.0)
    for i, t in forward:
        grid[t.layer * 2 + t.direction, t.t0 : t.t0 + t.steps] = (trace.start_s[i] - origin) * scale
    keep = [r for r in range(rows) if not np.all(np.isnan(grid[r]))]
    image = ax.imshow(
        grid[keep], aspect="auto", origin="lower", cmap="magma", interpolation="nearest"
    )
    ax.set_yticks(range(len(keep)))
    ax.set_yticklabels([f"l{r // 2}{' rev' if r % 2 else ''}" for r in keep], fontsize=7)
    ax.set_xlabel("time step")
    ax.set_title(title or "start time of each cell", fontsize=10)
    plt.colorbar(image, ax=ax, label=f"start ({unit})")


def save_schedule_figure(path: str | Path, trace: Trace, tasks: Sequence[Task], title: str,
                         n_layers: int | None = None, n_cores: int | None = None,
                         color_by: str = "layer", level_bw: Mapping[str, float] | None = None,
                         flag: str = "") -> None:  # fmt: skip
    """Gantt chart above (coloured by layer or by cause, see :func:`draw_gantt`), wavefront
    heat map below (``flag`` names the option in errors)."""
    check_figure(path, flag)
    plt = _pyplot()
    n_cores = n_cores or len({c for cores in trace.cores for c in cores})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 3 + 0.18 * min(n_cores, 48) + 3),
                                      gridspec_kw={"height_ratios": [max(2, min(n_cores, 48) * 0.18), 2]})  # fmt: skip
    draw_gantt(top, trace, tasks, title, n_layers, n_cores, color_by, level_bw)
    draw_wavefront_heatmap(bottom, trace, tasks)
    fig.tight_layout()
    try:
        write_with(path, lambda p: fig.savefig(p, dpi=110, format=figure_format(path)), flag)
    finally:
        plt.close(fig)


def save_side_by_side(path: str | Path, measured: Trace, simulated: Trace, tasks: Sequence[Task],
                      title: str, flag: str = "") -> None:  # fmt: skip
    """Measured Gantt above, simulated below, on the same time axis."""
    check_figure(path, flag)
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    draw_gantt(top, measured, tasks, f"measured: {title}")
    draw_gantt(bottom, simulated, tasks, f"simulated: {title}")
    fig.tight_layout()
    try:
        write_with(path, lambda p: fig.savefig(p, dpi=110, format=figure_format(path)), flag)
    finally:
        plt.close(fig)
