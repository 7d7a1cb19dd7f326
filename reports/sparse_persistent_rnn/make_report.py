"""Sparse persistent RNNs (Zhu et al., ICLR 2018) on the Tesla V100 model.

Compares, per recurrent step, four algorithms on ``hw_configs/v100.yaml``: dense GEMM per step
(cuBLAS), sparse GEMM per step (CSR, cuSPARSE), the dense persistent kernel (global barrier) and the
sparse persistent kernel (timestamp flags, bank-aware layout, wide loads), over density 0.05-1.0,
hidden 1024-5760 and batch 1-32. Published: over 6x faster than the next best algorithm at hidden
2304, batch 4, density 30%.

Writes ``sweep.csv``, ``ablation.csv``, ``sparse_persistent_rnn.png`` and ``README.md`` into
``out_dir`` (default: this folder). Run: ``python reports/sparse_persistent_rnn/make_report.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from wpsim.accel.gpu import (
    DIAMOS_2016,
    ZHU_2018,
    PersistentKernel,
    gemm_step,
    max_persistent_hidden,
    persistent_step,
)
from wpsim.accel.machines import GpuMachine
from wpsim.hardware import load_machine, resolve_machine_path
from wpsim.workload import Workload

HERE = Path(__file__).resolve().parent
DENSITIES = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
HIDDENS = [1024, 1152, 1536, 1792, 2048, 2304, 2560, 3072, 3584, 4096, 4608, 5120, 5760]
BATCHES = [1, 2, 4, 8, 16, 32]
HEADLINE = {"hidden": 2304, "batch": 4, "density": 0.3}
ALGORITHMS = ["dense_gemm", "sparse_gemm", "dense_persistent", "sparse_persistent"]


def layer(hidden: int, batch: int, density: float, dtype: str = "float32") -> Workload:
    """A simple recurrent layer (the paper's benchmark cell, inferred), FP32 (inferred)."""
    return Workload(cell="rnn", hidden=hidden, input=hidden, seq_len=256, batch=batch,
                    density=density, dtype=dtype)  # fmt: skip


def step_times(machine: GpuMachine, hidden: int, batch: int, density: float,
               dtype: str = "float32", sparse_kernel: PersistentKernel = ZHU_2018,
               ) -> dict[str, float | None]:  # fmt: skip
    """Seconds per recurrent step of each algorithm (None: the weights do not fit on chip)."""
    sparse = layer(hidden, batch, density, dtype)
    dense = layer(hidden, batch, 1.0, dtype)
    dp = persistent_step(machine, dense, DIAMOS_2016)
    sp = persistent_step(machine, sparse, sparse_kernel)
    return {
        "dense_gemm": gemm_step(machine, dense)["step_s"],
        "sparse_gemm": gemm_step(machine, sparse, sparse=True)["step_s"],
        "dense_persistent": dp["step_s"] if dp["fits"] else None,
        "sparse_persistent": sp["step_s"] if sp["fits"] else None,
    }


def speedup_over_next_best(times: dict[str, float | None]) -> tuple[float | None, str]:
    others = {k: v for k, v in times.items() if k != "sparse_persistent" and v is not None}
    best = min(others, key=others.get)
    if times["sparse_persistent"] is None:
        return None, best
    return others[best] / times["sparse_persistent"], best


def main(out_dir: Path | None = None) -> None:
    """Write the data, the figure and the README of this reproduction into ``out_dir``."""
    out = Path(out_dir) if out_dir is not None else HERE
    out.mkdir(parents=True, exist_ok=True)
    machine = load_machine(resolve_machine_path("v100"))

    rows = []
    for hidden in HIDDENS:
        for batch in BATCHES:
            for density in DENSITIES:
                times = step_times(machine, hidden, batch, density)
                speedup, best = speedup_over_next_best(times)
                row = {"hidden": hidden, "batch": batch, "density": density}
                row.update({f"{k}_us": (round(v * 1e6, 4) if v is not None else "")
                            for k, v in times.items()})  # fmt: skip
                row["next_best"] = best
                row["sparse_persistent_speedup"] = round(speedup, 4) if speedup else ""
                rows.append(row)
    with open(out / "sweep.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    variants = [
        ("timestamp flags + bank-aware + wide loads (Zhu et al.)", ZHU_2018),
        ("global barrier + bank-aware + wide loads", PersistentKernel("barrier", True, True)),
        ("flags, no bank-aware layout", PersistentKernel("flags", False, True)),
        ("flags, no wide loads", PersistentKernel("flags", True, False)),
        ("none: barrier, random layout, narrow loads", PersistentKernel("barrier", False, False)),
    ]
    h = HEADLINE
    ablation = []
    for label, kernel in variants:
        step = persistent_step(machine, layer(h["hidden"], h["batch"], h["density"]), kernel)
        ablation.append({"kernel": label, "step_us": round(step["step_s"] * 1e6, 4),
                         "issue_factor": round(step["issue_factor"], 4),
                         "exposed_latency_us": round(step["latency_s"] * 1e6, 4)})  # fmt: skip
    with open(out / "ablation.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(ablation[0]))
        writer.writeheader()
        writer.writerows(ablation)

    _figure(out / "sparse_persistent_rnn.png", machine, rows, ablation)
    _readme(out / "README.md", machine, rows, ablation)


def _pick(rows, **fixed):
    return [r for r in rows if all(r[k] == v for k, v in fixed.items())]


def _figure(path: Path, machine: GpuMachine, rows, ablation) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(13, 8.5))
    h = HEADLINE
    ax = axes[0][0]
    series = _pick(rows, hidden=h["hidden"], batch=h["batch"])
    for name in ALGORITHMS:
        xs = [r["density"] for r in series if r[f"{name}_us"] != ""]
        ys = [r[f"{name}_us"] for r in series if r[f"{name}_us"] != ""]
        ax.plot(xs, ys, "o-", ms=3, label=name.replace("_", " "))
    ax.set_yscale("log")
    ax.set_xlabel("density")
    ax.set_ylabel("time per step (us)")
    ax.set_title(f"hidden {h['hidden']}, batch {h['batch']} (missing: does not fit on chip)")
    ax.axvline(h["density"], color="grey", lw=0.6, ls=":")
    ax.legend(fontsize=8)

    ax = axes[0][1]
    for density in (0.05, 0.1, 0.3):
        series = _pick(rows, batch=h["batch"], density=density)
        xs = [r["hidden"] for r in series if r["sparse_persistent_speedup"] != ""]
        ys = [
            r["sparse_persistent_speedup"] for r in series if r["sparse_persistent_speedup"] != ""
        ]
        ax.plot(xs, ys, "o-", ms=3, label=f"density {density:g}")
    ax.axhline(6, color="grey", lw=0.8, ls="--", label="published: > 6x at 2304/4/0.3")
    ax.axhline(1, color="black", lw=0.5)
    ax.set_xlabel("hidden size")
    ax.set_ylabel("sparse persistent / next best (x)")
    ax.set_title(f"batch {h['batch']}: speed-up until the layer no longer fits")
    ax.legend(fontsize=8)

    ax = axes[1][0]
    for density in (0.1, 0.3):
        series = _pick(rows, hidden=h["hidden"], density=density)
        xs = [r["batch"] for r in series if r["sparse_persistent_speedup"] != ""]
        ys = [
            r["sparse_persistent_speedup"] for r in series if r["sparse_persistent_speedup"] != ""
        ]
        ax.plot(xs, ys, "o-", ms=3, label=f"density {density:g}")
    ax.set_xscale("log", base=2)
    ax.axhline(1, color="black", lw=0.5)
    ax.set_xlabel("batch")
    ax.set_ylabel("sparse persistent / next best (x)")
    ax.set_title(f"hidden {h['hidden']}: speed-up against batch")
    ax.legend(fontsize=8)

    ax = axes[1][1]
    labels = [a["kernel"].split(" (")[0] for a in ablation]
    ax.barh(range(len(ablation)), [a["step_us"] for a in ablation])
    ax.set_yticks(range(len(ablation)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("time per step (us)")
    ax.set_title("optimisations at 2304 / 4 / 0.3")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _readme(path: Path, machine: GpuMachine, rows, ablation) -> None:
    h = HEADLINE
    times = step_times(machine, h["hidden"], h["batch"], h["density"])
    speedup, best = speedup_over_next_best(times)
    sp = persistent_step(machine, layer(**h), ZHU_2018)
    gemm = gemm_step(machine, layer(h["hidden"], h["batch"], 1.0))
    fp16 = step_times(machine, h["hidden"], h["batch"], h["density"], dtype="float16")
    fp16_speedup, fp16_best = speedup_over_next_best(fp16)
    cuda_eff = 1.30 / 6.144  # plateau of the public CUDA persistent kernel, same TitanX figure
    slow = machine.model_copy(
        update={"persistent": machine.persistent.model_copy(update={"efficiency": cuda_eff})}
    )
    slow_speedup, _ = speedup_over_next_best(step_times(slow, **h))

    def fmt(v):
        return "does not fit" if v is None else f"{v * 1e6:.2f}"

    head_table = "\n".join(
        f"| {name.replace('_', ' ')} | {fmt(times[name])} | {fmt(fp16[name])} |"
        for name in ALGORITHMS
    )
    dense_max = max_persistent_hidden(machine, layer(1024, 1, 1.0))
    size_rows = []
    for density in (0.05, 0.1, 0.2, 0.3):
        hmax = max_persistent_hidden(machine, layer(1024, 1, density))
        hfit = max(x for x in HIDDENS + [hmax] if x <= hmax)
        t = step_times(machine, hmax, h["batch"], density)
        s, b = speedup_over_next_best(t)
        size_rows.append(f"| {density:g} | {hmax} | {(hmax / dense_max) ** 2:.1f}x | "
                         f"{s:.1f}x over {b.replace('_', ' ')} |")  # fmt: skip
        del hfit
    size_table = "\n".join(size_rows)
    h10 = max_persistent_hidden(machine, layer(1024, 1, 0.1))
    per_weight = persistent_step(machine, layer(h10, 1, 0.1))["weight_bytes"] / h10**2
    abl_table = "\n".join(
        f"| {a['kernel']} | {a['step_us']:.2f} | {a['issue_factor']:.2f} | "
        f"{a['exposed_latency_us']:.2f} |"
        for a in ablation
    )
    density_row = _pick(rows, hidden=h["hidden"], batch=h["batch"])

    def cell(v):
        return "-" if v == "" else f"{v:.2f}"

    density_table = "\n".join(
        f"| {r['density']:g} | "
        + " | ".join(cell(r[f"{n}_us"]) for n in ALGORITHMS)
        + f" | {cell(r['sparse_persistent_speedup'])} |"
        for r in density_row
    )
    crossover = max(r["density"] for r in density_row
                    if r["sparse_gemm_us"] < r["dense_gemm_us"])  # fmt: skip
    losing = [r for r in rows if r["sparse_persistent_speedup"] != ""
              and r["sparse_persistent_speedup"] < 1.0]  # fmt: skip
    lose_dp = [r for r in losing if r["next_best"] == "dense_persistent"]
    lose_sg = [r for r in losing if r["next_best"] == "sparse_gemm"]
    nofit = [r for r in rows if r["sparse_persistent_speedup"] == ""]
    text = f"""# Sparse persistent RNNs on the Tesla V100 (Zhu et al., ICLR 2018)

Regenerate: `python reports/sparse_persistent_rnn/make_report.py` (or `wpsim report`). Files:
`make_report.py`, `sweep.csv` (every algorithm's step time over hidden x batch x density),
`ablation.csv`, `sparse_persistent_rnn.png`. The model is `wpsim.accel.gpu` on
`hw_configs/v100.yaml` (80 SMs, 1.53 GHz, 15.7 TFLOP/s FP32, 20 MiB of registers, 6 MB L2, HBM2
{machine.memory.bandwidth_Bps / 1e9:.0f} GB/s sustained); its GEMM efficiency and bandwidth are the
V100's own kernel measurements (DeepBench's GEMM benchmark), its other non-spec values are shared
with every GPU file (`tests/test_gpu.py` checks it); none is set for this figure.

Inferred setting (the paper's text available to us does not state it): a simple recurrent layer,
FP32 weights with 16-bit column indices, time per recurrent step (the input projections are the
same for every algorithm and excluded). Algorithms: **dense GEMM** per step (cuBLAS: weights from L2
if they fit its 6 MB, else DRAM, + 2 kernel launches), **sparse GEMM** per step (CSR with 4-byte
indices at half the bandwidth), **dense persistent** (weights in registers, one global barrier per
step, as cuDNN's persistent kernel) and **sparse persistent** (rows of non-zeros per warp in
registers, per-producer timestamp flags, bank-aware layout, wide loads).

![sweeps](sparse_persistent_rnn.png)

## Headline: hidden 2304, batch 4, density 30%

| | published | model |
|---|---|---|
| sparse persistent over the next best | **over 6x** | **{speedup:.1f}x** (next best: {best.replace("_", " ")}) |

| algorithm | model FP32 (us/step) | model FP16 (us/step) |
|---|---|---|
{head_table}

The sparse layer keeps {sp["weight_bytes"] / 1e6:.1f} MB on chip (rows of 691 non-zeros padded
to 704, 6 bytes each) of {sp["capacity_bytes"] / 1e6:.1f} MB usable registers; the dense layer
needs {2304**2 * 4 / 1e6:.1f} MB and is not persistent (largest dense FP32 layer: {dense_max}).
The sparse step is throughput-bound: {sp["compute_s"] * 1e6:.2f} us of FMAs at
{machine.persistent.efficiency:.2f} x {sp["issue_factor"]:.2f} of peak (4 FMAs and 1 wide
shared-memory load per stored weight), against {sp["bcast_s"] * 1e6:.2f} us for every SM to read
h from L2 and {sp["latency_s"] * 1e6:.2f} us of exposed synchronisation. Dense GEMM streams
{gemm["weight_bytes"] / 1e6:.1f} MB from DRAM each step ({gemm["memory_s"] * 1e6:.1f} us +
{gemm["launch_s"] * 1e6:.0f} us of launches).

**Gap.** The model's {speedup:.1f}x is consistent with "over 6x" but about
{speedup / 6:.1f} times larger. Mechanisms that would close it, none of which we tune:

* the efficiency of the persistent FMA stream is the one shared value calibrated on Diamos et
  al.'s hand-written SASS kernel (45% of peak). Zhu et al.'s kernel is CUDA C with per-entry index
  arithmetic; the public CUDA C persistent kernel on the same TitanX figure plateaus at 1.30
  TFLOP/s = {cuda_eff:.0%} of peak. With that efficiency the model gives **{slow_speedup:.1f}x**
  (a sensitivity, not the reported number: it would be a per-case choice);
* the dtype: if the paper's weights were FP16, the dense persistent kernel fits
  (2304^2 x 2 B = 10.6 MB) and becomes the next best, and the model gives
  {fp16_speedup:.1f}x over {fp16_best.replace("_", " ")}, below 6x. FP32 is the reading consistent
  with "over 6x";
* the model has no load imbalance between warps (rows of a randomly pruned matrix differ in
  non-zeros by about sqrt(691) = 26, 4% of a row) and no cost for decoding indices beyond the load.

## Density (hidden 2304, batch 4), us per step

| density | dense GEMM | sparse GEMM | dense persistent | sparse persistent | speed-up over next best |
|---|---|---|---|---|---|
{density_table}

Sparse GEMM beats dense GEMM only up to density {crossover:g}: CSR doubles the bytes per non-zero
(value + 4-byte index) and reaches half the bandwidth (`sparse_bandwidth_efficiency`, shared); at
10% and below its 4-5 MB fit the 6 MB L2 and it gains the L2's bandwidth. The sparse persistent
kernel stops fitting above density 0.5 (rows of 1382 non-zeros x 6 B exceed the registers), and
at 5-10% it is bound by every SM reading h from L2 (1.37 us), not by its math.

## Larger models on chip

| density | largest sparse persistent hidden | parameters vs largest dense ({dense_max}) | speed-up there (batch 4) |
|---|---|---|---|
{size_table}

Published: "models of over 5x the size fit on a GPU for a speed-up of 2x". The model reproduces
the size claim at density 10% or less (at 10%, 6 bytes per stored entry and rows padded to 32
entries cost {per_weight:.2f} B per dense-equivalent weight, against 4 B dense); its speed-up
there is larger than 2x for the same reason as the headline gap (the alternatives stream their
weights from DRAM or L2 every step).

## Where sparse persistent loses

Over the {len(rows)} points of the sweep (hidden x batch x density), the sparse layer does not
fit on chip at {len(nofit)} (large hidden at high density) and loses to another algorithm at
{len(losing)}:

* {len(lose_dp)} to the dense persistent kernel, all at density 0.8-0.9 with hidden <= 1792 (where
  the dense layer fits): 6 bytes and an index load per stored weight cost more than the skipped
  zeros save;
* {len(lose_sg)} to sparse GEMM, all at batch 32 and density <= 10%: the persistent kernel has every
  SM read all of h (80 x 32 x H x 4 B per step from L2), while the tiny CSR matrix sits in L2 and
  the GEMM reads h once.

## Which optimisation buys what (hidden 2304, batch 4, density 30%)

| kernel | us per step | issue factor | exposed latency (us) |
|---|---|---|---|
{abl_table}

At batch 4 the step is throughput-bound, so the synchronisation mechanism matters little here
(timestamps matter at batch 1, where one column's latency is the whole step); the bank-aware
layout (3.5x fewer serialised shared-memory wavefronts per load) and wide loads (one 16-byte load
for the 4 batch columns instead of 4) raise the share of issue slots that are FMAs. The paper
reports the same ranking qualitatively; it gives no per-optimisation numbers in the text we have.

Not reproduced: the appendix case studies (NMT and speech layers "up to 3x faster"): their layer
shapes are not in the material we have.
"""
    path.write_text(text)


if __name__ == "__main__":
    main()
