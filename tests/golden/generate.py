"""Run the golden configurations and write (or compare) ``golden.json.gz``.

``python tests/golden/generate.py`` rewrites the file; ``tests/test_golden.py`` imports
:func:`run_config` and compares. Numbers are kept as ``repr`` floats rounded to 12 significant
digits, so the comparison is exact on what is stored.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from configs import WORKLOADS, configs  # noqa: E402

GOLDEN_FILE = HERE / "golden.json.gz"


def _round(x: float) -> float:
    return float(f"{x:.12g}")


def run_config(cfg: dict) -> dict:
    """Evaluate one configuration; return its makespan, baseline and per-task schedule."""
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.model.workload import Workload
    from wpsim.policies import get_policy
    from wpsim.sim import evaluate as by_kind

    workload = Workload(name=cfg["workload"], **WORKLOADS[cfg["workload"]])
    machine = load_machine(resolve_machine_path(cfg["machine"]))
    policy = get_policy(cfg["policy"], **cfg["options"])
    result = by_kind.evaluate(
        cfg["engine"],
        workload,
        machine,
        policy,
        cores=cfg["cores"],
        chunk=cfg["chunk"],
        granularity=cfg["granularity"],
        cost=cfg["cost"],
    )
    out = {
        "makespan_s": _round(result.makespan_s),
        "sequential_s": _round(result.sequential_s),
        "n_tasks": result.n_tasks,
    }
    trace = result.trace
    if trace is not None and len(trace):
        out["schedule"] = [
            [t, list(c), _round(s), _round(e)]
            for t, c, s, e in sorted(
                zip(trace.task, trace.cores, trace.start_s, trace.end_s, strict=True)
            )
        ]
    return out


def main() -> None:
    results = {}
    for cfg in configs():
        results[cfg["id"]] = run_config(cfg)
        print(cfg["id"], results[cfg["id"]]["makespan_s"], flush=True)
    with gzip.open(GOLDEN_FILE, "wt") as f:
        json.dump(results, f, sort_keys=True, separators=(",", ":"))
    print(f"wrote {len(results)} configurations to {GOLDEN_FILE}")


if __name__ == "__main__":
    main()
