"""Autograder of assignment 3: predict the real executor's speed-up, measure it, explain the error.

Usage::

    python docs/course/a3/grade.py SUBMISSION/claims.yaml [--json]

The claims file names the student's own files (paths relative to it): the machine file written
by ``wpsim calibrate``, the output of ``wpsim validate --json`` and the Chrome traces written by
``wpsim run --trace``. Every number it states is checked against those files, re-derived by the
grader, never taken on trust:

* **files** (1): the machine file loads; the validation ran the assignment's workload, one step
  per task (:data:`CHUNK`), the required configurations, at least :data:`MIN_REPEATS` rounds,
  with that machine file (its predicted speed-ups are the grader's own); the traces are
  ``wpsim run`` traces of the graphs they claim to be; none of them is the course's example;
* **predicted** (2, shared by the configurations): the simulator's speed-up with the student's
  machine file, as :func:`wpsim.measure.validate.validate` computes it, within :data:`PREDICTED_TOLERANCE`;
* **measured** (2, shared): the validation's measured speed-up, within a tolerance derived from
  the spread of the student's own rounds (:func:`measured_tolerance`);
* **worst** (1): the configuration whose predicted speed-up is furthest from the measured one;
* **findings** (4): one point per finding whose numbers all check out and which shows a real
  discrepancy between measurement and model (at most two per mechanism): task times, dispatch
  cost, utilisation (re-derived from the trace and the grader's simulation) and the spread of
  the rounds (from the validation). Words earn nothing by themselves.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gradelib import AnswerError, Report, finish, load_yaml  # noqa: E402

TITLE = "Assignment 3 (predict, then measure)"
WORKLOAD = HERE / "workload.yaml"
EXAMPLE = HERE / "example"
BASELINE = ("sequential", 1)
#: Time steps per task of every run: one, so that tasks are cells (``wpsim run`` and ``wpsim
#: validate`` choose their own chunk unless told, the handout's commands say ``--chunk 1``).
CHUNK = 1
#: The configurations a validation must have besides the baseline (the handout's command).
REQUIRED = (("sequential", 2), ("wavefront", 1), ("wavefront", 2))
MIN_REPEATS = 3
PREDICTED_TOLERANCE = 0.02  # relative: two decimals of a speed-up, and rounding
TIME_TOLERANCE = 0.05  # relative, task and round times
DISPATCH_TOLERANCE_US = 2.0  # or TIME_TOLERANCE, whichever is larger
UTILISATION_TOLERANCE = 2.0  # percentage points
#: A finding must show at least this much disagreement to explain anything.
MIN_TIME_RATIO, MIN_DISPATCH_RATIO, MIN_UTILISATION_POINTS, MIN_SPREAD = 1.1, 1.2, 5.0, 1.1
MIN_FINDING_WORDS = 15
FILES_POINTS, PREDICTED_POINTS, MEASURED_POINTS, WORST_POINTS, FINDING_POINTS = 1, 2, 2, 1, 4
MECHANISMS = ("task_time", "dispatch", "utilisation", "noise")


@dataclass
class Submission:
    """The files a claims file names, loaded and checked."""

    folder: Path
    claims: dict[str, Any]
    machine: Any
    validation: dict[str, Any]
    rows: dict[tuple[str, int], dict[str, Any]]


class Evidence:
    """The grader's own numbers for the submission: simulations with the student's machine file
    (as ``wpsim validate`` runs them) and what the traces show. Computed once, on demand."""

    def __init__(self, submission: Submission) -> None:
        from wpsim.model.workload import load_workload

        self.submission = submission
        self.workload = load_workload(WORKLOAD)
        self.chunk = CHUNK  # load_submission refused a validation with another chunk
        self._sims: dict[tuple[str, int], tuple[Any, list[float]]] = {}
        self._traces: dict[str, dict[int, tuple[float, float, tuple[int, ...]]]] = {}

    def simulation(self, policy: str, workers: int) -> tuple[Any, list[float]]:
        """(result, dispatch charged per trace record), as :func:`wpsim.measure.validate.validate`."""
        from wpsim.measure.validate import simulate_with_dispatch
        from wpsim.policies import get_policy

        machine, w, chunk = self.submission.machine, self.workload, self.chunk
        if BASELINE not in self._sims:
            self._sims[BASELINE] = simulate_with_dispatch(w, machine, "sequential", 1, chunk)
        if (policy, workers) not in self._sims:
            base_s = self._sims[BASELINE][0].makespan_s
            self._sims[(policy, workers)] = simulate_with_dispatch(
                w, machine, get_policy(policy), workers, chunk, base_s
            )
        return self._sims[(policy, workers)]

    def predicted_speedup(self, policy: str, workers: int) -> float:
        base = self.simulation(*BASELINE)[0].makespan_s
        return base / self.simulation(policy, workers)[0].makespan_s

    def plan(self, policy: str) -> Any:
        from wpsim.model.graph import build
        from wpsim.model.plan import compile_plan
        from wpsim.policies import get_policy

        options = get_policy(policy).graph_options(self.workload, self.chunk)
        return compile_plan(build(self.workload, **options))

    def trace(self, name: str, policy: str, workers: int) -> dict[int, tuple]:
        """Task id -> (start_s, end_s, cores) of a ``wpsim run --trace`` file; checks it is a
        trace of ``policy`` on at most ``workers`` workers of the assignment's graph.

        Raises
        ------
        AnswerError
            A one-line reason the trace cannot be used.
        """
        from wpsim.policies import get_policy

        key = f"{name}|{policy}|{workers}"
        if key in self._traces:
            return self._traces[key]
        path = self.submission.folder / str(name)
        try:
            data = json.loads(path.read_text())
            events = data["traceEvents"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise AnswerError(
                f"{name}: not a Chrome trace of `wpsim run --trace` ({type(error).__name__})"
            ) from None
        process = next(
            (
                e.get("args", {}).get("name", "")
                for e in events
                if e.get("ph") == "M" and e.get("name") == "process_name"
            ),
            "",
        )
        if process.split()[:3] != ["wpsim", "run", policy]:
            raise AnswerError(
                f"{name}: a trace of {process!r}, not of `wpsim run` with policy {policy!r}"
            )
        runs: dict[int, list] = {}
        for e in events:
            if e.get("ph") == "X":
                tid, start, end = (
                    int(e["args"]["task"]),
                    e["ts"] * 1e-6,
                    (e["ts"] + e["dur"]) * 1e-6,
                )
                entry = runs.setdefault(tid, [start, end, set()])
                entry[0], entry[1] = min(entry[0], start), max(entry[1], end)
                entry[2].add(int(e["tid"]))
        plan = self.plan(policy)
        if sorted(runs) != list(range(plan.n_tasks)):
            raise AnswerError(
                f"{name}: {len(runs)} tasks, but the assignment's graph under "
                f"{policy!r} (chunk {self.chunk}) has {plan.n_tasks}"
            )
        cores = sorted({c for _, _, cs in runs.values() for c in cs})
        expected = sorted({c for g in get_policy(policy).core_groups(workers) for c in g})
        if cores != expected:
            raise AnswerError(
                f"{name}: tasks ran on workers {cores}; {policy} on {workers} worker(s) runs on "
                f"{expected}: the trace of another configuration?"
            )
        self._traces[key] = {t: (s, e, tuple(sorted(c))) for t, (s, e, c) in runs.items()}
        return self._traces[key]


# ---- derived quantities ---------------------------------------------------------------------


def mean_task_s(runs: dict[int, tuple], plan: Any, kind: str, layer: int) -> float | None:
    """Mean duration of the tasks of ``kind`` and ``layer`` in a trace (None: there are none)."""
    spans = [
        e - s
        for t, (s, e, _) in runs.items()
        if plan.tasks[t].kind == kind and plan.tasks[t].layer == layer
    ]
    return statistics.fmean(spans) if spans else None


def ready_latencies_s(runs: dict[int, tuple], plan: Any) -> list[float]:
    """Per task: its start minus the moment it could have started (all its predecessors done
    and its workers free), the dispatch latency ``wpsim validate`` reports."""
    free_at: dict[tuple[int, ...], float] = {}
    out = []
    for tid, (start, end, cores) in sorted(runs.items(), key=lambda kv: kv[1][0]):
        ready = max((runs[p][1] for p in plan.preds[tid]), default=0.0)
        out.append(start - max(ready, free_at.get(cores, 0.0)))
        free_at[cores] = end
    return out


def utilisation_percent(runs: dict[int, tuple], workers: int) -> float:
    """Busy worker-time over makespan times workers, in percent (as ``wpsim simulate`` prints)."""
    span = max(e for _, e, _ in runs.values()) - min(s for s, _, _ in runs.values())
    busy = sum((e - s) * len(c) for s, e, c in runs.values())
    return 100 * busy / (span * workers) if span > 0 else 0.0


def round_ratios(row: dict, baseline: dict) -> list[float]:
    """Per round: baseline makespan / this configuration's (the paired speed-ups)."""
    return [
        b / m
        for b, m in zip(baseline["measured_makespans_s"], row["measured_makespans_s"], strict=True)
        if m > 0
    ]


