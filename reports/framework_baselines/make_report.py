"""Wavefront against the frameworks W-Par and B-Par were compared with, by mechanism.

W-Par (Sharma & Casas, ICS 2020) reports "up to 6.6x" and B-Par (IPDPS 2022, bidirectional RNNs)
"up to 2.34x over TensorFlow-Keras and 9.16x over PyTorch" on multi-core CPUs. Their baselines
were the frameworks, not a bare oneDNN primitive: ``reports/multicore_cpu`` compares against the
lean ``layerwise`` (oneDNN's linear execution) and finds at most 2.66x. Here the baseline is
``layerwise`` under the framework's runtime (:mod:`wpsim.runtime`, ``hw_configs/runtimes/``):
``pytorch_eager_cpu`` (ATen's per-step operator chain) and ``tf_keras_cpu`` (a while-loop per
layer, the input product inside every step), against ``wavefront`` under the lean runtime
(W-Par's OmpSs tasks: the machine's own dispatch), with the best helper-group size K.

The grid is multicore_cpu's (W-Par's setting, inferred: the papers' available text does not
state every shape): LSTM and GRU, 2-8 layers, hidden 256-1024, batch 1-64, inference and
training, 100 steps, input 256; unidirectional for W-Par, bidirectional for B-Par; 12, 24 and 48
cores of ``hw_configs/xeon8160_2s.yaml``. Closed forms (``predict``); a sample is simulated.
No parameter is tuned to these papers: the machine file is shipped, the runtimes' terms come
from the frameworks' source and a public per-operator figure.

Writes ``advantage.csv`` (every configuration: layerwise under each runtime, best wavefront,
the advantages), ``crosscheck.csv``, ``framework_baselines.png`` and ``README.md`` into
``out_dir`` (default: this folder). Run: ``python reports/framework_baselines/make_report.py`` or
``wpsim report framework_baselines`` (about two minutes).
"""

from __future__ import annotations

import csv
import itertools
import statistics
from pathlib import Path
from typing import Any

from wpsim.accel_dispatch import evaluate
from wpsim.hardware import load_machine, resolve_machine_path
from wpsim.policies import get_policy
from wpsim.runtime import load_runtime
from wpsim.workload import Workload

HERE = Path(__file__).resolve().parent
#: About two minutes on a 2-core machine: ``wpsim report --check`` (and the test suite) leave it
#: out unless it is named (``wpsim report --check framework_baselines``).
SLOW = True
MACHINE = "xeon8160_2s"
RUNTIMES = ("lean", "pytorch_eager_cpu", "tf_keras_cpu")
HELPERS = (1, 2, 3, 4, 6, 8, 12, 16, 24)
CORES = (12, 24, 48)
CELLS, PHASES = ("lstm", "gru"), ("inference", "training")
LAYERS, HIDDEN, BATCH = (2, 4, 6, 8), (256, 512, 1024), (1, 4, 16, 64)
SEQ_LEN, INPUT = 100, 256
#: (study, runtime, published advantage): the papers' headline numbers
PUBLISHED = [
    ("W-Par", "pytorch_eager_cpu", 6.6),
    ("W-Par", "tf_keras_cpu", 6.6),
    ("B-Par", "tf_keras_cpu", 2.34),
    ("B-Par", "pytorch_eager_cpu", 9.16),
]
NEAR = 0.10  # "gives the published figure": within +-10%
#: configurations simulated event by event against the closed forms
CROSSCHECK = [
    ("W-Par", "gru", "inference", 4, 256, 4, 48),
    ("W-Par", "lstm", "training", 4, 512, 16, 48),
    ("B-Par", "lstm", "inference", 2, 512, 1, 48),
    ("B-Par", "gru", "training", 2, 256, 16, 24),
]


def workload(study: str, cell: str, phase: str, layers: int, hidden: int, batch: int) -> Workload:
    return Workload(
        name=f"{study}-{cell}", cell=cell, layers=layers, hidden=hidden, input=INPUT,
        seq_len=SEQ_LEN, batch=batch, phase=phase, bidirectional=study == "B-Par",
    )  # fmt: skip


