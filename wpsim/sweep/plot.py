"""Standard views of a sweep's results (``wpsim plot DIR``).

* ``speedup_vs_cores.png``: speed-up over one core against cores, one line per policy (the median
  over every other varied parameter, with a band from the minimum to the maximum);
* ``heatmap_<metric>.png``: the metric over two varied parameters, one panel per policy (median over
  the remaining parameters, at the largest core count unless cores is an axis);
* ``winners.png``: which policy has the shortest makespan in each cell of the same two parameters,
  with the share of configurations it wins and its median lead over the runner-up;
* ``pareto_<X>_<Y>.png`` and ``.csv`` (``--pareto X,Y``): every point on two columns, the
  non-dominated ones marked and listed (:func:`pareto_front`).

Pareto columns: any numeric column of ``results.csv`` (a metric such as ``makespan_s``,
``speedup``, ``dram_bytes`` or ``cores``, or a varied parameter such as
``hardware.caches.L2.size_bytes``), or ``core_s``: the cores a point holds times its makespan,
the machine time the run costs. Each column is minimised, except ``speedup`` and ``utilization``
(maximised); ``:min`` or ``:max`` after a name says otherwise (``--pareto cores,speedup:max``).

The policy of a row is its ``policy_label`` (``wavefront, helpers=4`` is a policy of its own);
its core count is the ``cores`` metric (whatever decided it: ``run.cores`` or the machine).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from wpsim.errors import ConfigError
from wpsim.outputs import output_folder, write_with
from wpsim.sweep import store

#: Parameters that choose the policy (its label already says them) or the core count.
POLICY_PARAMS = {"policy", "policy.helpers", "policy.instances"}
CORE_PARAMS = {"run.cores", "hardware.cores_per_socket", "hardware.sockets"}


def _sortable(value: Any) -> tuple:
    if isinstance(value, bool | int | float):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def _ok_rows(folder: Path) -> tuple[list[dict[str, Any]], list[str]]:
    manifest = store.read_manifest(folder) or {}
    rows = [r for r in store.read_results(folder) if r.get("status") == "ok"]
    params = manifest.get("params")
    if params is None:  # no manifest: guess the parameter columns from the header
        header = list(rows[0]) if rows else []
        params = header[1 : header.index("status")] if "status" in header else []
    return rows, list(params)


def _other_params(rows: list[dict[str, Any]], params: list[str]) -> list[str]:
    """Varied parameters other than policy and cores, that take at least two values."""
    out = []
    for p in params:
        if p in POLICY_PARAMS or p in CORE_PARAMS:
            continue
        if len({repr(r.get(p)) for r in rows}) >= 2:
            out.append(p)
    return out


def _label(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _short(param: str) -> str:
    return param.split(".", 1)[1] if param.count(".") else param


def speedup_vs_cores(rows: list[dict[str, Any]], out_path: Path) -> Path | None:
    """Speed-up over one core against cores, per policy; None when cores take one value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cores = sorted({r["cores"] for r in rows if r.get("cores") is not None})
    if len(cores) < 2:
        return None
    series: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r.get("speedup") is not None and r.get("cores") is not None:
            series[r["policy_label"]][r["cores"]].append(r["speedup"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    n_configs = 1
    for name in sorted(series):
        xs = sorted(series[name])
        med = [statistics.median(series[name][x]) for x in xs]
        lo = [min(series[name][x]) for x in xs]
        hi = [max(series[name][x]) for x in xs]
        n_configs = max(n_configs, max(len(series[name][x]) for x in xs))
        (line,) = ax.plot(xs, med, marker="o", label=name)
        if any(h > l for h, l in zip(hi, lo, strict=True)):
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.15)
    ax.plot(cores, cores, color="grey", linestyle=":", label="linear")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xticks(cores)
    ax.set_xticklabels([str(c) for c in cores])
    ax.set_xlabel("cores")
    ax.set_ylabel("speed-up over one core (sequential)")
    title = "speed-up against cores"
    if n_configs > 1:
        title += f" (median of up to {n_configs} configurations; band: min to max)"
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, out_path)
    return out_path


