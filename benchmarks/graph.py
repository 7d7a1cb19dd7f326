"""Build + analyse inference task graphs of 10k, 100k and 1M tasks: seconds and peak memory.

Each size runs in a fresh process so peak memory (``ru_maxrss``) belongs to that size alone.
Targets: 100k tasks in under 2 s, 1M tasks in under 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(n_tasks: int) -> dict:
    from wpsim.model import analysis
    from wpsim.model.graph import build
    from wpsim.model.workload import Workload

    layers = 10
    workload = Workload(
        cell="lstm", layers=layers, hidden=256, input=256, seq_len=n_tasks // layers
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    graph = build(workload)
    t1 = time.perf_counter()
    summary = analysis.summarize(graph)
    t2 = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "n_tasks": summary["n_tasks"],
        "build_s": t1 - t0,
        "analyse_s": t2 - t1,
        "peak_rss_mib": peak_kib / 1024,
        "graph_mib": (peak_kib - before) / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one(args.child)))
        return
    print(
        f"{'tasks':>10} {'build s':>9} {'analyse s':>10} {'total s':>8} {'peak RSS MiB':>13}  target"
    )
    for size in map(int, args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(size)],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(out.stdout)
        total = r["build_s"] + r["analyse_s"]
        target = ""
        if size == 100_000:
            target = f"< 2 s: {'PASS' if total < 2 else 'MISS'}"
        if size == 1_000_000:
            target = f"< 2048 MiB: {'PASS' if r['peak_rss_mib'] < 2048 else 'MISS'}"
        print(
            f"{r['n_tasks']:>10,} {r['build_s']:>9.2f} {r['analyse_s']:>10.2f} {total:>8.2f} "
            f"{r['peak_rss_mib']:>13,.0f}  {target}"
        )


if __name__ == "__main__":
    main()
