"""`wpsim calibrate`: a quick run writes a valid, fully sourced machine file; an interrupted or
failed run leaves the previous file untouched; bad input is one line."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wpsim.cells import cell_names, cell_to_dict, get_cell
from wpsim.cli import main
from wpsim.errors import WpsimError
from wpsim.machines import host as this_cpu
from wpsim.machines import load_machine
from wpsim.machines.cpu import CpuMachine
from wpsim.measure import calibrate as cal
from wpsim.measure.calibrate import compute, machine_file, spec
from wpsim.model.workload import Workload
from wpsim.sim.closed_forms import predict
from wpsim.sim.engine import simulate

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_hardware import (  # noqa: E402
    SOURCE_PREFIXES,
    numeric_comments,
    undocumented_numeric_lines,
)

LINUX = sys.platform.startswith("linux") and Path("/sys/devices/system/cpu/cpu0/cache").exists()
needs_linux = pytest.mark.skipif(not LINUX, reason="calibrate reads /sys (Linux only)")


@pytest.fixture(scope="module")
def quick_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One quick calibration shared by the tests of this module (about 10 s)."""
    if not LINUX:
        pytest.skip("calibrate reads /sys (Linux only)")
    out = tmp_path_factory.mktemp("calibrate") / "host.yaml"
    assert main(["calibrate", "--quick", "--out", str(out)]) == 0
    return out


@needs_linux
def test_quick_calibration_writes_a_valid_machine(quick_file: Path) -> None:
    machine = load_machine(quick_file)
    assert isinstance(machine, CpuMachine)
    assert machine.total_cores >= 1
    assert machine.peak_flops_per_core("float32") > 1e9
    for n, fraction in machine.efficiency.gemm_by_n:
        assert n >= 1 and 0 < fraction <= 1
    assert 0 < machine.efficiency.elementwise <= 1
    assert machine.corun_slowdown_per_core >= 0
    assert machine.dispatch_overhead_s >= 0
    bandwidths = [c.bandwidth_Bps for c in machine.caches] + [machine.memory.per_core_bandwidth_Bps]
    assert bandwidths == sorted(bandwidths, reverse=True)
    assert machine.memory.per_core_bandwidth_Bps <= machine.memory.bandwidth_Bps


@needs_linux
def test_every_number_has_a_known_source_comment(quick_file: Path) -> None:
    text = quick_file.read_text()
    assert undocumented_numeric_lines(text) == []
    comments = numeric_comments(text)
    assert len(comments) >= 20
    for comment in comments:
        assert comment.startswith(SOURCE_PREFIXES), comment
    measured = [c for c in comments if c.startswith("measured:")]
    assert len(measured) >= 10
    assert all(c.startswith("measured: wpsim calibrate ") for c in measured)
    date = str(load_machine(quick_file).calibration["date"])
    assert all(date in c for c in measured)


@needs_linux
def test_calibration_block_records_provenance(quick_file: Path) -> None:
    block = load_machine(quick_file).calibration
    assert block is not None
    for key in ("date", "cpu_model", "numpy", "blas", "python", "raw", "derived"):
        assert key in block, key
    assert block["numpy"].startswith("numpy ")
    assert block["quick"] is True
    assert block["blas"] and all(entry["num_threads"] == 1 for entry in block["blas"])
    raw = block["raw"]
    for key in ("gemm_s", "elementwise_s_per_step", "bandwidth", "dispatch", "peak_gemm"):
        assert key in raw, key
    assert all(math.isfinite(v) and v > 0 for v in raw["gemm_s"].values())


@needs_linux
def test_every_registered_cell_gets_its_own_element_wise_tables(quick_file: Path) -> None:
    """The element-wise grid and a kernel call's fixed costs of every registered cell, each
    measured on its own declaration and sourced as such."""
    machine = load_machine(quick_file)
    assert isinstance(machine, CpuMachine)
    text = quick_file.read_text()
    elementwise = machine.efficiency.elementwise_step_s or {}
    for table in (elementwise, machine.task_overhead_s, machine.step_overhead_s):
        assert sorted(table) == cell_names()
    raw = machine.calibration["raw"]
    for cell in cell_names():
        assert machine.cell_calibration(cell).missing == ()
        assert machine.fallback_note(cell, cell) is None
        timed = {k: v for k, v in raw["elementwise_s_per_step"].items() if k.startswith(cell + ",")}
        assert len(timed) == len(elementwise[cell]) == 4  # --quick: 2 H x 2 B
        assert set(raw["kernel_call_overhead_s"][cell]) == {"task_s", "step_s"}
        assert f"measured: wpsim calibrate {cell} cell task (kernels.tasks.forward_task)" in text


