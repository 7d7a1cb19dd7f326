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
    """Names of every registered policy, sorted."""
    _load_builtins()
    return sorted(REGISTRY)


def get_policy(name: str, **options) -> Policy:
    """A new policy object by name; ``options`` are its constructor arguments.

    Raises
    ------
    ConfigError
        For an unknown name, listing the known ones.
    """
    _load_builtins()
    try:
        cls = REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"--policy: got {name!r}, expected one of {', '.join(sorted(REGISTRY))}"
        ) from None
    return cls(**options)


__all__ = ["Policy", "DynamicPolicy", "StaticPolicy", "register", "get_policy", "available"]
