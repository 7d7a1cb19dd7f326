"""Scheduling policies, registered by name.

A policy decides which ready task runs on which group of cores. Built-ins: ``sequential``,
``layerwise``, ``wavefront``, ``pipeline``, ``helper``, ``multiprogram``, and the GPU ones
(:mod:`wpsim.policies.gpu`). To add one, subclass
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

from wpsim.policies.base import DynamicPolicy, Policy, StaticPolicy
from wpsim.policies.registry import (
    REGISTRY,
    available,
    get_policy,
    known,
    policy_class,
    register,
)

__all__ = [
    "REGISTRY",
    "DynamicPolicy",
    "Policy",
    "StaticPolicy",
    "available",
    "get_policy",
    "known",
    "policy_class",
    "register",
]
