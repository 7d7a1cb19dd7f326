"""Sub-commands ``calibrate`` (measure this machine) and ``validate`` (measured vs predicted)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from wpsim.cli.common import (
    add_force_workers,
    add_host_args,
    add_workload_args,
    check_size,
    option_machine,
    positive_int,
    print_json,
    resolve_auto,
)
from wpsim.errors import ConfigError
from wpsim.guards import check_workers
from wpsim.model.workload import resolve_workload
from wpsim.outputs import check_output, output_folder


def _int_list(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]`` (positive, no duplicates, order kept)."""
    values: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            value = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated positive integers, got {text!r}"
            ) from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected positive integers, got {value}")
        if value not in values:
            values.append(value)
    return values


def _name_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names, got nothing")
    return list(dict.fromkeys(names))


# ---- calibrate --------------------------------------------------------------------------------


def _cmd_calibrate_runtime(args: argparse.Namespace) -> int:
    from wpsim.measure.calibrate.runtime import calibrate_runtime
    from wpsim.sim.runtime import RUNTIME_DIR

    out = Path(args.out) if args.out else RUNTIME_DIR / f"host_{args.runtime}.yaml"
    if out.exists() and out.is_dir():
        raise ConfigError(f"--out {out}: is a folder, expected a runtime file path (.yaml)")
    quiet = args.json
    document = calibrate_runtime(
        out, quick=args.quick, progress=None if quiet else (lambda line: print(line, flush=True))
    )
    if args.json:
        print_json(
            {"out": str(out), "runtime": {k: v for k, v in document.items() if k != "calibration"}}
        )
        return 0
    print(f"calibrated {out} (use it with --runtime {out})")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from wpsim.machines.host import host_file
    from wpsim.measure.calibrate import calibrate

    if args.runtime:
        return _cmd_calibrate_runtime(args)
    if args.out:
        out = check_output(args.out, "--out")  # before measuring: a minute lost otherwise
    else:  # this computer's entry in the cache, whose folder may not exist yet
        out = host_file()
        output_folder(out.parent, "--out")
        check_output(out, "--out")
    cores = args.cores
    if cores is not None:
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        missing = [c for c in cores if allowed and c not in allowed]
        if missing:
            raise ConfigError(
                f"--cores: CPU {missing[0]} is not one this process may run on (allowed: "
                f"{','.join(map(str, allowed))})"
            )
    quiet = args.json
    result = calibrate(
        out,
        quick=args.quick,
        cores=cores,
        progress=None if quiet else (lambda line: print(line, flush=True)),
    )
    if args.json:
        print_json({"out": str(out), "values": result.values})
        return 0
    v = result.values
    print(f"calibrated {out}:")
    rows = [
        (
            "peak fp32 / core",
            f"{v['peak_flops_per_core'] / 1e9:.1f} GFLOP/s (clock {v['clock_hz'] / 1e9:.2f} GHz)",
        ),
        (
            "GEMM efficiency",
            ", ".join(f"n={k[6:]} {x:.2f}" for k, x in v.items() if k.startswith("gemm_n")),
        ),
        ("element-wise", f"{v['elementwise']:.4f} of peak"),
        (
            "bandwidth",
            ", ".join(
                f"{k.split('_')[0]} {x / 1e9:.1f}"
                for k, x in v.items()
                if k.endswith("_bandwidth_Bps") and not k.startswith("handoff")
            )
            + f", DRAM {v['dram_per_core_Bps'] / 1e9:.1f} (1 core) / {v['dram_socket_Bps'] / 1e9:.1f} (all) GB/s",
        ),
        (
            "hand-off",
            f"{v['handoff_latency_s'] * 1e6:.2f} us + bytes / {v['handoff_bandwidth_Bps'] / 1e9:.1f} GB/s",
        ),
        ("dispatch", f"{v['dispatch_overhead_s'] * 1e6:.1f} us per task"),
        ("co-running", f"+{100 * v['corun_slowdown_per_core']:.1f}% per additional busy core"),
    ]
    if "barrier2_s" in v:
        rows.insert(5, ("barrier (2)", f"{v['barrier2_s'] * 1e6:.2f} us"))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    return 0


