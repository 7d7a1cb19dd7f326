"""Tests of the real multi-process executor: exactness against the numpy reference, the same
graph and policy rules as the simulator, the trace schema, failure handling and the CLI.

Every test starts real worker processes (spawn, ~0.5 s each time), so the workloads are tiny
(H <= 32, T <= 8, L <= 3) and at most 2 workers run.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import kernels.executor._coordinator
import kernels.executor._execution
import kernels.executor._layout
import kernels.tasks
from kernels import backward, forward, init_input, init_params
from kernels.executor import Executor, execute
from wpsim.cli import main
from wpsim.errors import ConfigError, ExecutionError
from wpsim.model.graph import build
from wpsim.model.plan import compile_plan
from wpsim.model.workload import Workload
from wpsim.policies import get_policy
from wpsim.result import Result

ROOT = Path(__file__).resolve().parent.parent
SPLIT_REL = 1e-6  # float32, recurrent product split across workers
SPLIT_GRAD_REL = 5e-6  # gradients accumulate the split's rounding over T steps


def _workload(cell: str = "lstm", **kw) -> Workload:
    base = dict(cell=cell, layers=2, hidden=16, input=8, seq_len=6, batch=2)
    base.update(kw)
    return Workload(**base)


def _reference(w: Workload, chunk: int | None, seed: int = 0):
    """Single-threaded-BLAS reference outputs (and gradients for training) of the whole net."""
    p, x = init_params(w, seed), init_input(w, seed)
    with threadpool_limits(limits=1):
        y, h_n = forward(w, p, x, chunk=chunk)
        grads = None
        if w.phase == "training":
            g = np.random.default_rng(seed + 1).standard_normal(y.shape)
            grads = backward(w, p, x, g.astype(w.dtype), chunk=chunk)
    h_n, c_n = h_n if w.cell == "lstm" else (h_n, None)
    return y, h_n, c_n, grads


def _assert_equal_outputs(a: Result, b: Result) -> None:
    assert a.outputs.keys() == b.outputs.keys()
    for key in a.outputs:
        assert np.array_equal(a.outputs[key], b.outputs[key]), key
    if a.grads is not None:
        for key in a.grads:
            assert np.array_equal(a.grads[key], b.grads[key]), key


def _assert_close(actual, desired, rel):
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(float(np.abs(desired).max()), 1e-30)
    np.testing.assert_allclose(actual, desired, rtol=rel, atol=rel * scale)


def _assert_dependencies_respected(result: Result, w: Workload) -> None:
    policy = get_policy(result.policy.split(",")[0])
    plan = compile_plan(build(w, **policy.graph_options(w, result.extra["chunk"])))
    tr = result.trace
    index = tr.by_task()
    assert sorted(index) == list(range(plan.n_tasks))
    for tid in range(plan.n_tasks):
        for p in plan.preds[tid]:
            assert tr.end_s[index[p]] <= tr.start_s[index[tid]]


class _Recorder:
    """Records the shared-memory segments and worker processes an execution creates."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        self.names: list[str] = []
        self.pidfile = tmp_path / "pids"
        monkeypatch.setenv(kernels.executor._execution.PIDFILE_ENV, str(self.pidfile))
        base = kernels.executor._layout.Segment
        names = self.names

        class Recording(base):
            def __init__(self, layout, name=None):
                super().__init__(layout, name)
                if name is None:
                    names.append(self.name)

        monkeypatch.setattr(kernels.executor._layout, "Segment", Recording)

    def pids(self) -> list[int]:
        return [int(p) for p in self.pidfile.read_text().split()[:-1]]

    def assert_clean(self) -> None:
        assert self.names, "no segment was created"
        for name in self.names:
            assert not Path("/dev/shm", name.lstrip("/")).exists(), f"segment {name} left behind"
        assert not [p for p in multiprocessing.active_children() if p.name.startswith("wpsim")]
        for pid in self.pids():
            _assert_gone(pid)


def _assert_gone(pid: int, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"worker process {pid} still exists")
        time.sleep(0.02)


