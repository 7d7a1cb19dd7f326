"""GPU validation: cuDNN's LSTM/GRU on an H100/H200 against wpsim's GPU model.

Reads ``data/`` (``manifest.csv`` and ``gpu.csv`` of a run of ``benchmarks/at_scale.py``) and
writes into ``out_dir`` (default: this folder):

* ``gpu_validation.csv``: one row per (cell, precision, shape, mode) with the measured median
  time (CUDA events), wpsim's prediction, recomputed now from the machine file the run named
  (``hw_configs/h100_sxm.yaml`` or ``h200_sxm.yaml``, built from spec sheets) so that a change of
  the GPU model shows here without a new GPU run, the prediction recorded in the run, the error
  and the regime of one recurrent step (launch-, compute- or memory-bound; ``W_hh`` in L2 or
  DRAM), which names the mechanism behind each miss;
* ``errors.csv``: the median and max absolute error by mode and precision, and over the grid
  (the target: median <= 25%);
* ``gpu_validation.png`` and ``README.md``.

Run: ``python reports/gpu_validation/make_report.py`` (or ``wpsim report gpu_validation``).
"""

from __future__ import annotations

import csv
import importlib.util
import io
import statistics
import textwrap
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wpsim.hardware import HW_CONFIG_DIR, load_machine
from wpsim.outputs import atomic_write, write_with

HERE = Path(__file__).resolve().parent
ROOT = HW_CONFIG_DIR.parent  # the repository: benchmarks/ and the machine files' paths
DATA = HERE / "data"
TARGET_MEDIAN = 0.25


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows of a CSV file, or an empty list when the run did not write it."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, rows: list[dict[str, Any]], fields: Iterable[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, buffer.getvalue())