def run_configuration(engine: str, w: Workload, machine: Any, runtimes: dict, cores: int) -> dict:
    """Layerwise under every runtime and the best wavefront (over K) under the lean one."""
    out: dict[str, Any] = {}
    for name, runtime in runtimes.items():
        r = evaluate(engine, w, machine, get_policy("layerwise"), runtime=runtime, cores=cores)
        out[f"layerwise_{name}_s"] = r.makespan_s
    best = None
    for k in HELPERS:
        if k > cores:
            continue
        r = evaluate(engine, w, machine, get_policy("wavefront", helpers=k), cores=cores)
        if best is None or r.makespan_s < best[0]:
            best = (r.makespan_s, k)
    out["wavefront_s"], out["wavefront_helpers"] = best
    for name in runtimes:
        out[f"advantage_{name}"] = out[f"layerwise_{name}_s"] / out["wavefront_s"]
    return out


def advantage_table(machine: Any, runtimes: dict) -> list[dict[str, Any]]:
    rows = []
    grid = itertools.product(("W-Par", "B-Par"), CORES, CELLS, PHASES, LAYERS, HIDDEN, BATCH)
    for study, cores, cell, phase, layers, hidden, batch in grid:
        w = workload(study, cell, phase, layers, hidden, batch)
        row = {"study": study, "cores": cores, "cell": cell, "phase": phase, "layers": layers,
               "hidden": hidden, "batch": batch}  # fmt: skip
        row.update(run_configuration("predict", w, machine, runtimes, cores))
        rows.append(row)
    return rows


def crosscheck_table(machine: Any, runtimes: dict) -> list[dict[str, Any]]:
    rows = []
    for study, cell, phase, layers, hidden, batch, cores in CROSSCHECK:
        w = workload(study, cell, phase, layers, hidden, batch)
        sim = run_configuration("simulate", w, machine, runtimes, cores)
        pred = run_configuration("predict", w, machine, runtimes, cores)
        for name in runtimes:
            rows.append({
                "study": study, "cell": cell, "phase": phase, "layers": layers, "hidden": hidden,
                "batch": batch, "cores": cores, "runtime": name,
                "advantage_predict": round(pred[f"advantage_{name}"], 4),
                "advantage_simulate": round(sim[f"advantage_{name}"], 4),
            })  # fmt: skip
    return rows


def _label(r: dict[str, Any]) -> str:
    return (f"{r['cell'].upper()} {r['phase']}, {r['layers']} layers, H={r['hidden']}, "
            f"batch {r['batch']}, {r['cores']} cores")  # fmt: skip


def _step_breakdown(machine: Any, runtimes: dict, r: dict[str, Any]) -> dict[str, float]:
    """Layerwise seconds per layer-direction and step under each runtime (forward only)."""
    study = "B-Par" if r["study"] == "B-Par" else "W-Par"
    w = workload(study, r["cell"], "inference", r["layers"], r["hidden"], r["batch"])
    steps = w.layers * w.directions * w.seq_len
    out = {}
    for name, runtime in runtimes.items():
        res = evaluate("predict", w, machine, get_policy("layerwise"), runtime=runtime,
                       cores=r["cores"])  # fmt: skip
        out[name] = res.makespan_s / steps
    return out


def _figure(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(13, 7.5), sharey=True)
    for i, study in enumerate(("W-Par", "B-Par")):
        for j, name in enumerate(RUNTIMES):
            ax = axes[i][j]
            for hidden, marker in zip(HIDDEN, "o^s", strict=True):
                mine = [r for r in rows if r["study"] == study and r["cores"] == 48
                        and r["hidden"] == hidden]  # fmt: skip
                for batch in BATCH:
                    values = [r[f"advantage_{name}"] for r in mine if r["batch"] == batch]
                    ax.scatter([batch] * len(values), values, marker=marker, s=14, alpha=0.6,
                               color=f"C{HIDDEN.index(hidden)}",
                               label=f"H={hidden}" if batch == BATCH[0] else None)  # fmt: skip
            for s, rt, value in PUBLISHED:
                if s == study and rt == name:
                    ax.axhline(value, color="black", ls="--", lw=1)
                    ax.text(1.1, value * 1.08, f"published {value}x", fontsize=8)
            ax.axhline(1.0, color="grey", lw=0.8)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{study}: layerwise under {name} / best wavefront", fontsize=9)
            ax.set_xlabel("batch")
            if j == 0:
                ax.set_ylabel("advantage of wavefront (48 cores)")
            ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("Wavefront against the frameworks' layer-wise execution, 2 x Xeon 8160, 48 cores "
                 "(each point: a cell, phase and depth)", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x: float) -> str:
    return f"{x:.2f}x"


