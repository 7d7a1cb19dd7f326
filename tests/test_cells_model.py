"""Every registered cell through the model: task graph, simulate, predict, the CLI.

Parametrised over the registry (a new cell file is checked here with no edit) and over a cell
declared in a YAML file of the test's own (a user's cell: no code edit anywhere).
"""

from __future__ import annotations

import json
import math

import networkx as nx
import pytest
import yaml
from conftest import make_machine

from wpsim.cells import cell_names, get_cell, op_phases, products
from wpsim.cli import main
from wpsim.model import graph as wgraph
from wpsim.model.analysis import closed_form_total_flops
from wpsim.model.ops import op_kinds
from wpsim.model.workload import Workload
from wpsim.sim.closed_forms import predict
from wpsim.sim.engine import simulate

#: every registered cell, and the options of the built-ins
CELLS = [*cell_names(), "rnn(nonlinearity='relu')", "lstm(proj_size=5)", "qrnn(window=2)"]
#: A cell no module declares: a leaky element-wise recurrence with an input gate.
LEAKY = {
    "name": "leaky",
    "reference": "a test's own cell",
    "states": {"c": {"width": "H", "next": "c_new"}},
    "params": {
        "weight_ih": {"shape": ["2*H", "I"], "gates": ["u", "g"]},
        "decay": {"shape": ["H"]},
    },
    "ops": [
        "gx = matmul(weight_ih, x)",
        "g = sigmoid(gx.g)",
        "dc = mul(decay, c)",
        "gu = mul(g, gx.u)",
        "c_new = add(dc, gu)",
        "h_new = tanh(c_new)",
    ],
    "output": "h_new",
}


