"""`wpsim validate --measured`: measurements made elsewhere (a CSV, a torch.profiler trace)
against simulations of the same configurations; bad files are one line."""

from __future__ import annotations

import csv
import gzip
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wpsim.cli import main
from wpsim.engine import simulate
from wpsim.hardware import load_machine, resolve_machine_path
from wpsim.measured import read_measurements, trace_span_s
from wpsim.policies import get_policy
from wpsim.validate import validate_measured
from wpsim.workload import DEFAULT_WORKLOAD, Workload

DATA = Path(__file__).resolve().parent / "data"
FIXTURE = DATA / "torch_profiler_lstm.json"  # torch.profiler, a 1-layer LSTM at 1 and 2 threads
XEON = "xeon8160_2s"
SMALL = Workload(cell="lstm", layers=2, hidden=64, input=64, seq_len=10)


def write_csv(path: Path, header: str, *rows: str) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


# ---- a CSV ------------------------------------------------------------------------------------
def test_a_csv_is_compared_with_simulations_of_the_same_configurations(tmp_path) -> None:
    path = write_csv(
        tmp_path / "m.csv",
        "# threads of a framework that splits every product: layerwise",
        "policy,threads,seconds,cell,layers,hidden,input,seq_len",
        "layerwise,1,0.0040,lstm,2,64,64,10",
        "layerwise,2,0.0030,lstm,2,64,64,10",
        "layerwise,1,0.0044,lstm,2,64,64,10",
        "wavefront,2,0.0025,lstm,2,64,64,10",
    )
    [report] = validate_measured(path, DEFAULT_WORKLOAD, XEON, out_dir=tmp_path / "out")
    machine = load_machine(resolve_machine_path(XEON))
    rows = {(r["policy"], r["workers"]): r for r in report.rows}
    base = rows[("layerwise", 1)]
    assert base["baseline"] and base["measured_makespans_s"] == [0.0040, 0.0044]
    assert base["measured_makespan_s"] == pytest.approx(0.0042)
    assert report.workload == SMALL and report.measured_file == str(path)
    for (policy, n), row in rows.items():
        sim = simulate(SMALL, machine, policy, cores=n)
        assert row["predicted_makespan_s"] == pytest.approx(sim.makespan_s, rel=1e-12)
        assert row["measured_speedup"] == pytest.approx(0.0042 / row["measured_makespan_s"])
        assert row["predicted_speedup"] == pytest.approx(
            base["predicted_makespan_s"] / row["predicted_makespan_s"]
        )
        predicted = row["predicted_breakdown_s"]
        assert math.fsum(predicted.values()) == pytest.approx(row["predicted_makespan_s"])
        assert row["measured_dispatch_s"] is None and row["measured_idle_share"] is None
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["gantt_layerwise_1w.png", "gantt_layerwise_2w.png",
                     "gantt_wavefront_2w.png", "per_kind.csv", "validation.csv",
                     "validation.json"]  # fmt: skip
    with open(tmp_path / "out" / "validation.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [r["policy"] for r in table] == ["layerwise", "layerwise", "wavefront"]
    assert float(table[1]["predicted.compute_s"]) > 0.0


def test_the_baseline_is_the_fewest_workers_sequential_first(tmp_path) -> None:
    # (the header starts with a spreadsheet's byte order mark)
    path = write_csv(tmp_path / "m.csv", "\ufeffpolicy,workers,seconds", "wavefront,2,1.0",
                     "layerwise,1,2.0", "sequential,1,3.0")  # fmt: skip
    [report] = validate_measured(path, SMALL, XEON)
    assert [(r["policy"], r["baseline"]) for r in report.rows] == [
        ("sequential", True), ("wavefront", False), ("layerwise", False)]  # fmt: skip
    assert report.rows[1]["measured_speedup"] == 3.0


def test_rows_of_several_workloads_are_several_comparisons(tmp_path, capsys) -> None:
    workload = tmp_path / "w.yaml"
    workload.write_text(
        "name: from-file\ncell: gru\nlayers: 1\nhidden: 32\ninput: 32\nseq_len: 5\n"
    )
    path = write_csv(tmp_path / "m.csv", "workload,hidden,policy,threads,seconds",
                     "w.yaml,,sequential,1,0.002", "w.yaml,,wavefront,2,0.001",
                     ",128,sequential,1,0.004", ",128,wavefront,2,0.003")  # fmt: skip
    out = tmp_path / "out"
    code = main(["validate", "--measured", str(path), "-w", "tiny", "-m", XEON, "--json",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    reports = json.loads(capsys.readouterr().out)["reports"]
    assert [r["workload"] for r in reports] == ["from-file", ""]
    assert reports[1]["workload_spec"]["hidden"] == 128  # tiny's other fields
    assert sorted(p.name for p in out.iterdir()) == ["1-from-file", "2-lstm"]
    assert main(["validate", "--measured", str(path), "-m", XEON]) == 0
    text = capsys.readouterr().out
    assert text.count("validate: ") == 2 and "measured elsewhere" in text and "why" in text


def test_a_trace_column_times_a_whole_trace_file(tmp_path) -> None:
    events = [{"ph": "X", "name": "op", "ts": 10.0, "dur": 500.0, "pid": 1, "tid": 1},
              {"ph": "B", "name": "step", "ts": 600.0, "pid": 1, "tid": 2},
              {"ph": "E", "ts": 2010.0, "pid": 1, "tid": 2},
              {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "x"}}]  # fmt: skip
    (tmp_path / "run.json").write_text(json.dumps(events))  # a bare array of events
    with gzip.open(tmp_path / "run2.json.gz", "wt") as handle:
        json.dump({"traceEvents": events[:1]}, handle)
    assert trace_span_s(tmp_path / "run.json") == pytest.approx(2000e-6)
    path = write_csv(tmp_path / "m.csv", "policy,workers,trace", "sequential,1,run.json",
                     "wavefront,2,run2.json.gz")  # fmt: skip
    runs = read_measurements(path, SMALL, XEON, 1)
    assert [r.seconds for r in runs] == pytest.approx([2000e-6, 500e-6])


# ---- a torch.profiler trace -----------------------------------------------------------------------
def annotated_runs(path: Path) -> list[tuple[str, float]]:
    """(name, seconds) of the trace's 'wpsim ...' events, read straight from the JSON."""
    events = json.loads(path.read_text())["traceEvents"]
    return [(e["name"], e["dur"] * 1e-6) for e in events
            if e.get("ph") == "X" and e["name"].startswith("wpsim ")]  # fmt: skip


def test_the_committed_torch_profiler_trace(tmp_path) -> None:
    runs = read_measurements(FIXTURE, DEFAULT_WORKLOAD, XEON, 1)
    expected = annotated_runs(FIXTURE)
    assert len(runs) == len(expected) == 4
    assert [r.seconds for r in runs] == pytest.approx([s for _, s in expected])
    assert [r.workers for r in runs] == [1, 2, 1, 2]
    fixture = Workload(name="fixture-lstm", cell="lstm", layers=1, hidden=16, input=16, seq_len=4)
    assert {r.workload for r in runs} == {fixture}
    [report] = validate_measured(FIXTURE, DEFAULT_WORKLOAD, XEON)
    assert [(r["policy"], r["workers"], len(r["measured_makespans_s"])) for r in report.rows] == [
        ("layerwise", 1, 2), ("layerwise", 2, 2)]  # fmt: skip


def test_a_torch_profiler_trace_made_here(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile, record_function

    lstm = torch.nn.LSTM(8, 8).eval()
    x = torch.randn(3, 1, 8)
    (tmp_path / "w.yaml").write_text("cell: lstm\nhidden: 8\ninput: 8\nseq_len: 3\n")
    threads = torch.get_num_threads()
    try:
        with torch.no_grad(), profile(activities=[ProfilerActivity.CPU]) as prof:
            for n in (1, 2):
                torch.set_num_threads(n)
                with record_function(f"wpsim policy=layerwise threads={n} workload=w.yaml"):
                    lstm(x)
    finally:
        torch.set_num_threads(threads)
    trace = tmp_path / "trace.json"
    prof.export_chrome_trace(str(trace))
    [report] = validate_measured(trace, DEFAULT_WORKLOAD, XEON)
    measured = [s for _, s in annotated_runs(trace)]
    assert [r["measured_makespan_s"] for r in report.rows] == pytest.approx(measured)
    assert report.workload.hidden == 8 and report.rows[0]["baseline"]


def test_the_timing_script_writes_what_validate_reads(tmp_path) -> None:
    pytest.importorskip("torch")
    script = Path(__file__).resolve().parent.parent / "benchmarks" / "torch_lstm_timing.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path), "--layers", "1", "--hidden", "8",
         "--input", "8", "--seq-len", "3", "--rounds", "2", "--passes", "2"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name in ("timings.csv", "trace.json"):
        [report] = validate_measured(tmp_path / name, DEFAULT_WORKLOAD, XEON)
        assert [(r["policy"], r["workers"]) for r in report.rows] == [("layerwise", 1),
                                                                       ("layerwise", 2)]  # fmt: skip
        assert report.workload.hidden == 8 and report.workload.name == "torch-lstm"
    rows = list(csv.DictReader(open(tmp_path / "timings.csv")))
    assert len(rows) == 4 and all(float(r["seconds"]) > 0 for r in rows)


# ---- bad files: one line, exit status 2 ---------------------------------------------------------
HEADER = "policy,threads,seconds"
TRACE_EVENT = {"ph": "X", "name": "wpsim policy=sequential threads=1", "ts": 0.0, "dur": 5.0}


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("a.csv", f"{HEADER}\nlayerwise,1,abc\n", "a.csv: row 2: column 'seconds': got 'abc'"),
        ("a.csv", "policy,thread,seconds\nlayerwise,1,0.1\n",
         "unknown column 'thread' (did you mean 'threads'?)"),
        ("a.csv", f"{HEADER}\nlayerwise,0,0.1\n", "row 2: column 'threads': got '0'"),
        ("a.csv", f"{HEADER}\n,1,0.1\n", "row 2: column 'policy': missing"),
        ("a.csv", f"{HEADER}\nnosuch,1,0.1\n", "row 2: column 'policy': got 'nosuch'"),
        ("a.csv", f"{HEADER}\nlayerwise,1,0.1,7\n", "row 2: 4 values, expected 3"),
        ("a.csv", f"{HEADER}\nlayerwise,99,0.1\n", "row 2: column 'threads': got 99, but machine"),
        ("a.csv", "policy,workers,threads,seconds\nlayerwise,1,1,0.1\n", "give one of the two"),
        ("a.csv", "policy,threads\nlayerwise,1\n", "column 'seconds': missing"),
        ("a.csv", f"{HEADER},hidden\nlayerwise,1,0.1,-3\n", "row 2: field 'hidden': got '-3'"),
        ("a.csv", f"{HEADER},machine\nlayerwise,1,0.1,nosuch.yaml\n",
         "row 2: column 'machine': nosuch.yaml: file not found"),
        ("a.csv", "policy,threads,trace\nlayerwise,1,nosuch.json\n",
         "row 2: column 'trace': "),
        ("a.csv", "# nothing\n", "empty, expected a header row"),
        ("a.csv", f"{HEADER}\n", "no measured runs"),
        ("t.json", '{"traceEvents": [', "malformed JSON at line 1"),
        ("t.json", '{"traceEvents": 5}', "not a Trace Event Format file"),
        ("t.json", json.dumps([{**TRACE_EVENT, "dur": "x"}]),
         "t.json: event 0: field 'dur': got 'x', expected a number (us)"),
        ("t.json", json.dumps([{**TRACE_EVENT, "name": "op"}]),
         "no events named 'wpsim key=value ...'"),
        ("t.json", json.dumps([{**TRACE_EVENT, "name": "wpsim policy=sequential threads"}]),
         "expected key=value pairs, got 'threads'"),
        ("t.json", json.dumps([{**TRACE_EVENT, "name": "wpsim policy=sequential thread=1"}]),
         "unknown column 'thread' (did you mean 'threads'?)"),
        ("t.json", json.dumps([{"ph": "B", "name": "wpsim policy=sequential threads=1",
                                "ts": 0, "pid": 1, "tid": 1}]), "a begin ('B') that never ends"),
        ("t.json", json.dumps([{"ph": "E", "ts": 0, "pid": 1, "tid": 1}]), "with no begin"),
    ],
)  # fmt: skip
def test_bad_files_are_one_line(tmp_path, capsys, name, content, needle) -> None:
    (tmp_path / name).write_text(content)
    assert main(["validate", "--measured", str(tmp_path / name), "-m", XEON]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("wpsim: error: ") and needle in err, err


@pytest.mark.parametrize("flag", [["--workers", "1,2"], ["--policies", "wavefront"],
                                  ["--repeats", "2"]])  # fmt: skip
def test_options_of_the_executor_are_refused_with_measured(tmp_path, capsys, flag) -> None:
    path = write_csv(tmp_path / "m.csv", HEADER, "sequential,1,0.1")
    assert main(["validate", "--measured", str(path), *flag]) == 2
    assert "not used with --measured" in capsys.readouterr().err


def test_a_missing_file_is_one_line(capsys) -> None:
    assert main(["validate", "--measured", "no_such_file.csv"]) == 2
    assert capsys.readouterr().err.strip() == "wpsim: error: no_such_file.csv: file not found"


def test_a_folder_or_a_pipe_is_one_line(tmp_path, capsys) -> None:
    """Refused before reading: a named pipe with no writer would otherwise wait forever."""
    pipe = tmp_path / "m.csv"
    os.mkfifo(pipe)
    for path, needle in ((tmp_path, "is a folder"), (pipe, "not a regular file")):
        assert main(["validate", "--measured", str(path), "-m", XEON]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"wpsim: error: {path}: ") and needle in err, err
        assert err.count("\n") == 0


def test_a_gpu_measurement_runs_one_stream_per_kernel(tmp_path) -> None:
    """A persistent kernel against per-step GEMMs on a V100: workers is 1."""
    path = write_csv(tmp_path / "m.csv", "policy,workers,seconds,cell,hidden,input,seq_len",
                     "gemm,1,0.0009,rnn,1024,1024,16", "persistent,1,0.0003,rnn,1024,1024,16")  # fmt: skip
    [report] = validate_measured(path, DEFAULT_WORKLOAD, "v100")
    assert report.rows[0]["policy"] == "gemm" and report.rows[0]["baseline"]
    assert report.rows[1]["measured_speedup"] == pytest.approx(3.0)
    bad = write_csv(tmp_path / "b.csv", "policy,workers,seconds", "gemm,2,0.1")
    with pytest.raises(Exception, match="expected 1 on a GPU machine"):
        validate_measured(bad, DEFAULT_WORKLOAD, "v100")
    assert get_policy("persistent").machine_kind == "gpu"
