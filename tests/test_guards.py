"""Size and process guards: estimates from the workload alone, refusals before any work."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from wpsim import guards
from wpsim.cli import main
from wpsim.guards import SizeError, check_size, check_workers, estimate, estimate_tasks
from wpsim.model.graph import build
from wpsim.model.workload import Workload
from wpsim.policies import get_policy

ROOT = Path(__file__).resolve().parent.parent
HUGE = "cell: lstm\nlayers: 1\nhidden: 16\ninput: 16\nseq_len: 100000000\nname: e8\n"


def _shapes() -> list[Workload]:
    base = dict(cell="lstm", layers=3, hidden=8, input=4, seq_len=7)
    return [
        Workload(**base),
        Workload(**{**base, "cell": "gru", "bidirectional": True}),
        Workload(**{**base, "phase": "training", "output": "softmax", "output_size": 5}),
        Workload(
            **{
                **base,
                "cell": "rnn",
                "bidirectional": True,
                "phase": "training",
                "output": "linear",
                "output_size": 3,
            }
        ),
    ]


@pytest.mark.parametrize("workload", _shapes(), ids=lambda w: f"{w.cell}-{w.phase}")
@pytest.mark.parametrize(
    "options",
    [
        {"chunk": 1},
        {"chunk": 3},
        {"chunk": 7},
        {"chunk": 1, "instances": 3},
        {"chunk": 1, "hoist_input": 7},
        {"chunk": 1, "hoist_input": 3},
    ],
)
def test_cell_task_counts_are_exact(workload, options):
    graph = build(workload, **options)
    assert estimate_tasks(workload, **options) == graph.number_of_nodes()


@pytest.mark.parametrize("workload", _shapes(), ids=lambda w: f"{w.cell}-{w.phase}")
@pytest.mark.parametrize("chunk", [1, 3])
def test_op_task_counts_are_an_upper_bound(workload, chunk):
    built = build(workload, granularity="op", chunk=chunk).number_of_nodes()
    bound = estimate_tasks(workload, granularity="op", chunk=chunk)
    assert built <= bound <= 2 * built + 10


@pytest.mark.parametrize("policy", ["sequential", "layerwise", "wavefront", "multiprogram"])
def test_the_estimate_follows_each_policys_graph(policy):
    w = _shapes()[2]
    p = get_policy(policy, instances=2) if policy == "multiprogram" else get_policy(policy)
    options = p.graph_options(w, 2)
    assert estimate(w, "simulate", p, chunk=2).n_tasks == build(w, **options).number_of_nodes()


@pytest.mark.parametrize("workload", _shapes(), ids=lambda w: f"{w.cell}-{w.phase}")
def test_the_guard_of_auto_sizes_each_distinct_schedule_once(workload):
    """--policy auto / --chunk auto: one BufferSizes sizes the executor's arrays once per
    distinct (instances, hoisted input, chunk, core groups), with the layers' shapes worked out
    once; every estimate, and the smallest candidate, are those of sizing each candidate on
    its own."""
    from wpsim.tune import POLICIES, chunk_candidates

    policies = [get_policy(name) for name in POLICIES] + [
        get_policy("wavefront", helpers=2),
        get_policy("multiprogram", instances=2),
    ]
    candidates = [(p, c) for p in policies for c in chunk_candidates(workload.seq_len)]
    sizes = guards.BufferSizes(workload)
    alone = []
    for policy, chunk in candidates:
        one = estimate(workload, "run", policy, chunk=chunk, workers=2)
        assert estimate(workload, "run", policy, chunk=chunk, workers=2, sizes=sizes) == one
        alone.append(one.total_bytes)
    assert len(sizes.sized) < len(candidates)
    expected = candidates[alone.index(min(alone))]
    assert guards.smallest_run(workload, candidates, workers=2) == expected


def test_executor_buffers_match_the_segment_the_executor_allocates():
    from kernels.arrays import array_specs
    from kernels.executor._layout import plan_layout

    for w in _shapes():
        specs = array_specs(w, 2, False, w.phase == "training", 2, [2])
        segment = plan_layout(3, specs).size
        estimated = guards.executor_buffer_bytes(w, 2, False, 2, [2])
        parent = (w.parameter_count() + w.seq_len * w.batch * w.input) * 4
        # the layout adds alignment and a control block; the estimate adds the parent's copy
        assert estimated - parent <= segment <= estimated - parent + 64 * (len(specs) + 100)


def test_a_workload_beyond_the_limit_is_refused_with_estimate_and_limit(monkeypatch):
    monkeypatch.setattr(guards, "available_memory_bytes", lambda: 10**9)
    w = Workload(cell="lstm", layers=4, hidden=16, input=16, seq_len=1_000_000, name="long")
    with pytest.raises(SizeError) as error:
        check_size(w, "simulate", get_policy("wavefront"))
    message = str(error.value)
    needed = 4_000_000 * guards.BYTES_PER_TASK["simulate"] / 1e9
    assert f"simulate: workload 'long' needs about {needed:.1f} GB (4,000,000 tasks;" in message
    assert "more than the 800.0 MB this computer can give it now" in message
    assert "--allow-large" in message and "\n" not in message
    assert check_size(w, "simulate", allow=True).n_tasks == 4_000_000  # the override
    assert check_size(w, "simulate", chunk=100).n_tasks == 40_000  # a larger chunk fits


def test_sweep_workers_share_the_limit(monkeypatch):
    monkeypatch.setattr(guards, "available_memory_bytes", lambda: 10**9)
    w = Workload(cell="lstm", layers=1, hidden=16, input=16, seq_len=100_000)
    assert 100_000 * guards.BYTES_PER_TASK["simulate"] < 800e6 / 2  # fits alone, not in 4
    check_size(w, "simulate")
    with pytest.raises(SizeError, match=r"per sweep worker \(4 workers\)"):
        check_size(w, "simulate", share=4)


def test_available_memory_respects_an_address_space_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    script = (
        "import resource; resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, "
        f"{hard})); from wpsim.guards import available_memory_bytes as a; print(a())"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert int(out.stdout) < 2 * 2**30


def test_run_estimates_the_executor_arrays():
    w = Workload(cell="lstm", layers=2, hidden=40_000, input=64, seq_len=4)
    e = estimate(w, "run", get_policy("wavefront"), workers=2)
    assert e.buffer_bytes > 2 * 4 * (4 * 40_000 * 40_000)  # W_hh of both layers, twice
    assert e.worker_bytes == 2 * guards.WORKER_BYTES


def test_run_with_hidden_40000_is_refused_before_allocating(tmp_path, capsys):
    path = tmp_path / "big.yaml"
    path.write_text("cell: lstm\nlayers: 2\nhidden: 40000\ninput: 64\nseq_len: 4\n")
    assert main(["run", "-w", str(path), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"wpsim: error: run: workload {path} needs about ") and "arrays" in err
    assert err.count("\n") == 1


def _refusal(command: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, int, int]:
    path = tmp_path / "e8.yaml"
    path.write_text(HUGE)
    # The peak is the process's own (VmHWM, in KiB): Linux carries ru_maxrss over from the
    # parent through fork and exec, so a test process that had grown large (torch imported by
    # an earlier test) would be counted. Where /proc is absent, ru_maxrss.
    probe = (
        "import re, resource, runpy, sys; sys.argv = ['wpsim', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('wpsim.console', run_name='__main__')\n"
        "except SystemExit as e:\n    code = e.code\n"
        "try:\n"
        "    status = open('/proc/self/status').read()\n"
        "    peak = int(re.search(r'VmHWM:\\s+(\\d+) kB', status).group(1))\n"
        "except OSError:\n"
        "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(peak, code)"
    )
    proc = subprocess.run(
        # --chunk 1: the 10^8 tasks (run and validate choose a longer chunk by default)
        [sys.executable, "-c", probe, command, "-w", str(path), "--chunk", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    maxrss_kb, code = proc.stdout.split()[-2:]  # (after what the command printed)
    return proc, int(maxrss_kb), int(code)


@pytest.mark.parametrize("command", ["simulate", "graph", "compare", "run"])
def test_a_1e8_task_workload_is_refused_in_bounded_memory(tmp_path, command):
    """The issue's example: 10^8 tasks. Refused before building anything (the peak RSS of
    the whole process stays under 500 MB); the time is measured in benchmarks/guards.py."""
    proc, maxrss_kb, code = _refusal(command, tmp_path)
    assert code == 2, proc.stderr
    assert "100,000,000 tasks" in proc.stderr and proc.stderr.count("\n") == 1
    assert maxrss_kb < 500 * 1024


def test_predict_answers_a_1e8_task_workload_in_bounded_memory(tmp_path):
    """The closed forms build no graph (wpsim.sim.closed_forms): predict answers where simulate is
    refused, within the same memory bound."""
    proc, maxrss_kb, code = _refusal("predict", tmp_path)
    assert code == 0, proc.stderr
    assert "100,000,000" in proc.stdout and maxrss_kb < 500 * 1024
    assert (
        guards.estimate(
            Workload(cell="lstm", hidden=16, input=16, seq_len=10**8), "predict"
        ).total_bytes
        == 0
    )


def test_a_sweep_point_beyond_the_limit_is_a_failed_row(tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "workload: tiny\nhardware: xeon8160_2s\nengine: simulate\n"
        "vary:\n  workload.seq_len: [6, 100000000]\n"
    )
    code = main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--workers", "1", "-q"])
    captured = capsys.readouterr()
    assert code == 1
    assert "1 of 2 points failed" in captured.err
    rows = (tmp_path / "out" / "results.csv").read_text().splitlines()
    assert "ok" in rows[1] and "error" in rows[2] and "300,000,000 tasks" in rows[2]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["points_done"] == 2 and manifest["points_failed"] == 1


# ---- processes --------------------------------------------------------------------------------
def test_workers_beyond_the_cpus_warn_and_beyond_the_multiple_are_refused(monkeypatch, capsys):
    monkeypatch.setattr(guards, "cpu_count", lambda: 2)
    check_workers(2)
    assert capsys.readouterr().err == ""
    check_workers(8, "--workers", command="wpsim run")
    assert "wpsim run: warning: --workers 8 is more than the 2 CPU(s)" in capsys.readouterr().err
    with pytest.raises(guards.ConfigError, match=r"--workers 9: more than 4 x the 2 CPU\(s\)"):
        check_workers(9)
    check_workers(9, force=True)  # forced: a warning only
    assert "warning" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--workers", "100000"],
        ["validate", "-w", "tiny", "--workers", "1,100000"],
        ["sweep", str(ROOT / "sweeps" / "cores_scaling.yaml"), "--out", "unused", "-j", "100000"],
    ],
)
def test_commands_refuse_100000_workers_before_starting_any(argv, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--workers 100000: more than 4 x the" in err and err.count("\n") == 1
    assert not (tmp_path / "unused").exists()


def test_the_limits_are_documented_numbers():
    assert guards.MAX_WORKERS_PER_CPU == 4 and guards.MEMORY_FRACTION == 0.8
    # every engine that builds a graph, measured; the closed forms build none
    assert all(v > 1000 for k, v in guards.BYTES_PER_TASK.items() if k != "predict")
    assert guards.BYTES_PER_TASK["predict"] == 0
