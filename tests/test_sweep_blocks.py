"""Analytic sweep points evaluated in blocks give the bytes the point-by-point path gives."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wpsim.sweep.evaluate import Evaluator
from wpsim.sweep.run import execution_groups, execution_order
from wpsim.sweep.spec import Points, load_sweep
from wpsim.sweep.store import format_rows

AXES = {
    "workload.cell": st.lists(
        st.sampled_from(["rnn", "lstm", "gru"]), min_size=1, max_size=2, unique=True
    ),
    "workload.layers": st.lists(st.integers(1, 4), min_size=1, max_size=3, unique=True),
    "workload.hidden": st.lists(
        st.sampled_from([16, 64, 256, 1024]), min_size=1, max_size=3, unique=True
    ),
    "workload.seq_len": st.lists(
        st.sampled_from([1, 2, 3, 7, 50]), min_size=1, max_size=3, unique=True
    ),
    "workload.phase": st.lists(
        st.sampled_from(["inference", "training"]), min_size=1, max_size=2, unique=True
    ),
    "workload.bidirectional": st.lists(st.booleans(), min_size=1, max_size=2, unique=True),
    "workload.batch": st.lists(st.sampled_from([1, 4, 64]), min_size=1, max_size=2, unique=True),
    "policy": st.lists(
        st.sampled_from(
            [
                "sequential",
                "layerwise",
                "wavefront",
                "pipeline",
                "helper",
                "multiprogram",
                "persistent",
                {"name": "wavefront", "helpers": 2},
                {"name": "helper", "helpers": 3},
                {"name": "multiprogram", "instances": 2},
            ]
        ),
        min_size=1,
        max_size=4,
        unique_by=json.dumps,
    ),
    "run.cores": st.lists(
        st.sampled_from([1, 2, 3, 6, 24, 30, 48]), min_size=1, max_size=4, unique=True
    ),
    "run.chunk": st.lists(st.integers(1, 8), min_size=1, max_size=3, unique=True),
    "hardware.memory.bandwidth_Bps": st.lists(
        st.sampled_from([20e9, 1.28e11]), min_size=1, max_size=2, unique=True
    ),
}


@st.composite
def specs(draw) -> dict:
    names = draw(st.lists(st.sampled_from(sorted(AXES)), min_size=2, max_size=6, unique=True))
    vary = {name: draw(AXES[name]) for name in names}
    hardware = draw(st.sampled_from(["xeon8160_2s", "desktop8", "lstm_accel_2core"]))
    cost = draw(st.sampled_from(["model", "model", "ideal"]))
    mode = draw(st.sampled_from(["grid", "grid", "zip", "random"]))
    spec = {
        "workload": "demo",
        "hardware": hardware,
        "engine": "analytic",
        "run": {"cost": cost},
        "mode": mode,
        "vary": vary,
    }
    if mode == "zip":  # lists of one length
        length = min(map(len, vary.values()))
        spec["vary"] = {name: values[:length] for name, values in vary.items()}
    if mode == "random":  # values drawn from the lists (repeated: points share settings)
        spec.update(samples=draw(st.integers(1, 60)), seed=draw(st.integers(0, 2**16)))
    return spec


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spec=specs())
def test_block_rows_are_the_point_by_point_rows(spec, tmp_path):
    """Grid, zip and random sweeps (points found from their numbers, or carrying their drawn
    values), every kind of failure a point can have."""
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec))  # JSON is YAML
    loaded = load_sweep(path)
    points = list(execution_order(loaded))
    by_block = Evaluator(loaded.context()).predict_rows(Points.join(list(execution_groups(loaded))))
    one_by_one = Evaluator(loaded.context())
    expected = format_rows([one_by_one.row(i, p) for i, p in points], one_by_one.columns)
    assert by_block.data.decode().splitlines() == expected.data.decode().splitlines()
    assert (by_block.n, by_block.failed) == (expected.n, expected.failed)


def test_parquet_is_typed_as_values_are_read_back(tmp_path):
    """results.parquet, built from the CSV by pyarrow, equals the table typed value by value
    (metrics by column, parameters as :func:`~wpsim.sweep.store.decode_value` reads them, text
    where they mix types, nulls for a column without values)."""
    pa = __import__("pytest").importorskip("pyarrow")
    import pyarrow.parquet as pq

    from wpsim.sweep import run_sweep, store

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        json.dumps(
            {
                "workload": "demo",
                "hardware": "xeon8160_2s",
                "engine": "analytic",
                "vary": {
                    "workload.bidirectional": [True, False],
                    "workload.hidden": [64, 96],
                    "policy": ["wavefront", {"name": "wavefront", "helpers": 2}],
                    "run.cores": [1, 4, 30],
                },
            }
        )
    )
    run_sweep(spec, tmp_path / "out", workers=1, progress=False)
    results = tmp_path / "out" / store.RESULTS
    header = results.read_text().split("\n", 1)[0].split(",")
    rows = store.read_raw(results, header)
    expected = {}
    for i, name in enumerate(header):
        values = [store._typed(name, r[i]) for r in rows]
        try:
            expected[name] = pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            expected[name] = pa.array([store.encode_value(v) for v in values], type=pa.string())
    assert pq.read_table(tmp_path / "out" / store.PARQUET).equals(pa.table(expected))
