"""Sub-command ``run``: execute a workload for real with the multi-process executor."""

from __future__ import annotations

import argparse
import sys

from wpsim.cli.common import (
    add_force_workers,
    add_host_args,
    add_workload_args,
    check_size,
    no_calibration_note,
    non_negative_int,
    option_machine,
    positive_int,
    print_json,
    resolve_auto,
)
from wpsim.guards import check_workers, cpu_count
from wpsim.model.workload import resolve_workload
from wpsim.outputs import check_output


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}") from None
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text}")
    return value


def _cmd_run(args: argparse.Namespace) -> int:
    from kernels.executor import execute
    from wpsim.policies import get_policy
    from wpsim.tune import ChunkChoice

    workload = resolve_workload(args.workload)
    if args.trace:
        check_output(args.trace, "--trace")
    if args.policy != "auto":  # a bad policy fails before any calibration
        get_policy(args.policy, helpers=args.helpers, instances=args.instances)
    workers = args.workers or cpu_count()
    check_workers(workers, "--workers", args.force_workers, "wpsim run")
    chunk_auto = args.chunk == "auto"
    machine = option_machine(args, required=args.policy == "auto")
    auto = resolve_auto(args, workload, machine, "run", workers, guard=True)
    policy = get_policy(args.policy, helpers=args.helpers, instances=args.instances)
    check_size(args, workload, "run", policy, workers)
    if auto is not None:  # with the output; on stderr under --json (stdout: one JSON object)
        print(auto[0], file=sys.stderr if args.json else sys.stdout, flush=True)
    result = execute(
        workload,
        policy,
        workers,
        chunk=args.chunk,
        seed=args.seed,
        repeats=args.repeats,
        warmup=args.warmup,
        granularity=args.granularity,
        stall_timeout_s=args.stall_timeout,
    )
    if chunk_auto and machine is None:  # said after the run: bad input stays one line
        print(no_calibration_note("run"), file=sys.stderr, flush=True)
    assert result.trace is not None and result.tasks is not None  # a measured run has both
    if args.trace:
        layers = [t.layer for t in result.tasks]
        result.trace.to_chrome(
            args.trace,
            result.labels,
            layers,
            process_name=f"wpsim run {result.policy}",
            flag="--trace",
        )
    if args.json:
        summary = result.to_dict()
        if auto is not None:
            choice = auto[1]
            key = "chunk_choice" if isinstance(choice, ChunkChoice) else "schedule_choice"
            summary[key] = choice.to_dict()
        if args.trace:
            summary["trace_file"] = args.trace
        print_json(summary)
        return 0

    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:,.3f} ms"

    measured = result.extra
    times = ", ".join(f"{t * 1e3:.3f}" for t in measured["makespans_s"])
    workers_started = measured["workers_started"]
    rows = [
        ("makespan", f"{ms(result.makespan_s)}  (median of {measured['repeats']})"),
        ("repeats", f"{times} ms"),
        ("work", f"{ms(measured['work_s'])}  (task time x group size, summed)"),
        ("utilisation", f"{100 * result.utilization:.0f}% mean over {workers_started} workers"),
        ("tasks", f"{result.n_tasks:,} (chunk {measured['chunk']})"),
        (
            "start-up",
            f"{ms(measured['startup_s'])}  ({measured['start_method']}, not in the makespan)",
        ),
    ]
    width = max(len(k) for k, _ in rows)
    print(
        f"run: {workload.name or 'workload'}, policy {result.policy}, {workers} workers "
        f"(groups {' '.join('+'.join(map(str, g)) for g in measured['groups'])})"
    )
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    if args.trace:
        print(f"  wrote trace: {args.trace}")
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    from wpsim.policies import available

    p = sub.add_parser(
        "run",
        help="execute a workload for real (numpy, N worker processes) under a policy",
        description="Run the policy's task graph with real numpy kernels on N worker processes "
        "(shared memory, one BLAS thread each) and report the measured makespan; --trace writes "
        "a Chrome trace in the simulator's schema, for `wpsim validate`.",
    )
    add_workload_args(p, chunk_auto=True)
    add_host_args(p, "to choose the policy and chunk with")
    p.add_argument(
        "--policy",
        "-p",
        default="wavefront",
        metavar="NAME",
        help=f"scheduling policy: {', '.join(available())}, FILE.py:Class, or auto: the one with "
        "the lowest predicted makespan (wpsim tune; default: wavefront)",
    )
    p.add_argument(
        "--workers",
        "-n",
        type=positive_int,
        metavar="N",
        help="worker processes (default: the CPU count)",
    )
    p.add_argument(
        "--helpers",
        type=positive_int,
        metavar="K",
        help="split each cell across groups of K workers (wavefront, pipeline, helper)",
    )
    p.add_argument(
        "--instances",
        type=positive_int,
        default=1,
        metavar="N",
        help="independent workload instances (multiprogram; default 1)",
    )
    p.add_argument(
        "--repeats",
        "-r",
        type=positive_int,
        default=1,
        metavar="R",
        help="timed runs with the same workers; the makespan is their median (default 1)",
    )
    p.add_argument(
        "--warmup",
        type=non_negative_int,
        default=1,
        metavar="W",
        help="untimed runs first (default 1)",
    )
    p.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the parameters and input, an integer >= 0 (default 0)",
    )
    add_force_workers(p)
    p.add_argument(
        "--stall-timeout",
        type=positive_seconds,
        metavar="SECONDS",
        help="end the run when a worker makes no progress for this long (default: "
        "from the task's predicted length, at least 10 s)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--trace", metavar="FILE.json", help="write a Chrome trace with task labels")
    p.set_defaults(func=_cmd_run)


COMMANDS = [_add_run]
