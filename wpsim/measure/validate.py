"""Measured against predicted: the real executor and the simulator on the same graph.

:func:`validate` runs a workload with :func:`kernels.executor.execute` and simulates it with
:func:`wpsim.sim.engine.simulate` for every (policy, workers) configuration, with the same graph
(``policy.graph_options``), the same policy, ``cores = workers`` and the same chunk, and compares:

* **makespan** and **speed-up**, each speed-up against the 1-worker ``sequential`` run of the
  same engine (measured against measured, predicted against predicted); the relative error of
  the predicted speed-up is ``|predicted - measured| / measured``;
* **why**: the predicted makespan by cause along its critical path (:mod:`wpsim.breakdown`),
  and the share of the workers' time spent idle, measured and predicted (mean over workers);
* **task by task**: for every (configuration, task kind, layer) the mean measured task duration
  against the mean simulated one. The executor times the kernel only (from the worker picking up
  the task to its end), so the simulated duration is taken without the model's dispatch overhead
  (hand-off and synchronisation stay: the executor's worker reads the hidden state from shared
  memory inside the task). The executor's own dispatch latency is reported per configuration:
  the time from a task being runnable on a free worker (its predecessors done, its worker idle)
  to its start.

Noise: the measured runs are interleaved (round r runs every configuration once: one executor
call with a warm-up run and 2-5 timed runs, their median), the makespan is the median over rounds, and the measured speed-up is the median
over rounds of the paired ratio baseline / configuration, which cancels drift slower than a
round.

:func:`validate_measured` compares predictions with measurements made elsewhere instead (a CSV
or a Trace Event Format file, :mod:`wpsim.measure.measured`): the same rows, without the executor's
task-by-task comparison and dispatch latency, which need its own trace.

Examples
--------
>>> from wpsim.model.workload import Workload
>>> from wpsim.machines import load_machine, resolve_machine_path
>>> w = Workload(cell="rnn", layers=2, hidden=16, input=16, seq_len=8)
>>> report = validate(w, load_machine(resolve_machine_path("host")), workers=[1, 2],
...                   policies=["wavefront"], repeats=1)  # doctest: +SKIP
>>> sorted(report.rows[0])[:3]  # doctest: +SKIP
['chunk', 'measured_dispatch_s', 'measured_makespan_s']
"""

from __future__ import annotations

import csv
import math
import re
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wpsim.errors import ConfigError
from wpsim.machines.cpu import CpuMachine
from wpsim.model.workload import Workload
from wpsim.outputs import atomic_write, dumps_json, open_output, output_folder
from wpsim.trace import Trace

BASELINE = ("sequential", 1)
ROW_KEYS = (
    "policy",
    "workers",
    "chunk",
    "measured_makespan_s",
    "predicted_makespan_s",
    "measured_speedup",
    "predicted_speedup",
    "rel_error",
    "signed_error",
    "n_tasks",
    "measured_busy_s",
    "predicted_busy_s",
    "measured_dispatch_s",
    "model_dispatch_s",
    "baseline",
)
#: what the rows say about why (after ROW_KEYS in validation.csv, then ``predicted.<cause>_s``)
WHY_KEYS = ("measured_idle_share", "predicted_idle_share")
KIND_KEYS = (
    "policy",
    "workers",
    "kind",
    "layer",
    "n",
    "measured_mean_s",
    "simulated_mean_s",
    "ratio",
)

Progress = Callable[[str], None]
#: graphs from this many tasks report each simulation of ``validate_measured`` to ``progress``
PROGRESS_MIN_TASKS = 10_000


