"""Derive each GPU file's GEMM efficiency table and weight-streaming bandwidth from DeepBench.

Reads ``deepbench_gemm.csv`` (written by ``extract_deepbench.py``) and prints, per GPU and
precision sheet, the values the machine files carry (``hw_configs/<machine>.yaml``):

* ``gemm.efficiency_by_n``: fraction of the file's peak that cuBLAS reached, for ``n`` right-hand
  columns, the median over the "N N" (forward-layout) GEMMs whose weight matrix ``M x K`` has at
  least ``LARGE_WEIGHTS`` entries (the recurrent matrices of hidden 1760-4096); for the largest
  ``n`` the median over all GEMMs with ``n >= 7000`` and ``K < 100000`` (below 16 columns the
  model keeps e(16): narrower products run GEMV-like kernels bound by the weight stream, which the
  bandwidth term of the model covers);
* ``gemm.efficiency_by_weights``: for smaller matrices, the median ratio of their efficiency to
  the large-matrix value at the same ``n`` (DeepBench measures ``512 x 512`` and ``1024 x 512``
  at ``n = 16, 32``; at most 1), reaching 1 at ``LARGE_WEIGHTS``: too few output tiles to fill
  the GPU;
* ``memory.bandwidth_Bps``: the highest rate at which a DeepBench GEMM streamed its weight
  matrix once (``M x 500000`` weights, ``n = 8, 16``): what a per-step product of weights that do
  not stay on chip achieves (a kernel measurement, not the spec sheet).

The peak is ``sms x clock_hz x flops_per_cycle_per_sm`` of the machine file (tensor-core peak for
the fp16 sheets of GPUs that have one). Nothing here reads an RNN timing.

Run: ``python reports/published_validation/data/derive_gpu_tables.py``.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
LARGE_WEIGHTS = 3_000_000
N_POINTS = (16, 32, 64, 128)
SMALL_WEIGHTS = (262_144, 524_288)


def _peak(machine: str, tensor: bool) -> float:
    from wpsim.hardware import load_machine, resolve_machine_path

    m = load_machine(resolve_machine_path(machine))
    if tensor and m.tensor_flops_per_cycle_per_sm:
        return m.sms * m.clock_hz * m.tensor_flops_per_cycle_per_sm["float16"]
    return m.peak_flops("float32")


def tables(rows: list[dict], peak: float, element_bytes: int) -> dict:
    by_shape: dict[tuple[int, int], float] = {}
    large_n: list[float] = []
    stream = 0.0
    for r in rows:
        m, n, k = int(r["M"]), int(r["N"]), int(r["K"])
        seconds = float(r["time_ms"]) * 1e-3
        if k >= 100_000:
            stream = max(stream, m * k * element_bytes / seconds)
            continue
        eff = 2.0 * m * n * k / seconds / peak
        if n >= 7000:
            if m * k >= 500_000:
                large_n.append(eff)
        elif r["a_t"] == "N" and r["b_t"] == "N":
            by_shape[(m * k, n)] = eff
    curve = []
    for n in N_POINTS:
        values = [e for (mk, nn), e in by_shape.items() if nn == n and mk >= LARGE_WEIGHTS]
        curve.append((n, statistics.median(values)))
    curve.append((7000, statistics.median(large_n)))
    small = []
    for mk in SMALL_WEIGHTS:
        ratios = [by_shape[(mk, n)] / dict(curve)[n] for n in (16, 32) if (mk, n) in by_shape]
        if ratios:  # a ratio above 1 is noise between shapes: a smaller matrix is never faster
            small.append((mk, min(1.0, statistics.median(ratios))))
    if small:
        small.append((LARGE_WEIGHTS, 1.0))
    return {"efficiency_by_n": curve, "efficiency_by_weights": small, "stream_Bps": stream}


def main() -> None:
    with open(HERE / "deepbench_gemm.csv") as handle:
        rows = list(csv.DictReader(handle))
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in rows:
        groups[(r["machine"], r["sheet"])].append(r)
    for (machine, sheet), group in sorted(groups.items()):
        fp16 = "16" in sheet
        try:
            peak = _peak(machine, tensor=fp16)
        except Exception as error:  # noqa: BLE001 - a GPU without a machine file yet
            print(f"{machine} [{sheet}]: no machine file ({error})")
            continue
        t = tables(group, peak, 2 if fp16 else 4)
        print(f"{machine} [{sheet}] peak {peak / 1e12:.2f} TFLOP/s")
        print("  efficiency_by_n:", ", ".join(f"[{n}, {e:.3f}]" for n, e in t["efficiency_by_n"]))
        print("  efficiency_by_weights:",
              ", ".join(f"[{mk}, {f:.2f}]" for mk, f in t["efficiency_by_weights"]))  # fmt: skip
        print(f"  weight streaming: {t['stream_Bps'] / 1e9:.0f} GB/s")


if __name__ == "__main__":
    main()