def _axes_for(
    rows: list[dict[str, Any]], params: list[str], heatmap: tuple[str, str] | None
) -> tuple[str, str] | None:
    candidates = _other_params(rows, params)
    if len({r.get("cores") for r in rows}) >= 2:
        candidates.append("cores")
    if heatmap is not None:
        for axis in heatmap:
            if axis in POLICY_PARAMS:
                raise ConfigError(
                    f"--heatmap: {axis!r} chooses the policy, which each panel already shows"
                )
            if axis != "cores" and axis not in params:
                raise ConfigError(
                    f"--heatmap: {axis!r} is not a varied parameter (have: "
                    f"{', '.join([*params, 'cores'])})"
                )
        return heatmap
    if len(candidates) < 2:
        return None
    return candidates[0], candidates[1]


def _fixed_cores(rows: list[dict[str, Any]], axes: tuple[str, str]) -> tuple[list[dict], str]:
    if "cores" in axes:
        return rows, ""
    top = max(r["cores"] for r in rows)
    return [r for r in rows if r["cores"] == top], f" at {top} cores"


def heatmaps(
    rows: list[dict[str, Any]], axes: tuple[str, str], metric: str, out_path: Path
) -> Path:
    """One panel per policy: the median of ``metric`` over two parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if rows and metric not in rows[0]:
        raise ConfigError(f"--metric: got {metric!r}, expected a column of results.csv")
    rows, where = _fixed_cores(rows, axes)
    x_name, y_name = axes
    xs = sorted({r.get(x_name) for r in rows}, key=_sortable)
    ys = sorted({r.get(y_name) for r in rows}, key=_sortable)
    policies = sorted({r["policy_label"] for r in rows})
    cells: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        if r.get(metric) is not None:
            cells[(r["policy_label"], r.get(x_name), r.get(y_name))].append(float(r[metric]))
    grids = []
    for p in policies:
        grid = np.full((len(ys), len(xs)), np.nan)
        for i, y in enumerate(ys):
            for j, x in enumerate(xs):
                values = cells.get((p, x, y))
                if values:
                    grid[i, j] = statistics.median(values)
        grids.append(grid)
    finite = [g[np.isfinite(g)] for g in grids]
    vmin = min((f.min() for f in finite if f.size), default=0.0)
    vmax = max((f.max() for f in finite if f.size), default=1.0)
    ncols = min(len(policies), 3)
    nrows = -(-len(policies) // ncols)
    fig, axs = plt.subplots(
        nrows,
        ncols,
        figsize=(4.2 * ncols + 1, 3.6 * nrows + 0.4),
        squeeze=False,
        layout="constrained",
    )
    image = None
    for k, (p, grid) in enumerate(zip(policies, grids, strict=True)):
        ax = axs[k // ncols][k % ncols]
        image = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
        ax.set_xticks(range(len(xs)))
        ax.set_xticklabels([_label(x) for x in xs], fontsize=7)
        ax.set_yticks(range(len(ys)))
        ax.set_yticklabels([_label(y) for y in ys], fontsize=7)
        ax.set_xlabel(_short(x_name))
        ax.set_ylabel(_short(y_name))
        ax.set_title(p, fontsize=9)
        if len(xs) * len(ys) <= 64:
            for i in range(len(ys)):
                for j in range(len(xs)):
                    if np.isfinite(grid[i, j]):
                        ax.text(
                            j,
                            i,
                            f"{grid[i, j]:.3g}",
                            ha="center",
                            va="center",
                            fontsize=6,
                            color="white" if grid[i, j] < (vmin + vmax) / 2 else "black",
                        )
    for k in range(len(policies), nrows * ncols):
        axs[k // ncols][k % ncols].axis("off")
    if image is not None:
        fig.colorbar(image, ax=axs, shrink=0.8, label=metric)
    fig.suptitle(f"{metric} (median over the other parameters){where}", fontsize=10)
    _save(fig, out_path)
    return out_path


def winner_table(rows: list[dict[str, Any]], params: list[str]) -> dict[tuple, tuple[str, float]]:
    """For each configuration (every non-policy parameter), the fastest policy and its lead.

    Returns ``{configuration: (policy_label, runner_up_makespan / best_makespan)}``; the lead is
    ``inf`` when only one policy ran there.
    """
    config_params = [p for p in params if p not in POLICY_PARAMS]
    by_config: dict[tuple, list[tuple[float, str]]] = defaultdict(list)
    for r in rows:
        if r.get("makespan_s") is None:
            continue
        key = tuple(repr(r.get(p)) for p in config_params) + (r.get("cores"),)
        by_config[key].append((r["makespan_s"], r["policy_label"]))
    out = {}
    for key, entries in by_config.items():
        entries.sort()
        best = entries[0]
        lead = entries[1][0] / best[0] if len(entries) > 1 and best[0] > 0 else float("inf")
        out[key] = (best[1], lead)
    return out


def winners(
    rows: list[dict[str, Any]], params: list[str], axes: tuple[str, str], out_path: Path
) -> Path:
    """Where each policy wins, over two parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap

    rows, where = _fixed_cores(rows, axes)
    config_params = [p for p in params if p not in POLICY_PARAMS]
    table = winner_table(rows, params)
    x_name, y_name = axes
    xs = sorted({r.get(x_name) for r in rows}, key=_sortable)
    ys = sorted({r.get(y_name) for r in rows}, key=_sortable)
    policies = sorted({r["policy_label"] for r in rows})
    index_of = {p: i for i, p in enumerate(policies)}

    def axis_value(key: tuple, name: str) -> Any:
        if name == "cores":
            return key[-1]
        raw = key[config_params.index(name)]
        return next(r.get(name) for r in rows if repr(r.get(name)) == raw)

    tallies: dict[tuple, list[tuple[str, float]]] = defaultdict(list)
    value_cache: dict[tuple, tuple] = {}
    for key, (policy, lead) in table.items():
        if key not in value_cache:
            value_cache[key] = (axis_value(key, x_name), axis_value(key, y_name))
        tallies[value_cache[key]].append((policy, lead))
    grid = np.full((len(ys), len(xs)), np.nan)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(xs) + 2), max(3.5, 0.6 * len(ys) + 1.5)))
    for i, y in enumerate(ys):
        for j, x in enumerate(xs):
            entries = tallies.get((x, y))
            if not entries:
                continue
            counts: dict[str, int] = defaultdict(int)
            for policy, _ in entries:
                counts[policy] += 1
            top = max(sorted(counts), key=lambda p: counts[p])
            leads = [lead for policy, lead in entries if policy == top and lead != float("inf")]
            grid[i, j] = index_of[top]
            text = f"{top}\n{counts[top]}/{len(entries)}"
            if leads:
                text += f", {statistics.median(leads):.2f}x"
            ax.text(j, i, text, ha="center", va="center", fontsize=6)
    colours = plt.get_cmap("tab10").colors  # type: ignore[attr-defined]  # (a ListedColormap)
    cmap = ListedColormap([colours[k % 10] for k in range(max(len(policies), 1))])
    ax.imshow(
        grid,
        origin="lower",
        aspect="auto",
        cmap=cmap,
        vmin=-0.5,
        vmax=max(len(policies), 1) - 0.5,
        alpha=0.55,
    )
    ax.set_xticks(range(len(xs)))
    ax.set_xticklabels([_label(x) for x in xs], fontsize=7)
    ax.set_yticks(range(len(ys)))
    ax.set_yticklabels([_label(y) for y in ys], fontsize=7)
    ax.set_xlabel(_short(x_name))
    ax.set_ylabel(_short(y_name))
    ax.set_title(
        f"fastest policy{where}\n(share of configurations won, median lead over the runner-up)",
        fontsize=9,
    )
    fig.tight_layout()
    _save(fig, out_path)
    return out_path


