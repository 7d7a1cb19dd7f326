"""Time and memory of ``predict`` against the sequence length: closed forms without the graph,
beside the graph-based closed forms they replaced.

Each run is a fresh process (``python -c`` importing wpsim and predicting once), timed from the
call to the answer; the peak resident memory is the process's own (``VmHWM``). The workload is
an 8-layer LSTM (H=512) on the 2-socket Xeon 8160, wavefront on 16 cores (the issue's
example), for ``seq_len`` from 10^3 to 10^8: 8,000 to 800 million tasks. The graph-based
reference (``tests/analytic_reference.py``, the ``wpsim.sim.closed_forms`` before it stopped building
the graph) runs up to ``--reference-max`` steps (default 10^5: 800,000 tasks, 1.7 GB); its answer
and the closed forms' must agree (makespan and baseline to 1e-9 relative).

Targets: 10^8 steps in under 1 s and under 200 MB; the 800,000-task case equal to the reference.

Usage::

    python benchmarks/predict.py [--reference-max 100000] [--policy wavefront] [--cores 16]

A benchmark, not a test: it prints, and exits 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import json, re, sys, time
sys.path.insert(0, {tests!r})
from wpsim.machines import load_machine, resolve_machine_path
from wpsim.model.workload import Workload
if {reference}:
    from analytic_reference import predict
else:
    from wpsim.sim.closed_forms import predict
machine = load_machine(resolve_machine_path("xeon8160_2s"))
w = Workload(cell="lstm", layers=8, hidden=512, input=512, seq_len={seq_len})
start = time.perf_counter()
r = predict(w, machine, {policy!r}, cores={cores})
seconds = time.perf_counter() - start
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(json.dumps({{"s": seconds, "peak_kb": peak, "makespan_s": r.makespan_s,
                  "sequential_s": r.sequential_s, "n_tasks": r.n_tasks}}))
"""


def run(seq_len: int, reference: bool, policy: str, cores: int) -> dict:
    code = PROBE.format(
        tests=str(ROOT / "tests"), reference=reference, seq_len=seq_len, policy=policy, cores=cores
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        return {"error": proc.stderr.strip().splitlines()[-1]}
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--reference-max",
        type=int,
        default=100_000,
        help="the longest sequence run with the graph-based reference",
    )
    parser.add_argument("--policy", default="wavefront")
    parser.add_argument("--cores", type=int, default=16)
    args = parser.parse_args(argv)
    print(
        f"{'seq_len':>11}{'tasks':>14}{'closed form s':>15}{'MB':>8}{'reference s':>13}"
        f"{'MB':>8}{'ratio':>9}{'makespan equal':>16}"
    )
    verdicts = []
    for exponent in range(3, 9):
        seq_len = 10**exponent
        new = run(seq_len, False, args.policy, args.cores)
        old = run(seq_len, True, args.policy, args.cores) if seq_len <= args.reference_max else {}
        same = "-"
        if "makespan_s" in old:
            same = str(
                all(
                    abs(new[k] - old[k]) <= 1e-9 * abs(old[k])
                    for k in ("makespan_s", "sequential_s")
                )
                and new["n_tasks"] == old["n_tasks"]
            )
        ref_s = f"{old['s']:.3f}" if "s" in old else old.get("error", "-")[:12]
        ref_mb = f"{old['peak_kb'] / 1024:.0f}" if "peak_kb" in old else "-"
        ratio = f"{old['s'] / new['s']:,.0f}x" if "s" in old else "-"
        print(
            f"{seq_len:>11,}{new['n_tasks']:>14,}{new['s']:>15.4f}{new['peak_kb'] / 1024:>8.0f}"
            f"{ref_s:>13}{ref_mb:>8}{ratio:>9}{same:>16}"
        )
        if seq_len == 10**8:
            ok = new["s"] < 1.0 and new["peak_kb"] < 200 * 1024
            verdicts.append(
                f"10^8 steps: {new['s']:.3f} s, {new['peak_kb'] / 1024:.0f} MB peak "
                f"(whole process; target < 1 s and < 200 MB: "
                f"{'met' if ok else 'NOT met'})"
            )
        if seq_len == 10**5 and same != "-":
            verdicts.append(f"800,000 tasks: same answer as the graph-based reference: {same}")
    print()
    for line in verdicts:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
