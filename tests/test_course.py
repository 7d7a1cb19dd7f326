"""The course autograders are themselves tested, graded as the course grades (with the hidden
cases of ``docs/course/instructor/``): the reference solution and a second, independently written
solution of each assignment pass; the untouched starters score 0 with one line per missing
piece; wrong submissions of many kinds (tables ``A1_WRONG``, ``A2_WRONG``, ``A3_WRONG``) each lose
the check they get wrong, with a message that says what is wrong; and the students' archive
(``make handout``) holds no solution and no hidden case.

This file embeds right and wrong answers: the archive leaves it out.
"""

from __future__ import annotations

import doctest
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COURSE = ROOT / "docs" / "course"
INSTRUCTOR = COURSE / "instructor"
SOLUTIONS = INSTRUCTOR / "solutions"
INDEPENDENT = INSTRUCTOR / "independent"


def load(relative: str, name: str):
    """Import a grader (or gradelib) from its path, as ``python docs/course/...`` would."""
    sys.path.insert(0, str(COURSE))
    try:
        spec = importlib.util.spec_from_file_location(name, COURSE / relative)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(COURSE))
    return module


@pytest.fixture(scope="module")
def a1():
    return load("a1/grade.py", "a1_grade")


@pytest.fixture(scope="module")
def a2():
    return load("a2/grade.py", "a2_grade")


@pytest.fixture(scope="module")
def a3():
    return load("a3/grade.py", "a3_grade")


def messages(report) -> str:
    return "\n".join(f"{item.name}: {item.message}" for item in report.items)


def test_gradelib_examples_run():
    gradelib = load("gradelib.py", "gradelib")
    failures, tried = doctest.testmod(gradelib, optionflags=doctest.IGNORE_EXCEPTION_DETAIL)
    assert tried > 0 and failures == 0


def test_formulas_are_evaluated_safely():
    gradelib = load("gradelib.py", "gradelib")
    assert gradelib.evaluate_formula("2 * (L + T - 1) + 1", {"L": 2, "T": 4}) == 11
    for bad in ("__import__('os').system('true')", "L.__class__", "[L]", "lambda: 1", "L +"):
        with pytest.raises(gradelib.FormulaError):
            gradelib.evaluate_formula(bad, {"L": 1, "T": 1})


# ---- assignment 1 ---------------------------------------------------------------------------


def test_a1_reference_and_independent_solutions_score_full_marks(a1):
    for path in (SOLUTIONS / "a1_answers.yaml", INDEPENDENT / "a1_answers.yaml"):
        report = a1.grade(path, INSTRUCTOR)
        assert report.score == report.total == 34, messages(report)
        assert not report.notes  # graded as the course grades, not a preview


def test_a1_starter_scores_zero_and_says_what_is_missing(a1):
    report = a1.grade(COURSE / "a1" / "answers.yaml", INSTRUCTOR)
    assert report.score == 0
    assert all("missing" in item.message for item in report.items)
    assert len(report.items) == 24


def answers_with(tmp_path: Path, old: str, new: str) -> Path:
    """The reference answers with one line changed."""
    text = (SOLUTIONS / "a1_answers.yaml").read_text()
    assert old in text, old
    path = tmp_path / "answers.yaml"
    path.write_text(text.replace(old, new))
    return path


#: Wrong answers of different kinds: (lines replaced, check that loses its points, what the
#: message must say). Each is graded on its own: everything else in the file is right.
A1_WRONG = {
    "off-by-one span formula": (
        ('stacked_span: "L + T - 1"', 'stacked_span: "L + T"'),
        "formulas.stacked_span",
        "off by one at every size",
    ),
    "hard-coded to the examples' shapes": (
        ('stacked_max_width: "min(L, T)"', 'stacked_max_width: "min(L, T, 5)"'),
        "formulas.stacked_max_width",
        "gives 5 at L=7, T=20, but that graph has 7",
    ),
    "a chunk count without ceil": (
        ('"L + ceil(T / K) - 1"', '"L + T / K - 1"'),
        "formulas.stacked_span_chunked",
        "a number of tasks is a whole number",
    ),
    "bidirectional span as if unidirectional": (
        ("critical_path_tasks: 10 ", "critical_path_tasks: 6 "),
        "bidirectional.critical_path_tasks",
        "BOTH directions",
    ),
    "training without the weight-gradient task": (
        ('training_span: "2 * (L + T - 1) + 1"', 'training_span: "2 * (L + T - 1)"'),
        "formulas.training_span",
        "off by one at every size",
    ),
    "another family's formula copied": (
        (
            'training_span_chunked: "2 * (L + ceil(T / K) - 1) + 1"',
            'training_span_chunked: "L + ceil(T / K) - 1"',
        ),
        "formulas.training_span_chunked",
        "but that graph has",
    ),
    "a multiply-add counted as one flop": (
        ("total_flops: 1105536", "total_flops: 552768"),
        "stacked.total_flops",
        "a multiply-add counts as two flops",
    ),
    "a constant instead of a formula": (
        ('stacked_n_tasks: "L * T"', 'stacked_n_tasks: "18"'),
        "formulas.stacked_n_tasks",
        "gives 18 at L=1, T=1, but that graph has 1",
    ),
}


