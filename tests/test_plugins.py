"""Plug-ins (wpsim.plugins): a policy or a machine kind in a file outside the repository, or from
an installed package's entry point, in every command and in sweeps; bad ones are one line.

docs/plugins.md runs the documented examples (tests/test_docs.py); these tests check the rest:
other folders, entry points, every command, and the errors.
"""

from __future__ import annotations

import csv
import doctest
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from wpsim import plugins, policies
from wpsim.cli import main
from wpsim.machines import load_machine

POLICY = """
from wpsim.policies.base import DynamicPolicy


class DeepestFirst(DynamicPolicy):
    name = "deepest-first"

    def priority(self, tid):
        task = self.plan.tasks[tid]
        return (-task.layer, self.plan.generation[tid], tid)


class NotAPolicy:
    pass
"""

MACHINE_KIND = '''
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from wpsim.result import Result


class FlatMachine(BaseModel):
    """Every task takes one microsecond."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["flat"] = "flat"
    name: str
    cores: int
    default_policies: ClassVar[list[str]] = ["sequential"]

    def evaluate(self, engine, workload, policy, cores=None, chunk=1, **_):
        n = workload.layers * workload.n_chunks(chunk)
        return Result(engine=engine, policy=policy.describe(), cores=cores or self.cores,
                      makespan_s=n * 1e-6, sequential_s=n * 1e-6, n_tasks=n, utilization=1.0,
                      dram_bytes=0.0, extra={"machine": self.name})
'''


@pytest.fixture
def plugin_dir(tmp_path: Path):
    """A folder outside the repository with a policy file and a machine-kind file."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "my_policy.py").write_text(POLICY)
    (folder / "my_machine.py").write_text(MACHINE_KIND)
    (folder / "flat.yaml").write_text("kind: my_machine.py:FlatMachine\nname: flat\ncores: 4\n")
    policies.available()  # the built-ins register once per process: load them before the copy
    registry = dict(policies.REGISTRY)
    yield folder
    policies.REGISTRY.clear()
    policies.REGISTRY.update(registry)


def test_docstring_examples() -> None:
    assert doctest.testmod(plugins).failed == 0


@pytest.mark.parametrize("command", ["simulate", "predict"])
def test_a_policy_file_runs_in_simulate_and_predict(plugin_dir: Path, command: str, capsys):
    ref = f"{plugin_dir / 'my_policy.py'}:DeepestFirst"
    assert main([command, "-w", "tiny", "--cores", "2", "--policy", ref, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == "deepest-first" and result["n_tasks"] == 18


def test_a_relative_policy_file_from_another_folder(plugin_dir: Path, monkeypatch, capsys):
    monkeypatch.chdir(plugin_dir.parent)
    assert (
        main(
            [
                "compare",
                "-w",
                "tiny",
                "--cores",
                "2",
                "--policies",
                "sequential,mine/my_policy.py:DeepestFirst",
            ]
        )
        == 0
    )
    assert "deepest-first" in capsys.readouterr().out


def test_a_policy_file_runs_for_real(plugin_dir: Path, capsys):
    ref = f"{plugin_dir / 'my_policy.py'}:DeepestFirst"
    args = ["run", "-w", "tiny", "--workers", "2", "--chunk", "2", "--policy", ref, "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == "deepest-first" and result["n_tasks"] == 9


def test_chunk_auto_predicts_with_a_policy_file(plugin_dir: Path, capsys):
    ref = f"{plugin_dir / 'my_policy.py'}:DeepestFirst"
    args = ["run", "-w", "tiny", "--workers", "2", "-m", "xeon8160_2s", "--policy", ref, "--json"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy"] == "deepest-first" and result["chunk_choice"]["source"] == "model"


def test_validate_accepts_a_policy_file(plugin_dir: Path) -> None:
    from wpsim.machines import HW_CONFIG_DIR
    from wpsim.measure.validate import parse_configs

    machine = load_machine(HW_CONFIG_DIR / "xeon_kvm_2core.yaml")
    ref = f"{plugin_dir / 'my_policy.py'}:DeepestFirst"
    assert (ref, 2) in parse_configs([ref], [2], machine)


def test_a_sweep_names_a_policy_file_beside_it(plugin_dir: Path, tmp_path: Path, monkeypatch):
    spec = plugin_dir / "sweep.yaml"
    spec.write_text(
        textwrap.dedent("""\
        workload: tiny
        hardware: xeon8160_2s
        engine: analytic
        vary:
          policy: [wavefront, my_policy.py:DeepestFirst]
          cores: [1, 2]
    """)
    )
    monkeypatch.chdir(tmp_path)  # the spec's folder, not the current one, resolves the file
    # two worker processes: the policy file is loaded in each of them
    assert main(["sweep", str(spec), "--out", "out", "--workers", "2", "--quiet"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "results.csv")))
    assert [row["status"] for row in rows] == ["ok"] * 4
    assert {row["policy_label"] for row in rows} == {"wavefront", "deepest-first"}


def test_a_machine_kind_file(plugin_dir: Path, capsys) -> None:
    machine = load_machine(plugin_dir / "flat.yaml")
    assert type(machine).__name__ == "FlatMachine" and machine.kind == "flat"
    assert main(["compare", "-m", str(plugin_dir / "flat.yaml"), "-w", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "on flat" in out and "sequential" in out and "0.018 ms" in out
    assert main(["predict", "-m", str(plugin_dir / "flat.yaml"), "-w", "tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["makespan_s"] == pytest.approx(18e-6)


def test_a_machine_kind_file_still_validates_its_fields(plugin_dir: Path, capsys) -> None:
    bad = plugin_dir / "bad.yaml"
    bad.write_text("kind: my_machine.py:FlatMachine\nname: flat\ncores: 4\nspeed: 3\n")
    assert main(["predict", "-m", str(bad), "-w", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "speed" in err and str(bad) in err


# ---- entry points ------------------------------------------------------------------------------
@pytest.fixture
def installed(tmp_path: Path) -> dict[str, str]:
    """A package 'installed' on PYTHONPATH: a module and its dist-info with entry points (what
    pip writes), seen by a wpsim started in another process."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "my_plugins.py").write_text(POLICY + MACHINE_KIND)
    info = site / "my_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[wpsim.policies]\ndeepest-first = my_plugins:DeepestFirst\n\n"
        "[wpsim.machine_kinds]\nflat = my_plugins:FlatMachine\n"
    )
    (tmp_path / "flat.yaml").write_text("kind: flat\nname: flat by entry point\ncores: 2\n")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
    return env


