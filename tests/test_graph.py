"""Task graphs: structure, closed forms, formulas, op granularity, exports."""

import itertools

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wpsim import analysis, export
from wpsim.errors import ConfigError
from wpsim.graph import batch_over_time, build, hoistable_kinds, tasks
from wpsim.workload import Workload

CELLS = ["rnn", "lstm", "gru"]


def make(**kw) -> Workload:
    base = dict(cell="lstm", layers=3, hidden=8, input=4, seq_len=7)
    return Workload(**{**base, **kw})


@pytest.mark.parametrize(
    "cell,bidirectional,phase,output,chunk",
    list(
        itertools.product(
            CELLS, [False, True], ["inference", "training"], ["none", "softmax"], [1, 3]
        )
    ),
)
def test_cell_graph_matches_closed_forms(cell, bidirectional, phase, output, chunk):
    w = make(cell=cell, bidirectional=bidirectional, phase=phase, output=output,
             output_size=5 if output != "none" else 0)  # fmt: skip
    g = build(w, chunk=chunk)
    assert nx.is_directed_acyclic_graph(g)
    assert g.number_of_nodes() == analysis.closed_form_n_tasks(w, chunk)
    span, path = analysis.critical_path(g)
    assert span == analysis.closed_form_span_tasks(w, chunk) == len(path)
    assert all(g.has_edge(a, b) for a, b in itertools.pairwise(path))
    forward_flops = sum(t.flops for t in tasks(g) if not t.is_backward)
    assert forward_flops == pytest.approx(analysis.closed_form_total_flops(w))


