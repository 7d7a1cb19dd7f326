"""Runtimes (wpsim.runtime): the software around the RNN as per-call, per-layer, per-step and
per-kernel terms, opt-in per run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from test_hardware import SOURCE_PREFIXES, numeric_comments, undocumented_numeric_lines

from wpsim.accel_dispatch import evaluate
from wpsim.cli import main
from wpsim.errors import ConfigError
from wpsim.graph import build
from wpsim.hardware import load_machine, resolve_machine_path
from wpsim.policies import get_policy
from wpsim.runtime import RUNTIME_DIR, Runtime, adapt_policy, apply_runtime, load_runtime
from wpsim.sweep import load_sweep, read_results, run_sweep
from wpsim.workload import Workload

SHIPPED = sorted(p for p in RUNTIME_DIR.glob("*.yaml") if not p.stem.startswith("host_"))


def machine(stem: str):
    return load_machine(resolve_machine_path(stem))


@pytest.fixture(scope="module")
def xeon():
    return machine("xeon8160_2s")


# ---- the files ------------------------------------------------------------------------------


def test_the_shipped_runtimes_are_the_ones_documented():
    names = {p.stem for p in SHIPPED}
    assert {"cudnn_standard", "cudnn_persistent", "miopen_1_3", "onednn_fused_cpu",
            "pytorch_eager_cpu", "tf_keras_cpu"} <= names  # fmt: skip


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_runtime_value_has_a_source(path: Path):
    text = path.read_text()
    assert undocumented_numeric_lines(text) == []
    comments = numeric_comments(text)
    assert len(comments) >= 6  # the checker saw the file's values
    assert all(c.startswith(SOURCE_PREFIXES) for c in comments)
    runtime = load_runtime(path)
    assert runtime.name == path.stem


def test_lean_is_no_runtime_and_bad_names_are_one_line_errors(tmp_path):
    assert load_runtime(None) is None and load_runtime("lean") is None
    with pytest.raises(ConfigError, match="no such runtime.*pytorch_eager_cpu"):
        load_runtime("pytorch")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmachine_kind: cpu\nkernels_per_step: {forward: {lstm: 2}}\n")
    with pytest.raises(ConfigError, match="bad.yaml.*no kernels_per_step"):
        load_runtime(bad)
    bad.write_text("name: x\nmachine_kind: cpu\nstep_s: {forward: {lstm: -1.0}}\n")
    with pytest.raises(ConfigError, match="step_s.forward.lstm"):
        load_runtime(bad)
    bad.write_text("name: x\nmachine_kind: gpu\nkernels_per_step: {forward: {lstm: true}}\n")
    with pytest.raises(ConfigError, match="kernels_per_step.forward.lstm"):
        load_runtime(bad)


# ---- the mechanism --------------------------------------------------------------------------


def test_the_library_runtimes_that_are_the_lean_model_change_nothing_but_the_label(xeon):
    """cudnn_standard is the GPU model's own structure, onednn_fused_cpu the CPU's."""
    w = Workload(cell="lstm", layers=2, hidden=64, input=0, seq_len=4, phase="training")
    v100 = machine("v100")
    for m, policy, name in ((v100, "gemm", "cudnn_standard"),
                            (xeon, "layerwise", "onednn_fused_cpu")):  # fmt: skip
        for engine in ("simulate", "predict"):
            plain = evaluate(engine, w, m, get_policy(policy), cores=4 if m is xeon else None)
            named = evaluate(engine, w, m, get_policy(policy), runtime=load_runtime(name),
                             cores=4 if m is xeon else None)  # fmt: skip
            assert named.makespan_s == plain.makespan_s and named.extra["runtime"] == name


def test_no_runtime_leaves_every_model_as_it_was(xeon):
    w = Workload(cell="gru", layers=2, hidden=64, input=32, seq_len=6, phase="training")
    for engine in ("simulate", "predict"):
        for policy in ("layerwise", "wavefront"):
            plain = evaluate(engine, w, xeon, get_policy(policy), cores=4)
            lean = evaluate(engine, w, xeon, get_policy(policy), runtime=None, cores=4)
            assert plain.makespan_s == lean.makespan_s
            assert "runtime" not in lean.extra


@pytest.mark.parametrize("engine", ["simulate", "predict"])
@pytest.mark.parametrize("phase", ["inference", "training"])
def test_layerwise_pays_every_term_once_in_series(xeon, engine, phase):
    """Layerwise runs one task at a time, so a runtime adds exactly its terms: per step and
    layer-direction, per layer-direction and per call, phase by phase."""
    w = Workload(cell="lstm", layers=2, hidden=64, input=32, seq_len=5, bidirectional=True,
                 phase=phase)  # fmt: skip
    r = Runtime(name="r", machine_kind="cpu", call_s={"forward": 3e-5, "backward_data": 5e-5},
                layer_s={"forward": 2e-6, "backward_data": 4e-6},
                step_s={"forward": {"lstm": 7e-6}, "backward": {"lstm": 1.1e-5}})  # fmt: skip
    plain = evaluate(engine, w, xeon, get_policy("layerwise"), cores=8)
    timed = evaluate(engine, w, xeon, get_policy("layerwise"), runtime=r, cores=8)
    steps = w.layers * w.directions * w.seq_len
    expected = 3e-5 + 4 * 2e-6 + steps * 7e-6
    if phase == "training":
        expected += 5e-5 + 4 * 4e-6 + steps * 1.1e-5
    assert timed.makespan_s - plain.makespan_s == pytest.approx(expected, rel=1e-9)
    assert timed.extra["runtime"] == "r"
    assert timed.extra["runtime_serial_s"] == pytest.approx(expected - steps * (
        7e-6 + (1.1e-5 if phase == "training" else 0.0)))  # fmt: skip


def test_a_per_step_input_projection_stays_in_the_cells(xeon):
    w = Workload(cell="lstm", layers=2, hidden=32, input=16, seq_len=4)
    keras = load_runtime("tf_keras_cpu")
    policy = adapt_policy(keras, get_policy("layerwise"), w)
    hoisted = build(w, granularity="cell", **get_policy("layerwise").graph_options(w, 1))
    per_step = build(w, granularity="cell", **policy.graph_options(w, 1))
    kinds = lambda g: sorted({g.nodes[v]["task"].kind for v in g})  # noqa: E731
    assert kinds(hoisted) == ["cell", "input_gemm"] and kinds(per_step) == ["cell"]
    assert all(per_step.nodes[v]["task"].flops_in > 0 for v in per_step)
    # the original policy is untouched
    assert get_policy("layerwise").graph_options(w, 1)["hoist_input"] == 4


@pytest.mark.parametrize("engine", ["simulate", "predict"])
def test_directions_side_by_side_run_at_once_on_half_the_cores(xeon, engine):
    keras = load_runtime("tf_keras_cpu")
    assert keras.directions == "side_by_side"
    in_turn = keras.model_copy(update={"directions": "in_turn"})
    w = Workload(cell="gru", layers=2, hidden=64, input=32, seq_len=6, bidirectional=True)
    both = evaluate(engine, w, xeon, get_policy("layerwise"), runtime=keras, cores=8)
    turn = evaluate(engine, w, xeon, get_policy("layerwise"), runtime=in_turn, cores=8)
    assert both.makespan_s < turn.makespan_s
    if engine == "simulate":  # direction d on group d: cores 0-3 and 4-7, busy at once
        tasks = both.tasks
        cores = {tasks[t].direction: set() for t in both.trace.task}
        for t, group in zip(both.trace.task, both.trace.cores, strict=True):
            cores[tasks[t].direction].update(group)
        assert cores == {0: {0, 1, 2, 3}, 1: {4, 5, 6, 7}}
    # one direction: nothing to run side by side
    uni = w.model_copy(update={"bidirectional": False})
    a = evaluate(engine, uni, xeon, get_policy("layerwise"), runtime=keras, cores=8)
    b = evaluate(engine, uni, xeon, get_policy("layerwise"), runtime=in_turn, cores=8)
    assert a.makespan_s == b.makespan_s


def test_gpu_kernels_per_step_and_launch_come_from_the_runtime():
    v100 = machine("v100")
    w = Workload(cell="lstm", hidden=64, input=0, seq_len=10, batch=1, phase="training")
    miopen = load_runtime("miopen_1_3")
    adapted = apply_runtime(miopen, v100, w)
    assert (adapted.gemm.step_kernels(), adapted.gemm.step_kernels(backward=True)) == (7, 12)
    assert adapted.kernel_launch_s == v100.kernel_launch_s  # the file keeps the machine's
    fast = Runtime(name="r", machine_kind="gpu", kernel_launch_s=1e-5,
                   kernels_per_step={"forward": {"lstm": 3}})  # fmt: skip
    # a tiny layer is launch-bound: each forward step is its kernels' launches
    per_step = []
    for steps in (10, 20):
        wl = w.model_copy(update={"seq_len": steps, "phase": "inference"})
        r = evaluate("predict", wl, v100, get_policy("gemm"), runtime=fast)
        per_step.append(r.extra["phase_s"]["forward"])
    assert (per_step[1] - per_step[0]) / 10 == pytest.approx(3 * 1e-5)
    sim = evaluate("simulate", w, v100, get_policy("gemm"), runtime=miopen)
    pred = evaluate("predict", w, v100, get_policy("gemm"), runtime=miopen)
    assert sim.makespan_s == pytest.approx(pred.makespan_s, rel=1e-9)
    for phase, seconds in pred.extra["phase_s"].items():
        assert sim.extra["phase_s"][phase] == pytest.approx(seconds, rel=1e-9)


@pytest.mark.parametrize("engine", ["simulate", "predict"])
def test_the_break_down_counts_the_serial_terms(xeon, engine):
    """The calls' and layers' serial time is overhead on the critical path and idle in the
    cores' time (no task runs meanwhile); both views still add up to the makespan."""
    w = Workload(cell="lstm", layers=2, hidden=64, input=32, seq_len=5, phase="training")
    cpu = Runtime(name="r", machine_kind="cpu", call_s={"forward": 3e-5, "backward_data": 5e-5},
                  layer_s={"forward": 2e-6})  # fmt: skip
    gpu = Runtime(name="g", machine_kind="gpu", call_s={"forward": 3e-5},
                  layer_s={"backward_data": 4e-6})  # fmt: skip
    cases = [(xeon, "wavefront", cpu, {"cores": 4}), (machine("v100"), "streams", gpu, {})]
    for m, policy, runtime, options in cases:
        plain = evaluate(engine, w, m, get_policy(policy), **options)
        timed = evaluate(engine, w, m, get_policy(policy), runtime=runtime, **options)
        serial = timed.extra["runtime_serial_s"]
        assert serial > 0.0 and timed.makespan_s == pytest.approx(plain.makespan_s + serial)
        for view in (timed.breakdown_s, timed.core_breakdown_s):
            assert math.fsum(view.values()) == pytest.approx(timed.makespan_s, rel=1e-12)
        assert timed.breakdown_s["overhead"] == pytest.approx(
            plain.breakdown_s["overhead"] + serial
        )
        assert timed.core_breakdown_s["idle"] == pytest.approx(
            plain.core_breakdown_s["idle"] + serial
        )