@needs_linux
def test_a_cell_declared_in_yaml_is_charged_by_the_defaults_and_says_so(
    quick_file: Path, tmp_path: Path
) -> None:
    """A registered cell is charged by its own tables; the same declaration in a YAML file
    under another name takes what every cell takes without them (as a file that predates the
    cell does), and the result says so."""
    machine = load_machine(quick_file)
    assert isinstance(machine, CpuMachine)
    declared = tmp_path / "my_sru.yaml"
    declared.write_text(yaml.safe_dump({**cell_to_dict(get_cell("sru")), "name": "my_sru"}))
    shape = dict(layers=2, hidden=128, input=128, seq_len=8, batch=4)
    registered = Workload(cell="sru", **shape)
    from_yaml = Workload(cell=str(declared), **shape)
    efficiency = machine.efficiency
    older = machine.model_copy(
        update={
            "efficiency": efficiency.model_copy(
                update={
                    "elementwise_step_s": {
                        cell: grid
                        for cell, grid in (efficiency.elementwise_step_s or {}).items()
                        if cell != "sru"
                    }
                }
            ),
            "task_overhead_s": {k: v for k, v in machine.task_overhead_s.items() if k != "sru"},
            "step_overhead_s": {k: v for k, v in machine.step_overhead_s.items() if k != "sru"},
        }
    )
    for evaluate in (simulate, predict):
        own = evaluate(registered, machine, "wavefront")
        by_yaml = evaluate(from_yaml, machine, "wavefront")
        by_older = evaluate(registered, older, "wavefront")
        assert "note" not in own.extra
        assert "declared in YAML" in by_yaml.extra["note"]
        assert "predates" in by_older.extra["note"]
        assert by_yaml.makespan_s == by_older.makespan_s != own.makespan_s


@needs_linux
def test_numbers_are_yaml_floats(quick_file: Path) -> None:
    data = yaml.safe_load(quick_file.read_text())
    assert isinstance(data["clock_hz"], float)
    assert isinstance(data["memory"]["bandwidth_Bps"], float)
    assert all(isinstance(f, float) for _, f in data["efficiency"]["gemm_by_n"])
    assert _strings_like_numbers(data) == []


def _strings_like_numbers(node) -> list[str]:
    """String leaves that look like numbers (the rule tests/test_hardware.py applies)."""
    if isinstance(node, dict):
        return [
            s
            for k, v in node.items()
            if k not in ("kind", "name")
            for s in _strings_like_numbers(v)
        ]
    if isinstance(node, list):
        return [s for v in node for s in _strings_like_numbers(v)]
    return [node] if isinstance(node, str) and re.match(r"^[-+.\d]", node) else []


@pytest.mark.parametrize("value", [1e-6, 2.5e9, 0.05, 3.0, 123456.0, 7e-10, 0.0])
def test_fmt_writes_floats_yaml_reads_back(value: float) -> None:
    text = machine_file._fmt(value)
    parsed = yaml.safe_load(f"x: {text}")["x"]
    assert isinstance(parsed, float)
    assert parsed == pytest.approx(value, rel=1e-3)


def test_flops_per_cycle_from_flags() -> None:
    assert spec.flops_per_cycle({"avx512f", "avx2", "fma"})[0]["float32"] == 64
    assert spec.flops_per_cycle({"avx2", "fma"})[0] == {"float32": 32.0, "float64": 16.0}
    assert spec.flops_per_cycle({"avx"})[0]["float32"] == 16


def test_cache_sizes_parse() -> None:
    assert this_cpu.parse_size("32K") == 32768
    assert this_cpu.parse_size("32768K") == 32 << 20
    assert this_cpu.parse_size("1 MiB") == 1 << 20


def test_interrupted_run_leaves_the_previous_file(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "host.yaml"
    out.write_text("previous contents\n")

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cal, "run_measurements", interrupted)
    monkeypatch.setattr(cal, "read_cpu_spec", lambda: _fake_spec())
    with pytest.raises(KeyboardInterrupt):
        cal.calibrate(out, quick=True)
    assert out.read_text() == "previous contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["host.yaml"]  # no temporary left