def _add_calibrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "calibrate",
        help="measure this machine and write its machine file",
        description="Measure this machine (GEMM and element-wise efficiency of the kernels' "
        "shapes, cache and DRAM bandwidth, hand-off, barrier, dispatch, co-running slowdown) and "
        "write a machine YAML in which every measured number says how it was measured, plus a "
        "calibration block (date, CPU, numpy, BLAS, raw data). Takes about a minute (--quick: "
        "about 15 s). Ctrl-C leaves the previous file untouched.",
    )
    p.add_argument(
        "--out",
        "-o",
        metavar="FILE",
        help="machine file to write (default: this computer's entry in the user's "
        "cache, which `-m host` and the defaults of run and validate read; with "
        "--runtime: hw_configs/runtimes/host_NAME.yaml)",
    )
    p.add_argument(
        "--runtime",
        choices=["torch"],
        help="measure a framework's RNN runtime instead of the machine and write a "
        "runtime file (wpsim.sim.runtime): torch = PyTorch's nn.RNN/LSTM/GRU, one thread",
    )
    p.add_argument("--quick", action="store_true", help="fewer shapes and repeats (for tests)")
    p.add_argument(
        "--cores",
        type=_int_list,
        metavar="A,B,...",
        help="cores to measure on (default: every core this process may use)",
    )
    p.add_argument("--json", action="store_true", help="no progress; print the values as JSON")
    p.set_defaults(func=_cmd_calibrate)


# ---- validate ---------------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace) -> int:
    from wpsim.machines.cpu import CpuMachine
    from wpsim.measure.validate import format_report, validate
    from wpsim.policies import get_policy, known

    if args.granularity != "cell":
        raise ConfigError(
            f"--granularity {args.granularity}: validate runs the real executor, which runs cell "
            "tasks only"
        )
    if args.measured:
        return _validate_measured(args)
    from wpsim.measure.validate import parse_configs

    for flag in ("workers", "policies", "repeats", "chunk"):
        if getattr(args, flag) is None:
            setattr(args, flag, VALIDATE_DEFAULTS[flag])
    workload = resolve_workload(args.workload)
    check_workers(max(args.workers), "--workers", args.force_workers, "wpsim validate")
    if args.out:
        output_folder(args.out, "--out")  # before measuring (a calibration with --calibrate too)
    machine = option_machine(args, required=True)
    if isinstance(machine, CpuMachine):  # bad arguments fail before any warning
        # auto stands for a policy chosen below (sequential, the baseline, runs anyway)
        parse_configs(
            [p for p in args.policies if p != "auto"] or ["sequential"], args.workers, machine
        )
    args.policy = args.policies  # auto: chosen for the most workers, on one core per cell or all
    auto = resolve_auto(
        args, workload, machine, "validate", max(args.workers), helper_groups=False, guard=True
    )
    args.policies = list(dict.fromkeys(args.policy))
    for name in args.policies:
        if known(name):  # unknown names: validate says so
            policy = get_policy(name)
            check_size(args, workload, "run", policy, max(args.workers))
            check_size(args, workload, "simulate", policy)
    from wpsim.measure.calibrate.spec import calibration_mismatch

    mismatch = calibration_mismatch(machine)
    if mismatch:
        print(f"wpsim validate: warning: {mismatch}", file=sys.stderr, flush=True)
    progress = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    if auto is not None:
        print(auto[0], file=sys.stderr, flush=True)
    report = validate(
        workload,
        machine,
        workers=args.workers,
        policies=args.policies,
        chunk=args.chunk,
        repeats=args.repeats,
        out_dir=args.out,
        progress=progress,
    )
    if args.json:
        print_json(report.to_dict())
        return 0
    print(format_report(report))
    return 0