@dataclass
class ValidationReport:
    """Rows per configuration, the task-by-task comparison, and the files written."""

    workload: Workload
    machine: str
    chunk: int
    repeats: int
    rows: list[dict[str, Any]]
    per_kind: list[dict[str, Any]]
    files: list[str] = field(default_factory=list)
    measured_file: str | None = None  # measurements made elsewhere (validate --measured)

    @property
    def errors(self) -> list[float]:
        """Relative errors of the predicted speed-up, baseline row excluded."""
        return [r["rel_error"] for r in self.rows if not r["baseline"]]

    def summary(self) -> dict[str, float]:
        errors = self.errors
        if not errors:
            return {"n": 0, "mean_rel_error": 0.0, "max_rel_error": 0.0}
        return {
            "n": len(errors),
            "mean_rel_error": sum(errors) / len(errors),
            "max_rel_error": max(errors),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "workload": self.workload.name,
            "workload_spec": self.workload.model_dump(),
            "machine": self.machine,
            "chunk": self.chunk,
            "repeats": self.repeats,
            "rows": self.rows,
            "per_kind": self.per_kind,
            "summary": self.summary(),
            "files": self.files,
            **({"measured_file": self.measured_file} if self.measured_file else {}),
        }


def parse_configs(
    policies: Sequence[str], workers: Sequence[int], machine: CpuMachine
) -> list[tuple[str, int]]:
    """Validated (policy, workers) pairs, the baseline first.

    Raises
    ------
    ConfigError
        Unknown policy, a worker count the machine does not have, or nothing to run.
    """
    from wpsim.policies import available, get_policy, known

    if not policies:
        raise ConfigError("--policies: expected at least one policy")
    if not workers:
        raise ConfigError("--workers: expected at least one worker count")
    for name in policies:
        if not known(name):
            raise ConfigError(
                f"--policies: got {name!r}, expected some of {', '.join(available())} "
                "(or FILE.py:Class)"
            )
    for n in workers:
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ConfigError(f"--workers: got {n!r}, expected positive integers")
        if n > machine.total_cores:
            raise ConfigError(
                f"--workers {n}: machine '{machine.name}' has {machine.total_cores} cores "
                "(the simulator needs cores = workers)"
            )
        machine.with_cores(n)  # whole sockets, or a one-line ConfigError
    configs = [BASELINE]
    for name in policies:
        for n in workers:
            if (name, n) == BASELINE:
                continue
            get_policy(name).core_groups(n)  # e.g. helpers > workers: a one-line ConfigError
            configs.append((name, n))
    return configs


def _ready_latencies(trace: Trace, preds: Sequence[Sequence[int]]) -> list[float]:
    """Per task: start minus the moment it could have started (preds done and its group free)."""
    end_of = {tid: trace.end_s[i] for i, tid in enumerate(trace.task)}
    free_at: dict[tuple[int, ...], float] = {}
    order = sorted(range(len(trace)), key=lambda i: trace.start_s[i])
    out = []
    for i in order:
        tid = trace.task[i]
        group = tuple(trace.cores[i])
        ready = max([end_of[p] for p in preds[tid]], default=0.0)
        since = max(ready, free_at.get(group, 0.0))
        out.append(trace.start_s[i] - since)
        free_at[group] = trace.end_s[i]
    return out


def simulate_with_dispatch(
    workload: Workload,
    machine: CpuMachine,
    policy: Any,
    cores: int,
    chunk: int,
    sequential_s: float | None = None,
) -> tuple[Any, list[float]]:
    """:func:`wpsim.sim.engine.simulate`, and the dispatch overhead the cost model charged each
    record of its trace (in trace order: its ``dispatch_s`` column).

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> m = load_machine(resolve_machine_path("desktop8"))
    >>> w = Workload(cell="rnn", layers=1, hidden=8, input=8, seq_len=3)
    >>> _, charged = simulate_with_dispatch(w, m, "sequential", 1, 1)
    >>> charged == [m.dispatch_overhead_s] * 3
    True
    """
    from wpsim.sim.engine import simulate

    sim = simulate(workload, machine, policy, cores=cores, chunk=chunk, sequential_s=sequential_s)
    assert sim.trace is not None  # a simulation keeps its trace
    return sim, list(sim.trace.dispatch_s)


