"""wpsim.trace: one record per task, as columns; the same schema simulated and measured."""

from __future__ import annotations

import csv
import json

import pytest

from wpsim.trace import Trace


def two_tasks(dispatch: bool = True) -> Trace:
    """Task 0 on core 0 from 0 to 2 us (64 bytes from DRAM, a miss); task 1 on cores 0 and 1
    from 2 to 3 us (32 bytes from L2 and 16 handed off, a hit)."""
    tr = Trace(["L2", "DRAM", "handoff"])
    tr.extend(
        [0, 1],
        [(0,), (0, 1)],
        [0.0, 2e-6],
        [2e-6, 3e-6],
        [{"DRAM": 64.0}, {"L2": 32.0}],
        [False, True],
        [0, 16],
        [1e-7, 2e-7] if dispatch else None,
    )
    return tr


def test_columns_and_derived_values() -> None:
    tr = two_tasks()
    assert len(tr) == 2 and tr.makespan_s == pytest.approx(3e-6)
    assert tr.level_bytes == {"L2": [0.0, 32.0], "DRAM": [64.0, 0.0], "handoff": [0.0, 16.0]}
    assert tr.total_bytes("DRAM") == 64.0 and tr.total_bytes("handoff") == 16.0
    assert tr.busy_s_per_core(3) == pytest.approx([3e-6, 1e-6, 0.0])
    assert tr.utilization(2) == pytest.approx([1.0, 1 / 3])
    assert tr.by_task() == {0: 0, 1: 1}
    assert tr.dispatch_s == [1e-7, 2e-7]


def test_records_name_every_level() -> None:
    first, second = two_tasks().records()
    assert first == {
        "task": 0,
        "cores": [0],
        "start_s": 0.0,
        "end_s": 2e-6,
        "hit": False,
        "L2_bytes": 0.0,
        "DRAM_bytes": 64.0,
        "handoff_bytes": 0.0,
        "dispatch_s": 1e-7,
    }
    assert second["hit"] is True and second["cores"] == [0, 1]


def test_dispatch_is_given_for_every_record_or_none() -> None:
    tr = two_tasks(dispatch=False)
    assert tr.dispatch_s == [] and "dispatch_s" not in next(tr.records())
    with pytest.raises(ValueError, match="every record of a trace or for none"):
        tr.append(2, (0,), 3e-6, 4e-6, {}, None, dispatch_s=1e-7)


def test_an_unobserved_hit_is_empty_in_every_export(tmp_path) -> None:
    tr = Trace([])
    tr.append(0, (0,), 0.0, 1e-6, {}, None)  # a measured record: the caches are not observed
    assert next(tr.records())["hit"] is None
    tr.to_csv(tmp_path / "t.csv")
    with open(tmp_path / "t.csv", newline="") as handle:
        assert next(csv.DictReader(handle))["hit"] == ""
    tr.to_chrome(tmp_path / "t.json")
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    assert [e["args"]["hit"] for e in events if e["ph"] == "X"] == [None]


def test_chrome_trace_is_one_event_per_task_per_core_in_microseconds(tmp_path) -> None:
    two_tasks().to_chrome(tmp_path / "t.json", labels=["a", "b"], layers=[0, 1])
    events = json.loads((tmp_path / "t.json").read_text())["traceEvents"]
    tasks = [e for e in events if e["ph"] == "X"]
    assert [(e["name"], e["tid"]) for e in tasks] == [("a", 0), ("b", 0), ("b", 1)]
    assert tasks[1]["ts"] == pytest.approx(2.0) and tasks[1]["dur"] == pytest.approx(1.0)
    assert tasks[1]["cat"] == "layer 1"
    assert tasks[0]["args"] == {"task": 0, "hit": False, "DRAM_bytes": 64.0, "dispatch_s": 1e-7}
    names = {e["args"]["name"] for e in events if e["ph"] == "M"}
    assert names == {"wpsim", "core 0", "core 1"}


def test_csv_has_a_row_per_record(tmp_path) -> None:
    two_tasks().to_csv(tmp_path / "t.csv", labels=["a", "b"])
    with open(tmp_path / "t.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["label"] for r in rows] == ["a", "b"]
    assert rows[1]["cores"] == "0 1" and rows[1]["handoff_bytes"] == "16.0"
    assert rows[0]["dispatch_s"] == "1e-07"
