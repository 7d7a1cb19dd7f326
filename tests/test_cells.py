"""wpsim.cells: declarations, the registry, the YAML loader, and the analysis derived from a
declaration, checked equal to the numbers wpsim computes today for the Elman RNN, LSTM and GRU
(so that the graph and the cost model can read declarations with the golden set unchanged)."""

from __future__ import annotations

import doctest
import importlib
import itertools
import pkgutil

import networkx as nx
import pytest
import yaml

import wpsim.cells
from kernels.params import param_shapes as workload_param_shapes
from wpsim.cells import (
    CSR_INDEX_BYTES,
    cell_from_dict,
    cell_names,
    cell_to_dict,
    elementwise_flops_per_unit,
    gate_count,
    get_cell,
    group_flops,
    load_cell,
    op_groups,
    op_phases,
    param_block,
    param_shapes,
    parameter_count,
    products,
    recurrence_inputs,
    resolve_cell,
    rolled_graph,
    schedule,
    state_bytes,
    step_flops,
    weight_blocks,
)
from wpsim.errors import ConfigError
from wpsim.model import graph as wgraph
from wpsim.model.workload import INDEX_BYTES, Workload

TODAY = ["rnn", "lstm", "gru"]
#: The tables wpsim kept per cell before the cells were declared (gate blocks G, element-wise
#: flops per unit E, and E split between the op granularity's gates and state ops).
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
ELEMENTWISE_FLOPS = {"rnn": 4, "lstm": 21, "gru": 17}
OP_ELEMENTWISE_SPLIT = {"rnn": (4, 0), "lstm": (16, 5), "gru": (13, 4)}
MODULES = sorted(f"wpsim.cells.{m.name}" for m in pkgutil.iter_modules(wpsim.cells.__path__)) + [
    "wpsim.cells"
]
#: every registered cell with its default options (a new cell file is checked with no edit
#: here), and the other options of the built-ins
ALL_CELLS = [(name, {}) for name in cell_names()] + [
    ("rnn", {"nonlinearity": "relu"}),
    ("lstm", {"proj_size": 3}),
    ("qrnn", {"window": 2}),
    ("indrnn", {"nonlinearity": "tanh"}),
]


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(
        importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0 and result.failed == 0


# ---- equal to today's constants and formulas ------------------------------------------------
@pytest.mark.parametrize("cell", TODAY)
def test_gates_elementwise_flops_and_op_split_equal_todays(cell):
    c = get_cell(cell)
    assert gate_count(c) == GATES[cell]
    for hidden, width, batch in [(1, 1, 1), (7, 3, 2), (512, 256, 16)]:
        assert elementwise_flops_per_unit(c, hidden, width) == ELEMENTWISE_FLOPS[cell]
        groups = group_flops(c, hidden, width, batch)
        split = (groups["gates"] / (hidden * batch), groups["state"] / (hidden * batch))
        assert split == OP_ELEMENTWISE_SPLIT[cell]


WORKLOADS = [
    dict(layers=2, hidden=8, input=5, seq_len=4, batch=3),
    dict(layers=3, hidden=16, input=4, seq_len=3, batch=1, bidirectional=True, dtype="float64"),
    dict(layers=2, hidden=12, input=12, seq_len=3, batch=2, density=0.3),
    dict(
        layers=2,
        hidden=9,
        input=7,
        seq_len=2,
        batch=5,
        density=0.05,
        bidirectional=True,
        dtype="float16",
        phase="training",
    ),
]


def _layer_numbers(w: Workload, layer: int):
    c = get_cell(w.cell)
    width = w.layer_input_size(layer)
    flops = step_flops(c, w.hidden, width, w.batch, w.density)
    blocks = {b.name: b.bytes for b in weight_blocks(c, w.hidden, width, w.dtype_bytes, w.density)}
    return c, width, flops, blocks


@pytest.mark.parametrize("spec", WORKLOADS, ids=range(len(WORKLOADS)))
@pytest.mark.parametrize("cell", TODAY)
def test_cell_tasks_of_the_graph_equal_the_declarations_numbers(cell, spec):
    """Every cell task's flops and weight bytes, and the state hand-off, as wpsim.model.graph builds
    them today, from the declaration."""
    w = Workload(cell=cell, **spec)
    g = wgraph.build(w, granularity="cell", chunk=2)
    for task in wgraph.tasks(g):
        if task.kind not in ("cell", "cell_bwd"):
            continue
        c, width, flops, blocks = _layer_numbers(w, task.layer)
        assert task.flops_in == flops.matmul_batched * task.steps
        assert task.flops_rec == flops.matmul_recurrent * task.steps
        scale = 2.0 if task.kind == "cell_bwd" else 1.0
        assert task.flops_elem == scale * flops.elementwise * task.steps
        assert [size for _, size in task.weights] == [blocks["ih"], blocks["hh"]]
    c = get_cell(cell)
    for layer in range(w.layers):
        width = w.layer_input_size(layer)
        assert state_bytes(c, w.hidden, width, w.batch, w.dtype_bytes) == w.state_bytes()
        ih, hh = weight_blocks(c, w.hidden, width, w.dtype_bytes, w.density)
        half_bias = w.bias_bytes() // 2
        assert ih.bytes == w.weight_ih_bytes(layer) + half_bias
        assert hh.bytes == w.weight_hh_bytes() + half_bias
        assert hh.sparse == (("weight_hh",) if w.sparse else ())
        rec = [p for p in products(c, w.hidden, width, w.density) if p.recurrent]
        assert [p.nonzeros for p in rec] == [w.weight_hh_nonzeros()]


@pytest.mark.parametrize("spec", WORKLOADS[:3], ids=range(3))
@pytest.mark.parametrize("cell", TODAY)
def test_op_tasks_of_the_graph_equal_the_declarations_groups(cell, spec):
    w = Workload(cell=cell, **spec)
    g = wgraph.build(w, granularity="op")
    for task in wgraph.tasks(g):
        if task.kind in ("input_proj", "rec_proj", "gates", "state"):
            groups = group_flops(
                get_cell(cell), w.hidden, w.layer_input_size(task.layer), w.batch, w.density
            )
            assert task.flops == groups[task.kind]


@pytest.mark.parametrize("cell", TODAY)
def test_rolled_graph_by_groups_is_todays_rolled_cell_graph(cell):
    """The declaration's rolled graph, its ops merged by op group, is wpsim.model.graph's."""
    c = get_cell(cell)
    groups = op_groups(c)
    merged = {}
    for u, v, delay in rolled_graph(c).edges(data="delay"):
        a, b = groups[u], groups[v]
        if (a, b) != (a, a) or delay:
            merged[a, b] = min(delay, merged.get((a, b), delay))
    today = wgraph.rolled_cell_graph(Workload(cell=cell, hidden=4, input=4, seq_len=2))
    today.remove_node("input_proj_next_layer")
    assert merged == {(u, v): d for u, v, d in today.edges(data="delay")}
    w = Workload(cell=cell, hidden=4, input=4, seq_len=2)
    hoistable = {
        group
        for group in set(groups.values())
        if all(op_phases(c)[op] != "recurrence" for op, g in groups.items() if g == group)
    }
    assert hoistable == wgraph.hoistable_kinds(w) & set(groups.values())


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell", TODAY)
def test_param_shapes_and_count_equal_todays(cell, bidirectional):
    w = Workload(cell=cell, layers=3, hidden=6, input=4, seq_len=2, bidirectional=bidirectional)
    c = get_cell(cell)
    today = workload_param_shapes(w)
    total = 0
    for layer in range(w.layers):
        for d in range(w.directions):
            suffix = f"_l{layer}" + ("_reverse" if d else "")
            shapes = param_shapes(c, w.hidden, w.layer_input_size(layer))
            assert {name + suffix: shape for name, shape in shapes.items()} == {
                name: shape for name, shape in today.items() if name.endswith(suffix)
            }
            total += parameter_count(c, w.hidden, w.layer_input_size(layer))
    assert total == w.parameter_count()


@pytest.mark.parametrize("cell", TODAY)
def test_hoisted_input_projection_is_as_wide_as_todays(cell):
    """graph.build's input_gemm hands G*H features a step to the cells (hoist_input)."""
    c = get_cell(cell)
    for hidden, width in [(4, 3), (64, 128)]:
        widths = wpsim.cells.value_widths(c, hidden, width)
        assert sum(widths[v] for v in recurrence_inputs(c)) == GATES[cell] * hidden


def test_index_bytes_equal_todays():
    assert CSR_INDEX_BYTES == INDEX_BYTES


# ---- what the analysis finds in the new cells ----------------------------------------------
def test_sru_and_qrnn_do_all_matrix_work_off_the_recurrence():
    for cell in (get_cell("sru"), get_cell("qrnn"), get_cell("qrnn", window=2)):
        assert all(not p.recurrent for p in products(cell, 8, 5))
        assert step_flops(cell, 8, 5).matmul_recurrent == 0.0
        assert all(
            b.name == "ih" or not any("weight_ih" in n for n in b.params)
            for b in weight_blocks(cell, 8, 5, 4)
        )
    # the highway of SRU and the output gate of QRNN run after the recurrence, batched
    assert op_phases(get_cell("sru"))["h_new"] == "after"
    assert op_phases(get_cell("qrnn"))["h_new"] == "after"
    assert param_block(get_cell("sru"))["weight_c"] == "hh"


def test_lstm_projection_is_on_the_recurrence():
    c = get_cell("lstm", proj_size=3)
    rec = [(p.param, p.rows, p.cols) for p in products(c, 8, 5) if p.recurrent]
    assert rec == [("weight_hh", 32, 3), ("weight_hr", 3, 8)]
    assert state_bytes(c, 8, 5, batch=2, dtype_bytes=4) == (3 + 8) * 2 * 4
    blocks = weight_blocks(c, 8, 5, 4, density=0.5)
    assert blocks[1].sparse == ("weight_hh", "weight_hr")


def test_qrnn_window_two_carries_the_previous_input():
    c = get_cell("qrnn", window=2)
    assert state_bytes(c, 8, 5, batch=1, dtype_bytes=4) == (8 + 5) * 4
    assert param_shapes(c, 8, 5)["weight_ih"] == (24, 10)
    delays = {(u, v): d for u, v, d in rolled_graph(c).edges(data="delay")}
    assert delays[("c_new", "fc")] == 1 and ("xx", "gx") in delays


@pytest.mark.parametrize("name,options", ALL_CELLS)
def test_schedule_covers_every_op_once_in_dependency_order(name, options):
    cell = get_cell(name, **options)
    order = [op for stage in schedule(cell) for op in stage.ops]
    assert sorted(order) == sorted(op.name for op in cell.ops)
    position = {op: i for i, op in enumerate(order)}
    stage_of = {op: i for i, stage in enumerate(schedule(cell)) for op in stage.ops}
    for u, v, delay in rolled_graph(cell).edges(data="delay"):
        if delay == 0:
            assert position[u] < position[v]
        elif stage_of[u] != stage_of[v]:  # a value read one step later by another stage
            assert stage_of[u] < stage_of[v]
    for stage in schedule(cell):
        rec = {op for op in stage.ops if op_phases(cell)[op] == "recurrence"}
        assert rec == (set(stage.ops) if stage.recurrent else set())


# ---- the registry ---------------------------------------------------------------------------
def test_registry_lists_the_built_ins():
    assert {"gru", "indrnn", "lstm", "mgu", "qrnn", "rnn", "sru"} <= set(cell_names())
    assert cell_names() == sorted(cell_names())
    for name, options in ALL_CELLS:
        cell = get_cell(name, **options)
        assert cell.name == name and dict(cell.options) == options
        assert resolve_cell({"name": name, **options}) == cell


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda: get_cell("lstmm"), "cell: got 'lstmm', expected one of gru, indrnn, lstm"),
        (
            lambda: get_cell("lstm", proj=3),
            "cell 'lstm': unknown option 'proj'; options: proj_size",
        ),
        (
            lambda: get_cell("lstm", proj_size=-1),
            "cell 'lstm': proj_size: got -1, expected an integer >= 0",
        ),
        (
            lambda: get_cell("rnn", nonlinearity="gelu"),
            "cell 'rnn': nonlinearity: got 'gelu', expected 'tanh' or 'relu'",
        ),
        (lambda: get_cell("qrnn", window=3), "cell 'qrnn': window: got 3, expected 1 or 2"),
        (
            lambda: get_cell("gru", proj_size=2),
            "cell 'gru': unknown option 'proj_size'; options: none",
        ),
        (lambda: resolve_cell({"proj_size": 2}), "cell: a mapping must give the cell's 'name'"),
        (lambda: resolve_cell("missing.yaml"), "missing.yaml: file not found"),
    ],
)
def test_registry_errors_are_one_line(call, message):
    with pytest.raises(ConfigError) as info:
        call()
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_new_cell_is_one_registered_factory():
    from wpsim.cells.registry import REGISTRY, register

    data = cell_to_dict(get_cell("indrnn"))

    @register
    def my_cell(*, scale: int = 1) -> wpsim.cells.Cell:
        return cell_from_dict({**data, "name": "my_cell"})

    try:
        assert "my_cell" in cell_names()
        assert get_cell("my_cell", scale=2).label == "my_cell(scale=2)"
    finally:
        del REGISTRY["my_cell"]
    with pytest.raises(TypeError, match="keyword-only"):
        register(lambda scale: None)


