"""Hostile and careless input files: every one a one-line ConfigError, in bounded time and memory.

Workload, machine and sweep files go through one reader (:func:`wpsim.config.read_yaml`), so each
class of bad file is tried on all three; numbers are checked in every float field of the shipped
cpu, accelerator and gpu machines.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from wpsim.config import MAX_INPUT_BYTES, MAX_NESTING, read_yaml
from wpsim.errors import ConfigError
from wpsim.hardware import load_machine, machine_from_dict
from wpsim.sweep import load_sweep
from wpsim.workload import load_workload, workload_from_dict

ROOT = Path(__file__).resolve().parent.parent
MACHINES = ["xeon8160_2s", "xeon_kvm_2core", "lstm_accel_2core", "v100", "titanx_maxwell"]
GOOD_WORKLOAD = "cell: lstm\nlayers: 2\nhidden: 16\ninput: 8\nseq_len: 4\n"
LOADERS = {"workload": load_workload, "machine": load_machine, "sweep": load_sweep}


def one_line(error: pytest.ExceptionInfo, path: Path | str) -> str:
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    return message


def write(tmp_path: Path, data: str | bytes, name: str = "in.yaml") -> Path:
    path = tmp_path / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return path


# ---- reading ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", list(LOADERS))
@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ("name: caf\xe9\n".encode("latin-1"), "not UTF-8 text (byte 0xe9 at offset 9)"),
        (bytes(range(256)), "not UTF-8 text"),
        ("[" * 50_000, f"nested deeper than {MAX_NESTING} levels"),
        ("{a: " * 50_000, f"nested deeper than {MAX_NESTING} levels"),
        ("a:\n" + "".join("  " * (i + 1) + "- \n" for i in range(200)), "nested deeper"),
        ("layers: " + "9" * 100_000 + "\n", "expected at most 64 bits"),
        ("layers: 0x" + "f" * 17 + "\n", "integer out of range"),
        ("layers: 2\nhidden: 4\nlayers: 3\n", "duplicate key 'layers' (first given at line 1)"),
        ("created: 2024-13-45\n", "month must be in 1..12"),
        ("a: \x00\n", "unacceptable character"),
        ("a: [1, 2\n", "malformed YAML"),
        ("a: !!python/object:os.system {}\n", "malformed YAML"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path, kind, data, fragment):
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as error:
        LOADERS[kind](path)
    assert fragment in one_line(error, path)


@pytest.mark.parametrize("kind", list(LOADERS))
def test_only_regular_files_are_read(tmp_path, kind):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    for path, fragment in [
        (fifo, "not a regular file"),
        (Path("/dev/zero"), "not a regular file"),
        (tmp_path, "is a folder"),
        (tmp_path / "missing.yaml", "file not found"),
    ]:
        if not path.exists() and path.name != "missing.yaml":
            continue
        with pytest.raises(ConfigError) as error:
            LOADERS[kind](path)
        assert fragment in one_line(error, path)


def test_files_over_the_size_limit_are_refused_unread(tmp_path):
    path = write(tmp_path, "# padding\n" * (MAX_INPUT_BYTES // 10 + 1))
    with pytest.raises(ConfigError) as error:
        read_yaml(path)
    assert "the limit for input files" in one_line(error, path)


def test_merge_keys_may_override_what_they_merge(tmp_path):
    path = write(tmp_path, "base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  x: 3\n")
    assert read_yaml(path) == {"base": {"x": 1, "y": 2}, "other": {"x": 3, "y": 2}}


def test_duplicate_keys_in_a_sweep_spec_and_a_nested_mapping(tmp_path):
    path = write(
        tmp_path, "workload: tiny\nhardware: xeon8160_2s\nvary:\n  cores: [1]\n  cores: [2]\n"
    )
    with pytest.raises(ConfigError) as error:
        load_sweep(path)
    assert "duplicate key 'cores' (first given at line 4)" in one_line(error, path)


# ---- numbers ----------------------------------------------------------------------------------
def float_leaves(node: Any, path: tuple = ()) -> list[tuple]:
    """Paths of every float in a parsed machine file (skipping the free-form calibration)."""
    if isinstance(node, dict):
        return [
            p for k, v in node.items() if k != "calibration" for p in float_leaves(v, (*path, k))
        ]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in float_leaves(v, (*path, i))]
    return [path] if isinstance(node, float) else []


def replaced(data: Any, path: tuple, value: Any) -> Any:
    data = copy.deepcopy(data)
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize("name", MACHINES)
def test_every_float_field_of_every_machine_kind_must_be_finite(name):
    data = yaml.safe_load((ROOT / "hw_configs" / f"{name}.yaml").read_text())
    leaves = float_leaves(data)
    assert len(leaves) >= 10, "the shipped machine has too few numbers to be a real check"
    for path in leaves:
        for bad in (math.inf, -math.inf, math.nan):
            with pytest.raises(ConfigError) as error:
                machine_from_dict(replaced(data, path, bad), "m.yaml")
            message = one_line(error, "m.yaml")
            dotted = ".".join(str(p) for p in path[: 1 if path[0] != "efficiency" else 2])
            assert dotted in message, (path, message)


def test_inf_in_a_machine_file_is_refused_with_the_field_named(tmp_path):
    text = (ROOT / "hw_configs" / "xeon8160_2s.yaml").read_text()
    path = write(tmp_path, text.replace("clock_hz: ", "clock_hz: .inf  #", 1))
    with pytest.raises(ConfigError) as error:
        load_machine(path)
    assert "field 'clock_hz': got inf, expected a finite number" in one_line(error, path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("layers", True),
        ("hidden", False),
        ("seq_len", True),
        ("batch", True),
        ("density", True),
        ("bidirectional", 1),
        ("density", math.inf),
        ("density", math.nan),
    ],
)
def test_workload_numbers_are_strict(field, value):
    data = {"cell": "lstm", "layers": 2, "hidden": 16, "input": 8, "seq_len": 4, field: value}
    with pytest.raises(ConfigError) as error:
        workload_from_dict(data, "w.yaml")
    assert f"field '{field}'" in one_line(error, "w.yaml")


def test_layers_true_in_a_workload_file_fails(tmp_path):
    path = write(tmp_path, GOOD_WORKLOAD.replace("layers: 2", "layers: true"))
    with pytest.raises(ConfigError) as error:
        load_workload(path)
    assert "field 'layers': got True, expected a number, not a boolean" in one_line(error, path)


@pytest.mark.parametrize(
    ("vary", "fragment"),
    [
        ("{min: 1, max: .inf}", "finite"),
        ("{min: -1.0e308, max: 1.0e308}", "a range narrower than"),
        ("{min: true, max: 4}", "not a boolean"),
        ("{min: 1, max: 4, log: 1}", "valid boolean"),
    ],
)
def test_random_ranges_must_be_finite_and_typed(tmp_path, vary, fragment):
    spec = (
        "workload: tiny\nhardware: xeon8160_2s\nmode: random\nsamples: 3\n"
        f"vary:\n  workload.hidden: {vary}\n"
    )
    path = write(tmp_path, spec)
    with pytest.raises(ConfigError) as error:
        load_sweep(path)
    assert fragment in one_line(error, path)


def test_an_integer_range_up_to_the_int64_limit_samples(tmp_path):
    from wpsim.sweep import expand

    spec = (
        "workload: tiny\nhardware: xeon8160_2s\nmode: random\nsamples: 3\nseed: 1\n"
        f"vary:\n  workload.seq_len: {{min: 1, max: {2**63 - 1}}}\n"
    )
    points = expand(load_sweep(write(tmp_path, spec)))
    assert all(1 <= p["workload.seq_len"] <= 2**63 - 1 for _, p in points)


# ---- unknown fields (issue 16, item 5) ---------------------------------------------------------
def test_a_misspelt_workload_field_names_the_closest_one(tmp_path):
    path = write(tmp_path, GOOD_WORKLOAD.replace("hidden:", "hiden:"))
    with pytest.raises(ConfigError) as error:
        load_workload(path)
    assert one_line(error, path) == f"{path}: unknown field 'hiden' (did you mean 'hidden'?)"


def test_a_misspelt_machine_field_names_the_closest_one(tmp_path):
    text = (ROOT / "hw_configs" / "xeon8160_2s.yaml").read_text()
    path = write(tmp_path, text.replace("clock_hz:", "clock_hx:", 1))
    with pytest.raises(ConfigError) as error:
        load_machine(path)
    assert "unknown field 'clock_hx' (did you mean 'clock_hz'?)" in one_line(error, path)


def test_a_misspelt_gpu_field_names_the_closest_one(tmp_path):
    text = (ROOT / "hw_configs" / "v100.yaml").read_text()
    path = write(tmp_path, text.replace("sms:", "smss:", 1))
    with pytest.raises(ConfigError) as error:
        load_machine(path)
    assert "unknown field 'smss' (did you mean 'sms'?)" in one_line(error, path)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (
            "workload: tiny\nhardware: xeon8160_2s\nvray:\n  cores: [1]\n",
            "unknown field 'vray' (did you mean 'vary'?)",
        ),
        (
            "workload: tiny\nhardware: xeon8160_2s\nvary:\n  workload.hiden: [8]\n",
            "unknown workload field 'hiden' (did you mean 'hidden'?)",
        ),
        (
            "workload: tiny\nhardware: xeon8160_2s\nvary:\n  hardware.clock_hx: [1.0e9]\n",
            "unknown machine field 'clock_hx' (did you mean 'clock_hz'?)",
        ),
        (
            "workload: tiny\nhardware: xeon8160_2s\nrun: {chunck: 2}\n",
            "unknown field 'run.chunck' (did you mean 'chunk'?)",
        ),
    ],
)
def test_a_misspelt_sweep_field_names_the_closest_one(tmp_path, spec, fragment):
    path = write(tmp_path, spec)
    with pytest.raises(ConfigError) as error:
        load_sweep(path)
    assert fragment in one_line(error, path)
