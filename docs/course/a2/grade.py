"""Autograder of assignment 2: a scheduling policy for machines with small caches.

Usage::

    python docs/course/a2/grade.py POLICY.py [--instructor DIR] [--out DIR] [--json]

It loads the one policy class of ``POLICY.py``, creates it as ``Policy(machine=machine)`` for
every case and runs it

* in the simulator (:func:`wpsim.engine.simulate`) on the public cases below and, with
  ``--instructor DIR``, on the hidden cases of ``DIR/a2_hidden.yaml`` (other depths, shapes,
  phases and machines);
* once on the real executor (:func:`kernels.executor.execute`) on :data:`REAL_WORKERS` workers,
  on a small workload (the hidden one replaces the public one).

Checks, 10 points:

* **policy** (1): one class, ``@register``-ed, subclassing ``StaticPolicy`` or
  ``DynamicPolicy``, with a name and a one-line description of its own;
* **own work** (1): not a built-in policy, nor one in disguise: no built-in policy class among
  its bases, no function borrowed from one, no built-in policy object created or called while it
  runs (its methods, directly or through an attribute), and not the same schedule as a built-in
  on every case. A policy that fails this check earns nothing for speed;
* **correct everywhere** (2): on every case every task runs exactly once, on distinct cores of
  the machine, after all its predecessors end; no core runs two tasks at once; the graph does
  the workload's work. A policy that fails any case earns nothing for speed;
* **real executor** (1): the same checks on the measured trace, and the outputs equal numpy's
  reference forward pass;
* **speed** (5, shared by the simulated cases): the makespan against the best built-in policy
  on the same case (the fastest of :data:`BUILTINS` at their defaults, as ``wpsim compare`` runs
  them): full marks at :data:`FULL_SPEED` times its speed or faster, none at :data:`NO_SPEED` or
  slower, linear in between. A case whose schedule is exactly a built-in's earns nothing.

``--out DIR`` writes the Chrome trace of each simulated run there (open in ui.perfetto.dev).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import signal
import sys
import threading
import traceback
import types
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gradelib import PREVIEW_NOTE, AnswerError, Report, finish, load_hidden  # noqa: E402

from wpsim.engine import simulate  # noqa: E402
from wpsim.graph import build  # noqa: E402
from wpsim.hardware import load_machine, resolve_machine_path  # noqa: E402
from wpsim.plan import compile_plan  # noqa: E402
from wpsim.policies import REGISTRY, available  # noqa: E402
from wpsim.policies.base import DynamicPolicy, Policy, StaticPolicy  # noqa: E402
from wpsim.workload import Workload, load_workload  # noqa: E402

TITLE = "Assignment 2 (a policy for small caches)"
MACHINE = HERE / "small_cache.yaml"
#: Public cases, on the course machine: (label, workload).
PUBLIC_CASES: list[tuple[str, Workload | Path]] = [
    ("given (workload.yaml)", HERE / "workload.yaml"),
    (
        "other shape: 4-layer GRU, H=160",
        Workload(name="a2-gru", cell="gru", layers=4, hidden=160, input=160, seq_len=64),
    ),
    (
        "other phase: 2-layer GRU training",
        Workload(
            name="a2-train",
            cell="gru",
            layers=2,
            hidden=128,
            input=64,
            seq_len=32,
            phase="training",
        ),
    ),
]
#: The public run on the real executor (small: it measures nothing, it checks the schedule).
PUBLIC_REAL_RUN = Workload(name="a2-real", cell="lstm", layers=3, hidden=32, input=16, seq_len=8)
REAL_WORKERS = 2
#: The built-in policies a submission is compared with: what `wpsim compare` runs on a CPU.
BUILTINS = ("sequential", "layerwise", "wavefront", "pipeline", "helper")
FULL_SPEED, NO_SPEED = 1.0, 0.5  # speed marks: full at this x the best built-in, none at that
FORM_POINTS, OWN_POINTS, CORRECT_POINTS, REAL_POINTS, SPEED_POINTS = 1, 1, 2, 1, 5
TIME_LIMIT_S = 60


class GradingError(Exception):
    """The policy file cannot be graded (no policy in it, or it does not import)."""


@dataclass
class Case:
    """One simulated case: a workload on a machine."""

    label: str
    workload: Workload
    machine: Any


@dataclass
class Outcome:
    """What one simulated case gave."""

    case: Case
    problems: list[str]  # empty: correct
    stopped: bool = False  # the run raised (problems[0] says where and why)
    ratio: float = math.nan  # best built-in makespan / the policy's
    best: str = ""
    detail: str = ""
    identical_to: str = ""  # the built-in whose schedule this is, if any


# ---- loading ------------------------------------------------------------------------------


def load_policy_class(path: str | Path) -> tuple[type[Policy], list[str], str]:
    """Import ``path``; return its policy class, the problems with its form, and its module name.

    Raises
    ------
    GradingError
        The file is missing, does not import, or defines no policy class.
    """
    path = Path(path)
    if not path.exists():
        raise GradingError(f"{path}: file not found")
    module_name = f"a2_student_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(module_name, path.resolve())
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
    return cls, problems, str(path.resolve())


def load_cases(hidden: dict | None, source: str) -> tuple[list[Case], tuple[str, Workload]]:
    """The simulated cases and the real-executor run (public, plus hidden ones if given)."""
    course = load_machine(MACHINE)
    cases = [
        Case(label, load_workload(w) if isinstance(w, Path) else w, course)
        for label, w in PUBLIC_CASES
    ]
    real = ("real executor, 2 workers", PUBLIC_REAL_RUN)
    if hidden is None:
        return cases, real
    try:
        machines = {"course": course}
        for name, spec in (hidden.get("machines") or {}).items():
            machine = load_machine(resolve_machine_path(spec["hw_config"]))
            machines[name] = machine.with_cores(spec["cores"]) if "cores" in spec else machine
        for entry in hidden["cases"]:
            workload = Workload(**entry["workload"])
            cases.append(Case(entry["label"], workload, machines[entry.get("machine", "course")]))
        if hidden.get("real_run"):
            run = hidden["real_run"]
            real = (run["label"], Workload(**run["workload"]))
    except (KeyError, TypeError, ValueError) as error:
        raise AnswerError(f"{source}: bad hidden case: {type(error).__name__}: {error}") from None
    return cases, real


# ---- built-in policies in disguise ------------------------------------------------------------


def builtin_classes() -> dict[type, str]:
    """Every registered policy class that ships with wpsim, by class: its name."""
    available()
    return {
        cls: name
        for name, cls in REGISTRY.items()
        if cls.__module__.startswith("wpsim.") and cls.__module__ != "wpsim.policies.base"
    }


def _functions(cls: type) -> list[types.FunctionType]:
    out = []
    for value in vars(cls).values():
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if isinstance(value, property):
            out += [f for f in (value.fget, value.fset) if f is not None]
        elif isinstance(value, types.FunctionType):
            out.append(value)
    return out


def static_builtin_reasons(cls: type[Policy], builtins: dict[type, str]) -> list[str]:
    """Built-in policies among ``cls``'s bases or in its functions (borrowed, not called)."""
    reasons = [
        f"it subclasses the built-in {builtins[base]!r}" for base in cls.__mro__ if base in builtins
    ]
    codes = {f.__code__: name for b, name in builtins.items() for f in _functions(b)}
    for base in cls.__mro__:
        if base.__module__.startswith("wpsim."):
            continue
        for f in _functions(base):
            if f.__code__ in codes:
                reasons.append(
                    f"{base.__name__}.{f.__name__} is the built-in "
                    f"{codes[f.__code__]!r}'s own function"
                )
    return reasons


