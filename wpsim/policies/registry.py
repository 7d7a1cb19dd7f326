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
    """Names of every registered policy and of every installed ``wpsim.policies`` entry point,
    sorted (``FILE.py:Class`` references are accepted too, but cannot be listed)."""
    from wpsim.plugins import POLICY_GROUP, entry_point_names

    return sorted(set(REGISTRY) | set(entry_point_names(POLICY_GROUP)))


def policy_class(name: str) -> type[Policy]:
    """The policy class ``name`` stands for: a registered name, a ``FILE.py:Class`` or
    ``module:Class`` reference, or an entry point of group ``wpsim.policies``.

    Raises
    ------
    ConfigError
        For an unknown name (listing the known ones) or a plug-in that does not load.
    """
    from wpsim import plugins

    cls = REGISTRY.get(name)
    if cls is not None:
        return cls
    if plugins.is_reference(name):
        found = plugins.load_reference(name, "--policy")
    else:
        found = plugins.load_entry_point(plugins.POLICY_GROUP, name)
        if found is None:
            raise ConfigError(
                f"--policy: got {name!r}, expected one of {', '.join(available())}, "
                "or FILE.py:Class"
            )
    cls = plugins.check_class(found, Policy, name, "--policy")
    if not cls.name:
        raise ConfigError(f"--policy: got {name!r}: {cls.__qualname__} needs a non-empty 'name'")
    REGISTRY[name] = cls  # loaded once per process
    return cls


def known(name: str) -> bool:
    """Whether :func:`get_policy` accepts ``name`` (a plug-in is loaded to find out).

    Raises
    ------
    ConfigError
        A plug-in reference or entry point that exists but does not load.
    """
    from wpsim import plugins

    if name not in available() and not plugins.is_reference(name):
        return False
    policy_class(name)
    return True


def get_policy(name: str, **options: Any) -> Policy:
    """A new policy object by name; ``options`` are its constructor arguments.

    ``name`` is a registered name, a plug-in reference ``FILE.py:Class`` / ``module:Class``, or
    an entry point of group ``wpsim.policies`` (see :mod:`wpsim.plugins`).

    Raises
    ------
    ConfigError
        For an unknown name, listing the known ones.
    """
    return policy_class(name)(**options)
