"""Wavefront against layer-wise execution of stacked RNNs on a 2-socket Xeon Platinum 8160.

The W-Par setting (Sharma & Casas, ICS 2020): LSTM and GRU, 2-8 layers, hidden 256-1024, batch
1-64, inference and training, 1-48 cores of ``hw_configs/xeon8160_2s.yaml``; ``layerwise``
(oneDNN's "linear execution", what TensorFlow and PyTorch run) against ``wavefront`` with one
core per cell and with helper groups of K cores per cell. Published: "up to 6.6x".

Three sweeps (no machine parameter is tuned; every number comes from the shipped file):

* ``sweeps/multicore_cpu.yaml``: the paper grid, closed forms (15,360 points);
* ``extension.yaml``: 8 layers, hidden 32-1024, to find where a 6.6x advantage appears;
* ``crosscheck.yaml``: a subset simulated event by event, against the closed forms.

Writes ``advantage.csv``, ``extension.csv``, ``crosscheck.csv``, ``multicore_cpu.png``,
``advantage_heatmaps.png`` and ``README.md`` into ``out_dir`` (default: this folder). The raw
sweep folders go to a temporary directory (``wpsim sweep SPEC --out DIR`` recreates any of them).
Run: ``python reports/multicore_cpu/make_report.py`` or ``wpsim report multicore_cpu``.
"""

from __future__ import annotations

import csv
import math
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from wpsim.hardware import load_machine, resolve_machine_path
from wpsim.sweep import read_results, run_sweep

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MAIN_SPEC = ROOT / "sweeps" / "multicore_cpu.yaml"
EXTENSION_SPEC = HERE / "extension.yaml"
CROSSCHECK_SPEC = HERE / "crosscheck.yaml"
MACHINE = "xeon8160_2s"
PUBLISHED = 6.6
SEQ_LEN = 100

CONFIG_KEYS = ("workload.cell", "workload.phase", "workload.layers", "workload.hidden",
               "workload.batch", "cores")  # fmt: skip


def _sweep(spec: Path, out: Path, progress: bool = False) -> list[dict[str, Any]]:
    run_sweep(spec, out, restart=True, progress=progress)
    return read_results(out)


def _value(row: dict[str, Any], key: str, default: Any) -> Any:
    value = row.get(key)
    return default if value is None else value


def _config(row: dict[str, Any], base: dict[str, Any]) -> tuple:
    return tuple(_value(row, k, base.get(k.split(".")[-1])) for k in CONFIG_KEYS)


def _helpers(label: str) -> int:
    """``wavefront, helpers=4`` -> 4; plain ``wavefront`` -> 1."""
    return int(label.split("helpers=")[1]) if "helpers=" in label else 1


def advantage_table(rows: list[dict[str, Any]], base: dict[str, Any]) -> list[dict[str, Any]]:
    """Per configuration: layerwise, plain wavefront and best wavefront (over K) makespans."""
    by_config: dict[tuple, dict[str, dict]] = defaultdict(dict)
    for r in rows:
        if r["status"] == "ok":
            by_config[_config(r, base)][r["policy_label"]] = r
    table = []
    for config, runs in sorted(by_config.items()):
        if "layerwise" not in runs or "wavefront" not in runs:
            continue
        layerwise = runs["layerwise"]["makespan_s"]
        waves = {label: r for label, r in runs.items() if label.startswith("wavefront")}
        best_label = min(waves, key=lambda label: (waves[label]["makespan_s"], _helpers(label)))
        best = waves[best_label]["makespan_s"]
        table.append({
            **dict(zip(("cell", "phase", "layers", "hidden", "batch", "cores"), config,
                       strict=True)),
            "sequential_s": runs["layerwise"]["sequential_s"],
            "layerwise_s": layerwise,
            "wavefront_s": runs["wavefront"]["makespan_s"],
            "best_wavefront_s": best,
            "best_helpers": _helpers(best_label),
            "plain_advantage": layerwise / runs["wavefront"]["makespan_s"],
            "best_advantage": layerwise / best,
            "layerwise_dram_bytes": runs["layerwise"]["dram_bytes"],
            "best_wavefront_dram_bytes": waves[best_label]["dram_bytes"],
        })  # fmt: skip
    return table


