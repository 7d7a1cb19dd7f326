"""``wpsim tune`` against the real executor: is the chosen schedule the fastest when measured?

For every shipped workload (``workloads/*.yaml``), :func:`wpsim.tune.tune` chooses a schedule on
this computer's calibration (``--hardware``, default ``host``), twice: with the model alone
(closed forms, then the best three simulated) and as ``wpsim tune --confirm`` does (the chosen
schedule and the best of each other shape also timed with the real executor, ``--confirm``
shapes). Then every schedule it considered is run for real (:func:`kernels.executor.execute`,
one BLAS thread per worker) in two stages:

1. screening: every considered schedule once (one warm-up run, ``--screen-repeats`` timed);
2. refinement: the ``--finalists`` fastest of the screening, and both chosen schedules, timed
   again in ``--rounds`` interleaved rounds of ``--repeats`` runs each, or more for a short run:
   until :data:`wpsim.tune.CONFIRM_MIN_TIMED_S` was timed in all, as ``tune --confirm`` times
   (a shared machine drifts; interleaving spreads the drift over every schedule).

A schedule's measured makespan is the median of its timed runs (all stages). The chosen one
passes when it is within ``--tolerance`` (10%) of the fastest measured. The load average is
printed before and after each workload (other processes share the machine).

Usage::

    python benchmarks/tune.py [--hardware host] [--workloads tiny,demo] [--finalists 6]
                              [--rounds 2] [--repeats 3] [--screen-repeats 1] [--json FILE]

A benchmark, not a test: it prints (and with ``--json`` writes) the table, and exits 0 whether or
not the target is met.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(workload, candidates, repeats, warmup: int) -> list[list[float]]:
    """Every candidate's timed makespans (its own worker processes, ``warmup`` untimed runs;
    ``repeats`` timed runs, or a list of them by candidate)."""
    from kernels.executor import execute

    out = []
    counts = repeats if isinstance(repeats, list) else [repeats] * len(candidates)
    for c, n in zip(candidates, counts, strict=True):
        run = execute(
            workload, c.policy_object(), c.workers, chunk=c.chunk, repeats=n, warmup=warmup
        )
        out.append(list(run.extra["makespans_s"]))
    return out


def _key(c) -> tuple:
    return (c.policy, c.helpers, c.workers, c.chunk)


def main(argv: list[str] | None = None) -> int:
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.model.workload import resolve_workload
    from wpsim.tune import CONFIRM_MAX_RUNS, CONFIRM_MIN_TIMED_S, tune

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hardware", "-m", default="host")
    parser.add_argument(
        "--workloads", default=",".join(sorted(p.stem for p in (ROOT / "workloads").glob("*.yaml")))
    )
    parser.add_argument("--finalists", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--screen-repeats", type=int, default=1)
    parser.add_argument("--tolerance", type=float, default=0.10)
    parser.add_argument("--confirm", type=int, default=4, help="shapes wpsim tune --confirm times")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args(argv)
    machine = load_machine(resolve_machine_path(args.hardware))
    print(f"machine file: {machine.name}; this computer: {os.cpu_count()} CPUs")
    rows = []
    for name in args.workloads.split(","):
        workload = resolve_workload(name)
        load_before = os.getloadavg()[0]
        start = time.perf_counter()
        model = tune(workload, machine)
        confirmed = tune(workload, machine, confirm_best=args.confirm)
        considered = model.ranking
        keys = [(c.policy, c.helpers, c.workers, c.chunk) for c in considered]
        chosen_model = keys.index(_key(model.chosen))
        chosen = keys.index(_key(confirmed.chosen))
        times = {
            i: ts for i, ts in enumerate(measure(workload, considered, args.screen_repeats, 1))
        }
        screened = sorted(times, key=lambda i: statistics.median(times[i]))
        finalists = list(dict.fromkeys([chosen, chosen_model, *screened[: args.finalists]]))
        # short runs: as many as tune --confirm times (CONFIRM_MIN_TIMED_S in all)
        repeats = [
            min(
                CONFIRM_MAX_RUNS // args.rounds,
                max(
                    args.repeats,
                    math.ceil(CONFIRM_MIN_TIMED_S / args.rounds / statistics.median(times[i])),
                ),
            )
            for i in finalists
        ]
        for _ in range(args.rounds):
            for i, ts in zip(
                finalists,
                measure(workload, [considered[i] for i in finalists], repeats, 1),
                strict=True,
            ):
                times[i] += ts
        median = {i: statistics.median(ts) for i, ts in times.items()}
        best = min(finalists, key=median.__getitem__)
        ratio = median[chosen] / median[best]
        row = {
            "workload": name,
            "considered": len(considered),
            "chosen": considered[chosen].describe(),
            "chosen_measured_s": median[chosen],
            "model_chosen": considered[chosen_model].describe(),
            "model_chosen_measured_s": median[chosen_model],
            "model_ratio": median[chosen_model] / median[best],
            "best": considered[best].describe(),
            "best_measured_s": median[best],
            "ratio": ratio,
            "within": ratio <= 1 + args.tolerance,
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
            "seconds": time.perf_counter() - start,
        }
        rows.append(row)
        print(
            f"{name:<12} {len(considered):>4} considered  tune --confirm: {row['chosen']:<38} "
            f"{median[chosen] * 1e3:9.3f} ms  (model alone: {row['model_chosen']}, "
            f"{median[chosen_model] * 1e3:.3f} ms)  fastest {row['best']:<38} "
            f"{median[best] * 1e3:9.3f} ms  {ratio:5.2f}x  {'ok' if row['within'] else 'MISS'}"
            f"  (load {load_before:.1f} -> {row['load_after']:.1f}, {row['seconds']:.0f} s)",
            flush=True,
        )
    passed = sum(r["within"] for r in rows)
    print(
        f"\nchosen within {100 * args.tolerance:.0f}% of the fastest measured: {passed} of "
        f"{len(rows)} workloads"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    from wpsim.interrupts import sigterm_as_interrupt

    # SIGTERM stops the executor's workers as Ctrl-C does, instead of killing this process alone
    with sigterm_as_interrupt():
        try:
            sys.exit(main())
        except KeyboardInterrupt:
            print(f"{Path(__file__).name}: interrupted", file=sys.stderr)
            sys.exit(130)
