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
from wpsim.tune import ChunkChoice


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


def chunk_or_auto(text: str) -> int | str:
    """``--chunk`` of ``run`` and ``validate``: a positive integer or ``auto``."""
    return "auto" if text == "auto" else positive_int(text)


def add_workload_args(p: argparse.ArgumentParser, chunk_auto: bool = False) -> None:
    """The options every command that builds a graph shares (``chunk_auto``: ``--chunk``
    defaults to ``auto``, the chunk the closed-form model picks; see :mod:`wpsim.tune`)."""
    p.add_argument(
        "--workload", "-w", metavar="FILE",
        help="workload YAML, or a name from workloads/ (default: the built-in 4-layer LSTM demo)",
    )  # fmt: skip
    p.add_argument(
        "--granularity", choices=["cell", "op"], default="cell",
        help="one task per cell (default) or per op inside the cell",
    )  # fmt: skip
    if chunk_auto:
        p.add_argument(
            "--chunk", type=chunk_or_auto, default="auto", metavar="K",
            help="time steps per task, or auto (default): the chunk with the lowest predicted "
            "makespan on the machine file (a fixed rule without a calibration)",
        )  # fmt: skip
    else:
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
               workers: int = 0, chunk: int | None = None) -> SizeEstimate:  # fmt: skip
    """The size guard of a command (:func:`wpsim.guards.check_size`) with its options;
    ``chunk`` is the one ``--chunk auto`` chose (default: ``--chunk``)."""
    from wpsim.guards import check_chunk
    from wpsim.guards import check_size as guard

    chunk = args.chunk if chunk is None else chunk
    check_chunk(workload, chunk)
    name = f"workload {args.workload}" if args.workload else None
    return guard(workload, engine, policy, chunk=chunk, granularity=args.granularity,
                 workers=workers, allow=args.allow_large, what=name)  # fmt: skip


# ---- run and validate: this computer's calibration and --chunk auto ---------------------------


def option_machine(args: argparse.Namespace, required: bool) -> Any:
    """The machine of ``--hardware`` for ``run`` and ``validate``: by default this computer's
    calibration (made first with ``--calibrate``); None for ``run`` (not ``required``) when
    there is none."""
    from wpsim.machines import load_machine
    from wpsim.measure.host import machine_option

    path = machine_option(args.hardware, args.calibrate, required)
    return load_machine(path) if path is not None else None


def auto_chunk(args: argparse.Namespace, workload: Workload, policy: Any, workers: int,
               machine: Any) -> ChunkChoice | None:  # fmt: skip
    """``--chunk auto`` of ``run`` and ``validate``: the chunk :func:`wpsim.tune.choose_chunk`
    picks on ``machine`` (the rule when it is None). None when ``--chunk`` is a number.

    On a CPU machine the model predicts every candidate chunk, so the size guards come first:
    refused when the executor cannot hold the run at any candidate (the one with the smallest
    estimate), or when the finest candidate's graph cannot be predicted. The command checks the
    chosen chunk again."""
    from wpsim.guards import estimate
    from wpsim.machines.cpu import CpuMachine
    from wpsim.policies import get_policy
    from wpsim.tune import choose_chunk, chunk_candidates

    if args.chunk != "auto":
        return None
    if isinstance(policy, str):
        policy = get_policy(policy)
    if isinstance(machine, CpuMachine):
        candidates = chunk_candidates(workload.seq_len)
        smallest = min(candidates, key=lambda chunk: estimate(
            workload, "run", policy, chunk=chunk, granularity=args.granularity, workers=workers
        ).total_bytes)  # fmt: skip
        check_size(args, workload, "run", policy, workers, chunk=smallest)
        check_size(args, workload, "predict", policy, workers, chunk=candidates[0])
    return choose_chunk(workload, policy, workers, machine, granularity=args.granularity)


def no_calibration_note(command: str) -> str:
    """The line ``run`` prints when ``--chunk auto`` had no calibration to choose with."""
    from wpsim.machines.host import HOW_TO_CALIBRATE, OR_CALIBRATE_FLAG

    return (
        f"wpsim {command}: no calibration of this computer, so --chunk auto followed a fixed "
        f"rule; {HOW_TO_CALIBRATE}{OR_CALIBRATE_FLAG} to let the model choose"
    )


def add_host_args(p: argparse.ArgumentParser, what: str) -> None:
    """``--hardware`` (default: this computer's calibration) and ``--calibrate``."""
    p.add_argument(
        "--hardware", "-m", metavar="FILE", default="host",
        help=f"machine YAML or a name from hw_configs/ {what} (default: host, the calibration of "
        "this computer made by `wpsim calibrate`)",
    )  # fmt: skip
    p.add_argument(
        "--calibrate", action="store_true",
        help="if there is no calibration of this computer, make a quick one first (about 20 s)",
    )  # fmt: skip