class CallWatcher:
    """Records, while active, every call of a built-in policy's code or on a built-in policy
    object (``sys.setprofile``). The one-core ``sequential`` is left out: it is the baseline
    :func:`wpsim.engine.simulate` runs by itself, and its decisions are worth nothing here."""

    def __init__(self, builtins: dict[type, str]) -> None:
        watched = {cls: name for cls, name in builtins.items() if name != "sequential"}
        self.builtin_codes = {
            f.__code__: name for cls, name in watched.items() for f in _functions(cls)
        }
        self.base_codes = {
            f.__code__ for cls in (Policy, StaticPolicy, DynamicPolicy) for f in _functions(cls)
        }
        self.watched = watched
        self.called: set[str] = set()  # names of the built-ins whose code ran
        self.held: set[str] = set()  # why an attribute holds a built-in

    def _profile(self, frame, event, arg) -> None:
        if event != "call":
            return
        code = frame.f_code
        if code in self.builtin_codes:
            self.called.add(self.builtin_codes[code])
        elif code in self.base_codes:
            name = self.builtin_name(frame.f_locals.get("self"))
            if name:
                self.called.add(name)

    def builtin_name(self, obj: Any) -> str:
        """The built-in policy ``obj`` is an instance of ('' if none)."""
        for cls in type(obj).__mro__:
            if cls in self.watched:
                return self.watched[cls]
        return ""

    @contextlib.contextmanager
    def active(self):
        previous = sys.getprofile()
        sys.setprofile(self._profile)
        try:
            yield
        finally:
            sys.setprofile(previous)

    def inspect(self, policy: Any) -> None:
        """Note built-in policy objects kept in ``policy``'s attributes (one level into
        containers)."""
        for key, value in vars(policy).items():
            values = (
                value.values()
                if isinstance(value, dict)
                else (value if isinstance(value, list | tuple | set) else [value])
            )
            for item in values:
                name = self.builtin_name(item)
                if name:
                    self.held.add(f"its attribute {key!r} holds a built-in {name!r} policy")

    def reasons(self) -> list[str]:
        """What the runs watched so far showed, one line each."""
        return sorted(self.held) + [
            f"it creates or calls the built-in {name!r} while it runs"
            for name in sorted(self.called)
        ]