def measured_tolerance(ratios: list[float]) -> float:
    """How far a claimed measured speed-up may be from the median of ``ratios``: twice the
    standard error of that median, estimated from the median absolute deviation (``1.2533 *
    1.4826 * MAD / sqrt(n)``), and at least 2% of it (rounding).

    Examples
    --------
    >>> round(measured_tolerance([1.43, 1.33, 0.93, 0.62, 1.45]), 2)
    0.2
    >>> measured_tolerance([1.0, 1.0, 1.0])
    0.02
    """
    median = statistics.median(ratios)
    mad = statistics.median(abs(r - median) for r in ratios)
    return max(0.02 * median, 2 * 1.2533 * 1.4826 * mad / math.sqrt(len(ratios)))


# ---- loading and the files check ------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(str(value).rstrip("xX%"))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _config(entry: Any) -> tuple[str, int] | None:
    if not isinstance(entry, dict):
        return None
    policy, workers = entry.get("policy"), entry.get("workers")
    if not isinstance(policy, str) or isinstance(workers, bool) or not isinstance(workers, int):
        return None
    return policy, workers


def _label(config: tuple[str, int]) -> str:
    return f"{config[0]} on {config[1]} worker(s)"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_submission(claims_path: str | Path) -> tuple[Submission | None, list[str]]:
    """Load what the claims file names; return it (None if it cannot be used) and the problems.

    Raises
    ------
    AnswerError
        The claims file itself cannot be read.
    """
    from wpsim.errors import ConfigError, WpsimError
    from wpsim.machines import load_machine
    from wpsim.machines.cpu import CpuMachine
    from wpsim.model.workload import load_workload, workload_from_dict

    claims_path = Path(claims_path)
    claims = load_yaml(claims_path)
    if not isinstance(claims, dict):
        raise AnswerError(f"{claims_path}: expected the fields of claims.yaml")
    folder = claims_path.resolve().parent
    problems: list[str] = []
    paths = {}
    for field in ("machine", "validation"):
        if not isinstance(claims.get(field), str):
            problems.append(f"{field}: give the path of your file, relative to the claims file")
            continue
        paths[field] = folder / claims[field]
        if not paths[field].is_file():
            problems.append(f"{field}: {claims[field]}: file not found")
    if problems:
        return None, problems
    try:
        machine = load_machine(paths["machine"])
    except WpsimError as error:
        return None, [f"machine: {error}"]
    if not isinstance(machine, CpuMachine):
        return None, [f"machine: {claims['machine']} is a {machine.kind} machine, not a cpu"]
    try:
        validation = json.loads(paths["validation"].read_text())
        raw_rows = validation["rows"]
        rows = {(r["policy"], int(r["workers"])): r for r in raw_rows}
    except (ValueError, KeyError, TypeError) as error:
        return None, [
            f"validation: {claims['validation']}: not the output of `wpsim validate "
            f"--json` ({type(error).__name__}: {error})"
        ]
    example = EXAMPLE / "validate.json"
    if example.is_file() and _digest(paths["validation"]) == _digest(example):
        problems.append(
            "validation: this is the course's example validation: measure your own machine"
        )
    if (EXAMPLE / "machine.yaml").is_file() and _digest(paths["machine"]) == _digest(
        EXAMPLE / "machine.yaml"
    ):
        problems.append("machine: this is the course's example machine file: calibrate your own")
    want = load_workload(WORKLOAD)
    spec = validation.get("workload_spec") or {}
    try:  # compared as workloads: a field the file leaves out has its default
        ran = workload_from_dict({**spec, "name": want.name}, "validation")
    except ConfigError:
        ran = None
    if ran != want:
        problems.append("validation: it ran another workload than docs/course/a3/workload.yaml")
    if validation.get("chunk", 1) != CHUNK:
        problems.append(
            f"validation: it ran {validation.get('chunk')!r} steps per task; the assignment runs "
            f"one (--chunk {CHUNK}, as the handout says)"
        )
    missing = [_label(c) for c in (BASELINE, *REQUIRED) if c not in rows]
    if missing:
        problems.append(f"validation: no row for {', '.join(missing)} (run the handout's command)")
    elif any(len(r.get("measured_makespans_s") or []) < MIN_REPEATS for r in rows.values()):
        problems.append(
            f"validation: fewer than {MIN_REPEATS} rounds (--repeats 5, as the "
            "handout says): their spread is part of the grading"
        )
    submission = Submission(folder, claims, machine, validation, rows)
    return (None if problems else submission), problems


