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
    if not isinstance(machine, CpuMachine):
        from wpsim import accel

        return accel.evaluate(engine, workload, machine, policy, **options)
    if engine == "predict":
        from wpsim.analytic import predict

        return predict(workload, machine, policy, **options)
    from wpsim.engine import simulate

    return simulate(workload, machine, policy, **options)
