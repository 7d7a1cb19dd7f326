"""Sub-command ``tune``: which schedule to use for a workload on a machine (:mod:`wpsim.tune`)."""

from __future__ import annotations

import argparse

from wpsim.cli.common import add_host_args, chunk_or_auto, option_machine, positive_int, print_json
from wpsim.model.workload import resolve_workload


def _cmd_tune(args: argparse.Namespace) -> int:
    from wpsim.tune import format_tuning, tune

    workload = resolve_workload(args.workload)
    machine = option_machine(args, required=True)
    policies = args.policies.split(",") if args.policies else None
    if policies:
        from wpsim.policies import get_policy

        for name in policies:
            get_policy(name)  # an unknown name: one line, before the search
    chunks = None if args.chunk == "auto" else [args.chunk]
    helpers = None if args.helpers is None else [args.helpers]
    if args.confirm:
        from wpsim.guards import check_workers

        check_workers(args.workers or machine.total_cores, "--workers", command="wpsim tune")
    tuning = tune(
        workload,
        machine,
        policies,
        max_workers=args.workers,
        chunks=chunks,
        helpers=helpers,
        granularity=args.granularity,
        simulate=args.simulate,
        confirm_best=args.confirm,
        repeats=args.repeats,
        rounds=args.rounds,
    )
    if args.json:
        print_json(tuning.to_dict())
        return 0
    print(format_tuning(tuning, top=args.top))
    return 0


def _add_tune(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="choose the schedule (policy, chunk, helper groups, workers) for a workload",
        description="Search policy x chunk x helper-group size x workers with the closed forms, "
        "simulate the best few, choose the fastest simulated, and print the ranking with "
        "predicted times, the chosen schedule and why it wins (its makespan by cause against the "
        "best schedule of another policy). --confirm times the best on this computer with the "
        "real executor.",
    )
    p.add_argument(
        "--workload",
        "-w",
        metavar="FILE",
        help="workload YAML, or a name from workloads/ (default: the built-in 4-layer LSTM demo)",
    )
    add_host_args(p, "to tune for")
    p.add_argument(
        "--policies",
        metavar="A,B,...",
        help="only these policies (default: wavefront, pipeline, helper, layerwise, sequential)",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        metavar="N",
        help="at most N workers (default: every core of the machine)",
    )
    p.add_argument(
        "--chunk",
        type=chunk_or_auto,
        default="auto",
        metavar="K",
        help="time steps per task, or auto (default): searched",
    )
    p.add_argument(
        "--helpers",
        type=positive_int,
        metavar="K",
        help="cores per helper group (default: searched)",
    )
    p.add_argument("--granularity", choices=["cell"], default="cell", help=argparse.SUPPRESS)
    p.add_argument(
        "--simulate",
        type=int,
        default=3,
        metavar="N",
        help="simulate the best N predicted and choose the fastest simulated "
        "(default 3; 0: the closed forms alone)",
    )
    p.add_argument(
        "--top",
        type=positive_int,
        default=10,
        metavar="N",
        help="rows of the ranking to print (default 10)",
    )
    p.add_argument(
        "--confirm",
        type=int,
        nargs="?",
        const=4,
        default=0,
        metavar="N",
        help="then time the chosen schedule and the best of each other shape "
        "(policy, helper groups, workers), N in all (default 4), with the real "
        "executor on this computer, and choose the fastest measured",
    )
    p.add_argument(
        "--repeats",
        type=positive_int,
        default=3,
        metavar="R",
        help="timed runs of each with --confirm, after one warm-up (default 3)",
    )
    p.add_argument(
        "--rounds",
        type=positive_int,
        default=1,
        metavar="R",
        help="with --confirm, time the schedules in turn R times (default 1)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_tune)


COMMANDS = [_add_tune]