# ---- declarations in YAML -------------------------------------------------------------------
USER_CELL = """\
name: my_gated
reference: "a test cell: one gate between the candidate and the old state"
sizes: {K: 2}
states:
  h: {width: H, next: h_new}
params:
  weight_ih: {shape: [K*H, I], gates: [g, n]}
  weight_hh: {shape: [K*H, H], gates: [g, n]}
  bias: {shape: [K*H], gates: [g, n]}
ops:
  - gx = matmul(weight_ih, x)
  - gx_b = add(gx, bias)
  - gh = matmul(weight_hh, h)
  - a = add(gx_b, gh)
  - g = sigmoid(a.g)
  - n = tanh(a.n)
  - d = sub(n, h)
  - gd = mul(g, d)
  - h_new = add(h, gd)
output: h_new
"""


def test_user_yaml_cell_round_trips(tmp_path):
    path = tmp_path / "my_gated.yaml"
    path.write_text(USER_CELL)
    cell = load_cell(path)
    assert resolve_cell("my_gated.yaml", base=tmp_path) == cell
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(cell_to_dict(cell), sort_keys=False))
    assert load_cell(again) == cell
    written = yaml.safe_load(USER_CELL)  # as written, but sizes in their normal form
    written["params"] = {
        name: {**p, "shape": [d.replace("*", " * ") for d in p["shape"]]}
        for name, p in written["params"].items()
    }
    assert cell_to_dict(cell) == written
    assert param_shapes(cell, 3, 2) == {"weight_ih": (6, 2), "weight_hh": (6, 3), "bias": (6,)}
    assert elementwise_flops_per_unit(cell, 3, 2) == 2 + 2 + 1 + 1 + 1 + 1 + 1  # gx_b, a: 2 units


