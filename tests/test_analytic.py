"""Closed forms against the simulator: exact in idealised settings, bounded otherwise."""

from __future__ import annotations

import pytest
from conftest import make_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from wpsim.model import analysis
from wpsim.model.workload import Workload
from wpsim.policies import get_policy
from wpsim.sim.closed_forms import predict
from wpsim.sim.engine import simulate

IDEAL_POLICIES = ["sequential", "layerwise", "wavefront", "pipeline", "helper"]


@settings(max_examples=40, deadline=None)
@given(
    layers=st.integers(1, 7),
    chunks=st.integers(1, 7),
    chunk=st.integers(1, 3),
    cores=st.integers(1, 6),
    policy=st.sampled_from(IDEAL_POLICIES),
)
def test_ideal_simulation_equals_closed_form(layers, chunks, chunk, cores, policy):
    # uniform task cost: input == hidden and seq_len a multiple of chunk
    w = Workload(cell="gru", layers=layers, hidden=16, input=16, seq_len=chunks * chunk)
    m = make_machine(cores=cores)
    sim = simulate(w, m, policy, chunk=chunk, cost="ideal")
    ana = predict(w, m, policy, chunk=chunk, cost="ideal")
    assert sim.makespan_s == pytest.approx(ana.makespan_s, rel=1e-12)
    assert sim.sequential_s == pytest.approx(ana.sequential_s, rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(layers=st.integers(1, 6), chunks=st.integers(1, 8), cores=st.integers(1, 6))
def test_ideal_wavefront_is_the_band_formula(layers, chunks, cores):
    w = Workload(cell="rnn", layers=layers, hidden=8, input=8, seq_len=chunks)
    m = make_machine(cores=cores)
    r = simulate(w, m, "wavefront", cost="ideal")
    unit = r.sequential_s / (layers * chunks)
    assert r.makespan_s == pytest.approx(
        unit * analysis.wavefront_makespan_units(layers, chunks, cores)
    )


@settings(max_examples=40, deadline=None)
@given(
    layers=st.integers(1, 5),
    seq_len=st.integers(1, 9),
    cores=st.integers(1, 5),
    bidirectional=st.booleans(),
    phase=st.sampled_from(["inference", "training"]),
    cell=st.sampled_from(["rnn", "lstm", "gru"]),
    policy=st.sampled_from(["wavefront", "pipeline"]),
)
def test_greedy_schedules_within_work_span_bounds(
    layers, seq_len, cores, bidirectional, phase, cell, policy
):
    w = Workload(
        cell=cell,
        layers=layers,
        hidden=8,
        input=5,
        seq_len=seq_len,
        bidirectional=bidirectional,
        phase=phase,
    )
    r = simulate(w, make_machine(cores=cores), policy, cost="ideal")
    from wpsim.model.graph import build

    g = build(w)
    work_s = r.sequential_s
    span_s = analysis.critical_path(g, weight="flops")[0] / 1e9  # IdealCostModel: 1 GFLOP/s
    lower, upper = analysis.speedup_bounds(work_s, span_s, cores)
    assert lower * (1 - 1e-9) <= r.makespan_s
    if policy == "wavefront":  # greedy: never idle while work is ready
        assert r.makespan_s <= upper * (1 + 1e-9)


@pytest.mark.parametrize("policy", IDEAL_POLICIES + ["multiprogram"])
@pytest.mark.parametrize(
    "kw",
    [{}, {"bidirectional": True}, {"phase": "training", "batch": 4}],
    ids=["uni", "bidirectional", "training"],
)
def test_model_prediction_tracks_simulation(policy, kw):
    w = Workload(cell="lstm", layers=4, hidden=256, input=256, seq_len=40, **kw)
    m = make_machine(cores=4, l2_bytes=1 << 20, llc_bytes=16 << 20)
    p = get_policy(policy, instances=2 if policy == "multiprogram" else 1)
    sim = simulate(w, m, p)
    ana = predict(w, m, get_policy(policy, instances=2 if policy == "multiprogram" else 1))
    assert ana.makespan_s == pytest.approx(sim.makespan_s, rel=0.15)
    assert ana.speedup == pytest.approx(sim.speedup, rel=0.15)


def test_prediction_result_has_the_simulator_keys():
    w = Workload(cell="gru", layers=2, hidden=32, input=32, seq_len=8)
    sim = simulate(w, make_machine(), "wavefront").to_dict()
    ana = predict(w, make_machine(), "wavefront").to_dict()
    assert set(sim) == set(ana)
    for key in ("makespan_s", "sequential_s", "speedup", "n_tasks", "utilization", "dram_bytes"):
        assert key in ana
