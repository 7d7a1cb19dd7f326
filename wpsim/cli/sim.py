"""Sub-commands ``simulate``, ``predict``, ``compare`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from wpsim.cli.common import (
    add_workload_args,
    check_size,
    positive_int,
    print_json,
    resolve_auto,
)
from wpsim.machines import load_machine, resolve_machine_path
from wpsim.machines.cpu import CpuMachine
from wpsim.model.workload import resolve_workload
from wpsim.outputs import check_figure, check_output
from wpsim.result import Result

if TYPE_CHECKING:
    from wpsim.model.workload import Workload
    from wpsim.policies import Policy
    from wpsim.sim.runtime import Runtime

DEFAULT_HARDWARE = "xeon8160_2s"


def add_machine_args(p: argparse.ArgumentParser, policy: bool = True) -> None:
    from wpsim.policies import available

    p.add_argument(
        "--hardware",
        "-m",
        metavar="FILE",
        default=DEFAULT_HARDWARE,
        help=f"machine YAML, or a name from hw_configs/ (default: {DEFAULT_HARDWARE})",
    )
    if policy:
        p.add_argument(
            "--policy",
            "-p",
            default="wavefront",
            metavar="NAME",
            help=f"scheduling policy: {', '.join(available())}, FILE.py:Class, or auto: the one "
            "with the lowest predicted makespan (wpsim tune; default: wavefront)",
        )
    p.add_argument(
        "--cores", type=positive_int, metavar="N", help="use the first N cores (default: all)"
    )
    p.add_argument(
        "--helpers",
        type=positive_int,
        metavar="K",
        help="split each cell across groups of K cores (wavefront, pipeline, helper)",
    )
    p.add_argument(
        "--instances",
        type=positive_int,
        default=1,
        metavar="N",
        help="independent workload instances (multiprogram; default 1)",
    )
    p.add_argument(
        "--cost",
        choices=["model", "ideal"],
        default="model",
        help="full cost model (default) or idealised flops-only costs",
    )
    p.add_argument(
        "--runtime",
        "-r",
        metavar="NAME",
        default="lean",
        help="the software that runs the RNN: a runtime YAML, or a name from "
        "hw_configs/runtimes/ (e.g. pytorch_eager_cpu, cudnn_standard); default lean: "
        "the machine's own model, no framework costs",
    )


def make_policy(args: argparse.Namespace, name: str | None = None) -> Policy:
    from wpsim.policies import get_policy

    return get_policy(name or args.policy, helpers=args.helpers, instances=args.instances)


def load_hardware(value: str) -> Any:
    return load_machine(resolve_machine_path(value))


def load_runtime(value: str | None) -> Runtime | None:
    from wpsim.sim.runtime import load_runtime as load

    return load(value)


#: graphs from this many tasks on report their phases on stderr (building one takes seconds)
PROGRESS_MIN_TASKS = 100_000


def _run(args: argparse.Namespace, engine: str) -> Result:
    from wpsim.model.analysis import closed_form_n_tasks
    from wpsim.sim import evaluate as by_kind

    workload = resolve_workload(args.workload)
    machine = load_hardware(args.hardware)
    auto = resolve_auto(args, workload, machine, engine, args.cores)
    if auto is not None:
        print(auto[0], file=sys.stderr, flush=True)
    policy = make_policy(args)
    if getattr(args, "trace", None):
        check_output(args.trace, "--trace")
    if getattr(args, "gantt", None):
        check_figure(args.gantt, "--gantt")
    check_size(args, workload, engine, policy)
    options = dict(
        cores=args.cores,
        chunk=args.chunk,
        granularity=args.granularity,
        cost=args.cost,
        runtime=load_runtime(args.runtime),
    )
    large = closed_form_n_tasks(workload, args.chunk) >= PROGRESS_MIN_TASKS
    if engine == "simulate" and isinstance(machine, CpuMachine) and large:
        options["progress"] = lambda line: print(f"simulate: {line}", file=sys.stderr, flush=True)
    return by_kind.evaluate(engine, workload, machine, policy, **options)


def format_result(result: Result, workload: Workload, title: str) -> str:
    def ms(seconds: float) -> str:
        return f"{seconds * 1e3:,.3f} ms"

    lines = [title]
    rows = [
        ("makespan", ms(result.makespan_s)),
        ("sequential", f"{ms(result.sequential_s)}  (one core, same workload)"),
        ("speed-up", f"{result.speedup:.2f}x"),
        ("utilisation", f"{100 * result.utilization:.0f}% mean over {result.cores} cores"),
        ("tasks", f"{result.n_tasks:,}"),
    ]
    traffic = ", ".join(
        f"{name} {nbytes / 1e6:,.1f} MB" for name, nbytes in result.level_bytes.items() if nbytes
    )
    if traffic:
        rows.append(("bytes moved", traffic))
    for key in ("runtime", "max_persistent_hidden", "note"):
        if key in result.extra:
            rows.append((key.replace("_", " "), str(result.extra[key])))
    width = max(len(k) for k, _ in rows)
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    if result.breakdown_s:
        from wpsim.breakdown import format_lines

        views = [
            ("critical path", result.breakdown_s),
            ("mean over cores", result.core_breakdown_s),
        ]
        lines += format_lines(views, result.makespan_s)
    return "\n".join(lines)


def _emit(args: argparse.Namespace, result: Result, engine: str) -> int:
    workload = resolve_workload(args.workload)
    if getattr(args, "trace", None) or getattr(args, "gantt", None):
        tasks, trace = result.tasks, result.trace
        assert tasks is not None and trace is not None  # (simulate's options: it records both)
        labels = [t.label for t in tasks]
        if args.trace:
            trace.to_chrome(
                args.trace,
                labels,
                [t.layer for t in tasks],
                f"wpsim {result.policy}",
                flag="--trace",
            )
        if args.gantt:
            from wpsim.plots import save_schedule_figure

            machine = load_hardware(args.hardware)
            level_bw = (
                {c.name: c.bandwidth_Bps for c in machine.caches}
                if isinstance(machine, CpuMachine)
                else None
            )
            title = f"{workload.name or 'workload'}: {result.policy} on {result.cores} cores"
            n_layers = workload.layers + (1 if workload.output != "none" else 0)
            save_schedule_figure(
                args.gantt,
                trace,
                tasks,
                title,
                n_layers,
                result.cores,
                args.gantt_by,
                level_bw,
                flag="--gantt",
            )
    if args.json:
        print_json(result.to_dict())
        return 0
    title = (
        f"{engine}: {workload.name or 'workload'} on {result.extra.get('machine', '?')}, "
        f"policy {result.policy}, {result.cores} cores"
    )
    print(format_result(result, workload, title))
    for flag in ("trace", "gantt"):
        path = getattr(args, flag, None)
        if path:
            print(f"  wrote {flag}: {path}")
    return 0


def _add_simulate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate a workload on a machine under a policy (simpy)",
        description="Discrete-event simulation with the full cost model: caches, "
        "DRAM bandwidth sharing, hand-offs, barriers. Prints makespan, speed-up over one "
        "core, utilisation and traffic per memory level.",
    )
    add_workload_args(p, chunk_auto=True, chunk_default=1)
    add_machine_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--trace", metavar="FILE.json", help="write a Chrome trace (Perfetto, chrome://tracing)"
    )
    p.add_argument(
        "--gantt", metavar="FILE.png", help="draw a Gantt chart and a wavefront heat map"
    )
    p.add_argument(
        "--gantt-by",
        choices=["layer", "cause"],
        default="layer",
        help="colour the Gantt chart's tasks by layer (default) or split each into "
        "its time by cause (compute, memory by level, hand-off, sync, dispatch)",
    )
    p.set_defaults(func=lambda a: _emit(a, _run(a, "simulate"), "simulate"))


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="closed-form (analytic) prediction, same options as simulate",
        description="Closed-form makespan from the steady-state cost of each task; "
        "thousands of times faster than simulate, for sweeps.",
    )
    add_workload_args(p, chunk_auto=True, chunk_default=1)
    add_machine_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=lambda a: _emit(a, _run(a, "predict"), "predict"), trace=None, gantt=None)


def _cmd_compare(args: argparse.Namespace) -> int:
    from wpsim.sim import evaluate as by_kind

    workload = resolve_workload(args.workload)
    machine = load_hardware(args.hardware)
    names = by_kind.policies_for(machine) if not args.policies else args.policies.split(",")
    engine = "predict" if args.analytic else "simulate"
    for name in names:  # every policy's graph, before any is built
        check_size(
            args, workload, "predict" if args.analytic else "compare", make_policy(args, name)
        )
    results = {}
    options = dict(
        cores=args.cores,
        chunk=args.chunk,
        granularity=args.granularity,
        cost=args.cost,
        runtime=load_runtime(args.runtime),
    )
    for name in names:
        policy = make_policy(args, name)
        results[name] = by_kind.evaluate(engine, workload, machine, policy, **options)
        if engine == "simulate" and isinstance(machine, CpuMachine):
            # every policy's speed-up has the same baseline: simulate it once
            # (without a runtime's serial terms, which every result adds once)
            options["sequential_s"] = results[name].sequential_s - results[name].extra.get(
                "runtime_serial_s", 0.0
            )
    baseline = results.get("layerwise")
    if args.json:
        rows = []
        for r in results.values():
            row = r.to_dict()
            row["speedup_vs_layerwise"] = baseline.makespan_s / r.makespan_s if baseline else None
            rows.append(row)
        print_json({"workload": workload.name, "machine": machine.name, "rows": rows})
        return 0
    cores = results[names[0]].cores
    runtime = options["runtime"]
    under = (
        f", runtime {runtime.name} (every policy, the layerwise baseline too)" if runtime else ""
    )
    print(
        f"{engine}: {workload.name or 'workload'} on {machine.name}, {cores} cores, "
        f"chunk {args.chunk}{under}"
    )
    width = max(14, *(len(r.policy) + 2 for r in results.values()))
    header = f"  {'policy':<{width}}{'makespan':>14}{'vs sequential':>15}{'vs layerwise':>14}{'DRAM':>12}{'util':>7}"
    print(header)
    print("  " + "-" * (len(header) - 2))
    for r in results.values():
        vs_lw = f"{baseline.makespan_s / r.makespan_s:.2f}x" if baseline else "-"
        print(
            f"  {r.policy:<{width}}{r.makespan_s * 1e3:>11.3f} ms{r.speedup:>14.2f}x{vs_lw:>14}"
            f"{r.dram_bytes / 1e6:>9.1f} MB{100 * r.utilization:>6.0f}%"
        )
    return 0


def _add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="every policy side by side on one workload and machine",
        description="Simulate (or predict) every policy and print makespan, speed-up "
        "against one core and against layerwise, DRAM traffic and utilisation.",
    )
    add_workload_args(p)
    add_machine_args(p, policy=False)
    p.add_argument(
        "--policies", metavar="A,B,...", help="only these policies (names or FILE.py:Class)"
    )
    p.add_argument(
        "--analytic", action="store_true", help="use the closed forms instead of simulating"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object with 'rows'")
    p.set_defaults(func=_cmd_compare)


COMMANDS = [_add_simulate, _add_predict, _add_compare]
