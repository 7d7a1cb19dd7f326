"""Extract DeepBench's GEMM and (allowed) RNN results from its spreadsheets into CSV files.

Run offline, once, on a clone of baidu-research/DeepBench (bare or not; files are read with
``git show`` at the commits named below; it needs ``openpyxl``, a dev extra; the report reads only
the CSV files this writes)::

    python reports/published_validation/data/extract_deepbench.py DEEPBENCH_GIT_DIR

Writes ``deepbench_gemm.csv`` (the dense GEMM block of every NVIDIA training sheet and of the
NVIDIA inference sheets) and ``deepbench_rnn.csv`` (the recurrent-layer blocks of the GPUs in
``RNN_ALLOWED`` only) beside this script.

Reserved for independent checks: the RNN rows of the TitanX (Maxwell), V100, TITAN Xp and
GTX 1080 Ti files. For those files the reader stops at the end of the GEMM block: their later
rows are never read. ``RNN_ALLOWED`` names every file whose RNN blocks are read.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
COMMIT = "da81ba7820739e2e506dc27f382d15be5479f98f"  # baidu-research/DeepBench master, 2019-11-15
#: the Jetson TX1 results, added on 2017-01-17 and later removed from the tree
TX1_COMMIT = "4f453811290500838ce6d7fe5daa7853f8364750"
TX1_FILE = "results/DeepBench_NV_Jetson_TX1.xlsx"

#: file -> (GPU name in the CSV, machine file stem)
GEMM_FILES = {
    "results/train/DeepBench_NV_M40.xlsx": ("Tesla M40", "m40"),
    "results/train/DeepBench_NV_P100.xlsx": ("Tesla P100 PCIe", "p100_pcie"),
    "results/train/DeepBench_NV_TitanX.xlsx": ("GeForce GTX TITAN X (Maxwell)", "titanx_maxwell"),
    "results/train/DeepBench_NV_TitanX_Pascal.xlsx": ("TITAN X (Pascal)", "titanx_pascal"),
    "results/train/DeepBench_NV_TitanXp.xlsx": ("TITAN Xp", "titan_xp"),
    "results/train/DeepBench_NV_1080Ti.xlsx": ("GeForce GTX 1080 Ti", "gtx1080ti"),
    "results/train/DeepBench_NV_V100.xlsx": ("Tesla V100", "v100"),
    "results/train/DeepBench_NV_T4.xlsx": ("Tesla T4", "t4"),
    "results/train/DeepBench_AMD_MI25.xlsx": ("Radeon Instinct MI25", "mi25"),
    "results/train/DeepBench_AMD_VegaFE.xlsx": ("Radeon Vega Frontier Edition", "vega_fe"),
}
#: the only files whose recurrent-layer blocks are read (none of the reserved GPUs)
RNN_ALLOWED = {
    "results/train/DeepBench_NV_M40.xlsx",
    "results/train/DeepBench_NV_P100.xlsx",
    "results/train/DeepBench_NV_TitanX_Pascal.xlsx",
    "results/inference/server/DeepBench_NV_TitanX_Pascal.xlsx",
    "results/train/DeepBench_AMD_MI25.xlsx",
    "results/train/DeepBench_AMD_VegaFE.xlsx",
}
#: files whose single "Time Backward" column is backward data only (the benchmark code of their
#: commit times miopenRNNBackwardData alone: code/amd/rnn_bench_rocm.cpp at 469adaa)
BACKWARD_IS_DATA = {
    "results/train/DeepBench_AMD_MI25.xlsx",
    "results/train/DeepBench_AMD_VegaFE.xlsx",
}
RNN_NAMES = {
    "results/inference/server/DeepBench_NV_TitanX_Pascal.xlsx": (
        "TITAN X (Pascal)",
        "titanx_pascal",
    ),
}


def _sheet_precision(rows: list[tuple]) -> str:
    for row in rows[:3]:
        if row and row[0] == "Precision":
            return str(row[1])
    return ""


def gemm_block(ws) -> tuple[str, list[dict]]:
    """The rows of the 'Dense Matrix Multiplication' block; stops reading at its end."""
    out, head, precision, started = [], None, "", False
    for i, row in enumerate(ws.iter_rows(values_only=True)):
        if i < 3 and row and row[0] == "Precision":
            precision = str(row[1])
        first = row[0] if row else None
        if first is not None and "Dense Matrix Multiplication" in str(first):
            head, started = list(row), True
            continue
        if not started:
            continue
        if first is not None:  # the next block's header: stop, read nothing beyond
            break
        cells = dict(zip(head, row, strict=False))
        m, n, k = cells.get("M"), cells.get("N"), cells.get("K")
        time_ms = cells.get("Time (msec)")
        if not all(isinstance(v, (int, float)) for v in (m, n, k, time_ms)):
            continue
        out.append({"M": int(m), "N": int(n), "K": int(k), "a_t": cells.get("A Transpose"),
                    "b_t": cells.get("B Transpose"), "time_ms": float(time_ms)})  # fmt: skip
    return precision, out


def rnn_blocks(ws, backward_is_data: bool = False) -> list[dict]:
    """Rows of the 'Recurrent Layers - ...' blocks of an allowed sheet.

    ``backward_is_data``: the sheet's one "Time Backward" column times backward data only.
    """
    out, head, cell = [], None, None
    for row in ws.iter_rows(values_only=True):
        first = row[0] if row else None
        if first is not None and str(first).startswith("Recurrent Layers"):
            name = str(first).split("-")[-1].strip().lower()
            cell = {"vanilla": "rnn", "lstm": "lstm", "gru": "gru"}[name]
            head = [str(h).strip() if h is not None else None for h in row]
            continue
        if first is not None and not isinstance(first, (int, float)):
            head = None  # another block
        if head is None:
            continue
        cells = dict(zip(head, row, strict=False))
        hidden = cells.get("Hidden Units", cells.get("Hidden units", cells.get("Input")))
        fwd = cells.get("Time Forward (msec)")
        if not isinstance(hidden, int) or not isinstance(fwd, (int, float)):
            continue
        bwd_in = next((v for h, v in cells.items() if h and h.lower().startswith(
            "time backward wrt inputs")), None)  # fmt: skip
        bwd_w = next((v for h, v in cells.items() if h and h.lower().startswith(
            "time backward wrt weights")), None)  # fmt: skip
        if backward_is_data and bwd_in is None:
            bwd_in = cells.get("Time Backward (msec)")
        out.append({"cell": cell, "hidden": hidden, "batch": int(cells["N"]),
                    "seq_len": int(cells["Timesteps"]), "forward_ms": float(fwd),
                    "backward_data_ms": bwd_in, "backward_weights_ms": bwd_w})  # fmt: skip
    return out


def _tx1_backward(book) -> list[tuple[tuple[int, int, int], float]]:
    """``((hidden, N, steps), backward ms)`` of the TX1 LSTM block (one 'Time Backward' column)."""
    out, head = [], None
    for row in book["Results"].iter_rows(values_only=True):
        if row and row[0] is not None and str(row[0]).startswith("Recurrent Layers - LSTM"):
            head = [str(h).strip() if h is not None else None for h in row]
            continue
        if head is None:
            continue
        if row and row[0] is not None and not isinstance(row[0], (int, float)):
            break
        cells = dict(zip(head, row, strict=False))
        if isinstance(cells.get("Hidden Units"), int):
            key = (cells["Hidden Units"], cells["N"], cells["Timesteps"])
            out.append((key, float(cells["Time Backward (msec)"])))
    return out


def _book(root: Path, commit: str, rel: str):
    import openpyxl

    data = subprocess.run(["git", "-C", str(root), "show", f"{commit}:{rel}"],
                          check=True, capture_output=True).stdout  # fmt: skip
    return openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)


def main(root: Path) -> None:
    gemm_rows, rnn_rows = [], []
    for rel, (gpu, machine) in GEMM_FILES.items():
        book = _book(root, COMMIT, rel)
        for sheet in book.sheetnames:
            if sheet == "Specs":
                continue
            precision, rows = gemm_block(book[sheet])
            for r in rows:
                gemm_rows.append({"gpu": gpu, "machine": machine, "sheet": sheet,
                                  "precision": precision, **r,
                                  "source": f"baidu-research/DeepBench@{COMMIT[:12]}:{rel}"})  # fmt: skip
            if rel in RNN_ALLOWED:
                for r in rnn_blocks(book[sheet], rel in BACKWARD_IS_DATA):
                    rnn_rows.append({"gpu": gpu, "machine": machine, "phase": "training",
                                     "sheet": sheet, "precision": precision, **r,
                                     "source": f"baidu-research/DeepBench@{COMMIT[:12]}:{rel}"})  # fmt: skip
    for rel, (gpu, machine) in RNN_NAMES.items():
        book = _book(root, COMMIT, rel)
        for sheet in book.sheetnames:
            if sheet == "Specs":
                continue
            for r in rnn_blocks(book[sheet]):
                rnn_rows.append({"gpu": gpu, "machine": machine, "phase": "inference",
                                 "sheet": sheet, "precision": "RNN: single precision", **r,
                                 "source": f"baidu-research/DeepBench@{COMMIT[:12]}:{rel}"})  # fmt: skip
    # Jetson TX1 (cuDNN 5.0): its GEMM block and its LSTM rows. Its "Time Backward" is backward
    # data only (the rnn_bench.cu of that commit times cudnnRNNBackwardData alone); its Vanilla rows
    # are left out: the sheet says 25 time steps, the code of that commit ran 50.
    book = _book(root, TX1_COMMIT, TX1_FILE)
    source = f"baidu-research/DeepBench@{TX1_COMMIT[:12]}:{TX1_FILE}"
    precision, rows = gemm_block(book["Results"])
    for r in rows:
        gemm_rows.append({"gpu": "Jetson TX1", "machine": "jetson_tx1", "sheet": "Results",
                          "precision": precision or "Float", **r, "source": source})  # fmt: skip
    for r in rnn_blocks(book["Results"]):
        if r["cell"] != "lstm":
            continue
        r["backward_data_ms"] = next(v for h, v in _tx1_backward(book) if h == (
            r["hidden"], r["batch"], r["seq_len"]))  # fmt: skip
        rnn_rows.append({"gpu": "Jetson TX1", "machine": "jetson_tx1", "phase": "training",
                         "sheet": "Results", "precision": "Float", **r, "source": source})  # fmt: skip
    for name, rows in (("deepbench_gemm.csv", gemm_rows), ("deepbench_rnn.csv", rnn_rows)):
        with open(HERE / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        print(f"{name}: {len(rows)} rows")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
