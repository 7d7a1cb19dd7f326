"""The ``wpsim`` command line.

Each command group is a module of this package (:data:`GROUPS`), whose ``COMMANDS`` register its
sub-commands; shared argument helpers are in :mod:`wpsim.cli.common`; errors the user
can fix (:class:`~wpsim.errors.WpsimError`, and bad options) print as one line on stderr with
exit status 2, and Ctrl-C or SIGTERM exit with status 130 after the command has saved what it
finished. The console script enters through :mod:`wpsim.console`, which also catches an
interrupt while these modules load.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from wpsim import __version__
from wpsim.cli.common import ArgumentParser
from wpsim.errors import WpsimError
from wpsim.interrupts import INTERRUPTED, interrupted, sigterm_as_interrupt
from wpsim.outputs import output_folder

# ---- demo: a tour of the other commands -------------------------------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    out = output_folder(args.out, "--out")
    print(
        "wpsim demo: the built-in 4-layer LSTM (H=512, T=100, batch 1) on a 2-socket Xeon "
        "Platinum 8160 node (48 cores)\n"
    )
    # each step's exit status counts: a demo that failed somewhere must not exit 0
    steps = [
        ["graph"],
        ["compare", "--cores", "48"],
        [
            "simulate",
            "--policy",
            "wavefront",
            "--cores",
            "8",
            "--trace",
            str(out / "wavefront_trace.json"),
            "--gantt",
            str(out / "wavefront_gantt.png"),
        ],
    ]
    failed = []
    for i, step in enumerate(steps):
        if i:
            print()
        if main(step) != 0:
            failed.append(f"wpsim {' '.join(step)}")
    if failed:
        print(
            f"wpsim demo: {len(failed)} of {len(steps)} steps failed: {'; '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    print(
        "\nNext: open the Chrome trace in https://ui.perfetto.dev, read docs/tutorial.md, try "
        "`wpsim compare -w deep_lstm` or `wpsim predict --policy layerwise --cores 24`."
    )
    return 0


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="a guided first run on the built-in workload and machine")
    p.add_argument(
        "--out", default="out/demo", help="folder for the trace and Gantt chart (default: out/demo)"
    )
    p.set_defaults(func=_cmd_demo)


# ---- registry ---------------------------------------------------------------------------------

#: The command groups, in the order ``wpsim --help`` lists their commands; each module's
#: ``COMMANDS`` lists its registrars. Imported when the parser is built (kept out of start-up).
GROUPS = [
    "wpsim.cli.graph",
    "wpsim.cli.sim",
    "wpsim.cli.real",
    "wpsim.cli.calibrate",
    "wpsim.cli.sweep",
    "wpsim.cli.report",
    "wpsim.cli.tune",
]


def registrars() -> list[Callable[[argparse._SubParsersAction], None]]:
    """Every sub-command registrar, group by group; ``demo`` (a tour of the others) after the
    simulation commands."""
    import importlib

    found: list[Callable[[argparse._SubParsersAction], None]] = []
    for name in GROUPS:
        found += importlib.import_module(name).COMMANDS
        if name == "wpsim.cli.sim":
            found.append(_add_demo)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="wpsim",
        description="Simulate, model and measure wavefront execution of recurrent neural "
        "networks (RNN, LSTM, GRU) on multi-core machines. Times are in seconds, sizes in bytes.",
    )
    parser.add_argument("--version", action="version", version=f"wpsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for registrar in registrars():
        registrar(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (argparse exits itself on bad options: 2)."""
    with sigterm_as_interrupt():
        try:
            parser = build_parser()
            args = parser.parse_args(argv)
            if not getattr(args, "func", None):
                parser.print_help()
                print("wpsim: error: expected a command (see the list above)", file=sys.stderr)
                return 2
            return int(args.func(args) or 0)
        except KeyboardInterrupt:
            print("wpsim: interrupted", file=sys.stderr)
            return INTERRUPTED
        except WpsimError as error:
            if interrupted():  # e.g. a worker that saw the same Ctrl-C
                print("wpsim: interrupted", file=sys.stderr)
                return INTERRUPTED
            print(f"wpsim: error: {' '.join(str(error).split())}", file=sys.stderr)
            return 2
        except BrokenPipeError:
            return 0
        except MemoryError:
            print(
                "wpsim: error: out of memory (the size guard's estimate was too low; use a "
                "smaller workload or a larger --chunk)",
                file=sys.stderr,
            )
            return 2
        except Exception:
            if not interrupted():
                raise
            # an interrupt while a command loads a module may surface as another error
            print("wpsim: interrupted", file=sys.stderr)
            return INTERRUPTED


__all__ = ["GROUPS", "build_parser", "main", "registrars"]