def _wpsim(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "wpsim", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
    )


def test_entry_points_name_a_policy_and_a_machine_kind(installed, tmp_path: Path) -> None:
    proc = _wpsim(
        ["simulate", "-w", "tiny", "--cores", "2", "-p", "deepest-first", "--json"],
        installed,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["policy"] == "deepest-first"
    proc = _wpsim(["simulate", "--help"], installed, tmp_path)
    assert "deepest-first" in proc.stdout
    proc = _wpsim(["compare", "-m", "flat.yaml", "-w", "tiny"], installed, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "flat by entry point" in proc.stdout


# ---- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reference", "needle"),
    [
        ("{dir}/missing.py:DeepestFirst", "file not found"),
        ("{dir}/my_policy.py:Missing", "defines no 'Missing'"),
        ("{dir}/my_policy.py:NotAPolicy", "expected a subclass of wpsim.policies.base.Policy"),
        ("{dir}/broken.py:Anything", "importing it failed: ZeroDivisionError"),
        ("no_such_module_xyz:Policy", "cannot import 'no_such_module_xyz'"),
        ("no-such-policy", "expected one of"),
    ],
)
@pytest.mark.parametrize("command", ["simulate", "predict", "run"])
def test_bad_plugins_are_one_line(plugin_dir, reference, needle, command, capsys) -> None:
    (plugin_dir / "broken.py").write_text("1 / 0\n")
    args = [command, "-w", "tiny", "--policy", reference.format(dir=plugin_dir)]
    assert main(args + (["--chunk", "1"] if command == "run" else [])) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err, err


def test_a_bad_machine_kind_file_is_one_line(plugin_dir: Path, capsys) -> None:
    bad = plugin_dir / "nokind.yaml"
    bad.write_text("kind: my_machine.py:Missing\nname: x\n")
    assert main(["simulate", "-m", str(bad), "-w", "tiny"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "field 'kind'" in err and "defines no 'Missing'" in err