def check_files(sub: Submission, evidence: Evidence, report: Report) -> bool:
    """The validation ran with this machine file, and the cited traces are usable. Returns
    whether the claims can be graded at all (a bad trace costs this point and its finding, not
    the rest)."""
    for config in (BASELINE, *REQUIRED):
        recorded = float(sub.rows[config]["predicted_speedup"])
        ours = evidence.predicted_speedup(*config)
        if abs(recorded - ours) > PREDICTED_TOLERANCE * ours:
            report.add(
                "files",
                0,
                FILES_POINTS,
                f"validation: with your machine file the simulator predicts {ours:.2f}x for "
                f"{_label(config)}, your validation says {recorded:.2f}x: it was not run with "
                "this machine file",
            )
            return False
    problems = []
    for finding in _findings(sub.claims):
        if "trace" in finding and _config(finding):
            try:
                evidence.trace(finding["trace"], *_config(finding))
            except AnswerError as error:
                problems.append(f"trace: {error}")
    if problems:
        report.add("files", 0, FILES_POINTS, "; ".join(problems))
    else:
        report.add(
            "files",
            FILES_POINTS,
            FILES_POINTS,
            f"machine file, validation ({len(sub.rows)} configurations, "
            f"{len(sub.rows[BASELINE]['measured_makespans_s'])} rounds) and traces agree",
        )
    return True


