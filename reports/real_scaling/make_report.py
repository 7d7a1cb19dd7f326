"""Real scaling: measured against predicted speed-up of the real executor, and the real wavefront
against PyTorch, from a run of ``benchmarks/at_scale.py``.

Reads ``data/`` (the files ``at_scale.py`` wrote: ``manifest.csv``, ``accuracy.csv``,
``torch_cpu.csv``, ``calibration.yaml``) and writes into ``out_dir`` (default: this folder):

* ``real_scaling.csv``: one row per (workload, policy, workers > 1) with ``workers``,
  ``measured_speedup``, ``predicted_speedup`` and the signed and absolute errors;
* ``errors.csv``: mean and max absolute error by policy and worker count, and over 4-16 workers
  (the target: mean <= 10%, max <= 25%);
* ``torch_comparison.csv``: the wavefront (chunk and helper groups the model chose) against
  ``torch.nn.LSTM``/``GRU`` at equal thread counts (the target: ahead at 8 and 16 threads on at
  least 3 of the 8 workloads);
* ``real_scaling.png`` and ``README.md``.

The predictions are the ones recorded in the run (the simulator on that machine's calibration
file); nothing is recomputed, so the report describes exactly what was measured and predicted
then. Run: ``python reports/real_scaling/make_report.py`` (or ``wpsim report real_scaling``).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import statistics
import sys
import textwrap
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wpsim.hardware import HW_CONFIG_DIR
from wpsim.outputs import atomic_write, write_with

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
TARGET_MEAN, TARGET_MAX = 0.10, 0.25
TARGET_WORKERS = (4, 16)
TORCH_THREADS = (8, 16)
TORCH_TARGET_WORKLOADS = 3
BUSY_FRACTION = 0.05  # other processes' share of the CPU time above which timings are unreliable


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file, or an empty list when the run did not write it."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def read_manifest(path: Path) -> dict[str, str]:
    """``{"section.key": value}`` of ``manifest.csv`` (the last value of a repeated key)."""
    return {f"{r['section']}.{r['key']}": r["value"] for r in read_csv(path)}


def write_csv(path: Path, rows: list[dict[str, Any]], fields: Iterable[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue())


def _float(text: str) -> float:
    return float(text) if text not in ("", None) else float("nan")


def scaling_rows(accuracy: list[dict[str, str]]) -> list[dict[str, Any]]:
    """The measured and predicted speed-ups of every multi-worker configuration."""
    rows = []
    for r in accuracy:
        if r["baseline"] == "True":
            continue
        rows.append({
            "case": r["case"], "cell": r["cell"], "layers": int(r["layers"]),
            "hidden": int(r["hidden"]), "batch": int(r["batch"]), "chunk": int(r["chunk"]),
            "seq_len": int(r["seq_len"]), "policy": r["policy"], "helpers": int(r["helpers"]),
            "workers": int(r["workers"]), "measured_speedup": _float(r["measured_speedup"]),
            "predicted_speedup": _float(r["predicted_speedup"]),
            "signed_error": _float(r["signed_error"]), "rel_error": _float(r["rel_error"]),
            "measured_makespan_s": _float(r["measured_makespan_s"]),
            "predicted_makespan_s": _float(r["predicted_makespan_s"]),
            "task_sim_over_meas": _float(r["task_sim_over_meas"]),
            "foreign_cpu_fraction": _float(r["foreign_cpu_fraction"]),
            "repeats": int(r["repeats"]),
        })  # fmt: skip
    return rows


def error_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and max |error| by (policy, workers), then overall at 4-16 workers with a verdict."""
    groups: dict[tuple[str, int], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["policy"], r["workers"])].append(r)
    out = []
    for (policy, workers), sub in sorted(groups.items()):
        out.append(_summary(policy, str(workers), sub))
    low, high = TARGET_WORKERS
    in_range = [r for r in rows if low <= r["workers"] <= high]
    total = _summary("all", f"{low}-{high}", in_range)
    if in_range:
        met = total["mean_rel_error"] <= TARGET_MEAN and total["max_rel_error"] <= TARGET_MAX
        total["verdict"] = "MET" if met else "MISSED"
    else:
        total["verdict"] = f"not evaluated: no rows at {low}-{high} workers"
    out.append(total)
    return out


