"""Sweeps: specs, results files, resumption (including ``kill -9``), backends, plots, reports."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from wpsim.cli import main
from wpsim.errors import ConfigError
from wpsim.sweep import load_sweep, read_manifest, read_results, run_sweep
from wpsim.sweep.progress import Progress
from wpsim.sweep.spec import expand, file_sha256
from wpsim.sweep.store import RESULTS

ROOT = Path(__file__).resolve().parent.parent

SMALL = """\
name: small
workload: tiny
hardware: xeon8160_2s
engine: {engine}
vary:
  workload.layers: [2, 3]
  policy: [layerwise, wavefront]
  cores: [1, 2, 4]
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def small_spec(tmp_path: Path, engine: str = "analytic") -> Path:
    return write(tmp_path / f"small_{engine}.yaml", SMALL.format(engine=engine))


def raw_rows(folder: Path) -> list[list[str]]:
    with open(folder / RESULTS, newline="") as handle:
        return list(csv.reader(handle))[1:]


# ---- specs --------------------------------------------------------------------------------------


def test_grid_zip_random_and_aliases(tmp_path):
    grid = load_sweep(small_spec(tmp_path))
    assert grid.params == ["workload.layers", "policy", "run.cores"]
    assert grid.n_points == 12 and len(expand(grid)) == 12
    assert expand(grid)[1][1] == {"workload.layers": 2, "policy": "layerwise", "run.cores": 2}
    zipped = load_sweep(
        write(
            tmp_path / "z.yaml",
            "workload: tiny\nhardware: xeon8160_2s\n"
            "mode: zip\nvary:\n  layers: [1, 2]\n  helpers: [1, 2]\n".replace(
                "layers:", "workload.layers:"
            ),
        )
    )
    assert [p for _, p in expand(zipped)] == [
        {"workload.layers": 1, "policy.helpers": 1},
        {"workload.layers": 2, "policy.helpers": 2},
    ]
    text = (
        "workload: tiny\nhardware: xeon8160_2s\nmode: random\nsamples: 20\nseed: {seed}\n"
        "vary:\n  workload.hidden: {{min: 8, max: 512, log: true}}\n"
        "  workload.density: {{min: 0.1, max: 1.0}}\n  policy: [layerwise, wavefront]\n"
    )
    a = expand(load_sweep(write(tmp_path / "r1.yaml", text.format(seed=7))))
    b = expand(load_sweep(write(tmp_path / "r2.yaml", text.format(seed=7))))
    c = expand(load_sweep(write(tmp_path / "r3.yaml", text.format(seed=8))))
    assert a == b and a != c and len(a) == 20
    assert all(
        isinstance(p["workload.hidden"], int) and 8 <= p["workload.hidden"] <= 512 for _, p in a
    )
    assert all(isinstance(p["workload.density"], float) for _, p in a)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("workload: tiny\nhardware: xeon8160_2s\nvary:\n  policy: [layerwise\n", "malformed YAML"),
        (
            "workload: tiny\nhardware: xeon8160_2s\nvary:\n  workload.layerz: [1]\n",
            "field 'vary.workload.layerz': unknown workload field 'layerz'",
        ),
        (
            "workload: tiny\nhardware: xeon8160_2s\nvary:\n  hardware.caches.L9.size_bytes: [1]\n",
            "field 'vary.hardware.caches.L9.size_bytes'",
        ),
        (
            "workload: tiny\nhardware: xeon8160_2s\nvary:\n  frobnicate: [1]\n",
            "field 'vary.frobnicate': unknown parameter path",
        ),
        (
            "workload: tiny\nhardware: xeon8160_2s\nvary:\n  policy: [layerwise, wavefrnt]\n",
            "field 'vary.policy': got 'wavefrnt'",
        ),
        ("workload: tiny\nhardware: xeon8160_2s\npolicy: nope\n", "field 'policy': got 'nope'"),
        (
            "workload: tiny\nhardware: xeon8160_2s\nmode: zip\nvary:\n  cores: [1, 2]\n"
            "  policy: [layerwise]\n",
            "lists of one length",
        ),
        ("workload: nowhere\nhardware: xeon8160_2s\n", "field 'workload': file not found"),
        ("workload: tiny\nhardware: xeon8160_2s\nengine: fast\n", "field 'engine': got 'fast'"),
        ("workload: tiny\nhardware: xeon8160_2s\nmode: random\nvary:\n  cores: [1]\n", "'samples'"),
    ],
)
def test_bad_spec_is_one_line_error_naming_file_and_field(tmp_path, capsys, body, expected):
    spec = write(tmp_path / "bad.yaml", body)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "bad.yaml" in err and expected in err