def _float(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def _predictor():
    """``predictions`` of ``benchmarks/at_scale_gpu.py``: one definition of what is predicted."""
    spec = importlib.util.spec_from_file_location(
        "at_scale_gpu_for_report", ROOT / "benchmarks" / "at_scale_gpu.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.predictions


def regime(row: dict[str, Any]) -> str:
    """What bounds one recurrent step in the model: launches, arithmetic or weight reads.

    >>> regime({"step_launch_s": 6e-6, "step_compute_s": 1e-6, "step_memory_s": 2e-6,
    ...         "weights_level": "L2"})
    'launch'
    >>> regime({"step_launch_s": 6e-6, "step_compute_s": 1e-6, "step_memory_s": 9e-6,
    ...         "weights_level": "DRAM"})
    'memory (DRAM)'
    """
    launch, compute, memory = (float(row[k]) for k in ("step_launch_s", "step_compute_s",
                                                        "step_memory_s"))  # fmt: skip
    if launch >= max(compute, memory):
        return "launch"
    return "compute" if compute >= memory else f"memory ({row['weights_level']})"


def validation_rows(gpu: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Measured and (re)predicted times of every row of the run."""
    predict = _predictor()
    machines: dict[str, Any] = {}
    by_unit: dict[tuple, dict[str, dict]] = {}  # both modes of a unit come from one call
    rows = []
    for r in gpu:
        shape = tuple(int(r[k]) for k in ("hidden", "batch", "layers", "seq_len"))
        path = r["machine_file"]
        if path not in machines:
            machines[path] = load_machine(ROOT / path if not Path(path).is_absolute() else path)
        key = (path, r["cell"], r["precision"], shape)
        if key not in by_unit:
            by_unit[key] = predict(machines[path], r["cell"], r["precision"], shape)
        now = by_unit[key][r["mode"]]
        measured = _float(r["measured_median_s"])
        predicted = now["predicted_s"] if now["predicted_s"] != "" else None
        error = predicted / measured - 1.0 if measured and predicted else None
        gemm = now["predicted_gemm_s"] if now["predicted_gemm_s"] != "" else None
        rows.append({
            "cell": r["cell"], "precision": r["precision"], "hidden": shape[0],
            "batch": shape[1], "layers": shape[2], "seq_len": shape[3], "mode": r["mode"],
            "measured_s": measured, "measured_min_s": _float(r["measured_min_s"]),
            "predicted_s": predicted, "predicted_gemm_s": gemm,
            "predicted_at_run_s": _float(r["predicted_s"]),
            "error": error, "abs_error": abs(error) if error is not None else None,
            "gemm_error": gemm / measured - 1.0 if measured and gemm else None,
            "regime": regime(now), "machine_file": path, "device": r["device"],
            "status": r["status"],
        })  # fmt: skip
    return rows


def error_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median and max |error| by (mode, precision), then over the grid with the verdict."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if r["abs_error"] is not None:
            groups[(r["mode"], r["precision"])].append(r["abs_error"])
    out = [
        _summary(mode, precision, errors) for (mode, precision), errors in sorted(groups.items())
    ]
    everything = [e for errors in groups.values() for e in errors]
    total = _summary("all", "all", everything)
    if everything:
        total["verdict"] = "MET" if total["median_abs_error"] <= TARGET_MEDIAN else "MISSED"
    else:
        total["verdict"] = "not evaluated: no GPU measurements in this run"
    return [*out, total]


def _summary(mode: str, precision: str, errors: list[float]) -> dict[str, Any]:
    return {
        "mode": mode, "precision": precision, "n": len(errors),
        "median_abs_error": round(statistics.median(errors), 4) if errors else "",
        "max_abs_error": round(max(errors), 4) if errors else "",
        "verdict": "",
    }  # fmt: skip


def main(out_dir: Path | None = None) -> None:
    """Write the report's CSVs, figure and README into ``out_dir`` (default: this folder)."""
    out = Path(out_dir) if out_dir is not None else HERE
    out.mkdir(parents=True, exist_ok=True)
    manifest = {f"{r['section']}.{r['key']}": r["value"] for r in read_csv(DATA / "manifest.csv")}
    gpu = read_csv(DATA / "gpu.csv")
    if not gpu:
        raise FileNotFoundError(f"{DATA / 'gpu.csv'}: no at_scale GPU rows recorded")
    rows = validation_rows(gpu)
    errors = error_rows(rows)
    write_csv(out / "gpu_validation.csv", [{k: _cell(v) for k, v in r.items()} for r in rows],
              rows[0])  # fmt: skip
    write_csv(out / "errors.csv", errors, errors[0])
    write_with(out / "gpu_validation.png", lambda path: _figure(path, rows))
    atomic_write(out / "README.md", _readme(manifest, rows, errors))


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else value


def _figure(path: Path, rows: list[dict[str, Any]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    markers = {"fp32": "o", "fp16": "s", "tf32": "^"}
    colors = {"lstm": "tab:blue", "gru": "tab:orange"}
    for ax, mode in zip(axes, ("forward", "train"), strict=True):
        sub = [r for r in rows if r["mode"] == mode]
        measured = [r for r in sub if r["measured_s"] and r["predicted_s"]]
        if measured:
            for r in measured:
                ax.loglog(r["measured_s"] * 1e3, r["predicted_s"] * 1e3,
                          markers.get(r["precision"], "o"), color=colors[r["cell"]], ms=4)  # fmt: skip
            values = [v * 1e3 for r in measured for v in (r["measured_s"], r["predicted_s"])]
            low, high = min(values) / 1.5, max(values) * 1.5
            ax.loglog([low, high], [low, high], "k-", lw=0.8)
            for factor in (1 - TARGET_MEDIAN, 1 + TARGET_MEDIAN):
                ax.loglog([low, high], [low * factor, high * factor], "k:", lw=0.6)
            ax.set_xlabel("measured, cuDNN (ms)")
            ax.set_ylabel("predicted, wpsim streams (ms)")
        else:
            h_sweep = sorted((r for r in sub if r["batch"] == 16 and r["layers"] == 2
                              and r["seq_len"] == 100 and r["predicted_s"]),
                             key=lambda r: r["hidden"])  # fmt: skip
            for cell in colors:
                for precision, marker in markers.items():
                    line = [r for r in h_sweep if r["cell"] == cell and r["precision"] == precision]
                    if line:
                        ax.semilogy([r["hidden"] for r in line],
                                    [r["predicted_s"] * 1e3 for r in line], marker + "-",
                                    color=colors[cell], ms=4, label=f"{cell} {precision}")  # fmt: skip
            ax.set_xlabel("hidden (batch 16, 2 layers, 100 steps)")
            ax.set_ylabel("predicted (ms)")
            ax.text(0.5, 0.95, "no GPU measurements yet: predictions only",
                    transform=ax.transAxes, ha="center", va="top", fontsize=8)  # fmt: skip
            if h_sweep:
                ax.legend(fontsize=7)
        ax.set_title(f"{mode} (o fp32, s fp16; blue LSTM, orange GRU)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _ms(value: float | None) -> str:
    return f"{value * 1e3:.3f}" if value is not None else "-"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:+.0f}%"


def _readme(manifest: dict[str, str], rows, errors) -> str:
    measured = [r for r in rows if r["measured_s"] is not None]
    devices = sorted({r["device"] for r in rows})
    files = sorted({r["machine_file"] for r in rows})
    date = manifest.get("run.date_utc", "?")
    if not measured:
        status = textwrap.fill(
            f"**Status: the GPU run is pending on the device machine (an H100 or H200).** The rows "
            f"here come from a run on a computer without CUDA ({manifest.get('machine.cpu_model', '?')}, "
            f"{date}): the timings were skipped and only wpsim's predictions are shown, so that "
            "the pipeline is exercised. The target below is not evaluated.",
            width=100,
        )
    else:
        status = f"Data: {len(measured)} timed rows on {', '.join(devices)} ({date})."
    total = errors[-1]
    misses: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r["abs_error"] is not None and r["abs_error"] > TARGET_MEDIAN:
            misses[r["regime"]].append(f"{100 * r['error']:+.0f}%")
    miss_text = "; ".join(f"{regime}: {len(v)} ({', '.join(v[:8])}{', ...' if len(v) > 8 else ''})"
                          for regime, v in sorted(misses.items())) or "none"  # fmt: skip
    error_table = (
        "\n".join(
            f"| {e['mode']} | {e['precision']} | {e['n']} | {e['median_abs_error']} | "
            f"{e['max_abs_error']} |"
            for e in errors[:-1]
        )
        or "| - | - | 0 | - | - |"
    )
    table = "\n".join(
        f"| {r['cell']} | {r['precision']} | {r['hidden']} | {r['batch']} | {r['layers']} | "
        f"{r['seq_len']} | {r['mode']} | {_ms(r['measured_s'])} | {_ms(r['predicted_s'])} | "
        f"{_ms(r['predicted_gemm_s'])} | "
        f"{_percent(r['error'])} | {r['regime']} |"
        for r in rows
    )
    gpu_info = "; ".join(f"{k.split('.', 1)[1]} {v}" for k, v in manifest.items()
                         if k.startswith("gpu.")) or "none recorded"  # fmt: skip
    return f"""# GPU validation: cuDNN LSTM/GRU against wpsim's GPU model

{status}

Regenerate: `wpsim report gpu_validation` (or `python reports/gpu_validation/make_report.py`).
Inputs: `data/manifest.csv` and `data/gpu.csv` as written by `benchmarks/at_scale.py` (the GPU
phase is `benchmarks/at_scale_gpu.py`). To replace them with a new run, copy those two files of
the run's folder into `data/` and regenerate. Outputs: `gpu_validation.csv`, `errors.csv`,
`gpu_validation.png`.

Measured: `torch.nn.LSTM`/`GRU` on cuDNN, forward (eval, no grad) and a training step (forward,
mean-square loss, backward; no optimiser), each the median of 3-20 iterations timed with CUDA
events after two warm-ups; fp32 with TF32 off (the CUDA-core FP32 peak applies), fp16 on tensor
cores. Predicted: `wpsim.accel.gpu.evaluate` on {", ".join(f"`{f}`" for f in files)} (built
from NVIDIA's spec sheets before any timing; every value carries its source), recomputed by this
script: forward by the closed form of `streams` (per-step GEMMs, layers overlapped on streams as
cuDNN does), training by the simulator; `gemm` (one kernel at a time) alongside. Regime: what
bounds one recurrent step in the model (`wpsim.accel.gpu.gemm_step`): `launch` (two kernel
launches per step), `compute`, or `memory (L2|DRAM)` (reading `W_hh`).

Device record: {gpu_info}.

![gpu](gpu_validation.png)

## Errors

| mode | precision | n | median abs error | max abs error |
|---|---|---|---|---|
{error_table}

Target: median abs error <= {100 * TARGET_MEDIAN:.0f}% over the grid: **{total["verdict"]}**
(n = {total["n"]}, median {total["median_abs_error"] or "-"}). Rows off by more than
{100 * TARGET_MEDIAN:.0f}%, by the model's regime: {miss_text}. Each miss is to be explained by
its mechanism (the regime says which term of the model set the step time).

## All rows (ms)

| cell | precision | H | B | L | T | mode | measured | predicted | gemm | error | regime |
|---|---|---|---|---|---|---|---|---|---|---|---|
{table}
"""


if __name__ == "__main__":
    main()