def _summary(policy: str, workers: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    errors = [r["rel_error"] for r in rows]
    signed = [r["signed_error"] for r in rows]
    return {
        "policy": policy, "workers": workers, "n": len(rows),
        "mean_rel_error": round(statistics.fmean(errors), 4) if errors else "",
        "max_rel_error": round(max(errors), 4) if errors else "",
        "mean_signed_error": round(statistics.fmean(signed), 4) if signed else "",
        "verdict": "",
    }  # fmt: skip


def torch_rows(torch_cpu: list[dict[str, str]]) -> tuple[list[dict[str, Any]], str]:
    """The torch comparison and the verdict of its target."""
    rows = [{
        "workload": r["workload"], "threads": int(r["threads"]), "chunk": int(r["chunk"]),
        "helpers": int(r["helpers"]), "model_choice": r["model_choice"],
        "exec_s": _float(r["exec_s"]), "torch_s": _float(r["torch_s"]),
        "ratio": _float(r["ratio"]), "exec_ahead": r["exec_ahead"] == "True",
        "max_abs_diff": _float(r["max_abs_diff"]),
        "foreign_cpu_fraction": _float(r["foreign_cpu_fraction"]),
    } for r in torch_cpu]  # fmt: skip
    by_workload: dict[str, dict[int, bool]] = defaultdict(dict)
    for r in rows:
        by_workload[r["workload"]][r["threads"]] = r["exec_ahead"]
    measured = [w for w, t in by_workload.items() if all(n in t for n in TORCH_THREADS)]
    if not measured:
        threads = sorted({r["threads"] for r in rows})
        return rows, (f"not evaluated: no workload measured at {' and '.join(map(str, TORCH_THREADS))}"
                      f" threads (this run: {threads or 'none'})")  # fmt: skip
    ahead = [w for w in measured if all(by_workload[w][n] for n in TORCH_THREADS)]
    verdict = "MET" if len(ahead) >= TORCH_TARGET_WORKLOADS else "MISSED"
    return rows, (f"{verdict}: ahead at {' and '.join(map(str, TORCH_THREADS))} threads on "
                  f"{len(ahead)} of {len(measured)} workloads ({', '.join(ahead) or 'none'})")  # fmt: skip


def main(out_dir: Path | None = None) -> None:
    """Write the report's CSVs, figure and README into ``out_dir`` (default: this folder)."""
    out = Path(out_dir) if out_dir is not None else HERE
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(DATA / "manifest.csv")
    if not manifest:
        raise FileNotFoundError(f"{DATA / 'manifest.csv'}: no at_scale run recorded")
    rows = scaling_rows(read_csv(DATA / "accuracy.csv"))
    errors = error_rows(rows)
    torch, torch_verdict = torch_rows(read_csv(DATA / "torch_cpu.csv"))
    write_csv(out / "real_scaling.csv", rows, rows[0] if rows else ["case"])
    write_csv(out / "errors.csv", errors, errors[0])
    write_csv(out / "torch_comparison.csv", torch, torch[0] if torch else ["workload"])
    write_with(out / "real_scaling.png", lambda path: _figure(path, rows, torch, manifest))
    atomic_write(out / "README.md", _readme(manifest, rows, errors, torch, torch_verdict))


def _figure(path: Path, rows, torch, manifest) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = sorted({r["policy"] for r in rows}) or ["(no data)"]
    ncols = max(len(policies), 2)
    fig, axes = plt.subplots(2, ncols, figsize=(3.4 * ncols, 7.2), squeeze=False)
    cases = sorted({r["case"] for r in rows})
    colors = {case: plt.cm.tab10(i % 10) for i, case in enumerate(cases)}
    for ax, policy in zip(axes[0], policies, strict=False):
        for case in cases:
            sub = sorted((r for r in rows if r["policy"] == policy and r["case"] == case),
                         key=lambda r: r["workers"])  # fmt: skip
            if not sub:
                continue
            x = [1] + [r["workers"] for r in sub]
            ax.plot(x, [1] + [r["predicted_speedup"] for r in sub], "-", color=colors[case],
                    lw=1)  # fmt: skip
            ax.plot(x, [1] + [r["measured_speedup"] for r in sub], "o", color=colors[case],
                    ms=4, label=case)  # fmt: skip
        ax.set_title(policy, fontsize=9)
        ax.set_xlabel("workers")
        ax.set_ylabel("speed-up")
    for ax in axes[0][len(policies) :]:
        ax.axis("off")
    if rows:
        axes[0][0].legend(fontsize=5, title="measured (o), predicted (-)", title_fontsize=6)
    ax = axes[1][0]
    for case in cases:
        sub = [r for r in rows if r["case"] == case]
        ax.plot([r["measured_speedup"] for r in sub], [r["predicted_speedup"] for r in sub], "o",
                color=colors[case], ms=3)  # fmt: skip
    top = max([1.0] + [max(r["measured_speedup"], r["predicted_speedup"]) for r in rows]) * 1.1
    ax.plot([0, top], [0, top], "k-", lw=0.8)
    for factor in (1 - TARGET_MAX, 1 + TARGET_MAX):
        ax.plot([0, top], [0, top * factor], "k:", lw=0.6)
    ax.set_xlabel("measured speed-up")
    ax.set_ylabel("predicted speed-up")
    ax.set_title(f"all configurations (dotted: +-{100 * TARGET_MAX:.0f}%)", fontsize=9)
    ax = axes[1][1]
    labels = [f"{r['workload']} {r['threads']}t" for r in torch]
    ax.barh(range(len(torch)), [r["ratio"] for r in torch], color="tab:blue")
    ax.axvline(1.0, color="black", lw=0.8)
    ax.set_yticks(range(len(torch)), labels, fontsize=6)
    ax.set_xlabel("wavefront time / torch time (< 1: ahead)")
    ax.set_title("real wavefront vs torch, same threads", fontsize=9)
    for ax in axes[1][2:]:
        ax.axis("off")
    fig.suptitle(f"{manifest.get('machine.cpu_model', '?')}, {manifest.get('machine.usable_cpus', '?')}"
                 f" CPUs, {manifest.get('run.date_utc', '?')[:10]}", fontsize=9)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _busy_note(rows, torch, manifest) -> str:
    """How much of the CPU other processes took while measuring (kernel.py's CpuMeter)."""
    means = {}
    for label, table in (("accuracy", rows), ("torch", torch)):
        shares = [
            r["foreign_cpu_fraction"] for r in table if not math.isnan(r["foreign_cpu_fraction"])
        ]
        if shares:
            means[label] = statistics.fmean(shares)
    if not means:
        return ""
    if max(means.values()) > BUSY_FRACTION:
        verdict = (f"**above {100 * BUSY_FRACTION:.0f}%: the machine was busy, these timings are "
                   "unreliable**")  # fmt: skip
    else:
        verdict = "an idle machine"
    shares_text = ", ".join(f"{label} {100 * share:.0f}%" for label, share in means.items())
    load = manifest.get("machine.load_average_1min", "?")
    return textwrap.fill(
        f"Other processes' share of the CPU time while measuring (mean over units): {shares_text}; "
        f"load average at the start {load}: {verdict}.",
        width=100,
    )


def _gib(text: str) -> str:
    return f"{int(text) / 2**30:.0f} GiB" if text.isdigit() else "? GiB"


def _pct(value: Any) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, float) else "-"