def test_bad_spec_subprocess_has_no_traceback(tmp_path):
    spec = write(
        tmp_path / "bad.yaml",
        "workload: tiny\nhardware: xeon8160_2s\nvary:\n  hardware.nonsense: [1]\n",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "wpsim", "sweep", str(spec), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "bad.yaml: field 'vary.hardware.nonsense': unknown machine field" in proc.stderr


# ---- results ------------------------------------------------------------------------------------


def test_results_match_direct_calls_and_manifest(tmp_path):
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.model.workload import load_workload
    from wpsim.policies import get_policy
    from wpsim.sim.closed_forms import predict

    out = tmp_path / "out"
    summary = run_sweep(small_spec(tmp_path), out, workers=1, progress=False)
    assert summary.complete and summary.run_now == 12 and summary.failed == 0
    rows = read_results(out)
    assert [r["point"] for r in rows] == list(range(12))
    machine = load_machine(resolve_machine_path("xeon8160_2s"))
    base = load_workload(ROOT / "workloads" / "tiny.yaml")
    for row in rows:
        w = base.model_copy(update={"layers": row["workload.layers"]})
        direct = predict(w, machine, get_policy(row["policy"]), cores=row["run.cores"])
        assert row["makespan_s"] == direct.makespan_s and row["speedup"] == direct.speedup
        assert row["bytes.DRAM"] == direct.level_bytes["DRAM"]
    manifest = read_manifest(out)
    assert manifest["status"] == "complete" and manifest["n_points"] == 12
    assert manifest["wpsim_version"] and manifest["spec"]["vary"]["cores"] == [1, 2, 4]
    hw = ROOT / "hw_configs" / "xeon8160_2s.yaml"
    assert manifest["machine_files"] == {str(hw): file_sha256(hw)}


def test_simulate_rows_match_direct_simulation(tmp_path):
    """The sweep reuses one simulated one-core baseline per workload: same numbers as simulate."""
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.model.workload import load_workload
    from wpsim.sim.engine import simulate

    out = tmp_path / "out"
    run_sweep(small_spec(tmp_path, "simulate"), out, workers=1, progress=False)
    machine = load_machine(resolve_machine_path("xeon8160_2s"))
    base = load_workload(ROOT / "workloads" / "tiny.yaml")
    for row in read_results(out)[::3]:
        w = base.model_copy(update={"layers": row["workload.layers"]})
        direct = simulate(w, machine, row["policy"], cores=row["run.cores"])
        assert (row["makespan_s"], row["sequential_s"]) == (direct.makespan_s, direct.sequential_s)


def test_failed_points_are_recorded_and_do_not_stop_the_sweep(tmp_path, capsys):
    spec = write(
        tmp_path / "f.yaml",
        "workload: tiny\nhardware: xeon8160_2s\nvary:\n"
        "  hardware.caches.L1d.size_bytes: [32768, 4194304]\n"
        "  helpers: [1, 8]\n  cores: [4]\n",
    )
    # a sweep with failed points exits 1 and says how many (issue 17)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "o"), "-j", "1", "-q"]) == 1
    rows = read_results(tmp_path / "o")
    by = {(r["hardware.caches.L1d.size_bytes"], r["policy.helpers"]): r for r in rows}
    assert by[(32768, 1)]["status"] == "ok"
    big = by[(4194304, 1)]
    assert big["status"] == "error" and "each level at least as large" in big["error"]
    assert "hardware: field 'caches'" in big["error"]
    assert by[(32768, 8)]["status"] == "error" and "--helpers" in by[(32768, 8)]["error"]
    captured = capsys.readouterr()
    assert "3 failed" in captured.out
    assert "wpsim sweep: 3 of 4 points failed" in captured.err


def test_resume_skips_done_points_and_gives_same_bytes(tmp_path):
    spec = small_spec(tmp_path)
    part = run_sweep(spec, tmp_path / "a", workers=1, progress=False, max_points=5)
    assert not part.complete and part.run_now == 5
    assert read_manifest(tmp_path / "a")["status"] == "partial"
    rest = run_sweep(spec, tmp_path / "a", workers=1, progress=False)
    assert rest.done_before == 5 and rest.run_now == 7 and rest.complete
    run_sweep(spec, tmp_path / "b", workers=1, progress=False)
    assert (tmp_path / "a" / RESULTS).read_bytes() == (tmp_path / "b" / RESULTS).read_bytes()
    again = run_sweep(spec, tmp_path / "a", workers=1, progress=False)
    assert again.run_now == 0


def test_partial_last_line_is_cut_on_resume(tmp_path):
    spec = small_spec(tmp_path)
    out = tmp_path / "o"
    run_sweep(spec, out, workers=1, progress=False, max_points=4)
    with open(out / RESULTS, "ab") as handle:  # what a power cut mid-write could leave
        handle.write(b"4,3,wavefront,1,ok,,analy")
    assert len(read_results(out)) == 4  # readers ignore it
    summary = run_sweep(spec, out, workers=1, progress=False)
    assert summary.done_before == 4 and summary.complete
    assert [r["point"] for r in read_results(out)] == list(range(12))


def test_other_spec_in_same_folder_is_refused_unless_restart(tmp_path, capsys):
    out = tmp_path / "o"
    run_sweep(small_spec(tmp_path), out, workers=1, progress=False)
    other = write(tmp_path / "other.yaml", SMALL.format(engine="analytic").replace("[2, 3]", "[2]"))
    with pytest.raises(ConfigError, match="different sweep"):
        run_sweep(other, out, workers=1, progress=False)
    summary = run_sweep(other, out, workers=1, progress=False, restart=True)
    assert summary.run_now == 6 and len(read_results(out)) == 6


def test_process_and_dask_backends_give_identical_files(tmp_path):
    pytest.importorskip("distributed")
    spec = small_spec(tmp_path)
    run_sweep(spec, tmp_path / "serial", workers=1, progress=False)
    local = run_sweep(spec, tmp_path / "local", workers=2, progress=False)
    assert local.workers == 2
    dask = run_sweep(
        spec, tmp_path / "dask", backend="dask", workers=2, dask_processes=False, progress=False
    )
    assert dask.backend == "dask" and dask.complete
    expected = (tmp_path / "serial" / RESULTS).read_bytes()
    assert (tmp_path / "local" / RESULTS).read_bytes() == expected
    assert (tmp_path / "dask" / RESULTS).read_bytes() == expected


def test_dask_backend_on_a_running_scheduler(tmp_path):
    distributed = pytest.importorskip("distributed")
    spec = small_spec(tmp_path)
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        summary = run_sweep(
            spec,
            tmp_path / "remote",
            backend="dask",
            scheduler=cluster.scheduler_address,
            progress=False,
        )
    assert summary.complete and summary.workers == 1
    assert len(read_results(tmp_path / "remote")) == 12


def test_policy_mappings_and_other_machine_kinds(tmp_path):
    spec = write(
        tmp_path / "m.yaml",
        "workload: tiny\nhardware: xeon8160_2s\nvary:\n"
        "  policy: [layerwise, {name: wavefront, helpers: 2}]\n  cores: [4]\n",
    )
    run_sweep(spec, tmp_path / "m", workers=1, progress=False)
    labels = [r["policy_label"] for r in read_results(tmp_path / "m")]
    assert labels == ["layerwise", "wavefront, helpers=2"]
    bad = write(
        tmp_path / "b.yaml",
        "workload: tiny\nhardware: xeon8160_2s\nvary:\n  policy: [{name: wavefront, helper: 2}]\n",
    )
    with pytest.raises(ConfigError, match="b.yaml: field 'vary.policy': policy mapping field"):
        load_sweep(bad)
    if not (ROOT / "hw_configs" / "v100.yaml").exists():
        pytest.skip("no GPU machine file in this checkout")
    gpu = write(
        tmp_path / "g.yaml", "workload: tiny\nhardware: v100\nvary:\n  policy: [persistent, gemm]\n"
    )
    run_sweep(gpu, tmp_path / "g", workers=1, progress=False)
    rows = read_results(tmp_path / "g")
    assert [r["status"] for r in rows] == ["ok", "ok"] and rows[0]["makespan_s"] > 0


def test_parquet_next_to_csv_when_pyarrow_is_installed(tmp_path):
    parquet = pytest.importorskip("pyarrow.parquet")
    run_sweep(small_spec(tmp_path), tmp_path / "o", workers=1, progress=False)
    assert read_manifest(tmp_path / "o")["parquet"] is True
    table = parquet.read_table(tmp_path / "o" / "results.parquet")
    assert table.num_rows == 12 and table.column("point").to_pylist() == list(range(12))


def test_scheduler_without_dask_backend_is_an_error(tmp_path, capsys):
    code = main(
        [
            "sweep",
            str(small_spec(tmp_path)),
            "--out",
            str(tmp_path / "o"),
            "--scheduler",
            "tcp://127.0.0.1:1",
        ]
    )
    assert code == 2 and "--scheduler needs --backend dask" in capsys.readouterr().err


KILL_SPEC = """\
name: killme
workload: demo
hardware: xeon8160_2s
engine: simulate
vary:
  workload.layers: [2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
  policy: [layerwise, wavefront]
  cores: [2, 4, 8]
"""


def test_kill_9_mid_sweep_then_resume_gives_every_point_once(tmp_path):
    spec = write(tmp_path / "kill.yaml", KILL_SPEC)
    out = tmp_path / "o"
    command = [
        sys.executable,
        "-m",
        "wpsim",
        "sweep",
        str(spec),
        "--out",
        str(out),
        "--workers",
        "2",
    ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            path = out / RESULTS
            if path.exists() and path.read_bytes().count(b"\n") >= 6:  # header + 5 rows
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)  # the sweep process itself, mid-sweep
        proc.wait(timeout=10)
        first = raw_rows(out)
        assert 5 <= len(first) < 60, "kill came too late to test anything"
        assert len({r[0] for r in first}) == len(first)
        # its worker processes notice the parent is gone and exit
        deadline = time.monotonic() + 10
        while _live_group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _live_group_members(proc.pid), "worker processes outlived the killed sweep"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    resumed = subprocess.run(
        command + ["--quiet", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["done_before"] == len(first) and summary["complete"]
    rows = raw_rows(out)
    assert sorted(int(r[0]) for r in rows) == list(range(60))
    assert all(r[RESULTS_STATUS] == "ok" for r in rows)
    # every point exactly once, and the same numbers a clean run gives
    done = {int(r[0]): r for r in first}
    for r in rows:
        if int(r[0]) in done:
            assert done[int(r[0])] == r


RESULTS_STATUS = 4  # point, workload.layers, policy, run.cores, status


def _live_group_members(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (Linux /proc; empty elsewhere)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, group = fields[0], int(fields[2])
        if group == pgid and state != "Z":
            members.append(int(stat.parent.name))
    return members


# ---- progress, plots, reports -------------------------------------------------------------------


def test_progress_bar_on_terminal_and_lines_elsewhere():
    tty = io.StringIO()
    bar = Progress(10, stream=tty, tty=True)
    bar.update(5)
    bar.close()
    assert "\r" in tty.getvalue() and "5/10 points" in tty.getvalue()
    assert "points/s" in tty.getvalue() and "ETA" in tty.getvalue()
    plain = io.StringIO()
    lines = Progress(10, stream=plain, tty=False, line_interval_s=0.0)
    lines.update(3, failed=1)
    lines.update(7)
    lines.close()
    text = plain.getvalue()
    assert "\r" not in text and "3/10 points" in text and "10/10 points" in text
    assert "1 failed" in text


def test_plot_draws_the_standard_views(tmp_path, capsys):
    out = tmp_path / "o"
    run_sweep(small_spec(tmp_path), out, workers=1, progress=False)
    assert main(["plot", str(out), "--heatmap", "workload.layers,cores"]) == 0
    for name in ("speedup_vs_cores.png", "heatmap_speedup.png", "winners.png"):
        assert (out / "plots" / name).stat().st_size > 1000
    assert main(["plot", str(out), "--heatmap", "workload.layers,nope"]) == 2
    assert "--heatmap: 'nope' is not a varied parameter" in capsys.readouterr().err


def test_report_runs_each_folder_and_reports_failures_one_line(tmp_path, capsys):
    reports = tmp_path / "reports"
    (reports / "good").mkdir(parents=True)
    (reports / "bad").mkdir()
    (reports / "empty").mkdir()
    write(
        reports / "good" / "make_report.py",
        "from pathlib import Path\n\ndef main(out_dir=None):\n"
        "    folder = Path(out_dir) if out_dir else Path(__file__).parent\n"
        "    folder.mkdir(parents=True, exist_ok=True)\n"
        "    (folder / 'done.txt').write_text('ok')\n",
    )
    write(
        reports / "bad" / "make_report.py",
        "def main(out_dir=None):\n    raise ValueError('no data\\nsecond line')\n",
    )
    args = ["report", "--reports-dir", str(reports)]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "report good: ok" in captured.out and (reports / "good" / "done.txt").exists()
    failure = [line for line in captured.err.splitlines() if line.startswith("report bad")]
    assert failure == ["report bad: FAILED: ValueError: no data | second line"]
    assert main([*args, "good", "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "good" / "done.txt").exists()
    assert main([*args, "missing"]) == 2
    assert "report 'missing'" in capsys.readouterr().err


def test_shipped_specs_load():
    specs = sorted((ROOT / "sweeps").glob("*.yaml"))
    assert specs
    for spec in specs:
        assert load_sweep(spec).n_points >= 1


def test_scan_and_finalize_keep_a_points_first_row(tmp_path):
    """Rows out of order, a point written twice (its first row counts), failures, quoted
    fields with commas."""
    from wpsim.sweep import store

    columns = ["point", "workload.cell", "status", "error", "makespan_s"]
    rows = [
        [3, "lstm", "ok", "", 0.5],
        [1, "gru", "error", 'bad "value", twice', ""],
        [3, "lstm", "error", "run again", ""],  # a duplicate: the first row stays
        [0, "a,b", "ok", "", 1.25],
        [2, "rnn", "ok", "", 2.0],
    ]
    path = tmp_path / "results.csv"
    journal = store.ResultsJournal(path, columns)
    journal.open()
    journal.append([dict(zip(columns, row, strict=True)) for row in rows])
    assert store.scan(path, columns) == (4, 1)
    assert journal.finalize() == 4
    lines = path.read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["point", "0", "1", "2", "3"]
    assert lines[4].startswith("3,lstm,ok,") and '"a,b"' in lines[1]


def test_the_journals_counts_are_what_is_on_disk_across_a_resume(tmp_path):
    """The manifest's points and failures after a resumed run (failed points before and after
    the stop, a point's row written twice by an earlier run) equal a scan of the file."""
    from wpsim.sweep import store

    spec = write(
        tmp_path / "s.yaml",
        "workload: tiny\nhardware: xeon8160_2s\nengine: analytic\n"
        "vary:\n  run.cores: [1, 999, 2, 1000, 4, 8]\n",
    )
    out = tmp_path / "o"
    run_sweep(spec, out, workers=1, progress=False, max_points=3)
    lines = (out / RESULTS).read_bytes().splitlines(keepends=True)
    with open(out / RESULTS, "ab") as handle:  # point 1 (failed) again, as "ok"
        handle.write(lines[2].replace(b",error,", b",ok,", 1))
    summary = run_sweep(spec, out, workers=1, progress=False)
    manifest = read_manifest(out)
    columns = lines[0].decode().strip().split(",")
    on_disk, failed = store.scan(out / RESULTS, columns)
    assert (manifest["points_done"], manifest["points_failed"]) == (on_disk, failed) == (6, 2)
    assert summary.done_before == 3 and summary.run_now == 3 and summary.complete


def test_finalize_sorts_random_journals_like_a_dictionary_of_first_rows(tmp_path):
    """Random journals (points out of order, repeated, multi-digit, quoted commas): the file
    finalize writes is each point's first row, in point order."""
    from wpsim.sweep import store

    rng = np.random.default_rng(7)
    columns = ["point", "label", "status"]
    for trial in range(20):
        points = rng.integers(0, 10 ** int(rng.integers(1, 7)), size=int(rng.integers(1, 60)))
        rows = [{"point": int(p), "label": f"x,{i}", "status": "ok"} for i, p in enumerate(points)]
        path = tmp_path / f"r{trial}.csv"
        journal = store.ResultsJournal(path, columns)
        journal.open()
        journal.append(rows)
        first: dict[int, dict] = {}
        for row in rows:
            first.setdefault(row["point"], row)
        assert journal.finalize() == len(first)
        expected = [f'{p},"{first[p]["label"]}",ok' for p in sorted(first)]
        assert path.read_text().splitlines() == ["point,label,status", *expected]


def test_finalize_moves_ascending_batches_whole_and_sorts_the_rest_by_line(tmp_path):
    """Batches appended with their points: ascending batches that do not interleave are put
    in order whole (a file already in order is left as it is); batches that interleave, or a
    batch whose points do not ascend, fall back to the sort by line. Every way, the bytes are
    those of the sort by line."""
    from wpsim.sweep import store

    columns = ["point", "label", "status"]

    def batch(points: list[int]) -> tuple[list[dict], np.ndarray]:
        rows = [{"point": p, "label": f"x,{p}", "status": "ok"} for p in points]
        return rows, np.array(points)

    cases = {
        "in order": [[0, 1, 2], [3, 5], [7]],
        "out of order": [[4, 5], [0, 1, 2, 3], [9], [6, 8]],
        "interleaved": [[0, 2, 4], [1, 3]],
        "not ascending": [[1, 0], [2]],
    }
    for name, batches in cases.items():
        expected_lines = None
        for given in (True, False):  # with the points, and without (the sort by line)
            path = tmp_path / f"{name.replace(' ', '_')}_{given}.csv"
            journal = store.ResultsJournal(path, columns)
            journal.open()
            for points in batches:
                rows, numbers = batch(points)
                journal.append(rows, numbers if given else None)
            before = path.stat().st_mtime_ns
            assert journal.finalize() == sum(map(len, batches)), name
            if given and name == "in order":
                assert path.stat().st_mtime_ns == before  # (not rewritten)
            lines = path.read_text().splitlines()
            body = [int(line.split(",")[0]) for line in lines[1:]]
            assert body == sorted(body), name
            expected_lines = expected_lines or lines
            assert lines == expected_lines, name


class _Backwards:
    """A backend whose chunks finish last sent, first done; ``fail_after`` waits, it raises
    (a lost worker) with chunks finished but not yet appended."""

    workers = 2

    def __init__(self, fail_after: int | None = None) -> None:
        self.flight: list = []
        self.waits = 0
        self.fail_after = fail_after

    def submit(self, chunk) -> None:
        self.flight.append(chunk)

    def pending(self) -> int:
        return len(self.flight)

    def wait(self) -> list:
        from wpsim.sweep.store import FormattedRows

        self.waits += 1
        if self.fail_after is not None and self.waits > self.fail_after:
            raise RuntimeError("lost")
        chunk = self.flight.pop()  # the last sent
        data = "".join(f"{n},x,ok\n" for n in chunk.numbers.tolist()).encode()
        return [(chunk, FormattedRows(data, len(chunk), 0), 0.001)]


def test_finished_chunks_are_appended_in_the_order_sent_and_never_lost(tmp_path):
    """Chunks that finish out of order land in the file in the order sent (so a sweep in point
    order needs no rewrite), and when the run ends by an error, the chunks that finished are
    appended before it propagates."""
    from wpsim.sweep import store
    from wpsim.sweep.run import _drive
    from wpsim.sweep.spec import Points

    columns = ["point", "label", "status"]
    groups = [Points(np.arange(start, start + 3)) for start in range(0, 30, 3)]
    meter = Progress(30, enabled=False)
    path = tmp_path / "in_order.csv"
    journal = store.ResultsJournal(path, columns)
    journal.open()
    assert _drive(_Backwards(), iter(groups), journal, meter, 1.0, 3, 3) == 30
    points = [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]]
    assert points == list(range(30))

    path = tmp_path / "lost.csv"
    journal = store.ResultsJournal(path, columns)
    journal.open()
    backend = _Backwards(fail_after=2)
    with pytest.raises(RuntimeError):
        _drive(backend, iter(groups), journal, meter, 1.0, 3, 3)
    points = [int(line.split(",")[0]) for line in path.read_text().splitlines()[1:]]
    # the fourth chunk sent finished first, then the fifth (sent in its place), then the error:
    # both appended, though the first three never finished
    assert sorted(points) == [9, 10, 11, 12, 13, 14]
