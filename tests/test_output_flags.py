"""Every output flag of every command: an unwritable target is one line, exit 2, before any work.

Targets: a missing folder, a folder, an unwritable folder (``/proc``: read-only even for root,
which ignores permission bits), a read-only folder (skipped as root) and ``/dev/full`` (every
write fails: the error must be reported, never "wrote ..." with the data lost).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from wpsim.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "workloads" / "tiny.yaml")

FILE_FLAGS = {
    "--trace": ["simulate", "-w", TINY, "--cores", "2", "--trace"],
    "--gantt": ["simulate", "-w", TINY, "--cores", "2", "--gantt"],
    "--graphml": ["graph", "-w", TINY, "--graphml"],
    "--dot": ["graph", "-w", TINY, "--dot"],
    "--plot": ["graph", "-w", TINY, "--plot"],
    "run --trace": ["run", "-w", TINY, "--workers", "1", "--trace"],
}


def targets(tmp_path: Path, suffix: str) -> dict[str, Path]:
    found = {
        "missing folder": tmp_path / "missing" / f"out{suffix}",
        "a folder": tmp_path,
        "unwritable folder": Path("/proc") / f"wpsim-test{suffix}",
    }
    if os.geteuid() != 0:
        read_only = tmp_path / "ro"
        read_only.mkdir()
        read_only.chmod(stat.S_IRUSR | stat.S_IXUSR)
        found["read-only folder"] = read_only / f"out{suffix}"
    return found


def run_cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


@pytest.mark.parametrize("flag", list(FILE_FLAGS))
def test_unwritable_file_targets_are_one_line_errors(flag, tmp_path, capsys, monkeypatch):
    import wpsim.accel_dispatch
    import wpsim.graph

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the output was checked")

    monkeypatch.setattr(wpsim.graph, "build", no_work)
    monkeypatch.setattr(wpsim.accel_dispatch, "evaluate", no_work)
    monkeypatch.setattr("kernels.executor.execute", no_work)
    suffix = ".png" if flag in ("--gantt", "--plot") else ".json"
    name = flag.split()[-1]
    for what, target in targets(tmp_path, suffix).items():
        code, err = run_cli([*FILE_FLAGS[flag], str(target)], capsys)
        assert code == 2, (what, err)
        assert err.startswith(f"wpsim: error: {name} {target}: "), (what, err)
        assert err.count("\n") == 1, err


@pytest.mark.parametrize("flag", [f for f in FILE_FLAGS if f != "run --trace"])
def test_a_full_disk_is_reported_not_silently_lost(flag, capsys):
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    code, err = run_cli([*FILE_FLAGS[flag], "/dev/full"], capsys)
    assert code == 2, err
    assert err == f"wpsim: error: {flag} /dev/full: cannot write (No space left on device)\n"


@pytest.mark.parametrize("flag", ["--gantt", "--plot"])
def test_unknown_figure_formats_are_refused_before_work(flag, tmp_path, capsys):
    code, err = run_cli([*FILE_FLAGS[flag], str(tmp_path / "g.xyz")], capsys)
    assert code == 2
    assert "unknown figure format '.xyz', expected a file name ending in .png" in err
    assert not list(tmp_path.iterdir())


def test_outputs_are_written_when_the_target_is_fine(tmp_path, capsys):
    for flag, argv in FILE_FLAGS.items():
        if flag == "run --trace":
            continue
        suffix = ".png" if flag in ("--gantt", "--plot") else ".out"
        target = tmp_path / f"{flag.strip('-')}{suffix}"
        assert main([*argv, str(target)]) == 0, capsys.readouterr().err
        assert target.stat().st_size > 0
    capsys.readouterr()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# ---- folders --------------------------------------------------------------------------------
def folder_targets(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    return {
        "a file": a_file,
        "unwritable": Path("/proc/wpsim-test-dir"),
        "under a file": a_file / "sub",
    }


def test_demo_out_is_checked(tmp_path, capsys):
    for what, target in folder_targets(tmp_path).items():
        code, err = run_cli(["demo", "--out", str(target)], capsys)
        assert code == 2, (what, err)
        assert err.startswith(f"wpsim: error: --out {target}: ") and err.count("\n") == 1


def test_plot_out_is_checked(tmp_path, capsys):
    sweep = ROOT / "sweeps" / "cores_scaling.yaml"
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "s"), "-j", "1", "-q"]) == 0
    capsys.readouterr()
    for what, target in folder_targets(tmp_path).items():
        code, err = run_cli(["plot", str(tmp_path / "s"), "--out", str(target)], capsys)
        assert code == 2, (what, err)
        assert err.startswith(f"wpsim: error: --out {target}: ") and err.count("\n") == 1


def test_sweep_out_is_checked_before_any_point(tmp_path, capsys):
    sweep = ROOT / "sweeps" / "cores_scaling.yaml"
    for what, target in folder_targets(tmp_path).items():
        code, err = run_cli(["sweep", str(sweep), "--out", str(target), "-j", "1"], capsys)
        assert code == 2, (what, err)
        assert err.startswith(f"wpsim: error: --out {target}: ") and err.count("\n") == 1


def test_validate_out_is_checked_before_measuring(tmp_path, capsys, monkeypatch):
    import wpsim.validate

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured before checking --out")

    monkeypatch.setattr(wpsim.validate, "validate", no_measuring)
    for what, target in folder_targets(tmp_path).items():
        code, err = run_cli(
            ["validate", "-w", "tiny", "-m", "xeon8160_2s", "--out", str(target)], capsys
        )
        assert code == 2, (what, err)
        assert f"--out {target}: " in err and err.count("\n") == 1


def test_calibrate_out_is_checked_before_measuring(tmp_path, capsys, monkeypatch):
    import wpsim.calibrate

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured before checking --out")

    monkeypatch.setattr(wpsim.calibrate, "calibrate", no_measuring)
    for what, target in {**targets(tmp_path, ".yaml"), "a folder": tmp_path}.items():
        code, err = run_cli(["calibrate", "--out", str(target)], capsys)
        assert code == 2, (what, err)
        assert err.startswith(f"wpsim: error: --out {target}: ") and err.count("\n") == 1


# ---- flags ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "--seed", "-5"], "argument --seed: expected an integer >= 0, got -5"),
        (["calibrate", "--cores", "999"], "--cores: CPU 999 is not one this process may run on"),
        (
            [
                "sweep",
                str(ROOT / "sweeps" / "cores_scaling.yaml"),
                "--out",
                "x",
                "--backend",
                "dask",
                "--scheduler",
                "garbage",
            ],
            "--scheduler: got 'garbage', expected an address",
        ),
        (
            [
                "sweep",
                str(ROOT / "sweeps" / "cores_scaling.yaml"),
                "--out",
                "x",
                "--scheduler",
                "tcp://h:1",
            ],
            "--scheduler needs --backend dask",
        ),
        (["simulate", "-w", "tiny", "--chunk", "7"], "--chunk: got 7, expected at most"),
        (["simulate", "--cores", "0"], "argument --cores: expected a positive integer"),
        (
            ["simulate", "-w", "tiny", "-m", "lstm_accel_2core", "--cores", "1000000000"],
            "--cores 1000000000: expected 1..4096",
        ),
        (["run", "--stall-timeout", "-1"], "argument --stall-timeout: expected seconds > 0"),
    ],
)
def test_bad_flags_are_one_line_errors(argv, fragment, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err and err.count("\n") == 1, err
    assert "Traceback" not in err


def test_json_never_holds_infinity_or_nan(tmp_path, capsys):
    """A machine whose numbers are finite but extreme: the command refuses rather than print
    ``Infinity``; and whatever JSON is printed parses strictly."""
    text = (ROOT / "hw_configs" / "xeon8160_2s.yaml").read_text()
    path = tmp_path / "m.yaml"
    path.write_text(text.replace("clock_hz: ", "clock_hz: 1.0e-320  #", 1))
    code, err = run_cli(["simulate", "-w", "tiny", "-m", str(path), "--json"], capsys)
    assert code == 2 and "expected a finite time above 0" in err
    assert main(["simulate", "-w", "tiny", "--json"]) == 0
    out = capsys.readouterr().out
    json.loads(out, parse_constant=lambda name: pytest.fail(f"{name} in JSON output"))
