"""Argument helpers the command groups share (not a command group itself).

Each command group (:mod:`wpsim.cli.graph`, :mod:`wpsim.cli.sim`, ...) imports these; none
imports another group, and none imports :mod:`wpsim.cli` (which imports them all).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from wpsim.errors import ConfigError
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


def chunk_or_auto(text: str) -> int | str:
    """``--chunk``: a positive integer or ``auto`` (the chunk :mod:`wpsim.tune` chooses)."""
    return "auto" if text == "auto" else positive_int(text)


def add_workload_args(
    p: argparse.ArgumentParser, chunk_auto: bool = False, chunk_default: int | None = None
) -> None:
    """The options every command that builds a graph shares (``chunk_auto``: ``--chunk`` may
    be ``auto``, the chunk the closed-form model picks, see :mod:`wpsim.tune`; by default, or
    the ``chunk_default`` given)."""
    p.add_argument(
        "--workload",
        "-w",
        metavar="FILE",
        help="workload YAML, or a name from workloads/ (default: the built-in 4-layer LSTM demo)",
    )
    p.add_argument(
        "--granularity",
        choices=["cell", "op"],
        default="cell",
        help="one task per cell (default) or per op inside the cell",
    )
    if chunk_auto:
        default = "auto" if chunk_default is None else chunk_default
        p.add_argument(
            "--chunk",
            type=chunk_or_auto,
            default=default,
            metavar="K",
            help=f"time steps per task, or auto{' (default)' if default == 'auto' else ''}: "
            "the chunk with the lowest predicted makespan on the machine file (a fixed rule "
            "without a calibration)" + ("" if default == "auto" else f"; default {default}"),
        )
    else:
        p.add_argument(
            "--chunk",
            type=positive_int,
            default=1,
            metavar="K",
            help="time steps per task; K > 1 runs the input projection of K steps as one GEMM",
        )
    p.add_argument(
        "--allow-large",
        action="store_true",
        help="run even when the estimated memory exceeds what this computer can give "
        "(see Limits in docs/reference/cli.md)",
    )


def resolve_auto(
    args: argparse.Namespace,
    workload: Workload,
    machine: Any,
    command: str,
    cores: int | None,
    helper_groups: bool = True,
    guard: bool = False,
) -> tuple[str, Any] | None:
    """``--policy auto`` and ``--chunk auto`` of ``simulate``, ``predict``, ``run`` and
    ``validate``: set ``args.policy``, ``args.helpers`` and ``args.chunk`` to what
    :mod:`wpsim.tune` chooses with the closed forms on ``machine`` for ``cores`` cores (None:
    all); return the line that says so (the command prints it) and the choice, a
    :class:`wpsim.tune.ChunkChoice` or :class:`wpsim.tune.Candidate` (None when nothing was
    auto).

    ``--policy auto``: :func:`wpsim.tune.choose`, the best schedule (``args.policy`` may be a
    list: ``validate``'s, which names policies without helper groups: ``helper_groups``
    False); it needs a CPU machine. ``--chunk auto`` alone: :func:`wpsim.tune.choose_chunk` for
    the policy (``validate``: its last), the fixed rule where ``machine`` is None (no
    calibration of this computer) or not a CPU.

    ``guard`` (``run``, ``validate``): the executor's size guard comes first, refused when it
    cannot hold the run at any candidate (the policy and chunk with the smallest estimate);
    the command checks the chosen schedule again."""
    from wpsim import tune
    from wpsim.machines.cpu import CpuMachine
    from wpsim.policies import get_policy

    policies = args.policy if isinstance(args.policy, list) else [args.policy]
    if "auto" not in policies and args.chunk != "auto":
        return None
    fixed = next((p for p in reversed(policies) if p != "auto"), None)
    options = {k: getattr(args, k) for k in ("helpers", "instances") if hasattr(args, k)}
    policy = None if "auto" in policies or fixed is None else get_policy(fixed, **options)
    if guard:
        _guard_before_choosing(args, workload, policy, cores or 0)
    if policy is not None:  # --chunk auto alone
        choice = tune.choose_chunk(
            workload,
            policy,
            cores if cores else getattr(machine, "total_cores", 1),
            machine,
            granularity=args.granularity,
        )
        args.chunk = choice.chunk
        label = "--chunk auto"
        if isinstance(args.policy, list):
            label += f" for {fixed} on {cores} workers"
        return f"{command}: {label}: {choice.describe()}", choice
    if not isinstance(machine, CpuMachine):
        if machine is None:
            from wpsim.machines.host import missing_message

            raise ConfigError(f"--policy auto: {missing_message(calibrate_flag=True)}")
        raise ConfigError(
            f"--policy auto: machine '{machine.name}' is a {machine.kind}; the "
            "choice is made for CPU machines (name a policy)"
        )
    chunk = None if args.chunk == "auto" else args.chunk
    best = tune.choose(
        workload,
        machine,
        None,
        cores or machine.total_cores,
        chunk,
        args.granularity,
        helper_groups,
    )
    assert best is not None
    if isinstance(args.policy, list):
        args.policy = [best.policy if p == "auto" else p for p in args.policy]
    else:
        args.policy = best.policy
    if hasattr(args, "helpers"):
        args.helpers = best.helpers
    args.chunk = best.chunk
    return (
        f"{command}: auto: {best.describe()} (lowest predicted makespan on "
        f"'{machine.name}', {best.predicted_s * 1e3:,.3f} ms)"
    ), best


def _guard_before_choosing(
    args: argparse.Namespace, workload: Workload, policy: Any, workers: int
) -> None:
    """The executor's size guard at the candidate with the smallest estimate (every policy
    :func:`wpsim.tune.choose` searches when ``policy`` is None; every candidate chunk under
    ``--chunk auto``)."""
    from wpsim.guards import smallest_run
    from wpsim.policies import get_policy
    from wpsim.tune import POLICIES, chunk_candidates

    policies = [policy] if policy is not None else [get_policy(name) for name in POLICIES]
    chunks = chunk_candidates(workload.seq_len) if args.chunk == "auto" else [args.chunk]
    candidates = [(p, c) for p in policies for c in chunks]
    smallest = smallest_run(workload, candidates, granularity=args.granularity, workers=workers)
    check_size(args, workload, "run", smallest[0], workers, chunk=smallest[1])


def add_force_workers(p: argparse.ArgumentParser) -> None:
    """``--force-workers``: overrides the process guard (:func:`wpsim.guards.check_workers`)."""
    from wpsim.guards import MAX_WORKERS_PER_CPU

    p.add_argument(
        "--force-workers",
        action="store_true",
        help=f"start more than {MAX_WORKERS_PER_CPU} workers per CPU anyway (see Limits in "
        "docs/reference/cli.md)",
    )


def check_size(
    args: argparse.Namespace,
    workload: Workload,
    engine: str,
    policy: Any = None,
    workers: int = 0,
    chunk: int | None = None,
) -> SizeEstimate:
    """The size guard of a command (:func:`wpsim.guards.check_size`) with its options;
    ``chunk`` is the one ``--chunk auto`` chose (default: ``--chunk``)."""
    from wpsim.guards import check_chunk
    from wpsim.guards import check_size as guard

    chunk = args.chunk if chunk is None else chunk
    check_chunk(workload, chunk)
    name = f"workload {args.workload}" if args.workload else None
    return guard(
        workload,
        engine,
        policy,
        chunk=chunk,
        granularity=args.granularity,
        workers=workers,
        allow=args.allow_large,
        what=name,
    )


# ---- run and validate: this computer's calibration and --chunk auto ---------------------------


def option_machine(args: argparse.Namespace, required: bool) -> Any:
    """The machine of ``--hardware`` for ``run`` and ``validate``: by default this computer's
    calibration (made first with ``--calibrate``); None for ``run`` (not ``required``) when
    there is none."""
    from wpsim.machines import load_machine
    from wpsim.measure.host import machine_option

    path = machine_option(args.hardware, args.calibrate, required)
    return load_machine(path) if path is not None else None


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
        "--hardware",
        "-m",
        metavar="FILE",
        default="host",
        help=f"machine YAML or a name from hw_configs/ {what} (default: host, the calibration of "
        "this computer made by `wpsim calibrate`)",
    )
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="if there is no calibration of this computer, make a quick one first (about 20 s)",
    )
