"""Shared pieces of the course autograders: a score report, YAML loading, safe formulas.

The graders (``a1/grade.py``, ``a2/grade.py``, ``a3/grade.py``) are plain scripts; each puts this
folder on ``sys.path`` and imports this module. Nothing here depends on the ``wpsim`` command
line, only on the library.
"""

from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

COURSE_DIR = Path(__file__).resolve().parent


@dataclass
class Item:
    """One graded check: points earned of ``points_max``, and what to tell the student."""

    name: str
    points: float
    points_max: float
    message: str

    @property
    def status(self) -> str:
        """``ok``, ``partial`` or ``wrong``."""
        if self.points >= self.points_max:
            return "ok"
        return "partial" if self.points > 0 else "wrong"


@dataclass
class Report:
    """A score and one feedback line per check.

    Examples
    --------
    >>> r = Report("demo")
    >>> r.add("q1", 1, 1, "right")
    >>> r.add("q2", 0, 2, "missing")
    >>> r.score, r.total
    (1, 3)
    >>> print(r.render())
    demo: 1/3
      ok       q1: right
      wrong    q2: missing
    """

    title: str
    items: list[Item] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, points: float, points_max: float, message: str) -> None:
        """Record one check."""
        self.items.append(Item(name, points, points_max, message))

    @property
    def score(self) -> float:
        """Points earned."""
        return _tidy(sum(item.points for item in self.items))

    @property
    def total(self) -> float:
        """Points available."""
        return _tidy(sum(item.points_max for item in self.items))

    def item(self, name: str) -> Item:
        """The check called ``name`` (``KeyError`` if there is none)."""
        for item in self.items:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: score, total and every check."""
        return {
            "title": self.title,
            "score": self.score,
            "total": self.total,
            "items": [
                {
                    "name": i.name,
                    "status": i.status,
                    "points": _tidy(i.points),
                    "points_max": _tidy(i.points_max),
                    "message": i.message,
                }
                for i in self.items
            ],
            "notes": list(self.notes),
        }

    def render(self) -> str:
        """The report as text: a score line, then one line per check."""
        lines = [f"{self.title}: {_tidy(self.score)}/{_tidy(self.total)}"]
        lines += [f"  {item.status:<8} {item.name}: {item.message}" for item in self.items]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def _tidy(x: float) -> float:
    """Whole numbers as ints, others rounded to 2 decimals (for printing scores)."""
    return int(x) if float(x).is_integer() else round(x, 2)


class AnswerError(Exception):
    """The answer file cannot be read at all (the grader prints it and scores 0)."""


def load_yaml(path: str | Path) -> Any:
    """Parse a YAML answer file; a missing or malformed file raises :class:`AnswerError`."""
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise AnswerError(f"{path}: file not found") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise AnswerError(f"{path}: not valid YAML{where}") from None


def load_hidden(instructor: str | Path | None, assignment: str) -> dict[str, Any] | None:
    """The hidden cases of ``assignment`` (``a1``, ``a2``) from the instructor folder.

    ``None`` when no instructor folder is given: the grader then runs its public cases only (the
    preview a student runs). The folder holds ``<assignment>_hidden.yaml``; a missing or
    malformed file raises :class:`AnswerError` (the grader cannot grade as the course does).
    """
    if instructor is None:
        return None
    path = Path(instructor) / f"{assignment}_hidden.yaml"
    data = load_yaml(path)
    if not isinstance(data, dict):
        raise AnswerError(f"{path}: expected a mapping of hidden cases")
    return data


PREVIEW_NOTE = (
    "preview: only the public cases ran; the course grades with hidden cases too (same checks, "
    "other sizes and shapes), so a submission tuned to the public cases can pass here and fail there"
)


def relative_error(got: float, want: float) -> float:
    """``|got - want| / |want|`` (absolute error when ``want`` is 0)."""
    return abs(got - want) / abs(want) if want else abs(got - want)


# ---- formulas ------------------------------------------------------------------------------

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_FUNCTIONS = {"min": min, "max": max, "ceil": math.ceil, "floor": math.floor}


class FormulaError(ValueError):
    """A formula uses something other than numbers, the allowed names and + - * / // % **."""


def evaluate_formula(text: str, names: dict[str, float]) -> float:
    """Evaluate an arithmetic formula such as ``"L + ceil(T / K) - 1"`` safely.

    Only numbers, the variables in ``names``, ``+ - * / // % **``, parentheses and the functions
    ``min``, ``max``, ``ceil`` and ``floor`` are allowed.

    Examples
    --------
    >>> evaluate_formula("L + ceil(T / K) - 1", {"L": 4, "T": 10, "K": 3})
    7
    >>> evaluate_formula("__import__('os')", {"L": 1})
    Traceback (most recent call last):
    ...
    gradelib.FormulaError: allowed: the variables L; the functions min, max, ceil, floor (got '__import__')
    """
    try:
        tree = ast.parse(str(text), mode="eval")
    except SyntaxError:
        raise FormulaError(f"not a formula: {text!r}") from None
    return _eval(tree.body, names)


def _eval(node: ast.AST, names: dict[str, float]) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in names:
            return names[node.id]
        raise _unknown(node.id, names)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left, names), _eval(node.right, names)
        if isinstance(node.op, ast.Pow) and abs(right) > 64:
            raise FormulaError(f"exponent too large: {ast.unparse(node)!r}")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _eval(node.operand, names)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
        if node.func.id not in _FUNCTIONS:
            raise _unknown(node.func.id, names)
        return _FUNCTIONS[node.func.id](*(_eval(arg, names) for arg in node.args))
    raise FormulaError(f"unsupported syntax: {ast.unparse(node)!r}")


def _unknown(name: str, names: dict[str, float]) -> FormulaError:
    return FormulaError(
        f"allowed: the variables {', '.join(names)}; the functions {', '.join(_FUNCTIONS)} "
        f"(got {name!r})"
    )


def finish(report: Report, as_json: bool) -> int:
    """Print ``report`` (text, or JSON with ``as_json``); the exit status is always 0."""
    text = report.render()
    if as_json:
        import json

        text = json.dumps(report.to_dict(), indent=2)
    try:
        print(text)
    except BrokenPipeError:  # e.g. piped into `head`
        pass
    return 0


def fail(title: str, message: str) -> int:
    """Report an answer file that cannot be graded at all: score 0, exit status 2."""
    print(f"{title}: 0\n  error    {message}")
    return 2
