"""Sub-commands ``sweep``, ``plot`` and ``report``.

``wpsim report`` regenerates the folders under ``reports/``: each ``reports/<name>/make_report.py``
defines ``main(out_dir: Path | None = None) -> None`` (``None``: write into its own folder; a
``main`` that also takes ``progress`` gets ``progress=True`` and reports its own progress on
stderr). Every folder runs even when another fails; each failure is one line, and the exit status
is non-zero if any failed. ``--check`` regenerates into a temporary folder and compares the data
with the committed files (:mod:`wpsim.report_check`); a report whose script sets ``SLOW = True``
(minutes to run) is checked only when named.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
import sys
import tempfile
import time
from pathlib import Path

from wpsim.cli import add_force_workers, positive_int, print_json
from wpsim.errors import ConfigError
from wpsim.guards import check_workers
from wpsim.outputs import output_folder

REPORTS_DIR = Path(__file__).resolve().parent.parent / "reports"


# ---- sweep ----------------------------------------------------------------------------------


def _cmd_sweep(args: argparse.Namespace) -> int:
    from wpsim.sweep import load_sweep, run_sweep

    loaded = load_sweep(args.spec)
    if args.dry_run:
        from wpsim.sweep.run import execution_order

        print(f"{args.spec}: {loaded.n_points} points, engine {loaded.spec.engine}, mode "
              f"{loaded.spec.mode}; varied: {', '.join(loaded.params) or '(nothing)'}")  # fmt: skip
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

        check_workers(args.workers or default_workers(), "--workers", args.force_workers,
                      "wpsim sweep")  # fmt: skip
    _confirm_size(loaded, args)
    output_folder(args.out, "--out")
    summary = run_sweep(loaded, args.out, backend=args.backend, workers=args.workers,
                        scheduler=args.scheduler, restart=args.restart, progress=not args.quiet,
                        max_points=args.max_points, allow_large=args.allow_large)  # fmt: skip
    status = 0
    if summary.failed:
        print(f"wpsim sweep: {summary.failed} of {summary.n_points} points failed (their "
              f"'error' column in {Path(args.out) / 'results.csv'} says why)",
              file=sys.stderr)  # fmt: skip
        status = 1
    if args.json:
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(summary).items()}
        out["rate_points_per_s"] = summary.rate
        print_json(out)
        return status
    name = loaded.spec.name or Path(args.spec).stem
    workers = f"{summary.workers} {summary.backend} worker{'s' if summary.workers != 1 else ''}"
    print(f"sweep {name}: {summary.run_now} points run in {summary.wall_s:.1f} s "
          f"({summary.rate:,.1f} points/s, {workers}); {summary.done_before} were already done")  # fmt: skip
    state = "complete" if summary.complete else "partial: run the same command again to continue"
    print(f"  {summary.n_points} points, {summary.failed} failed ({state})")
    print(f"  results: {Path(args.out) / 'results.csv'}")
    return status


#: Sweeps with more points than this run only with ``--yes`` (the refusal shows the count and an
#: estimate of the time): a mistyped grid (one list too many) can be billions of points.
CONFIRM_POINTS = 1_000_000


def _confirm_size(loaded, args: argparse.Namespace) -> None:
    """Refuse a sweep of more than :data:`CONFIRM_POINTS` new points without ``--yes``."""
    todo = loaded.n_points if args.max_points is None else min(loaded.n_points, args.max_points)
    if todo <= CONFIRM_POINTS or args.yes:
        return
    from wpsim.sweep.run import default_workers, measure_rate

    workers = args.workers or default_workers()
    rate = measure_rate(loaded)
    if rate:
        hours = todo / (rate * workers) / 3600
        took = (
            f"about {hours:,.1f} h at {rate:,.0f} points/s per worker measured on its first points"
        )
    else:
        took = "time unknown: its first points failed"
    raise ConfigError(
        f"{args.spec}: {loaded.n_points:,} points ({took}, {workers} workers); more than "
        f"{CONFIRM_POINTS:,}: pass --yes to run them, or --max-points N to run part of them"
    )


def _add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "sweep", help="run a what-if sweep (grid, zip or random sample) into a results folder",
        description="Evaluate every point of a sweep YAML (see sweeps/ and wpsim/sweep/spec.py) and "
        "append one row per point to DIR/results.csv, with DIR/manifest.json recording the spec, "
        "the wpsim version and the input files' hashes. Re-running the same command resumes: "
        "finished points are skipped. A point that fails is recorded with its error.",
    )  # fmt: skip
    p.add_argument("spec", metavar="SPEC.yaml", help="the sweep specification")
    p.add_argument("--out", "-o", metavar="DIR", help="results folder (created if missing)")
    p.add_argument("--backend", choices=["local", "dask"], default="local",
                   help="local processes (default) or Dask distributed")  # fmt: skip
    p.add_argument("--workers", "-j", type=positive_int, metavar="N",
                   help="worker processes (default: one per core); 1 runs in-process")  # fmt: skip
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT",
                   help="with --backend dask: use this running cluster instead of a LocalCluster")  # fmt: skip
    p.add_argument("--restart", action="store_true", help="discard earlier results in DIR")
    p.add_argument("--max-points", type=positive_int, metavar="N",
                   help="stop after N new points (run again to continue)")  # fmt: skip
    p.add_argument("--dry-run", action="store_true", help="print the points, run nothing")
    p.add_argument("--yes", "-y", action="store_true",
                   help=f"run a sweep of more than {CONFIRM_POINTS:,} points")  # fmt: skip
    p.add_argument("--allow-large", action="store_true",
                   help="evaluate points whose estimated memory exceeds a worker's share "
                   "(else failed rows; see Limits in docs/reference/cli.md)")  # fmt: skip
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
    written = plot_sweep(args.folder, args.out, heatmap=heatmap, metric=args.metric,
                         pareto_axes=pareto)  # fmt: skip
    for path in written:
        print(f"wrote {path}")
    if not written:
        print("nothing to draw: vary cores for speed-up curves, two parameters for heat maps")
    return 0


def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plot", help="draw a sweep's standard views (speed-up, heat maps, winners, Pareto)",
        description="Draw speed-up against cores per policy, heat maps over two parameters and "
        "where each policy wins, from a folder written by `wpsim sweep`.",
    )  # fmt: skip
    p.add_argument("folder", metavar="DIR", help="a sweep results folder")
    p.add_argument("--out", metavar="DIR", help="where the PNG files go (default: DIR/plots)")
    p.add_argument("--heatmap", metavar="X,Y",
                   help="the two parameters of the heat maps (default: the first two varied)")  # fmt: skip
    p.add_argument("--metric", default="speedup", help="heat-map metric (default: speedup)")
    p.add_argument("--pareto", metavar="X,Y",
                   help="also plot Y against X, every point, the non-dominated ones marked and "
                   "listed in a CSV: result columns (makespan_s, cores, speedup, a varied "
                   "parameter...) or core_s (cores x makespan); each minimised except speedup "
                   "and utilization, NAME:min or NAME:max to say otherwise")  # fmt: skip
    p.set_defaults(func=_cmd_plot)


# ---- report ---------------------------------------------------------------------------------


def discover_reports(root: Path = REPORTS_DIR) -> dict[str, Path]:
    """``{name: make_report.py}`` for every folder of ``root`` that has one, sorted by name."""
    if not root.is_dir():
        return {}
    return {
        folder.name: folder / "make_report.py"
        for folder in sorted(root.iterdir())
        if folder.is_dir() and (folder / "make_report.py").is_file()
    }


def report_is_slow(script: Path) -> bool:
    """Whether ``script`` says ``SLOW = True`` (a report that takes minutes: left out of
    ``wpsim report --check`` unless named)."""
    return re.search(r"^SLOW\s*=\s*True\b", script.read_text(), re.MULTILINE) is not None


def run_report(name: str, script: Path, out_dir: Path | None = None) -> None:
    """Import ``script`` and call its ``main(out_dir)`` (with ``progress=True`` when it takes
    that argument); its folder is importable meanwhile."""
    module_name = f"wpsim_report_{name}"
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    folder = str(script.parent)
    sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        main = getattr(module, "main", None)
        if not callable(main):
            raise AttributeError(f"{script} defines no main(out_dir=None)")
        if "progress" in inspect.signature(main).parameters:
            main(out_dir, progress=True)
        else:
            main(out_dir)
    finally:
        sys.modules.pop(module_name, None)
        if folder in sys.path:
            sys.path.remove(folder)


def _one_line(error: BaseException) -> str:
    text = " | ".join(line.strip() for line in str(error).splitlines() if line.strip())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _cmd_report(args: argparse.Namespace) -> int:
    root = Path(args.reports_dir) if args.reports_dir else REPORTS_DIR
    if not root.is_dir():
        raise ConfigError(
            f"no reports folder at {root}: `wpsim report` regenerates the reports/ of a source "
            "checkout (an installed wheel has none)"
        )
    found = discover_reports(root)
    if args.list:
        for name, script in found.items():
            print(f"{name}  ({script})")
        return 0
    names = args.names or list(found)
    unknown = [n for n in names if n not in found]
    if unknown:
        raise ConfigError(
            f"report {unknown[0]!r}: no {root}/{unknown[0]}/make_report.py (have: "
            f"{', '.join(found) or 'none'})"
        )
    if args.check and args.out:
        raise ConfigError("--check regenerates into a temporary folder; leave out --out")
    if args.check and not args.names:
        slow = [n for n in names if report_is_slow(found[n])]
        names = [n for n in names if n not in slow]
        if slow:
            print(f"report --check: leaving out the slow {', '.join(slow)} (name it to check it)")
    if not names:
        print(f"no reports under {root}")
        return 0
    failed = []
    for i, name in enumerate(names, start=1):
        out_dir = Path(args.out) / name if args.out else None
        start = time.monotonic()
        print(f"report {name} ({i} of {len(names)}): running ...", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"wpsim-check-{name}-") as scratch:
            if args.check:
                out_dir = Path(scratch)
            try:
                run_report(name, found[name], out_dir)
            except KeyboardInterrupt:
                raise
            except (Exception, SystemExit) as error:  # noqa: BLE001 - one line per failed report
                if not (isinstance(error, SystemExit) and not error.code):
                    failed.append(name)
                    print(f"report {name}: FAILED: {_one_line(error)}", file=sys.stderr)
                    continue
            seconds = time.monotonic() - start
            if args.check and not _check_report(name, found[name].parent, Path(scratch), seconds):
                failed.append(name)
            elif not args.check:
                print(f"report {name}: ok ({seconds:.1f} s)", flush=True)
    if failed:
        print(f"wpsim report: {len(failed)} of {len(names)} failed: {', '.join(failed)}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _check_report(name: str, committed: Path, regenerated: Path, seconds: float) -> bool:
    """Print whether ``regenerated`` matches the committed folder; True if it does."""
    from wpsim.report_check import REL_TOL, compare_folders

    differences, compared, images = compare_folders(committed, regenerated)
    what = f"{compared} data files, {images} images not compared; {seconds:.1f} s"
    if not differences:
        print(f"report {name}: matches the committed data within {REL_TOL:g} ({what})", flush=True)
        return True
    print(f"report {name}: DIFFERS from the committed data ({what}); regenerate it with "
          f"`wpsim report {name}` and commit the result:", file=sys.stderr)  # fmt: skip
    for line in differences:
        print(f"  {line}", file=sys.stderr)
    return False


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="regenerate the reproduced results under reports/",
        description="Run reports/<name>/make_report.py for every folder (or the names given). "
        "Each failure is reported on one line; the exit status is 1 if any failed.",
    )  # fmt: skip
    p.add_argument("names", nargs="*", metavar="NAME", help="report folders (default: all)")
    p.add_argument("--out", metavar="DIR", help="write into DIR/<name> instead of each folder")
    p.add_argument("--list", action="store_true", help="list the reports and exit")
    p.add_argument(
        "--check", action="store_true",
        help="regenerate into a temporary folder and compare the data (CSV, README) with the "
        "committed files: numbers within 1e-6 relative or one unit of their last printed digit, "
        "images not compared; exit status 1 if any differs (default: every report but the slow "
        "ones)",
    )  # fmt: skip
    p.add_argument("--reports-dir", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_report)


COMMANDS = [_add_sweep, _add_plot, _add_report]
