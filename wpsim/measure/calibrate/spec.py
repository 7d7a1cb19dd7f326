"""What the operating system says about this CPU: model, cores, caches, flags (``lscpu``,
``/proc/cpuinfo``, ``/sys/devices/system/cpu``), and whether a machine file was calibrated on it."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


# ---- what the operating system says ---------------------------------------------------------------
@dataclass
class CacheInfo:
    """One data/unified cache level as sysfs describes it."""

    name: str
    level: int
    size_bytes: int
    shared_cpus: str
    scope: str  # "core" or "socket"
    source: str


@dataclass
class CpuSpec:
    """What ``lscpu``, ``/proc/cpuinfo`` and sysfs say about this machine."""

    model: str
    vendor: str
    flags: set[str]
    mhz: float | None
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    hypervisor: str | None
    caches: list[CacheInfo] = field(default_factory=list)
    topology_source: str = ""


def parse_size(text: str) -> int:
    """``'32K'``, ``'512 KiB'``, ``'32768K'``, ``'1M'`` -> bytes."""
    match = re.match(r"^\s*([\d.]+)\s*([KMG]?)(i?B)?\s*$", text.strip(), re.IGNORECASE)
    if not match:
        raise ValueError(f"cannot parse a cache size from {text!r}")
    scale = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


def _lscpu() -> dict[str, str]:
    try:
        out = subprocess.run(
            ["lscpu"], capture_output=True, text=True, timeout=10, env={**os.environ, "LC_ALL": "C"}
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    fields: dict[str, str] = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def _cpuinfo() -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:
                break  # first processor only
            continue
        fields.setdefault(key.strip(), value.strip())
    return fields


def _sysfs_caches(cpu: int = 0) -> list[CacheInfo]:
    base = Path(f"/sys/devices/system/cpu/cpu{cpu}/cache")
    caches: list[CacheInfo] = []
    for index in sorted(base.glob("index*")):
        try:
            kind = (index / "type").read_text().strip()
            level = int((index / "level").read_text())
            size = (index / "size").read_text().strip()
            shared = (index / "shared_cpu_list").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind not in ("Data", "Unified"):
            continue
        n_shared = sum(
            (int(b) - int(a) + 1) if b else 1
            for a, _, b in (part.partition("-") for part in shared.split(",") if part)
        )
        caches.append(
            CacheInfo(
                name=f"L{level}d" if kind == "Data" else f"L{level}",
                level=level,
                size_bytes=parse_size(size),
                shared_cpus=shared,
                scope="socket" if n_shared > 1 else "core",
                source=f"/sys/devices/system/cpu/cpu{cpu}/cache/{index.name}/size = {size}, "
                f"shared by cpus {shared}",
            )
        )
    caches.sort(key=lambda c: c.level)
    # the schema wants private levels before shared ones
    seen_shared = False
    for cache in caches:
        if cache.scope == "socket":
            seen_shared = True
        elif seen_shared:
            cache.scope = "socket"
    return caches


def read_cpu_spec() -> CpuSpec:
    """Read the CPU model, flags, clock, topology and caches of this machine.

    Returns
    -------
    CpuSpec
    """
    ls = _lscpu()
    info = _cpuinfo()
    flags = set((info.get("flags") or ls.get("Flags", "")).split())
    mhz = None
    for text in (info.get("cpu MHz"), ls.get("CPU MHz"), ls.get("CPU max MHz")):
        try:
            mhz = float(text) if text else None
        except ValueError:
            mhz = None
        if mhz:
            break
    n_cpus = os.cpu_count() or 1
    try:
        sockets = int(ls.get("Socket(s)", "1"))
        cores = int(ls.get("Core(s) per socket", str(n_cpus)))
        threads = int(ls.get("Thread(s) per core", "1"))
        topology = (
            f"lscpu Socket(s): {sockets}, Core(s) per socket: {cores}, "
            f"Thread(s) per core: {threads}"
        )
    except ValueError:
        sockets, cores, threads = 1, n_cpus, 1
        topology = f"os.cpu_count() = {n_cpus} (lscpu unavailable)"
    return CpuSpec(
        model=info.get("model name") or ls.get("Model name") or platform.processor() or "unknown",
        vendor=info.get("vendor_id") or ls.get("Vendor ID", "unknown"),
        flags=flags,
        mhz=mhz,
        sockets=max(1, sockets),
        cores_per_socket=max(1, cores),
        threads_per_core=max(1, threads),
        hypervisor=ls.get("Hypervisor vendor"),
        caches=_sysfs_caches(),
        topology_source=topology,
    )


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


def label(text: str, prefix: str) -> str:
    """``text``, prefixed when it would start like a number (a rule of the machine-file tests)."""
    return f"{prefix} {text}" if re.match(r"^[-+.\d]", text) else text