def _broken(change: dict) -> dict:
    data = yaml.safe_load(USER_CELL)
    data.update(change)
    return data


OPS = yaml.safe_load(USER_CELL)["ops"]
BAD = [
    ({"nme": 1}, "unknown field 'nme' (did you mean 'name'?)"),
    (
        {"ops": OPS[:2] + ["gh = matmul(weight_hh, hh)"] + OPS[3:]},
        "field 'ops[2]' ('gh = matmul(weight_hh, hh)'): operand 'hh' is not defined above",
    ),
    (
        {"ops": ["gx = matmul(weight_ih, x"] + OPS[1:]},
        "field 'ops[0]': got 'gx = matmul(weight_ih, x', expected 'name = op(operand, ...)'",
    ),
    ({"ops": ["gx = matmult(weight_ih, x)"] + OPS[1:]}, "expected an op among matmul, add"),
    ({"ops": OPS[:4] + ["g = sigmoid(a.q)"] + OPS[5:]}, "'a' has gate blocks g, n, not 'q'"),
    (
        {"ops": OPS[:6] + ["d = sub(a, h)"] + OPS[7:]},
        "operands of different widths: 'a' (the width of a), 'h' (H)",
    ),
    (
        {"ops": ["gx = matmul(weight_hh, x)"] + OPS[1:]},
        "'x' has I features, 'weight_hh' has H columns",
    ),
    (
        {"ops": OPS[:1] + ["gx_b = add(bias, weight_ih)"] + OPS[2:]},
        "parameter 'weight_ih' may only be",
    ),
    ({"ops": OPS + ["extra = tanh(h_new)"]}, "'extra' is never used"),
    ({"ops": OPS[:2] + ["gx_b = tanh(gx)"] + OPS[3:]}, "the name 'gx_b' is already used"),
    ({"output": "h"}, "field 'output': got 'h', expected an op's name"),
    (
        {"states": {"h": {"width": "H", "next": "h_new"}, "c": {"width": "H", "next": "h_new"}}},
        "'h_new' is already the next value of state 'h'",
    ),
    ({"states": {"h": {"width": "H", "next": "nope"}}}, "field 'states.h.next': got 'nope'"),
    (
        {"states": {"h": {"width": "H", "next": "gx_b"}}},
        "field 'states.h.next': 'gx_b' is not as wide as the state (H)",
    ),
    (
        {"states": {"h": {"width": "H", "next": "h_new"}, "c": {"width": "H", "next": "gd"}}},
        "'states.c': the state is never read",
    ),
    (
        {"params": {**yaml.safe_load(USER_CELL)["params"], "unused": {"shape": ["H"]}}},
        "'params.unused': the parameter is never used",
    ),
    (
        {"params": {**yaml.safe_load(USER_CELL)["params"], "bias": {"shape": ["K*Q"]}}},
        "field 'params.bias.shape': got 'K*Q', expected an expression of H, I, K (unknown size 'Q')",
    ),
    (
        {"params": {**yaml.safe_load(USER_CELL)["params"], "bias": {"shape": ["H**2"]}}},
        "integers and sizes joined by +, -, * and //",
    ),
    (
        {
            "params": {
                **yaml.safe_load(USER_CELL)["params"],
                "bias": {"shape": ["3*H"], "gates": ["g", "n"]},
            }
        },
        "2 gate blocks do not divide the 3 * H rows",
    ),
    ({"sizes": {"H": 3}}, "field 'sizes.H': expected a name other than H and I"),
    (
        {
            "ops": [
                "gx = matmul(weight_ih, x)",
                "gx_b = add(gx, bias)",
                "gh = matmul(weight_hh, h)",
                "a = add(gx_b, gh)",
                "h_new = identity(a.n)",
                "g = sigmoid(x)",
            ]
        },
        "field 'ops[5]' ('g = sigmoid(x)'): 'g' is never used",
    ),
    ({"output": "xx", "ops": OPS + ["xx = concat(h_new, x)"]}, "the output's width depends on I"),
]