def _per_kind(
    measured: Trace, simulated: Trace, tasks: Sequence[Any], dispatch_s: Sequence[float]
) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int], list[list[float]]] = {}
    for trace, slot, offsets in (
        (measured, 0, [0.0] * len(measured)),
        (simulated, 1, dispatch_s),
    ):
        for i, tid in enumerate(trace.task):
            task = tasks[tid]
            entry = groups.setdefault((task.kind, task.layer), [[], []])
            entry[slot].append(trace.end_s[i] - trace.start_s[i] - offsets[i])
    rows = []
    for (kind, layer), (meas, sim) in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        m = statistics.fmean(meas) if meas else math.nan
        s = statistics.fmean(sim) if sim else math.nan
        rows.append(
            {
                "kind": kind,
                "layer": layer,
                "n": len(meas),
                "measured_mean_s": m,
                "simulated_mean_s": s,
                "ratio": s / m if m > 0 else math.nan,
            }
        )
    return rows


def validate(
    workload: Workload,
    machine: CpuMachine,
    workers: Sequence[int] = (1, 2),
    policies: Sequence[str] = ("sequential", "wavefront"),
    chunk: int = 1,
    repeats: int = 3,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> ValidationReport:
    """Run ``workload`` for real and in the simulator for every (policy, workers) pair.

    Parameters
    ----------
    workload : Workload
    machine : CpuMachine
        Usually this computer's calibration (``-m host``: :mod:`wpsim.machines.host`).
    workers : sequence of int
        Worker counts (simulated cores); each at most the machine's cores.
    policies : sequence of str
        Policy names; the 1-worker ``sequential`` baseline is always run too.
    chunk : int
        Time steps per cell task.
    repeats : int
        Measured rounds; medians are reported.
    out_dir : path, optional
        Write ``validation.csv``, ``per_kind.csv``, ``validation.json`` and one side-by-side
        Gantt per configuration (``gantt_<policy>_<workers>w.png``) here.
    progress : callable, optional
        Receives one line per measured run.

    Returns
    -------
    ValidationReport

    Raises
    ------
    ConfigError
        Bad arguments (one line), or the executor is missing.
    """
    from wpsim.policies import get_policy

    if not isinstance(machine, CpuMachine):
        raise ConfigError(f"machine '{machine.name}' is a {machine.kind}; validate needs a cpu")
    if not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"--chunk: got {chunk!r}, expected an integer >= 1")
    if not isinstance(repeats, int) or repeats < 1:
        raise ConfigError(f"--repeats: got {repeats!r}, expected an integer >= 1")
    configs = parse_configs(policies, workers, machine)
    try:
        from kernels.executor import execute
    except ImportError as error:
        raise ConfigError(f"validate needs the real executor (kernels.executor): {error}") from None
    progress = progress or (lambda _line: None)

    base = simulate_with_dispatch(workload, machine, "sequential", 1, chunk)
    base_pred = base[0]
    # (result, dispatch charged per record) of each configuration
    sims = {
        (policy, n): base
        if (policy, n) == BASELINE
        else simulate_with_dispatch(
            workload, machine, get_policy(policy), n, chunk, base_pred.makespan_s
        )
        for policy, n in configs
    }

    makespans: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
    results: dict[tuple[str, int], list[Any]] = {c: [] for c in configs}
    for r in range(repeats):
        for policy, n in configs:
            inner = inner_repeats(sims[(policy, n)][0].makespan_s)
            res = execute(
                workload, get_policy(policy), n, chunk=chunk, seed=seed, repeats=inner, warmup=1
            )
            makespans[(policy, n)].append(res.makespan_s)
            results[(policy, n)].append(res)
            progress(
                f"validate: round {r + 1}/{repeats}: {policy} on {n} worker(s): "
                f"{res.makespan_s * 1e3:.2f} ms (median of {inner})"
            )

    rows: list[dict[str, Any]] = []
    per_kind: list[dict[str, Any]] = []
    files: list[str] = []
    out = output_folder(out_dir, "--out") if out_dir is not None else None
    base_meas = makespans[BASELINE]
    for config in configs:
        policy, n = config
        spans = makespans[config]
        median = statistics.median(spans)
        chosen = min(results[config], key=lambda res: abs(res.makespan_s - median))
        sim, charged = sims[config]
        if sim.n_tasks != chosen.n_tasks:
            raise ConfigError(
                f"{policy} on {n} workers: the executor ran {chosen.n_tasks} tasks, the simulator "
                f"{sim.n_tasks} (different graphs)"
            )
        meas_speedup = statistics.median(b / m for b, m in zip(base_meas, spans, strict=True))
        pred_speedup = base_pred.makespan_s / sim.makespan_s
        signed = (pred_speedup - meas_speedup) / meas_speedup
        preds = _plan_preds(workload, policy, chunk)
        latencies = _ready_latencies(chosen.trace, preds)
        sim_trace = sim.trace
        row = {
            "policy": policy,
            "workers": n,
            "chunk": chunk,
            "measured_makespan_s": median,
            "predicted_makespan_s": sim.makespan_s,
            "measured_speedup": meas_speedup,
            "predicted_speedup": pred_speedup,
            "rel_error": abs(signed),
            "signed_error": signed,
            "n_tasks": sim.n_tasks,
            "measured_busy_s": sum(
                e - s for s, e in zip(chosen.trace.start_s, chosen.trace.end_s, strict=True)
            ),
            "predicted_busy_s": sum(
                e - s for s, e in zip(sim_trace.start_s, sim_trace.end_s, strict=True)
            ),
            "measured_dispatch_s": statistics.median(latencies) if latencies else 0.0,
            "model_dispatch_s": statistics.fmean(charged) if charged else 0.0,
            "measured_idle_share": _idle_share(chosen.trace, n),
            "predicted_idle_share": sim.core_breakdown_s["idle"] / sim.makespan_s,
            "baseline": config == BASELINE,
            "measured_makespans_s": list(spans),
            "predicted_breakdown_s": dict(sim.breakdown_s),
        }
        rows.append(row)
        for entry in _per_kind(chosen.trace, sim_trace, sim.tasks, charged):
            per_kind.append({"policy": policy, "workers": n, **entry})
        if out is not None:
            from wpsim.plots import save_side_by_side

            path = out / f"gantt_{policy}_{n}w.png"
            title = (
                f"{workload.name or workload.cell}: {policy}, {n} worker(s), chunk {chunk} "
                f"(measured {median * 1e3:.2f} ms, predicted {sim.makespan_s * 1e3:.2f} ms)"
            )
            save_side_by_side(path, chosen.trace, sim_trace, sim.tasks, title, "--out")
            files.append(str(path))
    report = ValidationReport(workload, machine.name, chunk, repeats, rows, per_kind, files)
    if out is not None:
        report.files[:0] = write_outputs(report, out)
    return report


