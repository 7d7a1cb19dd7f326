"""Every built-in cell through the five commands a user runs: ``graph``, ``simulate``,
``predict``, ``run`` and ``validate``, dense and sparse (where a cell has a recurrent weight
matrix to prune), inference and training, one and two directions.

Four combinations per cell cover every pair of those three choices (a pairwise cover: each
sparsity meets each phase and each direction count, and each phase each direction count).
``validate`` must find the executor's tasks and the simulator's the same, kind by kind and
layer by layer.
"""

from __future__ import annotations

import json

import pytest
import yaml

from wpsim.cells import cell_names
from wpsim.cli import main
from wpsim.model.workload import Workload

CELLS = [*cell_names(), "rnn(nonlinearity='relu')", "lstm(proj_size=5)", "qrnn(window=2)"]
#: (density, phase, bidirectional): every pair of values appears in some row
COMBINATIONS = [
    (1.0, "inference", False),
    (0.5, "training", False),
    (1.0, "training", True),
    (0.5, "inference", True),
]


def _has_recurrent_matrix(cell: str) -> bool:
    return Workload(cell=cell, hidden=8, input=4, seq_len=2).weight_hh_bytes() > 0


CASES = [
    pytest.param(cell, density, phase, bidirectional, id=f"{cell}-{density}-{phase}-{bi}")
    for cell in CELLS
    for density, phase, bidirectional in COMBINATIONS
    for bi in ["bi" if bidirectional else "uni"]
    if density == 1.0 or _has_recurrent_matrix(cell)
]


@pytest.mark.parametrize(("cell", "density", "phase", "bidirectional"), CASES)
def test_every_command_for_every_cell(cell, density, phase, bidirectional, tmp_path, capsys):
    spec = dict(
        cell=cell,
        layers=2,
        hidden=12,
        input=6,
        seq_len=6,
        batch=2,
        density=density,
        phase=phase,
        bidirectional=bidirectional,
    )
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(spec))
    machine = ["-m", "xeon_kvm_2core"]  # (a named machine: no calibration of this computer)
    assert main(["graph", "-w", str(path), "--granularity", "op", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_tasks"] > 0
    for command in ("simulate", "predict"):
        assert main([command, "-w", str(path), *machine, "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["makespan_s"] > 0
    # the real executor: `run` once per cell, `validate` (the sequential baseline and one
    # policy on 2 workers) for every combination
    args = ["-w", str(path), *machine, "--chunk", "2", "--repeats", "1", "--json"]
    if (density, phase, bidirectional) == COMBINATIONS[0]:
        assert main(["run", *args, "--workers", "2"]) == 0
        assert json.loads(capsys.readouterr().out)["makespan_s"] > 0
    policy = "layerwise" if phase == "inference" else "wavefront"
    assert main(["validate", *args, "--workers", "2", "--policies", policy]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {(r["policy"], r["workers"]) for r in report["rows"]} == {
        ("sequential", 1),
        (policy, 2),
    }
    assert all(r["measured_makespan_s"] > 0 for r in report["rows"])
    # the executor ran the simulator's tasks: every kind and layer has both sides
    mismatched = [
        k for k in report["per_kind"] if not (k["measured_mean_s"] and k["simulated_mean_s"])
    ]
    assert not mismatched, mismatched