# ---- exactness -------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_whole_cells_are_bitwise_equal_to_sequential_and_reference(cell):
    w = _workload(
        cell,
        bidirectional=cell == "gru",
        output="softmax" if cell == "rnn" else "none",
        output_size=5 if cell == "rnn" else 0,
    )
    seq = execute(w, "sequential", workers=1, chunk=2)
    wave = execute(w, "wavefront", workers=2, chunk=2)
    pipe = execute(w, "pipeline", workers=2, chunk=2)
    _assert_equal_outputs(wave, seq)
    _assert_equal_outputs(pipe, seq)
    y, h_n, c_n, _ = _reference(w, chunk=2)
    assert np.array_equal(seq.outputs["output"], y)
    assert np.array_equal(seq.outputs["h_n"], h_n)
    if cell == "lstm":
        assert np.array_equal(seq.outputs["c_n"], c_n)
    assert {len(g) for g in wave.trace.cores} == {1}
    assert set(wave.trace.cores) == {(0,), (1,)}


@pytest.mark.parametrize("input_split", ["time", "rows"])
def test_layerwise_split_matches_within_float32_tolerance(input_split, monkeypatch):
    # the workers inherit the environment: a bound of 0 splits every input projection by rows
    if input_split == "rows":
        monkeypatch.setenv("WPSIM_INPUT_SPLIT_BY_TIME_MAX_BYTES", "0")
    w = _workload("lstm", layers=3, hidden=32, bidirectional=True, output="linear", output_size=4)
    one = execute(w, "layerwise", workers=1)
    two = execute(w, "layerwise", workers=2)
    y, h_n, _, _ = _reference(w, chunk=None)  # layerwise: one input GEMM per layer
    assert np.array_equal(one.outputs["output"], y)
    assert np.array_equal(one.outputs["h_n"], h_n)
    for key in two.outputs:
        _assert_close(two.outputs[key], one.outputs[key], SPLIT_REL)
    assert set(two.trace.cores) == {(0, 1)}
    kinds = {t.kind for t in two.tasks}
    assert kinds == {"input_gemm", "cell", "output"}


def test_shared_weights_are_laid_out_in_the_kernels_order():
    from kernels.arrays import array_specs
    from kernels.executor._layout import Segment, plan_layout
    from kernels.params import WEIGHT_ORDER

    w = _workload("gru", layers=2, hidden=8)
    specs = array_specs(w, 1, hoisted=False, training=False, chunk=2, group_sizes=[1, 1])
    seg = Segment(plan_layout(2, specs))
    try:
        weights = {k: v for k, v in seg.arrays.items() if ".weight_" in k}
        assert weights and all(v.flags.f_contiguous for v in weights.values())
        assert all(v.flags.c_contiguous for k, v in seg.arrays.items() if k not in weights)
        assert WEIGHT_ORDER == "F"
    finally:
        seg.close()
        seg.unlink()


def test_helper_groups_split_cells_of_a_wavefront():
    w = _workload("gru", seq_len=5)
    r = execute(w, get_policy("wavefront", helpers=2), workers=2, chunk=2)
    y, h_n, _, _ = _reference(w, chunk=2)
    _assert_close(r.outputs["output"], y, SPLIT_REL)
    _assert_close(r.outputs["h_n"], h_n, SPLIT_REL)
    assert set(r.trace.cores) == {(0, 1)}


@pytest.mark.parametrize(
    ("cell", "policy", "workers", "chunk", "exact"),
    [
        ("lstm", "sequential", 1, 3, True),
        ("lstm", "wavefront", 2, 3, True),
        ("gru", "layerwise", 2, 1, False),
        ("rnn", "pipeline", 2, 2, True),
    ],
)
def test_training_gradients_match_reference_backward(cell, policy, workers, chunk, exact):
    w = _workload(
        cell,
        phase="training",
        bidirectional=cell != "rnn",
        output="softmax" if cell == "lstm" else "none",
        output_size=3 if cell == "lstm" else 0,
    )
    r = execute(w, policy, workers=workers, chunk=chunk)
    y, _, _, grads = _reference(w, chunk=None if policy == "layerwise" else chunk)
    assert r.grads is not None and set(r.grads) == set(grads)
    kinds = {t.kind for t in r.tasks}
    assert {"cell_bwd", "wgrad"} <= kinds
    if exact and workers > 1:  # whole cells per worker: the same arithmetic as one worker
        _assert_equal_outputs(r, execute(w, "sequential", workers=1, chunk=chunk))
    # Against the in-process reference: BLAS kernels may round GEMMs of other shapes or
    # alignments differently (seen with OpenBLAS's AVX-512 kernels), so within float32 rounding
    # accumulated over the sequence.
    for key, value in grads.items():
        _assert_close(r.grads[key], value, SPLIT_GRAD_REL)
    _assert_close(r.outputs["output"], y, SPLIT_REL)


