"""Sweeps under attack and failure: planted links, lost Dask workers, failed points, huge grids."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from wpsim.cli import main
from wpsim.errors import ConfigError, WpsimError
from wpsim.sweep import read_manifest, run_sweep
from wpsim.sweep.store import LOCK, MANIFEST, RESULTS

ROOT = Path(__file__).resolve().parent.parent

SPEC = """\
name: small
workload: tiny
hardware: xeon8160_2s
vary:
  workload.layers: [2, 3]
  policy: [layerwise, wavefront]
  cores: [1, 2, 4]
"""


def spec_file(tmp_path: Path, text: str = SPEC) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    return path


# ---- planted links ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name", [f".{RESULTS}.tmp", f".{MANIFEST}.tmp", ".results.parquet.tmp", RESULTS + ".tmp"]
)
def test_a_link_planted_at_a_temporary_name_is_never_written_through(tmp_path, name):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    (out / name).symlink_to(victim)
    summary = run_sweep(spec_file(tmp_path), out, workers=1, progress=False)
    assert summary.complete
    assert victim.read_text() == "precious"
    assert (out / name).is_symlink()  # left alone, never followed
    assert len((out / RESULTS).read_text().splitlines()) == 13


@pytest.mark.parametrize("name", [LOCK, RESULTS, MANIFEST])
def test_a_link_planted_at_the_lock_or_a_result_is_refused(tmp_path, name, capsys):
    """A partial sweep, then another user replaces one of its files with a link to a file the
    sweep's owner can write: resuming refuses, and the victim is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    out = tmp_path / "out"
    spec = spec_file(tmp_path)
    assert main(["sweep", str(spec), "--out", str(out), "-j", "1", "-q", "--max-points", "3"]) == 0
    (out / name).unlink()
    (out / name).symlink_to(victim)
    code = main(["sweep", str(spec), "--out", str(out), "-j", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "symbolic link" in err and str(out / name) in err
    assert victim.read_text() == "precious"


def test_a_pipe_planted_at_the_results_file_does_not_hang_the_sweep(tmp_path, capsys):
    out = tmp_path / "out"
    spec = spec_file(tmp_path)
    assert main(["sweep", str(spec), "--out", str(out), "-j", "1", "-q", "--max-points", "3"]) == 0
    (out / RESULTS).unlink()
    os.mkfifo(out / RESULTS)
    code = main(["sweep", str(spec), "--out", str(out), "-j", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "not a regular file" in err and err.count("\n") == 1


# ---- failed points, huge grids ------------------------------------------------------------------
def test_a_sweep_whose_points_all_fail_exits_1_and_says_so(tmp_path, capsys):
    spec = spec_file(
        tmp_path, "workload: tiny\nhardware: xeon8160_2s\nvary:\n  cores: [999, 1000]\n"
    )
    code = main(["sweep", str(spec), "--out", str(tmp_path / "o"), "-j", "1", "-q"])
    captured = capsys.readouterr()
    assert code == 1
    assert "wpsim sweep: 2 of 2 points failed" in captured.err
    assert read_manifest(tmp_path / "o")["points_failed"] == 2


def test_a_grid_over_the_limit_needs_yes_and_shows_count_and_time(tmp_path, capsys, monkeypatch):
    import wpsim.cli.sweep

    monkeypatch.setattr(wpsim.cli.sweep, "CONFIRM_POINTS", 10)
    spec = spec_file(tmp_path)
    code = main(["sweep", str(spec), "--out", str(tmp_path / "o"), "-j", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "12 points (about " in err and "points/s per worker" in err and "--yes" in err
    assert not (tmp_path / "o").exists()
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "-j", "1", "-q", "--yes"]) == 0
    assert (
        main(
            [
                "sweep",
                str(spec),
                "--out",
                str(tmp_path / "p"),
                "-j",
                "1",
                "-q",
                "--max-points",
                "10",
            ]
        )
        == 0
    )


def test_a_ten_billion_point_grid_is_refused_at_once(tmp_path, capsys):
    values = ", ".join(str(v) for v in range(1, 101))
    spec = spec_file(
        tmp_path,
        "workload: tiny\nhardware: xeon8160_2s\nvary:\n"
        f"  workload.hidden: [{values}]\n  workload.input: [{values}]\n"
        f"  workload.batch: [{values}]\n  workload.layers: [{values}]\n"
        f"  cores: [{values}]\n",
    )
    code = main(["sweep", str(spec), "--out", str(tmp_path / "o"), "-j", "1", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "10,000,000,000 points" in err and "--yes" in err


# ---- Dask: lost workers ---------------------------------------------------------------------------
def test_lost_dask_workers_end_the_sweep_with_one_line_and_resume_works(tmp_path, capsys):
    distributed = pytest.importorskip("distributed")
    spec = spec_file(
        tmp_path,
        SPEC.replace("cores: [1, 2, 4]", "cores: [1, 2, 3, 4, 6, 8, 12, 16]")
        + "engine: simulate\n",
    )
    out = tmp_path / "out"
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    )
    stop = threading.Event()

    def close_after_first_rows() -> None:
        while not stop.is_set():
            results = out / RESULTS
            if results.exists() and len(results.read_bytes().splitlines()) >= 3:
                cluster.close()
                return
            time.sleep(0.01)

    closer = threading.Thread(target=close_after_first_rows, daemon=True)
    closer.start()
    try:
        with pytest.raises(WpsimError) as error:
            run_sweep(
                spec,
                out,
                backend="dask",
                scheduler=cluster.scheduler_address,
                progress=False,
                chunk_target_s=0.01,
                max_chunk=2,
            )
    finally:
        stop.set()
        closer.join(10)
        cluster.close()
    message = str(error.value)
    assert "\n" not in message and "lost the workers or the scheduler" in message
    assert "run the same command again to resume" in message
    on_disk = len((out / RESULTS).read_text().splitlines()) - 1
    manifest = json.loads((out / MANIFEST).read_text())
    assert 2 <= on_disk < 32
    assert manifest["points_done"] == on_disk and manifest["status"] == "partial"
    resumed = run_sweep(spec, out, workers=1, progress=False)
    assert resumed.complete and resumed.done_before == on_disk
    fresh = run_sweep(spec, tmp_path / "fresh", workers=1, progress=False)
    assert fresh.complete
    assert (out / RESULTS).read_bytes() == (tmp_path / "fresh" / RESULTS).read_bytes()


def test_a_lost_dask_worker_on_the_command_line_is_exit_2(tmp_path, capsys, monkeypatch):
    """The CLI's side of the above: the backend's error is one line and exit status 2."""
    from wpsim.sweep import run as sweep_run

    def lost(*args, **kwargs):
        raise sweep_run.lost_workers(RuntimeError("FutureCancelledError: all workers died"))

    monkeypatch.setattr(sweep_run, "run_sweep", lost)
    monkeypatch.setattr("wpsim.sweep.run_sweep", lost)
    code = main(
        [
            "sweep",
            str(spec_file(tmp_path)),
            "--out",
            str(tmp_path / "o"),
            "--backend",
            "dask",
            "-j",
            "1",
            "-q",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "lost the workers" in err


def test_unknown_scheduler_addresses_are_refused_before_connecting(tmp_path):
    from wpsim.sweep.run import check_scheduler

    for bad in ("garbage", "http://x:1", "tcp://", "tcp://a b:1"):
        with pytest.raises(ConfigError, match="expected an address such as tcp://HOST:PORT"):
            check_scheduler(bad)


def test_a_dask_cluster_left_without_workers_ends_the_sweep(tmp_path):
    """The scheduler stays up but every worker retires: the scattered context goes with them,
    Dask cancels the chunks, and the sweep ends with one line; what finished is saved."""
    distributed = pytest.importorskip("distributed")
    spec = spec_file(
        tmp_path,
        SPEC.replace("cores: [1, 2, 4]", "cores: [1, 2, 3, 4, 6, 8, 12, 16]")
        + "engine: simulate\n",
    )
    out = tmp_path / "out"
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    )
    stop = threading.Event()

    def retire_after_first_rows() -> None:
        while not stop.is_set():
            results = out / RESULTS
            if results.exists() and len(results.read_bytes().splitlines()) >= 3:
                cluster.scale(0)
                return
            time.sleep(0.01)

    retirer = threading.Thread(target=retire_after_first_rows, daemon=True)
    retirer.start()
    try:
        with pytest.raises(WpsimError, match=r"^--backend dask: lost the workers") as error:
            run_sweep(
                spec,
                out,
                backend="dask",
                scheduler=cluster.scheduler_address,
                progress=False,
                chunk_target_s=0.01,
                max_chunk=2,
            )
    finally:
        stop.set()
        retirer.join(10)
        cluster.close()
    assert "\n" not in str(error.value)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["points_done"] == len((out / RESULTS).read_text().splitlines()) - 1 >= 2


# ---- local workers ------------------------------------------------------------------------------
def _watch_then_sleep(parent: int, seconds: float) -> None:
    from wpsim.sweep.evaluate import _watch_parent

    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    time.sleep(seconds)  # exit status 1 if the watch took the coordinator for dead


@pytest.mark.parametrize("method", ["fork", "forkserver"])
def test_a_local_worker_lives_as_long_as_its_coordinator(method):
    """A coordinator that runs other threads starts its workers through the forkserver, whose
    children have the forkserver as parent: the watch must not take that for a dead coordinator
    (every worker exited after half a second, and the sweep ended with 'a worker process died')."""
    import multiprocessing as mp

    proc = mp.get_context(method).Process(target=_watch_then_sleep, args=(os.getpid(), 1.5))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0


def test_a_local_worker_ends_when_its_coordinator_is_gone():
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    gone = ctx.Process(target=time.sleep, args=(0,))
    gone.start()
    gone.join()
    proc = ctx.Process(target=_watch_then_sleep, args=(gone.pid, 10))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 1


def test_an_analytic_sweeps_rate_is_measured_as_workers_evaluate_it(tmp_path, monkeypatch):
    """The time shown before a large analytic sweep comes from its points evaluated a chunk at
    once (as a worker does), not one at a time (about 70x slower)."""
    from wpsim.sweep import evaluate
    from wpsim.sweep.run import measure_rate
    from wpsim.sweep.spec import load_sweep

    spec = spec_file(tmp_path)

    def one_at_a_time(*args, **kwargs):
        raise AssertionError("an analytic sweep's rate was measured point by point")

    monkeypatch.setattr(evaluate.Evaluator, "row", one_at_a_time)
    rate = measure_rate(load_sweep(spec))
    assert rate is not None and rate > 0