# ---- checking a run -----------------------------------------------------------------------


def schedule_problems(trace, plan, n_cores: int, limit: int = 5) -> list[str]:
    """What is wrong with ``trace`` as a schedule of ``plan`` on ``n_cores`` cores."""
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
            problems.append(
                f"{labels[tid]} ran on cores {list(cores)}: expected distinct cores "
                f"0..{n_cores - 1}"
            )
            break
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
                problems.append(
                    f"core {core} ran {labels[b]} (from {s1 * 1e6:.3f} us) while "
                    f"still running {labels[a]} (until {e0 * 1e6:.3f} us)"
                )
                break
        if len(problems) >= limit:
            break
    return problems[:limit]


def group_problem(groups: Any, n_cores: int) -> str:
    """What is wrong with ``core_groups(n_cores)``'s answer ('' if nothing)."""
    if not isinstance(groups, list | tuple) or not groups:
        return f"core_groups({n_cores}) returned {groups!r}: expected a list of tuples of cores"
    owner: dict[Any, int] = {}
    for g, group in enumerate(groups):
        if not isinstance(group, tuple | list) or not group:
            return f"core_groups({n_cores}) returned the group {group!r}: expected a tuple of cores"
        for core in group:
            if isinstance(core, bool) or not isinstance(core, int) or not 0 <= core < n_cores:
                return (
                    f"core_groups({n_cores}) returned a group with core {core!r}: this "
                    f"machine has cores 0..{n_cores - 1}"
                )
            if core in owner:
                return (
                    f"core_groups({n_cores}) puts core {core} in groups {owner[core]} and {g}: "
                    "groups must not share cores"
                )
            owner[core] = g
    return ""


def home_problem(policy: Policy, workload: Workload, groups: list) -> str:
    """For a static policy: a ``home_group`` answer that is not a group ('' if none)."""
    if not isinstance(policy, StaticPolicy) or type(policy).push is not StaticPolicy.push:
        return ""  # only StaticPolicy.push reads home_group
    plan = compile_plan(build(workload, **policy.graph_options(workload, 1)))
    policy.reset(plan, [tuple(g) for g in groups])
    for tid, task in enumerate(plan.tasks):
        g = policy.home_group(tid)
        if isinstance(g, bool) or not isinstance(g, int) or not 0 <= g < len(groups):
            return (
                f"home_group({tid}) returned {g!r} for {task.label}: there are "
                f"{len(groups)} groups, 0..{len(groups) - 1}"
            )
    return ""