def device_run() -> dict[str, Any]:
    """``DEVICE_RUN`` of ``benchmarks/at_scale.py``: the one command, kept in one place."""
    spec = importlib.util.spec_from_file_location(
        "at_scale_for_report", HW_CONFIG_DIR.parent / "benchmarks" / "at_scale.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module.DEVICE_RUN


def _readme(manifest, rows, errors, torch, torch_verdict) -> str:
    device = device_run()
    max_workers = max((r["workers"] for r in rows), default=1)
    cpus = manifest.get("machine.usable_cpus", "?")
    machine = f"{manifest.get('machine.cpu_model', '?')}, {cpus} CPUs"
    date = manifest.get("run.date_utc", "?")
    if max_workers < TARGET_WORKERS[0]:
        status = textwrap.fill(
            f"**Status: the scale run is pending on a 16-core machine.** The data here is a small "
            f"run at 1-{max_workers} workers on {machine} ({date}), committed so that the pipeline "
            "(`benchmarks/at_scale.py` -> `data/` -> this report) is exercised end to end. It says "
            "nothing about 4-16 workers: the targets below are not evaluated.",
            width=100,
        )
    else:
        status = f"Data: a run at 1-{max_workers} workers on {machine} ({date})."
    total = errors[-1]
    busy = _busy_note(rows, torch, manifest)
    rounds = "/".join(sorted({str(r["repeats"]) for r in rows})) or "the"
    error_table = "\n".join(
        f"| {e['policy']} | {e['workers']} | {e['n']} | {_pct(e['mean_rel_error'])} | "
        f"{_pct(e['max_rel_error'])} | {_pct(e['mean_signed_error'])} |"
        for e in errors[:-1]
    )
    torch_table = "\n".join(
        f"| {r['workload']} | {r['threads']} | {r['chunk']} | {r['helpers']} | "
        f"{r['exec_s'] * 1e3:.2f} | {r['torch_s'] * 1e3:.2f} | {r['ratio']:.2f} |"
        for r in torch
    )
    phases = "\n".join(
        f"| {name} | {manifest.get(f'phase:{name}.status', 'not run')} | "
        f"{manifest.get(f'phase:{name}.wall_s', '-')} |"
        for name in ("calibrate", "accuracy", "torch", "gpu")
    )
    versions = ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in manifest.items()
                         if k.startswith("versions.") and k != "versions.blas")  # fmt: skip
    return f"""# Real scaling: the executor and the model at 1-16 workers, and against PyTorch

{status}

Regenerate: `wpsim report real_scaling` (or `python reports/real_scaling/make_report.py`). Inputs:
`data/` as written by `benchmarks/at_scale.py --out DIR` (`manifest.csv`: machine, library
versions, exact commands, each phase's budget and status; `accuracy.csv`; `torch_cpu.csv`;
`calibration.yaml`: the machine file of that computer, by `wpsim calibrate --quick`, which every
prediction here used). Outputs: `real_scaling.csv` (per workload, policy and worker count:
`workers`, `measured_speedup`, `predicted_speedup`, errors), `errors.csv`,
`torch_comparison.csv`, `real_scaling.png`.

## The scale run

On the 16-core machine (its `python3` lacks simpy and pydantic): make the wheels here once with
`bash benchmarks/at_scale_wheels.sh` (into the ignored `.whl/`, 2.8 MB), then one device `run`
with `carry: {json.dumps(device["carry"])}` and `timeout_s: {device["timeout_s"]}`:

```
{device["command"]}
```

It stops by itself within the 480 s budget (details in the docstring of `benchmarks/at_scale.py`).
Copy `manifest.csv`, `calibration.yaml`, `accuracy.csv` and `torch_cpu.csv` from what comes back
into `data/` (and `manifest.csv`, `gpu.csv` into `reports/gpu_validation/data/`) and regenerate.

![scaling](real_scaling.png)

## Run

Machine: {machine}; {_gib(manifest.get("machine.memory_bytes", ""))} of memory;
{manifest.get("machine.platform", "?")}. Date (UTC): {date}. Budget:
{manifest.get("run.budget_s", "?")} s, used {manifest.get("run.wall_s", "?")} s.
Versions: {versions}; BLAS: {manifest.get("versions.blas", "?")}.

Command: `{manifest.get("run.command", "?")}`

{busy}

| phase | status | wall (s) |
|---|---|---|
{phases}

## Predicted against measured speed-up

Each speed-up is against the 1-worker sequential run of the same engine (measured against
measured, predicted against predicted), the median of {rounds} interleaved rounds
(`wpsim.validate.validate`, as in `benchmarks/accuracy.py`); error = (predicted - measured) /
measured. `wavefront-h2`: the wavefront on groups of 2 helper cores, run where there are more
workers than layers.

| policy | workers | n | mean abs error | max abs error | mean signed error |
|---|---|---|---|---|---|
{error_table}

Target (4-16 workers): mean <= {100 * TARGET_MEAN:.0f}%, max <= {100 * TARGET_MAX:.0f}%:
**{total["verdict"]}** (n = {total["n"]}, mean {_pct(total["mean_rel_error"])}, max
{_pct(total["max_rel_error"])}).

## The real wavefront against PyTorch

The executor's wavefront (chunk and helper-group size the simulator predicts fastest on the
calibration file) against `torch.nn.LSTM`/`GRU` on the same number of threads, same parameters
and input (outputs compared), minima of interleaved runs; ratio = wavefront / torch (< 1: the
wavefront is ahead).

| workload | threads | chunk | helpers | wavefront (ms) | torch (ms) | ratio |
|---|---|---|---|---|---|---|
{torch_table}

Target (ahead at 8 and 16 threads on at least {TORCH_TARGET_WORKLOADS} of the 8 workloads):
**{torch_verdict}**.
"""


if __name__ == "__main__":
    main()
