"""Evaluation by machine kind: simulate or predict with the model of the machine's kind.

A CPU runs on :mod:`wpsim.sim.engine` (simulate) or :mod:`wpsim.sim.closed_forms` (predict); an
accelerator on :mod:`wpsim.sim.accelerator`; a GPU on :mod:`wpsim.sim.gpu`. A runtime
(:mod:`wpsim.sim.runtime`) wraps any of them.
"""

from __future__ import annotations

import math
from typing import Any

from wpsim.errors import ConfigError
from wpsim.machines.accelerator import AcceleratorMachine
from wpsim.machines.cpu import CpuMachine
from wpsim.machines.gpu import GpuMachine
from wpsim.model.workload import Workload
from wpsim.policies import Policy
from wpsim.result import Result

CPU_POLICIES = ["sequential", "layerwise", "wavefront", "pipeline", "helper"]
ACCELERATOR_POLICIES = ["sequential", "wavefront", "pipeline", "helper", "multiprogram"]
GPU_POLICIES = ["gemm", "sparse_gemm", "streams", "persistent_barrier", "persistent"]


def policies_for(machine: Any) -> list[str]:
    """The policies ``wpsim compare`` runs by default on this kind of machine."""
    if isinstance(machine, CpuMachine):
        return list(CPU_POLICIES)
    if hasattr(machine, "default_policies"):  # a machine-kind plug-in (wpsim.plugins)
        return list(machine.default_policies)
    if isinstance(machine, GpuMachine):
        return list(GPU_POLICIES)
    return list(ACCELERATOR_POLICIES)


def evaluate(
    engine: str,
    workload: Workload,
    machine: Any,
    policy: Policy,
    runtime: Any = None,
    **options: Any,
) -> Result:
    """``engine``: ``simulate`` or ``predict``; ``runtime``: a :class:`wpsim.sim.runtime.Runtime`
    (None: the machine's own model)."""
    if runtime is not None:
        from wpsim.sim import runtime as runtimes

        return runtimes.evaluate(
            engine, workload, machine, policy, runtime, evaluate_machine, **options
        )
    return evaluate_machine(engine, workload, machine, policy, **options)


def evaluate_machine(
    engine: str, workload: Workload, machine: Any, policy: Policy, **options: Any
) -> Result:
    """One evaluation on the machine's own model (no runtime).

    Raises
    ------
    ConfigError
        When the machine's numbers, finite each, give no finite positive makespan (a clock or
        bandwidth near 0 or near the largest float): a result of ``inf`` or ``nan`` is none.
    """
    if not isinstance(machine, CpuMachine) and callable(getattr(machine, "evaluate", None)):
        return machine.evaluate(engine, workload, policy, **options)  # a machine-kind plug-in
    if isinstance(machine, GpuMachine):
        from wpsim.sim.gpu import evaluate as gpu_evaluate

        result = gpu_evaluate(engine, workload, machine, policy, **options)
    elif isinstance(machine, AcceleratorMachine):
        from wpsim.sim import accelerator

        run = accelerator.predict if engine == "predict" else accelerator.simulate
        result = run(workload, machine, policy, **options)
    elif not isinstance(machine, CpuMachine):
        raise TypeError(f"not a machine description: {type(machine).__name__}")
    elif engine == "predict":
        from wpsim.sim.closed_forms import predict

        result = predict(workload, machine, policy, **options)
    else:
        from wpsim.sim.engine import simulate

        result = simulate(workload, machine, policy, **options)
    for name in ("makespan_s", "sequential_s"):
        value = getattr(result, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(
                f"machine '{machine.name}': its numbers give a {name} of {value} s; expected a "
                "finite time above 0 (check for extreme values: a rate near 0 or near 1e308)"
            )
    return result
