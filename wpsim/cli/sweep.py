"""Sub-commands ``sweep`` (run a what-if sweep) and ``plot`` (draw its standard views)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from wpsim.cli.common import add_force_workers, positive_int, print_json
from wpsim.errors import ConfigError
from wpsim.guards import check_workers
from wpsim.outputs import output_folder

# ---- sweep ----------------------------------------------------------------------------------


def _cmd_sweep(args: argparse.Namespace) -> int:
    from wpsim.sweep import load_sweep, run_sweep

    loaded = load_sweep(args.spec)
    if args.dry_run:
        from wpsim.sweep.run import execution_order

        print(
            f"{args.spec}: {loaded.n_points} points, engine {loaded.spec.engine}, mode "
            f"{loaded.spec.mode}; varied: {', '.join(loaded.params) or '(nothing)'}"
        )
        for n, (index, point) in enumerate(execution_order(loaded)):
            if n >= 5:
                print("  ...")
                break
            print(f"  point {index}: " + ", ".join(f"{k}={v}" for k, v in point.items()))
        return 0
    if args.out is None:
        raise ConfigError("--out DIR is required (where results.csv and manifest.json go)")
    if args.scheduler:
        from wpsim.sweep.run import check_scheduler

        check_scheduler(args.scheduler)
    if args.backend == "local" and args.scheduler:
        raise ConfigError("--scheduler needs --backend dask")
    if not args.scheduler:  # processes started on this computer
        from wpsim.sweep.run import default_workers

        check_workers(
            args.workers or default_workers(), "--workers", args.force_workers, "wpsim sweep"
        )
    _confirm_size(loaded, args)
    output_folder(args.out, "--out")
    summary = run_sweep(
        loaded,
        args.out,
        backend=args.backend,
        workers=args.workers,
        scheduler=args.scheduler,
        restart=args.restart,
        progress=not args.quiet,
        max_points=args.max_points,
        allow_large=args.allow_large,
    )
    status = 0
    if summary.failed:
        print(
            f"wpsim sweep: {summary.failed} of {summary.n_points} points failed (their "
            f"'error' column in {Path(args.out) / 'results.csv'} says why)",
            file=sys.stderr,
        )
        status = 1
    if args.json:
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(summary).items()}
        out["rate_points_per_s"] = summary.rate
        print_json(out)
        return status
    name = loaded.spec.name or Path(args.spec).stem
    workers = f"{summary.workers} {summary.backend} worker{'s' if summary.workers != 1 else ''}"
    print(
        f"sweep {name}: {summary.run_now} points run in {summary.wall_s:.1f} s "
        f"({summary.rate:,.1f} points/s, {workers}); {summary.done_before} were already done"
    )
    state = "complete" if summary.complete else "partial: run the same command again to continue"
    print(f"  {summary.n_points} points, {summary.failed} failed ({state})")
    print(f"  results: {Path(args.out) / 'results.csv'}")
    return status


#: Sweeps with more points than this run only with ``--yes`` (the refusal shows the count and an
#: estimate of the time): a mistyped grid (one list too many) can be billions of points.
CONFIRM_POINTS = 1_000_000


def _duration(seconds: float) -> str:
    """``seconds`` in the unit that reads best.

    Examples
    --------
    >>> _duration(42.4), _duration(125.0), _duration(7200.0)
    ('42 s', '2.1 min', '2.0 h')
    """
    if seconds < 60:
        return f"{seconds:,.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _confirm_size(loaded: Any, args: argparse.Namespace) -> None:
    """Refuse a sweep of more than :data:`CONFIRM_POINTS` new points without ``--yes``."""
    todo = loaded.n_points if args.max_points is None else min(loaded.n_points, args.max_points)
    if todo <= CONFIRM_POINTS or args.yes:
        return
    from wpsim.sweep.run import default_workers, measure_rate

    workers = args.workers or default_workers()
    rate = measure_rate(loaded)
    if rate:
        seconds = todo / (rate * workers)
        took = (
            f"about {_duration(seconds)} at {rate:,.0f} points/s per worker measured on its first "
            "points"
        )
    else:
        took = "time unknown: its first points failed"
    raise ConfigError(
        f"{args.spec}: {loaded.n_points:,} points ({took}, {workers} workers); more than "
        f"{CONFIRM_POINTS:,}: pass --yes to run them, or --max-points N to run part of them"
    )


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep",
        help="run a what-if sweep (grid, zip or random sample) into a results folder",
        description="Evaluate every point of a sweep YAML (see sweeps/ and wpsim/sweep/spec.py) and "
        "append one row per point to DIR/results.csv, with DIR/manifest.json recording the spec, "
        "the wpsim version and the input files' hashes. Re-running the same command resumes: "
        "finished points are skipped. A point that fails is recorded with its error.",
    )
    p.add_argument("spec", metavar="SPEC.yaml", help="the sweep specification")
    p.add_argument("--out", "-o", metavar="DIR", help="results folder (created if missing)")
    p.add_argument(
        "--backend",
        choices=["local", "dask"],
        default="local",
        help="local processes (default) or Dask distributed",
    )
    p.add_argument(
        "--workers",
        "-j",
        type=positive_int,
        metavar="N",
        help="worker processes (default: one per core); 1 runs in-process",
    )
    p.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        help="with --backend dask: use this running cluster instead of a LocalCluster",
    )
    p.add_argument("--restart", action="store_true", help="discard earlier results in DIR")
    p.add_argument(
        "--max-points",
        type=positive_int,
        metavar="N",
        help="stop after N new points (run again to continue)",
    )
    p.add_argument("--dry-run", action="store_true", help="print the points, run nothing")
    p.add_argument(
        "--yes",
        "-y",
        action="store_true",
        help=f"run a sweep of more than {CONFIRM_POINTS:,} points",
    )
    p.add_argument(
        "--allow-large",
        action="store_true",
        help="evaluate points whose estimated memory exceeds a worker's share "
        "(else failed rows; see Limits in docs/reference/cli.md)",
    )
    add_force_workers(p)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_sweep)


# ---- plot -----------------------------------------------------------------------------------


def _cmd_plot(args: argparse.Namespace) -> int:
    from wpsim.sweep.plot import plot_sweep

    heatmap = None
    if args.heatmap:
        parts = [p.strip() for p in args.heatmap.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"--heatmap: got {args.heatmap!r}, expected two parameters X,Y")
        heatmap = (parts[0], parts[1])
    pareto = None
    if args.pareto:
        parts = [p.strip() for p in args.pareto.split(",")]
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"--pareto: got {args.pareto!r}, expected two columns X,Y")
        pareto = (parts[0], parts[1])
    written = plot_sweep(
        args.folder, args.out, heatmap=heatmap, metric=args.metric, pareto_axes=pareto
    )
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("nothing to draw: vary cores for speed-up curves, two parameters for heat maps")
    return 0


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot",
        help="draw a sweep's standard views (speed-up, heat maps, winners, Pareto)",
        description="Draw speed-up against cores per policy, heat maps over two parameters and "
        "where each policy wins, from a folder written by `wpsim sweep`.",
    )
    p.add_argument("folder", metavar="DIR", help="a sweep results folder")
    p.add_argument("--out", metavar="DIR", help="where the PNG files go (default: DIR/plots)")
    p.add_argument(
        "--heatmap",
        metavar="X,Y",
        help="the two parameters of the heat maps (default: the first two varied)",
    )
    p.add_argument("--metric", default="speedup", help="heat-map metric (default: speedup)")
    p.add_argument(
        "--pareto",
        metavar="X,Y",
        help="also plot Y against X, every point, the non-dominated ones marked and "
        "listed in a CSV: result columns (makespan_s, cores, speedup, a varied "
        "parameter...) or core_s (cores x makespan); each minimised except speedup "
        "and utilization, NAME:min or NAME:max to say otherwise",
    )
    p.set_defaults(func=_cmd_plot)


COMMANDS = [_add_sweep, _add_plot]
