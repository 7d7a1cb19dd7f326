"""The policies by name: the built-ins, and any a user registers with :func:`register`.

The built-in modules are imported here by name; they do not import this registry (a policy module
depends on :mod:`wpsim.policies.base` only), and none imports a cost model or a simulator.
"""

from __future__ import annotations

from typing import Any

from wpsim.errors import ConfigError
from wpsim.policies.base import Policy
from wpsim.policies.gpu import Gemm, Persistent, PersistentBarrier, SparseGemm, Streams
from wpsim.policies.layerwise import Layerwise
from wpsim.policies.multiprogram import MultiProgram
from wpsim.policies.pipeline import Pipeline
from wpsim.policies.sequential import Sequential
from wpsim.policies.wavefront import Helper, Wavefront

#: The built-in policies (CPU, accelerator modes, GPU).
BUILTINS: tuple[type[Policy], ...] = (
    Sequential,
    Layerwise,
    Wavefront,
    Helper,
    Pipeline,
    MultiProgram,
    Gemm,
    SparseGemm,
    Streams,
    PersistentBarrier,
    Persistent,
)

#: Every known policy class by its ``name``.
REGISTRY: dict[str, type[Policy]] = {cls.name: cls for cls in BUILTINS}


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make ``cls`` available by ``cls.name`` (CLI ``--policy``)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty 'name'")
    REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    """Names of every registered policy, sorted."""
    return sorted(REGISTRY)


def get_policy(name: str, **options: Any) -> Policy:
    """A new policy object by name; ``options`` are its constructor arguments.

    Raises
    ------
    ConfigError
        For an unknown name, listing the known ones.
    """
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"--policy: got {name!r}, expected one of {', '.join(sorted(REGISTRY))}"
        ) from None
    return cls(**options)