@settings(max_examples=60, deadline=None)
@given(layers=st.integers(1, 6), seq_len=st.integers(1, 30), chunk=st.integers(1, 8))
def test_unidirectional_span_and_width(layers, seq_len, chunk):
    w = make(layers=layers, seq_len=seq_len)
    g = build(w, chunk=chunk)
    n = -(-seq_len // chunk)
    assert analysis.critical_path(g)[0] == layers + n - 1
    assert max(analysis.parallelism_profile(g)) == min(layers, n)
    # every wavefront is an anti-diagonal l + c = const
    for index, gen in enumerate(analysis.generations(g)):
        assert {g.nodes[v]["task"].layer + g.nodes[v]["task"].t0 // chunk for v in gen} == {index}


def test_training_dependencies_mirror_forward():
    w = make(phase="training", layers=2, seq_len=3)
    g = build(w)
    by_name = {t.label: t.id for t in tasks(g)}
    bwd = by_name["cell_bwd[l0,fwd,t1]"]
    preds = {g.nodes[p]["task"].label for p in g.predecessors(bwd)}
    assert preds == {"cell_bwd[l0,fwd,t2]", "cell_bwd[l1,fwd,t1]", "cell[l0,fwd,t1]"}
    wgrad = by_name["wgrad[l0,fwd]"]
    assert {g.nodes[p]["task"].t0 for p in g.predecessors(wgrad)} == {0, 1, 2}


def test_bidirectional_layer_needs_both_directions_below():
    g = build(make(bidirectional=True, layers=2, seq_len=4))
    by_name = {t.label: t.id for t in tasks(g)}
    preds = {g.nodes[p]["task"].label for p in g.predecessors(by_name["cell[l1,rev,t2]"])}
    assert preds == {"cell[l0,fwd,t2]", "cell[l0,rev,t2]", "cell[l1,rev,t3]"}


def test_task_attributes_follow_formulas():
    w = make(cell="gru", hidden=16, input=6, batch=3, seq_len=8, layers=2)
    g = build(w, chunk=4)
    t = next(t for t in tasks(g) if t.layer == 1 and t.t0 == 4)
    B, H, G, I, k, s = 3, 16, 3, 16, 4, 4
    assert t.flops_in == 2 * G * H * I * B * k
    assert t.flops_rec == 2 * G * H * H * B * k
    assert t.flops_elem == 17 * H * B * k
    assert dict(t.weights) == {
        "l1.ih": G * H * I * s + G * H * s,
        "l1.hh": G * H * H * s + G * H * s,
    }
    assert t.in_bytes == B * k * I * s + B * H * s
    # the hand-off from the previous chunk carries h; from below, the k outputs
    prev = next(p for p in g.predecessors(t.id) if g.nodes[p]["task"].layer == 1)
    assert g.edges[prev, t.id]["bytes"] == B * H * s
    below = next(p for p in g.predecessors(t.id) if g.nodes[p]["task"].layer == 0)
    assert g.edges[below, t.id]["bytes"] == B * k * H * s


def test_lstm_state_handoff_includes_c():
    g = build(make(cell="lstm", hidden=8, batch=2))
    assert g.edges[0, 1]["bytes"] == 2 * 2 * 8 * 4


def test_sparse_recurrent_flops_scale_with_density():
    dense = build(make(density=1.0))
    sparse = build(make(density=0.25))
    d, s = dense.nodes[0]["task"], sparse.nodes[0]["task"]
    assert s.flops_rec == pytest.approx(0.25 * d.flops_rec, rel=1e-3)
    assert s.flops_in == d.flops_in


def test_hoisted_input_is_linear_execution():
    w = make(layers=3, seq_len=6)
    g = build(w, hoist_input=6)
    assert analysis.critical_path(g)[0] == analysis.closed_form_span_tasks(w, hoist_input=6) == 21
    gemms = [t for t in tasks(g) if t.kind == "input_gemm"]
    assert len(gemms) == 3 and all(t.steps == 6 for t in gemms)
    assert sum(t.flops for t in tasks(g)) == pytest.approx(analysis.closed_form_total_flops(w))


@pytest.mark.parametrize("cell", CELLS)
def test_op_granularity_finds_hoistable_ops(cell):
    w = make(cell=cell, output="softmax", output_size=5)
    assert hoistable_kinds(w) == {"input_proj", "out_proj", "softmax"}
    g = build(w, granularity="op")
    assert nx.is_directed_acyclic_graph(g)
    assert sum(t.flops for t in tasks(g)) == pytest.approx(analysis.closed_form_total_flops(w))


@pytest.mark.parametrize("chunk", [2, 4, 7])
def test_batching_over_time_merges_only_hoistable_ops(chunk):
    w = make(cell="lstm", layers=2, seq_len=7)
    unbatched = build(w, granularity="op")
    batched = batch_over_time(unbatched, chunk)
    assert nx.is_directed_acyclic_graph(batched)
    n = -(-7 // chunk)
    kinds = [t.kind for t in tasks(batched)]
    assert kinds.count("input_proj") == 2 * n
    assert kinds.count("rec_proj") == 2 * 7
    assert sum(t.flops for t in tasks(batched)) == pytest.approx(
        sum(t.flops for t in tasks(unbatched))
    )
    gemm = next(t for t in tasks(batched) if t.kind == "input_proj")
    assert gemm.steps == min(chunk, 7)


@pytest.mark.parametrize("phase", ["inference", "training"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_op_graph_every_phase_and_direction(phase, bidirectional):
    g = build(make(phase=phase, bidirectional=bidirectional, seq_len=4), granularity="op", chunk=2)
    assert nx.is_directed_acyclic_graph(g)
    # the recurrent chain of each layer is fully ordered: rec_proj of step t+1 after step t
    assert analysis.critical_path(g)[0] > 4


def test_instances_are_disjoint_copies():
    w = make(layers=2, seq_len=3)
    g = build(w, instances=3)
    assert g.number_of_nodes() == 3 * 6
    assert nx.number_weakly_connected_components(g) == 3
    keys = {k for t in tasks(g) for k, _ in t.weights}
    assert len(keys) == 3 * 2 * 2


def test_bad_build_arguments():
    with pytest.raises(ConfigError, match="--chunk"):
        build(make(), chunk=0)
    with pytest.raises(ConfigError, match="--granularity"):
        build(make(), granularity="layer")


def test_exports_round_trip(tmp_path):
    g = build(make(layers=2, seq_len=3, phase="training"))
    export.write_graphml(g, tmp_path / "g.graphml")
    back = nx.read_graphml(tmp_path / "g.graphml")
    assert back.number_of_nodes() == g.number_of_nodes()
    assert back.number_of_edges() == g.number_of_edges()
    export.write_dot(g, tmp_path / "g.dot")
    text = (tmp_path / "g.dot").read_text()
    assert text.startswith("digraph") and text.count("->") == g.number_of_edges()
    export.plot_grid(g, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 1000


def test_critical_path_in_flops_picks_the_heaviest_chain():
    w = make(layers=2, seq_len=3, input=64)  # layer 0 cells are heavier than layer 1's
    g = build(w)
    flops, path = analysis.critical_path(g, weight="flops")
    assert flops == pytest.approx(sum(g.nodes[v]["task"].flops for v in path))
    assert [g.nodes[v]["task"].layer for v in path] == [0, 0, 0, 1]


def test_wavefront_closed_form_matches_greedy_bound():
    for layers, chunks, cores in itertools.product(range(1, 6), range(1, 6), range(1, 6)):
        m = analysis.wavefront_makespan_units(layers, chunks, cores)
        lower, upper = analysis.speedup_bounds(layers * chunks, layers + chunks - 1, cores)
        assert lower <= m <= upper


@pytest.mark.parametrize("granularity", ["cell", "op"])
def test_a_skip_input_layer_has_no_input_projection(granularity):
    skip = Workload(cell="lstm", layers=2, hidden=8, input=0, seq_len=4, phase="training")
    full = skip.model_copy(update={"input": 8})
    g_skip, g_full = build(skip, granularity), build(full, granularity)
    layer0 = [t for t in tasks(g_skip) if t.layer == 0 and t.kind != "wgrad"]
    assert sum(t.flops_in for t in layer0) == 0.0
    assert all(t.kind != "input_proj" for t in layer0)
    # layer 1 still projects layer 0's output
    assert any(t.flops_in > 0 for t in tasks(g_skip) if t.layer == 1)
    assert sum(t.flops for t in tasks(g_skip)) < sum(t.flops for t in tasks(g_full))
    hoisted = build(skip, "cell", hoist_input=4)
    kinds = {(t.kind, t.layer) for t in tasks(hoisted)}
    assert ("input_gemm", 0) not in kinds and ("input_gemm", 1) in kinds
