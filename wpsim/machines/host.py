"""This computer: its CPU as the operating system describes it (``lscpu``, ``/proc/cpuinfo``,
``/sys/devices/system/cpu``), and its calibration: ``-m host``, and the machine ``run``, ``validate`` and
``calibrate`` use by default.

A calibration describes the computer it was measured on, so none is shipped as everyone's
default. ``wpsim calibrate`` writes one into the user's cache folder (``platformdirs``; the
environment variable ``WPSIM_CACHE_DIR`` overrides it), under a name keyed by what decides the
numbers: the CPU model, the core count, the numpy version and the BLAS numpy was built with
(:func:`host_key`). A different CPU, a resized virtual machine or a numpy upgrade therefore finds
no calibration instead of a wrong one, and the commands say in one line how to make one
(:func:`require_host_calibration`), or make a quick one when asked (``--calibrate``:
:func:`calibrate_host`).

``WPSIM_CPU_MODEL`` overrides the CPU model wpsim reads from the operating system (the test
suite sets a fake one, so that no test can depend on the computer it runs on).

Examples
--------
>>> key = host_key()
>>> sorted(key)
['blas', 'cores', 'cpu_model', 'numpy']
>>> host_file(key).parent == cache_dir()
True
>>> host_file(key).name.startswith("host-")
True
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wpsim.errors import ConfigError

#: The name that stands for this computer's calibration (``-m host``).
HOST_NAME = "host"


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


#: Environment variable that overrides the CPU model name read from the operating system.
CPU_MODEL_ENV = "WPSIM_CPU_MODEL"


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
    model = info.get("model name") or ls.get("Model name") or platform.processor() or "unknown"
    return CpuSpec(
        # WPSIM_CPU_MODEL overrides the name (the test suite sets a fake one: see tests/conftest.py)
        model=os.environ.get(CPU_MODEL_ENV) or model,
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


def cpu_model_label(spec: CpuSpec) -> str:
    """The CPU model as a calibration block records it (``cpu_model``; prefixed with ``CPU``
    where it would start like a number)."""
    return label(spec.model, "CPU")


def label(text: str, prefix: str) -> str:
    """``text``, prefixed when it would start like a number (a rule of the machine-file tests)."""
    return f"{prefix} {text}" if re.match(r"^[-+.\d]", text) else text


# ---- this computer's calibration, in the user's cache ---------------------------------------
CACHE_ENV = "WPSIM_CACHE_DIR"
HOW_TO_CALIBRATE = "run `wpsim calibrate` (about a minute)"
#: Added to :data:`HOW_TO_CALIBRATE` by the commands that have ``--calibrate``.
OR_CALIBRATE_FLAG = " or add --calibrate to make a quick one (about 20 s)"


def cache_dir() -> Path:
    """The folder of this user's calibrations: ``$WPSIM_CACHE_DIR``, else the platform's user
    cache folder for wpsim (``~/.cache/wpsim`` on Linux)."""
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("wpsim", appauthor=False))


def _numpy_blas() -> str:
    """The BLAS numpy was built with, ``"name version"`` (numpy's own build record: the same
    whatever else this process has loaded)."""
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '?')}"
    except (TypeError, KeyError, AttributeError):  # numpy before 1.25
        return "unknown"


def host_key(spec: Any = None) -> dict[str, Any]:
    """What a calibration of this computer is keyed by: CPU model, core count (sockets x cores
    per socket, as ``wpsim calibrate`` records them), numpy version and numpy's BLAS."""
    import numpy as np

    spec = spec or read_cpu_spec()
    return {
        "cpu_model": cpu_model_label(spec),
        "cores": spec.sockets * spec.cores_per_socket,
        "numpy": np.__version__,
        "blas": _numpy_blas(),
    }


def host_file(key: dict[str, Any] | None = None) -> Path:
    """Where the calibration of the computer ``key`` describes lives (it may not exist yet):
    ``host-<cpu model>-<cores>c-<hash of the key>.yaml`` in :func:`cache_dir`."""
    key = key or host_key()
    slug = re.sub(r"[^a-z0-9]+", "-", str(key["cpu_model"]).lower()).strip("-")[:40] or "cpu"
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return cache_dir() / f"host-{slug}-{key['cores']}c-{digest}.yaml"


def describe(key: dict[str, Any]) -> str:
    """``'Intel(R) Xeon(R) Processor, 2 cores, numpy 2.4.6, scipy-openblas 0.3.31'``."""
    return f"{key['cpu_model']}, {key['cores']} cores, numpy {key['numpy']}, {key['blas']}"


def find_host_calibration() -> Path | None:
    """This computer's calibration file, or None when there is none."""
    path = host_file()
    return path if path.is_file() else None


def missing_message(key: dict[str, Any] | None = None, calibrate_flag: bool = False) -> str:
    """One line: there is no calibration of this computer, and how to make one."""
    key = key or host_key()
    return (
        f"-m host: no calibration of this computer ({describe(key)}) in "
        f"{host_file(key).parent}; {HOW_TO_CALIBRATE}"
        + (OR_CALIBRATE_FLAG if calibrate_flag else "")
    )


def require_host_calibration(calibrate_flag: bool = False) -> Path:
    """This computer's calibration file.

    Raises
    ------
    ConfigError
        One line saying there is none and how to make one (``calibrate_flag``: the command
        has ``--calibrate``, which the line mentions).
    """
    key = host_key()
    path = host_file(key)
    if not path.is_file():
        raise ConfigError(missing_message(key, calibrate_flag))
    return path