def test_a_runtime_for_another_kind_of_machine_is_refused(xeon):
    w = Workload(cell="lstm", hidden=8, input=8, seq_len=2)
    with pytest.raises(ConfigError, match="runtime for gpu machines.*cpu machine"):
        evaluate(
            "predict", w, xeon, get_policy("layerwise"), runtime=load_runtime("cudnn_standard")
        )
    with pytest.raises(ConfigError, match="runtime for cpu machines.*gpu machine"):
        evaluate("predict", w, machine("v100"), get_policy("gemm"),
                 runtime=load_runtime("pytorch_eager_cpu"))  # fmt: skip


# ---- command line and sweeps ----------------------------------------------------------------


def test_cli_runtime_option(capsys):
    args = ["predict", "-w", "tiny", "--policy", "layerwise", "--cores", "4", "--json"]
    assert main(args) == 0
    lean = json.loads(capsys.readouterr().out)
    assert main([*args, "--runtime", "pytorch_eager_cpu"]) == 0
    torch = json.loads(capsys.readouterr().out)
    assert torch["runtime"] == "pytorch_eager_cpu" and torch["makespan_s"] > lean["makespan_s"]
    assert main(["compare", "-w", "tiny", "--cores", "4", "--runtime", "tf_keras_cpu"]) == 0
    assert "layerwise" in capsys.readouterr().out
    assert main([*args, "--runtime", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no such runtime" in err and len(err.splitlines()) == 1


def test_sweep_varies_the_runtime_like_a_direct_call(tmp_path, xeon):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "workload: tiny\nhardware: xeon8160_2s\npolicy: layerwise\nengine: simulate\n"
        "run: {cores: 4}\nvary:\n  runtime: [lean, pytorch_eager_cpu]\n"
    )
    out = tmp_path / "out"
    run_sweep(load_sweep(spec), out, workers=1)
    rows = read_results(out)
    from wpsim.cli import resolve_workload

    w = resolve_workload("tiny")
    for row in rows:
        runtime = load_runtime(row["run.runtime"])
        direct = evaluate("simulate", w, xeon, get_policy("layerwise"), runtime=runtime, cores=4)
        assert float(row["makespan_s"]) == pytest.approx(direct.makespan_s, rel=1e-12)
        assert float(row["sequential_s"]) == pytest.approx(direct.sequential_s, rel=1e-12)
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("pytorch_eager_cpu", "pytorch"))
    with pytest.raises(ConfigError, match="vary.run.runtime.*no such runtime"):
        load_sweep(bad)


# ---- calibration ----------------------------------------------------------------------------


def test_calibrate_runtime_writes_a_valid_runtime_file(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "host_torch.yaml"
    assert main(["calibrate", "--runtime", "torch", "--quick", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    runtime = load_runtime(out)
    assert runtime.machine_kind == "cpu" and runtime.calibration["threads"] == 1
    data = yaml.safe_load(out.read_text())
    assert set(data["calibration"]["raw_s"]) == {"rnn", "lstm", "gru"}
    for cell in ("rnn", "lstm", "gru"):
        assert math.isfinite(runtime.step_s.forward[cell]) and runtime.step_s.forward[cell] >= 0
    assert report["runtime"]["name"] == "host_torch"
