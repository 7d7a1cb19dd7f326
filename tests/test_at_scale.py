"""benchmarks/at_scale.py and its reports: the whole run end to end at 1-2 workers with tiny
workloads (about 10 s), the GPU phase skipped cleanly without CUDA, phase deadlines and kills,
and the two reports regenerated from the CSVs of such a run."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "at_scale.py"
sys.path.insert(0, str(ROOT / "benchmarks"))

import at_scale  # noqa: E402
import at_scale_gpu  # noqa: E402

from wpsim.cli import main as wpsim_main  # noqa: E402


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def manifest(path: Path) -> dict[str, str]:
    return {f"{r['section']}.{r['key']}": r["value"] for r in rows(path / "manifest.csv")}


def run_script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run of every measuring phase at 1-2 workers, shared by the tests below."""
    out = tmp_path_factory.mktemp("at_scale") / "run"
    done = run_script("--out", str(out), "--budget-s", "120", "--tiny", "--cases", "1",
                      "--hardware", str(ROOT / "hw_configs" / "xeon_kvm_2core.yaml"),
                      "--workers", "1,2", "--torch-threads", "2", "--repeats", "1")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_the_run_writes_every_table_and_records_how(tiny_run: Path) -> None:
    names = sorted(p.name for p in tiny_run.iterdir())
    # flat and at most 8 files: what comes back from the device machine's $OUT
    assert names == ["accuracy.csv", "gpu.csv", "manifest.csv", "progress.log", "torch_cpu.csv"]
    record = manifest(tiny_run)
    assert "benchmarks/at_scale.py --out" in record["run.command"]
    assert record["versions.numpy"] and record["machine.usable_cpus"]
    assert record["phase:calibrate.status"].startswith("skipped: --hardware")
    for phase in ("accuracy", "torch"):
        assert record[f"phase:{phase}.status"] == "done", record
        assert "--child" in record[f"phase:{phase}.command"]
    assert float(record["run.wall_s"]) < 120


def test_accuracy_rows_pair_measured_and_predicted_speedups(tiny_run: Path) -> None:
    table = rows(tiny_run / "accuracy.csv")
    policies = {(r["policy"], r["workers"]) for r in table}
    assert ("sequential", "1") in policies
    cpus = min(2, at_scale.usable_cpus())
    if cpus > 1:
        assert {("wavefront", "2"), ("layerwise", "2"), ("pipeline", "2")} <= policies
        # the tiny case has 1 layer: groups of 2 helper cores fit 2 workers better than cores
        assert ("wavefront-h2", "2") in policies
        assert {r["helpers"] for r in table if r["policy"] == "wavefront-h2"} == {"2"}
    for r in table:
        measured, predicted = float(r["measured_speedup"]), float(r["predicted_speedup"])
        assert measured > 0 and predicted > 0
        assert float(r["signed_error"]) == pytest.approx((predicted - measured) / measured,
                                                         rel=1e-3, abs=1e-6)  # fmt: skip


def test_torch_rows_compare_equal_thread_counts(tiny_run: Path) -> None:
    (row,) = rows(tiny_run / "torch_cpu.csv")
    assert int(row["threads"]) == min(2, at_scale.usable_cpus())
    assert row["model_choice"] == "model"
    assert float(row["max_abs_diff"]) < 1e-4  # both computed the same thing
    assert float(row["ratio"]) == pytest.approx(float(row["exec_s"]) / float(row["torch_s"]),
                                                rel=1e-3)  # fmt: skip


def test_gpu_phase_without_cuda_keeps_the_predictions(tiny_run: Path) -> None:
    table = rows(tiny_run / "gpu.csv")
    status = manifest(tiny_run)["phase:gpu.status"]
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the skip path is not taken")
    assert status.startswith("skipped: no CUDA device")
    assert {r["mode"] for r in table} == {"forward", "train"}
    assert {r["precision"] for r in table} == {"fp32", "fp16"}
    for r in table:
        assert r["measured_median_s"] == "" and r["status"].startswith("skipped")
        assert float(r["predicted_s"]) > 0 and float(r["predicted_gemm_s"]) > 0
        assert r["machine_file"] == "hw_configs/h100_sxm.yaml"


def test_a_phase_past_its_hard_deadline_is_killed_and_recorded(tmp_path: Path) -> None:
    # the calibration gets 15% of the budget and is killed at 35%: 3.5 s cannot finish it
    out = tmp_path / "run"
    done = run_script("--out", str(out), "--budget-s", "10", "--phases", "calibrate")
    assert done.returncode == 0, done.stderr[-2000:]
    record = manifest(out)
    assert record["phase:calibrate.status"].startswith("killed at its hard deadline")
    assert not (out / "calibration.yaml").exists()  # calibrate writes atomically: nothing half
    assert float(record["run.wall_s"]) < 10


