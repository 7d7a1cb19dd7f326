"""The house rules of wpsim/ and kernels/: imports run one way (no import cycle), no private name
is used outside its module, and no module grows past about 800 lines (a room of one purpose).

Every import counts, nested ones too (a function-level import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("wpsim", "kernels")
MAX_LINES = 800

#: Modules allowed over MAX_LINES, with the reason; each is a debt to pay, not a rule. A module
#: that falls under the limit must leave this list (the test says so).
OVER_THE_LIMIT: dict[str, str] = {}

#: Private names of a module that others still use, with the reason; each is a debt to pay.
KNOWN_PRIVATE_USES: dict[str, str] = {}


def modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of wpsim/ and kernels/."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[dotted.removesuffix(".__init__")] = path
    return found


def imports(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """``(imported module, names imported from it, line)`` for each import of ``module``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in known:  # ``from package import module``
                    found.append((sub, [], node.lineno))
                else:
                    found.append((base, [alias.name], node.lineno))
    return found


def owner(name: str, known: dict[str, Path]) -> str | None:
    """The module of wpsim/ or kernels/ that ``name`` (dotted) is or lies in."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def test_the_import_graph_has_no_cycle() -> None:
    known = modules()
    graph = nx.DiGraph()
    for module, path in known.items():
        graph.add_node(module)
        for target, _, _ in imports(module, path, known):
            target = owner(target, known)
            if target and target != module:
                graph.add_edge(module, target)
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


#: The layers of wpsim/ and kernels/, bottom first: a module imports only from its own layer or
#: below (the longest prefix names a module's layer).
LAYERS: list[tuple[str, ...]] = [
    (
        "wpsim",
        "wpsim.errors",
        "wpsim.interrupts",
        "wpsim.config",
        "wpsim.outputs",
        "wpsim.resources",
        "wpsim.plugins",
    ),
    ("wpsim.trace", "wpsim.breakdown", "wpsim.result"),
    ("wpsim.cells",),
    ("wpsim.model",),
    ("wpsim.machines",),
    ("wpsim.cost",),
    ("wpsim.policies",),
    ("wpsim.sim", "wpsim.plots"),
    ("kernels",),
    ("wpsim.guards", "wpsim.measure", "wpsim.tune", "wpsim.report_check"),
    ("wpsim.sweep",),
    ("wpsim.cli", "wpsim.console", "wpsim.__main__"),
]


def layer_of(module: str) -> int:
    best, found = -1, None
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, found = len(prefix), index
    assert found is not None, f"{module}: in no layer of LAYERS (add it where it belongs)"
    return found


def test_imports_run_one_way() -> None:
    """A module imports from its own layer or below, never above (see :data:`LAYERS`)."""
    known = modules()
    upward = []
    for module, path in known.items():
        for target, _, line in imports(module, path, known):
            home = owner(target, known)
            if home and layer_of(home) > layer_of(module):
                upward.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {home}")
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_command_groups_import_no_other_group() -> None:
    """Each ``wpsim.cli`` command group imports the shared helpers only, never another group."""
    known = modules()
    groups = [m for m in known if m.startswith("wpsim.cli.") and m != "wpsim.cli.common"]
    for module in groups:
        for target, _, line in imports(module, known[module], known):
            home = owner(target, known)
            assert home is None or home == "wpsim.cli.common" or not home.startswith("wpsim.cli"), (
                f"{module}:{line} imports {home}"
            )


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def test_no_private_name_is_used_outside_its_module() -> None:
    """``from m import _x`` and ``m._x`` only inside ``m``; a private module ``p._m`` only inside
    its package ``p``."""
    known = modules()
    found = []
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}  # local name -> module of ours it is bound to
        for target, names, line in imports(module, path, known):
            home = owner(target, known)
            if home is None:
                continue
            parts = home.split(".")
            for i, part in enumerate(parts):
                package = ".".join(parts[:i])
                if _private(part) and not (module == package or module.startswith(package + ".")):
                    found.append(f"{path.name}:{line}: private module {home}")
            if home in KNOWN_PRIVATE_USES:
                continue
            found += [
                f"{path.name}:{line}: {home}.{n}" for n in names if _private(n) and home != module
            ]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                for alias in node.names:
                    dotted = (
                        alias.name
                        if isinstance(node, ast.Import)
                        else f"{node.module}.{alias.name}"
                    )
                    if dotted in known and dotted != module:
                        aliases[alias.asname or alias.name.split(".")[0]] = dotted
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                found.append(f"{path.name}:{node.lineno}: {aliases[node.value.id]}.{node.attr}")
    assert not found, "private names used outside their module:\n" + "\n".join(found)


def test_no_module_is_over_the_limit() -> None:
    known = modules()
    lines = {m: len(p.read_text(encoding="utf-8").splitlines()) for m, p in known.items()}
    too_long = {m: n for m, n in lines.items() if n > MAX_LINES and m not in OVER_THE_LIMIT}
    assert not too_long, f"modules over {MAX_LINES} lines (split them into rooms): {too_long}"
    paid = [m for m in OVER_THE_LIMIT if lines.get(m, 0) <= MAX_LINES]
    assert not paid, f"under the limit now: remove from OVER_THE_LIMIT: {paid}"