@pytest.mark.parametrize(
    "extra", [dict(density=0.3), dict(dtype="float16"), dict(dtype="float64", batch=1)]
)
def test_sparse_and_other_dtypes(extra):
    w = _workload("lstm", **extra)
    r = execute(w, "wavefront", workers=2, chunk=2)
    y, h_n, _, _ = _reference(w, chunk=2)
    assert r.outputs["output"].dtype == np.dtype(w.dtype)
    assert np.array_equal(r.outputs["output"], y)
    assert np.array_equal(r.outputs["h_n"], h_n)


def test_multiprogram_instances_compute_the_same_outputs():
    w = _workload("rnn")
    r = execute(w, get_policy("multiprogram", instances=2), workers=2, chunk=3)
    y, _, _, _ = _reference(w, chunk=3)
    assert np.array_equal(r.outputs["output"], y)
    assert r.n_tasks == 2 * 2 * 2
    instance_of = {t.id: t.instance for t in r.tasks}
    for tid, cores in zip(r.trace.task, r.trace.cores, strict=True):
        assert cores == (instance_of[tid],)  # instance i on block i


def test_user_params_and_input_are_used():
    w = _workload("gru")
    p, x = init_params(w, seed=7), init_input(w, seed=8)
    r = execute(w, "wavefront", workers=2, chunk=2, params=p, x=x, repeats=2)
    with threadpool_limits(limits=1):
        y, _ = forward(w, p, x, chunk=2)
    assert np.array_equal(r.outputs["output"], y)
    assert len(r.extra["makespans_s"]) == 2
    assert r.makespan_s == statistics.median(r.extra["makespans_s"])
    with pytest.raises(ConfigError, match="x: got shape"):
        execute(w, "sequential", workers=1, x=x[:2])
    with pytest.raises(ConfigError, match="weight_hh_l0"):
        execute(w, "sequential", workers=1, params=dict(p, weight_hh_l0=np.zeros((2, 2))))


def test_executor_session_reuses_workers_between_runs(monkeypatch, tmp_path):
    rec = _Recorder(monkeypatch, tmp_path)
    w = _workload("lstm", phase="training")
    with Executor(w, "wavefront", workers=2, chunk=3) as ex:
        pids = rec.pids()
        first = ex.run()
        ex.run(record=False)
        ex.run()
        result = ex.result()
        assert rec.pids() == pids  # the same workers served every run
    assert result.extra["makespans_s"][0] == first and len(result.extra["makespans_s"]) == 2
    _, _, _, grads = _reference(w, chunk=3)
    for key, value in grads.items():  # repeated runs overwrite, nothing accumulates
        assert np.array_equal(result.grads[key], value), key
    rec.assert_clean()
    with pytest.raises(ExecutionError, match="not running"):
        ex.run()


# ---- same graph, same rules, same trace schema ------------------------------------------------
def test_trace_schema_and_policy_rules(tmp_path):
    w = _workload("lstm", layers=3, seq_len=8)
    seq = execute(w, "sequential", workers=2, chunk=2)
    # sequential: one worker, task-id order, whatever the number of workers offered
    order = [t for _, t in sorted(zip(seq.trace.start_s, seq.trace.task, strict=True))]
    assert order == list(range(seq.n_tasks))
    assert seq.extra["groups"] == [[0]] and set(seq.trace.cores) == {(0,)}
    pipe = execute(w, "pipeline", workers=2, chunk=2)
    # pipeline: layer-direction i lives on group i mod 2
    for tid, cores in zip(pipe.trace.task, pipe.trace.cores, strict=True):
        assert cores == (pipe.tasks[tid].layer % 2,)
    for r in (seq, pipe):
        _assert_dependencies_respected(r, w)
        tr = r.trace
        assert len(tr) == r.n_tasks == 12
        assert all(hit is None for hit in tr.hit) and tr.levels == []  # not observed: empty
        assert all(0.0 <= s <= e for s, e in zip(tr.start_s, tr.end_s, strict=True))
        assert max(tr.end_s) <= r.makespan_s + 1e-9
        assert r.engine == "measured"
    path = tmp_path / "trace.json"
    pipe.trace.to_chrome(path, pipe.labels)
    names = {e["name"] for e in json.loads(path.read_text())["traceEvents"] if e["ph"] == "X"}
    assert "cell[l2,fwd,t6:8]" in names