def validate_measured(
    path: str | Path,
    workload: Workload,
    machine: str,
    chunk: int = 1,
    out_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> list[ValidationReport]:
    """Compare measurements made elsewhere with simulations of the same configurations.

    Parameters
    ----------
    path : path
        A CSV or a Trace Event Format file (see :mod:`wpsim.measure.measured` for the columns).
    workload, machine, chunk
        The defaults of rows that do not name their own (``machine``: a file or a name).
    out_dir : path, optional
        Write ``validation.csv``, ``per_kind.csv`` (empty: the task-by-task comparison needs
        wpsim's own executor), ``validation.json`` and the simulated Gantt chart of each
        configuration here; in a folder per comparison (``1-<workload>``, ...) when the file
        holds several (different workloads, machines or chunks).
    progress : callable, optional
        Receives one line per simulated configuration of graphs from
        :data:`PROGRESS_MIN_TASKS` tasks.

    Returns
    -------
    list of ValidationReport
        One per comparison (rows with the same workload, machine and chunk), in order of
        first appearance; their rows are as :func:`validate`'s, the measured dispatch latency,
        busy time and idle share unknown (None).

    Raises
    ------
    ConfigError
        A bad file (one line: the file, the row or event, the column, what was expected), or a
        configuration the machine cannot run.
    """
    from wpsim.machines import load_machine, resolve_machine_path
    from wpsim.measure.measured import read_measurements
    from wpsim.model.analysis import closed_form_n_tasks

    progress = progress or (lambda _line: None)
    runs = read_measurements(path, workload, machine, chunk)
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
    comparisons: dict[tuple, list] = {}
    for run in runs:
        comparisons.setdefault((run.workload, run.machine, run.chunk), []).append(run)
    reports = []
    for number, ((w, machine_name, k), group) in enumerate(comparisons.items(), start=1):
        try:
            m = load_machine(resolve_machine_path(machine_name))
        except ConfigError as error:
            if not group[0].machine_column:
                raise
            raise ConfigError(f"{group[0].where}: column 'machine': {error}") from None
        configs: dict[tuple, list] = {}
        for run in group:
            configs.setdefault(run.config, []).append(run)
        fewest = min(workers for _, _, workers in configs)
        candidates = [c for c in configs if c[2] == fewest]
        base = next((c for c in candidates if c[0] == "sequential"), candidates[0])
        order = [base] + [c for c in configs if c != base]
        sims: dict[tuple, Any] = {}
        large = closed_form_n_tasks(w, k) >= PROGRESS_MIN_TASKS
        for config in order:
            policy, _, n = config
            if large:  # (small ones take a moment: no line for them)
                progress(f"validate: simulating {policy} on {n} worker(s) ({w.name or w.cell})")
            baseline_s = sims[base].makespan_s if sims else None
            sims[config] = _simulate_run(configs[config][0], w, m, k, baseline_s)
        base_meas = statistics.median(run.seconds for run in configs[base])
        rows = []
        for config in order:
            policy, _, n = config
            sim = sims[config]
            spans = [run.seconds for run in configs[config]]
            median = statistics.median(spans)
            meas_speedup = base_meas / median
            pred_speedup = sims[base].makespan_s / sim.makespan_s
            signed = (pred_speedup - meas_speedup) / meas_speedup
            charged = sim.trace.dispatch_s if sim.trace is not None else []
            rows.append(
                {
                    "policy": sim.policy if config[1] else policy,
                    "workers": n,
                    "chunk": k,
                    "measured_makespan_s": median,
                    "predicted_makespan_s": sim.makespan_s,
                    "measured_speedup": meas_speedup,
                    "predicted_speedup": pred_speedup,
                    "rel_error": abs(signed),
                    "signed_error": signed,
                    "n_tasks": sim.n_tasks,
                    "measured_busy_s": None,
                    "predicted_busy_s": sum(
                        e - s for s, e in zip(sim.trace.start_s, sim.trace.end_s, strict=True)
                    ),
                    "measured_dispatch_s": None,
                    "model_dispatch_s": statistics.fmean(charged) if charged else 0.0,
                    "measured_idle_share": None,
                    "predicted_idle_share": sim.core_breakdown_s["idle"] / sim.makespan_s,
                    "baseline": config == base,
                    "measured_makespans_s": spans,
                    "predicted_breakdown_s": dict(sim.breakdown_s),
                    "measured_where": [run.where for run in configs[config]],
                }
            )
        repeats = max(len(v) for v in configs.values())
        report = ValidationReport(w, m.name, k, repeats, rows, [], measured_file=str(path))
        if out is not None:
            folder = out if len(comparisons) == 1 else out / f"{number}-{_slug(w.name or w.cell)}"
            folder.mkdir(exist_ok=True)
            report.files = write_outputs(report, folder)
            report.files += _simulated_gantts(report, sims, order, folder)
        reports.append(report)
    return reports


def _simulate_run(
    run: Any, workload: Workload, machine: Any, chunk: int, baseline_s: float | None
) -> Any:
    """Simulate a measured run's configuration (:func:`validate_measured`); errors name the
    row (or event) it came from."""
    from wpsim.machines.gpu import GpuMachine
    from wpsim.policies import get_policy
    from wpsim.sim import evaluate as by_kind

    where = run.where
    try:
        policy = get_policy(run.policy, helpers=run.helpers)
    except ConfigError as error:
        raise ConfigError(f"{where}: column 'policy': {_after_flag(error)}") from None
    n = run.workers
    options: dict[str, Any] = {"chunk": chunk}
    if isinstance(machine, GpuMachine):
        if n != 1:
            raise ConfigError(
                f"{where}: column '{run.workers_column}': got {n}, expected 1 on a GPU machine"
            )
    else:
        cores = machine.total_cores if isinstance(machine, CpuMachine) else machine.cores
        if n > cores:
            raise ConfigError(
                f"{where}: column '{run.workers_column}': got {n}, but machine '{machine.name}' "
                f"has {cores} cores (the simulator needs cores = workers)"
            )
        try:
            machine.with_cores(n)
            policy.core_groups(n)
        except ConfigError as error:
            raise ConfigError(f"{where}: {_after_flag(error)}") from None
        options["cores"] = n
        if isinstance(machine, CpuMachine):
            options["sequential_s"] = baseline_s
    return by_kind.evaluate("simulate", workload, machine, policy, **options)


def _after_flag(error: Exception) -> str:
    """An error's message without a leading ``--flag: `` (the row names the column)."""
    return re.sub(r"^--[\w-]+( \S+)?: ", "", str(error))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "workload"


def _simulated_gantts(report: ValidationReport, sims: dict, order: list, folder: Path) -> list[str]:
    """The simulated schedule of each configuration, coloured by cause (the measurements
    have no per-task trace to show beside it)."""
    from wpsim.plots import save_schedule_figure

    files = []
    for config, row in zip(order, report.rows, strict=True):
        sim = sims[config]
        if sim.trace is None or sim.tasks is None:
            continue
        path = folder / f"gantt_{_slug(config[0])}_{config[2]}w.png"
        title = (
            f"{report.workload.name or report.workload.cell}: {row['policy']}, "
            f"{config[2]} worker(s), simulated {sim.makespan_s * 1e3:.2f} ms (measured "
            f"{row['measured_makespan_s'] * 1e3:.2f} ms)"
        )
        save_schedule_figure(path, sim.trace, sim.tasks, title, color_by="cause", flag="--out")
        files.append(str(path))
    return files


def _idle_share(trace: Trace, workers: int) -> float:
    """The share of ``workers``' time from the trace's first start to its last end that they
    ran no task (mean over the workers)."""
    from wpsim.breakdown import core_breakdown

    span = trace.makespan_s
    return core_breakdown(trace, workers, [])["idle"] / span if span else 0.0


def inner_repeats(predicted_s: float, budget_s: float = 0.2, most: int = 5) -> int:
    """Timed runs inside one executor call: enough for ~``budget_s`` of work, 2 to ``most``.

    Examples
    --------
    >>> inner_repeats(1e-3), inner_repeats(0.05), inner_repeats(2.0)
    (5, 4, 2)
    """
    if not predicted_s > 0:
        return most
    return max(2, min(most, int(budget_s / predicted_s)))


def _plan_preds(workload: Workload, policy: str, chunk: int) -> list[list[int]]:
    from wpsim.model.graph import build
    from wpsim.model.plan import compile_plan
    from wpsim.policies import get_policy

    p = get_policy(policy)
    return compile_plan(build(workload, **p.graph_options(workload, chunk))).preds


def write_outputs(report: ValidationReport, out: Path) -> list[str]:
    """``validation.csv`` (the rows, the predicted break-down as ``predicted.<cause>_s``
    columns), ``per_kind.csv`` and ``validation.json`` in ``out``."""
    paths = []
    path = out / "validation.csv"
    causes = list(dict.fromkeys(c for r in report.rows for c in r.get("predicted_breakdown_s", {})))
    flat = [
        {**r, **{f"predicted.{c}_s": v for c, v in r.get("predicted_breakdown_s", {}).items()}}
        for r in report.rows
    ]
    with open_output(path, "--out", "w", newline="") as handle:
        columns = [*ROW_KEYS, *WHY_KEYS, *(f"predicted.{c}_s" for c in causes)]
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(flat)
    paths.append(str(path))
    path = out / "per_kind.csv"
    with open_output(path, "--out", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(KIND_KEYS))
        writer.writeheader()
        writer.writerows(report.per_kind)
    paths.append(str(path))
    path = out / "validation.json"
    atomic_write(path, dumps_json(report.to_dict(), indent=2) + "\n", "--out")
    paths.append(str(path))
    return paths


def _ms(seconds: float | None) -> str:
    if seconds is None:  # not measured (measurements made elsewhere)
        return "-"
    return f"{seconds * 1e3:.3f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} us"


def _share(fraction: float | None) -> str:
    return "-" if fraction is None else f"{100 * fraction:.0f}%"


def format_report(report: ValidationReport) -> str:
    """The rows, the error summary and the task-by-task table as text."""
    from wpsim.breakdown import shares

    w = report.workload
    source = f"measured elsewhere ({report.measured_file}), " if report.measured_file else ""
    lines = [
        f"validate: {w.name or 'workload'} ({w.layers}-layer {w.cell_declaration.label.upper()}, H={w.hidden}, "
        f"T={w.seq_len}, batch {w.batch}) on {report.machine}; chunk {report.chunk}, "
        f"{source}median of {report.repeats} run(s)",
        f"  {'policy':<12}{'workers':>8}{'measured':>14}{'predicted':>14}"
        f"{'speed-up meas':>15}{'pred':>7}{'error':>9}{'dispatch meas/model':>22}",
    ]
    for r in report.rows:
        err = "(base)" if r["baseline"] else f"{100 * r['signed_error']:+.1f}%"
        lines.append(
            f"  {r['policy']:<12}{r['workers']:>8}{_ms(r['measured_makespan_s']):>14}"
            f"{_ms(r['predicted_makespan_s']):>14}{r['measured_speedup']:>14.2f}x"
            f"{r['predicted_speedup']:>6.2f}x{err:>9}"
            f"{_ms(r['measured_dispatch_s']):>12} /{_ms(r['model_dispatch_s']):>9}"
        )
    s = report.summary()
    if s["n"]:
        lines.append(
            f"  predicted speed-up: mean |error| {100 * s['mean_rel_error']:.1f}%, max "
            f"{100 * s['max_rel_error']:.1f}% over {s['n']} configuration(s)"
        )
    lines.append(
        "  why (predicted makespan by cause along its critical path; idle: share of the "
        "workers' time, measured / predicted):"
    )
    for r in report.rows:
        idle = f"{_share(r['measured_idle_share'])} / {_share(r['predicted_idle_share'])}"
        causes = shares(r["predicted_breakdown_s"], r["predicted_makespan_s"])
        lines.append(f"  {r['policy']:<12}{r['workers']:>8}  idle {idle:<11}  {causes}")
    if not report.per_kind:
        lines += [f"  wrote {path}" for path in report.files]
        return "\n".join(lines)
    lines.append(
        "  task by task (mean duration; measured = kernel, simulated = model without dispatch):"
    )
    lines.append(
        f"  {'policy':<12}{'workers':>8}  {'kind':<12}{'layer':>6}{'n':>6}"
        f"{'measured':>13}{'simulated':>13}{'sim/meas':>10}"
    )
    for k in report.per_kind:
        lines.append(
            f"  {k['policy']:<12}{k['workers']:>8}  {k['kind']:<12}{k['layer']:>6}{k['n']:>6}"
            f"{_ms(k['measured_mean_s']):>13}{_ms(k['simulated_mean_s']):>13}{k['ratio']:>10.2f}"
        )
    for path in report.files:
        lines.append(f"  wrote {path}")
    return "\n".join(lines)