def crosscheck_table(simulated: list[dict[str, Any]], analytic: list[dict[str, Any]],
                     base: dict[str, Any], main_base: dict[str, Any]) -> list[dict[str, Any]]:  # fmt: skip
    """Simulated makespans next to the closed forms of the same points."""
    closed = {
        (_config(r, main_base), r["policy_label"]): r for r in analytic if r["status"] == "ok"
    }
    out = []
    for r in simulated:
        if r["status"] != "ok":
            continue
        key = (_config(r, base), r["policy_label"])
        a = closed.get(key)
        if a is None:
            continue
        out.append({
            **dict(zip(("cell", "phase", "layers", "hidden", "batch", "cores"), key[0],
                       strict=True)),
            "policy": r["policy_label"],
            "simulate_s": r["makespan_s"],
            "analytic_s": a["makespan_s"],
            "relative_error": a["makespan_s"] / r["makespan_s"] - 1.0,
        })  # fmt: skip
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
            )


# ---- figures ------------------------------------------------------------------------------------

POLICY_STYLE = {
    "layerwise": ("black", "-", "o"),
    "wavefront": ("tab:blue", "-", "s"),
    "wavefront, helpers=2": ("tab:orange", "--", "^"),
    "wavefront, helpers=4": ("tab:green", "--", "v"),
    "wavefront, helpers=8": ("tab:red", "--", "D"),
}


