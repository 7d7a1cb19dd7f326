"""Argument helpers the command groups share (not a command group itself).

Each command group (:mod:`wpsim.cli.graph`, :mod:`wpsim.cli.sim`, ...) imports these; none
imports another group, and none imports :mod:`wpsim.cli` (which imports them all).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from wpsim.guards import SizeEstimate
from wpsim.model.workload import Workload
from wpsim.outputs import dumps_json


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one-line errors: ``wpsim run: error: ... (see wpsim run --help)``."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def print_json(obj: object) -> None:
    """Print ``obj`` as JSON; ``inf`` and ``nan`` become ``null`` (JSON has neither)."""
    sys.stdout.write(dumps_json(obj, indent=2, sort_keys=True) + "\n")


def add_workload_args(p: argparse.ArgumentParser) -> None:
    """The options every command that builds a graph shares."""
    p.add_argument(
        "--workload", "-w", metavar="FILE",
        help="workload YAML, or a name from workloads/ (default: the built-in 4-layer LSTM demo)",
    )  # fmt: skip
    p.add_argument(
        "--granularity", choices=["cell", "op"], default="cell",
        help="one task per cell (default) or per op inside the cell",
    )  # fmt: skip
    p.add_argument(
        "--chunk", type=positive_int, default=1, metavar="K",
        help="time steps per task; K > 1 runs the input projection of K steps as one GEMM",
    )  # fmt: skip
    p.add_argument(
        "--allow-large", action="store_true",
        help="run even when the estimated memory exceeds what this computer can give "
        "(see Limits in docs/reference/cli.md)",
    )  # fmt: skip


def add_force_workers(p: argparse.ArgumentParser) -> None:
    """``--force-workers``: overrides the process guard (:func:`wpsim.guards.check_workers`)."""
    from wpsim.guards import MAX_WORKERS_PER_CPU

    p.add_argument(
        "--force-workers", action="store_true",
        help=f"start more than {MAX_WORKERS_PER_CPU} workers per CPU anyway (see Limits in "
        "docs/reference/cli.md)",
    )  # fmt: skip


def check_size(args: argparse.Namespace, workload: Workload, engine: str, policy: Any = None,
               workers: int = 0) -> SizeEstimate:  # fmt: skip
    """The size guard of a command (:func:`wpsim.guards.check_size`) with its options."""
    from wpsim.guards import check_chunk
    from wpsim.guards import check_size as guard

    check_chunk(workload, args.chunk)
    name = f"workload {args.workload}" if args.workload else None
    return guard(workload, engine, policy, chunk=args.chunk, granularity=args.granularity,
                 workers=workers, allow=args.allow_large, what=name)  # fmt: skip