def _readme(path: Path, rows: list[dict[str, Any]], cross: list[dict[str, Any]], machine: Any,
            runtimes: dict) -> None:  # fmt: skip
    lines = []
    for study, name, value in PUBLISHED:
        mine = [r for r in rows if r["study"] == study]
        best = max(mine, key=lambda r: r[f"advantage_{name}"])
        near = [r for r in mine if abs(r[f"advantage_{name}"] / value - 1) <= NEAR]
        at48 = [r for r in near if r["cores"] == 48]
        shapes = sorted({(r["hidden"], r["batch"]) for r in at48})
        example = min(at48 or near, key=lambda r: abs(r[f"advantage_{name}"] / value - 1),
                      default=None)  # fmt: skip
        lines.append(
            f"| {study} vs {name} | {value}x | {_fmt(best[f'advantage_{name}'])} ({_label(best)}, "
            f"K={best['wavefront_helpers']}) | {len(near)} of {len(mine)} "
            f"({len(at48)} at 48 cores; H, batch: {', '.join(f'{h}/{b}' for h, b in shapes) or '-'}) | "
            + (f"{_label(example)}: {_fmt(example[f'advantage_{name}'])}" if example else "-")
            + " |"
        )
    table = "\n".join(lines)
    where_lines = []
    for study, name, value in PUBLISHED:
        near = [r for r in rows if r["study"] == study
                and abs(r[f"advantage_{name}"] / value - 1) <= NEAR]  # fmt: skip
        hidden = sorted({r["hidden"] for r in near})
        batch = sorted({r["batch"] for r in near})
        cores = sorted({r["cores"] for r in near})
        where_lines.append(
            f"  * {study} over {name}, {value}x: hidden {'/'.join(map(str, hidden)) or '-'}; batch "
            f"{'/'.join(map(str, batch)) or '-'}; cores {'/'.join(map(str, cores)) or '-'}."
        )
    where = "\n".join(where_lines)
    lean_best = max(rows, key=lambda r: r["advantage_lean"])
    by_shape = []
    for study in ("W-Par", "B-Par"):
        for name in RUNTIMES:
            cells = []
            for hidden in HIDDEN:
                for batch in (1, 64):
                    values = [r[f"advantage_{name}"] for r in rows if r["study"] == study
                              and r["cores"] == 48 and r["hidden"] == hidden and r["batch"] == batch]  # fmt: skip
                    cells.append(f"{min(values):.2f}-{max(values):.2f}")
            by_shape.append(f"| {study} | {name} | " + " | ".join(cells) + " |")
    shape_table = "\n".join(by_shape)
    by_cores = []
    for study, name, _published in PUBLISHED[:1] + PUBLISHED[2:]:
        for cores in CORES:
            values = [r[f"advantage_{name}"] for r in rows if r["study"] == study
                      and r["cores"] == cores]  # fmt: skip
            by_cores.append(f"| {study} | {name} | {cores} | {_fmt(statistics.median(values))} | "
                            f"{_fmt(max(values))} |")  # fmt: skip
    cores_table = "\n".join(by_cores)
    example = next(r for r in rows if r["study"] == "B-Par" and r["cores"] == 48
                   and r["cell"] == "lstm" and r["phase"] == "inference" and r["layers"] == 4
                   and r["hidden"] == 512 and r["batch"] == 4)  # fmt: skip
    per_step = _step_breakdown(machine, runtimes, example)
    cross_err = max(abs(c["advantage_simulate"] / c["advantage_predict"] - 1) for c in cross)
    cross_table = "\n".join(
        f"| {c['study']} | {c['cell']} {c['phase']}, {c['layers']} layers, H={c['hidden']}, "
        f"batch {c['batch']}, {c['cores']} cores | {c['runtime']} | {_fmt(c['advantage_predict'])} | "
        f"{_fmt(c['advantage_simulate'])} |"
        for c in cross
    )
    bpar = [r for r in rows if r["study"] == "B-Par"]
    gain_row = max(
        bpar, key=lambda r: r["layerwise_pytorch_eager_cpu_s"] / r["layerwise_tf_keras_cpu_s"]
    )
    keras_gain = gain_row["layerwise_pytorch_eager_cpu_s"] / gain_row["layerwise_tf_keras_cpu_s"]
    keras_gain_label = _label(gain_row)
    keras_faster = sum(
        r["layerwise_tf_keras_cpu_s"] < r["layerwise_pytorch_eager_cpu_s"] for r in bpar
    )
    pytorch = load_runtime("pytorch_eager_cpu")
    keras = load_runtime("tf_keras_cpu")
    text = f"""# Wavefront against the frameworks W-Par and B-Par were compared with

Regenerate: `python reports/framework_baselines/make_report.py` (or `wpsim report
framework_baselines`). Files: `advantage.csv` (every configuration: layerwise under each
runtime, best wavefront and its helper-group size K, the advantages), `crosscheck.csv`
(closed forms against the simulation), `framework_baselines.png`.

W-Par (ICS 2020) reports "up to 6.6x" over the state of the art on multi-core CPUs, B-Par (IPDPS
2022, bidirectional RNNs) "up to 2.34x over TensorFlow-Keras and 9.16x over PyTorch". Their
baselines were the frameworks. `reports/multicore_cpu` compares wavefront with the lean
`layerwise` (a bare oneDNN-style primitive) and finds at most {_fmt(lean_best["advantage_lean"])} in this grid
({_label(lean_best)}). Here the baseline is `layerwise` under the framework's runtime
(`wpsim --runtime`, `hw_configs/runtimes/`): what a framework user measures. Wavefront runs
under the lean runtime (W-Par's OmpSs tasks: the machine file's own dispatch), with the best K.

![advantages](framework_baselines.png)

## The runtimes (wpsim/runtime.py)

* `pytorch_eager_cpu`: ATen's RNN loop (aten/src/ATen/native/RNN.cpp): the input projection of a
  layer is one GEMM, then every step is a chain of operators: {pytorch.step_s.forward["lstm"] * 1e6:.0f} us a
  step for an LSTM, {pytorch.step_s.forward["gru"] * 1e6:.0f} us for a GRU (13 and 14 operators of ~1 us each,
  the PyTorch maintainers' figure for an operator called from C++, pytorch/pytorch#41383), twice
  that in backward (autograd nodes; an estimate).
* `tf_keras_cpu`: Keras' `standard_lstm` / `standard_gru` (a `tf.while_loop` per layer): the
  input product sits inside every step (B columns, `W_ih` read every step), {keras.step_s.forward["lstm"] * 1e6:.0f} us (LSTM)
  and {keras.step_s.forward["gru"] * 1e6:.0f} us (GRU) of operators a step; the per-operator cost is PyTorch's figure
  (no TensorFlow measurement was found: an assumption). The two directions of a `Bidirectional`
  layer are independent subgraphs that TensorFlow's inter-op threads run at the same time
  (`directions: side_by_side`: half the cores each).

`wpsim calibrate --runtime torch` measures the same terms for the PyTorch installed on a
computer. One such measurement (Intel Xeon (KVM), 2 cores, PyTorch 2.13, one thread; recorded in
the docstring of wpsim/calibrate_runtime.py) found a GRU step of 8.7 us forward (0.62 us
per operator, below the 1 us assumed) and 60 us backward (more than the two operators' worth per
forward operator assumed), and an LSTM step of 0.2 us: PyTorch 2 runs an fp32 LSTM through
oneDNN's fused primitive, not the papers' PyTorch 1 loop. One computer's numbers are not used
for the servers here.

## Where the published figures come from

Each line: the largest advantage the model gives in the grid, and the configurations whose
advantage is within +-10% of the published figure (all core counts; the H/batch pairs at 48
cores).

| comparison | published | largest in the grid | configurations within +-10% | closest |
|---|---|---|---|---|
{table}

Advantage at 48 cores by hidden size and batch (range over cell, phase and depth):

| study | baseline runtime | H=256 batch 1 | H=256 batch 64 | H=512 batch 1 | H=512 batch 64 | H=1024 batch 1 | H=1024 batch 64 |
|---|---|---|---|---|---|---|---|
{shape_table}

By core count (median and largest over the grid):

| study | baseline runtime | cores | median | largest |
|---|---|---|---|---|
{cores_table}

## Why

* **Per-step framework work is serial and does not shrink with cores.** Layer-wise execution
  runs one layer-direction's steps one after the other; the framework adds its operator chain to
  every step. For a bidirectional LSTM with H=512, batch 4, on 48 cores, a layer-direction step takes
  {per_step["lean"] * 1e6:.1f} us under the lean primitive, {per_step["pytorch_eager_cpu"] * 1e6:.1f} us under PyTorch and {per_step["tf_keras_cpu"] * 1e6:.1f} us under Keras (with its
  per-step input product). Wavefront tasks pay the task runtime's dispatch (1 us) once per cell
  and run up to one cell per layer-direction in parallel, so the framework's fixed cost is what
  the advantage measures where the math is small: small hidden sizes, small batches, many cores.
* **The advantage fades where the math dominates.** At batch 64 and H=1024 the step's GEMMs
  (tens of microseconds on 48 cores) dwarf a few tens of operators; wavefront's per-core weight
  reads (a layer's weights per K-core group rather than 1/48 of them per core) then make it
  lose, as in `reports/multicore_cpu`.
* **More cores widen the gap** (table above): layer-wise math shrinks with cores, the
  framework's per-step chain does not.
* The published figures sit inside the model's range, below its largest values (the
  configurations within +-10% of each):
{where}

  The model's largest advantages (batch 1, H=256) are far above any published figure: either
  the papers' workloads were larger (their available text does not say: TIDIGITS and Wikipedia
  models, shapes inferred), or the frameworks' per-operator costs were lower than the 1 us
  assumed.

## What the model does not reproduce, and why

* **How much faster Keras was than PyTorch.** B-Par's two maxima imply Keras was up to about
  3.9x faster than PyTorch on bidirectional RNNs (9.16 / 2.34, if the two maxima are comparable).
  In the model Keras is faster on {keras_faster} of {len(bpar)} bidirectional configurations (its
  two directions run side by side), by at most {keras_gain:.1f}x ({keras_gain_label}); PyTorch is
  faster where the math dominates (larger layers: Keras reads `W_ih` and multiplies it with B
  columns every step, each direction on half the cores). What the runtimes do not model would
  widen the gap: PyTorch's autograd
  accumulates the recurrent weight gradient step by step (each step's `addmm` backward adds a
  G*H x H product of B columns to the gradient, reading and writing the whole gradient every
  step) where the model has one GEMM of B*T columns per layer; and its backward operators cost
  more than the two per forward operator assumed (see the measurement above). Neither has a
  public figure this work could use.
* The papers' own workload grids and thread settings are not in their available text; the grid
  here is inferred (reports/multicore_cpu). The `up to` figures are maxima over those unknown
  grids, so the model can only say which configurations give them, not which ones they were.

## Closed forms against the simulation

| study | configuration | baseline runtime | advantage (predict) | advantage (simulate) |
|---|---|---|---|---|
{cross_table}

Largest relative difference: {100 * cross_err:.1f}%.
"""
    path.write_text(text)


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (round(v, 9) if isinstance(v, float) else v) for k, v in row.items()}
            )


def main(out_dir: Path | None = None) -> None:
    """Write ``advantage.csv``, ``crosscheck.csv``, the figure and ``README.md`` into ``out_dir``."""
    out = Path(out_dir) if out_dir is not None else HERE
    out.mkdir(parents=True, exist_ok=True)
    machine = load_machine(resolve_machine_path(MACHINE))
    runtimes = {name: load_runtime(name) for name in RUNTIMES}
    rows = advantage_table(machine, runtimes)
    cross = crosscheck_table(machine, runtimes)
    _write_csv(out / "advantage.csv", rows)
    _write_csv(out / "crosscheck.csv", cross)
    _figure(out / "framework_baselines.png", rows)
    _readme(out / "README.md", rows, cross, machine, runtimes)


if __name__ == "__main__":
    main()
