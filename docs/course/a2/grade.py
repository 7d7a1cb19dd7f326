"""Autograder of assignment 2: a scheduling policy that beats ``wavefront`` on small caches.

Usage::

    python docs/course/a2/grade.py POLICY.py [--out DIR] [--json]

It loads the one policy class of ``POLICY.py``, simulates it with :func:`wpsim.engine.simulate` on
``small_cache.yaml`` for the assignment's workload and two more of other shapes, and checks

* **correctness, from the trace**: every task of the graph runs exactly once, on distinct cores
  of the machine; each task starts after all its predecessors end; no core runs two tasks at
  once; the graph the policy asked for does the workload's work (same flops);
* **speed**: the makespan against the built-in ``wavefront`` on the same machine and workload.

Scores: 1 point for a well-formed policy, then per workload 1 point for a correct schedule and
up to 2 for speed (2 at :data:`TARGET_SPEEDUP` x faster than wavefront or more, linear from 1x).
``--out DIR`` writes the Chrome trace of each run there (open in https://ui.perfetto.dev).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import signal
import sys
import threading
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gradelib import Report, finish  # noqa: E402

from wpsim.config import load_model  # noqa: E402
from wpsim.engine import simulate  # noqa: E402
from wpsim.graph import build  # noqa: E402
from wpsim.hardware import CpuMachine  # noqa: E402
from wpsim.plan import compile_plan  # noqa: E402
from wpsim.policies import REGISTRY, available  # noqa: E402
from wpsim.policies.base import DynamicPolicy, Policy, StaticPolicy  # noqa: E402
from wpsim.policies.wavefront import Wavefront  # noqa: E402
from wpsim.workload import Workload, load_workload  # noqa: E402

TITLE = "Assignment 2 (a policy for small caches)"
MACHINE = HERE / "small_cache.yaml"
#: The workloads graded: the assignment's, and two of other shapes (cell, size, phase).
WORKLOADS: dict[str, Workload | Path] = {
    "given (workload.yaml)": HERE / "workload.yaml",
    "other shape: 4-layer GRU, H=160": Workload(
        name="a2-gru", cell="gru", layers=4, hidden=160, input=160, seq_len=64
    ),
    "other phase: 2-layer GRU training": Workload(
        name="a2-train", cell="gru", layers=2, hidden=128, input=64, seq_len=32, phase="training"
    ),
}
TARGET_SPEEDUP = 1.5  # full speed marks at this many times faster than wavefront
STRUCTURE_POINTS, CORRECT_POINTS, SPEED_POINTS = 1, 1, 2
TIME_LIMIT_S = 60


class GradingError(Exception):
    """The policy file cannot be graded (no policy in it, or it does not import)."""


def load_policy_class(path: str | Path) -> tuple[type[Policy], list[str]]:
    """Import ``path`` and return its policy class and any problems with its form.

    Raises
    ------
    GradingError
        The file is missing, does not import, or defines no policy class.
    """
    path = Path(path)
    if not path.exists():
        raise GradingError(f"{path}: file not found")
    module_name = f"a2_student_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # the student's code: report whatever it raises
        raise GradingError(f"{path} does not import: {type(error).__name__}: {error}") from None
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, Policy) and value.__module__ == module_name
    ]
    if not classes:
        raise GradingError(f"{path}: no class subclassing StaticPolicy or DynamicPolicy")
    problems = []
    if len(classes) > 1:
        names = ", ".join(c.__name__ for c in classes)
        problems.append(f"one policy class per file, found {names}; grading {classes[-1].__name__}")
    cls = classes[-1]
    if not issubclass(cls, StaticPolicy | DynamicPolicy):
        problems.append("subclass StaticPolicy or DynamicPolicy (wpsim.policies.base)")
    if not cls.name:
        problems.append("give the class a name (name = '...')")
    elif REGISTRY.get(cls.name) is not cls:
        problems.append("decorate the class with @register")
    if not cls.description or cls.description.strip().upper().startswith("TODO"):
        problems.append("write a one-line description")
    return cls, problems


def schedule_problems(result, plan, n_cores: int, limit: int = 5) -> list[str]:
    """What is wrong with ``result.trace`` as a schedule of ``plan`` on ``n_cores`` cores."""
    trace = result.trace
    labels = [t.label for t in plan.tasks]
    problems: list[str] = []
    counts = Counter(trace.task)
    missing = [tid for tid in range(plan.n_tasks) if counts[tid] == 0]
    twice = [tid for tid, c in counts.items() if c > 1]
    if missing:
        problems.append(f"{len(missing)} tasks never ran (first: {labels[missing[0]]})")
    if twice:
        problems.append(f"{len(twice)} tasks ran more than once (first: {labels[twice[0]]})")
    eps = 1e-12 * max(trace.makespan_s, 1e-9)
    index = {}
    for i, tid in enumerate(trace.task):
        index.setdefault(tid, i)
        cores = trace.cores[i]
        if not cores or len(set(cores)) != len(cores) or not all(0 <= c < n_cores for c in cores):
            problems.append(f"{labels[tid]} ran on cores {list(cores)}: expected distinct cores "
                            f"0..{n_cores - 1}")  # fmt: skip
    for i, tid in enumerate(trace.task):
        for p in plan.preds[tid]:
            j = index.get(p)
            if j is not None and trace.start_s[i] < trace.end_s[j] - eps:
                problems.append(
                    f"{labels[tid]} started at {trace.start_s[i] * 1e6:.3f} us, before its "
                    f"predecessor {labels[p]} ended at {trace.end_s[j] * 1e6:.3f} us"
                )
                break
        if len(problems) >= limit:
            return problems
    by_core: dict[int, list[tuple[float, float, int]]] = {}
    for i, tid in enumerate(trace.task):
        for core in trace.cores[i]:
            by_core.setdefault(core, []).append((trace.start_s[i], trace.end_s[i], tid))
    for core, runs in sorted(by_core.items()):
        runs.sort()
        for (_s0, e0, a), (s1, _, b) in zip(runs, runs[1:], strict=False):
            if s1 < e0 - eps:
                problems.append(f"core {core} ran {labels[b]} (from {s1 * 1e6:.3f} us) while "
                                f"still running {labels[a]} (until {e0 * 1e6:.3f} us)")  # fmt: skip
                break
        if len(problems) >= limit:
            break
    return problems[:limit]


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise ``TimeoutError`` after ``seconds`` (main thread on POSIX only; else no limit)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"the simulation took more than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _explain(error: Exception) -> str:
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, NotImplementedError):
        return f"the simulation stopped at {text} -- implement it"
    if "stalled" in str(error):
        return f"{text} -- every task pushed must eventually be returned by assign"
    return f"the simulation failed: {text}"


def speed_points(ratio: float) -> float:
    """Points for running ``ratio`` times faster than wavefront (0 at 1x, full at the target)."""
    if not math.isfinite(ratio) or ratio <= 1.0:
        return 0.0
    return round(SPEED_POINTS * min(1.0, (ratio - 1.0) / (TARGET_SPEEDUP - 1.0)), 2)


def grade(path: str | Path, out: str | Path | None = None) -> Report:
    """Grade the policy file at ``path``; ``out``: folder for Chrome traces (optional)."""
    report = Report(TITLE)
    saved = {name: REGISTRY[name] for name in available()}  # restored when grading ends
    shipped = {name for name, c in saved.items() if c.__module__.startswith("wpsim.")}
    try:
        try:
            cls, problems = load_policy_class(path)
        except GradingError as error:
            report.add("policy", 0, STRUCTURE_POINTS, str(error))
            for label in WORKLOADS:
                report.add(label, 0, CORRECT_POINTS + SPEED_POINTS, "not run: no policy to grade")
            return report
        if cls.name in shipped and saved[cls.name] is not cls:
            problems.append(f"the name {cls.name!r} is a built-in policy's; choose your own")
        report.add("policy", 0 if problems else STRUCTURE_POINTS, STRUCTURE_POINTS,
                   "; ".join(problems) or f"{cls.__name__} ({cls.name!r}) is well formed")  # fmt: skip
        machine = load_model(CpuMachine, MACHINE)  # the course machine is a CPU
        for label, source in WORKLOADS.items():
            workload = load_workload(source) if isinstance(source, Path) else source
            _grade_workload(report, label, cls, workload, machine, out)
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)
    return report


def _grade_workload(report: Report, label: str, cls: type[Policy], workload: Workload,
                    machine, out) -> None:  # fmt: skip
    """Simulate ``cls`` and wavefront on one workload; add a correctness and speed check."""
    points_max = CORRECT_POINTS + SPEED_POINTS
    baseline = simulate(workload, machine, Wavefront())
    try:
        policy = cls()
        with time_limit(TIME_LIMIT_S):
            result = simulate(workload, machine, policy, sequential_s=baseline.sequential_s)
            plan = compile_plan(build(workload, **policy.graph_options(workload, 1)))
    except Exception as error:  # the student's code: report whatever it raises
        report.add(label, 0, points_max, _explain(error))
        return
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        result.trace.to_chrome(folder / f"{workload.name}_{cls.name}.json",
                               [t.label for t in plan.tasks], [t.layer for t in plan.tasks],
                               process_name=f"{cls.name} on {workload.name}")  # fmt: skip
    problems = schedule_problems(result, plan, machine.total_cores)
    want_flops = sum(task.flops for _, task in build(workload).nodes(data="task"))
    got_flops = sum(task.flops for task in plan.tasks)
    if not math.isclose(got_flops, want_flops, rel_tol=1e-9):
        problems.append(f"the graph from graph_options does {got_flops:.4g} flops, the workload "
                        f"{want_flops:.4g}: it must do the same work")  # fmt: skip
    if problems:
        report.add(label, 0, points_max, "incorrect schedule: " + "; ".join(problems))
        return
    ratio = baseline.makespan_s / result.makespan_s
    points = CORRECT_POINTS + speed_points(ratio)
    verdict = (
        "faster than wavefront, not yet by the target"
        if 1.0 < ratio < TARGET_SPEEDUP
        else "at or above the target"
        if ratio >= TARGET_SPEEDUP
        else "not faster than wavefront"
    )
    report.add(
        label,
        points,
        points_max,
        f"correct; makespan {result.makespan_s * 1e3:.3f} ms vs wavefront "
        f"{baseline.makespan_s * 1e3:.3f} ms = {ratio:.2f}x ({verdict}, target "
        f"{TARGET_SPEEDUP}x); weight bytes from L2 {result.level_bytes.get('L2', 0) / 1e6:.1f} MB, "
        f"from L3 {result.level_bytes.get('L3', 0) / 1e6:.1f} MB",
    )


def main(argv: list[str] | None = None) -> int:
    """Command line: grade a policy file and print the report."""
    parser = argparse.ArgumentParser(description="Grade assignment 2 (a policy for small caches).")
    parser.add_argument("policy", help="your policy file (my_policy.py)")
    parser.add_argument("--out", metavar="DIR", help="write a Chrome trace of each run here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    return finish(grade(args.policy, args.out), args.json)


if __name__ == "__main__":
    sys.exit(main())
