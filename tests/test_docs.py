"""Every example in ``docs/`` runs and prints what the page says; the reference pages are current.

How the Markdown examples are checked (the convention is also written in ``docs/README.md``):

* a ```` ```console ```` block holds commands, each on a line starting with ``$ ``, each followed
  by its expected output (stdout and stderr together, as a terminal shows them). ``wpsim ...``
  runs in this process through :func:`wpsim.cli.main`; ``python SCRIPT ...`` and
  ``python -m MODULE ...`` run with :mod:`runpy`; ``cat FILE`` prints a file. ``...`` in the
  expected output matches anything (doctest's ELLIPSIS), so numbers that depend on the machine can
  be left out while the shape of the output is still checked;
* a ```` ```python ```` block with ``>>>`` prompts is a doctest;
* ``<!-- docs-test: file NAME -->`` on the line before a block writes the block to ``NAME`` first
  (a workload, a policy) so that later examples can use it;
* ``<!-- docs-test: skip REASON -->`` on the line before a block leaves it unchecked. Shell blocks
  (``sh``, ``bash``, ``shell``) must carry it; the number of such blocks is limited below.

All examples of one page run in order in one temporary folder that looks like the repository root
(``docs``, ``workloads``, ``hw_configs``, ... are linked in), so paths read as a user types them,
with a calibration cache of their own (``WPSIM_CACHE_DIR``), empty when the page starts.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib.util
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
LINKED = ("docs", "workloads", "hw_configs", "sweeps", "kernels", "reports", "benchmarks")
#: The most examples the docs may leave unchecked (each with a reason). Keep it small.
MAX_SKIPPED = 6
SHELL_LANGUAGES = {"sh", "bash", "shell", "zsh"}
MARKER = re.compile(r"^<!--\s*docs-test:\s*(skip|file)\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(`{3,})\s*([\w+-]*)[^\n]*$")
CHECKER = doctest.OutputChecker()


@dataclass
class Block:
    """One fenced block of a Markdown page."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    text: str
    marker: tuple[str, str] | None = None  # ("skip", reason) or ("file", name)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def parse_blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page`` with the marker comment just above each, if any."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, language = match.group(1), match.group(2).lower()
        start = i
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(fence):
            body.append(lines[i])
            i += 1
        i += 1
        marker = None
        previous = start - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        if previous >= 0:
            found = MARKER.match(lines[previous].strip())
            if found:
                marker = (found.group(1), found.group(2))
        blocks.append(Block(page, start + 1, language, "\n".join(body) + "\n", marker))
    return blocks


def parse_console(block: Block) -> list[tuple[str, str, int]]:
    """``(command, expected output, line)`` for each ``$ `` line of a console block."""
    commands: list[tuple[str, str, int]] = []
    for offset, line in enumerate(block.text.splitlines()):
        if line.startswith("$ "):
            commands.append((line[2:].strip(), "", block.line + 1 + offset))
        elif commands:
            command, expected, where = commands[-1]
            commands[-1] = (command, expected + line + "\n", where)
        elif line.strip():
            raise AssertionError(f"{block.where}: console output before any '$ ' command")
    return commands


@dataclass
class Stats:
    commands: int = 0
    doctests: int = 0
    skipped: list[str] = field(default_factory=list)


STATS = Stats()


def run_command(command: str) -> tuple[str, int]:
    """Run one console command in this process; return its output and exit status."""
    argv = shlex.split(command)
    buffer = io.StringIO()
    status = 0
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        try:
            if argv[0] == "wpsim":
                from wpsim.cli import main

                status = main(argv[1:]) or 0
            elif argv[0] in ("python", "python3"):
                saved_argv, saved_path = sys.argv, list(sys.path)
                try:
                    if argv[1] == "-m":
                        sys.argv = [argv[2], *argv[3:]]
                        runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
                    else:
                        sys.argv = argv[1:]
                        sys.path.insert(0, str(Path(argv[1]).resolve().parent))
                        runpy.run_path(argv[1], run_name="__main__")
                finally:
                    sys.argv, sys.path[:] = saved_argv, saved_path
            elif argv[0] == "cat":
                for name in argv[1:]:
                    buffer.write(Path(name).read_text())
            else:
                raise AssertionError(f"unsupported command in a console example: {command!r}")
        except SystemExit as exit_:
            code = exit_.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
            if isinstance(code, str):
                buffer.write(code + "\n")
    return buffer.getvalue(), status