@pytest.mark.parametrize("change,message", BAD, ids=range(len(BAD)))
def test_bad_declarations_get_one_line_errors(tmp_path, change, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_broken(change), sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_cell(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text, text


def test_a_yaml_syntax_error_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: [x\n")
    with pytest.raises(ConfigError, match="malformed YAML at line"):
        load_cell(path)


def test_widths_are_checked_at_the_sizes_of_a_layer():
    with pytest.raises(ConfigError, match=r"cell rnn: value '\w+' has width 0 at H=0, I=3"):
        wpsim.cells.value_widths(get_cell("rnn"), 0, 3)


def test_every_built_in_declaration_round_trips_through_yaml():
    for name, options in ALL_CELLS:
        cell = get_cell(name, **options)
        text = yaml.safe_dump(cell_to_dict(cell), sort_keys=False)
        assert cell_from_dict(yaml.safe_load(text), options=dict(cell.options)) == cell


def test_analysis_is_deterministic_and_graphs_are_dags_within_a_step():
    for (name, options), _ in itertools.product(ALL_CELLS, range(2)):
        cell = get_cell(name, **options)
        g = rolled_graph(cell)
        same_step = g.edge_subgraph([(u, v) for u, v, d in g.edges(data="delay") if d == 0])
        assert nx.is_directed_acyclic_graph(same_step)
        assert schedule(cell) == schedule(get_cell(name, **options))