#: Columns a larger value of which is better (the others are costs: smaller is better).
MAXIMISED = {"speedup", "utilization"}


def pareto_front(
    points: list[tuple[float, float]], minimise: tuple[bool, bool] = (True, True)
) -> list[int]:
    """Indices of the non-dominated ``(x, y)`` points, by increasing x: a point is dominated
    when another is at least as good on both and better on one (``minimise``: per axis; False
    maximises it). Equal points are all kept.

    Examples
    --------
    >>> pareto_front([(1, 9.0), (2, 5.0), (2, 6.0), (4, 5.0), (8, 2.0)])  # cores, makespan
    [0, 1, 4]
    >>> pareto_front([(1, 1.0), (2, 1.9), (4, 1.8)], minimise=(True, False))  # cores, speed-up
    [0, 1]
    """
    sx = 1.0 if minimise[0] else -1.0
    sy = 1.0 if minimise[1] else -1.0
    order = sorted(range(len(points)), key=lambda i: (sx * points[i][0], sy * points[i][1]))
    front: list[int] = []
    best_y = None
    for i in order:
        x, y = sx * points[i][0], sy * points[i][1]
        if front:
            last_x, last_y = sx * points[front[-1]][0], sy * points[front[-1]][1]
            if (x, y) == (last_x, last_y):  # equal to a point of the front: kept
                front.append(i)
                continue
        if best_y is None or y < best_y:
            front.append(i)
            best_y = y
    return front


