"""Autograder of assignment 1: work and span of RNN task graphs.

Usage::

    python docs/course/a1/grade.py ANSWERS.yaml [--instructor DIR] [--json]

Every answer is checked against wpsim's graph analysis (:func:`wpsim.graph.build` and
:mod:`wpsim.analysis`) of the graphs the handout names: the numbers for graphs A, B and C, the
formulas at (L, T, K) sizes other than those three graphs: the public sizes below and, with
``--instructor DIR``, the hidden sizes of ``DIR/a1_hidden.yaml`` too (stacked, bidirectional,
training and chunked graphs). Numbers are not revealed; a wrong one gets a hint about the usual
mistake behind it. A wrong formula is shown the first size where it disagrees with the graph.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gradelib import (  # noqa: E402
    PREVIEW_NOTE,
    AnswerError,
    FormulaError,
    Report,
    evaluate_formula,
    finish,
    load_hidden,
    load_yaml,
)

from wpsim.analysis import summarize  # noqa: E402
from wpsim.graph import build  # noqa: E402
from wpsim.workload import Workload, load_workload  # noqa: E402

TITLE = "Assignment 1 (work and span)"
GRAPHS = {
    "stacked": "stacked.yaml",
    "bidirectional": "bidirectional.yaml",
    "training": "training.yaml",
}
#: Questions per graph: answer key -> (key of wpsim.analysis.summarize, relative tolerance).
QUESTIONS: dict[str, dict[str, tuple[str, float]]] = {
    "stacked": {
        "n_tasks": ("n_tasks", 0.0),
        "critical_path_tasks": ("critical_path_tasks", 0.0),
        "max_width": ("max_width", 0.0),
        "avg_parallelism_tasks": ("avg_parallelism_tasks", 0.01),
        "total_flops": ("total_flops", 0.005),
        "critical_path_flops": ("critical_path_flops", 0.005),
        "avg_parallelism": ("avg_parallelism", 0.01),
    },
    "bidirectional": {
        "n_tasks": ("n_tasks", 0.0),
        "critical_path_tasks": ("critical_path_tasks", 0.0),
        "max_width": ("max_width", 0.0),
        "avg_parallelism_tasks": ("avg_parallelism_tasks", 0.01),
    },
    "training": {
        "n_tasks": ("n_tasks", 0.0),
        "critical_path_tasks": ("critical_path_tasks", 0.0),
        "avg_parallelism_tasks": ("avg_parallelism_tasks", 0.01),
    },
}
#: Formulas: answer key -> (graph family, analysis key, uses K).
FORMULAS: dict[str, tuple[str, str, bool]] = {
    "stacked_n_tasks": ("stacked", "n_tasks", False),
    "stacked_span": ("stacked", "critical_path_tasks", False),
    "stacked_max_width": ("stacked", "max_width", False),
    "stacked_span_chunked": ("stacked", "critical_path_tasks", True),
    "bidirectional_n_tasks": ("bidirectional", "n_tasks", False),
    "bidirectional_span": ("bidirectional", "critical_path_tasks", False),
    "bidirectional_span_chunked": ("bidirectional", "critical_path_tasks", True),
    "training_n_tasks": ("training", "n_tasks", False),
    "training_span": ("training", "critical_path_tasks", False),
    "training_span_chunked": ("training", "critical_path_tasks", True),
}
#: Public sizes at which formulas are checked, (L, T) and (L, T, K); the hidden ones are in the
#: instructor folder (``a1_hidden.yaml``: ``sizes`` and ``chunked_sizes``).
POINTS = [(1, 1), (2, 3), (3, 7), (5, 4)]
CHUNK_POINTS = [(2, 9, 2), (3, 10, 3), (1, 5, 5), (3, 6, 1)]
NUMBER_POINTS = 1
FORMULA_POINTS = 2


def family(name: str, layers: int, steps: int) -> Workload:
    """A small member of graph family ``name`` (sizes do not change task counts)."""
    options: dict[str, Any] = {"bidirectional": name == "bidirectional"}
    if name == "training":
        options["phase"] = "training"
    return Workload(cell="lstm", layers=layers, hidden=2, input=2, seq_len=steps, **options)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).replace(",", "").replace("_", ""))
    except ValueError:
        return None


def _close(a: float, b: float, tolerance: float) -> bool:
    return abs(a - b) <= max(tolerance * abs(b), 1e-9)


def hint(graph: str, key: str, answer: float, w: Workload, facts: dict, mine: dict) -> str:
    """The likely mistake behind a wrong ``answer`` to ``graph.key`` (no numbers given away)."""
    L, T = w.layers, w.seq_len
    span = facts["critical_path_tasks"]
    if key == "n_tasks":
        if graph == "bidirectional" and answer == L * T:
            return "every layer has two chains, one forward and one reverse in time"
        if graph == "training" and answer in (L * T, 2 * L * T):
            return (
                "training has a backward task for every forward cell, and after them one "
                "weight-gradient task per layer and direction"
            )
        return "count one task per (direction, layer, time step)"
    if key == "critical_path_tasks":
        if answer == facts["n_tasks"]:
            return "that is the work; the span is the number of tasks on the longest chain"
        if graph == "stacked" and answer == L + T:
            return (
                "off by one: a chain from cell (0, 0) to (L-1, T-1) makes L-1 moves up and "
                "T-1 moves forward in time"
            )
        if graph == "bidirectional" and answer == L + T - 1:
            return (
                "layer l+1 at step t needs BOTH directions of layer l, and the reverse chain "
                "of layer l reaches step 0 last: layer l+1 cannot start before it ends"
            )
        if graph == "training":
            s = L + T - 1
            if answer == 2 * s:
                return "after the last backward cell of a layer comes its weight-gradient task"
            if answer in (s, s + 1):
                return (
                    "the backward pass mirrors the forward one: the gradient flows back along "
                    "the whole forward chain"
                )
        return "follow the dependencies: which cell can only start after all the others?"
    if key == "max_width":
        if graph == "bidirectional":
            return "layer l+1 cannot start until both directions of layer l have finished"
        return "cells with the same l + t form one wavefront; how long is the longest one?"
    if key in ("avg_parallelism_tasks", "avg_parallelism"):
        work_key, span_key = (
            ("n_tasks", "critical_path_tasks")
            if key == "avg_parallelism_tasks"
            else ("total_flops", "critical_path_flops")
        )
        work, length = mine.get(work_key), mine.get(span_key)
        if work and length:
            if _close(answer, length / work, 0.01):
                return "inverted: average parallelism is work / span"
            if _close(answer, work / length, 0.01):
                return "consistent with your work and span, but one of them is wrong"
        return "average parallelism is work / span"
    if key == "total_flops":
        if _close(answer, facts["total_flops"] / 2, 0.005):
            return "a multiply-add counts as two flops"
        square = summarize(build(w.model_copy(update={"input": w.hidden})))["total_flops"]
        if _close(answer, square, 0.005):
            return "layer 0 reads `input` features per step, not `hidden`"
        if answer < facts["total_flops"]:
            return "include the element-wise work, E*H*B per cell (E = 21 for an LSTM)"
        return "per cell: 2*G*H*I_l*B + 2*G*H*H*B + E*H*B; see the handout"
    if key == "critical_path_flops":
        heaviest = max(t.flops for _, t in build(w).nodes(data="task"))
        if _close(answer, span * heaviest, 0.005):
            return "every chain passes through layer 0 at least once, and its cells are lighter"
        return "weigh each cell of the chain by its flops; choose the heaviest chain"
    return ""


def grade_numbers(answers: dict, report: Report) -> None:
    """Check the numeric answers for graphs A, B and C against :func:`wpsim.analysis.summarize`."""
    for graph, filename in GRAPHS.items():
        w = load_workload(HERE / filename)
        facts = summarize(build(w))
        given = answers.get(graph) if isinstance(answers.get(graph), dict) else {}
        mine = {k: _number(v) for k, v in given.items()}
        for key, (fact, tolerance) in QUESTIONS[graph].items():
            name = f"{graph}.{key}"
            answer = mine.get(key)
            if given.get(key) is None:
                report.add(name, 0, NUMBER_POINTS, "missing: replace null with your answer")
                continue
            if answer is None:
                report.add(name, 0, NUMBER_POINTS, f"not a number: {given[key]!r}")
                continue
            want = facts[fact]
            if _close(answer, want, tolerance):
                report.add(name, NUMBER_POINTS, NUMBER_POINTS, f"{given[key]} is right")
                continue
            direction = "too high" if answer > want else "too low"
            why = hint(graph, key, answer, w, facts, mine)
            report.add(name, 0, NUMBER_POINTS, f"{given[key]} is {direction}. Hint: {why}")


def formula_hint(results: list[tuple[dict, float, float]]) -> str:
    """The likely mistake behind a formula, from its values and the graphs' at every size."""
    errors = [got - want for _, got, want in results]
    right = sum(1 for e in errors if abs(e) < 1e-9)
    if any(not float(got).is_integer() for _, got, _ in results):
        return (
            "a number of tasks is a whole number: a task covers K steps and the last one may "
            "cover fewer (ceil)"
        )
    if len(set(errors)) == 1 and abs(errors[0]) == 1:
        return "off by one at every size: count the tasks on the chain, not the moves between them"
    if 2 * right >= len(results):
        return (
            f"right at {right} of {len(results)} sizes only: a formula that fits some shapes "
            "is not derived for every L, T (and K)"
        )
    return "build the graph at that size (wpsim graph) and count"