Execution = kernels.executor._execution.Execution


def _must_not_run(*_args):
    raise AssertionError("the other scheduling mode ran")


def test_one_group_runs_the_precomputed_order_in_sequence_mode(monkeypatch):
    """With one group the coordinator hands out the whole order at once; the order is the one
    the policy gives with tasks finishing in any timing, and the results are the same as with
    every task handed out one by one (``WPSIM_EXECUTOR_SEQUENCE=0``)."""
    from kernels.executor._execution import static_order
    from wpsim.model.plan import compile_plan
    from wpsim.policies import get_policy

    w = _workload("gru", layers=2, seq_len=6)
    runs = {}
    for mode, unused in (("1", "_run_dynamic"), ("0", "_run_sequence")):
        monkeypatch.setenv("WPSIM_EXECUTOR_SEQUENCE", mode)
        with monkeypatch.context() as patch:  # the other mode must not run
            patch.setattr(Execution, unused, _must_not_run)
            runs[mode] = execute(w, "layerwise", workers=2, chunk=2, repeats=2)
    policy = get_policy("layerwise")
    plan = compile_plan(build(w, **policy.graph_options(w, 2)))
    expected = static_order(plan, policy, policy.core_groups(2))
    for mode, r in runs.items():
        order = [t for _, t in sorted(zip(r.trace.start_s, r.trace.task, strict=True))]
        assert order == expected, mode
        _assert_dependencies_respected(r, w)
    for key, value in runs["1"].outputs.items():
        assert np.array_equal(value, runs["0"].outputs[key]), key


def test_a_failure_in_sequence_mode_names_the_task_it_happened_in(monkeypatch, tmp_path):
    rec = _Recorder(monkeypatch, tmp_path)
    monkeypatch.setattr(Execution, "_run_dynamic", _must_not_run)  # one group: sequence mode
    w = _workload("lstm", seq_len=8)
    with pytest.raises(
        ExecutionError,
        match=r"worker 0 \(pid \d+\) was killed by SIGKILL while "
        r"running cell\[l1,fwd,t2:4\] \(task 5\)",
    ):
        execute(w, "sequential", workers=1, chunk=2, fail_at_task=5, fail_mode="kill")
    rec.assert_clean()


def test_same_graph_as_the_simulator():
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.sim.engine import simulate

    w = _workload("lstm", seq_len=4)
    machine = load_machine(resolve_machine_path("xeon8160_2s"))
    for policy, chunk in (("layerwise", 1), ("wavefront", 2)):
        sim = simulate(w, machine, policy, cores=2, chunk=chunk, cost="ideal")
        real = execute(w, policy, workers=2, chunk=chunk)
        assert [t.label for t in sim.tasks] == real.labels
        assert sorted(sim.trace.task) == sorted(real.trace.task)


def test_op_granularity_and_bad_arguments_are_config_errors():
    w = _workload("rnn")
    with pytest.raises(ConfigError, match="only cell tasks run for real"):
        execute(w, "wavefront", workers=2, granularity="op")
    with pytest.raises(ConfigError, match="--workers"):
        execute(w, "wavefront", workers=0)
    with pytest.raises(ConfigError, match="--policy"):
        execute(w, "no-such-policy", workers=1)
    with pytest.raises(ConfigError, match="--helpers"):
        execute(w, get_policy("wavefront", helpers=3), workers=2)


# ---- failures -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("raise", r"cell\[l1,fwd,t2:4\] \(task 5\) failed on worker \d: RuntimeError: injected"),
        ("kill", r"worker \d \(pid \d+\) was killed by SIGKILL while running cell\[l1,fwd,t2:4\]"),
    ],
)
def test_failing_worker_fails_fast_and_cleans_up(mode, message, monkeypatch, tmp_path):
    rec = _Recorder(monkeypatch, tmp_path)
    w = _workload("lstm", seq_len=8)
    assert build(w, chunk=2).nodes[5]["task"].label == "cell[l1,fwd,t2:4]"
    start = time.monotonic()
    with pytest.raises(ExecutionError, match=message) as info:
        execute(w, "wavefront", workers=2, chunk=2, fail_at_task=5, fail_mode=mode)
    assert "\n" not in str(info.value)
    assert time.monotonic() - start < 20
    rec.assert_clean()


