"""This computer's calibration (``-m host``, wpsim.machines.host) and ``--chunk auto`` (wpsim.tune).

The suite runs with a fake CPU model and an empty calibration cache (tests/conftest.py); each test
here that writes a calibration uses a cache folder of its own.
"""

from __future__ import annotations

import doctest
import io
import json
import shutil
from pathlib import Path

import pytest

from wpsim import tune
from wpsim.cli import main
from wpsim.errors import ConfigError
from wpsim.machines import HW_CONFIG_DIR, host, load_machine, resolve_machine_path
from wpsim.measure import host as host_calibration
from wpsim.model.workload import DEFAULT_WORKLOAD, Workload
from wpsim.sim.closed_forms import predict

EXAMPLE = HW_CONFIG_DIR / "xeon_kvm_2core.yaml"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty calibration cache of this test's own."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("WPSIM_CACHE_DIR", str(folder))
    return folder


def fake_calibrate(lines: list[str] | None = None):
    """A stand-in for wpsim.measure.calibrate.calibrate: reports steps like the real one and writes a
    copy of the example machine file (the real measurement is tested in test_calibrate.py)."""

    def calibrate(out, quick=False, progress=None, cores=None):
        for i in (1, 5, 9):
            progress(f"calibrate: [{i}/9] step {i} ...")
            progress("calibrate:   done in 0.1 s")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(EXAMPLE, out)
        if lines is not None:
            lines.append(str(out))

    return calibrate


@pytest.mark.parametrize("module", [host, tune])
def test_docstring_examples(module) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0


# ---- the key and the cache ------------------------------------------------------------------------
def test_the_key_names_the_cpu_cores_and_libraries(cache: Path) -> None:
    key = host.host_key()
    assert key["cpu_model"] == "wpsim test CPU (fake, set by tests/conftest.py)"
    assert key["cores"] >= 1 and key["numpy"] and key["blas"]
    path = host.host_file(key)
    assert path.parent == cache and path.name.startswith("host-wpsim-test-cpu")


@pytest.mark.parametrize(
    "change", [{"cpu_model": "Another CPU 9000"}, {"cores": 64}, {"numpy": "9.9.9"}, {"blas": "x"}]
)
def test_another_computer_or_library_is_another_file(change: dict, cache: Path) -> None:
    key = host.host_key()
    assert host.host_file({**key, **change}) != host.host_file(key)


def test_cache_folder_defaults_to_the_platform_user_cache(monkeypatch) -> None:
    import platformdirs

    monkeypatch.delenv("WPSIM_CACHE_DIR")
    assert host.cache_dir() == Path(platformdirs.user_cache_dir("wpsim", appauthor=False))


def test_another_cpu_model_finds_no_calibration(cache: Path, monkeypatch) -> None:
    host.host_file().parent.mkdir(parents=True)
    shutil.copy(EXAMPLE, host.host_file())
    assert host.find_host_calibration() is not None
    monkeypatch.setenv("WPSIM_CPU_MODEL", "Another CPU 9000")
    assert host.find_host_calibration() is None


