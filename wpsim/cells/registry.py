"""The registry of cells: built-in factories found by discovery, and user YAML files.

A built-in cell is one module of :mod:`wpsim.cells` holding a factory decorated with
:func:`register`: a function of keyword-only options (with defaults) that returns a checked
:class:`~wpsim.cells.spec.Cell`. The registry imports every module of the package the first time
a cell is looked up, so adding a cell is adding its file; nothing else is edited.

A cell is named in four ways (:func:`resolve_cell`): a registered name (``"gru"``), its label
with options (``"lstm(proj_size=64)"``, what :attr:`Cell.label` prints), a mapping of the name
and options (``{"name": "lstm", "proj_size": 64}``), or the path of a YAML file
(``cells/my_cell.yaml``, see :func:`wpsim.cells.spec.load_cell`).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from wpsim.cells.spec import Cell, load_cell
from wpsim.errors import ConfigError

__all__ = [
    "cell_names",
    "get_cell",
    "parse_label",
    "register",
    "registered_name",
    "resolve_cell",
]

CellFactory = Callable[..., Cell]
#: name -> factory, filled by :func:`register` as the cell modules are imported.
REGISTRY: dict[str, CellFactory] = {}
_discovered = False


def register(factory: CellFactory) -> CellFactory:
    """Register ``factory`` under its function name (a decorator).

    The factory takes keyword-only options, each with a default, and returns a :class:`Cell`
    whose ``name`` is the factory's name; it raises ValueError with what was expected for a bad
    option value.
    """
    name = factory.__name__
    if name in REGISTRY and REGISTRY[name] is not factory:
        raise ValueError(f"cell {name!r} is registered twice")
    for parameter in inspect.signature(factory).parameters.values():
        if (
            parameter.kind is not inspect.Parameter.KEYWORD_ONLY
            or parameter.default is inspect.Parameter.empty
        ):
            raise TypeError(
                f"cell factory {name}: option {parameter.name!r} must be keyword-only "
                "with a default"
            )
    REGISTRY[name] = factory
    return factory


def _discover() -> None:
    """Import every module of :mod:`wpsim.cells` once (their factories register themselves)."""
    global _discovered
    if _discovered:
        return
    # the package's folder and name from this module's own (importing the package here would
    # be an import circle: the package imports this registry)
    package = __name__.rpartition(".")[0]
    folder = str(Path(__file__).resolve().parent)
    for module in sorted(pkgutil.iter_modules([folder]), key=lambda m: m.name):
        importlib.import_module(f"{package}.{module.name}")
    _discovered = True


def cell_names() -> list[str]:
    """Names of the registered cells, sorted.

    Examples
    --------
    >>> cell_names()[:3]
    ['gru', 'indrnn', 'lstm']
    """
    _discover()
    return sorted(REGISTRY)


def get_cell(name: str, **options: Any) -> Cell:
    """The registered cell ``name`` built with ``options``.

    Raises
    ------
    ConfigError
        For an unknown cell, an unknown option or a bad option value (one line).

    Examples
    --------
    >>> get_cell("lstm", proj_size=16).label
    'lstm(proj_size=16)'
    >>> get_cell("rnn") == get_cell("rnn", nonlinearity="tanh")
    True
    >>> try:
    ...     get_cell("lstm", proj=2)
    ... except ConfigError as e:
    ...     print(e)
    cell 'lstm': unknown option 'proj'; options: proj_size
    """
    _discover()
    factory = REGISTRY.get(name)
    if factory is None:
        raise ConfigError(
            f"cell: got {name!r}, expected one of {', '.join(sorted(REGISTRY))} or a YAML file"
        )
    signature = inspect.signature(factory)
    for key in options:
        if key not in signature.parameters:
            known = ", ".join(signature.parameters) or "none"
            raise ConfigError(f"cell '{name}': unknown option '{key}'; options: {known}")
    bound = {p.name: options.get(p.name, p.default) for p in signature.parameters.values()}
    try:
        cell = factory(**bound)
    except ValueError as error:
        raise ConfigError(f"cell '{name}': {error}") from None
    if cell.name != name:
        raise ValueError(f"cell factory {name} returned a cell named {cell.name!r}")
    default = {p.name: p.default for p in signature.parameters.values()}
    shown = tuple((k, v) for k, v in bound.items() if v != default[k])
    return dataclasses.replace(cell, options=shown)


def registered_name(cell: Cell) -> str | None:
    """The registered name whose factory builds ``cell`` (with its options), or None for a cell
    the registry does not build: one declared in YAML, even under a registered name (what is
    measured of a registered cell, such as a machine file's per-cell calibration, was measured
    on the registry's declaration, not on this one).

    Examples
    --------
    >>> registered_name(get_cell("lstm", proj_size=4))
    'lstm'
    >>> from wpsim.cells.spec import cell_from_dict, cell_to_dict
    >>> relu = cell_to_dict(get_cell("rnn", nonlinearity="relu"))  # as a YAML file declares it
    >>> relu["name"], registered_name(cell_from_dict(relu)) is None
    ('rnn', True)
    """
    _discover()
    if cell.name not in REGISTRY:
        return None
    try:
        built = get_cell(cell.name, **dict(cell.options))
    except ConfigError:
        return None
    return cell.name if built == cell else None


def resolve_cell(spec: str | Mapping[str, Any] | Cell, base: str | Path | None = None) -> Cell:
    """The cell named by ``spec``: a :class:`Cell`, a registered name, a mapping ``{"name": ...,
    **options}``, or a path ending in ``.yaml``/``.yml`` (relative to ``base`` when given).

    Examples
    --------
    >>> resolve_cell({"name": "qrnn", "window": 2}).label
    'qrnn(window=2)'
    >>> resolve_cell("gru") is not None
    True
    >>> resolve_cell("rnn(nonlinearity='relu')").label
    "rnn(nonlinearity='relu')"
    """
    if isinstance(spec, Cell):
        return spec
    if isinstance(spec, Mapping):
        options = dict(spec)
        name = options.pop("name", None)
        if not isinstance(name, str):
            raise ConfigError("cell: a mapping must give the cell's 'name' and its options")
        return get_cell(name, **options)
    if isinstance(spec, str) and spec.endswith((".yaml", ".yml")):
        path = Path(spec)
        if base is not None and not path.is_absolute():
            path = Path(base) / path
        return load_cell(path)
    if isinstance(spec, str) and "(" in spec:
        name, options = parse_label(spec)
        return get_cell(name, **options)
    if isinstance(spec, str):
        return get_cell(spec)
    raise ConfigError(f"cell: got {spec!r}, expected a name, a mapping or a YAML file")


def parse_label(label: str) -> tuple[str, dict[str, Any]]:
    """The name and options of a cell label such as ``lstm(proj_size=64)`` (literal values only).

    Raises
    ------
    ConfigError
        If ``label`` is not ``name(option=value, ...)``.

    Examples
    --------
    >>> parse_label("qrnn(window=2)")
    ('qrnn', {'window': 2})
    """
    expected = f"cell: got {label!r}, expected name(option=value, ...) with literal values"
    try:
        call = ast.parse(label.strip(), mode="eval").body
    except SyntaxError:
        raise ConfigError(expected) from None
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name)) or call.args:
        raise ConfigError(expected)
    options: dict[str, Any] = {}
    for keyword in call.keywords:
        if keyword.arg is None:
            raise ConfigError(expected)
        try:
            options[keyword.arg] = ast.literal_eval(keyword.value)
        except ValueError:
            raise ConfigError(expected) from None
    return call.func.id, options