@pytest.mark.parametrize("kind", list(A1_WRONG))
def test_a1_wrong_answers_fail_with_a_specific_message(a1, tmp_path, kind):
    (old, new), check, says = A1_WRONG[kind]
    report = a1.grade(answers_with(tmp_path, old, new), INSTRUCTOR)
    item = report.item(check)
    assert item.points == 0 and says in item.message, item.message
    assert report.score == report.total - item.points_max, messages(report)
    # numbers are never revealed, only their direction; formulas show where they disagree
    assert "1105536" not in item.message


def test_a1_a_formula_fitted_to_the_public_sizes_fails_only_at_the_hidden_ones(a1, tmp_path):
    (old, new), check, _ = A1_WRONG["hard-coded to the examples' shapes"]
    path = answers_with(tmp_path, old, new)
    assert a1.grade(path).item(check).points == 2  # the student's preview cannot tell
    graded = a1.grade(path, INSTRUCTOR).item(check)
    assert graded.points == 0 and "right at 9 of 10 sizes only" in graded.message


def test_a1_hidden_sizes_cover_every_family_and_chunking(a1):
    import yaml

    hidden = yaml.safe_load((INSTRUCTOR / "a1_hidden.yaml").read_text())
    sizes, chunked = hidden["sizes"], hidden["chunked_sizes"]
    assert {"bidirectional_span_chunked", "training_span_chunked"} <= set(a1.FORMULAS)
    assert any(L > T for L, T in sizes) and any(T == 1 for _, T in sizes)
    assert any(T % K for _, T, K in chunked) and any(K > T for _, T, K in chunked)
    public = {tuple(p) for p in a1.POINTS} | {tuple(p) for p in a1.CHUNK_POINTS}
    assert not public & ({tuple(p) for p in sizes} | {tuple(p) for p in chunked})