# ---- the claims -----------------------------------------------------------------------------


def _findings(claims: dict) -> list[dict]:
    findings = claims.get("findings")
    return [f for f in findings if isinstance(f, dict)] if isinstance(findings, list) else []


def grade_speedups(sub: Submission, evidence: Evidence, report: Report) -> dict:
    """Predicted and measured speed-ups of every configuration; returns the claims by config."""
    claimed = {}
    for entry in sub.claims.get("configurations") or []:
        if _config(entry):
            claimed[_config(entry)] = entry
    baseline = sub.rows[BASELINE]
    share_p, share_m = PREDICTED_POINTS / len(REQUIRED), MEASURED_POINTS / len(REQUIRED)
    for config in REQUIRED:
        entry = claimed.get(config, {})
        ours = evidence.predicted_speedup(*config)
        said = _number(entry.get("predicted_speedup"))
        name = f"predicted: {_label(config)}"
        how = (
            f"wpsim simulate -m {sub.claims['machine']} -w docs/course/a3/workload.yaml "
            f"-p {config[0]} --cores {config[1]}"
        )
        if said is None:
            report.add(name, 0, share_p, f"missing: predicted_speedup ({how})")
        elif abs(said - ours) <= PREDICTED_TOLERANCE * ours:
            report.add(name, share_p, share_p, f"{said:.2f}x is what your machine file predicts")
        else:
            report.add(
                name,
                0,
                share_p,
                f"you say {said:.2f}x; with your machine file the simulator predicts "
                f"{ours:.2f}x ({how})",
            )
        row = sub.rows[config]
        ratios = round_ratios(row, baseline)
        median, tolerance = statistics.median(ratios), measured_tolerance(ratios)
        said = _number(entry.get("measured_speedup"))
        name = f"measured: {_label(config)}"
        if said is None:
            report.add(name, 0, share_m, "missing: measured_speedup (from your validation)")
        elif abs(said - median) <= tolerance:
            report.add(
                name,
                share_m,
                share_m,
                f"{said:.2f}x: your validation measured {median:.2f}x +/- {tolerance:.2f}x",
            )
        else:
            report.add(
                name,
                0,
                share_m,
                f"you say {said:.2f}x; your validation measured {median:.2f}x (median of "
                f"{len(ratios)} rounds, {min(ratios):.2f}x to {max(ratios):.2f}x; their "
                f"spread allows +/- {tolerance:.2f}x)",
            )
    return claimed


