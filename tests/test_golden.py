"""The golden set: makespans and per-task schedules of 257 configurations must not move.

See ``tests/golden/configs.py``. A change meant to move them regenerates the file
(``python tests/golden/generate.py``) and says why in its commit message.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN_DIR))

from configs import configs  # noqa: E402
from generate import GOLDEN_FILE, run_config  # noqa: E402

with gzip.open(GOLDEN_FILE, "rt") as _f:
    EXPECTED = json.load(_f)

CONFIGS = configs()


def test_the_set_is_the_stored_one():
    assert [c["id"] for c in CONFIGS] == sorted(EXPECTED)
    assert len(CONFIGS) >= 200


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c["id"] for c in CONFIGS])
def test_golden(cfg):
    got = run_config(cfg)
    want = EXPECTED[cfg["id"]]
    assert got["makespan_s"] == want["makespan_s"]
    assert got["sequential_s"] == want["sequential_s"]
    assert got["n_tasks"] == want["n_tasks"]
    assert got.get("schedule") == want.get("schedule")
