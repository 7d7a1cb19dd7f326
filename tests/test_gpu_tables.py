"""The GEMM curves of the GPU machine files are their GPU's own GEMM benchmark.

Each GPU file that DeepBench benchmarked carries ``gemm.efficiency_by_n`` (its "N N" GEMMs) and
``gemm.transposed_efficiency_by_n`` (its "T N" GEMMs) as derived by
``reports/published_validation/data/derive_gpu_tables.py`` from the GEMM blocks in
``deepbench_gemm.csv``; no value comes from an RNN timing. Recomputing them must give the files'
values (printed to 4 decimals).
"""

from __future__ import annotations

import csv
import importlib.util
from collections import defaultdict
from pathlib import Path

import pytest

from wpsim.machines import load_machine, resolve_machine_path

DATA = Path(__file__).resolve().parents[1] / "reports" / "published_validation" / "data"
#: the FP32 sheet of each GPU's spreadsheet (the names differ between files)
FP32_SHEETS = {"Results - FP32", "Results FP32", "FP32", "Results"}


def _derive_module():
    spec = importlib.util.spec_from_file_location(
        "derive_gpu_tables", DATA / "derive_gpu_tables.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fp32_rows() -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    with open(DATA / "deepbench_gemm.csv") as handle:
        for row in csv.DictReader(handle):
            if row["sheet"] in FP32_SHEETS:
                groups[row["machine"]].append(row)
    return groups


GROUPS = _fp32_rows()


def test_every_deepbench_gpu_is_checked() -> None:
    assert len(GROUPS) == 11  # M40 ... Vega FE: every GPU of DeepBench's GEMM sheets


@pytest.mark.parametrize("machine", sorted(GROUPS))
def test_gemm_curves_are_the_gpus_deepbench_gemms(machine: str) -> None:
    derive = _derive_module()
    tables = derive.tables(GROUPS[machine], derive._peak(machine, tensor=False), 4)
    gemm = load_machine(resolve_machine_path(machine)).gemm
    for name in ("efficiency_by_n", "transposed_efficiency_by_n"):
        in_file = [tuple(point) for point in getattr(gemm, name)]
        derived = tables[name]
        assert [n for n, _ in in_file] == [n for n, _ in derived], name
        for (_, ours), (_, theirs) in zip(in_file, derived, strict=True):
            assert ours == pytest.approx(theirs, abs=5e-5), (machine, name)


def test_transposed_products_are_slower_where_the_benchmark_says_so() -> None:
    # TITAN X (Pascal): DeepBench's T N GEMMs at 128 columns reach 0.65x the N N rate
    titanx = load_machine(resolve_machine_path("titanx_pascal")).gemm
    ratio = titanx.efficiency(128, transposed=True) / titanx.efficiency(128)
    assert 0.6 < ratio < 0.7
