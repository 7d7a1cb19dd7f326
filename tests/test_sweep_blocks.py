"""Analytic sweep points evaluated in blocks give the bytes the point-by-point path gives."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wpsim.sweep.evaluate import Evaluator
from wpsim.sweep.run import execution_order
from wpsim.sweep.spec import load_sweep
from wpsim.sweep.store import format_rows

AXES = {
    "workload.cell": st.lists(st.sampled_from(["rnn", "lstm", "gru"]), min_size=1, max_size=2,
                              unique=True),
    "workload.layers": st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True),
    "workload.hidden": st.lists(st.sampled_from([16, 64, 256, 1024]), min_size=1, max_size=3,
                                unique=True),
    "workload.seq_len": st.lists(st.sampled_from([1, 2, 3, 7, 50]), min_size=1, max_size=3,
                                 unique=True),
    "workload.phase": st.lists(st.sampled_from(["inference", "training"]), min_size=1,
                               max_size=2, unique=True),
    "workload.bidirectional": st.lists(st.booleans(), min_size=1, max_size=2, unique=True),
    "workload.batch": st.lists(st.sampled_from([1, 4, 64]), min_size=1, max_size=2, unique=True),
    "policy": st.lists(st.sampled_from(["sequential", "layerwise", "wavefront", "pipeline",
                                        "helper", "multiprogram", "persistent",
                                        {"name": "wavefront", "helpers": 2},
                                        {"name": "helper", "helpers": 3},
                                        {"name": "multiprogram", "instances": 2}]),
                       min_size=1, max_size=4, unique_by=json.dumps),
    "run.cores": st.lists(st.sampled_from([1, 2, 3, 6, 24, 30, 48]), min_size=1, max_size=4,
                          unique=True),
    "run.chunk": st.lists(st.integers(1, 8), min_size=1, max_size=3, unique=True),
    "hardware.memory.bandwidth_Bps": st.lists(st.sampled_from([20e9, 1.28e11]), min_size=1,
                                              max_size=2, unique=True),
}  # fmt: skip


@st.composite
def specs(draw) -> dict:
    names = draw(st.lists(st.sampled_from(sorted(AXES)), min_size=2, max_size=6, unique=True))
    vary = {name: draw(AXES[name]) for name in names}
    hardware = draw(st.sampled_from(["xeon8160_2s", "desktop8", "lstm_accel_2core"]))
    cost = draw(st.sampled_from(["model", "model", "ideal"]))
    return {"workload": "demo", "hardware": hardware, "engine": "analytic",
            "run": {"cost": cost}, "vary": vary}  # fmt: skip


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=specs())
def test_block_rows_are_the_point_by_point_rows(spec, tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    loaded = load_sweep(path)
    points = list(execution_order(loaded))
    by_block = Evaluator(loaded.context()).predict_rows(points)
    one_by_one = Evaluator(loaded.context())
    expected = format_rows([one_by_one.row(i, p) for i, p in points], one_by_one.columns)
    assert by_block.data.decode().splitlines() == expected.data.decode().splitlines()
    assert (by_block.n, by_block.failed) == (expected.n, expected.failed)
