"""The makespan by cause (wpsim.breakdown): both views add up to the makespan in every engine and
machine kind, and each cause shows where the model puts its time."""

from __future__ import annotations

import json
import math

import pytest
from conftest import make_machine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wpsim import breakdown
from wpsim.cli import main
from wpsim.cost.base import TaskCost
from wpsim.machines import load_machine, resolve_machine_path
from wpsim.machines.cpu import CpuMachine
from wpsim.model.workload import Workload
from wpsim.policies import get_policy
from wpsim.sim import evaluate as by_kind
from wpsim.sim.closed_forms import band_makespan, band_terms, predict
from wpsim.sim.engine import simulate
from wpsim.trace import Trace

XEON = load_machine(resolve_machine_path("xeon8160_2s"))
V100 = load_machine(resolve_machine_path("v100"))
ACCEL = load_machine(resolve_machine_path("lstm_accel_2core"))


def assert_adds_up(result) -> None:
    """Both views sum to the makespan, and no cause is negative (beyond rounding)."""
    span = result.makespan_s
    for view in (result.breakdown_s, result.core_breakdown_s):
        assert view, "no break-down"
        assert math.fsum(view.values()) == pytest.approx(span, rel=1e-9, abs=1e-18)
        assert min(view.values()) >= -1e-9 * span, view