def check_output(expected: str, got: str) -> bool:
    got = "\n".join(line.rstrip() for line in got.splitlines()) + "\n"
    expected = "\n".join(line.rstrip() for line in expected.rstrip("\n").splitlines()) + "\n"
    return CHECKER.check_output(expected, got, doctest.ELLIPSIS)


@contextlib.contextmanager
def repository_like_folder(tmp_path: Path):
    """Work in ``tmp_path`` with the repository's data folders linked in; restore afterwards."""
    from wpsim import policies

    for name in LINKED:
        if (ROOT / name).exists():
            (tmp_path / name).symlink_to(ROOT / name, target_is_directory=True)
    policies.available()
    registry = dict(policies.REGISTRY)
    cwd = os.getcwd()
    cache = os.environ.get("WPSIM_CACHE_DIR")
    # a page's own calibration of "this computer" (the tutorial makes one) stays with the page
    os.environ["WPSIM_CACHE_DIR"] = str(tmp_path / ".wpsim-cache")
    os.chdir(tmp_path)
    try:
        yield
    finally:
        os.chdir(cwd)
        if cache is None:
            os.environ.pop("WPSIM_CACHE_DIR", None)
        else:
            os.environ["WPSIM_CACHE_DIR"] = cache
        policies.REGISTRY.clear()
        policies.REGISTRY.update(registry)


def run_page(page: Path, tmp_path: Path) -> list[str]:
    """Run every example of ``page``; return one message per failure."""
    failures: list[str] = []
    globs: dict = {"__name__": "__docs__"}
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    parser = doctest.DocTestParser()
    with repository_like_folder(tmp_path):
        for block in parse_blocks(page):
            if block.marker and block.marker[0] == "skip":
                if not block.marker[1]:
                    failures.append(f"{block.where}: a skipped example needs a reason")
                STATS.skipped.append(f"{block.where} ({block.marker[1]})")
                continue
            if block.marker and block.marker[0] == "file":
                target = Path(block.marker[1])
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.text)
                continue
            if block.language in SHELL_LANGUAGES:
                failures.append(
                    f"{block.where}: a {block.language} block is never run; make it a console "
                    "block with '$ ' prompts and output, or mark it <!-- docs-test: skip REASON -->"
                )
            elif block.language == "console":
                for command, expected, line in parse_console(block):
                    got, status = run_command(command)
                    STATS.commands += 1
                    if not check_output(expected, got):
                        failures.append(
                            f"{page.relative_to(ROOT)}:{line}: $ {command}\n"
                            f"--- expected\n{expected}--- got\n{got}"
                        )
                    elif status != 0 and "error" not in expected:
                        failures.append(f"{page.relative_to(ROOT)}:{line}: $ {command} exited "
                                        f"with status {status} but the page shows no error")  # fmt: skip
            elif block.language in ("python", "pycon", "") and ">>>" in block.text:
                test = parser.get_doctest(block.text, globs, block.where, str(page), block.line)
                output = io.StringIO()
                result = runner.run(test, out=output.write, clear_globs=False)
                STATS.doctests += len(test.examples)
                if result.failed:
                    failures.append(f"{block.where}: doctest failed\n{output.getvalue()}")
    return failures


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(DOCS)) for p in PAGES])
def test_examples_print_what_the_page_says(page: Path, tmp_path: Path) -> None:
    failures = run_page(page, tmp_path)
    assert not failures, "\n\n".join(failures)


