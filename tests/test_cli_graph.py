"""`wpsim graph` end to end."""

import json
import subprocess
import sys

from wpsim.cli import main


def test_graph_json_has_contract_keys(capsys):
    assert main(["graph", "--workload", "tiny", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in [
        "n_tasks",
        "n_edges",
        "total_flops",
        "critical_path_tasks",
        "critical_path_flops",
        "max_width",
        "avg_parallelism",
    ]:
        assert key in out
    assert out["n_tasks"] == 18 and out["critical_path_tasks"] == 8 and out["max_width"] == 3


def test_graph_text_and_exports(tmp_path, capsys):
    assert (
        main(
            [
                "graph",
                "-w",
                "tiny",
                "--granularity",
                "op",
                "--chunk",
                "2",
                "--profile",
                "--dot",
                str(tmp_path / "g.dot"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "critical path" in out and "wavefront widths" in out
    assert (tmp_path / "g.dot").exists()


def test_bad_workload_is_one_line_nonzero(tmp_path):
    bad = tmp_path / "w.yaml"
    bad.write_text("cell: lstm\nlayers: -2\nhidden: 8\ninput: 8\nseq_len: 3\n")
    proc = subprocess.run(
        [sys.executable, "-m", "wpsim", "graph", "-w", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "w.yaml: field 'layers': got -2" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_help_lists_commands(capsys):
    try:
        main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert "graph" in capsys.readouterr().out
