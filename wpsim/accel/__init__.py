"""Accelerator and GPU models (machine kinds ``accelerator`` and ``gpu``).

* :mod:`wpsim.accel.machines`: the validated machine descriptions;
* :mod:`wpsim.accel.accelerator`: the multi-core LSTM accelerator (cost object for the simpy
  engine, closed forms); its modes are the policies ``multiprogram``, ``pipeline``, ``helper``
  and the single-core ``sequential``;
* :mod:`wpsim.accel.gpu`: persistent kernels (capacity, step time), per-step (sparse) GEMMs and
  the streams wavefront; :mod:`wpsim.accel.policies` registers the GPU policies.

:func:`evaluate` and :func:`policies_for` are what :mod:`wpsim.accel_dispatch` calls.
"""

from __future__ import annotations

from typing import Any

from wpsim.accel.machines import MACHINE_KINDS, AcceleratorMachine, GpuMachine

ACCELERATOR_POLICIES = ["sequential", "wavefront", "pipeline", "helper", "multiprogram"]
GPU_POLICIES = ["gemm", "sparse_gemm", "streams", "persistent_barrier", "persistent"]


def policies_for(machine: Any) -> list[str]:
    """The policies ``wpsim compare`` runs by default on ``machine``."""
    if isinstance(machine, GpuMachine):
        return list(GPU_POLICIES)
    return list(ACCELERATOR_POLICIES)


def evaluate(engine: str, workload, machine, policy, **options):
    """Simulate (``engine="simulate"``) or predict (``"predict"``) on an accelerator or a GPU."""
    if isinstance(machine, GpuMachine):
        from wpsim.accel.gpu import evaluate as gpu_evaluate

        return gpu_evaluate(engine, workload, machine, policy, **options)
    if isinstance(machine, AcceleratorMachine):
        from wpsim.accel import accelerator

        run = accelerator.predict if engine == "predict" else accelerator.simulate
        return run(workload, machine, policy, **options)
    raise TypeError(f"not an accelerator or GPU machine: {type(machine).__name__}")


def _register_policies() -> None:
    from wpsim.accel import policies  # noqa: F401  (registers the GPU policies)


_register_policies()

__all__ = ["MACHINE_KINDS", "AcceleratorMachine", "GpuMachine", "evaluate", "policies_for"]
