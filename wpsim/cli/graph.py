"""``wpsim graph``: a workload's task graph, its work, span and parallelism."""

from __future__ import annotations

import argparse

from wpsim.cli.common import add_workload_args, check_size, print_json
from wpsim.model.workload import resolve_workload
from wpsim.outputs import check_figure, check_output


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


def _cmd_graph(args: argparse.Namespace) -> int:
    from wpsim.model import analysis, export, graph

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
        f"{workload.name or 'workload'}: {workload.layers}-layer {workload.cell_declaration.label.upper()}"
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


COMMANDS = [_add_graph]