def test_worker_failing_at_start_up(monkeypatch, tmp_path):
    rec = _Recorder(monkeypatch, tmp_path)
    with pytest.raises(ExecutionError, match=r"worker \d failed to start: RuntimeError: injected"):
        execute(_workload("rnn"), "wavefront", workers=2, fail_at_task=0, fail_mode="start")
    rec.assert_clean()


def test_failure_in_a_split_group_releases_the_barrier(monkeypatch, tmp_path):
    rec = _Recorder(monkeypatch, tmp_path)
    w = _workload("gru")
    with pytest.raises(ExecutionError, match=r"cell\[l0,fwd,t0\] \(task 1\) failed"):
        execute(w, "layerwise", workers=2, fail_at_task=1)
    rec.assert_clean()


def test_ctrl_c_stops_workers_and_removes_the_segment(tmp_path):
    """SIGINT to the parent of a run whose task 3 hangs: exit 130, nothing left behind."""
    pidfile = tmp_path / "pids"
    env = dict(os.environ, WPSIM_EXECUTOR_FAULT="hang:3", WPSIM_EXECUTOR_PIDFILE=str(pidfile))
    for var in kernels.executor.BLAS_ENV:
        env.pop(var, None)
    cmd = [
        sys.executable,
        "-m",
        "wpsim",
        "run",
        "--workers",
        "2",
        "--chunk",
        "2",
        "--workload",
        str(ROOT / "workloads" / "demo.yaml"),
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (pidfile.exists() and pidfile.read_text().endswith("\n")):
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline, "workers did not start"
            time.sleep(0.05)
        pids = [int(p) for p in pidfile.read_text().split()[:-1]]
        shm_name = pidfile.read_text().split()[-1]
        time.sleep(1.0)  # let the workers start and task 3 begin to hang
        for pid in pids:  # workers: single-threaded BLAS from start-up, pinned to one CPU
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert b"OPENBLAS_NUM_THREADS=1" in environ
            status = Path(f"/proc/{pid}/status").read_text()
            allowed = next(line for line in status.splitlines() if "Cpus_allowed_list" in line)
            if len(os.sched_getaffinity(0)) >= 2:  # pinned only when each worker gets a CPU
                assert "," not in allowed and "-" not in allowed.split(":")[1]
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted" in err
    for pid in pids:
        _assert_gone(pid)
    assert not Path("/dev/shm", shm_name.lstrip("/")).exists()


# ---- CLI -------------------------------------------------------------------------------------------
def test_cli_run_json_and_trace(tmp_path, capsys):
    trace = tmp_path / "run.json"
    path = tmp_path / "w.yaml"
    path.write_text("cell: gru\nlayers: 2\nhidden: 16\ninput: 8\nseq_len: 6\nname: tiny\n")
    code = main(
        [
            "run",
            "-w",
            str(path),
            "-p",
            "wavefront",
            "--workers",
            "2",
            "--chunk",
            "3",
            "--repeats",
            "2",
            "--json",
            "--trace",
            str(trace),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in (
        "makespan_s",
        "makespans_s",
        "cores",
        "policy",
        "n_tasks",
    ):
        assert key in out
    assert out["cores"] == 2 and out["policy"] == "wavefront" and out["n_tasks"] == 4
    assert len(out["makespans_s"]) == 2
    events = json.loads(trace.read_text())["traceEvents"]
    assert {e["name"] for e in events if e["ph"] == "X"} == {
        "cell[l0,fwd,t0:3]",
        "cell[l0,fwd,t3:6]",
        "cell[l1,fwd,t0:3]",
        "cell[l1,fwd,t3:6]",
    }
    assert main(["run", "-w", str(path), "-p", "sequential", "--workers", "1"]) == 0
    assert "makespan" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--granularity", "op"], "only cell tasks run for real"),
        (["--policy", "nope"], "--policy"),
        (["--helpers", "3", "--workers", "2"], "--helpers"),
        (["--workload", "no/such.yaml"], "no/such.yaml"),
    ],
)
def test_cli_run_bad_input_is_one_line_exit_2(args, message, capsys):
    assert main(["run", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_run_rejects_zero_workers(capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", "--workers", "0"])
    assert info.value.code == 2
