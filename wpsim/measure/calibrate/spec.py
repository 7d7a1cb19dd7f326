"""What calibration reads from this CPU's spec: flops per cycle from its flags, and whether a
machine file was calibrated on it (the CPU as the operating system describes it:
:mod:`wpsim.machines.host`)."""

from __future__ import annotations

from typing import Any

from wpsim.machines.host import CpuSpec, label, read_cpu_spec


def calibration_mismatch(machine: Any, spec: CpuSpec | None = None) -> str | None:
    """Why ``machine``'s calibration may not describe this computer, or None if it does.

    A machine file written by ``wpsim calibrate`` records the CPU model and core count it was
    measured on. Predicting this computer's runs with another computer's numbers (a machine
    file checked in from elsewhere, or a cloud instance of another CPU) quietly skews every
    comparison, so :func:`wpsim.measure.validate.validate` and the accuracy benchmark say so.

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> calibration_mismatch(load_machine(resolve_machine_path("xeon8160_2s"))) is None
    True
    """
    calibration = getattr(machine, "calibration", None) or {}
    measured_on = calibration.get("cpu_model")
    if measured_on is None:  # a spec-sheet machine: describes what it says, not this computer
        return None
    spec = spec or read_cpu_spec()
    here = label(spec.model, "CPU")
    if str(measured_on) != here:
        return (
            f"'{machine.name}' was calibrated on {measured_on!r} but this computer is {here!r}; "
            "run `wpsim calibrate` here first"
        )
    cores_here = spec.sockets * spec.cores_per_socket
    if machine.total_cores != cores_here:
        return (
            f"'{machine.name}' describes {machine.total_cores} cores but this computer has "
            f"{cores_here}; run `wpsim calibrate` here first"
        )
    return None


def flops_per_cycle(flags: set[str]) -> tuple[dict[str, float], str]:
    """Peak fp32/fp64 flops per cycle per core from the CPU flags, and the rule used.

    Examples
    --------
    >>> flops_per_cycle({"avx2", "fma"})[0]
    {'float32': 32.0, 'float64': 16.0}
    >>> flops_per_cycle({"sse2"})[0]
    {'float32': 8.0, 'float64': 4.0}
    """
    if "avx512f" in flags:
        fp32, rule = 64.0, "avx512f: 2 x 512-bit FMA x 16 fp32 lanes x 2 flop"
    elif "avx2" in flags and "fma" in flags:
        fp32, rule = 32.0, "avx2+fma: 2 x 256-bit FMA x 8 fp32 lanes x 2 flop"
    elif "avx" in flags:
        fp32, rule = 16.0, "avx (no fma): 256-bit add + mul x 8 fp32 lanes"
    else:
        fp32, rule = 8.0, "sse2: 128-bit add + mul x 4 fp32 lanes"
    return {"float32": fp32, "float64": fp32 / 2}, rule
