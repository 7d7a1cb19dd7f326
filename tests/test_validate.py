"""`wpsim validate`: measured and predicted side by side on a tiny workload; bad input is one
line."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from wpsim.cli import main
from wpsim.hardware import HW_CONFIG_DIR, load_machine
from wpsim.validate import (
    BASELINE,
    KIND_KEYS,
    _ready_latencies,
    inner_repeats,
    parse_configs,
    validate,
)
from wpsim.workload import Workload

pytest.importorskip("kernels.executor")

#: a calibrated machine file (of the computer wpsim was developed on: any will do here)
HOST = HW_CONFIG_DIR / "xeon_kvm_2core.yaml"
ROW_KEYS = {
    "policy",
    "workers",
    "measured_makespan_s",
    "predicted_makespan_s",
    "measured_speedup",
    "predicted_speedup",
    "rel_error",
}
TINY = Workload(name="validate-tiny", cell="lstm", layers=2, hidden=32, input=16, seq_len=6)


@pytest.fixture(scope="module")
def json_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """One CLI run with --json and --out, shared by the tests below (a few seconds)."""
    out = tmp_path_factory.mktemp("validate")
    wl = out / "w.yaml"
    wl.write_text("name: validate-tiny\ncell: lstm\nlayers: 2\nhidden: 32\ninput: 16\nseq_len: 6\n")
    proc = subprocess.run(
        [sys.executable, "-m", "wpsim.cli", "validate", "-w", str(wl), "--hardware", str(HOST),
         "--workers", "1,2", "--policies", "wavefront", "--chunk", "1", "--repeats", "1", "--json",
         "--out", str(out / "res")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), out / "res"


def test_rows_have_every_key_and_finite_values(json_run) -> None:
    report, _ = json_run
    rows = report["rows"]
    assert {(r["policy"], r["workers"]) for r in rows} == {
        ("sequential", 1),
        ("wavefront", 1),
        ("wavefront", 2),
    }
    for row in rows:
        assert ROW_KEYS <= set(row)
        for key in ROW_KEYS - {"policy"}:
            assert math.isfinite(row[key]), (key, row)
        assert row["measured_makespan_s"] > 0 and row["predicted_makespan_s"] > 0
    base = next(r for r in rows if (r["policy"], r["workers"]) == BASELINE)
    assert base["measured_speedup"] == pytest.approx(1.0)
    assert base["predicted_speedup"] == pytest.approx(1.0)
    assert base["rel_error"] == pytest.approx(0.0)
    for row in rows:
        expected = abs(row["predicted_speedup"] - row["measured_speedup"]) / row["measured_speedup"]
        assert row["rel_error"] == pytest.approx(expected)


def test_per_kind_compares_every_task(json_run) -> None:
    report, _ = json_run
    per_kind = report["per_kind"]
    assert per_kind
    for entry in per_kind:
        assert set(KIND_KEYS) <= set(entry)
        assert entry["measured_mean_s"] > 0 and math.isfinite(entry["simulated_mean_s"])
    # every configuration covers every task once: 2 layers x 6 cells
    for policy, workers in (("sequential", 1), ("wavefront", 2)):
        entries = [e for e in per_kind if (e["policy"], e["workers"]) == (policy, workers)]
        assert {e["layer"] for e in entries} == {0, 1}
        assert sum(e["n"] for e in entries) == 12


def test_csv_json_and_gantt_files_are_written(json_run) -> None:
    report, out = json_run
    with open(out / "validation.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(report["rows"])
    assert ROW_KEYS <= set(rows[0])
    assert (out / "per_kind.csv").exists()
    assert json.loads((out / "validation.json").read_text())["rows"]
    for policy, workers in (("sequential", 1), ("wavefront", 1), ("wavefront", 2)):
        png = out / f"gantt_{policy}_{workers}w.png"
        assert png.exists() and png.read_bytes()[:4] == b"\x89PNG"


def test_library_call_and_text_report(tmp_path: Path) -> None:
    from wpsim.validate import format_report

    report = validate(TINY, load_machine(HOST), workers=[1], policies=["sequential"], repeats=1)
    assert len(report.rows) == 1 and report.rows[0]["baseline"]
    text = format_report(report)
    assert "sequential" in text and "task by task" in text


# ---- bad input: one line, exit status 2 -------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--policies", "nosuch"], "--policies: got 'nosuch'"),
        (["--workers", "1,64"], "--workers 64"),
        (["--granularity", "op"], "cell tasks only"),
        (["--hardware", "no_such_machine.yaml"], "file not found"),
        (["-w", "no_such_workload.yaml"], "no_such_workload.yaml"),
    ],
)
def test_bad_input_is_one_line(args: list[str], needle: str, capsys) -> None:
    assert main(["validate", "-w", "tiny", "--hardware", str(HOST), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert needle in err


@pytest.mark.parametrize("value", ["0", "two", "1,-2"])
def test_bad_worker_lists_are_usage_errors(value: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wpsim.cli", "validate", "-w", "tiny", "--workers", value],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "--workers" in proc.stderr


# ---- pieces -------------------------------------------------------------------------------------
def test_configs_put_the_baseline_first_once() -> None:
    machine = load_machine(HOST)
    configs = parse_configs(["wavefront", "sequential"], [2, 1], machine)
    assert configs[0] == BASELINE
    assert configs.count(BASELINE) == 1
    assert set(configs) == {
        ("sequential", 1),
        ("sequential", 2),
        ("wavefront", 1),
        ("wavefront", 2),
    }


def test_ready_latency_is_start_minus_ready_and_free() -> None:
    from wpsim.trace import Trace

    tr = Trace([])
    tr.append(0, (0,), 0.001, 0.002, {}, True)  # source: ready at 0
    tr.append(1, (0,), 0.0025, 0.004, {}, True)  # after 0, same worker
    tr.append(2, (1,), 0.0030, 0.005, {}, True)  # after 0, other worker
    assert _ready_latencies(tr, [[], [0], [0]]) == pytest.approx([0.001, 0.0005, 0.001])


def test_inner_repeats_bounds() -> None:
    assert inner_repeats(0.0) == 5
    assert inner_repeats(1e-4) == 5
    assert inner_repeats(10.0) == 2


def test_charged_dispatch_is_the_busy_value_when_every_core_runs() -> None:
    from wpsim.policies import get_policy
    from wpsim.validate import simulate_with_dispatch
    from wpsim.workload import Workload

    machine = load_machine(HOST).model_copy(
        update={"dispatch_overhead_s": 1e-5, "dispatch_overhead_busy_s": 5e-5,
                "dispatch_overhead_sequence_s": None}
    )  # fmt: skip
    w = Workload(cell="rnn", layers=2, hidden=16, input=16, seq_len=6)
    # a run on one of the two cores never has every core of the socket busy
    _, one = simulate_with_dispatch(w, machine, "sequential", 1, 1)
    assert one == pytest.approx([1e-5] * len(one))
    # two independent instances keep both cores busy: all but the very first starts pay more
    _, both = simulate_with_dispatch(w, machine, get_policy("multiprogram", instances=2), 2, 1)
    assert set(both) <= {1e-5, 5e-5}
    assert both.count(5e-5) >= len(both) - 2


def test_accuracy_benchmark_replays_measured_rows(tmp_path, capsys) -> None:
    """``benchmarks/accuracy.py --replay`` re-predicts recorded rows without running anything."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import accuracy

    case = accuracy.FULL[1]
    rows = [{"case": case.name, "policy": p, "workers": 2, "measured_speedup": 1.0}
            for p in ("wavefront", "layerwise")]  # fmt: skip
    recorded = tmp_path / "accuracy.json"
    recorded.write_text(json.dumps({"summary": {"machine": "test"}, "rows": rows}))
    assert accuracy.main(["--replay", str(recorded), "--hardware", str(HOST), "--json"]) == 0
    out = capsys.readouterr().out
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["verdict"] in ("PASS", "MISS") and summary["max_rel_error"] >= 0
    assert out.count(case.name) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert accuracy.main(["--replay", str(bad)]) == 2
    assert "expected an accuracy.json" in capsys.readouterr().err
