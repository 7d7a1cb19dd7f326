"""wpsim.outputs: outputs checked before work, written atomically, planted links never followed."""

from __future__ import annotations

import os
import stat

import pytest

from wpsim.outputs import OutputError, atomic_write, check_output, open_output, write_with


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    atomic_write(target, "new")
    assert target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.json"]


def test_a_failed_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), open_output(target, "--csv") as handle:
        handle.write("half")
        raise RuntimeError("stopped")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]


@pytest.mark.parametrize("case", ["missing", "folder", "readonly"])
def test_unwritable_targets_are_one_line_errors(tmp_path, case):
    if case == "missing":
        target = tmp_path / "no" / "x.png"
    elif case == "folder":
        target = tmp_path
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes into read-only folders")
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        target = folder / "x.png"
    with pytest.raises(OutputError) as info:
        check_output(target, "--gantt")
    message = str(info.value)
    assert message.startswith(f"--gantt {target}") and "\n" not in message


def test_a_full_device_is_reported_not_silently_lost():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    with pytest.raises(OutputError, match="No space left"):
        atomic_write("/dev/full", "x" * 1_000_000, "--trace")


def test_a_symlink_planted_at_a_temporary_name_is_not_followed(tmp_path, monkeypatch):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    names = iter([".out.txt.PLANTED.tmp", ".out.txt.FRESH.tmp"])
    (tmp_path / ".out.txt.PLANTED.tmp").symlink_to(victim)
    import tempfile

    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: names)
    monkeypatch.setattr(tempfile, "_RandomNameSequence", None, raising=False)
    atomic_write(tmp_path / "out.txt", "data")
    assert victim.read_text() == "precious"
    assert (tmp_path / "out.txt").read_text() == "data"


def test_write_with_keeps_the_suffix_for_format_picking_writers(tmp_path):
    seen = []

    def writer(path):
        seen.append(path.suffix)
        path.write_bytes(b"png")

    write_with(tmp_path / "g.png", writer, "--gantt")
    assert seen == [".png"] and (tmp_path / "g.png").read_bytes() == b"png"
