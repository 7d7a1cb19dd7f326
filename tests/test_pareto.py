"""The Pareto view of sweep results (``wpsim plot --pareto X,Y``)."""

from __future__ import annotations

import csv
import json

from hypothesis import given
from hypothesis import strategies as st

from wpsim.cli import main
from wpsim.sweep.plot import pareto_front


def _dominates(a, b, minimise) -> bool:
    better = [(x <= y) if low else (x >= y) for x, y, low in zip(a, b, minimise, strict=True)]
    strictly = [(x < y) if low else (x > y) for x, y, low in zip(a, b, minimise, strict=True)]
    return all(better) and any(strictly)


@given(
    points=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=30),
    minimise=st.tuples(st.booleans(), st.booleans()),
)
def test_the_front_is_exactly_the_points_nothing_dominates(points, minimise):
    front = set(pareto_front(points, minimise))
    for i, p in enumerate(points):
        dominated = any(_dominates(q, p, minimise) for q in points)
        assert (i in front) == (not dominated), (i, p, points)


def test_plot_pareto_draws_and_lists_the_non_dominated_points(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        json.dumps(
            {
                "workload": "tiny",
                "hardware": "xeon8160_2s",
                "engine": "analytic",
                "vary": {
                    "workload.hidden": [64, 128],
                    "policy": ["layerwise", "wavefront"],
                    "run.cores": [1, 2, 4, 8],
                },
            }
        )
    )
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "-j", "1", "-q"]) == 0
    assert main(["plot", str(tmp_path / "out"), "--pareto", "cores,speedup"]) == 0
    out = capsys.readouterr().out
    assert "pareto_cores_speedup.png" in out and "pareto_cores_speedup.csv" in out
    rows = list(csv.DictReader(open(tmp_path / "out" / "plots" / "pareto_cores_speedup.csv")))
    # one front per hidden size (what is run); within one, more cores must buy more speed-up
    for hidden in ("64", "128"):
        front = [r for r in rows if r["workload.hidden"] == hidden]
        cores = [float(r["cores"]) for r in front]
        speedups = [float(r["speedup"]) for r in front]
        assert cores == sorted(cores) and speedups == sorted(speedups) and front
    assert main(["plot", str(tmp_path / "out"), "--pareto", "core_s,makespan_s"]) == 0


def test_pareto_errors_are_one_line(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        json.dumps({"workload": "tiny", "hardware": "xeon8160_2s", "vary": {"run.cores": [1, 2]}})
    )
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "-j", "1", "-q"]) == 0
    for bad in ("cores", "cores,nope", "cores,speedup:up"):
        assert main(["plot", str(tmp_path / "out"), "--pareto", bad]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "nope" in err and "NAME:max" in err
