"""Plug-ins: a user's own policies and machine kinds, without editing wpsim.

Two ways to name a plug-in, accepted wherever a policy is named (``--policy`` of ``simulate``,
``predict``, ``compare --policies``, ``run``, ``validate --policies``, and ``policy:`` in sweep
specifications) and wherever a machine file says its ``kind``:

* a reference ``path/to/file.py:ClassName`` (a file anywhere: loaded once per process under a
  module name of its own; a relative path is taken from the current folder, or in a sweep
  specification or a machine file from that file's folder), or ``package.module:ClassName`` (an
  importable module);
* an entry point of an installed package, by name: group ``wpsim.policies`` for policies,
  ``wpsim.machine_kinds`` for machine kinds. In the package's ``pyproject.toml``::

      [project.entry-points."wpsim.policies"]
      deepest-first = "my_policies:DeepestFirst"

A policy plug-in is a subclass of :class:`wpsim.policies.base.Policy` (in practice of
``DynamicPolicy`` or ``StaticPolicy``); a machine-kind plug-in is a pydantic model with a
``kind`` field whose class has an ``evaluate(engine, workload, policy, **options)`` method (see
``docs/plugins.md``).

Examples
--------
>>> is_reference("my_policy.py:DeepestFirst"), is_reference("wavefront")
(True, False)
>>> split_reference("plugins/my_policy.py:DeepestFirst")
('plugins/my_policy.py', 'DeepestFirst')
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from typing import Any

from wpsim.errors import ConfigError

POLICY_GROUP = "wpsim.policies"
MACHINE_KIND_GROUP = "wpsim.machine_kinds"

_loaded_files: dict[Path, Any] = {}


def is_reference(name: str) -> bool:
    """Whether ``name`` is a ``FILE.py:Class`` or ``module:Class`` reference."""
    head, sep, tail = name.rpartition(":")
    return bool(sep and head and tail and tail.isidentifier())


def split_reference(name: str) -> tuple[str, str]:
    """``"a/b.py:Name"`` -> ``("a/b.py", "Name")`` (the last colon separates them)."""
    head, _, tail = name.rpartition(":")
    return head, tail


def is_file_reference(name: str) -> bool:
    """A reference to a Python file (``.py`` or with a path separator), not to a module."""
    head, _ = split_reference(name)
    return head.endswith(".py") or "/" in head or "\\" in head


def absolute_reference(name: str, base_dirs: list[Path]) -> str:
    """``name`` with a relative file path made absolute: the first of ``base_dirs`` (then the
    current folder) where the file exists; other names unchanged. Sweep specifications use it,
    so that worker processes started elsewhere load the same file."""
    if not (is_reference(name) and is_file_reference(name)):
        return name
    head, tail = split_reference(name)
    path = Path(head).expanduser()
    if path.is_absolute():
        return name
    for base in [*base_dirs, Path.cwd()]:
        candidate = base / path
        if candidate.is_file():
            return f"{candidate.resolve()}:{tail}"
    return name


def _load_file(path: Path, what: str) -> Any:
    path = path.expanduser().resolve()
    module = _loaded_files.get(path)
    if module is not None:
        return module
    if not path.is_file():
        raise ConfigError(f"{what}: file not found: {path}")
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:8]
    module_name = f"wpsim_plugin_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{what}: {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look classes up here
    try:
        spec.loader.exec_module(module)
    except ConfigError:
        sys.modules.pop(module_name, None)
        raise
    except Exception as error:  # noqa: BLE001 - the user's file: one line, no traceback
        sys.modules.pop(module_name, None)
        raise ConfigError(
            f"{what}: {path}: importing it failed: {type(error).__name__}: {error}"
        ) from None
    _loaded_files[path] = module
    return module


def load_reference(name: str, what: str) -> Any:
    """The object a ``FILE.py:Name`` or ``module:Name`` reference names.

    Raises
    ------
    ConfigError
        One line: the file or module is missing, fails to import, or has no such name.
    """
    head, attribute = split_reference(name)
    if is_file_reference(name):
        module = _load_file(Path(head), what)
        where = head
    else:
        try:
            module = importlib.import_module(head)
        except ImportError as error:
            raise ConfigError(f"{what}: got {name!r}: cannot import {head!r} ({error})") from None
        where = f"module {head}"
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise ConfigError(f"{what}: got {name!r}: {where} defines no {attribute!r}") from None


@functools.cache
def entry_point_names(group: str) -> tuple[str, ...]:
    """The names installed packages give under entry-point ``group``, sorted (not loaded; read
    once per process: scanning the installed packages takes milliseconds)."""
    return tuple(sorted({ep.name for ep in importlib.metadata.entry_points(group=group)}))


def load_entry_point(group: str, name: str) -> Any:
    """The object of entry point ``name`` in ``group``, or None if no package provides one.

    Raises
    ------
    ConfigError
        The entry point exists but loading it fails.
    """
    for ep in importlib.metadata.entry_points(group=group):
        if ep.name == name:
            try:
                return ep.load()
            except Exception as error:  # noqa: BLE001 - a package's plug-in: one line
                raise ConfigError(
                    f"entry point {name!r} ({group} = {ep.value}) failed to load: "
                    f"{type(error).__name__}: {error}"
                ) from None
    return None


def check_class(obj: Any, base: type, name: str, what: str) -> type:
    """``obj`` if it is a subclass of ``base``, else a one-line :class:`ConfigError`."""
    if not (isinstance(obj, type) and issubclass(obj, base)):
        raise ConfigError(
            f"{what}: got {name!r}: expected a subclass of {base.__module__}.{base.__qualname__}, "
            f"got {obj!r}"
        )
    return obj


__all__ = [
    "MACHINE_KIND_GROUP",
    "POLICY_GROUP",
    "absolute_reference",
    "check_class",
    "entry_point_names",
    "is_reference",
    "load_entry_point",
    "load_reference",
    "split_reference",
]