def test_an_executor_overhead_at_zero_is_flagged(tmp_path: Path, monkeypatch) -> None:
    raw = _fake_raw()
    raw["dispatch"]["sequence"] = {
        "graphs": [
            {"hidden": 64.0, "dispatch_s": 4e-6, "cell_in_process_s": 2e-5},
            {"hidden": 256.0, "dispatch_s": 0.0, "cell_in_process_s": 7e-5},
        ]
    }
    monkeypatch.setattr(cal, "run_measurements", lambda *_a, **_k: raw)
    monkeypatch.setattr(cal, "read_cpu_spec", lambda: _fake_spec())
    lines: list[str] = []
    cal.calibrate(tmp_path / "host.yaml", quick=True, progress=lines.append)
    warnings = [line for line in lines if "came out at 0" in line]
    assert len(warnings) == 1 and "dispatch_overhead_sequence_s (H=256)" in warnings[0]
    assert (tmp_path / "host.yaml").exists()  # a warning, not a failure
    assert cal.disturbed_overheads(_fake_raw()["dispatch"]) == []


def test_cli_interrupt_exits_130_and_keeps_the_file(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "host.yaml"
    out.write_text("previous contents\n")
    monkeypatch.setattr(cal, "run_measurements", _raise(KeyboardInterrupt()))
    monkeypatch.setattr(cal, "read_cpu_spec", lambda: _fake_spec())
    assert main(["calibrate", "--quick", "--out", str(out)]) == 130
    assert out.read_text() == "previous contents\n"


def test_a_failed_measurement_is_one_line(tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "host.yaml"
    monkeypatch.setattr(
        cal,
        "run_measurements",
        _raise(WpsimError("calibrate: the measuring process failed: x")),
    )
    monkeypatch.setattr(cal, "read_cpu_spec", lambda: _fake_spec())
    assert main(["calibrate", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "measuring process failed" in err
    assert not out.exists()


def test_out_is_a_folder_is_one_line(tmp_path: Path, capsys) -> None:
    assert main(["calibrate", "--quick", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is a folder" in err


def test_bad_cores_are_rejected() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wpsim", "calibrate", "--cores", "zero", "--out", "x.yaml"],
        capture_output=True,
        text=True,
        env={**os.environ},
    )
    assert proc.returncode == 2
    assert "expected comma-separated positive integers" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_machine_file_is_built_from_raw_measurements() -> None:
    """The file builder alone, on fixed numbers: every rule in one place."""
    result = machine_file.build_machine_file(_fake_spec(), _fake_raw(), "2000-01-01")
    data = yaml.safe_load(result.text)
    machine = CpuMachine.model_validate(data)
    assert undocumented_numeric_lines(result.text) == []
    # clock: the fastest GEMM at 32 flop/cycle beats the 2 GHz TSC
    assert machine.clock_hz == pytest.approx(100e9 / 32, rel=1e-3)
    # efficiency: best over H per n, as a fraction of clock x 32
    assert dict(machine.efficiency.gemm_by_n)[1] == pytest.approx(0.25, rel=1e-3)
    # co-running: slowdown 1.3 on 2 cores -> 0.3 per additional core
    assert machine.corun_slowdown_per_core == pytest.approx(0.3)
    # hand-off: 1 us latency, 1 GB/s slope
    assert machine.handoff.latency_s == pytest.approx(1e-6)
    assert machine.handoff.bandwidth_Bps == pytest.approx(1e9, rel=1e-3)
    # barrier(2) reproduces the measured 2-process barrier
    assert machine.barrier_s(2) == pytest.approx(1.5e-6)
    assert machine.dispatch_overhead_s == pytest.approx(30e-6)
    # bandwidths: every level the GEMV rate (not the streaming read), L2's 90 clamped to L1's 80
    assert [c.bandwidth_Bps for c in machine.caches] == pytest.approx([80e9, 80e9, 50e9])
    assert machine.memory.per_core_bandwidth_Bps == pytest.approx(20e9)
    assert machine.memory.bandwidth_Bps == pytest.approx(30e9)
    assert str(machine.calibration["date"]) == "2000-01-01"
    assert _strings_like_numbers(data) == []
    # the grid of GEMM efficiency by n and H is written whole
    assert len(machine.efficiency.gemm_by_n_h) == len(_fake_raw()["gemm_s"])


def test_kernel_overheads_element_wise_grid_hit_curve_and_cell_grids_are_written() -> None:
    raw = _fake_raw()
    peak = 100e9
    raw["kernel_call_overhead_s"] = {"lstm": {"task_s": 8e-6, "step_s": 6e-6}}
    # per step of a chunk of ELEM_STEPS steps: 1 us of gate math plus the call's share
    per_step = 1e-6 + 6e-6 + 8e-6 / compute.ELEM_STEPS
    raw["elementwise_s_per_step"] = {"lstm,128,1": per_step, "lstm,256,1": per_step + 1e-6}
    raw["reuse_rates"] = {"level": "L2", "Bps_by_ratio": {"0.5": 80e9, "1": 40e9, "3": 20e9}}
    raw["gemm_s_by_cell"] = {"rnn": {"1,128": 2.0 * 1 * 128 * 128 / (0.5 * peak)}}
    machine = CpuMachine.model_validate(
        yaml.safe_load(machine_file.build_machine_file(_fake_spec(), raw, "2000-01-01").text)
    )
    assert machine.task_overhead_s["lstm"] == pytest.approx(8e-6)
    assert machine.step_overhead_s["lstm"] == pytest.approx(6e-6)
    # the grid is net of both overheads, which the cost model charges apart
    grid = machine.efficiency.elementwise_step_s["lstm"]
    assert [v for point in grid for v in point] == pytest.approx([128, 1, 1e-6, 256, 1, 2e-6])
    l2 = next(c for c in machine.caches if c.name == "L2")
    assert l2.hit_curve is not None and l2.hit_curve[0] == (0.5, 1.0)
    assert l2.hit_curve[-1] == (3.0, 0.0) and 0.0 < l2.hit_curve[1][1] < 1.0
    assert all(c.hit_curve is None for c in machine.caches if c.name != "L2")
    ((n, h, fraction),) = machine.efficiency.gemm_by_n_h_by_cell["rnn"]
    assert (n, h) == (1, 128)
    assert fraction == pytest.approx(0.5 * peak / machine.peak_flops_per_core("float32"), rel=1e-3)


def test_hot_gemm_grid_takes_the_row_timings_where_w_does_not_fit() -> None:
    raw = _fake_raw()
    streamed = raw["gemm_s"]
    raw["gemm_hot_bytes"] = 512 * 1024
    raw["gemm_s_hot"] = {"lstm": {"1,512": streamed["1,512"] / 2}}  # twice as fast, hot
    machine = CpuMachine.model_validate(
        yaml.safe_load(machine_file.build_machine_file(_fake_spec(), raw, "2000-01-01").text)
    )
    hot = {(n, h): f for n, h, f in machine.efficiency.gemm_by_n_h_hot["lstm"]}
    full = {(n, h): f for n, h, f in machine.efficiency.gemm_by_n_h}
    assert set(hot) == set(full)  # a whole grid: the points that fit are the streamed ones
    assert hot[(1, 512)] == pytest.approx(2 * full[(1, 512)], rel=1e-3)
    assert hot[(16, 512)] == full[(16, 512)] and hot[(1, 128)] == full[(1, 128)]


def test_product_fixed_part_is_the_median_and_the_runtime_is_described() -> None:
    from kernels.group import input_split_by_time_max_bytes
    from kernels.products import gemv_max_batch

    raw = _fake_raw()
    raw["product_fixed_s"] = {"1,128,16": 1e-6, "1,256,1": 3e-6, "4,256,1": -1e-6}
    text = machine_file.build_machine_file(_fake_spec(), raw, "2000-01-01").text
    machine = CpuMachine.model_validate(yaml.safe_load(text))
    assert machine.efficiency.product_fixed_s == pytest.approx(1e-6)
    assert undocumented_numeric_lines(text) == []
    # how the kernels split their work, from the kernels themselves
    assert machine.recurrent_gemv_max_batch == gemv_max_batch()
    assert machine.input_split_by_time_max_bytes == input_split_by_time_max_bytes()
    raw["product_fixed_s"] = {"1,128,16": -2e-6}  # noise below zero: no fixed part
    machine = CpuMachine.model_validate(
        yaml.safe_load(machine_file.build_machine_file(_fake_spec(), raw, "2000-01-01").text)
    )
    assert machine.efficiency.product_fixed_s == 0.0


def test_measured_product_fixed_part_is_small_and_finite() -> None:
    values = compute.measure_product_fixed(0.01)
    assert set(values) == {",".join(map(str, shape)) for shape in compute.PRODUCT_FIXED_SHAPES}
    assert all(abs(v) < 1e-3 for v in values.values())


def test_executor_dispatch_variants_are_written_with_their_runs() -> None:
    """Busy dispatch as a table by task time (short and long cells), the group value."""
    raw = _fake_raw()

    def point(kind: str, task_s: float, dispatch_s: float, runs: list[tuple[int, float]]) -> dict:
        return {
            "kind": kind,
            "task_s": task_s,
            "dispatch_s": dispatch_s,
            "runs": [{"hidden": h, "dispatch_s": d} for h, d in runs],
        }

    graph = {"hidden": 256.0, "dispatch_s": 10e-6}
    raw["dispatch"] = {
        "method": "kernels.executor",
        "dispatch_s": 10e-6,
        "graphs": [graph],
        "trivial": {"dispatch_s": 5e-6},
        "all_cores_busy": {
            "workers": 2.0,
            "points": [
                point("short cells", 20e-6, 65e-6, [(128, 60e-6), (128, 70e-6)]),
                point("long cells", 60e-6, 120e-6, [(256, 110e-6), (256, 130e-6)]),
            ],
        },
        "whole_socket_group": {
            "workers": 2.0,
            "hidden": 16.0,
            "cell_in_process_s": 8e-6,
            "dispatch_s": 64e-6,
            "runs_dispatch_s": [63e-6, 64e-6, 66e-6],
        },
        "sequence": {
            "dispatch_s": 4e-6,
            "graphs": [
                {"hidden": 256.0, "cell_in_process_s": 60e-6, "dispatch_s": 6e-6},
                {"hidden": 128.0, "cell_in_process_s": 20e-6, "dispatch_s": 2e-6},
            ],
        },
    }
    result = machine_file.build_machine_file(_fake_spec(), raw, "2000-01-01")
    assert undocumented_numeric_lines(result.text) == []
    machine = CpuMachine.model_validate(yaml.safe_load(result.text))
    flat = [v for point in machine.dispatch_overhead_busy_s for v in point]
    assert flat == pytest.approx([20e-6, 65e-6, 60e-6, 120e-6])
    assert machine.dispatch_s(all_busy=True, task_s=40e-6) == pytest.approx(92.5e-6)
    assert machine.dispatch_overhead_group_s == pytest.approx(64e-6)
    # a run with one group: a table by the cell's time, in increasing order
    flat = [v for point in machine.dispatch_overhead_sequence_s for v in point]
    assert flat == pytest.approx([20e-6, 2e-6, 60e-6, 6e-6])
    # split steps of several sizes: the group overhead as a table by a member's time
    small = raw["dispatch"]["whole_socket_group"]
    large = {
        **small,
        "cell": "gru",
        "hidden": 512.0,
        "cell_in_process_s": 40e-6,
        "dispatch_s": 16e-6,
        "runs_dispatch_s": [15e-6, 16e-6, 17e-6],
    }
    raw["dispatch"]["whole_socket_group_points"] = [large, small]
    tabled = CpuMachine.model_validate(
        yaml.safe_load(machine_file.build_machine_file(_fake_spec(), raw, "2000-01-01").text)
    )
    flat = [v for point in tabled.dispatch_overhead_group_s for v in point]
    assert flat == pytest.approx([8e-6, 64e-6, 40e-6, 16e-6])  # sorted by the member's time
    assert tabled.dispatch_s(True, whole_socket_group=True, task_s=24e-6) == pytest.approx(40e-6)
    assert machine.dispatch_s(all_busy=False, task_s=40e-6, sequence=True) == pytest.approx(4e-6)
    assert machine.recurrent_gemv_max_batch >= 0
    # one size only (--quick): a number
    del raw["dispatch"]["all_cores_busy"]["points"][0]
    quick = CpuMachine.model_validate(
        yaml.safe_load(machine_file.build_machine_file(_fake_spec(), raw, "2000-01-01").text)
    )
    assert quick.dispatch_overhead_busy_s == pytest.approx(120e-6)


def test_busy_dispatch_table_must_increase() -> None:
    from conftest import make_machine
    from pydantic import ValidationError

    m = make_machine()
    with pytest.raises(ValidationError, match="strictly increasing"):
        CpuMachine.model_validate(
            {**m.model_dump(), "dispatch_overhead_busy_s": [[2e-5, 1e-5], [1e-5, 2e-5]]}
        )


# ---- helpers ------------------------------------------------------------------------------------
def _raise(error: BaseException):
    def fn(*_args, **_kwargs):
        raise error

    return fn


def _fake_spec() -> this_cpu.CpuSpec:
    caches = [
        this_cpu.CacheInfo("L1d", 1, 32768, "0", "core", "sysfs index0"),
        this_cpu.CacheInfo("L2", 2, 1 << 20, "0", "core", "sysfs index2"),
        this_cpu.CacheInfo("L3", 3, 32 << 20, "0-1", "socket", "sysfs index3"),
    ]
    return this_cpu.CpuSpec(
        model="Test CPU",
        vendor="Test",
        flags={"avx2", "fma"},
        mhz=2000.0,
        sockets=1,
        cores_per_socket=2,
        threads_per_core=1,
        hypervisor=None,
        caches=caches,
        topology_source="test",
    )


def _fake_raw() -> dict:
    peak = 100e9

    def gemm_s(n: int, h: int, fraction: float) -> float:
        return 2.0 * n * 4 * h * h / (fraction * peak)

    return {
        "peak_gemm": {"size": 1024, "seconds": 2.0 * 1024**3 / peak},
        "gemm_s": {
            "1,128": gemm_s(1, 128, 0.25),
            "1,512": gemm_s(1, 512, 0.2),
            "16,128": gemm_s(16, 128, 0.6),
            "16,512": gemm_s(16, 512, 0.65),
            "256,512": gemm_s(256, 512, 0.9),
        },
        "elementwise_s_per_step": {"lstm,128,1": 21 * 128 / (0.01 * peak)},
        "bandwidth": {
            "L1d": {"working_set_bytes": 16384.0, "gemv_Bps": 80e9, "stream_Bps": 200e9},
            "L2": {"working_set_bytes": 524288.0, "gemv_Bps": 90e9, "stream_Bps": 100e9},
            "L3": {"working_set_bytes": 8e6, "gemv_Bps": 50e9, "stream_Bps": 70e9},
            "DRAM": {
                "working_set_bytes": 256e6,
                "gemv_Bps": 20e9,
                "solo_rounds_Bps": [20e9],
                "concurrent_rounds_Bps": [[15e9, 15e9], [14e9, 14e9], [16e9, 16e9]],
            },
        },
        "handoff_s": {"0": 1e-6, "4096": 1e-6 + 4096 / 1e9, "65536": 1e-6 + 65536 / 1e9},
        "barrier_s": {"2": 1.5e-6},
        "dispatch": {"method": "pipe round trip to a worker process", "dispatch_s": 30e-6},
        "corun": {
            "hidden": 512,
            "cores": [0, 1],
            "slowdown": 1.3,
            "solo_s": [1.0],
            "corun_s": [[1.3, 1.3]],
            "slowdown_per_round": [1.3],
        },
        "cores": [0, 1],
        "numpy": "test",
        "threadpool_info": [{"internal_api": "openblas", "num_threads": 1}],
    }


def test_calibration_mismatch_names_both_cpus() -> None:
    from dataclasses import replace

    from wpsim.machines import load_machine, resolve_machine_path

    host = load_machine(resolve_machine_path("xeon_kvm_2core"))
    cpu = str(host.calibration["cpu_model"])
    here = replace(_fake_spec(), model=cpu, cores_per_socket=host.cores_per_socket)
    assert spec.calibration_mismatch(host, here) is None
    other = spec.calibration_mismatch(host, replace(here, model="Another CPU 9000"))
    assert other is not None and cpu in other and "Another CPU 9000" in other
    fewer = spec.calibration_mismatch(host, replace(here, cores_per_socket=host.total_cores + 2))
    assert fewer is not None and "cores" in fewer
    # spec-sheet machines describe what they say, not this computer
    assert spec.calibration_mismatch(load_machine(resolve_machine_path("epyc7742")), here) is None
