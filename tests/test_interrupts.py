"""Faults of a running command: a stopped worker (the stall watchdog), SIGTERM, Ctrl-C at any time."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernels.executor import BLAS_ENV, execute
from kernels.executor._watchdog import SUSPENDED_GAP_S, Watchdog, stall_limit_s
from wpsim.errors import ExecutionError
from wpsim.workload import Workload

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "workloads" / "tiny.yaml")
WPSIM = [sys.executable, "-c", "import sys; from wpsim.console import main; sys.exit(main())"]


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return True
    return state == "Z"


def _start_run(tmp_path: Path, *args: str) -> tuple[subprocess.Popen, list[int], str]:
    """``wpsim run`` on the tiny workload, for many repeats; wait until its workers run."""
    pidfile = tmp_path / "pids"
    env = dict(os.environ, WPSIM_EXECUTOR_PIDFILE=str(pidfile))
    for var in BLAS_ENV:
        env.pop(var, None)
    cmd = [
        *WPSIM,
        "run",
        "-w",
        TINY,
        "--workers",
        "2",
        "--repeats",
        "1000000",
        "--warmup",
        "0",
        *args,
    ]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (pidfile.exists() and pidfile.read_text().endswith("\n")):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "workers did not start"
        time.sleep(0.05)
    fields = pidfile.read_text().split()
    time.sleep(1.0)  # the workers are (most likely) past start-up: either is handled
    return proc, [int(p) for p in fields[:-1]], fields[-1]


def _finish(proc: subprocess.Popen, pids: list[int], shm: str) -> str:
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in pids:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not all(_gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in pids), "a worker outlived the run"
    assert not Path("/dev/shm", shm.lstrip("/")).exists(), "the shared memory was left behind"
    return err


# ---- the stall watchdog ---------------------------------------------------------------------------
@pytest.mark.parametrize("policy", ["wavefront", "layerwise"])  # dynamic and sequence mode
def test_a_stopped_worker_ends_the_run_with_one_line(tmp_path, policy):
    proc, pids, shm = _start_run(tmp_path, "--policy", policy, "--stall-timeout", "1")
    os.kill(pids[1], signal.SIGSTOP)
    err = _finish(proc, pids, shm)
    assert proc.returncode == 2, err
    assert err.count("\n") == 1, err
    assert err.startswith(f"wpsim: error: worker 1 (pid {pids[1]}) made no progress for ")
    assert "its process is stopped (SIGSTOP?)" in err and "(--stall-timeout)" in err
    # the task it was on (a cell, or layerwise's hoisted input product), or start-up
    assert re.search(r" on (cell|input_gemm)\[l\d", err) or "while starting" in err


def test_a_hanging_task_ends_the_run_through_the_api():
    w = Workload(cell="gru", layers=2, hidden=8, input=4, seq_len=4)
    with pytest.raises(ExecutionError, match=r"worker \d \(pid \d+\) made no progress for") as info:
        execute(w, "wavefront", workers=2, fail_at_task=1, fail_mode="hang", stall_timeout_s=0.5)
    assert "(task 1)" in str(info.value)


def test_limits_come_from_the_predicted_task_length_with_a_floor():
    assert stall_limit_s(0.0) == 10.0
    assert stall_limit_s(1e12, floor_s=1.0) == pytest.approx(1e4)
    dog = Watchdog([1e6, 1e12], floor_s=1.0)
    dog.start(0, 0, now=100.0)
    dog.start(1, 1, now=100.0)
    dog.last_check = 100.0
    never = lambda w: False  # noqa: E731
    assert dog.stalled(100.5, never, never) is None
    assert dog.stalled(101.5, never, never) == (0, 0, 1.5)  # the short task is late
    assert dog.stalled(101.6, lambda w: w == 0, never) is None  # ... unless it finished its share


def test_a_pause_of_the_coordinator_itself_restarts_the_clocks():
    dog = Watchdog([1e6], floor_s=1.0)
    dog.start(0, 0, now=100.0)
    dog.last_check = 100.0
    never = lambda w: False  # noqa: E731
    late = 100.0 + SUSPENDED_GAP_S + 1  # the coordinator did not run meanwhile
    assert dog.stalled(late, never, never) is None
    assert dog.stalled(late + 0.5, never, never) is None
    assert dog.stalled(late + 1.5, never, never) is not None


# ---- SIGTERM and Ctrl-C -----------------------------------------------------------------------------
def test_sigterm_behaves_like_ctrl_c(tmp_path):
    proc, pids, shm = _start_run(tmp_path)
    proc.send_signal(signal.SIGTERM)
    err = _finish(proc, pids, shm)
    assert proc.returncode == 130
    assert err == "wpsim: interrupted\n"  # no resource_tracker warning, no traceback


DRIVER = """
import os, signal, sys
target, sig = sys.argv[1], getattr(signal, sys.argv[2])
class Interrupt:  # sends the signal the moment ``target`` starts to load
    def find_spec(self, name, path=None, module=None):
        if name == target:
            os.kill(os.getpid(), sig)
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = ["wpsim", *sys.argv[3:]]
from wpsim.console import main
sys.exit(main())
"""


@pytest.mark.parametrize(
    ("module", "sig"),
    [
        ("wpsim.cli", "SIGINT"),
        ("pydantic", "SIGINT"),
        ("yaml", "SIGINT"),
        ("wpsim.cli_sim", "SIGINT"),
        ("wpsim.cli_sweep", "SIGINT"),
        ("simpy", "SIGINT"),  # loaded by the command, after parsing
        ("numpy", "SIGTERM"),
    ],
)
def test_an_interrupt_while_modules_load_is_one_line(module, sig):
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, module, sig, "simulate", "-w", TINY],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "wpsim: interrupted\n"
