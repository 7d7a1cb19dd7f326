"""Build ``published.csv`` (the visible set) from the DeepBench extract, one row per measurement.

Every RNN row of ``deepbench_rnn.csv`` becomes one row, except the P100's "pseudo FP16" sheet
(fp16 storage with fp32 arithmetic: no dtype of the workload schema says that). The published time
is the sum of the phases the benchmark timed: forward + backward data (+ backward weights where it
was timed); the phases stay in their own columns. Run:
``python reports/published_validation/data/build_published.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: software of each source file (its Specs sheet, and the benchmark code of its commit)
RUNTIME = {
    "m40": "cuDNN 5, CUDA 7.5 per its 2016 Specs sheet; RNN rows added 2018-05 (DeepBench rnn_bench: one layer, skip input, standard algorithm)",
    "p100_pcie": "cuDNN 6.0.21, CUDA 8.0.88 (DeepBench rnn_bench: one layer, skip input, standard algorithm)",
    "titanx_pascal": "cuDNN 5 (training) / 6 (inference), CUDA 8 (DeepBench rnn_bench: one layer, skip input, standard algorithm)",
    "jetson_tx1": "cuDNN 5.0.5, CUDA 7.0 (DeepBench rnn_bench: one layer, skip input, standard algorithm)",
    "mi25": "MIOpen 1.3, ROCm 1.7.1 (DeepBench rnn_bench_rocm: one layer, skip input, no bias; vanilla = ReLU)",
    "vega_fe": "MIOpen 1.3, ROCm 1.7.1 (DeepBench rnn_bench_rocm: one layer, skip input, no bias; vanilla = ReLU)",
}
#: the runtime file (hw_configs/runtimes/) that models each source's library
RUNTIME_MODEL = {
    "m40": "cudnn_standard", "p100_pcie": "cudnn_standard", "titanx_pascal": "cudnn_standard",
    "jetson_tx1": "cudnn_standard", "mi25": "miopen_1_3", "vega_fe": "miopen_1_3",
}  # fmt: skip
FIELDS = [
    "id", "source", "hardware", "hardware_name", "runtime", "runtime_model", "policy", "cell",
    "layers", "hidden",
    "input", "seq_len", "batch", "bidirectional", "phase", "dtype", "published_forward_ms",
    "published_backward_data_ms", "published_backward_weights_ms", "published_ms", "units",
]  # fmt: skip


def _ms(value: str) -> str:
    return "" if value in ("", "None") else f"{float(value):g}"


def rows() -> list[dict]:
    with open(HERE / "deepbench_rnn.csv") as handle:
        extract = list(csv.DictReader(handle))
    out = []
    for r in extract:
        if "16 bit" in r["precision"]:
            continue
        phases = [_ms(r[k]) for k in ("forward_ms", "backward_data_ms", "backward_weights_ms")]
        if r["phase"] == "inference":
            phases[1:] = ["", ""]
        total = sum(float(p) for p in phases if p)
        out.append({
            "source": r["source"], "hardware": r["machine"], "hardware_name": r["gpu"],
            "runtime": RUNTIME[r["machine"]], "runtime_model": RUNTIME_MODEL[r["machine"]],
            "policy": "gemm", "cell": r["cell"], "layers": 1,
            "hidden": r["hidden"], "input": 0, "seq_len": r["seq_len"], "batch": r["batch"],
            "bidirectional": "false", "phase": r["phase"], "dtype": "float32",
            "published_forward_ms": phases[0], "published_backward_data_ms": phases[1],
            "published_backward_weights_ms": phases[2], "published_ms": f"{total:g}",
            "units": "ms per call (mean of 100 back-to-back calls)",
        })  # fmt: skip
    for i, row in enumerate(out):
        row["id"] = f"db{i:03d}"
    return out


def main() -> None:
    data = rows()
    with open(HERE / "published.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(data)
    print(f"published.csv: {len(data)} rows")


if __name__ == "__main__":
    main()
