"""The committed reports match what the code computes (``wpsim report --check``), and the check
finds a difference when there is one."""

from __future__ import annotations

import doctest
import shutil
from pathlib import Path

import pytest

from wpsim import report_check
from wpsim.cli import main
from wpsim.cli_sweep import REPORTS_DIR, discover_reports, report_is_slow


def test_docstring_examples() -> None:
    assert doctest.testmod(report_check).failed == 0


def test_the_committed_fast_reports_match_the_code(capsys) -> None:
    """What CI checks: every report but the slow ones regenerates to the committed data."""
    status = main(["report", "--check"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    fast = [n for n, s in discover_reports().items() if not report_is_slow(s)]
    assert fast and captured.out.count("matches the committed data") == len(fast)


def test_a_slow_report_is_checked_only_by_name(tmp_path: Path, capsys) -> None:
    root = tmp_path / "reports"
    shutil.copytree(REPORTS_DIR / "persistent_rnn", root / "persistent_rnn")
    script = root / "persistent_rnn" / "make_report.py"
    assert not report_is_slow(script)
    script.write_text(script.read_text() + "\nSLOW = True\n")
    assert report_is_slow(script)
    assert main(["report", "--check", "--reports-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert "leaving out the slow persistent_rnn" in out and "matches" not in out
    assert main(["report", "--check", "--reports-dir", str(root), "persistent_rnn"]) == 0
    assert "report persistent_rnn: matches the committed data" in capsys.readouterr().out


@pytest.fixture
def copied_report(tmp_path: Path) -> Path:
    """The persistent_rnn folder (a report of half a second) copied into a reports folder."""
    root = tmp_path / "reports"
    shutil.copytree(REPORTS_DIR / "persistent_rnn", root / "persistent_rnn")
    return root


def test_a_changed_number_is_found(copied_report: Path, capsys) -> None:
    csv_path = copied_report / "persistent_rnn" / "model_mb_scaling.csv"
    lines = csv_path.read_text().splitlines()
    header, first = lines[0].split(","), lines[1].split(",")
    column = header.index("model_step_us")
    first[column] = str(float(first[column]) * 1.01)
    csv_path.write_text("\n".join([lines[0], ",".join(first), *lines[2:]]) + "\n")
    args = ["report", "--check", "--reports-dir", str(copied_report), "persistent_rnn"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "report persistent_rnn: DIFFERS" in err
    assert "model_mb_scaling.csv row 2 column model_step_us" in err


def test_a_changed_word_and_a_missing_file_are_found(copied_report: Path, capsys) -> None:
    folder = copied_report / "persistent_rnn"
    readme = folder / "README.md"
    readme.write_text(readme.read_text().replace("Persistent RNNs", "Persistent CNNs", 1))
    (folder / "capacity.csv").unlink()
    args = ["report", "--check", "--reports-dir", str(copied_report), "persistent_rnn"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "README.md line 1" in err and "capacity.csv: not committed" in err


def test_check_and_out_do_not_mix(tmp_path: Path, capsys) -> None:
    assert main(["report", "--check", "--out", str(tmp_path)]) == 2
    assert "--check" in capsys.readouterr().err


def test_numbers_within_tolerance() -> None:
    match = report_check.numbers_match
    assert match("1.0", "1.0000005") and not match("1.0", "1.00003")
    assert match("6.02", "6.03") and not match("6.02", "6.04")  # one unit of the last digit
    assert not match("48", "49")  # integers are counts: equal or different
    assert match("1,200.5", "1200.5") and match("nan", "nan")
    assert report_check.compare_csv("a,b\n1,x\n", "a,b\n1,x\n2,y\n", "f.csv") == [
        "f.csv: committed 1 rows, regenerated 2"
    ]
