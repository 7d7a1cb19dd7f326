"""The ``wpsim`` command line.

Each sub-command lives in a ``_cmd_*`` function registered in :data:`COMMANDS`; errors the user
can fix (:class:`~wpsim.errors.WpsimError`, and bad options) print as one line on stderr with
exit status 2, and Ctrl-C or SIGTERM exit with status 130 after the command has saved what it
finished. The console script enters through :mod:`wpsim.console`, which also catches an
interrupt while these modules load.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from wpsim import __version__
from wpsim.errors import ConfigError, WpsimError
from wpsim.outputs import check_figure, check_output, dumps_json
from wpsim.resources import data_dir
from wpsim.workload import DEFAULT_WORKLOAD, Workload, load_workload

#: The shipped workloads (``workloads/`` of the repository, inside the wheel when installed).
WORKLOAD_DIR = data_dir("workloads")


def resolve_workload(value: str | None) -> Workload:
    """``--workload``: a YAML path, a name from ``workloads/`` (``demo``), or the default."""
    if value is None:
        return DEFAULT_WORKLOAD
    path = Path(value)
    if not path.exists() and path.suffix not in {".yaml", ".yml"}:
        candidate = WORKLOAD_DIR / f"{value}.yaml"
        if candidate.exists():
            path = candidate
    return load_workload(path)


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


# ---- graph -----------------------------------------------------------------------------------


def _add_graph(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "graph",
        help="build a workload's task graph and print its work, span and parallelism",
        description="Build the task graph of a workload and print work, critical path, widest "
        "wavefront and average parallelism. Optionally export GraphML/DOT or draw the grid.",
    )
    add_workload_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--graphml", metavar="FILE", help="write the graph as GraphML")
    p.add_argument("--dot", metavar="FILE", help="write the graph as Graphviz DOT")
    p.add_argument("--plot", metavar="FILE.png", help="draw the layer x time grid")
    p.add_argument("--profile", action="store_true", help="also print the width of each wavefront")
    p.set_defaults(func=_cmd_graph)


def chunk_or_auto(text: str) -> int | str:
    """``--chunk``: a positive integer or ``auto`` (the chunk :mod:`wpsim.tune` chooses)."""
    return "auto" if text == "auto" else positive_int(text)


def add_workload_args(p: argparse.ArgumentParser, chunk_auto: bool = False,
                      chunk_default: int | None = None) -> None:  # fmt: skip
    """The options every command that builds a graph shares (``chunk_auto``: ``--chunk`` may
    be ``auto``, the chunk the closed-form model picks, see :mod:`wpsim.tune`; by default, or
    the ``chunk_default`` given)."""
    p.add_argument(
        "--workload", "-w", metavar="FILE",
        help="workload YAML, or a name from workloads/ (default: the built-in 4-layer LSTM demo)",
    )  # fmt: skip
    p.add_argument(
        "--granularity", choices=["cell", "op"], default="cell",
        help="one task per cell (default) or per op inside the cell",
    )  # fmt: skip
    if chunk_auto:
        default = "auto" if chunk_default is None else chunk_default
        p.add_argument(
            "--chunk", type=chunk_or_auto, default=default, metavar="K",
            help=f"time steps per task, or auto{' (default)' if default == 'auto' else ''}: "
            "the chunk with the lowest predicted makespan on the machine file (a fixed rule "
            "without a calibration)" + ("" if default == "auto" else f"; default {default}"),
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


def resolve_auto(args: argparse.Namespace, workload: Workload, machine, command: str,
                 cores: int | None, helper_groups: bool = True,
                 guard: bool = False) -> tuple[str, Any] | None:  # fmt: skip
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
    from wpsim.hardware import CpuMachine
    from wpsim.policies import get_policy

    policies = args.policy if isinstance(args.policy, list) else [args.policy]
    if "auto" not in policies and args.chunk != "auto":
        return None
    fixed = next((p for p in reversed(policies) if p != "auto"), None)
    options = {k: getattr(args, k) for k in ("helpers", "instances") if hasattr(args, k)}
    policy = None if "auto" in policies else get_policy(fixed, **options)
    if guard:
        _guard_before_choosing(args, workload, policy, cores or 0)
    if policy is not None:  # --chunk auto alone
        choice = tune.choose_chunk(workload, policy, cores or getattr(machine, "total_cores", 1),
                                   machine, granularity=args.granularity)  # fmt: skip
        args.chunk = choice.chunk
        label = "--chunk auto"
        if isinstance(args.policy, list):
            label += f" for {fixed} on {cores} workers"
        return f"{command}: {label}: {choice.describe()}", choice
    if not isinstance(machine, CpuMachine):
        if machine is None:
            from wpsim.host import missing_message

            raise ConfigError(f"--policy auto: {missing_message(calibrate_flag=True)}")
        raise ConfigError(f"--policy auto: machine '{machine.name}' is a {machine.kind}; the "
                          "choice is made for CPU machines (name a policy)")  # fmt: skip
    chunk = None if args.chunk == "auto" else args.chunk
    best = tune.choose(workload, machine, None, cores or machine.total_cores, chunk,
                       args.granularity, helper_groups)  # fmt: skip
    assert best is not None
    if isinstance(args.policy, list):
        args.policy = [best.policy if p == "auto" else p for p in args.policy]
    else:
        args.policy = best.policy
    if hasattr(args, "helpers"):
        args.helpers = best.helpers
    args.chunk = best.chunk
    return (f"{command}: auto: {best.describe()} (lowest predicted makespan on "
            f"'{machine.name}', {best.predicted_s * 1e3:,.3f} ms)"), best  # fmt: skip


def _guard_before_choosing(args: argparse.Namespace, workload: Workload, policy,
                           workers: int) -> None:  # fmt: skip
    """The executor's size guard at the candidate with the smallest estimate (every policy
    :func:`wpsim.tune.choose` searches when ``policy`` is None; every candidate chunk under
    ``--chunk auto``)."""
    from wpsim.guards import estimate
    from wpsim.policies import get_policy
    from wpsim.tune import POLICIES, chunk_candidates

    policies = [policy] if policy is not None else [get_policy(name) for name in POLICIES]
    chunks = chunk_candidates(workload.seq_len) if args.chunk == "auto" else [args.chunk]
    smallest = min(((p, c) for p in policies for c in chunks), key=lambda pc: estimate(
        workload, "run", pc[0], chunk=pc[1], granularity=args.granularity, workers=workers
    ).total_bytes)  # fmt: skip
    check_size(args, workload, "run", smallest[0], workers, chunk=smallest[1])


def add_force_workers(p: argparse.ArgumentParser) -> None:
    """``--force-workers``: overrides the process guard (:func:`wpsim.guards.check_workers`)."""
    from wpsim.guards import MAX_WORKERS_PER_CPU

    p.add_argument(
        "--force-workers", action="store_true",
        help=f"start more than {MAX_WORKERS_PER_CPU} workers per CPU anyway (see Limits in "
        "docs/reference/cli.md)",
    )  # fmt: skip


def check_size(args: argparse.Namespace, workload: Workload, engine: str, policy=None,
               workers: int = 0, chunk: int | None = None):  # fmt: skip
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


def option_machine(args: argparse.Namespace, required: bool):
    """The machine of ``--hardware`` for ``run`` and ``validate``: by default this computer's
    calibration (made first with ``--calibrate``); None for ``run`` (not ``required``) when
    there is none."""
    from wpsim.hardware import load_machine
    from wpsim.host import machine_option

    path = machine_option(args.hardware, args.calibrate, required)
    return load_machine(path) if path is not None else None


def no_calibration_note(command: str) -> str:
    """The line ``run`` prints when ``--chunk auto`` had no calibration to choose with."""
    from wpsim.host import HOW_TO_CALIBRATE, OR_CALIBRATE_FLAG

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


def _cmd_graph(args: argparse.Namespace) -> int:
    from wpsim import analysis, export, graph

    workload = resolve_workload(args.workload)
    for flag, path in (("--graphml", args.graphml), ("--dot", args.dot)):
        if path:
            check_output(path, flag)
    if args.plot:
        check_figure(args.plot, "--plot")
    check_size(args, workload, "graph")
    g = graph.build(workload, granularity=args.granularity, chunk=args.chunk)
    summary = analysis.summarize(g)
    if args.profile:
        summary["profile"] = analysis.parallelism_profile(g)
    if args.graphml:
        export.write_graphml(g, args.graphml, "--graphml")
    if args.dot:
        export.write_dot(g, args.dot, "--dot")
    if args.plot:
        export.plot_grid(g, args.plot, flag="--plot")
    if args.json:
        print_json(summary)
        return 0
    title = (
        f"{workload.name or 'workload'}: {workload.layers}-layer {workload.cell.upper()}"
        f"{' (bidirectional)' if workload.bidirectional else ''}, H={workload.hidden}, "
        f"T={workload.seq_len}, batch {workload.batch}, {workload.phase}; "
        f"{args.granularity} granularity, chunk {args.chunk}"
    )
    print(analysis.format_summary(summary, title))
    if args.profile:
        print("  wavefront widths   " + " ".join(str(x) for x in summary["profile"]))
    for flag, path in (("GraphML", args.graphml), ("DOT", args.dot), ("picture", args.plot)):
        if path:
            print(f"  wrote {flag}: {path}")
    return 0


# ---- registry ---------------------------------------------------------------------------------

#: Sub-command registrars, in the order ``wpsim --help`` lists them. Later modules append theirs.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_graph]


def _load_command_modules() -> None:
    """Import the modules that register further sub-commands (kept out of start-up otherwise)."""
    import importlib

    for name in (
        "wpsim.cli_sim",
        "wpsim.cli_real",
        "wpsim.cli_calibrate",
        "wpsim.cli_sweep",
        "wpsim.cli_tune",
    ):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name != name:
                raise
            continue
        for registrar in getattr(module, "COMMANDS", []):
            if registrar not in COMMANDS:
                COMMANDS.append(registrar)


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="wpsim",
        description="Simulate, model and measure wavefront execution of recurrent neural "
        "networks (RNN, LSTM, GRU) on multi-core machines. Times are in seconds, sizes in bytes.",
    )
    parser.add_argument("--version", action="version", version=f"wpsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _load_command_modules()
    for registrar in COMMANDS:
        registrar(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status (argparse exits itself on bad options: 2)."""
    from wpsim.console import INTERRUPTED, interrupted, sigterm_as_interrupt

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
            print("wpsim: error: out of memory (the size guard's estimate was too low; use a "
                  "smaller workload or a larger --chunk)", file=sys.stderr)  # fmt: skip
            return 2
        except Exception:
            if not interrupted():
                raise
            # an interrupt while a command loads a module may surface as another error
            print("wpsim: interrupted", file=sys.stderr)
            return INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


__all__ = [
    "ArgumentParser",
    "ConfigError",
    "add_force_workers",
    "add_host_args",
    "add_workload_args",
    "build_parser",
    "check_size",
    "main",
    "non_negative_int",
    "option_machine",
    "positive_int",
    "resolve_auto",
    "resolve_workload",
]