#: the defaults of the options that choose what the executor runs (not used with --measured)
VALIDATE_DEFAULTS = {
    "workers": [1, 2],
    "policies": ["sequential", "wavefront"],
    "repeats": 3,
    "chunk": "auto",
}


def _validate_measured(args: argparse.Namespace) -> int:
    """``validate --measured FILE``: measurements made elsewhere against simulations."""
    from wpsim.measure.host import machine_option
    from wpsim.measure.validate import format_report, validate_measured

    for flag in ("workers", "policies", "repeats"):
        if getattr(args, flag) is not None:
            raise ConfigError(
                f"--{flag}: not used with --measured (the file says what ran and how often)"
            )
    if args.chunk == "auto":
        raise ConfigError(
            "--chunk auto: not with --measured (give the chunk the measured runs "
            "used, or leave it out for 1)"
        )
    if args.out is not None and Path(args.out).exists() and not Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out}: not a folder")
    workload = resolve_workload(args.workload)
    if args.calibrate:  # the default machine of the rows: made now if missing
        machine_option(args.hardware, args.calibrate, required=True)
    # the runs were made elsewhere with their own chunk (the file's column): there is nothing
    # to choose, so rows without one ran one step per task unless --chunk says otherwise
    chunk = 1 if args.chunk is None else args.chunk
    progress = None if args.json else (lambda line: print(line, file=sys.stderr, flush=True))
    reports = validate_measured(
        args.measured, workload, args.hardware, chunk=chunk, out_dir=args.out, progress=progress
    )
    if args.json:
        dicts = [report.to_dict() for report in reports]
        print_json(dicts[0] if len(dicts) == 1 else {"reports": dicts})
        return 0
    print("\n\n".join(format_report(report) for report in reports))
    return 0


def _add_validate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "validate",
        help="run the real executor and the simulator side by side",
        description="Run a workload with the real multi-process executor (median of repeats) and "
        "simulate it with the same graph, policy, worker count and chunk on a machine file; print "
        "measured and predicted makespan and speed-up (against the 1-worker sequential run of "
        "each), the relative error of the predicted speed-up, and a task-by-task comparison by "
        "kind and layer. With --out: validation.csv, per_kind.csv and one side-by-side Gantt per "
        "configuration (measured above, simulated below).",
    )
    add_workload_args(p, chunk_auto=True)
    p.set_defaults(chunk=None)  # auto, or 1 with --measured (see VALIDATE_DEFAULTS)
    add_host_args(p, "to predict with")
    p.add_argument(
        "--workers", type=_int_list, metavar="N,N,...", help="worker counts (default: 1,2)"
    )
    p.add_argument(
        "--policies",
        type=_name_list,
        metavar="A,B,...",
        help="policies (default: sequential,wavefront); auto: the one with the lowest "
        "predicted makespan on the most workers (wpsim tune)",
    )
    p.add_argument(
        "--repeats",
        type=positive_int,
        metavar="R",
        help="measured runs per configuration; the median is used (default: 3)",
    )
    p.add_argument(
        "--measured",
        metavar="FILE",
        help="compare with measurements made elsewhere instead of running the executor: "
        "a CSV (policy, workers or threads, seconds or trace; optional workload, "
        "workload fields, machine, chunk, helpers) or a Chrome/Perfetto trace whose "
        "events named 'wpsim key=value ...' are the timed runs (torch.profiler "
        "record_function; rows without a chunk ran --chunk, default 1); see "
        "docs/reference/validate.md",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object with 'rows' and 'per_kind' (--measured with "
        "several comparisons: {'reports': [...]})",
    )
    p.add_argument("--out", "-o", metavar="DIR", help="write the CSVs and Gantt charts here")
    add_force_workers(p)
    p.set_defaults(func=_cmd_validate)


COMMANDS = [_add_calibrate, _add_validate]