def same_schedule(a, tasks_a, b, tasks_b) -> bool:
    """Whether two traces run the same tasks on the same cores at the same times."""
    if len(a) != len(b):
        return False

    def runs(trace, tasks):
        return {
            tasks[t].label: (tuple(c), s, e)
            for t, c, s, e in zip(trace.task, trace.cores, trace.start_s, trace.end_s, strict=True)
        }

    ra, rb = runs(a, tasks_a), runs(b, tasks_b)
    if ra.keys() != rb.keys():
        return False
    scale = max(a.makespan_s, 1e-12)
    return all(
        ra[k][0] == rb[k][0]
        and abs(ra[k][1] - rb[k][1]) <= 1e-9 * scale
        and abs(ra[k][2] - rb[k][2]) <= 1e-9 * scale
        for k in ra
    )


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise ``TimeoutError`` after ``seconds`` (main thread on POSIX only; else no limit)."""
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"it ran for more than {seconds:g} s (an endless loop?)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def explain(error: BaseException, student_file: str) -> str:
    """One line on why a run stopped, with the line of the student's file it stopped in."""
    text = f"{type(error).__name__}: {error}"
    where = ""
    for frame in reversed(traceback.extract_tb(error.__traceback__)):
        if frame.filename == student_file:
            where = f" ({Path(student_file).name} line {frame.lineno}, in {frame.name})"
            break
    if isinstance(error, NotImplementedError):
        return f"the run stopped at {text}{where} -- implement it"
    if "stalled" in str(error):
        return (
            f"the run stopped: {text}{where} -- every task pushed must eventually be returned "
            "by assign to an idle group: a policy that holds tasks back leaves cores idle "
            "forever"
        )
    if isinstance(error, TypeError) and "machine" in str(error):
        return (
            f"the run failed: {text}{where} -- the grader creates your policy as "
            "Policy(machine=machine)"
        )
    return f"the run failed: {text}{where}"


def speed_points(ratio: float, points_max: float) -> float:
    """Points for running ``ratio`` times the best built-in's speed."""
    if not math.isfinite(ratio):
        return 0.0
    fraction = (ratio - NO_SPEED) / (FULL_SPEED - NO_SPEED)
    return round(points_max * min(1.0, max(0.0, fraction)), 2)


_BASELINES: dict[tuple[str, str], dict[str, Any]] = {}


def run_case(
    cls,
    case: Case,
    builtins: dict[str, type[Policy]],
    watcher: CallWatcher,
    student_file: str,
    out,
    limit_s: float,
) -> Outcome:
    """Simulate the policy and every built-in (``builtins``: name -> class) on one case."""
    workload, machine = case.workload, case.machine
    key = (workload.model_dump_json(), machine.model_dump_json())
    if key not in _BASELINES:  # the simulator is deterministic: one run per case and process
        _BASELINES[key] = {
            name: simulate(workload, machine, builtins[name](), sequential_s=1.0)
            for name in BUILTINS
        }
    baselines = _BASELINES[key]
    try:
        with time_limit(limit_s), watcher.active():
            policy = cls(machine=machine)
            policy.graph_options(workload, 1)  # the order simulate calls them in
            groups = policy.core_groups(machine.total_cores)
            wrong = group_problem(groups, machine.total_cores) or home_problem(
                policy, workload, groups
            )
            if wrong:
                return Outcome(case, [wrong])
            result = simulate(workload, machine, policy, sequential_s=1.0)
            plan = compile_plan(build(workload, **policy.graph_options(workload, 1)))
    except Exception as error:  # the student's code: report whatever it raises
        return Outcome(case, [explain(error, student_file)], stopped=True)
    watcher.inspect(policy)
    if out is not None:
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        result.trace.to_chrome(
            folder / f"{workload.name}_{cls.name}.json",
            [t.label for t in plan.tasks],
            [t.layer for t in plan.tasks],
            process_name=f"{cls.name} on {workload.name}",
        )
    problems = schedule_problems(result.trace, plan, machine.total_cores)
    want_flops = sum(task.flops for _, task in build(workload).nodes(data="task"))
    got_flops = sum(task.flops for task in plan.tasks)
    if not math.isclose(got_flops, want_flops, rel_tol=1e-9):
        problems.append(
            f"the graph from graph_options does {got_flops:.4g} flops, the workload "
            f"{want_flops:.4g}: it must do the same work"
        )
    if problems:
        return Outcome(case, problems)
    best = min(BUILTINS, key=lambda name: baselines[name].makespan_s)
    ratio = baselines[best].makespan_s / result.makespan_s
    used = len({c for cores in result.trace.cores for c in cores})
    idle = (
        f"; {machine.total_cores - used} of its {machine.total_cores} cores never ran a task"
        if used < machine.total_cores
        else ""
    )
    detail = (
        f"makespan {result.makespan_s * 1e3:.3f} ms vs the best built-in, {best}, "
        f"{baselines[best].makespan_s * 1e3:.3f} ms: {ratio:.2f}x its speed; weights from L2 "
        f"{result.level_bytes.get('L2', 0) / 1e6:.1f} MB, from L3 "
        f"{result.level_bytes.get('L3', 0) / 1e6:.1f} MB{idle}"
    )
    identical = next(
        (
            name
            for name, b in baselines.items()
            if same_schedule(result.trace, result.tasks, b.trace, b.tasks)
        ),
        "",
    )
    return Outcome(case, [], ratio=ratio, best=best, detail=detail, identical_to=identical)