def _speedup_panel(ax: Any, rows: list[dict], sim_rows: list[dict], base: dict, sim_base: dict,
                   config: dict[str, Any], title: str) -> None:  # fmt: skip
    def matches(r: dict, b: dict) -> bool:
        return all(_value(r, f"workload.{k}", b.get(k)) == v for k, v in config.items())

    # one baseline for lines and markers: the closed-form one-core (sequential) time
    baseline = next(r["sequential_s"] for r in rows if r["status"] == "ok" and matches(r, base))
    for label, (colour, style, marker) in POLICY_STYLE.items():
        points = sorted((r["cores"], baseline / r["makespan_s"]) for r in rows
                        if r["status"] == "ok" and r["policy_label"] == label and matches(r, base))  # fmt: skip
        if points:
            ax.plot(*zip(*points, strict=True), color=colour, linestyle=style, label=label)
        sims = sorted((r["cores"], baseline / r["makespan_s"]) for r in sim_rows
                      if r["status"] == "ok" and r["policy_label"] == label and matches(r, sim_base))  # fmt: skip
        if sims:
            ax.plot(*zip(*sims, strict=True), color=colour, linestyle="none", marker=marker,
                    markerfacecolor="none", markersize=6)  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ticks = [1, 2, 4, 8, 16, 48]
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel("cores")
    ax.set_ylabel("speed-up over one core (closed-form sequential time)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)


def _heatmap(ax: Any, table: list[dict], select: dict[str, Any], title: str,
             norm: Any) -> Any:  # fmt: skip
    import numpy as np

    rows = [t for t in table if all(t[k] == v for k, v in select.items())]
    hidden = sorted({t["hidden"] for t in rows})
    batch = sorted({t["batch"] for t in rows})
    grid = np.full((len(hidden), len(batch)), np.nan)
    for t in rows:
        i, j = hidden.index(t["hidden"]), batch.index(t["batch"])
        grid[i, j] = t["best_advantage"]
        shade = norm(t["best_advantage"])
        ax.text(j, i, f"{t['best_advantage']:.2f}\nK={t['best_helpers']}", ha="center",
                va="center", fontsize=6,
                color="white" if shade < 0.2 or shade > 0.8 else "black")  # fmt: skip
    image = ax.imshow(grid, origin="lower", cmap="RdBu", norm=norm, aspect="auto")
    ax.set_xticks(range(len(batch)))
    ax.set_xticklabels([str(b) for b in batch], fontsize=7)
    ax.set_yticks(range(len(hidden)))
    ax.set_yticklabels([str(h) for h in hidden], fontsize=7)
    ax.set_xlabel("batch", fontsize=8)
    ax.set_ylabel("hidden", fontsize=8)
    ax.set_title(title, fontsize=8)
    return image


def draw_figures(out: Path, main_rows: list[dict], sim_rows: list[dict], table: list[dict],
                 extension: list[dict], base: dict, sim_base: dict) -> None:  # fmt: skip
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import LogNorm

    norm = LogNorm(vmin=1 / 8, vmax=8)
    fig, axs = plt.subplots(2, 2, figsize=(11, 8.5), layout="constrained")
    _speedup_panel(axs[0][0], main_rows, sim_rows, base, sim_base,
                   {"cell": "lstm", "phase": "inference", "layers": 8, "hidden": 256, "batch": 1},
                   "(a) LSTM, 8 layers, H=256, batch 1, inference\n"
                   "lines: closed forms; open markers: simulated")  # fmt: skip
    _speedup_panel(axs[0][1], main_rows, sim_rows, base, sim_base,
                   {"cell": "lstm", "phase": "training", "layers": 8, "hidden": 1024, "batch": 1},
                   "(b) LSTM, 8 layers, H=1024, batch 1, training")  # fmt: skip
    axs[0][0].legend(fontsize=7)
    image = _heatmap(axs[1][0], table, {"cell": "lstm", "phase": "inference", "layers": 8,
                                        "cores": 48},
                     "(c) layerwise time / best wavefront time, 48 cores,\n"
                     "LSTM 8 layers, inference (K: helper cores per cell)", norm)  # fmt: skip
    fig.colorbar(image, ax=axs[1][0], label="wavefront advantage (>1: wavefront faster)")
    ax = axs[1][1]
    colours = {8: "tab:purple", 24: "tab:olive", 48: "tab:cyan"}
    for cores, colour in colours.items():
        sel = sorted((t["hidden"], t["best_advantage"], t["plain_advantage"]) for t in extension
                     if t["cores"] == cores and t["phase"] == "inference" and t["batch"] == 1)  # fmt: skip
        if not sel:
            continue
        hs, best, plain = zip(*sel, strict=True)
        ax.plot(hs, best, color=colour, marker="o", label=f"{cores} cores, best K")
        ax.plot(hs, plain, color=colour, linestyle=":", marker=".", label=f"{cores} cores, K=1")
    ax.axhline(PUBLISHED, color="grey", linestyle="--", linewidth=1)
    ax.text(33, PUBLISHED * 1.07, f"published: up to {PUBLISHED}x", fontsize=7, color="grey")
    ax.axhline(1, color="black", linewidth=0.6)
    ax.axvspan(256, 1024, color="grey", alpha=0.1)
    ax.text(280, 0.06, "paper grid", fontsize=7, color="grey")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("hidden size")
    ax.set_ylabel("layerwise time / wavefront time")
    ax.set_title("(d) LSTM, 8 layers, batch 1, inference:\nadvantage against hidden size",
                 fontsize=9)  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.suptitle("Wavefront vs layer-wise on 2 x Xeon Platinum 8160 (hw_configs/xeon8160_2s.yaml)")
    fig.savefig(out / "multicore_cpu.png", dpi=110)
    plt.close(fig)

    cells, phases, layers = ["lstm", "gru"], ["inference", "training"], [2, 4, 6, 8]
    fig, axs = plt.subplots(4, 4, figsize=(13, 12), layout="constrained")
    for i, (cell, phase) in enumerate((c, p) for c in cells for p in phases):
        for j, n_layers in enumerate(layers):
            image = _heatmap(axs[i][j], table, {"cell": cell, "phase": phase, "layers": n_layers,
                                                "cores": 48},
                             f"{cell.upper()} {phase}, {n_layers} layers", norm)  # fmt: skip
    fig.colorbar(image, ax=axs, shrink=0.6, label="layerwise time / best wavefront time")
    fig.suptitle("48 cores: layerwise time / best wavefront time (K: helper cores per cell)")
    fig.savefig(out / "advantage_heatmaps.png", dpi=100)
    plt.close(fig)


# ---- mechanisms ---------------------------------------------------------------------------------


def _simulated_advantage(t: dict[str, Any]) -> float:
    """Layerwise time / best-K wavefront time of configuration ``t``, simulated."""
    from wpsim.engine import simulate
    from wpsim.policies import get_policy
    from wpsim.workload import Workload

    machine = load_machine(resolve_machine_path(MACHINE))
    w = Workload(cell=t["cell"], layers=t["layers"], hidden=t["hidden"], input=256,
                 seq_len=SEQ_LEN, batch=t["batch"], phase=t["phase"])  # fmt: skip
    k = t["best_helpers"]
    layerwise = simulate(w, machine, "layerwise", cores=t["cores"]).makespan_s
    wave = simulate(w, machine, get_policy("wavefront", helpers=k if k > 1 else None),
                    cores=t["cores"]).makespan_s  # fmt: skip
    return layerwise / wave


def mechanism_picks(table: list[dict[str, Any]],
                    extension: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:  # fmt: skip
    """The configurations the README explains."""
    picks = [("largest advantage in the paper grid", max(table, key=lambda t: t["best_advantage"]))]
    six = [t for t in extension if t["best_advantage"] >= PUBLISHED]
    if six:
        picks.append((f"where {PUBLISHED}x appears (hidden below the grid)",
                      max(six, key=lambda t: (t["hidden"], -t["cores"], -t["best_advantage"]))))  # fmt: skip
    big = max((t for t in table if t["cores"] == 48 and t["layers"] == 8),
              key=lambda t: (t["hidden"] * t["batch"], -t["best_advantage"]))  # fmt: skip
    picks.append(("largest cells in the grid", big))
    return [(why, dict(t)) for why, t in picks]


def mechanism_rows(picks: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Markdown rows explaining chosen configurations from the machine file and the sweep."""
    from wpsim.workload import Workload

    machine = load_machine(resolve_machine_path(MACHINE))
    l2 = next(c for c in machine.caches if c.name == "L2").size_bytes
    lines = []
    for why, t in picks:
        w = Workload(cell=t["cell"], layers=t["layers"], hidden=t["hidden"], input=256,
                     seq_len=SEQ_LEN, batch=t["batch"], phase=t["phase"])  # fmt: skip
        layer_bytes = w.layer_weight_bytes(1)
        p, k = t["cores"], t["best_helpers"]
        groups = max(p // k, 1)
        steps = t["layers"] * SEQ_LEN * (2 if t["phase"] == "training" else 1)
        per_step_us = 1e6 * t["layerwise_s"] / steps
        fixed_us = 1e6 * (machine.dispatch_overhead_s + machine.barrier_s(p))
        held = math.ceil(t["layers"] / groups) * layer_bytes / k
        lines.append(
            f"| {why} | {t['cell'].upper()} {t['phase']}, {t['layers']} layers, H={t['hidden']}, "
            f"batch {t['batch']}, {p} cores | {layer_bytes / 2**20:.2f} MiB per layer; layerwise "
            f"{layer_bytes / p / 2**10:,.0f} KiB/core, wavefront K={k}: {held / 2**10:,.0f} "
            f"KiB/core (L2: {l2 // 2**10} KiB) | {per_step_us:.2f} us, {fixed_us:.2f} us of it "
            f"dispatch + barrier | {min(t['layers'], groups)} of {groups} groups of {k} | "
            f"{t['best_advantage']:.2f}x ({t['simulated_advantage']:.2f}x); K=1: "
            f"{t['plain_advantage']:.2f}x |"
        )
    return lines


# ---- README -------------------------------------------------------------------------------------


def write_readme(out: Path, table: list[dict], extension: list[dict], check: list[dict],
                 picks: list[tuple[str, dict[str, Any]]]) -> None:  # fmt: skip
    best = max(table, key=lambda t: t["best_advantage"])
    wins = [t for t in table if t["best_advantage"] > 1.0]
    plain_wins = [t for t in table if t["plain_advantage"] > 1.0]
    at48 = [t for t in table if t["cores"] == 48]
    median48 = statistics.median(t["best_advantage"] for t in at48)
    wins48 = [t for t in at48 if t["best_advantage"] > 1.0]

    def values(key: str) -> str:
        return ", ".join(str(v) for v in sorted({t[key] for t in wins}))

    where_wins = (f"hidden {values('hidden')}; batch {values('batch')}; {values('layers')} "
                  f"layers; {values('cores')} cores") if wins else "no configuration"  # fmt: skip
    best_sim = picks[0][1]["simulated_advantage"]
    lw_best = min(at48, key=lambda t: t["best_advantage"])
    six = sorted((t for t in extension if t["best_advantage"] >= PUBLISHED),
                 key=lambda t: (-t["hidden"], t["cores"]))  # fmt: skip
    within10 = sum(1 for c in check if abs(c["relative_error"]) <= 0.10)
    edge = [c for c in check if c["hidden"] == 512]
    away = [c for c in check if c["hidden"] != 512]
    away10 = sum(1 for c in away if abs(c["relative_error"]) <= 0.10)
    over = max(check, key=lambda c: c["relative_error"])
    under = min(check, key=lambda c: c["relative_error"])
    by_policy = defaultdict(list)
    for c in check:
        by_policy[c["policy"]].append(abs(c["relative_error"]))
    policy_medians = ", ".join(f"{p} {100 * statistics.median(v):.0f}%"
                               for p, v in sorted(by_policy.items()))  # fmt: skip
    from wpsim.workload import Workload

    machine = load_machine(resolve_machine_path(MACHINE))
    h512_mib = (
        Workload(cell="lstm", layers=2, hidden=512, input=256, seq_len=1).layer_weight_bytes(1)
        / 2**20
    )
    fixed48_us = 1e6 * (machine.dispatch_overhead_s + machine.barrier_s(48))

    def cfg(t: dict) -> str:
        return (f"{t['cell'].upper()} {t['phase']}, {t['layers']} layers, H={t['hidden']}, "
                f"batch {t['batch']}, {t['cores']} cores")  # fmt: skip

    six_where = cfg(six[0]) + f", K={six[0]['best_helpers']}" if six else "nowhere in this sweep"
    six_line = (
        f"reached only below the grid's hidden sizes, at hidden {max(t['hidden'] for t in six)} "
        f"(the smallest tried; up to {max(t['best_advantage'] for t in six):.1f}x, "
        f"{cfg(max(six, key=lambda t: t['best_advantage']))}; panel d)"
        if six else "not reached even at hidden 32"
    )  # fmt: skip
    text = f"""# Wavefront against layer-wise execution on a 2-socket Xeon Platinum 8160

Reproduces the setting of W-Par (Sharma & Casas, ICS 2020): stacked LSTM and GRU, 2-8 layers,
hidden 256-1024, batch 1-64, inference and training (100 time steps, input 256), 1-48 cores of
`hw_configs/xeon8160_2s.yaml`; `layerwise` (oneDNN's linear execution: per layer one input GEMM,
then each step's recurrent GEMM split across all cores with a barrier after each step) against
`wavefront` (one task per cell, dataflow over the layer x time grid), with one core per cell
(K=1) and with cells split across helper groups of K = 2 to 24 cores (P cores = P/K groups).
Published: "up to 6.6x" over state-of-the-art CPU implementations.

Generated by `make_report.py` (`wpsim report multicore_cpu`); no machine parameter was tuned
for this report, every value is the shipped machine file's.

![figure](multicore_cpu.png)

## What the model says

* **In the paper grid the largest advantage of wavefront over layerwise is
  {best["best_advantage"]:.2f}x** in closed form, {best_sim:.2f}x simulated ({cfg(best)},
  helper groups of K={best["best_helpers"]}; K tried: 1, 2, 3, 4, 6, 8, 12, 16, 24). The
  published 6.6x is {six_line}.
* With the best K, wavefront wins {len(wins48)} of the {len(at48)} configurations at 48 cores
  (median advantage {median48:.2f}x) and {len(wins)} of {len(table)} over all core counts (panel c
  and `advantage_heatmaps.png`), all of them at {where_wins}.
  Everywhere else layerwise is faster, by up to {1 / lw_best["best_advantage"]:.1f}x
  ({cfg(lw_best)}). With one core per cell (K=1, W-Par's one task per cell) wavefront wins
  {len(plain_wins)} configurations of the grid.
* The closed forms agree with the event-by-event simulation within 10% on {within10} of
  {len(check)} cross-checked points (`crosscheck.csv`; median error by policy: {policy_medians}).
  Away from hidden 512 it is {away10} of {len(away)}. At hidden 512 ({len(edge)} points) an
  LSTM layer (8 MiB) sits between the 1 MiB L2 and the 33 MiB L3 while the 8 layers (64 MiB)
  overflow the L3; the closed forms place a working set wholly in one level, the simulator's LRU
  caches keep part of it, and the two differ by up to {100 * over["relative_error"]:+.0f}%
  ({over["policy"]}, {cfg(over)}) and {100 * under["relative_error"]:+.0f}%
  ({under["policy"]}, {cfg(under)}). The configurations this report explains are simulated too
  (in brackets in the table below).

## Why

Three mechanisms decide the winner; the table shows them for three configurations.

| | configuration | weights: per layer; each core holds | layerwise time per layer-step | wavefront groups busy | advantage: closed form (simulated) |
|---|---|---|---|---|---|
{chr(10).join(mechanism_rows(picks))}

* **Cache residency.** Layerwise splits each layer's weights over all P cores; from about 8
  cores on, a layer's slice fits the 1 MiB private L2 and every step reads it at L2 bandwidth on
  every core at once. With one core per cell, a wavefront core reads a whole layer's weights
  each step ({h512_mib:.1f} MiB for an LSTM layer with H=512), from L3 or DRAM: slower per cell
  than layerwise's whole step. Helper groups
  (K cores per cell) shrink that share K-fold, which is why the best wavefront uses K > 1
  wherever it wins in the paper grid.
* **Per-step barriers.** Layerwise pays a dispatch and a barrier across all P cores after every
  step of every layer ({fixed48_us:.2f} us at 48 cores on this machine file), plus an all-gather of the new
  hidden state. When a step's math is shorter than that (small hidden, batch 1), layerwise time
  per step stops falling with cores while the wavefront's K-core groups synchronise only among
  K cores.
* **Parallel slack.** A unidirectional wavefront has at most L cells ready at once (L =
  layers), so it can keep at most L groups busy: with
  one core per cell, 8 of 48 cores for an 8-layer net. Helper groups turn the idle cores into
  math parallelism inside each cell. The advantage grows where layerwise's step is mostly fixed
  cost (small hidden, batch 1, many cores: {six_where}) and fades as cells grow and
  layerwise's math parallelism pays (panel d).

## Honest differences from the paper

The published 6.6x is against TensorFlow/Keras and PyTorch, whose CPU RNN paths add per-step
framework overheads (operator dispatch, memory allocation, Python) that `layerwise` does not
have: it models a lean oneDNN-style primitive with a 1 us dispatch and a tree barrier. The
W-Par paper also does not state every workload shape (inferred). This model reproduces the
mechanism (pipelining across layers wins when per-step fixed costs dominate) and its direction
with core count, but within the stated grid it predicts a smaller advantage, and a loss for large
cells, rather than 6.6x. With the frameworks' own runtimes as the baseline (`layerwise` under
`pytorch_eager_cpu` or `tf_keras_cpu`, `wpsim --runtime`), `../framework_baselines` finds the
published 6.6x, 2.34x and 9.16x inside the model's range and says which workloads and core counts
give them.

## Files

* `multicore_cpu.png`: (a, b) speed-up over one core against cores for an 8-layer LSTM (lines:
  closed forms, markers: simulation); (c) wavefront advantage at 48 cores over hidden x batch;
  (d) advantage against hidden size down to 32, with the published 6.6x.
* `advantage_heatmaps.png`: the advantage at 48 cores for every cell, phase and depth.
* `advantage.csv` (paper grid, closed forms), `extension.csv` (hidden 32-1024), `crosscheck.csv`
  (simulation against closed forms). Columns are seconds and bytes.
* Specs: `../../sweeps/multicore_cpu.yaml`, `extension.yaml`, `crosscheck.yaml`
  (`wpsim sweep SPEC --out DIR` reruns any of them; `wpsim plot DIR` draws the standard views).
"""
    (out / "README.md").write_text(text)


def main(out_dir: Path | None = None, progress: bool = False) -> None:
    """Run the three sweeps and write the tables, figures and README into ``out_dir``
    (``progress``: each sweep's progress on stderr)."""
    out = Path(out_dir) if out_dir is not None else HERE
    out.mkdir(parents=True, exist_ok=True)
    from wpsim.sweep import load_sweep

    main_base = load_sweep(MAIN_SPEC).base_workload
    ext_base = load_sweep(EXTENSION_SPEC).base_workload
    check_base = load_sweep(CROSSCHECK_SPEC).base_workload
    with tempfile.TemporaryDirectory(prefix="wpsim-multicore-") as tmp:
        main_rows = _sweep(MAIN_SPEC, Path(tmp) / "main", progress)
        ext_rows = _sweep(EXTENSION_SPEC, Path(tmp) / "extension", progress)
        sim_rows = _sweep(CROSSCHECK_SPEC, Path(tmp) / "crosscheck", progress)
    table = advantage_table(main_rows, main_base)
    extension = advantage_table(ext_rows, ext_base)
    check = crosscheck_table(sim_rows, main_rows, check_base, main_base)
    picks = mechanism_picks(table, extension)
    for _, t in picks:
        t["simulated_advantage"] = _simulated_advantage(t)
    _write_csv(out / "advantage.csv", table)
    _write_csv(out / "extension.csv", extension)
    _write_csv(out / "crosscheck.csv", check)
    draw_figures(out, main_rows, sim_rows, table, extension, main_base, check_base)
    write_readme(out, table, extension, check, picks)


if __name__ == "__main__":
    main()