def grade_formulas(answers: dict, report: Report, hidden: dict | None = None) -> None:
    """Evaluate each formula at the public (and hidden) sizes; compare with the graphs there."""
    given = answers.get("formulas") if isinstance(answers.get("formulas"), dict) else {}
    sizes = [tuple(p) for p in POINTS] + [tuple(p) for p in (hidden or {}).get("sizes", [])]
    chunk_sizes = [tuple(p) for p in CHUNK_POINTS] + [
        tuple(p) for p in (hidden or {}).get("chunked_sizes", [])
    ]
    cache: dict[tuple, dict] = {}
    for key, (graph, fact, chunked) in FORMULAS.items():
        name = f"formulas.{key}"
        text = given.get(key)
        if text is None:
            report.add(name, 0, FORMULA_POINTS, "missing: write a formula in L, T (and K)")
            continue
        points = chunk_sizes if chunked else [(L, T, 1) for L, T in sizes]
        wrong = None
        results = []
        try:
            for L, T, K in points:
                names = {"L": L, "T": T, "K": K} if chunked else {"L": L, "T": T}
                got = evaluate_formula(text, names)
                if (graph, L, T, K) not in cache:
                    cache[(graph, L, T, K)] = summarize(build(family(graph, L, T), chunk=K))
                want = cache[(graph, L, T, K)][fact]
                results.append((names, got, want))
                if wrong is None and not math.isclose(got, want, rel_tol=1e-9):
                    wrong = (names, got, want)
        except FormulaError as error:
            report.add(name, 0, FORMULA_POINTS, f"cannot evaluate {text!r}: {error}")
            continue
        except (ZeroDivisionError, OverflowError, TypeError, ValueError) as error:
            report.add(name, 0, FORMULA_POINTS, f"cannot evaluate {text!r}: {error}")
            continue
        if wrong is None:
            report.add(
                name,
                FORMULA_POINTS,
                FORMULA_POINTS,
                f"{text!r} matches the graphs at {len(points)} sizes",
            )
        else:
            names, got, want = wrong
            at = ", ".join(f"{k}={v}" for k, v in names.items())
            report.add(
                name,
                0,
                FORMULA_POINTS,
                f"{text!r} gives {got:g} at {at}, but that graph has {want:g} "
                f"(wpsim graph at those sizes shows it). Hint: {formula_hint(results)}",
            )


def grade(path: str | Path, instructor: str | Path | None = None) -> Report:
    """Grade the answer file at ``path``; with ``instructor``, at the hidden sizes too.

    Raises
    ------
    AnswerError
        When the file (or the instructor's hidden sizes) cannot be read as YAML.
    """
    hidden = load_hidden(instructor, "a1")
    answers = load_yaml(path)
    report = Report(TITLE)
    if not isinstance(answers, dict):
        answers = {}
        report.notes.append(f"{path}: expected the sections of answers.yaml (stacked, ...)")
    grade_numbers(answers, report)
    grade_formulas(answers, report, hidden)
    if hidden is None:
        report.notes.append(PREVIEW_NOTE)
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: grade a file, print the report; exit status 2 if it cannot be read."""
    parser = argparse.ArgumentParser(description="Grade assignment 1 (work and span).")
    parser.add_argument("answers", help="your answers.yaml")
    parser.add_argument(
        "--instructor", metavar="DIR", help="the instructor folder: grade at its hidden sizes too"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = grade(args.answers, args.instructor)
    except AnswerError as error:
        print(f"{TITLE}: cannot grade: {error}")
        return 2
    return finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