def real_run(cls, workload: Workload, student_file: str, limit_s: float) -> str:
    """Run the policy on the real executor; return what is wrong ('' if nothing)."""
    import numpy as np

    from kernels import forward, init_input, init_params
    from kernels.executor import execute

    machine = load_machine(MACHINE).with_cores(REAL_WORKERS)
    try:
        with time_limit(limit_s):
            policy = cls(machine=machine)
            policy.graph_options(workload, 1)  # the order execute calls them in
            wrong = group_problem(policy.core_groups(REAL_WORKERS), REAL_WORKERS)
            if wrong:
                return wrong
            result = execute(workload, policy, REAL_WORKERS, seed=0)
            plan = compile_plan(build(workload, **policy.graph_options(workload, 1)))
    except Exception as error:  # the student's code: report whatever it raises
        return explain(error, student_file)
    problems = schedule_problems(result.trace, plan, REAL_WORKERS)
    want = forward(workload, init_params(workload, seed=0), init_input(workload, seed=0))[0]
    if not np.allclose(result.outputs["output"], want, rtol=1e-4, atol=1e-5):
        problems.append("the outputs differ from numpy's reference forward pass")
    return "; ".join(problems)


# ---- grading ------------------------------------------------------------------------------


def grade(
    path: str | Path,
    out: str | Path | None = None,
    instructor: str | Path | None = None,
    real: bool = True,
    limit_s: float = TIME_LIMIT_S,
) -> Report:
    """Grade the policy file at ``path``.

    Parameters
    ----------
    out : path, optional
        Folder for the Chrome traces of the simulated runs.
    instructor : path, optional
        The instructor folder: run its hidden cases too (else a preview of the public ones).
    real : bool
        Run the policy on the real executor (the tests turn it off where it cannot matter).
    limit_s : float
        Time limit of each run of the policy.

    Raises
    ------
    AnswerError
        The instructor's hidden cases cannot be read.
    """
    hidden = load_hidden(instructor, "a2")
    cases, (real_label, real_workload) = load_cases(hidden, f"{instructor}/a2_hidden.yaml")
    report = Report(TITLE)
    saved = {name: REGISTRY[name] for name in available()}  # restored when grading ends
    builtins = builtin_classes()
    share = SPEED_POINTS / len(cases)
    try:
        try:
            cls, problems, student_file = load_policy_class(path)
        except GradingError as error:
            report.add("policy", 0, FORM_POINTS, str(error))
            for name, points in (
                ("own work", OWN_POINTS),
                ("correct everywhere", CORRECT_POINTS),
                (real_label, REAL_POINTS),
            ):
                report.add(name, 0, points, "not graded: no policy to grade")
            for case in cases:
                report.add(case.label, 0, share, "not run: no policy to grade")
            return report
        if cls.name in saved and saved[cls.name] is not cls and saved[cls.name] in builtins:
            problems.append(f"the name {cls.name!r} is a built-in policy's; choose your own")
        report.add(
            "policy",
            0 if problems else FORM_POINTS,
            FORM_POINTS,
            "; ".join(problems) or f"{cls.__name__} ({cls.name!r}) is well formed",
        )
        watcher = CallWatcher(builtins)
        shipped = {name: saved[name] for name in BUILTINS}  # as registered before the import
        outcomes: list[Outcome] = []
        for case in cases:
            if any(o.stopped and "ran for more than" in o.problems[0] for o in outcomes):
                outcomes.append(
                    Outcome(case, ["not run: an earlier case ran out of time"], stopped=True)
                )
                continue
            outcomes.append(run_case(cls, case, shipped, watcher, student_file, out, limit_s))
        if any(o.problems for o in outcomes):
            real_wrong = "not run: the policy already fails in the simulator"
        elif not real:
            real_wrong = "not run (turned off)"
        else:
            real_wrong = real_run(cls, real_workload, student_file, limit_s)
        real_item = (
            real_label,
            0 if real_wrong else REAL_POINTS,
            REAL_POINTS,
            real_wrong
            or f"correct schedule and outputs on {REAL_WORKERS} workers "
            f"({real_workload.layers}-layer {real_workload.cell.upper()})",
        )
        _grade_outcomes(report, cls, builtins, watcher, outcomes, real_item, share)
    finally:
        REGISTRY.clear()
        REGISTRY.update(saved)
    report.notes.append(
        f"speed: full marks at {FULL_SPEED:g}x the speed of the best built-in "
        f"policy or faster, none at {NO_SPEED:g}x or slower"
    )
    if hidden is None:
        report.notes.append(PREVIEW_NOTE)
    return report