def test_a1_unreadable_answers_and_bad_formulas(a1, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("stacked: [unclosed\n")
    assert a1.main([str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().out
    odd = tmp_path / "odd.yaml"
    odd.write_text(
        'stacked: {n_tasks: "many"}\nformulas: {stacked_span: "open(\'x\')", '
        'stacked_n_tasks: "10 ** 10 ** 10"}\n'
    )
    report = a1.grade(odd)
    assert "not a number" in report.item("stacked.n_tasks").message
    assert "cannot evaluate" in report.item("formulas.stacked_span").message
    assert "exponent too large" in report.item("formulas.stacked_n_tasks").message
    assert a1.main([str(SOLUTIONS / "a1_answers.yaml"), "--instructor", str(tmp_path)]) == 2
    assert "a1_hidden.yaml: file not found" in capsys.readouterr().out


def test_a1_runs_as_a_script_from_anywhere(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(COURSE / "a1" / "grade.py"),
            str(SOLUTIONS / "a1_answers.yaml"),
            "--instructor",
            str(INSTRUCTOR),
            "--json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["score"] == report["total"] == 34 and report["notes"] == []


# ---- assignment 2 ---------------------------------------------------------------------------

#: Every submission below starts with these lines (imports, and the constructor the grader calls).
HEAD = """
from wpsim.policies import register
from wpsim.policies.base import DynamicPolicy, StaticPolicy


class MachineAware:
    def __init__(self, machine=None, **options):
        super().__init__(**options)
        self.machine = machine
"""

#: Wrong submissions of different kinds: source, then (check that loses its points, what the
#: message must say, the highest score allowed with the hidden cases).
A2_WRONG = {
    "hard-coded to the examples' shapes": (
        HEAD
        + '''
@register
class FourByFour(MachineAware, StaticPolicy):
    """The issue's example: four groups of four cores, home_group = layer."""

    name = "test-four-by-four"
    description = "four fixed groups of four cores, one layer each"

    def core_groups(self, n_cores):
        return [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15)]

    def home_group(self, tid):
        return self.plan.tasks[tid].layer
''',
        ("hidden: 8-layer LSTM", "home_group(128) returned 4 for cell[l4,fwd,t0]", 3),
    ),
    "a subclass of a built-in": (
        HEAD
        + """
from wpsim.policies.layerwise import Layerwise


@register
class Faster(MachineAware, Layerwise):
    name = "test-faster"
    description = "layerwise, renamed"
""",
        ("own work", "it subclasses the built-in 'layerwise'", 4),
    ),
    "a wrapped built-in": (
        HEAD
        + '''
from wpsim.policies import get_policy


@register
class Wrapper(MachineAware, StaticPolicy):
    """Delegates every decision to a built-in held in an attribute."""

    name = "test-wrapper"
    description = "pipeline with four helpers, by delegation"

    def core_groups(self, n_cores):
        self.inner = get_policy("pipeline", helpers=4)
        return self.inner.core_groups(n_cores)

    def reset(self, plan, groups):
        super().reset(plan, groups)
        self.inner.reset(plan, groups)

    def push(self, tid):
        self.inner.push(tid)

    def assign(self, idle):
        return self.inner.assign(idle)
''',
        ("own work", "holds a built-in 'pipeline' policy", 4),
    ),
    "a copied built-in": (
        HEAD
        + '''
@register
class Copied(MachineAware, StaticPolicy):
    """layerwise's source, pasted and renamed."""

    name = "test-copied"
    description = "per layer: input GEMM for all steps, then each step split across all cores"

    def graph_options(self, workload, chunk):
        return {"chunk": 1, "hoist_input": workload.seq_len, "instances": self.instances}

    def core_groups(self, n_cores):
        return [tuple(range(n_cores))]

    def home_group(self, tid):
        return 0

    def priority(self, tid):
        return (tid,)
''',
        ("own work", "its schedule is the built-in layerwise's on every case", 4),
    ),
    "a built-in's functions borrowed": (
        HEAD
        + '''
from wpsim.policies.pipeline import Pipeline


@register
class Borrowed(MachineAware, StaticPolicy):
    """Its own groups and mapping, pipeline's function to read it."""

    name = "test-borrowed"
    description = "groups of four, layer affinity"
    home_group = Pipeline.home_group

    def core_groups(self, n_cores):
        return [tuple(range(g, g + 4)) for g in range(0, n_cores - 3, 4)]

    def reset(self, plan, groups):
        super().reset(plan, groups)
        self._home = [layer % len(groups) for layer in plan.layer_id]
''',
        ("own work", "Borrowed.home_group is the built-in 'pipeline''s own function", 4),
    ),
    "a deadlock": (
        HEAD
        + '''
@register
class Stuck(MachineAware, DynamicPolicy):
    """Never hands out a task of the top layer: its cores wait forever."""

    name = "test-stuck"
    description = "holds the top layer back"

    def assign(self, idle):
        top = max(t.layer for t in self.plan.tasks)
        return [(g, tid) for g, tid in super().assign(idle) if self.plan.tasks[tid].layer < top]
''',
        ("given (workload.yaml)", "leaves cores idle forever", 1),
    ),
    "cores left idle": (
        HEAD
        + '''
@register
class OneCore(MachineAware, StaticPolicy):
    """Every task on core 0: correct, and 15 cores idle."""

    name = "test-one-core"
    description = "everything on one core"

    def core_groups(self, n_cores):
        return [(0,)]

    def home_group(self, tid):
        return 0
''',
        ("given (workload.yaml)", "15 of its 16 cores never ran a task", 5),
    ),
    "hard-coded to 16 cores": (
        HEAD
        + '''
@register
class SixteenCores(MachineAware, StaticPolicy):
    """Groups of four over cores 0..15, whatever the machine."""

    name = "test-sixteen"
    description = "groups of four cores, layer affinity"

    def core_groups(self, n_cores):
        return [tuple(range(g, g + 4)) for g in range(0, 16, 4)]

    def home_group(self, tid):
        return self.plan.layer_id[tid] % len(self.groups)
''',
        ("hidden: 8-layer LSTM on 12 cores, 1 MiB L2", "this machine has cores 0..11", 3),
    ),
    "tasks started before their inputs": (
        HEAD
        + '''
@register
class Eager(MachineAware, StaticPolicy):
    """Hands out tasks in id order whether or not they are ready."""

    name = "test-eager"
    description = "ignores dependencies"

    def reset(self, plan, groups):
        super().reset(plan, groups)
        self._next = 0

    def push(self, tid):
        pass

    def assign(self, idle):
        out = []
        for g in idle:
            if self._next < self.plan.n_tasks:
                out.append((g, self._next))
                self._next += 1
        return out
''',
        ("given (workload.yaml)", "before its predecessor", 1),
    ),
    "two groups sharing a core": (
        HEAD
        + '''
@register
class Overlapping(MachineAware, DynamicPolicy):
    """Pairs of cores that overlap: (0, 1), (1, 2), ..."""

    name = "test-overlapping"
    description = "overlapping pairs of cores"

    def core_groups(self, n_cores):
        return [(c, c + 1) for c in range(n_cores - 1)]
''',
        ("given (workload.yaml)", "puts core 1 in groups 0 and 1", 1),
    ),
    "more work than the workload": (
        HEAD
        + '''
@register
class Doubled(MachineAware, DynamicPolicy):
    """Asks for two copies of the workload."""

    name = "test-doubled"
    description = "two instances"

    def graph_options(self, workload, chunk):
        return {"chunk": chunk, "instances": 2}
''',
        ("given (workload.yaml)", "must do the same work", 1),
    ),
}


def write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / f"{name.replace(' ', '_')}.py"
    path.write_text(source)
    return path


@pytest.fixture(scope="module")
def a2_graded():
    """Grade every submission once, as the course does (hidden cases; the real executor only
    for the policies that get there and whose result the tests read)."""
    import tempfile

    reports = {}
    a2 = load("a2/grade.py", "a2_grade_wrong")
    with tempfile.TemporaryDirectory() as folder:
        for kind, (source, _) in A2_WRONG.items():
            reports[kind] = a2.grade(
                write(Path(folder), kind, source), instructor=INSTRUCTOR, real=False
            )
    return reports


def test_a2_reference_and_independent_solutions_score_full_marks(a2):
    from wpsim import policies

    policies.available()
    before = dict(policies.REGISTRY)
    for path, least in ((SOLUTIONS / "a2_policy.py", 10), (INDEPENDENT / "a2_policy.py", 9)):
        report = a2.grade(path, instructor=INSTRUCTOR)
        assert report.score >= least, messages(report)
        for check in ("policy", "own work", "correct everywhere"):
            assert report.item(check).status == "ok", messages(report)
        assert "correct schedule and outputs" in report.items[3].message
        assert len(report.items) == 4 + 3 + 7  # public and hidden cases, the real run
    assert dict(policies.REGISTRY) == before  # the grader cleans up after itself


@pytest.mark.parametrize("kind", list(A2_WRONG))
def test_a2_wrong_submissions_fail_with_a_specific_message(a2_graded, kind):
    report = a2_graded[kind]
    check, says, most = A2_WRONG[kind][1]
    item = report.item(check)
    assert item.points < item.points_max and says in item.message, messages(report)
    assert report.score <= most, messages(report)


def test_a2_shape_tuned_policy_passes_the_preview_and_fails_the_hidden_cases(a2, tmp_path):
    path = write(tmp_path, "four", A2_WRONG["hard-coded to the examples' shapes"][0])
    preview = a2.grade(path, real=False)
    assert preview.item("correct everywhere").status == "ok" and preview.score >= 8
    graded = a2.grade(path, instructor=INSTRUCTOR, real=False)
    message = graded.item("hidden: 8-layer LSTM").message
    assert "returned 4 for cell[l4,fwd,t0]: there are 4 groups, 0..3" in message


def test_a2_real_executor_run_catches_a_policy_that_only_the_simulator_accepts(a2, tmp_path):
    """A policy that needs more cores than the executor's two workers: fine in the simulator's
    public cases, not on the real executor."""
    source = A2_WRONG["hard-coded to 16 cores"][0]
    report = a2.grade(write(tmp_path, "sixteen", source))
    assert report.item("correct everywhere").status == "ok"
    real = report.item("real executor, 2 workers")
    assert real.points == 0 and real.message, messages(report)


def test_a2_endless_loop_is_stopped(a2, tmp_path):
    source = (
        HEAD
        + """
@register
class Spin(MachineAware, DynamicPolicy):
    name = "test-spin"
    description = "never returns"

    def assign(self, idle):
        while True:
            pass
"""
    )
    report = a2.grade(write(tmp_path, "spin", source), real=False, limit_s=0.5)
    assert "ran for more than 0.5 s" in report.item("given (workload.yaml)").message


def test_a2_starter_scores_zero_with_specific_feedback(a2):
    report = a2.grade(COURSE / "a2" / "my_policy.py", real=False)
    assert report.score == 0
    text = messages(report)
    assert "NotImplementedError: TODO: core_groups" in text and "implement it" in text
    assert "one-line description" in report.item("policy").message


def test_a2_name_clash_keeps_the_builtin_baseline(a2, tmp_path):
    from wpsim.policies import REGISTRY
    from wpsim.policies.wavefront import Wavefront

    source = (
        HEAD
        + """
@register
class Impostor(MachineAware, DynamicPolicy):
    name = "wavefront"
    description = "a second wavefront"
"""
    )
    report = a2.grade(write(tmp_path, "clash", source), real=False)
    assert "is a built-in policy's" in report.item("policy").message
    assert "its schedule is the built-in wavefront's on every case" in messages(report)
    assert REGISTRY["wavefront"] is Wavefront


def test_a2_missing_or_broken_file(a2, tmp_path):
    report = a2.grade(tmp_path / "nope.py")
    assert report.score == 0 and "file not found" in report.item("policy").message
    report = a2.grade(write(tmp_path, "broken", "import no_such_module_here\n"))
    assert "does not import: ModuleNotFoundError" in report.item("policy").message


def test_a2_speed_points_scale(a2):
    assert a2.speed_points(0.4, 1) == 0 and a2.speed_points(0.5, 1) == 0
    assert a2.speed_points(0.75, 1) == 0.5 and a2.speed_points(3.0, 1) == 1


def test_a2_reference_is_faster_for_the_reason_it_gives(a2):
    """Measured here, not taken from the grader: on the handout's workload the reference beats
    every built-in, and its weight slices stay in L2."""
    from wpsim.machines import load_machine
    from wpsim.model.workload import load_workload
    from wpsim.sim.engine import simulate

    cls, problems, _ = a2.load_policy_class(SOLUTIONS / "a2_policy.py")
    assert not problems
    machine = load_machine(a2.MACHINE)
    workload = load_workload(COURSE / "a2" / "workload.yaml")
    ours = simulate(workload, machine, cls(machine=machine), sequential_s=1.0)
    for name in a2.BUILTINS:
        assert ours.makespan_s < simulate(workload, machine, name, sequential_s=1.0).makespan_s
    assert ours.level_bytes["L3"] == 0 and ours.level_bytes["L2"] > 0


def test_a2_reference_sizes_every_cell_from_its_declaration(a2, tmp_path):
    """The reference keeps no table of cells: its estimate reads a step's flops from the
    declaration, so every registered cell is sized, and a cell declared in YAML exactly as a
    built-in one is sized exactly as that one."""
    import yaml

    from wpsim.cells import cell_names, cell_to_dict, get_cell
    from wpsim.machines import load_machine
    from wpsim.model.workload import Workload
    from wpsim.sim.engine import simulate

    cls, problems, _ = a2.load_policy_class(SOLUTIONS / "a2_policy.py")
    assert not problems
    machine = load_machine(a2.MACHINE)
    shape = dict(layers=3, hidden=128, input=64, seq_len=16)
    for name in cell_names():
        workload = Workload(cell=name, **shape)
        policy = cls(machine=machine)
        k, steps = policy.choose(workload, machine.total_cores)
        assert machine.total_cores % k == 0 and steps in (1, 2, 4, 8, 16)
        assert simulate(workload, machine, policy, sequential_s=1.0).makespan_s > 0
    (tmp_path / "mine.yaml").write_text(
        yaml.safe_dump({**cell_to_dict(get_cell("gru")), "name": "mine"})
    )
    declared = Workload(cell=str(tmp_path / "mine.yaml"), **shape)
    gru = Workload(cell="gru", **shape)
    policy = cls(machine=machine)
    assert policy.choose(declared, 16) == policy.choose(gru, 16)
    assert policy.estimate_s(declared, 16, 4, 4) == policy.estimate_s(gru, 16, 4, 4)


# ---- assignment 3 ---------------------------------------------------------------------------

EXAMPLE = COURSE / "a3" / "example"
A3_REFERENCE = SOLUTIONS / "a3"
A3_INDEPENDENT = INDEPENDENT / "a3"


def test_a3_reference_and_independent_solutions_score_full_marks(a3):
    for folder in (A3_REFERENCE, A3_INDEPENDENT):
        report = a3.grade(folder / "claims.yaml")
        assert report.score == report.total == 10, messages(report) + "\n" + str(report.notes)


def a3_submission(tmp_path: Path, change) -> Path:
    """A copy of the reference submission with ``change(claims, folder)`` applied to it."""
    import shutil

    import yaml

    folder = tmp_path / "submission"
    shutil.copytree(A3_REFERENCE, folder)
    claims = yaml.safe_load((folder / "claims.yaml").read_text())
    change(claims, folder)
    (folder / "claims.yaml").write_text(yaml.safe_dump(claims, sort_keys=False))
    return folder / "claims.yaml"


def finding(claims: dict, mechanism: str) -> dict:
    return next(f for f in claims["findings"] if f["mechanism"] == mechanism)


def constant_prediction(claims, folder):
    for entry in claims["configurations"]:
        entry["predicted_speedup"] = 1.0


def tasks_of_ten_microseconds(claims, folder):
    finding(claims, "task_time")["measured_us"] = 10


def model_was_right(claims, folder):
    """The measured speed-up of the worst configuration said to equal the prediction."""
    for entry in claims["configurations"]:
        entry["measured_speedup"] = entry["predicted_speedup"]


def keywords_without_numbers(claims, folder):
    text = (
        "dispatch overhead, cache misses, memory bandwidth, barrier synchronisation, noise "
        "from other tenants and the Python interpreter all slow the measured run down"
    )
    for f in claims["findings"]:
        for key in list(f):
            if key.endswith(("_us", "_percent", "_ms")):
                f[key] = None
        f["text"] = text


def no_discrepancy(claims, folder):
    """Right numbers for a configuration where the model's utilisation is the measured one."""
    claims["findings"][0] = {
        "mechanism": "utilisation",
        "trace": "traces/wavefront_1w.json",
        "policy": "wavefront",
        "workers": 1,
        "measured_percent": 99.8,
        "simulated_percent": 100.0,
        "text": "one worker is busy all the time in the measured trace and in the simulated one, "
        "as it should be",
    }


def example_files(claims, folder):
    import shutil

    for name in ("machine.yaml", "validate.json"):
        shutil.copy(EXAMPLE / name, folder / name)


def another_machine_file(claims, folder):
    import shutil

    shutil.copy(A3_INDEPENDENT / "machine.yaml", folder / "machine.yaml")


def wrong_worst(claims, folder):
    claims["worst"] = {"policy": "sequential", "workers": 2}


def another_configurations_trace(claims, folder):
    finding(claims, "task_time")["trace"] = "traces/wavefront_1w.json"


def too_few_rounds(claims, folder):
    data = json.loads((folder / "validate.json").read_text())
    for row in data["rows"]:
        row["measured_makespans_s"] = row["measured_makespans_s"][:2]
    (folder / "validate.json").write_text(json.dumps(data))


def made_up_explanation(claims, folder):
    """The issue's example: 1.0x everywhere, '2.0x speed-up, 10 us tasks'."""
    constant_prediction(claims, folder)
    for entry in claims["configurations"]:
        entry["measured_speedup"] = 2.0
    claims["findings"] = [
        {
            "mechanism": "task_time",
            "trace": "traces/wavefront_2w.json",
            "policy": "wavefront",
            "workers": 2,
            "kind": "cell",
            "layer": 1,
            "measured_us": 10,
            "simulated_us": 10,
            "text": "The executor reaches a 2.0x speed-up with 10 us tasks: dispatch overhead, "
            "caches and memory bandwidth explain the rest of the error, as expected.",
        }
    ]


#: Wrong submissions: change, (check that loses its points, what its message says), most points.
A3_WRONG = {
    "a constant prediction": (
        constant_prediction,
        ("predicted: wavefront on 2 worker(s)", "with your machine file the simulator predicts"),
        10 - 2 / 3,  # the 1-worker and sequential configurations do predict 1.0x
    ),
    "numbers inconsistent with the submitted traces": (
        tasks_of_ten_microseconds,
        (
            "finding 1 (task_time, wavefront on 2 worker(s))",
            "measured_us: you say 10, the trace's mean task is",
        ),
        9,
    ),
    "a measured speed-up outside the spread of the rounds": (
        model_was_right,
        ("measured: wavefront on 2 worker(s)", "their spread allows"),
        9,
    ),
    "keywords without numbers": (
        keywords_without_numbers,
        ("finding 1 (task_time, wavefront on 2 worker(s))", "measured_us: missing"),
        6,
    ),
    "a finding that explains nothing": (
        no_discrepancy,
        ("finding 1 (utilisation, wavefront on 1 worker(s))", "this does not explain an error"),
        9,
    ),
    "the course's example files": (
        example_files,
        ("files", "this is the course's example validation"),
        0,
    ),
    "a validation run with another machine file": (
        another_machine_file,
        ("files", "it was not run with this machine file"),
        0,
    ),
    "the wrong configuration as worst": (
        wrong_worst,
        ("worst", "is not the configuration whose predicted speed-up is furthest"),
        9,
    ),
    "another configuration's trace": (
        another_configurations_trace,
        ("files", "tasks ran on workers [0]; wavefront on 2 worker(s) runs on [0, 1]"),
        8,  # the point for the files and the finding that cites the trace
    ),
    "too few rounds to judge the noise": (
        too_few_rounds,
        ("files", "fewer than 3 rounds"),
        0,
    ),
    "the issue's made-up explanation": (
        made_up_explanation,
        ("finding 1 (task_time, wavefront on 2 worker(s))", "measured_us: you say 10"),
        4,
    ),
}


@pytest.mark.parametrize("kind", list(A3_WRONG))
def test_a3_wrong_submissions_fail_with_a_specific_message(a3, tmp_path, kind):
    change, (check, says), most = A3_WRONG[kind]
    report = a3.grade(a3_submission(tmp_path, change))
    item = report.item(check)
    assert item.points < item.points_max and says in item.message, messages(report)
    assert report.score <= most, messages(report)


def test_a3_starter_and_unreadable_files(a3, tmp_path, capsys):
    report = a3.grade(COURSE / "a3" / "claims.yaml")
    assert report.score == 0 and "machine.yaml: file not found" in report.item("files").message
    bad = tmp_path / "claims.yaml"
    bad.write_text("machine: [unclosed\n")
    assert a3.main([str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().out
    bad.write_text("machine: machine.yaml\nvalidation: validate.json\n")
    (tmp_path / "machine.yaml").write_text((A3_REFERENCE / "machine.yaml").read_text())
    (tmp_path / "validate.json").write_text("{")
    report = a3.grade(bad)
    assert "not the output of `wpsim validate --json`" in report.item("files").message


def test_a3_grader_reads_traces_as_the_handout_says(a3):
    """The numbers the handout derives by hand from the example trace are the grader's."""
    import statistics

    from wpsim.machines import load_machine

    data = json.loads((EXAMPLE / "validate.json").read_text())
    rows = {(r["policy"], r["workers"]): r for r in data["rows"]}
    sub = a3.Submission(EXAMPLE, {}, load_machine(EXAMPLE / "machine.yaml"), data, rows)
    evidence = a3.Evidence(sub)
    runs = evidence.trace("traces/wavefront_2w.json", "wavefront", 2)
    plan = evidence.plan("wavefront")
    assert round(1e6 * a3.mean_task_s(runs, plan, "cell", 2), 1) == 106.4
    assert round(a3.utilisation_percent(runs, 2), 1) == 31.5
    assert round(1e6 * statistics.median(a3.ready_latencies_s(runs, plan)), 1) == 51.3
    # and the simulator's numbers are those wpsim validate recorded with that machine file
    for (policy, workers), row in rows.items():
        assert abs(evidence.predicted_speedup(policy, workers) - row["predicted_speedup"]) < 1e-6


def test_a3_measured_tolerance_follows_the_spread_of_the_rounds(a3):
    assert a3.measured_tolerance([1.0] * 5) == 0.02
    steady, noisy = [1.30, 1.31, 1.32, 1.33, 1.34], [0.62, 0.93, 1.33, 1.43, 1.45]
    assert a3.measured_tolerance(steady) < 0.05 < 0.15 < a3.measured_tolerance(noisy)


def test_a3_grader_examples_run(a3):
    failures, tried = doctest.testmod(a3)
    assert tried > 0 and failures == 0


def test_a3_example_validation_is_real_validate_output():
    """The provided file has the schema `wpsim validate --json` writes."""
    from wpsim.measure.validate import KIND_KEYS, ROW_KEYS

    data = json.loads((EXAMPLE / "validate.json").read_text())
    assert {"rows", "per_kind", "workload_spec"} <= set(data)
    for row in data["rows"]:
        assert set(ROW_KEYS) <= set(row)
    for group in data["per_kind"]:
        assert set(KIND_KEYS) <= set(group)


# ---- the students' archive ------------------------------------------------------------------


def test_handout_archive_has_no_solution_and_no_hidden_case(tmp_path):
    import tarfile

    import yaml

    builder = load("build_handout.py", "build_handout")
    failures, tried = doctest.testmod(builder)
    assert tried > 0 and failures == 0
    archive = tmp_path / "handout.tar.gz"
    names = builder.build(archive)
    with tarfile.open(archive) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    assert set(members) == {f"wpsim-course/{n}" for n in names}
    paths = [n.removeprefix("wpsim-course/") for n in members]
    assert not [p for p in paths if "instructor" in p or p.endswith("test_course.py")]
    for needed in (
        "a1/grade.py",
        "a2/grade.py",
        "a3/grade.py",
        "gradelib.py",
        "a1/answers.yaml",
        "a2/my_policy.py",
        "a3/claims.yaml",
        "a3/example/validate.json",
        "a2/handout.md",
        "README.md",
    ):
        assert f"docs/course/{needed}" in paths, needed
    assert "wpsim/sim/engine.py" in paths and "pyproject.toml" in paths  # wpsim installs from it
    # no instructor file's content under another name ...
    secret_files = [
        p for p in INSTRUCTOR.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    ]
    assert len(secret_files) >= 8
    contents = set(members.values())
    assert not [p for p in secret_files if p.read_bytes() in contents]
    # ... nor the answers, the solutions' names or the hidden cases inside a public file
    answers = yaml.safe_load((SOLUTIONS / "a1_answers.yaml").read_text())["formulas"]
    secrets = [f"{key}: {formula!r}".replace("'", '"') for key, formula in answers.items()]
    secrets += ["CacheFitPipeline", "cache-fit-pipeline", "SlicedWavefront", "sliced-wavefront"]
    hidden = yaml.safe_load((INSTRUCTOR / "a2_hidden.yaml").read_text())
    secrets += [case["label"] for case in hidden["cases"]] + [hidden["real_run"]["label"]]
    secrets += [case["workload"]["name"] for case in hidden["cases"]]
    for folder in (A3_REFERENCE, A3_INDEPENDENT):
        claims = yaml.safe_load((folder / "claims.yaml").read_text())
        secrets += [f["text"][:60] for f in claims["findings"]]
    text = b"\n".join(members.values()).decode("utf-8", errors="replace")
    assert not [s for s in secrets if s in text]


def test_graders_in_the_archive_grade_a_preview(tmp_path):
    import tarfile

    builder = load("build_handout.py", "build_handout")
    builder.build(tmp_path / "handout.tar.gz")
    with tarfile.open(tmp_path / "handout.tar.gz") as tar:
        tar.extractall(tmp_path, filter="data")
    course = tmp_path / "wpsim-course" / "docs" / "course"
    proc = subprocess.run(
        [sys.executable, str(course / "a1" / "grade.py"), str(SOLUTIONS / "a1_answers.yaml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert "34/34" in proc.stdout and "preview: only the public cases ran" in proc.stdout
