"""``wpsim report`` regenerates the folders under ``reports/``: each ``reports/<name>/make_report.py``
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

from wpsim.errors import ConfigError

REPORTS_DIR = Path(__file__).resolve().parent.parent.parent / "reports"


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
        print(
            f"wpsim report: {len(failed)} of {len(names)} failed: {', '.join(failed)}",
            file=sys.stderr,
        )
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
    print(
        f"report {name}: DIFFERS from the committed data ({what}); regenerate it with "
        f"`wpsim report {name}` and commit the result:",
        file=sys.stderr,
    )
    for line in differences:
        print(f"  {line}", file=sys.stderr)
    return False


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="regenerate the reproduced results under reports/",
        description="Run reports/<name>/make_report.py for every folder (or the names given). "
        "Each failure is reported on one line; the exit status is 1 if any failed.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="report folders (default: all)")
    p.add_argument("--out", metavar="DIR", help="write into DIR/<name> instead of each folder")
    p.add_argument("--list", action="store_true", help="list the reports and exit")
    p.add_argument(
        "--check",
        action="store_true",
        help="regenerate into a temporary folder and compare the data (CSV, README) with the "
        "committed files: numbers within 1e-6 relative or one unit of their last printed digit, "
        "images not compared; exit status 1 if any differs (default: every report but the slow "
        "ones)",
    )
    p.add_argument("--reports-dir", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_report)


COMMANDS = [_add_report]
