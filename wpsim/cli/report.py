"""``wpsim report`` regenerates the folders under ``reports/``: each ``reports/<name>/make_report.py``
defines ``main(out_dir: Path | None = None) -> None`` (``None``: write into its own folder). Every
folder runs even when another fails; each failure is one line, and the exit status is non-zero if
any failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
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


def run_report(name: str, script: Path, out_dir: Path | None = None) -> None:
    """Import ``script`` and call its ``main(out_dir)``; its folder is importable meanwhile."""
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
    if not names:
        print(f"no reports under {root}")
        return 0
    failed = []
    for name in names:
        out_dir = Path(args.out) / name if args.out else None
        start = time.monotonic()
        try:
            run_report(name, found[name], out_dir)
        except KeyboardInterrupt:
            raise
        except (Exception, SystemExit) as error:  # noqa: BLE001 - one line per failed report
            if isinstance(error, SystemExit) and not error.code:
                print(f"report {name}: ok ({time.monotonic() - start:.1f} s)")
                continue
            failed.append(name)
            print(f"report {name}: FAILED: {_one_line(error)}", file=sys.stderr)
            continue
        print(f"report {name}: ok ({time.monotonic() - start:.1f} s)")
    if failed:
        print(f"wpsim report: {len(failed)} of {len(names)} failed: {', '.join(failed)}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report", help="regenerate the reproduced results under reports/",
        description="Run reports/<name>/make_report.py for every folder (or the names given). "
        "Each failure is reported on one line; the exit status is 1 if any failed.",
    )  # fmt: skip
    p.add_argument("names", nargs="*", metavar="NAME", help="report folders (default: all)")
    p.add_argument("--out", metavar="DIR", help="write into DIR/<name> instead of each folder")
    p.add_argument("--list", action="store_true", help="list the reports and exit")
    p.add_argument("--reports-dir", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=_cmd_report)


COMMANDS = [_add_report]