def test_examples_are_checked_not_skipped() -> None:
    skipped = []
    checked = 0
    for page in PAGES:
        for block in parse_blocks(page):
            if block.marker and block.marker[0] == "skip":
                skipped.append(f"{block.where}: {block.marker[1]}")
            elif block.language == "console" or ">>>" in block.text:
                checked += 1
    assert len(skipped) <= MAX_SKIPPED, "too many unchecked examples:\n" + "\n".join(skipped)
    assert checked >= 20, f"only {checked} checked examples in docs/"


def test_console_parser_and_marker() -> None:
    page = DOCS / "README.md"
    blocks = parse_blocks(page)
    assert any(b.language == "console" for b in blocks)
    block = Block(page, 1, "console", "$ wpsim --version\nwpsim ...\n$ cat x\n")
    assert parse_console(block) == [("wpsim --version", "wpsim ...\n", 2), ("cat x", "", 4)]
    assert check_output("a ... c\n", "a b c   \n") and not check_output("a\n", "b\n")


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reference_pages_are_generated_from_the_code() -> None:
    generator = _load_generator()
    stale = generator.stale_pages()
    assert not stale, (
        f"docs/reference pages out of date: {', '.join(stale)}. "
        "Run `python docs/gen_reference.py` and commit the result."
    )


def test_reference_covers_every_field_policy_and_command() -> None:
    from wpsim import hardware, policies
    from wpsim.cli import build_parser
    from wpsim.workload import Workload

    reference = DOCS / "reference"
    workloads = (reference / "workloads.md").read_text()
    for name in Workload.model_fields:
        assert f"| `{name}` |" in workloads
    machines = (reference / "machines.md").read_text()
    for kind, cls in hardware.machine_kinds().items():
        assert f"## kind: {kind}" in machines
        for name in cls.model_fields:
            assert f"| `{name}` |" in machines
    try:
        from wpsim.sweep.spec import SweepSpec
    except ImportError:
        SweepSpec = None
    if SweepSpec is not None:
        sweeps = (reference / "sweeps.md").read_text()
        for name in SweepSpec.model_fields:
            assert f"| `{name}` |" in sweeps
    text = (reference / "policies.md").read_text()
    for name in policies.available():
        if policies.REGISTRY[name].__module__.startswith("wpsim."):
            assert f"## {name}\n" in text
    cli = (reference / "cli.md").read_text()
    sub = next(a for a in build_parser()._actions if hasattr(a, "choices") and a.choices)
    for command in sub.choices:
        assert f"## wpsim {command}\n" in cli


def test_generator_rejects_notes_on_fields_that_do_not_exist() -> None:
    generator = _load_generator()
    generator.generate()
    generator.FIELD_NOTES["wpsim.workload.Workload"]["no_such_field"] = "x"
    with pytest.raises(RuntimeError, match="no_such_field"):
        generator.check_notes(generator.DOCUMENTED)


def test_relative_links_point_to_files() -> None:
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    broken = []
    for page in PAGES:
        for target in link.findall(page.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_python_in_docs_is_ruff_clean() -> None:
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this Python")
    files = [str(p) for p in DOCS.rglob("*.py")]
    for args in (["check", *files], ["format", "--check", *files]):
        proc = subprocess.run([str(ruff), *args], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_page_of_the_repository_points_outside_it() -> None:
    """Every Markdown file of the repository (README, docs, reports, hw_configs, ...): relative
    links resolve to files inside the repository, and nothing names the project's shared/
    folder, which is not part of it (cite the papers instead)."""
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    skip = {".venv", ".git", "out", "build", "node_modules"}
    pages = [p for p in ROOT.rglob("*.md") if not skip & set(p.relative_to(ROOT).parts)]
    bad = []
    for page in pages:
        text = page.read_text()
        if "shared/reference" in text or "../shared/" in text:
            bad.append(f"{page.relative_to(ROOT)}: names the shared/ folder")
        for target in link.findall(text):
            if "://" in target or target.startswith("mailto:"):
                continue
            resolved = (page.parent / target).resolve()
            if not resolved.is_relative_to(ROOT.resolve()) or not resolved.exists():
                bad.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not bad, "links out of the repository or to nothing:\n" + "\n".join(bad)
