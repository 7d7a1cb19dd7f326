"""``wpsim report --check``: do the committed reports still match what the code computes?

A report folder is regenerated into a temporary folder and every data file it writes (CSV, and
the README and other text) is compared with the committed file of the same name, value by value:

* a number matches when it is within a relative :data:`REL_TOL` (1e-6) of the committed one,
  or, printed with a decimal point or an exponent, within one unit of its last printed digit
  (``6.02`` against ``6.03``: a value on the edge of a rounding step may print either way on
  another platform's floating point); integers (counts, cores) must be equal;
* anything else (a name, a header, the words of a README) must be equal;
* images (PNG) are not compared: their bytes change with the matplotlib and FreeType versions
  that draw them, not with the data.

Examples
--------
>>> compare_text("speed-up 6.02x over 48 cores", "speed-up 6.03x over 48 cores", "a.md")
[]
>>> compare_text("speed-up 6.02x", "speed-up 6.05x", "a.md")
['a.md line 1: committed 6.02, regenerated 6.05']
>>> compare_text("wavefront", "layerwise", "a.md")
["a.md line 1: committed 'wavefront', regenerated 'layerwise'"]
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

#: Relative tolerance of a number (see the module docstring).
REL_TOL = 1e-6
#: Files compared as text with numbers inside (any other suffix but images: as text too).
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".svg", ".pdf"}
#: The most differences listed per file.
MAX_LISTED = 5

_NUMBER = re.compile(r"[-+]?(?:\d[\d,]*\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _last_digit(text: str) -> float:
    """One unit of the last digit ``text`` prints (``'6.02'`` -> 0.01, ``'1,200'`` -> 1)."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 10.0 ** (-decimals + (int(exponent) if exponent else 0))


def numbers_match(committed: str, regenerated: str) -> bool:
    """Whether two printed numbers agree (see the module docstring)."""
    a = float(committed.replace(",", ""))
    b = float(regenerated.replace(",", ""))
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-300):
        return True
    if not all(_is_rounded(text) for text in (committed, regenerated)):
        return False  # integers (counts, core numbers) must be equal
    step = min(_last_digit(committed), _last_digit(regenerated))
    return abs(a - b) <= step * (1 + 1e-9)


def _is_rounded(text: str) -> bool:
    """A number printed with a fraction or an exponent: a float, rounded to its digits."""
    return "." in text or "e" in text.lower()


def _split(text: str) -> list[str]:
    """Text cut into alternating words and numbers (numbers at odd positions)."""
    parts: list[str] = []
    last = 0
    for match in _NUMBER.finditer(text):
        parts += [text[last : match.start()], match.group()]
        last = match.end()
    parts.append(text[last:])
    return parts


def _compare_cell(committed: str, regenerated: str) -> bool:
    a, b = _split(committed), _split(regenerated)
    if len(a) != len(b):
        return False
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if i % 2 == 0:
            if x != y:
                return False
        elif not numbers_match(x, y):
            return False
    return True


def _describe(committed: str, regenerated: str) -> str:
    a, b = _split(committed), _split(regenerated)
    if len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            if i % 2 == 1 and not numbers_match(x, y):
                return f"committed {x}, regenerated {y}"
    return f"committed {committed.strip()[:60]!r}, regenerated {regenerated.strip()[:60]!r}"


def compare_text(committed: str, regenerated: str, name: str) -> list[str]:
    """Line-by-line differences of two texts (numbers within tolerance), one line each."""
    old, new = committed.splitlines(), regenerated.splitlines()
    found = []
    for i, (a, b) in enumerate(zip(old, new, strict=False)):
        if not _compare_cell(a, b):
            found.append(f"{name} line {i + 1}: {_describe(a, b)}")
    if len(old) != len(new):
        found.append(f"{name}: committed {len(old)} lines, regenerated {len(new)}")
    return found


def compare_csv(committed: str, regenerated: str, name: str) -> list[str]:
    """Cell-by-cell differences of two CSV texts (numbers within tolerance), one line each."""
    old = list(csv.reader(io.StringIO(committed)))
    new = list(csv.reader(io.StringIO(regenerated)))
    if old[:1] != new[:1]:
        return [f"{name}: columns differ: committed {old[:1]}, regenerated {new[:1]}"]
    header = old[0] if old else []
    found = []
    for row, (a, b) in enumerate(zip(old[1:], new[1:], strict=False), start=2):
        for col, (x, y) in enumerate(zip(a, b, strict=False)):
            if not _compare_cell(x, y):
                column = header[col] if col < len(header) else str(col)
                found.append(f"{name} row {row} column {column}: {_describe(x, y)}")
        if len(a) != len(b):
            found.append(f"{name} row {row}: committed {len(a)} cells, regenerated {len(b)}")
    if len(old) != len(new):
        found.append(f"{name}: committed {len(old) - 1} rows, regenerated {len(new) - 1}")
    return found


def compare_folders(committed: Path, regenerated: Path) -> tuple[list[str], int, int]:
    """Compare every file written into ``regenerated`` with its namesake in ``committed``.

    Returns
    -------
    (differences, files compared, images skipped)
        At most :data:`MAX_LISTED` differences per file, then a count of the rest.
    """
    differences: list[str] = []
    compared = skipped = 0
    for new in sorted(p for p in regenerated.rglob("*") if p.is_file()):
        name = str(new.relative_to(regenerated))
        if new.suffix.lower() in IMAGE_SUFFIXES:
            skipped += 1
            if not (committed / name).is_file():
                differences.append(f"{name}: not committed")
            continue
        old = committed / name
        if not old.is_file():
            differences.append(f"{name}: not committed")
            continue
        compared += 1
        compare = compare_csv if new.suffix.lower() == ".csv" else compare_text
        found = compare(old.read_text(), new.read_text(), name)
        differences += found[:MAX_LISTED]
        if len(found) > MAX_LISTED:
            differences.append(f"{name}: ... and {len(found) - MAX_LISTED} more differences")
    return differences, compared, skipped


__all__ = ["REL_TOL", "compare_csv", "compare_folders", "compare_text", "numbers_match"]
