"""Autograder of assignment 3: predict the real executor's speed-up, measure it, explain the error.

Usage::

    python docs/course/a3/grade.py PREDICTION.yaml VALIDATE.json [--tolerance 0.25] [--json]
    python docs/course/a3/grade.py PREDICTION.yaml --run [--repeats 3]

``VALIDATE.json`` is the output of ``wpsim validate --json`` (a file you saved, or with ``--run``
the grader runs ``wpsim validate --json`` itself with the workload, machine, policies and worker
counts of your prediction file). Checks, 10 points:

* **coverage** (1): a predicted speed-up for every measured configuration but the baseline;
* **accuracy** (4, shared by the configurations): your predicted speed-up against the measured
  one (the median over rounds): full marks within ``tolerance`` (relative) or anywhere inside the
  range the rounds themselves measured (no prediction can beat the measurement's own
  repeatability), half marks within twice the tolerance;
* **reading the validation** (2): the configuration whose *model* prediction erred most
  (``rel_error``), and the (policy, workers, kind, layer) group whose simulated task duration is
  furthest from the measured one (``per_kind``, ratio furthest from 1);
* **explanation** (3): at least :data:`MIN_WORDS` words; at least two mechanisms named; at least
  one measured number with its unit as evidence.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from gradelib import AnswerError, Report, finish, load_yaml, relative_error  # noqa: E402

TITLE = "Assignment 3 (predict, then measure)"
TOLERANCE = 0.25
MIN_WORDS = 60
COVERAGE_POINTS, ACCURACY_POINTS, WORST_POINTS, KIND_POINTS = 1, 4, 1, 1
BASELINE = ("sequential", 1)
#: Mechanisms an explanation may name; each group counts once.
MECHANISMS: dict[str, tuple[str, ...]] = {
    "dispatch / task overhead": ("dispatch", "overhead", "queue", "scheduling latency"),
    "hand-off / communication": (
        "hand-off",
        "handoff",
        "communication",
        "shared memory",
        "transfer",
    ),
    "barrier / synchronisation": ("barrier", "synchroni"),
    "memory bandwidth": ("dram", "bandwidth", "memory-bound", "memory bound"),
    "caches": ("cache", "l1", "l2", "l3", "resident"),
    "idle cores / critical path": ("idle", "imbalance", "critical path", "span", "wavefront width"),
    "noise / interference": (
        "noise",
        "variance",
        "jitter",
        "tenant",
        "virtual",
        "contention",
        "co-run",
        "corun",
        "frequency",
        "turbo",
        "boost",
    ),  # fmt: skip
    "kernel efficiency": ("gemv", "efficiency", "blas", "numpy", "interpreter", "python"),
    "processes / IPC": ("process", "ipc", "pickl", "serializ", "serialis", "pipe"),
}
EVIDENCE = re.compile(r"\d+(?:\.\d+)?\s*(?:us|µs|ms|s\b|%|x\b|gb/s|mb)", re.IGNORECASE)


def load_validation(path: str | Path) -> dict[str, Any]:
    """Read a ``wpsim validate --json`` file; check it has ``rows``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise AnswerError(f"{path}: file not found") from None
    except json.JSONDecodeError as error:
        raise AnswerError(f"{path}: not JSON ({error.msg} at line {error.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("rows"), list) or not data["rows"]:
        raise AnswerError(f"{path}: expected the output of `wpsim validate --json` (with 'rows')")
    return data


def run_validation(prediction: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Run ``wpsim validate --json`` for the configurations of ``prediction``."""
    rows = [p for p in prediction.get("predictions") or [] if isinstance(p, dict)]
    policies = sorted({str(p.get("policy")) for p in rows} | {"sequential"})
    workers = sorted({int(p.get("workers")) for p in rows if _int(p.get("workers"))} | {1})
    command = [sys.executable, "-m", "wpsim.cli", "validate", "--json",
               "--policies", ",".join(policies), "--workers", ",".join(map(str, workers)),
               "--repeats", str(repeats), "--chunk", "1"]  # fmt: skip
    if prediction.get("workload"):
        command += ["--workload", str(prediction["workload"])]
    if prediction.get("machine"):
        command += ["--hardware", str(prediction["machine"])]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise AnswerError(f"wpsim validate failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return json.loads(proc.stdout)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(str(value).rstrip("xX"))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _key(policy: Any, workers: Any) -> tuple[str, int | None]:
    return (str(policy).strip(), _int(workers))


def _label(key: tuple) -> str:
    return f"{key[0]} on {key[1]} worker(s)"


def grade_predictions(prediction: dict, rows: list[dict], report: Report, tolerance: float) -> None:
    """Coverage and accuracy of the predicted speed-ups."""
    mine: dict[tuple, float | None] = {}
    for entry in prediction.get("predictions") or []:
        if isinstance(entry, dict):
            mine[_key(entry.get("policy"), entry.get("workers"))] = _number(entry.get("speedup"))
    measured = [r for r in rows if (r["policy"], r["workers"]) != BASELINE]
    baseline = next((r for r in rows if (r["policy"], r["workers"]) == BASELINE), None)
    missing = [_label((r["policy"], r["workers"])) for r in measured
               if mine.get((r["policy"], r["workers"])) is None]  # fmt: skip
    if missing:
        report.add("coverage", 0, COVERAGE_POINTS,
                   f"no predicted speed-up for {', '.join(missing)}")  # fmt: skip
    else:
        report.add("coverage", COVERAGE_POINTS, COVERAGE_POINTS,
                   f"a prediction for each of the {len(measured)} measured configurations")  # fmt: skip
    share = ACCURACY_POINTS / max(len(measured), 1)
    for row in measured:
        key = (row["policy"], row["workers"])
        name = f"accuracy: {_label(key)}"
        got = mine.get(key)
        truth = float(row["measured_speedup"])
        model = row.get("predicted_speedup")
        model_text = f"; the simulator said {float(model):.2f}x" if model is not None else ""
        if got is None:
            report.add(name, 0, share, f"no prediction (measured {truth:.2f}x{model_text})")
            continue
        error = relative_error(got, truth)
        low, high = round_spread(row, baseline)
        in_spread = low is not None and low <= got <= high
        points = share if error <= tolerance or in_spread else (
            share / 2 if error <= 2 * tolerance else 0.0)  # fmt: skip
        verdict = ("within" if error <= tolerance else
                   "within twice" if error <= 2 * tolerance else "outside twice")  # fmt: skip
        spread = (f"; the rounds measured {low:.2f}x to {high:.2f}x"
                  + (", and your prediction is in that range" if in_spread else "")
                  if low is not None else "")  # fmt: skip
        report.add(name, points, share,
                   f"you predicted {got:.2f}x, measured {truth:.2f}x (median){model_text}: error "
                   f"{100 * error:.0f}% ({verdict} the {100 * tolerance:.0f}% tolerance){spread}")  # fmt: skip


def round_spread(row: dict, baseline: dict | None) -> tuple[float | None, float | None]:
    """Lowest and highest per-round speed-up of ``row`` (baseline round i / row round i).

    ``wpsim validate`` measures every configuration once per round and reports the median of
    these paired ratios; their range is how repeatable the measurement itself was. ``(None,
    None)`` when the file has no per-round makespans.
    """
    mine = row.get("measured_makespans_s")
    base = (baseline or {}).get("measured_makespans_s")
    if not mine or not base or len(mine) != len(base):
        return None, None
    ratios = [b / m for b, m in zip(base, mine, strict=True) if m and b]
    return (min(ratios), max(ratios)) if ratios else (None, None)


def grade_reading(prediction: dict, data: dict, report: Report) -> None:
    """The configuration the model got most wrong, and the task group furthest from the model."""
    explanation = (
        prediction.get("explanation") if isinstance(prediction.get("explanation"), dict) else {}
    )
    rows = [r for r in data["rows"] if r.get("rel_error") is not None
            and (r["policy"], r["workers"]) != BASELINE]  # fmt: skip
    worst_given = explanation.get("worst") if isinstance(explanation.get("worst"), dict) else {}
    given = _key(worst_given.get("policy"), worst_given.get("workers"))
    if rows:
        largest = max(float(r["rel_error"]) for r in rows)
        worst = [(r["policy"], r["workers"]) for r in rows
                 if float(r["rel_error"]) >= largest - 1e-12]  # fmt: skip
        if given in worst:
            report.add("explanation.worst", WORST_POINTS, WORST_POINTS,
                       f"{_label(given)}: the model's largest speed-up error "
                       f"({100 * largest:.0f}%)")  # fmt: skip
        elif given[1] is None:
            report.add("explanation.worst", 0, WORST_POINTS,
                       "missing: the configuration whose predicted speed-up has the largest "
                       "rel_error in the validation")  # fmt: skip
        else:
            report.add("explanation.worst", 0, WORST_POINTS,
                       f"{_label(given)} is not the configuration with the largest rel_error; "
                       "read the 'error' column of wpsim validate")  # fmt: skip
    groups = [g for g in data.get("per_kind") or [] if _number(g.get("ratio"))]
    kind_given = explanation.get("kind") if isinstance(explanation.get("kind"), dict) else {}
    if groups:
        spread = {id(g): abs(math.log(float(g["ratio"]))) for g in groups}
        largest = max(spread.values())
        best = [g for g in groups if spread[id(g)] >= largest * 0.95 - 1e-12]
        fields = ("policy", "workers", "kind", "layer")
        given_group = tuple(str(kind_given.get(f)) for f in fields)
        if any(tuple(str(g.get(f)) for f in fields) == given_group for g in best):
            report.add("explanation.kind", KIND_POINTS, KIND_POINTS,
                       f"{kind_given.get('kind')} tasks of layer {kind_given.get('layer')} under "
                       f"{_label(given_group[:2])}: simulated/measured furthest from 1")  # fmt: skip
        elif not kind_given or all(kind_given.get(f) is None for f in fields):
            report.add("explanation.kind", 0, KIND_POINTS,
                       "missing: policy, workers, kind and layer of the task group whose "
                       "sim/meas ratio is furthest from 1")  # fmt: skip
        else:
            report.add("explanation.kind", 0, KIND_POINTS,
                       "not the group furthest from the model: compare |log(sim/meas)| over the "
                       "task-by-task table of wpsim validate")  # fmt: skip


def grade_text(prediction: dict, report: Report) -> None:
    """Length, mechanisms and evidence of the free-text explanation."""
    explanation = (
        prediction.get("explanation") if isinstance(prediction.get("explanation"), dict) else {}
    )
    text = str(explanation.get("text") or "")
    words = len(re.findall(r"[A-Za-z]{2,}", text))
    if words >= MIN_WORDS:
        report.add("explanation.length", 1, 1, f"{words} words")
    else:
        report.add("explanation.length", 0, 1,
                   f"{words} words; write at least {MIN_WORDS}: what the traces show and why")  # fmt: skip
    lowered = text.lower()
    named = [group for group, words_ in MECHANISMS.items() if any(w in lowered for w in words_)]
    if len(named) >= 2:
        report.add("explanation.mechanisms", 1, 1, "names " + ", ".join(named))
    else:
        report.add("explanation.mechanisms", 0, 1,
                   "name at least two mechanisms behind the error (e.g. "
                   + ", ".join(list(MECHANISMS)[:4]) + ", ...)" +
                   (f"; found only {named[0]}" if named else ""))  # fmt: skip
    evidence = EVIDENCE.findall(text)
    if evidence:
        report.add("explanation.evidence", 1, 1, f"cites measurements ({', '.join(evidence[:3])})")
    else:
        report.add("explanation.evidence", 0, 1,
                   "cite at least one measured number with its unit (a task time in us, a "
                   "dispatch latency, a speed-up)")  # fmt: skip


def grade(prediction_path: str | Path, validation: str | Path | dict,
          tolerance: float = TOLERANCE) -> Report:  # fmt: skip
    """Grade a prediction file against a validation (a path to the JSON, or the parsed dict).

    Raises
    ------
    AnswerError
        A file cannot be read, or the validation is not ``wpsim validate --json`` output.
    """
    prediction = load_yaml(prediction_path)
    if not isinstance(prediction, dict):
        raise AnswerError(f"{prediction_path}: expected the fields of prediction.yaml")
    data = validation if isinstance(validation, dict) else load_validation(validation)
    report = Report(TITLE)
    spec = data.get("workload_spec")
    if prediction.get("workload") and isinstance(spec, dict):
        from wpsim.workload import load_workload

        try:
            mine = load_workload(prediction["workload"]).model_dump()
        except Exception:  # a path relative to somewhere else: only a note
            mine = None
        if mine is not None and {k: v for k, v in mine.items() if k != "name"} != {
            k: v for k, v in spec.items() if k != "name"
        }:
            report.notes.append("the validation ran another workload than your prediction file's")
    grade_predictions(prediction, data["rows"], report, tolerance)
    grade_reading(prediction, data, report)
    grade_text(prediction, report)
    return report


def main(argv: list[str] | None = None) -> int:
    """Command line: grade a prediction against a validation file (or a run); print the report."""
    parser = argparse.ArgumentParser(description="Grade assignment 3 (predict, then measure).")
    parser.add_argument("prediction", help="your prediction.yaml")
    parser.add_argument("validation", nargs="?", help="the output of wpsim validate --json")
    parser.add_argument("--run", action="store_true", help="run wpsim validate --json now")
    parser.add_argument("--repeats", type=int, default=3, help="with --run (default 3)")
    parser.add_argument("--tolerance", type=float, default=TOLERANCE,
                        help=f"relative error for full accuracy marks (default {TOLERANCE})")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if bool(args.validation) == args.run:
        parser.error("give VALIDATE.json or --run (one of them)")
    try:
        if args.run:
            validation: Any = run_validation(load_yaml(args.prediction), args.repeats)
        else:
            validation = args.validation
        report = grade(args.prediction, validation, args.tolerance)
    except AnswerError as error:
        print(f"{TITLE}: cannot grade: {error}")
        return 2
    return finish(report, args.json)


if __name__ == "__main__":
    sys.exit(main())