# ---- -m host --------------------------------------------------------------------------------------
@pytest.mark.usefixtures("cache")
@pytest.mark.parametrize("command", ["simulate", "predict", "compare"])
def test_host_without_a_calibration_is_one_line_saying_how(command: str, capsys) -> None:
    assert main([command, "-w", "tiny", "-m", "host"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no calibration of this computer" in err
    assert "wpsim calibrate" in err and "wpsim test CPU" in err


@pytest.mark.usefixtures("cache")
def test_validate_without_a_calibration_mentions_calibrate_flag(capsys) -> None:
    assert main(["validate", "-w", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--calibrate" in err and "wpsim calibrate" in err


def test_host_resolves_to_the_cached_calibration(cache: Path, capsys) -> None:
    host.host_file().parent.mkdir(parents=True)
    shutil.copy(EXAMPLE, host.host_file())
    assert resolve_machine_path("host") == host.host_file()
    assert main(["simulate", "-w", "tiny", "-m", "host", "--cores", "2"]) == 0
    assert "Intel Xeon KVM guest" in capsys.readouterr().out


def test_calibrate_writes_this_computers_entry_by_default(cache: Path, monkeypatch) -> None:
    from wpsim.measure import calibrate

    written: list[str] = []
    monkeypatch.setattr(calibrate, "calibrate", fake_calibrate(written))
    path = host_calibration.calibrate_host(quick=True, stream=io.StringIO())
    assert written == [str(host.host_file())] and path == host.host_file()
    assert host.find_host_calibration() == path


def test_calibrate_flag_makes_a_quick_one_with_a_progress_bar(cache: Path, monkeypatch, capsys):
    from wpsim.measure import calibrate

    monkeypatch.setattr(calibrate, "calibrate", fake_calibrate())
    assert host.find_host_calibration() is None
    assert main(["run", "-w", "tiny", "--workers", "1", "--calibrate", "--json"]) == 0
    captured = capsys.readouterr()
    assert host.find_host_calibration() is not None
    assert "calibrating this computer (quick) [####################] 9/9" in captured.err
    summary = json.loads(captured.out)
    assert summary["chunk_choice"]["source"] == "model"
    assert "Intel Xeon KVM guest" in summary["chunk_choice"]["machine"]


def test_progress_bar_redraws_in_place_on_a_terminal() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out = Terminal()
    bar = host_calibration.ProgressBar(out, "calibrating", width=10)
    bar.update("calibrate: [1/2] first ...")
    bar.update("calibrate: warning: the machine is busy")
    bar.update("calibrate: [2/2] second ...")
    bar.close()
    text = out.getvalue()
    assert text.count("\r") == 2 and "[#####-----] 1/2 first" in text
    assert "\ncalibrate: warning: the machine is busy\n" in text and text.endswith("\n")


# ---- --chunk auto -----------------------------------------------------------------------------------
@pytest.mark.parametrize("seq_len", [1, 2, 6, 100, 1000, 5000])
def test_chunk_candidates(seq_len: int) -> None:
    chunks = tune.chunk_candidates(seq_len)
    assert chunks == sorted(set(chunks)) and chunks[-1] == seq_len
    assert all(1 <= c <= seq_len for c in chunks)
    counts = [Workload(cell="rnn", hidden=1, input=1, seq_len=seq_len).n_chunks(c) for c in chunks]
    assert len(set(counts)) == len(counts)  # each number of chunks once
    assert max(counts) <= tune.MAX_CHUNKS
    if seq_len <= tune.MAX_CHUNKS:
        assert chunks[0] == 1


def test_the_model_picks_the_fastest_candidate() -> None:
    machine = load_machine(EXAMPLE)
    w = Workload(cell="gru", layers=3, hidden=128, input=64, seq_len=40)
    choice = tune.choose_chunk(w, "wavefront", 2, machine)
    spans = {
        c: predict(w, machine, "wavefront", cores=2, chunk=c).makespan_s
        for c in tune.chunk_candidates(40)
    }
    assert choice.source == "model" and choice.candidates == len(spans)
    assert choice.predicted_makespan_s == pytest.approx(min(spans.values()))
    assert spans[choice.chunk] == min(spans.values())


def test_the_rule_applies_without_a_cpu_calibration() -> None:
    gpu = load_machine(resolve_machine_path("v100"))
    for machine in (None, gpu):
        choice = tune.choose_chunk(DEFAULT_WORKLOAD, "wavefront", 2, machine)
        assert (choice.source, choice.chunk) == ("rule", 13)  # ceil(100 / (4 x 2))
    assert tune.choose_chunk(DEFAULT_WORKLOAD, "sequential", 1, None).chunk == 100
    # helpers: groups, not workers, count
    assert tune.choose_chunk(DEFAULT_WORKLOAD, "wavefront", 1, None).chunk == 100


def test_more_workers_than_cores_are_predicted_on_every_core() -> None:
    machine = load_machine(EXAMPLE)
    assert tune.choose_chunk(DEFAULT_WORKLOAD, "wavefront", 8, machine).source == "model"


def test_the_first_session_is_predicted_to_speed_up_on_the_example_calibration() -> None:
    """README: `run --policy wavefront --workers 2` against `run --policy sequential --workers
    1`, each with the chunk --chunk auto picks, on the computer wpsim was developed on."""
    machine = load_machine(EXAMPLE)
    seq = tune.choose_chunk(DEFAULT_WORKLOAD, "sequential", 1, machine)
    wave = tune.choose_chunk(DEFAULT_WORKLOAD, "wavefront", 2, machine)
    assert seq.predicted_makespan_s / wave.predicted_makespan_s >= 1.4


def test_run_prints_its_choice(cache: Path, capsys) -> None:
    assert main(["run", "-w", "tiny", "--workers", "1", "-m", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "run: --chunk auto: chunk" in out and "lowest predicted makespan" in out


def test_validate_chooses_the_chunk_of_its_last_policy_on_the_most_workers(capsys) -> None:
    args = [
        "validate",
        "-w",
        "tiny",
        "-m",
        str(EXAMPLE),
        "--workers",
        "1",
        "--policies",
        "sequential",
        "--repeats",
        "1",
        "--json",
    ]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    expected = tune.choose_chunk(load_machine_tiny(), "sequential", 1, load_machine(EXAMPLE))
    assert {row["chunk"] for row in report["rows"]} == {expected.chunk}


def load_machine_tiny() -> Workload:
    from wpsim.model.workload import resolve_workload

    return resolve_workload("tiny")


@pytest.mark.parametrize("command", ["run", "validate"])
def test_chunk_auto_refuses_a_run_no_chunk_fits_before_predicting(
    command: str, tmp_path: Path, monkeypatch, capsys
) -> None:
    """10^8 steps: the executor's arrays exceed any computer at every chunk; the size guard
    says so before the model predicts the candidates (minutes for a graph this long)."""

    def predict_nothing(*args, **kwargs):
        raise AssertionError("chunk candidates predicted before the size guard")

    monkeypatch.setattr(tune, "choose_chunk", predict_nothing)
    path = tmp_path / "long.yaml"
    path.write_text("cell: lstm\nlayers: 1024\nhidden: 16\ninput: 16\nseq_len: 100000000\n")
    assert main([command, "-w", str(path), "-m", str(EXAMPLE), "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wpsim: error: run: workload {path} needs about ") and "arrays" in err
    assert err.count("\n") == 1


def test_chunk_must_be_a_number_or_auto() -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["run", "--chunk", "fast"])
    assert exit_.value.code == 2


def test_missing_message_names_the_folder(cache: Path) -> None:
    with pytest.raises(ConfigError, match=str(cache)):
        host.require_host_calibration()


def test_a_sweep_on_host(cache: Path, tmp_path: Path, capsys) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("workload: tiny\nhardware: host\nvary:\n  cores: [1, 2]\n")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "no calibration of this computer" in capsys.readouterr().err
    host.host_file().parent.mkdir(parents=True)
    shutil.copy(EXAMPLE, host.host_file())
    assert (
        main(["sweep", str(spec), "--out", str(tmp_path / "o"), "--quiet", "--workers", "1"]) == 0
    )