def grade_worst(sub: Submission, evidence: Evidence, report: Report) -> None:
    """The configuration whose prediction is furthest from the measurement."""
    errors = {}
    for config in REQUIRED:
        measured = statistics.median(round_ratios(sub.rows[config], sub.rows[BASELINE]))
        errors[config] = abs(evidence.predicted_speedup(*config) - measured) / measured
    largest = max(errors.values())
    given = _config(sub.claims.get("worst"))
    if given is None:
        report.add("worst", 0, WORST_POINTS, "missing: worst: {policy: ..., workers: ...}")
    elif errors.get(given, -1) >= largest - 1e-12:
        report.add(
            "worst",
            WORST_POINTS,
            WORST_POINTS,
            f"{_label(given)}: the prediction is {100 * largest:.0f}% off the measurement",
        )
    else:
        report.add(
            "worst",
            0,
            WORST_POINTS,
            f"{_label(given)} is not the configuration whose predicted speed-up is "
            "furthest from the measured one (|predicted - measured| / measured)",
        )


def check_finding(finding: dict, sub: Submission, evidence: Evidence) -> str:
    """What is wrong with one finding ('' if its numbers check out and show a discrepancy)."""
    mechanism = finding.get("mechanism")
    if mechanism not in MECHANISMS:
        return f"mechanism: expected one of {', '.join(MECHANISMS)}, got {mechanism!r}"
    config = _config(finding)
    if config is None or (config not in sub.rows):
        return "policy and workers: expected a configuration of your validation"
    words = len(str(finding.get("text") or "").split())
    if words < MIN_FINDING_WORDS:
        return (
            f"text: {words} words; say in at least {MIN_FINDING_WORDS} what the numbers show "
            "and why (the numbers earn the point, the text says what they mean)"
        )
    if mechanism == "noise":
        spans = sub.rows[config]["measured_makespans_s"]
        checks = [
            ("fastest_ms", 1e3 * min(spans), TIME_TOLERANCE, "the fastest round"),
            ("slowest_ms", 1e3 * max(spans), TIME_TOLERANCE, "the slowest round"),
        ]
        gap = max(spans) / min(spans) >= MIN_SPREAD
        small = f"the rounds differ by less than {MIN_SPREAD}x"
    else:
        try:
            runs = evidence.trace(finding.get("trace"), *config)
        except AnswerError as error:
            return f"trace: {error}"
        sim, charged = evidence.simulation(*config)
        if mechanism == "task_time":
            plan = evidence.plan(config[0])
            kind, layer = finding.get("kind", "cell"), finding.get("layer")
            measured = mean_task_s(runs, plan, kind, layer)
            if measured is None:
                return f"kind and layer: no {kind!r} tasks of layer {layer!r} in the trace"
            simulated = statistics.fmean(
                e - s - d
                for t, s, e, d in zip(
                    sim.trace.task, sim.trace.start_s, sim.trace.end_s, charged, strict=True
                )
                if sim.tasks[t].kind == kind and sim.tasks[t].layer == layer
            )
            checks = [
                ("measured_us", 1e6 * measured, TIME_TOLERANCE, "the trace's mean task"),
                (
                    "simulated_us",
                    1e6 * simulated,
                    TIME_TOLERANCE,
                    "the simulated mean task (without dispatch)",
                ),
            ]
            ratio = max(measured, simulated) / min(measured, simulated)
            gap, small = ratio >= MIN_TIME_RATIO, f"they differ by less than {MIN_TIME_RATIO}x"
        elif mechanism == "dispatch":
            measured = statistics.median(ready_latencies_s(runs, evidence.plan(config[0])))
            model = statistics.fmean(charged)
            checks = [
                ("measured_us", 1e6 * measured, None, "the trace's median ready-to-start"),
                ("model_us", 1e6 * model, TIME_TOLERANCE, "the model's mean dispatch"),
            ]
            ratio = max(measured, model) / max(min(measured, model), 1e-9)
            gap, small = (
                ratio >= MIN_DISPATCH_RATIO,
                f"they differ by less than {MIN_DISPATCH_RATIO}x",
            )
        else:  # utilisation
            measured = utilisation_percent(runs, config[1])
            simulated = 100 * sim.utilization
            checks = [
                ("measured_percent", measured, UTILISATION_TOLERANCE, "the trace's"),
                ("simulated_percent", simulated, UTILISATION_TOLERANCE, "the simulator's"),
            ]
            gap = abs(measured - simulated) >= MIN_UTILISATION_POINTS
            small = f"they differ by less than {MIN_UTILISATION_POINTS:g} points"
    wrong = []
    for field, truth, tolerance, what in checks:
        said = _number(finding.get(field))
        if said is None:
            wrong.append(f"{field}: missing")
            continue
        if mechanism == "utilisation":
            ok = abs(said - truth) <= tolerance
        elif tolerance is None:  # a dispatch latency: 2 us or 5%, whichever is larger
            ok = abs(said - truth) <= max(DISPATCH_TOLERANCE_US, TIME_TOLERANCE * truth)
        else:
            ok = abs(said - truth) <= tolerance * abs(truth)
        if not ok:
            wrong.append(f"{field}: you say {said:g}, {what} is {truth:.4g}")
    if wrong:
        return "; ".join(wrong)
    if not gap:
        return f"the numbers are right, but {small}: this does not explain an error"
    return ""


