"""The run options the CPU engine (:func:`wpsim.sim.engine.simulate`) and its closed forms
(:func:`wpsim.sim.closed_forms.predict`) share, checked once for both."""

from __future__ import annotations

from wpsim.errors import ConfigError
from wpsim.machines.cpu import CpuMachine
from wpsim.policies import Policy, get_policy


def prepare_run(
    machine: CpuMachine, policy: Policy | str, cores: int | None, cost: str
) -> tuple[CpuMachine, Policy]:
    """Check the options shared by :func:`wpsim.sim.engine.simulate` and :func:`wpsim.sim.closed_forms.predict`; return
    the machine cut to ``cores`` and the policy object."""
    if not isinstance(machine, CpuMachine):
        raise ConfigError(f"machine '{machine.name}' is a {machine.kind}; use its own policies")
    if isinstance(policy, str):
        policy = get_policy(policy)
    if cores is not None:
        machine = machine.with_cores(cores)
    if cost not in ("model", "ideal"):
        raise ConfigError(f"--cost: got {cost!r}, expected 'model' or 'ideal'")
    return machine, policy
