"""Accuracy benchmark: predicted against measured speed-up over a matrix of workloads.

For every case (cell type, layers 2-8, hidden 128-1024, batch 1-16, chunk 1-8) and every
(policy, workers > 1) configuration, :func:`wpsim.measure.validate.validate` runs the real executor
(median of interleaved rounds) and the simulator on the calibrated machine file, and the relative
error of the predicted speed-up (each engine against its own 1-worker sequential run) is
tabulated. The target is a mean error <= 8% and a maximum <= 20%; the verdict is printed as PASS
or MISS, whatever it is.

Two diagnostics per case explain the errors:

* ``task sim/meas``: the simulated over the measured mean task time (kernel only) of the
  1-worker sequential run: the cost model's absolute accuracy (cancels out of speed-ups);
* ``in-situ slowdown``: the mean task time of each multi-worker run over that of the 1-worker
  run, measured and predicted: the co-running slowdown as the workload actually sees it.

Usage::

    python benchmarks/accuracy.py            # the full matrix, ~10 min on 2 cores
    python benchmarks/accuracy.py --quick    # a subset, ~1 min
    python benchmarks/accuracy.py --workers 2,4,8,16 --hardware my_machine.yaml
    python benchmarks/accuracy.py --replay out/accuracy/accuracy.json   # re-predict, no runs

Results go to ``--out`` (default ``out/accuracy``): ``accuracy.csv`` and ``accuracy.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_MEAN = 0.08
TARGET_MAX = 0.20


@dataclass(frozen=True)
class Case:
    """One workload of the matrix."""

    cell: str
    layers: int
    hidden: int
    batch: int
    chunk: int
    seq_len: int

    @property
    def name(self) -> str:
        return (
            f"{self.cell}-L{self.layers}-H{self.hidden}-B{self.batch}-k{self.chunk}-T{self.seq_len}"
        )

    def workload(self):
        from wpsim.model.workload import Workload

        return Workload(
            name=self.name,
            cell=self.cell,
            layers=self.layers,
            hidden=self.hidden,
            input=self.hidden,
            seq_len=self.seq_len,
            batch=self.batch,
        )


#: The full matrix: every cell type, layers 2-8, hidden 128-1024, batch 1-16, chunk 1-8. Sequence
#: lengths keep each 1-worker run at roughly 20-150 ms on the development machine.
FULL = [
    Case("lstm", 4, 512, 1, 1, 48),
    Case("lstm", 2, 128, 1, 1, 96),
    Case("lstm", 8, 256, 1, 1, 32),
    Case("lstm", 4, 1024, 1, 1, 16),
    Case("lstm", 4, 256, 16, 4, 32),
    Case("lstm", 2, 1024, 4, 8, 32),
    Case("lstm", 6, 512, 4, 2, 24),
    Case("gru", 4, 512, 1, 1, 48),
    Case("gru", 6, 256, 1, 1, 48),
    Case("gru", 3, 128, 16, 8, 64),
    Case("gru", 2, 1024, 16, 8, 16),
    Case("gru", 4, 768, 4, 4, 32),
    Case("rnn", 4, 512, 1, 1, 96),
    Case("rnn", 8, 128, 16, 4, 64),
    Case("rnn", 2, 1024, 4, 2, 64),
    Case("rnn", 6, 256, 1, 8, 128),
]
QUICK = [FULL[0], FULL[4], FULL[7], FULL[9], FULL[12], FULL[14]]
POLICIES = ["wavefront", "pipeline", "layerwise"]
QUICK_POLICIES = POLICIES


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 2,4, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _mean_task_s(per_kind: list[dict], policy: str, workers: int, key: str) -> float:
    entries = [e for e in per_kind if (e["policy"], e["workers"]) == (policy, workers)]
    total = sum(e["n"] for e in entries)
    return sum(e[key] * e["n"] for e in entries) / total if total else float("nan")


def _summarize(rows: list[dict], policies: list[str]) -> tuple[float, float, str]:
    """Print the mean and max error (overall and per policy); return them and the verdict."""
    errors = [r["rel_error"] for r in rows]
    mean_err, max_err = statistics.fmean(errors), max(errors)
    verdict = "PASS" if mean_err <= TARGET_MEAN and max_err <= TARGET_MAX else "MISS"
    print(
        f"\n  predicted speed-up over {len(rows)} configurations: mean |error| "
        f"{100 * mean_err:.1f}% (target <= {100 * TARGET_MEAN:.0f}%), max "
        f"{100 * max_err:.1f}% (target <= {100 * TARGET_MAX:.0f}%): {verdict}"
    )
    for policy in policies:
        sub = [r["rel_error"] for r in rows if r["policy"] == policy]
        if sub:
            print(
                f"    {policy:<10} mean {100 * statistics.fmean(sub):5.1f}%  max "
                f"{100 * max(sub):5.1f}%  ({len(sub)} rows)"
            )
    return mean_err, max_err, verdict


def replay(args: argparse.Namespace) -> int:
    """Re-predict the measured rows of an earlier run (``--replay``) with ``--hardware``.

    Nothing is measured: the speed-ups measured then are compared with what the machine file
    (or the cost model) given now predicts. For iterating on a calibration or a model change
    in seconds; the measurements must come from the computer the machine file describes.
    """
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.sim.engine import simulate

    path = Path(args.replay)
    try:
        data = json.loads(path.read_text())
        recorded = data["rows"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(
            f"accuracy: --replay {path}: expected an accuracy.json written by this benchmark "
            f"({error})",
            file=sys.stderr,
        )
        return 2
    machine = load_machine(resolve_machine_path(args.hardware))
    cases = {case.name: case for case in FULL}
    print(
        f"accuracy: replaying {len(recorded)} measured rows of {path} "
        f"(measured on: {data.get('summary', {}).get('machine', '?')})"
    )
    print(f"  predicted with: {machine.name}")
    print(f"  {'case':<26}{'policy':<11}{'w':>3}{'speed-up meas':>15}{'pred':>7}{'error':>8}")
    baselines: dict[str, float] = {}
    rows = []
    for row in recorded:
        case = cases.get(row["case"])
        if case is None:
            print(f"accuracy: --replay {path}: unknown case {row['case']!r}", file=sys.stderr)
            return 2
        workload = case.workload()
        if case.name not in baselines:
            baselines[case.name] = simulate(
                workload, machine, "sequential", cores=1, chunk=case.chunk
            ).makespan_s
        base = baselines[case.name]
        sim = simulate(
            workload,
            machine,
            row["policy"],
            cores=row["workers"],
            chunk=case.chunk,
            sequential_s=base,
        )
        measured, predicted = row["measured_speedup"], base / sim.makespan_s
        signed = (predicted - measured) / measured
        rows.append(
            {
                **row,
                "predicted_speedup": predicted,
                "signed_error": signed,
                "rel_error": abs(signed),
            }
        )
        print(
            f"  {case.name:<26}{row['policy']:<11}{row['workers']:>3}{measured:>14.2f}x"
            f"{predicted:>6.2f}x{100 * signed:>+7.1f}%"
        )
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    summary = dict(
        zip(("mean_rel_error", "max_rel_error", "verdict"), _summarize(rows, policies), strict=True)
    )
    if args.json:
        print(json.dumps(summary, default=str))
    return 0


def run(args: argparse.Namespace) -> int:
    from wpsim.errors import WpsimError
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.measure.validate import validate

    machine = load_machine(resolve_machine_path(args.hardware))
    cases = QUICK if args.quick else FULL
    policies = args.policies or (QUICK_POLICIES if args.quick else POLICIES)
    workers = [n for n in args.workers if n > 1 and n <= machine.total_cores]
    skipped = [n for n in args.workers if n > machine.total_cores]
    if not workers:
        print(f"accuracy: no worker count > 1 fits '{machine.name}' ({machine.total_cores} cores)")
        return 2
    repeats = args.repeats or (3 if args.quick else 5)
    calibrated = str((machine.calibration or {}).get("date", "never (spec values)"))
    print(
        f"accuracy: {len(cases)} cases x policies {','.join(policies)} x workers "
        f"{','.join(map(str, workers))}; {repeats} interleaved rounds each"
    )
    print(f"  machine: {machine.name} (calibrated: {calibrated})")
    from wpsim.measure.calibrate.spec import calibration_mismatch

    mismatch = calibration_mismatch(machine)
    if mismatch:
        print(f"  WARNING: {mismatch}: the errors below compare this computer with another one")
    if skipped:
        print(f"  skipped worker counts above the machine's {machine.total_cores} cores: {skipped}")
    started = time.perf_counter()
    rows: list[dict] = []
    diagnostics: list[dict] = []
    header = (
        f"  {'case':<26}{'policy':<11}{'w':>3}{'measured':>11}{'predicted':>11}"
        f"{'speed-up meas':>15}{'pred':>7}{'error':>8}"
    )
    print(header)
    for case in cases:
        try:
            report = validate(
                case.workload(),
                machine,
                workers=workers,
                policies=policies,
                chunk=case.chunk,
                repeats=repeats,
            )
        except WpsimError as error:
            print(f"  {case.name:<26}error: {error}")
            continue
        base = _mean_task_s(report.per_kind, "sequential", 1, "measured_mean_s")
        base_sim = _mean_task_s(report.per_kind, "sequential", 1, "simulated_mean_s")
        diag = {"case": case.name, "task_sim_over_meas": base_sim / base, "slowdown": {}}
        for row in report.rows:
            if row["baseline"]:
                continue
            rows.append(
                {"case": case.name, **{k: v for k, v in row.items() if k != "measured_makespans_s"}}
            )
            print(
                f"  {case.name:<26}{row['policy']:<11}{row['workers']:>3}"
                f"{row['measured_makespan_s'] * 1e3:>9.2f}ms{row['predicted_makespan_s'] * 1e3:>9.2f}ms"
                f"{row['measured_speedup']:>14.2f}x{row['predicted_speedup']:>6.2f}x"
                f"{100 * row['signed_error']:>+7.1f}%",
                flush=True,
            )
            key = f"{row['policy']}-{row['workers']}"
            meas = _mean_task_s(report.per_kind, row["policy"], row["workers"], "measured_mean_s")
            sim = _mean_task_s(report.per_kind, row["policy"], row["workers"], "simulated_mean_s")
            diag["slowdown"][key] = {"measured": meas / base, "predicted": sim / base_sim}
        diagnostics.append(diag)
        slow = ", ".join(
            f"{k} {v['measured']:.2f}/{v['predicted']:.2f}" for k, v in diag["slowdown"].items()
        )
        print(
            f"  {'':<26}task sim/meas {diag['task_sim_over_meas']:.2f}; mean task time vs "
            f"1 worker, measured/predicted: {slow}",
            flush=True,
        )
    if not rows:
        print("accuracy: no configuration ran")
        return 2
    mean_err, max_err, verdict = _summarize(rows, policies)
    print(f"  wall time {time.perf_counter() - started:.0f} s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "accuracy.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "mean_rel_error": mean_err,
        "max_rel_error": max_err,
        "verdict": verdict,
        "target_mean": TARGET_MEAN,
        "target_max": TARGET_MAX,
        "machine": machine.name,
        "calibrated": calibrated,
        "quick": args.quick,
    }
    (out / "accuracy.json").write_text(
        json.dumps(
            {"summary": summary, "rows": rows, "diagnostics": diagnostics}, indent=2, default=str
        )
        + "\n"
    )
    print(f"  wrote {out / 'accuracy.csv'} and {out / 'accuracy.json'}")
    if args.json:
        print(json.dumps(summary, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a subset (~1 min)")
    parser.add_argument(
        "--hardware",
        default="host",
        help="machine file (default: host, this computer's calibration made by `wpsim calibrate`)",
    )
    parser.add_argument(
        "--workers",
        type=_int_list,
        default=[2],
        help="worker counts to compare with 1 worker (default: 2)",
    )
    parser.add_argument(
        "--policies",
        type=lambda s: [p for p in s.split(",") if p],
        help=f"policies (default: {','.join(POLICIES)})",
    )
    parser.add_argument("--repeats", type=int, help="interleaved rounds (default 5; quick 3)")
    parser.add_argument("--out", default=str(ROOT / "out" / "accuracy"), help="results folder")
    parser.add_argument("--json", action="store_true", help="also print the summary as JSON")
    parser.add_argument(
        "--replay",
        metavar="ACCURACY_JSON",
        help="measure nothing: re-predict the rows of an earlier run's "
        "accuracy.json with --hardware",
    )
    args = parser.parse_args(argv)
    from wpsim.errors import WpsimError

    try:
        return replay(args) if args.replay else run(args)
    except WpsimError as error:
        print(f"accuracy: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("accuracy: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    from wpsim.interrupts import sigterm_as_interrupt

    # SIGTERM stops the executor's workers as Ctrl-C does, instead of killing this process alone
    with sigterm_as_interrupt():
        try:
            sys.exit(main())
        except KeyboardInterrupt:
            print(f"{Path(__file__).name}: interrupted", file=sys.stderr)
            sys.exit(130)