def grade_findings(sub: Submission, evidence: Evidence, report: Report) -> None:
    """The first :data:`FINDING_POINTS` findings, one point each if they check out (at most two
    per mechanism)."""
    findings = _findings(sub.claims)
    per_mechanism: dict[str, int] = {}
    for i in range(FINDING_POINTS):
        if i >= len(findings):
            report.add(
                f"finding {i + 1}",
                0,
                1,
                f"missing: findings count up to {FINDING_POINTS}, each a mechanism with "
                "numbers from your own files",
            )
            continue
        finding = findings[i]
        mechanism, config = finding.get("mechanism"), _config(finding)
        name = f"finding {i + 1} ({mechanism}{', ' + _label(config) if config else ''})"
        wrong = check_finding(finding, sub, evidence)
        if not wrong and per_mechanism.get(mechanism, 0) >= 2:
            wrong = "only two findings per mechanism count"
        if wrong:
            report.add(name, 0, 1, wrong)
        else:
            per_mechanism[mechanism] = per_mechanism.get(mechanism, 0) + 1
            report.add(name, 1, 1, "every number checks out against your files")
    if len(findings) > FINDING_POINTS:
        report.notes.append(f"only the first {FINDING_POINTS} findings are graded")


def grade(claims_path: str | Path) -> Report:
    """Grade the claims file at ``claims_path`` against the files it names.

    Raises
    ------
    AnswerError
        The claims file cannot be read.
    """
    report = Report(TITLE)
    submission, problems = load_submission(claims_path)
    if submission is not None:
        evidence = Evidence(submission)
        if check_files(submission, evidence, report):
            grade_speedups(submission, evidence, report)
            grade_worst(submission, evidence, report)
            grade_findings(submission, evidence, report)
            return report
    else:
        report.add("files", 0, FILES_POINTS, "; ".join(problems))
    for name, points in (
        ("predicted", PREDICTED_POINTS),
        ("measured", MEASURED_POINTS),
        ("worst", WORST_POINTS),
        ("findings", FINDING_POINTS),
    ):
        report.add(name, 0, points, "not graded: the files must check out first")
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: grade a claims file; print the report; exit status 2 if it cannot be read."""
    parser = argparse.ArgumentParser(description="Grade assignment 3 (predict, then measure).")
    parser.add_argument("claims", help="your claims.yaml (next to the files it names)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = grade(args.claims)
    except AnswerError as error:
        print(f"{TITLE}: cannot grade: {error}")
        return 2
    return finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