def _grade_outcomes(
    report: Report,
    cls,
    builtins,
    watcher: CallWatcher,
    outcomes: list[Outcome],
    real_item: tuple,
    share: float,
) -> None:
    """The own-work, correctness, real-run and speed items."""
    reasons = static_builtin_reasons(cls, builtins) + watcher.reasons()
    correct = [o for o in outcomes if not o.problems]
    copies = {o.identical_to for o in correct}
    if correct and len(correct) == len(outcomes) and all(o.identical_to for o in correct):
        reasons.append(f"its schedule is the built-in {' / '.join(sorted(copies))}'s on every case")
    if reasons:
        report.add(
            "own work",
            0,
            OWN_POINTS,
            "what a built-in policy already does earns nothing for speed: " + "; ".join(reasons),
        )
    elif not correct:
        report.add("own work", 0, OWN_POINTS, "not judged: the policy ran no case correctly")
    else:
        report.add(
            "own work",
            OWN_POINTS,
            OWN_POINTS,
            "no built-in policy among its bases, functions, objects or schedules",
        )
    failed = [o for o in outcomes if o.problems]
    if failed:
        names = ", ".join(repr(o.case.label) for o in failed)
        report.add(
            "correct everywhere",
            0,
            CORRECT_POINTS,
            f"fails on {len(failed)} of {len(outcomes)} cases ({names}); a policy must "
            "run every case correctly to earn anything for speed",
        )
    else:
        report.add(
            "correct everywhere",
            CORRECT_POINTS,
            CORRECT_POINTS,
            f"correct schedules on all {len(outcomes)} cases",
        )
    report.add(*real_item)
    for o in outcomes:
        where = f"{o.case.workload.name} on {o.case.machine.total_cores} cores"
        if o.stopped:
            report.add(o.case.label, 0, share, f"{where}: {o.problems[0]}")
        elif o.problems:
            report.add(
                o.case.label, 0, share, f"{where}: incorrect schedule: " + "; ".join(o.problems)
            )
        elif reasons:
            report.add(
                o.case.label,
                0,
                share,
                f"{where}: correct; {o.detail}; no speed marks for a built-in policy",
            )
        elif failed:
            report.add(
                o.case.label,
                0,
                share,
                f"{where}: correct; {o.detail}; no speed marks while other cases fail",
            )
        elif o.identical_to:
            report.add(
                o.case.label,
                0,
                share,
                f"{where}: correct; {o.detail}; but this schedule "
                f"is exactly the built-in {o.identical_to!r}'s: no speed marks",
            )
        else:
            report.add(
                o.case.label, speed_points(o.ratio, share), share, f"{where}: correct; {o.detail}"
            )


def main(argv: list[str] | None = None) -> int:
    """Command line: grade a policy file and print the report."""
    parser = argparse.ArgumentParser(description="Grade assignment 2 (a policy for small caches).")
    parser.add_argument("policy", help="your policy file (my_policy.py)")
    parser.add_argument(
        "--instructor", metavar="DIR", help="the instructor folder: run its hidden cases too"
    )
    parser.add_argument("--out", metavar="DIR", help="write a Chrome trace of each run here")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = grade(args.policy, args.out, args.instructor)
    except AnswerError as error:
        print(f"{TITLE}: cannot grade: {error}")
        return 2
    return finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
