"""Route an evaluation to the model of the machine's kind (CPU here; accelerator/GPU in accel)."""

from __future__ import annotations

import math

from wpsim.errors import ConfigError
from wpsim.hardware import CpuMachine
from wpsim.policies import Policy
from wpsim.result import Result
from wpsim.workload import Workload

CPU_POLICIES = ["sequential", "layerwise", "wavefront", "pipeline", "helper"]


def policies_for(machine) -> list[str]:
    """The policies ``wpsim compare`` runs by default on this kind of machine."""
    if isinstance(machine, CpuMachine):
        return list(CPU_POLICIES)
    if hasattr(machine, "default_policies"):  # a machine-kind plug-in (wpsim.plugins)
        return list(machine.default_policies)
    from wpsim import accel

    return accel.policies_for(machine)


def evaluate(
    engine: str, workload: Workload, machine, policy: Policy, runtime=None, **options
) -> Result:
    """``engine``: ``simulate`` or ``predict``; ``runtime``: a :class:`wpsim.runtime.Runtime`
    (None: the machine's own model)."""
    if runtime is not None:
        from wpsim import runtime as runtimes

        return runtimes.evaluate(engine, workload, machine, policy, runtime, _evaluate, **options)
    return _evaluate(engine, workload, machine, policy, **options)


def _evaluate(engine: str, workload: Workload, machine, policy: Policy, **options) -> Result:
    """One evaluation on the machine's own model.

    Raises
    ------
    ConfigError
        When the machine's numbers, finite each, give no finite positive makespan (a clock or
        bandwidth near 0 or near the largest float): a result of ``inf`` or ``nan`` is none.
    """
    if not isinstance(machine, CpuMachine):
        if callable(getattr(machine, "evaluate", None)):  # a machine-kind plug-in
            return machine.evaluate(engine, workload, policy, **options)
        from wpsim import accel

        result = accel.evaluate(engine, workload, machine, policy, **options)
    elif engine == "predict":
        from wpsim.analytic import predict

        result = predict(workload, machine, policy, **options)
    else:
        from wpsim.engine import simulate

        result = simulate(workload, machine, policy, **options)
    for name in ("makespan_s", "sequential_s"):
        value = getattr(result, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(
                f"machine '{machine.name}': its numbers give a {name} of {value} s; expected a "
                "finite time above 0 (check for extreme values: a rate near 0 or near 1e308)"
            )
    return result
