"""Machine descriptions by kind, and reading a machine file.

A machine file (``hw_configs/*.yaml``) has a ``kind``: ``cpu`` (:mod:`wpsim.machines.cpu`),
``accelerator`` (:mod:`wpsim.machines.accelerator`) or ``gpu`` (:mod:`wpsim.machines.gpu`). This
registry imports the description modules only, never a cost model or a simulator: the models of
a kind live in :mod:`wpsim.cost` and :mod:`wpsim.sim`, chosen by :mod:`wpsim.sim.evaluate`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from wpsim.config import read_yaml, validate_mapping
from wpsim.errors import ConfigError
from wpsim.machines.accelerator import AcceleratorMachine
from wpsim.machines.cpu import CpuMachine
from wpsim.machines.gpu import GpuMachine
from wpsim.machines.host import HOST_NAME, require_host_calibration
from wpsim.resources import data_dir, shipped_file

#: The machine kinds by the value of a machine file's ``kind`` field (plug-ins add theirs by
#: ``kind: FILE.py:Class`` or an entry point of group ``wpsim.machine_kinds``: :mod:`wpsim.plugins`).
MACHINE_KINDS: dict[str, type[BaseModel]] = {
    "cpu": CpuMachine,
    "accelerator": AcceleratorMachine,
    "gpu": GpuMachine,
}


def machine_from_dict(data: Any, source: str) -> Any:
    """Validate a parsed machine mapping, dispatching on its ``kind``."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of field: value, got {type(data).__name__}"
        )
    kind = data.get("kind", "cpu")
    registry = MACHINE_KINDS
    if isinstance(kind, str) and kind not in registry:
        cls = _plugin_machine_kind(kind, source)
        if cls is not None:
            # the class's own ``kind`` default stands in for the reference that named it
            declared = cls.model_fields["kind"].default if "kind" in cls.model_fields else None
            data = {**data, "kind": declared} if isinstance(declared, str) else data
            return validate_mapping(cls, data, source)
    if not isinstance(kind, str) or kind not in registry:
        raise ConfigError(
            f"{source}: field 'kind': got {kind!r}, expected one of {', '.join(sorted(registry))}"
            " (or FILE.py:Class)"
        )
    return validate_mapping(registry[kind], data, source)


def _plugin_machine_kind(kind: str, source: str) -> type[BaseModel] | None:
    """A machine kind from a plug-in (:mod:`wpsim.plugins`): ``kind: FILE.py:Class`` (a path
    relative to the machine file's folder) or an entry point of group ``wpsim.machine_kinds``;
    None when ``kind`` is neither."""
    from wpsim import plugins

    what = f"{source}: field 'kind'"
    if plugins.is_reference(kind):
        reference = kind
        if plugins.is_file_reference(kind):
            folder = Path(source).parent if Path(source).is_file() else Path.cwd()
            reference = plugins.absolute_reference(kind, [folder])
        found = plugins.load_reference(reference, what)
    else:
        found = plugins.load_entry_point(plugins.MACHINE_KIND_GROUP, kind)
        if found is None:
            return None
    return plugins.check_class(found, BaseModel, kind, what)


def load_machine(path: str | Path) -> Any:
    """Read and validate a machine YAML file (any kind).

    Raises
    ------
    ConfigError
        One line naming the file, the field, the bad value and what was expected.
    """
    return machine_from_dict(read_yaml(path), str(path))


#: The shipped machine files (``hw_configs/`` of the repository, inside the wheel when installed).
HW_CONFIG_DIR = data_dir("hw_configs")


def resolve_machine_path(name_or_path: str | Path) -> Path:
    """Accept a path, a bare name of a shipped file (``xeon8160_2s`` ->
    ``hw_configs/xeon8160_2s.yaml``), or ``host``: this computer's calibration
    (:mod:`wpsim.machines.host`; a one-line :class:`ConfigError` saying how to make one if there
    is none).
    """
    path = Path(name_or_path)
    if str(name_or_path) == HOST_NAME and not path.exists():
        return require_host_calibration()
    if path.exists() or path.suffix in {".yaml", ".yml"}:
        return path
    candidate = shipped_file("hw_configs", str(name_or_path))
    return candidate if candidate is not None else path
