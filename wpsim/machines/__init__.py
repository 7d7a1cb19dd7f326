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

#: The machine kinds by the value of a machine file's ``kind`` field.
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
    if not isinstance(kind, str) or kind not in registry:
        raise ConfigError(
            f"{source}: field 'kind': got {kind!r}, expected one of {', '.join(sorted(registry))}"
        )
    return validate_mapping(registry[kind], data, source)


def load_machine(path: str | Path) -> Any:
    """Read and validate a machine YAML file (any kind).

    Raises
    ------
    ConfigError
        One line naming the file, the field, the bad value and what was expected.
    """
    return machine_from_dict(read_yaml(path), str(path))


HW_CONFIG_DIR = Path(__file__).resolve().parent.parent.parent / "hw_configs"


def resolve_machine_path(name_or_path: str | Path) -> Path:
    """Accept a path, or a bare name of a file in ``hw_configs/`` (``xeon8160`` ->
    ``hw_configs/xeon8160.yaml``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in {".yaml", ".yml"}:
        return path
    candidate = HW_CONFIG_DIR / f"{name_or_path}.yaml"
    return candidate if candidate.exists() else path
