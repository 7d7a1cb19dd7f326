"""Workload validation: the field contract, one-line errors, property tests."""

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from wpsim.cells import cell_names, cell_to_dict, get_cell
from wpsim.errors import ConfigError
from wpsim.model.workload import Workload, load_workload, workload_from_dict

WORKLOADS = sorted((Path(__file__).parent.parent / "workloads").glob("*.yaml"))
BASE = dict(cell="lstm", layers=2, hidden=8, input=4, seq_len=5)


@pytest.mark.parametrize("path", WORKLOADS, ids=lambda p: p.stem)
def test_shipped_workloads_load(path):
    assert isinstance(load_workload(path), Workload)


def test_shipped_set_covers_the_named_cases():
    names = {p.stem for p in WORKLOADS}
    assert {"demo", "deep_lstm", "bigru", "train_lstm", "course_rnn"} <= names


def test_sizes_follow_pytorch_layout():
    w = Workload(cell="gru", layers=2, hidden=10, input=3, seq_len=4, bidirectional=True)
    assert w.layer_input_size(0) == 3 and w.layer_input_size(1) == 20
    assert w.weight_ih_bytes(1) == 3 * 10 * 20 * 4
    assert w.weight_hh_bytes() == 3 * 10 * 10 * 4
    # torch.nn.GRU(3, 10, 2, bidirectional=True) has 2*(3*10*(3+10+2)) + 2*(3*10*(20+10+2)) params
    assert w.parameter_count() == 2 * 30 * 15 + 2 * 30 * 32


def test_sparse_weights_are_csr_sized():
    w = Workload(cell="lstm", hidden=10, input=3, seq_len=4, density=0.25)
    assert w.weight_hh_nonzeros() == 100
    assert w.weight_hh_bytes() == 100 * (4 + 4) + 41 * 4


@pytest.mark.parametrize(
    "field,value,fragment",
    [
        ("layers", 0, "field 'layers': got 0, expected greater than or equal to 1"),
        ("hidden", -5, "field 'hidden': got -5"),
        (
            "cell",
            "transformer",
            "field 'cell': got 'transformer', expected a registered cell (gru, ",
        ),
        ("phase", "train", "field 'phase'"),
        ("dtype", "int8", "field 'dtype'"),
        ("density", 0.0, "field 'density'"),
        ("density", 1.5, "field 'density'"),
        ("bidirectional", "maybe", "field 'bidirectional'"),
        ("colour", "red", "unknown field 'colour'; expected one of name, cell, layers"),
        ("hiden", 256, "unknown field 'hiden' (did you mean 'hidden'?)"),
    ],
)
def test_bad_field_gives_one_line_naming_file_and_field(field, value, fragment):
    with pytest.raises(ConfigError) as info:
        workload_from_dict({**BASE, field: value}, "w.yaml")
    message = str(info.value)
    assert message.startswith("w.yaml: ")
    assert fragment in message
    assert "\n" not in message


def test_output_layer_needs_a_size():
    with pytest.raises(ConfigError, match="field 'output_size': got 0, expected an integer >= 1"):
        workload_from_dict({**BASE, "output": "softmax"}, "w.yaml")
    with pytest.raises(ConfigError, match="field 'output_size'"):
        workload_from_dict({**BASE, "output_size": 3}, "w.yaml")


def test_missing_required_field():
    with pytest.raises(ConfigError, match="field 'hidden': missing"):
        workload_from_dict({"cell": "rnn", "input": 3, "seq_len": 2}, "w.yaml")


