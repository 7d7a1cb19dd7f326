"""Scheduling policies, registered by name.

A policy decides which ready task runs on which group of cores. Built-ins: ``sequential``,
``layerwise``, ``wavefront``, ``pipeline``, ``helper``, ``multiprogram`` (and ``persistent`` /
accelerator modes where :mod:`wpsim.accel` is present). To add one, subclass
:class:`~wpsim.policies.base.DynamicPolicy` or :class:`~wpsim.policies.base.StaticPolicy` in a
single file and decorate it with :func:`register`::

    from wpsim.policies import register
    from wpsim.policies.base import DynamicPolicy

    @register
    class DeepestFirst(DynamicPolicy):
        '''Run the deepest ready layer first.'''
        name = "deepest-first"

        def priority(self, tid):
            task = self.plan.tasks[tid]
            return (-task.layer, self.plan.generation[tid], tid)

A policy outside wpsim is named by reference, ``--policy path/to/file.py:DeepestFirst``, or by
the name an installed package gives it in the entry-point group ``wpsim.policies``
(:mod:`wpsim.plugins`, ``docs/plugins.md``).
"""

from __future__ import annotations

from wpsim.errors import ConfigError
from wpsim.policies.base import DynamicPolicy, Policy, StaticPolicy

REGISTRY: dict[str, type[Policy]] = {}


def register(cls: type[Policy]) -> type[Policy]:
    """Class decorator: make ``cls`` available by ``cls.name`` (CLI ``--policy``)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a non-empty 'name'")
    REGISTRY[cls.name] = cls
    return cls


def _load_builtins() -> None:
    from wpsim.policies import (  # noqa: F401  (imports register the classes)
        layerwise,
        multiprogram,
        pipeline,
        sequential,
        wavefront,
    )

    try:
        from wpsim import accel  # noqa: F401
    except ImportError:
        pass


def available() -> list[str]:
    """Names of every registered policy and of every installed ``wpsim.policies`` entry point,
    sorted (``FILE.py:Class`` references are accepted too, but cannot be listed)."""
    from wpsim.plugins import POLICY_GROUP, entry_point_names

    _load_builtins()
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

    _load_builtins()
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


def get_policy(name: str, **options) -> Policy:
    """A new policy object by name; ``options`` are its constructor arguments.

    ``name`` is a registered name, a plug-in reference ``FILE.py:Class`` / ``module:Class``, or
    an entry point of group ``wpsim.policies`` (see :mod:`wpsim.plugins`).

    Raises
    ------
    ConfigError
        For an unknown name, listing the known ones.
    """
    return policy_class(name)(**options)


__all__ = [
    "Policy",
    "DynamicPolicy",
    "StaticPolicy",
    "register",
    "get_policy",
    "policy_class",
    "known",
    "available",
]
