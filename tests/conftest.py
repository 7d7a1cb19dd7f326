"""Shared fixtures: small machines with known numbers, so tests can reason about costs.

No test may depend on the computer it runs on. So the suite runs as if on a computer nobody has
calibrated: ``WPSIM_CPU_MODEL`` names a CPU that exists nowhere (wpsim reads it instead of the
operating system's name), and ``WPSIM_CACHE_DIR`` points the calibrations of "this computer"
(``-m host``, see :mod:`wpsim.host`) at an empty folder of this session, never at the user's own.
Both are set in the environment, so the commands the tests start as subprocesses see them too.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

FAKE_CPU_MODEL = "wpsim test CPU (fake, set by tests/conftest.py)"
_CACHE = tempfile.mkdtemp(prefix="wpsim-test-cache-")
os.environ["WPSIM_CPU_MODEL"] = FAKE_CPU_MODEL
os.environ["WPSIM_CACHE_DIR"] = _CACHE

from wpsim.hardware import CpuMachine  # noqa: E402  (after the environment is set)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    shutil.rmtree(_CACHE, ignore_errors=True)


def make_machine(
    cores: int = 4,
    sockets: int = 1,
    l2_bytes: int = 1 << 20,
    llc_bytes: int = 8 << 20,
    dram_Bps: float = 20e9,
    per_core_dram_Bps: float = 20e9,
    dispatch_s: float = 0.0,
    corun: float = 0.0,
) -> CpuMachine:
    """A machine with round numbers: 1 GHz, 16 flop/cycle, efficiency 1, caches as asked."""
    return CpuMachine.model_validate({
        "name": "test machine",
        "sockets": sockets,
        "cores_per_socket": cores,
        "clock_hz": 1e9,
        "peak_flops_per_cycle": {"float32": 16, "float64": 8},
        "caches": [
            {"name": "L1", "scope": "core", "size_bytes": 32 << 10, "bandwidth_Bps": 400e9, "latency_s": 1e-9},
            {"name": "L2", "scope": "core", "size_bytes": l2_bytes, "bandwidth_Bps": 200e9, "latency_s": 4e-9},
            {"name": "L3", "scope": "socket", "size_bytes": llc_bytes, "bandwidth_Bps": 50e9, "latency_s": 20e-9},
        ],
        "memory": {"bandwidth_Bps": dram_Bps, "per_core_bandwidth_Bps": per_core_dram_Bps, "latency_s": 80e-9},
        "handoff": {"latency_s": 100e-9, "bandwidth_Bps": 50e9, "cross_socket_latency_s": 200e-9},
        "barrier": {"base_s": 200e-9, "per_doubling_s": 100e-9},
        "dispatch_overhead_s": dispatch_s,
        "efficiency": {"gemm_by_n": [[1, 1.0]], "elementwise": 1.0},
        "corun_slowdown_per_core": corun,
    })  # fmt: skip


@pytest.fixture
def machine() -> CpuMachine:
    return make_machine()