# ---- adds up ----------------------------------------------------------------------------------
workloads = st.builds(
    Workload,
    cell=st.sampled_from(["rnn", "lstm", "gru"]),
    layers=st.integers(1, 4),
    hidden=st.sampled_from([16, 64, 256, 1024]),
    input=st.sampled_from([16, 256]),
    seq_len=st.integers(1, 12),
    batch=st.sampled_from([1, 4]),
    bidirectional=st.booleans(),
    phase=st.sampled_from(["inference", "training"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    workload=workloads,
    policy=st.sampled_from(["sequential", "layerwise", "wavefront", "pipeline", "helper"]),
    cores=st.sampled_from([1, 2, 4, 8, 24]),
    chunk=st.sampled_from([1, 3]),
    cost=st.sampled_from(["model", "model", "ideal"]),
)
def test_shares_add_up_to_the_makespan_on_random_configurations(
    workload, policy, cores, chunk, cost
) -> None:
    for engine in (simulate, predict):
        assert_adds_up(engine(workload, XEON, policy, cores=cores, chunk=chunk, cost=cost))


def calibrated_like() -> CpuMachine:
    """A machine with what calibrated files have: co-running slowdown, dispatch tables, kernel
    overheads, a hit curve, an element-wise step table."""
    data = make_machine(cores=4, corun=0.05, dispatch_s=2e-6).model_dump()
    data["dispatch_overhead_busy_s"] = [[1e-6, 3e-6], [1e-4, 9e-6]]
    data["dispatch_overhead_group_s"] = [[1e-6, 4e-6], [1e-4, 6e-6]]
    data["task_overhead_s"] = {"rnn": 1e-6, "lstm": 2e-6, "gru": 2e-6}
    data["step_overhead_s"] = {"rnn": 5e-7, "lstm": 1e-6, "gru": 1e-6}
    data["caches"][1]["hit_curve"] = [[1.0, 1.0], [1.5, 0.6], [2.0, 0.0]]
    data["efficiency"]["elementwise_step_s"] = {
        "lstm": [[16, 1, 1e-6], [16, 4, 2e-6], [1024, 1, 5e-6], [1024, 4, 9e-6]]
    }
    data["elementwise_split_across_helpers"] = False
    return CpuMachine.model_validate(data)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload=workloads, cores=st.sampled_from([2, 4]), helpers=st.sampled_from([None, 2]))
def test_shares_add_up_with_co_running_slowdown_and_dispatch_tables(
    workload, cores, helpers
) -> None:
    machine = calibrated_like()
    for name in ("wavefront", "layerwise"):
        policy = get_policy(name, helpers=helpers if name == "wavefront" else None)
        for engine in (simulate, predict):
            assert_adds_up(engine(workload, machine, policy, cores=cores))


@pytest.mark.parametrize("engine", ["simulate", "predict"])
@pytest.mark.parametrize(
    ("machine", "policy"),
    [(ACCEL, p) for p in ["sequential", "pipeline", "helper", "wavefront"]]
    + [(V100, p) for p in ["gemm", "sparse_gemm", "persistent", "persistent_barrier", "streams"]],
)
def test_shares_add_up_on_accelerators_and_gpus(engine, machine, policy) -> None:
    for workload in (
        Workload(cell="lstm", layers=3, hidden=512, input=512, seq_len=20, dtype="float16"),
        Workload(cell="rnn", layers=2, hidden=1024, input=1024, seq_len=16, batch=4, density=0.3),
    ):
        result = by_kind.evaluate(engine, workload, machine, get_policy(policy))
        assert_adds_up(result)


def test_multiprogram_adds_up() -> None:
    w = Workload(cell="lstm", layers=3, hidden=256, input=256, seq_len=10)
    policy = get_policy("multiprogram", instances=3)
    for engine in (simulate, predict):
        assert_adds_up(engine(w, XEON, policy, cores=6))
    two = get_policy("multiprogram", instances=2)
    for engine in ("simulate", "predict"):
        assert_adds_up(by_kind.evaluate(engine, w, ACCEL, two))


# ---- each cause where the model puts the time -------------------------------------------------
def test_a_dram_bound_run_is_mostly_memory() -> None:
    """Weights of 4 MiB a layer on cores with 64 KiB caches and 2 GB/s of DRAM: every step
    streams them, at about 30 times its arithmetic."""
    m = make_machine(
        cores=2, l2_bytes=64 << 10, llc_bytes=64 << 10, dram_Bps=2e9, per_core_dram_Bps=2e9
    )
    w = Workload(cell="lstm", layers=2, hidden=512, input=512, seq_len=8)
    for engine in (simulate, predict):
        r = engine(w, m, "wavefront")
        for view in (r.breakdown_s, r.core_breakdown_s):
            busy = r.makespan_s - view["idle"]
            assert view["memory.DRAM"] > 0.9 * busy, view
            assert view["compute"] < 0.1 * busy


def test_a_run_from_cache_is_compute_and_names_the_level() -> None:
    """One small layer on one core: after the cold first step its weights come from L2, which
    the arithmetic hides (1 GHz x 16 flop/cycle against 200 GB/s)."""
    m = make_machine(cores=1)
    w = Workload(cell="lstm", layers=1, hidden=64, input=64, seq_len=50)
    r = simulate(w, m, "sequential")
    why = r.breakdown_s
    assert why["compute"] > 0.8 * r.makespan_s
    assert why["memory.DRAM"] > 0.0  # the cold first step
    assert why["idle"] == 0.0 and why["handoff"] == 0.0 and why["sync"] == 0.0


def test_an_idle_heavy_schedule_shows_idle_where_the_cores_wait() -> None:
    """One layer on 8 cores: its chain of steps runs on one core, seven wait. The cores' time is
    7/8 idle; the critical path is the chain itself, with no wait."""
    w = Workload(cell="lstm", layers=1, hidden=64, input=64, seq_len=20)
    for engine in (simulate, predict):
        r = engine(w, make_machine(cores=8), "wavefront", cost="ideal")
        assert r.core_breakdown_s["idle"] == pytest.approx(7 / 8 * r.makespan_s)
        assert r.core_breakdown_s["compute"] == pytest.approx(r.makespan_s / 8)
        assert r.breakdown_s["compute"] == pytest.approx(r.makespan_s)
        assert r.breakdown_s["idle"] == 0.0


def test_dispatch_is_charged_once_a_task_on_the_path() -> None:
    w = Workload(cell="rnn", layers=2, hidden=16, input=16, seq_len=5)
    m = make_machine(cores=1, dispatch_s=3e-6)
    for engine in (simulate, predict):
        r = engine(w, m, "sequential")
        assert r.breakdown_s["dispatch"] == pytest.approx(10 * 3e-6)
        assert r.core_breakdown_s["dispatch"] == pytest.approx(10 * 3e-6)


def test_helpers_synchronise_and_wavefronts_hand_off() -> None:
    w = Workload(cell="lstm", layers=3, hidden=128, input=128, seq_len=10)
    m = make_machine(cores=4)
    helper = simulate(w, m, "helper")
    assert helper.breakdown_s["sync"] > 0.0 and helper.breakdown_s["handoff"] == 0.0
    wavefront = simulate(w, m, "wavefront")
    assert wavefront.breakdown_s["handoff"] > 0.0 and wavefront.breakdown_s["sync"] == 0.0
    alone = simulate(w, m, "sequential")
    assert alone.breakdown_s["handoff"] == alone.breakdown_s["sync"] == 0.0


def test_co_running_cores_show_contention() -> None:
    w = Workload(cell="lstm", layers=4, hidden=64, input=64, seq_len=10)
    m = make_machine(cores=4, corun=0.1)
    busy = simulate(w, m, "wavefront")
    assert busy.core_breakdown_s["contention"] > 0.0
    assert simulate(w, m, "sequential").core_breakdown_s["contention"] == 0.0


def test_a_persistent_kernel_with_a_global_barrier_shows_sync() -> None:
    """A small layer at batch 1: each step's global barrier is not hidden (one column)."""
    w = Workload(cell="rnn", layers=1, hidden=256, input=256, seq_len=50)
    for engine in ("simulate", "predict"):
        r = by_kind.evaluate(engine, w, V100, get_policy("persistent_barrier"))
        assert r.breakdown_s["sync"] > 0.2 * r.makespan_s, r.breakdown_s
        assert r.breakdown_s["dispatch"] > 0.0  # the one launch


def test_closed_forms_explain_the_makespan_as_the_simulation_does() -> None:
    """Helper groups over all cores: both run the same sum of the same task costs."""
    w = Workload(cell="lstm", layers=4, hidden=512, input=512, seq_len=30)
    sim, closed = simulate(w, XEON, "helper", cores=8), predict(w, XEON, "helper", cores=8)
    assert closed.makespan_s == pytest.approx(sim.makespan_s, rel=1e-9)
    for cause, seconds in sim.breakdown_s.items():
        assert closed.breakdown_s[cause] == pytest.approx(seconds, rel=1e-6, abs=1e-12), cause


GPU_TRAINING = [
    Workload(cell="lstm", layers=2, hidden=512, input=256, seq_len=12, batch=2, phase="training"),
    # skip input, sparse, an output layer
    Workload(
        cell="rnn",
        layers=3,
        hidden=1024,
        input=0,
        seq_len=8,
        batch=4,
        density=0.3,
        phase="training",
        output="softmax",
        output_size=100,
    ),
]


@pytest.mark.parametrize("workload", GPU_TRAINING, ids=["lstm", "sparse-skip-input-softmax"])
@pytest.mark.parametrize("policy", ["gemm", "sparse_gemm", "persistent", "persistent_barrier"])
def test_gpu_closed_form_explains_training_as_the_simulation_does(workload, policy) -> None:
    """One kernel at a time the closed form walks the simulation's kernels in its order, so
    both engines break the makespan down alike: launches, the persistent kernels' weight loads
    and step synchronisation, the reads from L2 and DRAM, forward and backward."""
    sim = by_kind.evaluate("simulate", workload, V100, get_policy(policy))
    closed = by_kind.evaluate("predict", workload, V100, get_policy(policy))
    assert closed.makespan_s == pytest.approx(sim.makespan_s, rel=1e-9)
    for result in (sim, closed):
        assert_adds_up(result)
        assert result.breakdown_s["dispatch"] > 0.0 and result.breakdown_s["memory.DRAM"] > 0.0
    for view in ("breakdown_s", "core_breakdown_s"):
        for cause, seconds in getattr(sim, view).items():
            got = getattr(closed, view)[cause]
            assert got == pytest.approx(seconds, rel=1e-9, abs=1e-12 * sim.makespan_s), cause


@pytest.mark.parametrize("instances", [1, 2])
@pytest.mark.parametrize("chunk", [1, 3])
def test_gpu_streams_training_adds_up(chunk, instances) -> None:
    """Streams: the forward and backward bands and the weight-gradient GEMMs. Small layers are
    bound by their kernels' launches along the band, a large layer set by DRAM, which is then
    all of the makespan."""
    policy = get_policy("streams", instances=instances)
    small = Workload(cell="lstm", layers=3, hidden=128, input=128, seq_len=10, phase="training")
    dram_bound = Workload(cell="rnn", layers=3, hidden=1024, input=512, seq_len=9, batch=1)
    for workload in (*GPU_TRAINING, small, dram_bound):
        for engine in ("simulate", "predict"):
            assert_adds_up(by_kind.evaluate(engine, workload, V100, policy, chunk=chunk))
    why = by_kind.evaluate("predict", small, V100, policy).breakdown_s
    assert why["dispatch"] > 0.5 * math.fsum(why.values()) and why["compute"] > 0.0
    why = by_kind.evaluate("predict", dram_bound, V100, policy).breakdown_s
    assert why["memory.DRAM"] == pytest.approx(math.fsum(why.values()), rel=1e-9)


# ---- the pieces ---------------------------------------------------------------------------------
@given(
    costs=st.lists(st.floats(0.1, 10.0), min_size=1, max_size=9),
    chunks=st.integers(1, 12),
    groups=st.integers(1, 10),
)
def test_band_terms_sum_to_the_band_makespan(costs, chunks, groups) -> None:
    terms = band_terms(costs, chunks, groups)
    total = math.fsum(c * costs[layer] for layer, c in terms)
    assert total == pytest.approx(band_makespan(costs, chunks, groups), rel=1e-12)


def test_a_task_is_split_with_the_arithmetic_first() -> None:
    # fixed: dispatch 1, overhead 2, element-wise 3 (half of it co-running slowdown); then
    # max(products 4 (2 alone), L2 1 + L3 5)
    cost = TaskCost(
        6.0,
        4.0,
        6.0,
        0.0,
        {"L2": 100.0, "L3": 500.0},
        0,
        dispatch_s=1.0,
        overhead_s=2.0,
        elementwise_s=3.0,
        corun=2.0,
    )
    parts: dict[str, float] = {}
    breakdown.add_task(parts, cost, 12.0, level_bw={"L2": 100.0, "L3": 100.0})
    assert parts == pytest.approx(
        {
            "dispatch": 1.0,
            "overhead": 2.0,
            "compute": 1.5 + 2.0,
            "contention": 1.5 + 2.0,
            "memory.L2": 2.0 * 1 / 6,
            "memory.L3": 2.0 * 5 / 6,
        }
    )
    assert math.fsum(parts.values()) == pytest.approx(12.0)


def test_the_critical_path_follows_the_latest_predecessor_or_core() -> None:
    tr = Trace([])
    # core 0: 0 [0,1], 2 [1,2]; core 1: 1 [0,1.5]; task 3 on core 0 at 3 needs 1 and 2
    for task, core, start, end in [
        (0, 0, 0.0, 1.0),
        (1, 1, 0.0, 1.5),
        (2, 0, 1.0, 2.0),
        (3, 0, 3.0, 4.0),
    ]:
        tr.append(task, (core,), start, end, {}, True)
    path = breakdown.critical_path(tr, [[], [], [], [1]])
    # task 3's latest: task 2 on its core (ends 2.0) over its predecessor task 1 (1.5)
    assert [(tr.task[i], wait) for i, wait in path] == [(3, 1.0), (2, 0.0), (0, 0.0)]
    why = breakdown.critical_path_breakdown(tr, [[], [], [], [1]], [])
    assert why["busy"] == 3.0 and why["idle"] == 1.0  # a measured trace: time of unknown make-up


def test_a_trace_that_breaks_the_rules_ends_the_walk() -> None:
    """Task 1 ran before task 0, its predecessor, on the same core: following the core back
    from task 0 reaches task 1, whose predecessor is task 0 again; the walk stops there."""
    tr = Trace([])
    tr.append(1, (0,), 0.0, 1.0, {}, True)
    tr.append(0, (0,), 1.0, 2.0, {}, True)
    path = breakdown.critical_path(tr, [[], [0]])
    assert [(tr.task[i], wait) for i, wait in path] == [(0, 0.0), (1, 0.0)]


def test_the_dispatch_column_is_what_the_cost_model_charged(tmp_path) -> None:
    w = Workload(cell="rnn", layers=2, hidden=8, input=8, seq_len=3)
    m = make_machine(cores=2, dispatch_s=2e-6)
    seen = {}
    r = simulate(w, m, "wavefront", hooks=[lambda e: seen.update({e["task"]: e["dispatch_s"]})])
    assert r.trace.dispatch_s == [seen[t] for t in r.trace.task]
    assert next(r.trace.records())["dispatch_s"] == 2e-6
    r.trace.to_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().splitlines()[0].endswith(",dispatch_s")
    r.trace.to_chrome(tmp_path / "t.json")
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert all(e["args"]["dispatch_s"] == 2e-6 for e in events if e["ph"] == "X")
    measured = Trace([])
    measured.append(0, (0,), 0.0, 1.0, {}, True)
    assert measured.dispatch_s == [] and "dispatch_s" not in next(measured.records())
    with pytest.raises(ValueError, match="every record"):
        measured.append(1, (0,), 1.0, 2.0, {}, True, dispatch_s=1e-6)


# ---- where users see it -------------------------------------------------------------------------
def test_text_and_json_results_carry_the_break_down(capsys) -> None:
    assert main(["simulate", "-w", "tiny", "--cores", "4"]) == 0
    text = capsys.readouterr().out
    assert "critical path" in text and "mean over cores" in text and "compute" in text
    assert main(["predict", "-w", "tiny", "--cores", "4", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    for key in ("breakdown_s", "core_breakdown_s"):
        assert math.fsum(result[key].values()) == pytest.approx(result["makespan_s"])


def test_the_gantt_chart_colours_by_cause(tmp_path, capsys) -> None:
    png = tmp_path / "g.png"
    assert (
        main(["simulate", "-w", "tiny", "--cores", "4", "--gantt", str(png), "--gantt-by", "cause"])
        == 0
    )
    assert png.read_bytes()[:4] == b"\x89PNG"