def test_malformed_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cell: lstm\nlayers: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: malformed YAML at line \d+"):
        load_workload(bad)
    with pytest.raises(ConfigError, match="file not found"):
        load_workload(tmp_path / "absent.yaml")
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("42\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_workload(scalar)


@given(
    field=st.sampled_from(["layers", "hidden", "input", "seq_len", "batch"]),
    value=st.integers(max_value=0),
)
def test_non_positive_sizes_are_rejected(field, value):
    if field == "input" and value == 0:
        return  # input 0 is the skip-input mode (next test)
    with pytest.raises(ConfigError) as info:
        workload_from_dict({**BASE, field: value}, "w.yaml")
    assert f"field '{field}'" in str(info.value)


def test_input_zero_is_the_skip_input_mode():
    w = workload_from_dict({**BASE, "input": 0}, "w.yaml")
    assert w.skip_input and w.layer_input_size(0) == 0 and w.layer_input_size(1) == w.hidden
    assert w.weight_ih_bytes(0) == 0
    full = workload_from_dict(BASE, "w.yaml")
    assert w.parameter_count() < full.parameter_count()


def test_bfloat16_is_two_bytes():
    assert workload_from_dict({**BASE, "dtype": "bfloat16"}, "w.yaml").dtype_bytes == 2


@given(
    cell=st.sampled_from(["rnn", "lstm", "gru"]),
    layers=st.integers(1, 64),
    hidden=st.integers(1, 4096),
    density=st.floats(0.001, 1.0),
    bidirectional=st.booleans(),
)
def test_valid_workloads_accepted(cell, layers, hidden, density, bidirectional):
    w = workload_from_dict(
        dict(
            cell=cell,
            layers=layers,
            hidden=hidden,
            input=7,
            seq_len=3,
            density=density,
            bidirectional=bidirectional,
        ),
        "w.yaml",
    )
    assert w.weight_hh_bytes() > 0 and w.layer_weight_bytes(layers - 1) > 0


@given(key=st.text(min_size=1, max_size=12).filter(lambda k: k not in Workload.model_fields))
def test_unknown_fields_are_errors(key):
    with pytest.raises(ConfigError, match="unknown field"):
        workload_from_dict({**BASE, key: 1}, "w.yaml")


# ---- any declared cell ------------------------------------------------------------------------
@pytest.mark.parametrize("cell", cell_names())
def test_every_registered_cell_is_a_workload_cell(cell):
    w = Workload(cell=cell, layers=2, hidden=8, input=5, seq_len=3)
    assert w.cell == cell and w.cell_name == cell
    assert w.cell_declaration == get_cell(cell)
    assert w.state_bytes(0) > 0 and w.layer_weight_bytes(1) > 0
    assert w.step_flops(0).total > 0


def test_cell_options_by_label_or_mapping():
    by_map = Workload(cell={"name": "lstm", "proj_size": 3}, hidden=8, input=5, seq_len=2)
    by_label = Workload(cell="lstm(proj_size=3)", hidden=8, input=5, seq_len=2)
    assert by_map == by_label and by_map.cell == "lstm(proj_size=3)"
    assert by_map.cell_name == "lstm" and by_map.output_width == 3
    # W_hh is 4H x P, W_hr is P x H: the recurrent matrices of a projected LSTM
    assert by_map.weight_hh_bytes() == (4 * 8 * 3 + 3 * 8) * 4
    assert Workload(cell="rnn(nonlinearity='relu')", hidden=4, input=4, seq_len=2).gates == 1
    # one spelling a cell: options at their defaults are the plain name
    assert Workload(cell="lstm(proj_size=0)", hidden=4, input=4, seq_len=2).cell == "lstm"


@pytest.mark.parametrize(
    "cell, fragment",
    [
        (
            "transformer",
            "expected a registered cell (gru, indrnn, lstm, mgu, minimalrnn, qrnn, rnn",
        ),
        ("lstm(proj=2)", "unknown option 'proj'; options: proj_size (registered cells: gru"),
        ({"name": "qrnn", "window": 3}, "window: got 3, expected 1 or 2"),
        ("missing_cell.yaml", "missing_cell.yaml"),
    ],
)
def test_unknown_cell_is_one_line_listing_the_registered_cells(cell, fragment):
    with pytest.raises(ConfigError) as info:
        workload_from_dict({**BASE, "cell": cell}, "w.yaml")
    message = str(info.value)
    assert message.startswith("w.yaml: field 'cell': ") and "\n" not in message
    assert fragment in message


def test_a_cell_yaml_beside_the_workload_file(tmp_path):
    """A user's cell YAML is named by a path relative to the workload file; no code edit."""
    cell = cell_to_dict(get_cell("mgu"))
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "mine.yaml").write_text(yaml.safe_dump({**cell, "name": "mine"}))
    (tmp_path / "w.yaml").write_text("cell: cells/mine.yaml\nhidden: 8\ninput: 4\nseq_len: 3\n")
    w = load_workload(tmp_path / "w.yaml")
    assert w.cell_name == "mine" and w.calibration_key is None
    assert w.step_flops(0) == Workload(cell="mgu", hidden=8, input=4, seq_len=3).step_flops(0)


def test_the_calibration_key_is_the_registered_name_of_a_registered_cell(tmp_path):
    """Per-cell calibrations are keyed by the registered name, which serves every option of
    the cell; a cell declared in YAML is not the registry's, even under a registered name."""
    shape = dict(hidden=8, input=4, seq_len=3)
    assert Workload(cell="lstm(proj_size=4)", **shape).calibration_key == "lstm"
    assert Workload(cell="rnn(nonlinearity='relu')", **shape).calibration_key == "rnn"
    assert [Workload(cell=name, **shape).calibration_key for name in cell_names()] == cell_names()
    relu = cell_to_dict(get_cell("rnn", nonlinearity="relu"))  # named "rnn", no options
    (tmp_path / "relu.yaml").write_text(yaml.safe_dump(relu))
    assert Workload(cell=str(tmp_path / "relu.yaml"), **shape).calibration_key is None
