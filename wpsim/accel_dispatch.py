"""Route an evaluation to the model of the machine's kind (CPU here; accelerator/GPU in accel)."""

from __future__ import annotations

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


def evaluate(engine: str, workload: Workload, machine, policy: Policy, **options) -> Result:
    """``engine``: ``simulate`` or ``predict``."""
    if not isinstance(machine, CpuMachine):
        if callable(getattr(machine, "evaluate", None)):  # a machine-kind plug-in
            return machine.evaluate(engine, workload, policy, **options)
        from wpsim import accel

        return accel.evaluate(engine, workload, machine, policy, **options)
    if engine == "predict":
        from wpsim.analytic import predict

        return predict(workload, machine, policy, **options)
    from wpsim.engine import simulate

    return simulate(workload, machine, policy, **options)
