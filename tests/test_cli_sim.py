"""`wpsim simulate`, `predict`, `compare`, `demo` end to end."""

import json

import pytest

from wpsim.cli import main


def run_json(capsys, *argv):
    assert main(list(argv) + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("command", ["simulate", "predict"])
def test_json_has_contract_keys(capsys, command):
    out = run_json(capsys, command, "-w", "tiny", "--policy", "wavefront", "--cores", "4")
    for key in ["makespan_s", "sequential_s", "speedup", "n_tasks", "utilization", "dram_bytes"]:
        assert key in out
    assert out["n_tasks"] == 18 and out["cores"] == 4 and out["speedup"] > 1


def test_simulate_writes_trace_and_gantt(tmp_path, capsys):
    trace, gantt = tmp_path / "t.json", tmp_path / "g.png"
    assert (
        main(
            ["simulate", "-w", "tiny", "--cores", "3", "--trace", str(trace), "--gantt", str(gantt)]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "speed-up" in out and "makespan" in out
    events = json.loads(trace.read_text())["traceEvents"]
    assert sum(e["ph"] == "X" for e in events) == 18
    assert gantt.stat().st_size > 5000


def test_compare_prints_every_policy(capsys):
    assert main(["compare", "-w", "tiny", "--cores", "4"]) == 0
    out = capsys.readouterr().out
    for name in ["sequential", "layerwise", "wavefront", "pipeline", "helper"]:
        assert name in out
    rows = run_json(capsys, "compare", "-w", "tiny", "--cores", "4", "--analytic")["rows"]
    assert {r["policy"] for r in rows} >= {"wavefront", "layerwise"}
    assert all("speedup_vs_layerwise" in r for r in rows)


@pytest.mark.parametrize("chunk", ["1", "3"])
def test_compare_gives_every_policy_the_one_core_baseline(capsys, chunk):
    """compare simulates the baseline once; each row's is the one simulate computes alone."""
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.model.workload import resolve_workload
    from wpsim.sim.engine import sequential_time

    rows = run_json(capsys, "compare", "-w", "tiny", "--cores", "4", "--chunk", chunk)["rows"]
    machine = load_machine(resolve_machine_path("xeon8160_2s")).with_cores(4)
    alone = sequential_time(resolve_workload("tiny"), machine, int(chunk))
    assert [r["sequential_s"] for r in rows] == [alone] * len(rows)
    for r in rows:  # and what simulate gives the policy on its own
        out = run_json(
            capsys,
            "simulate",
            "-w",
            "tiny",
            "--cores",
            "4",
            "--chunk",
            chunk,
            "--policy",
            r["policy"],
        )
        assert out["sequential_s"] == alone and out["makespan_s"] == r["makespan_s"]


def test_large_simulations_report_their_phases_on_stderr(capsys, monkeypatch):
    from wpsim.cli import sim as cli_sim

    out = run_json(capsys, "simulate", "-w", "tiny", "--cores", "4")  # 18 tasks: quiet
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(cli_sim, "PROGRESS_MIN_TASKS", 18)  # as if tiny were large
    assert main(["simulate", "-w", "tiny", "--cores", "4", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == out  # stdout unchanged
    lines = captured.err.splitlines()
    assert [line.split(" ...")[0] for line in lines[::2]] == [
        "simulate: building and compiling the graph",
        "simulate: running wavefront on 4 cores (18 tasks)",
        "simulate: running the one-core baseline",
    ]
    assert all(line.startswith("simulate:   done in ") for line in lines[1::2])


def test_helpers_and_instances_options(capsys):
    out = run_json(capsys, "simulate", "-w", "tiny", "--cores", "4", "--helpers", "2")
    assert out["policy"] == "wavefront, helpers=2"
    out = run_json(
        capsys,
        "simulate",
        "-w",
        "tiny",
        "--cores",
        "4",
        "--policy",
        "multiprogram",
        "--instances",
        "2",
    )
    assert out["n_tasks"] == 36


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["simulate", "--policy", "magic"], "--policy: got 'magic'"),
        (["simulate", "--hardware", "nowhere.yaml"], "nowhere.yaml: file not found"),
        (["simulate", "--cores", "30"], "--cores 30"),
    ],
)
def test_errors_are_one_line(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_demo_runs(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "layerwise" in out and "wavefront" in out
    assert (tmp_path / "wavefront_gantt.png").exists()
