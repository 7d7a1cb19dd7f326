"""wpsim as a package: the wheel carries the machine files and workloads and works from any
folder; ``python -m wpsim``; one version; every package listed; ``wpsim demo`` fails loudly."""

from __future__ import annotations

import doctest
import os
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

import wpsim
from wpsim import resources
from wpsim.cli import main

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]


def test_docstring_examples() -> None:
    assert doctest.testmod(resources).failed == 0


def test_every_package_of_the_source_tree_is_listed() -> None:
    """pyproject.toml lists the packages (the data folders are mapped into wpsim): a new
    package folder must be added there, or the wheel leaves it out."""
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for top in ("wpsim", "kernels")
        for p in (ROOT / top).rglob("__init__.py")
    }
    listed = set(SETUPTOOLS["packages"])
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    for name, folder in SETUPTOOLS["package-dir"].items():
        assert name in listed and (ROOT / folder / "__init__.py").is_file()


def test_one_version_and_an_spdx_licence() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert SETUPTOOLS["dynamic"]["version"] == {"attr": "wpsim.__version__"}
    assert project["license"] == "MIT"


def test_data_folders_are_the_repository_folders_in_a_checkout() -> None:
    assert resources.data_dir("hw_configs").resolve() == (ROOT / "hw_configs").resolve()
    assert resources.data_dir("workloads").resolve() == (ROOT / "workloads").resolve()
    assert "xeon8160_2s" in resources.names("hw_configs")
    with pytest.raises(ValueError):
        resources.data_dir("reports")


def test_python_dash_m_wpsim(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "wpsim", "--help"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=60)  # fmt: skip
    assert proc.returncode == 0 and "usage: wpsim" in proc.stdout


def test_demo_exits_non_zero_when_a_step_fails(monkeypatch, tmp_path: Path, capsys) -> None:
    from wpsim import cli_sim

    monkeypatch.setattr(cli_sim, "DEFAULT_HARDWARE", "no_such_machine")
    assert main(["demo", "--out", str(tmp_path / "demo")]) == 1
    err = capsys.readouterr().err
    assert "no_such_machine" in err and "2 of 3 steps failed" in err


def test_demo_writes_into_out_by_default(monkeypatch, tmp_path: Path, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    assert (tmp_path / "out" / "demo" / "wavefront_gantt.png").is_file()


# ---- the wheel, installed into a fresh virtual environment -----------------------------------
@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Build the wheel (offline: this environment's setuptools, no dependencies), install it
    into a new virtual environment that sees this one's dependencies but not its wpsim, and
    return (wheel, the new environment's bin folder)."""
    tmp = tmp_path_factory.mktemp("wheel")
    # built from a copy: setuptools leaves build/ behind, whose stale files a later build reuses
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "build", "dist", "out", "*.egg-info", "__pycache__", ".*cache"))  # fmt: skip
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index",
         "--quiet", "--wheel-dir", str(tmp / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp / "dist").glob("wpsim-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=120)  # fmt: skip
    python = venv / "bin" / "python"
    # the new environment imports numpy & co. from this one's site-packages, added after its
    # own: a path in a .pth file is added without running that folder's .pth files, so this
    # environment's editable wpsim stays out
    new_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    Path(new_site, "deps-of-the-test-environment.pth").write_text(
        sysconfig.get_path("purelib") + "\n"
    )
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    return wheel, venv / "bin"


def test_the_wheel_carries_the_data_and_the_type_marker(installed_wheel) -> None:
    wheel, _ = installed_wheel
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in resources.names("hw_configs"):
        assert f"wpsim/hw_configs/{name}.yaml" in names
    for name in resources.names("workloads"):
        assert f"wpsim/workloads/{name}.yaml" in names
    for path in (ROOT / "hw_configs" / "runtimes").glob("*.yaml"):
        assert f"wpsim/hw_configs/runtimes/{path.name}" in names
    assert "wpsim/py.typed" in names and "kernels/executor/__init__.py" in names
    metadata = zipfile.ZipFile(wheel).read(f"wpsim-{wpsim.__version__}.dist-info/METADATA")
    assert b"License-Expression: MIT" in metadata


def test_the_installed_wpsim_works_from_another_folder(installed_wheel, tmp_path: Path) -> None:
    _, bin_dir = installed_wheel
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, cwd=tmp_path, env=env,
                              timeout=300)  # fmt: skip

    where = run(str(bin_dir / "python"), "-c", "import wpsim; print(wpsim.__file__)")
    assert where.returncode == 0 and where.stdout.startswith(str(bin_dir.parent)), where
    demo = run(str(bin_dir / "wpsim"), "demo")
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / "out" / "demo" / "wavefront_trace.json").is_file()
    simulate = run(str(bin_dir / "wpsim"), "simulate", "-w", "tiny", "-m", "xeon8160_2s")
    assert simulate.returncode == 0, simulate.stderr
    assert "tiny-lstm on MareNostrum 4 node" in simulate.stdout
    runtime = run(str(bin_dir / "wpsim"), "simulate", "-w", "tiny", "-m", "xeon8160_2s",
                  "--runtime", "pytorch_eager_cpu")  # fmt: skip
    assert runtime.returncode == 0, runtime.stderr
    declared = run(str(bin_dir / "python"), "-c", "import kernels.declared, wpsim.cells; "
                   "print(wpsim.cells.cell_names())")  # fmt: skip
    assert declared.returncode == 0 and "'lstm'" in declared.stdout, declared.stderr
    version = run(str(bin_dir / "python"), "-m", "wpsim", "--version")
    assert version.stdout.strip() == f"wpsim {wpsim.__version__}"
    report = run(str(bin_dir / "wpsim"), "report", "--list")  # reports/ is the checkout's
    assert report.returncode == 2 and report.stderr.count("\n") == 1