@pytest.fixture(scope="module")
def leaky_yaml(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("cells") / "leaky.yaml"
    path.write_text(yaml.safe_dump(LEAKY))
    return str(path)


def _workload(cell: str, **kw) -> Workload:
    spec = dict(cell=cell, layers=2, hidden=12, input=7, seq_len=6, batch=2)
    return Workload(**{**spec, **kw})


def _has_recurrent_product(w: Workload) -> bool:
    return any(p.recurrent for p in products(w.cell_declaration, w.hidden, w.hidden))


# ---- the task graph --------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("chunk", [1, 4])
def test_cell_graph_flops_are_the_declarations(cell, chunk):
    w = _workload(cell, bidirectional=True)
    g = wgraph.build(w, chunk=chunk)
    assert nx.is_directed_acyclic_graph(g)
    cells = [t for t in wgraph.tasks(g) if t.kind == "cell"]
    assert len(cells) == w.layers * w.directions * w.n_chunks(chunk)
    for t in cells:
        f = w.step_flops(t.layer)
        # the ops that leave the recurrence: one GEMM of B*k columns a chunk; none on it
        assert t.flops_in == f.matmul_batched * t.steps
        assert t.flops_rec == f.matmul_recurrent * t.steps
        assert t.flops_elem == f.elementwise * t.steps
        assert t.recurrent
    total = sum(t.flops for t in wgraph.tasks(g))
    assert total == pytest.approx(closed_form_total_flops(w), rel=1e-12)


@pytest.mark.parametrize("cell", CELLS)
def test_op_graph_has_the_cells_kinds_and_batches_what_leaves_the_recurrence(cell):
    w = _workload(cell)
    decl = w.cell_declaration
    kinds = op_kinds(decl)
    for chunk in (1, 3):
        g = wgraph.build(w, granularity="op", chunk=chunk)
        assert nx.is_directed_acyclic_graph(g)
        found = {t.kind for t in wgraph.tasks(g)}
        assert found == {k.name for k in kinds}
        # no recurrent GEMM task for a cell whose recurrence is element-wise (SRU, QRNN, IndRNN)
        assert ("rec_proj" in found) == _has_recurrent_product(w)
        for kind in kinds:
            n = sum(1 for t in wgraph.tasks(g) if t.kind == kind.name)
            per_layer = w.seq_len if kind.recurrent else math.ceil(w.seq_len / chunk)
            assert n == w.layers * per_layer, kind.name
        # the same work as the cell graph, whatever the chunk
        total = sum(t.flops for t in wgraph.tasks(g))
        assert total == pytest.approx(closed_form_total_flops(w), rel=1e-12)


@pytest.mark.parametrize("cell", ["sru", "qrnn", "qrnn(window=2)"])
def test_all_matrix_work_of_sru_and_qrnn_leaves_the_recurrence(cell):
    """Sung & Park's multi-time-step execution: every product runs once a chunk of k steps."""
    w = _workload(cell)
    assert w.step_flops(0).matmul_recurrent == 0.0 and w.weight_hh_bytes() == 0
    g = wgraph.build(w, granularity="op", chunk=3)
    recurrent_kinds = {k.name for k in op_kinds(w.cell_declaration) if k.recurrent}
    for t in wgraph.tasks(g):
        if t.kind in recurrent_kinds:
            assert t.flops_in == t.flops_rec == 0.0 and t.steps == 1
        elif t.kind == "input_proj":
            assert t.steps == 3 and t.flops_in > 0
    phases = op_phases(w.cell_declaration)
    assert all(phases[p.op] != "recurrence" for p in products(w.cell_declaration, 4, 4))


def test_a_projected_lstm_splits_its_recurrent_products_so_a_step_is_a_dag():
    w = _workload("lstm(proj_size=5)")
    g = wgraph.build(w, granularity="op")
    assert nx.is_directed_acyclic_graph(g)
    first = [t for t in wgraph.tasks(g) if t.layer == 1 and t.t0 == 0]
    assert [t.kind for t in first] == ["input_proj", "rec_proj", "rec_proj_2", "gates", "state"]
    # the layer above reads the projected output: P = 5 features, not H = 12
    assert w.layer_input_size(1) == 5
    assert first[0].flops_in == 2.0 * 4 * 12 * 5 * w.batch


def test_a_window_2_qrnn_waits_for_the_previous_input_of_the_layer_below():
    w = _workload("qrnn(window=2)", layers=2)
    g = wgraph.build(w, granularity="op")
    tasks = list(wgraph.tasks(g))
    below = {t.t0: t.id for t in tasks if t.layer == 0 and t.kind == "readout"}
    for t in tasks:
        if t.layer == 1 and t.kind == "input_proj" and t.t0 > 0:
            assert g.has_edge(below[t.t0 - 1], t.id) and g.has_edge(below[t.t0], t.id)


# ---- simulate and predict ----------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("policy", ["sequential", "wavefront", "layerwise"])
def test_ideal_simulation_equals_closed_form_for_every_cell(cell, policy):
    # uniform task costs (input == output width, seq_len a multiple of chunk): exact agreement
    w = _workload(cell, input=_workload(cell).output_width, seq_len=6)
    m = make_machine(cores=3)
    sim = simulate(w, m, policy, chunk=2, cost="ideal")
    ana = predict(w, m, policy, chunk=2, cost="ideal")
    assert sim.makespan_s == pytest.approx(ana.makespan_s, rel=1e-12)
    assert sim.sequential_s == pytest.approx(ana.sequential_s, rel=1e-12)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("kw", [{}, {"phase": "training", "bidirectional": True}, {"density": 0.3}])
def test_model_prediction_tracks_simulation_for_every_cell(cell, kw):
    w = _workload(cell, hidden=128, input=128, seq_len=16, **kw)
    m = make_machine(cores=4)
    sim = simulate(w, m, "wavefront")
    ana = predict(w, m, "wavefront")
    assert sim.makespan_s > 0 and ana.makespan_s == pytest.approx(sim.makespan_s, rel=0.25)


def test_multi_time_step_cuts_the_weight_traffic_of_sru_about_k_fold():
    """SRU's weights are read once a chunk: k steps per GEMM read them k times less."""
    w = Workload(cell="sru", layers=1, hidden=1024, input=1024, seq_len=64)
    m = make_machine(cores=1, l2_bytes=256 << 10, llc_bytes=1 << 20)
    traffic = {}
    for k in (1, 4, 16):
        r = simulate(w, m, "sequential", chunk=k)
        traffic[k] = r.dram_bytes
        # the op granularity batches the same products over the chunk: the same traffic and time
        ops = simulate(w, m, "sequential", chunk=k, granularity="op")
        assert ops.dram_bytes == r.dram_bytes
        assert ops.makespan_s == pytest.approx(r.makespan_s, rel=1e-3)
    assert traffic[1] / traffic[4] == pytest.approx(4, rel=0.05)
    assert traffic[1] / traffic[16] == pytest.approx(16, rel=0.05)


# ---- a user's cell in YAML, and the CLI -------------------------------------------------------
def test_a_yaml_cell_runs_through_the_model_with_no_code_edit(leaky_yaml):
    w = _workload(leaky_yaml, phase="training")
    assert w.cell_name == "leaky" and w.weight_hh_bytes() == 0
    for granularity in ("cell", "op"):
        g = wgraph.build(w, granularity=granularity, chunk=3)
        assert nx.is_directed_acyclic_graph(g)
    m = make_machine(cores=2)
    assert simulate(w, m, "wavefront", chunk=3).makespan_s > 0
    assert predict(w, m, "wavefront", chunk=3).makespan_s > 0


@pytest.mark.parametrize("cell", CELLS)
def test_graph_simulate_and_predict_commands_for_every_cell(cell, tmp_path, capsys):
    path = tmp_path / "w.yaml"
    path.write_text(
        yaml.safe_dump(dict(cell=cell, layers=2, hidden=32, input=16, seq_len=8, batch=1))
    )
    assert main(["graph", "-w", str(path), "--granularity", "op", "--chunk", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_tasks"] > 0
    for command in ("simulate", "predict"):
        assert main([command, "-w", str(path), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["makespan_s"] > 0


def test_a_cell_yaml_from_the_command_line(leaky_yaml, tmp_path, capsys):
    path = tmp_path / "w.yaml"
    path.write_text(f"cell: {leaky_yaml}\nhidden: 16\ninput: 8\nseq_len: 4\n")
    assert main(["simulate", "-w", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["makespan_s"] > 0


def test_an_unknown_cell_exits_2_with_one_line(tmp_path, capsys):
    path = tmp_path / "w.yaml"
    path.write_text("cell: transformer\nhidden: 16\ninput: 8\nseq_len: 4\n")
    assert main(["simulate", "-w", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "field 'cell'" in err and "sru" in err
    assert get_cell("sru")  # the registry still answers


# ---- parallel training streams (Hwang & Sung 2015) ------------------------------------------------
def test_streams_copy_every_chain_and_share_the_weights():
    one = _workload("lstm", phase="training")
    three = _workload("lstm", phase="training", streams=3)
    g1, g3 = wgraph.build(one, chunk=2), wgraph.build(three, chunk=2)
    assert nx.is_directed_acyclic_graph(g3)
    cells1 = [t for t in wgraph.tasks(g1) if t.kind == "cell"]
    cells3 = [t for t in wgraph.tasks(g3) if t.kind == "cell"]
    assert len(cells3) == 3 * len(cells1)
    assert {t.stream for t in cells3} == {0, 1, 2}
    # the same weight blocks (names and bytes) whatever the stream
    assert {t.weights for t in cells3} == {t.weights for t in cells1}
    # one weight-gradient task a layer-direction for all streams, three times the work
    w1 = [t for t in wgraph.tasks(g1) if t.kind == "wgrad"]
    w3 = [t for t in wgraph.tasks(g3) if t.kind == "wgrad"]
    assert len(w3) == len(w1)
    assert [t.flops for t in w3] == pytest.approx([3 * t.flops for t in w1], rel=1e-12)
    assert wgraph.tasks(g3) and next(t for t in cells3 if t.stream == 2).label.startswith("s2.")


def test_streams_fill_the_cores_a_wavefront_leaves_idle():
    """Ideal costs: a 2-layer wavefront keeps 2 of 4 cores busy; a second stream takes the other
    two, so two streams finish in the time of one (a throughput speed-up of 2), and the closed
    form says the same."""
    m = make_machine(cores=4)
    one = _workload("gru", layers=2, hidden=16, input=16, seq_len=8)
    two = _workload("gru", layers=2, hidden=16, input=16, seq_len=8, streams=2)
    t1 = simulate(one, m, "wavefront", cost="ideal").makespan_s
    t2 = simulate(two, m, "wavefront", cost="ideal").makespan_s
    assert t2 == pytest.approx(t1, rel=1e-12)
    assert predict(two, m, "wavefront", cost="ideal").makespan_s == pytest.approx(t2, rel=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "sru"])
def test_streams_speed_up_training_against_one_stream(cell):
    """With the cost model: N streams of a 2-layer network on 8 cores run faster than N runs of
    one stream (cores a single wavefront leaves idle, and weights hot in the caches of the cores
    that ran another stream's task), and at most N times faster."""
    m = make_machine(cores=8)
    one = _workload(cell, layers=2, hidden=256, input=256, seq_len=16, phase="training")
    t1 = simulate(one, m, "wavefront").makespan_s
    for n in (2, 4):
        several = one.model_copy(update={"streams": n})
        tn = simulate(several, m, "wavefront").makespan_s
        speedup = n * t1 / tn
        assert 1.2 < speedup <= n * (1 + 1e-9), (n, speedup)
        # the closed form (work or critical path, the streams' tasks costed alike) tracks it
        assert predict(several, m, "wavefront").makespan_s == pytest.approx(tn, rel=0.1)


def test_streams_are_refused_where_they_are_not_modelled():
    from wpsim.errors import ConfigError
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.sim.gpu import evaluate

    w = _workload("lstm", streams=2)
    with pytest.raises(ConfigError, match="streams 2: the GPU models run one stream"):
        evaluate("simulate", w, load_machine(resolve_machine_path("v100")), "gemm")


def test_helpers_meet_every_step_only_where_a_product_is_on_the_recurrence():
    """Helpers splitting an LSTM step all-gather h for the next step's W_hh h: a barrier a step.
    SRU's recurrence is element-wise: each helper runs its own units for the k steps, one
    barrier a task (and nothing to gather)."""
    from wpsim.policies import get_policy

    m = make_machine(cores=2)
    barrier = m.barrier_s(2)
    sync = {}
    for cell in ("lstm", "sru"):
        w = Workload(cell=cell, layers=1, hidden=64, input=64, seq_len=8)
        sync[cell] = simulate(w, m, get_policy("helper", helpers=2), chunk=4).breakdown_s["sync"]
    gather = (2 - 1) / 2 * 64 * 4 / m.handoff.bandwidth_Bps
    assert sync["lstm"] == pytest.approx(8 * (barrier + gather), rel=1e-9)
    assert sync["sru"] == pytest.approx(2 * barrier, rel=1e-9)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize(
    "machine, policy",
    [("v100", "gemm"), ("v100", "persistent"), ("v100", "streams"), ("lstm_accel_2core", "helper")],
)
def test_gpu_and_accelerator_models_for_every_cell(cell, machine, policy):
    """The GPU and accelerator models run every cell; their simulation and closed form agree on
    inference (a cell without a recurrent product runs its element-wise recurrence as one
    kernel a step, or a chunk, in both)."""
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.sim import evaluate as by_kind

    m = load_machine(resolve_machine_path(machine))
    w = _workload(cell, hidden=64, input=32, seq_len=8, batch=1)
    sim = by_kind.evaluate("simulate", w, m, policy, chunk=1, granularity="cell")
    ana = by_kind.evaluate("predict", w, m, policy, chunk=1, granularity="cell")
    assert sim.makespan_s > 0
    assert ana.makespan_s == pytest.approx(sim.makespan_s, rel=0.02)
    if machine == "v100" and not _has_recurrent_product(w):  # nothing to keep on chip
        assert by_kind.evaluate("predict", w, m, "persistent", chunk=1).makespan_s == (
            pytest.approx(by_kind.evaluate("predict", w, m, "gemm", chunk=1).makespan_s)
        )