def test_deadlines_keep_the_later_phases_shares() -> None:
    deadlines = at_scale.Deadlines(t0=0.0, budget_s=100.0, phases=at_scale.PHASES)
    by_name = {p.name: p for p in at_scale.PHASES}
    soft, hard = deadlines.for_phase(by_name["calibrate"], now=0.0)
    assert (soft, hard) == pytest.approx((15.0, 35.0))
    soft, _ = deadlines.for_phase(by_name["accuracy"], now=20.0)
    assert soft == pytest.approx(98.0 - 15.0 - 18.0)  # torch's and gpu's shares kept
    soft, _ = deadlines.for_phase(by_name["torch"], now=70.0)
    assert soft == pytest.approx(98.0 - 18.0)
    soft, hard = deadlines.for_phase(by_name["gpu"], now=90.0)
    assert soft == pytest.approx(98.0) and hard == pytest.approx(99.0)  # killed inside the budget


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    done = run_script("--out", str(tmp_path / "x"), "--phases", "calibrate,nope")
    assert done.returncode == 2 and "unknown phase 'nope'" in done.stderr
    done = run_script("--out", str(tmp_path / "missing" / "x"))
    assert done.returncode == 2
    assert done.stderr.strip().endswith(f"folder {tmp_path / 'missing'} does not exist")


def test_machine_file_follows_the_device_name() -> None:
    assert at_scale_gpu.machine_file("NVIDIA H200", None).name == "h200_sxm.yaml"
    assert at_scale_gpu.machine_file("NVIDIA H100 80GB HBM3", None).name == "h100_sxm.yaml"
    assert at_scale_gpu.machine_file("NVIDIA H200", "x.yaml") == Path("x.yaml")


def test_wheel_recipe_pins_what_the_suite_runs() -> None:
    from importlib import metadata

    text = (ROOT / "benchmarks" / "at_scale_wheels.sh").read_text()
    for package in ("simpy", "pydantic", "pydantic-core", "annotated-types", "typing-inspection",
                    "typing-extensions"):  # fmt: skip
        assert f"{package}=={metadata.version(package)}" in text
    assert ".whl/" in (ROOT / ".gitignore").read_text().split()


def _report_copy(tmp_path: Path, name: str, run: Path, files: list[str]) -> Path:
    reports = tmp_path / "reports"
    shutil.copytree(ROOT / "reports" / name, reports / name,
                    ignore=shutil.ignore_patterns("data"))  # fmt: skip
    (reports / name / "data").mkdir()
    for file in files:
        shutil.copy(run / file, reports / name / "data" / file)
    return reports


def test_real_scaling_report_regenerates_from_the_csvs(tmp_path: Path, tiny_run: Path,
                                                      capsys) -> None:  # fmt: skip
    reports = _report_copy(tmp_path, "real_scaling", tiny_run,
                           ["manifest.csv", "accuracy.csv", "torch_cpu.csv"])  # fmt: skip
    assert wpsim_main(["report", "--reports-dir", str(reports), "real_scaling"]) == 0
    folder = reports / "real_scaling"
    table = rows(folder / "real_scaling.csv")
    assert table and {"workers", "measured_speedup", "predicted_speedup"} <= set(table[0])
    assert all(int(r["workers"]) > 1 for r in table)
    assert (folder / "real_scaling.png").stat().st_size > 5000
    readme = (folder / "README.md").read_text()
    assert "the scale run is pending on a 16-core machine" in readme
    assert "not evaluated" in rows(folder / "errors.csv")[-1]["verdict"]


def test_gpu_report_regenerates_and_scores_measured_rows(tmp_path: Path, tiny_run: Path) -> None:
    reports = _report_copy(tmp_path, "gpu_validation", tiny_run, ["manifest.csv", "gpu.csv"])
    folder = reports / "gpu_validation"
    assert wpsim_main(["report", "--reports-dir", str(reports), "gpu_validation"]) == 0
    if not any(r["measured_median_s"] for r in rows(folder / "data" / "gpu.csv")):
        assert "the GPU run is pending" in (folder / "README.md").read_text()
    # a synthetic measured column (each time 1.5x the prediction): the error is -1/3 everywhere
    table = rows(folder / "data" / "gpu.csv")
    for r in table:
        r["measured_median_s"] = str(1.5 * float(r["predicted_s"]))
    with open(folder / "data" / "gpu.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    assert wpsim_main(["report", "--reports-dir", str(reports), "gpu_validation"]) == 0
    total = rows(folder / "errors.csv")[-1]
    assert total["verdict"] == "MISSED"
    assert float(total["median_abs_error"]) == pytest.approx(1 / 3, rel=1e-3)
    assert "Rows off by more than" in (folder / "README.md").read_text()


@pytest.mark.skipif(not os.environ.get("WPSIM_AT_SCALE_FULL"), reason="set WPSIM_AT_SCALE_FULL=1")
def test_calibration_phase_writes_a_machine_file(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run_script("--out", str(out), "--budget-s", "300", "--phases", "calibrate",
                      timeout=400)  # fmt: skip
    assert done.returncode == 0 and (out / "calibration.yaml").is_file()


def test_device_command_is_one_and_the_same_everywhere() -> None:
    command = at_scale.DEVICE_RUN["command"]
    assert command in at_scale.__doc__
    assert command in (ROOT / "reports" / "real_scaling" / "README.md").read_text()
    assert (
        command.startswith("python3 -m pip install") and "--target /tmp/site .whl/*.whl" in command
    )
    assert at_scale.DEVICE_RUN["carry"] == [".whl"]
    assert at_scale.DEVICE_RUN["timeout_s"] <= 600  # one device command's limit