def _pareto_column(spec: str) -> tuple[str, bool]:
    """``NAME`` or ``NAME:min`` / ``NAME:max``: the column and whether it is minimised."""
    name, _, way = spec.partition(":")
    if way not in ("", "min", "max"):
        raise ConfigError(f"--pareto: {spec!r}: expected NAME, NAME:min or NAME:max")
    return name, (way == "min") if way else name not in MAXIMISED


def _value(row: dict[str, Any], name: str) -> float | None:
    if name == "core_s":
        if row.get("cores") is None or row.get("makespan_s") is None:
            return None
        return row["cores"] * row["makespan_s"]
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


#: Most panels of a Pareto figure (one per workload setting); the CSV lists every front.
PARETO_PANELS = 16


def pareto(
    rows: list[dict[str, Any]], params: list[str], x_spec: str, y_spec: str, out_dir: Path
) -> list[Path]:
    """Draw every point on two columns with the non-dominated ones marked, and write them to a
    CSV (point, the two columns, policy, the varied parameters); return both files.

    The varied ``workload.*`` parameters say what is run, the others (machine, policy, run
    options) how: points of one workload setting compete, so each setting has its own front
    (and panel, up to :data:`PARETO_PANELS`)."""
    import csv
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (x, min_x), (y, min_y) = _pareto_column(x_spec), _pareto_column(y_spec)
    known = (set(rows[0]) if rows else set()) | {"core_s"}
    for name in (x, y):
        if name not in known:
            raise ConfigError(
                f"--pareto: no column {name!r} in the results (columns: {', '.join(sorted(known))})"
            )
    usable = [r for r in rows if _value(r, x) is not None and _value(r, y) is not None]
    if not usable:
        raise ConfigError(f"--pareto: no point has numbers in both {x} and {y}")
    problem = [p for p in params if p.startswith("workload.") and p not in (x, y)]
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in usable:
        groups[tuple(repr(r.get(p)) for p in problem)].append(r)
    keys = sorted(groups, key=lambda k: [_sortable(groups[k][0].get(p)) for p in problem])
    policies = sorted({r["policy_label"] for r in usable})
    colours = plt.get_cmap("tab10")
    shown = keys[:PARETO_PANELS]
    ncols = min(4, len(shown))
    nrows = -(-len(shown) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(4.2 * ncols + 1.5, 3.4 * nrows + 0.6), squeeze=False
    )
    way = {True: "lower is better", False: "higher is better"}
    columns = ["point", x, y, "policy_label", *[p for p in params if p not in (x, y)]]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    n_front = 0
    for g, key in enumerate(keys):
        members = groups[key]
        points: list[tuple[float, float]] = []
        for r in members:
            px, py = _value(r, x), _value(r, y)
            assert px is not None and py is not None  # (usable rows only)
            points.append((px, py))
        front = pareto_front(points, (min_x, min_y))
        n_front += len(front)
        for i in front:
            on_axes = {x: points[i][0], y: points[i][1]}
            writer.writerow(
                [store.encode_value(on_axes.get(c, members[i].get(c))) for c in columns]
            )
        if g >= len(shown):
            continue
        ax = axes[g // ncols][g % ncols]
        for k, policy in enumerate(policies):
            mine = [p for p, r in zip(points, members, strict=True) if r["policy_label"] == policy]
            ax.scatter(
                [p[0] for p in mine],
                [p[1] for p in mine],
                s=14,
                alpha=0.45,
                color=colours(k % 10),
                label=policy if g == 0 else None,
            )
        ax.plot(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            "-",
            color="black",
            linewidth=1.0,
            drawstyle="steps-post",
            zorder=3,
        )
        ax.scatter(
            [points[i][0] for i in front],
            [points[i][1] for i in front],
            s=46,
            facecolors="none",
            edgecolors="black",
            linewidths=1.4,
            zorder=4,
            label="non-dominated" if g == 0 else None,
        )
        for values, scale in (
            ([p[0] for p in points], ax.set_xscale),
            ([p[1] for p in points], ax.set_yscale),
        ):
            if min(values) > 0 and max(values) > 20 * min(values):  # a wide range: log scale
                scale("log")
        if problem:
            ax.set_title(
                ", ".join(f"{_short(p)} {_label(members[0].get(p))}" for p in problem), fontsize=8
            )
        ax.set_xlabel(f"{x} ({way[min_x]})", fontsize=8)
        ax.set_ylabel(f"{y} ({way[min_y]})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    for g in range(len(shown), nrows * ncols):
        axes[g // ncols][g % ncols].axis("off")
    more = f"; {len(keys) - len(shown)} more settings in the CSV" if len(keys) > len(shown) else ""
    fig.suptitle(
        f"Pareto fronts: {y} against {x} ({len(usable)} points, {n_front} non-dominated{more})",
        fontsize=10,
    )
    fig.legend(loc="lower center", ncol=min(6, len(policies) + 1), fontsize=7)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    stem = f"pareto_{x.replace('.', '_')}_{y.replace('.', '_')}"
    png = out_dir / f"{stem}.png"
    _save(fig, png)
    table = out_dir / f"{stem}.csv"
    write_with(table, lambda path: Path(path).write_text(buffer.getvalue()), "--out")
    return [png, table]


def _save(fig: Any, out_path: Path) -> None:
    """Write ``fig`` through :mod:`wpsim.outputs` (atomically, errors as one line), then close it."""
    import matplotlib.pyplot as plt

    try:
        write_with(out_path, lambda p: fig.savefig(p, dpi=120, format="png"), "--out")
    finally:
        plt.close(fig)


def plot_sweep(
    folder: str | Path,
    out: str | Path | None = None,
    heatmap: tuple[str, str] | None = None,
    metric: str = "speedup",
    pareto_axes: tuple[str, str] | None = None,
) -> list[Path]:
    """Draw the standard views of a sweep folder; return the files written.

    Parameters
    ----------
    folder : path
        A folder written by ``wpsim sweep``.
    out : path, optional
        Where the PNG files go (default: ``folder/plots``).
    heatmap : (str, str), optional
        The two parameters of the heat maps and winners map (default: the first two varied
        parameters other than the policy, or cores).
    metric : str
        The column shown in the heat maps (default ``speedup``).
    pareto_axes : (str, str), optional
        Also draw the Pareto view of these two columns (see the module docstring).
    """
    folder = Path(folder)
    rows, params = _ok_rows(folder)
    if not rows:
        raise ConfigError(f"{folder}: no successful points to plot")
    out_dir = output_folder(Path(out) if out is not None else folder / "plots", "--out")
    written = []
    path = speedup_vs_cores(rows, out_dir / "speedup_vs_cores.png")
    if path:
        written.append(path)
    axes = _axes_for(rows, params, heatmap)
    if axes is not None:
        written.append(heatmaps(rows, axes, metric, out_dir / f"heatmap_{metric}.png"))
        if len({r["policy_label"] for r in rows}) >= 2:
            written.append(winners(rows, params, axes, out_dir / "winners.png"))
    if pareto_axes is not None:
        written += pareto(rows, params, pareto_axes[0], pareto_axes[1], out_dir)
    return written
