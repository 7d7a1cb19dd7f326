"""Measured at scale: the real executor and the GPU model checked on one machine, in one run.

One command that stops by itself within ``--budget-s`` (default 480) and writes everything as
CSV into the folder given by ``--out``:

1. ``calibrate``: ``wpsim calibrate --quick`` of this computer (``calibration.yaml``), the
   machine file every CPU prediction below uses (skipped with ``--hardware FILE``);
2. ``accuracy``: the matrix of ``benchmarks/accuracy.py`` (:func:`wpsim.validate.validate`:
   measured against predicted speed-up, each against its own 1-worker sequential run) on the 8
   workloads of ``benchmarks/kernel.py`` (LSTM and GRU, 2-8 layers, H 256-1024, batch 1-4) x
   ``wavefront``, ``layerwise``, ``pipeline`` x ``--workers`` (1, 4, 8, 16, clipped to the CPUs
   present), plus the wavefront with groups of 2 helper cores (``wavefront-h2``) where groups fit
   better than single cores (more workers than layers); 3 interleaved rounds, the fewest whose
   median is not a mean (``accuracy.csv``);
3. ``torch``: the real wavefront, with the chunk and helper groups that the model (the simulator
   on ``calibration.yaml``) predicts fastest, against ``torch.nn.LSTM``/``GRU`` on the same number
   of CPU threads (``--torch-threads`` 8 and 16, clipped), minima of interleaved runs as in
   ``benchmarks/kernel.py`` (``torch_cpu.csv``);
4. ``gpu``: ``torch.nn.LSTM``/``GRU`` (cuDNN) forward and training step (forward + backward)
   timed with CUDA events on a small grid (hidden 256-2048, batch 1-64, 1-4 layers, seq 50-200,
   fp32 with TF32 off and fp16), and wpsim's prediction for the same shapes from
   ``hw_configs/h100_sxm.yaml`` (or ``h200_sxm.yaml`` when torch reports an H200), both built from
   spec sheets beforehand (``gpu.csv``; see ``benchmarks/at_scale_gpu.py``). Without CUDA the
   timings are skipped and the rows hold the predictions only.

``manifest.csv`` records the machine, the library versions, the exact commands and each phase's
budget, wall time and status; ``progress.log`` repeats the progress lines printed on stderr.
At most 6 files, flat: all of them come back from the device machine's ``$OUT`` (8 at most).

Budget. Each phase runs in its own process (its own process group) and is given a deadline: it
starts no unit (a workload, a shape) that its predecessor's time says would not finish by then,
and is killed a short grace after it. Phases run in the order above, the most valuable first;
``torch`` and ``gpu`` keep a reserved share of the budget (15% and 18%), ``calibrate`` has 15%
(killed at 35%: every CPU prediction needs its file), and ``accuracy`` takes whatever is left,
so an overrun early costs accuracy cases, never the later phases. Every table is rewritten
atomically after each finished unit: a kill or an overrun loses only the unit in flight.

On the 16-core device machine (its python3 lacks simpy and pydantic: carry them as wheels, made
here once by ``bash benchmarks/at_scale_wheels.sh``, 2.8 MB), the single ``run`` call is (the
command is one line; :data:`DEVICE_RUN` holds the same)::

    carry: [".whl"]   timeout_s: 540
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; PYTHONUNBUFFERED=1 python3 benchmarks/at_scale.py --out $OUT

The run takes the 480 s budget and about 20 s more (the install, the interpreters); with the
machine's start, about 10 of a session's 15 device minutes. Its six files come back from
``$OUT``; copy ``manifest.csv``, ``calibration.yaml``, ``accuracy.csv`` and ``torch_cpu.csv``
into ``reports/real_scaling/data/`` and ``manifest.csv`` and ``gpu.csv`` into
``reports/gpu_validation/data/``, then run ``wpsim report real_scaling gpu_validation``. If one
phase failed, the remaining minutes allow a rerun of that phase alone on the still-warm machine
(``--phases gpu --budget-s 150``, same prefix; ``accuracy`` and ``torch`` also need the first
run's ``calibration.yaml`` carried and given as ``--hardware``).

On the development machine (Intel Xeon (KVM), 2 cores, no CUDA, 2026-12-06, shared: other
processes took 83% of the CPU time), the default budget ran every phase at 1-2 workers in 402 s:
calibration 117 s, accuracy and torch stopped at their deadlines after 4 of 8 workloads (150 s
and 99 s), GPU predictions only (35 s). ``--tiny`` shrinks every workload and shape to exercise
the pipeline in seconds (the tests: about 15 s on an idle machine).

Usage::

    python benchmarks/at_scale.py --out out/at_scale
    python benchmarks/at_scale.py --out out/x --phases accuracy --hardware hw_configs/xeon_kvm_2core.yaml
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
for _path in (str(ROOT), str(BENCHMARKS)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from wpsim.outputs import atomic_write, check_output  # noqa: E402

STATUS_PREFIX = "AT_SCALE_STATUS "
FILES = {
    "manifest": "manifest.csv",
    "log": "progress.log",
    "calibration": "calibration.yaml",
    "accuracy": "accuracy.csv",
    "torch": "torch_cpu.csv",
    "gpu": "gpu.csv",
}


@dataclass(frozen=True)
class Phase:
    """A phase: its share of the budget (0 for the one that takes what is left)."""

    name: str
    share: float
    hard_share: float = 0.0  # killed after this share (0: its deadline plus the grace)


PHASES = [
    Phase("calibrate", 0.15, hard_share=0.35),
    Phase("accuracy", 0.0),
    Phase("torch", 0.15),
    Phase("gpu", 0.18),
]
SLACK = 0.02  # of the budget, kept for the last writes
#: The device machine's ``run`` call (see the module docstring; reports/real_scaling shows it).
DEVICE_RUN = {
    "carry": [".whl"],
    "timeout_s": 540,
    "command": "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir "
    "--upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit; "
    "PYTHONUNBUFFERED=1 python3 benchmarks/at_scale.py --out $OUT",
}
GRACE_S = 10.0  # after a phase's deadline before it is killed

#: The 8 workloads of benchmarks/kernel.py with the accuracy matrix's chunk and sequence length
#: (a 1-worker run of tens of milliseconds on the development machine), in order of value: deep
#: and mixed first, both cells early.
#: (cell, layers, hidden, batch, chunk, seq_len)
ACCURACY_CASES = [
    ("lstm", 8, 256, 4, 2, 48),
    ("gru", 4, 512, 2, 1, 48),
    ("lstm", 4, 1024, 1, 1, 16),
    ("gru", 8, 256, 1, 1, 48),
    ("lstm", 4, 512, 1, 1, 48),
    ("gru", 2, 1024, 4, 4, 32),
    ("lstm", 8, 512, 2, 2, 24),
    ("lstm", 2, 256, 1, 1, 96),
]
TINY_ACCURACY_CASES = [("lstm", 1, 32, 1, 1, 8), ("gru", 3, 32, 2, 2, 8)]  # 1 layer: helpers at 2
ACCURACY_POLICIES = ["wavefront", "layerwise", "pipeline"]
HELPER_GROUP = 2  # cores per group of the helper variant
TORCH_SEQ_LEN = 100
TINY_TORCH_SEQ_LEN = 10
#: Candidate chunks and helper-group sizes the model chooses from for the torch comparison.
CHUNKS = (1, 2, 5, 10, 20, 25, 50)
HELPERS = (1, 2, 4)

ACCURACY_FIELDS = [
    "case", "cell", "layers", "hidden", "batch", "chunk", "seq_len", "policy", "helpers",
    "workers", "baseline", "measured_makespan_s", "predicted_makespan_s", "measured_speedup",
    "predicted_speedup", "signed_error", "rel_error", "n_tasks", "measured_busy_s",
    "predicted_busy_s", "measured_dispatch_s", "model_dispatch_s", "measured_makespans_s",
    "repeats", "task_sim_over_meas", "foreign_cpu_fraction", "case_wall_s", "machine",
]  # fmt: skip
TORCH_FIELDS = [
    "workload", "cell", "layers", "hidden", "batch", "seq_len", "threads", "chunk", "helpers",
    "model_choice", "predicted_makespan_s", "exec_s", "torch_s", "ratio", "exec_ahead",
    "max_abs_diff", "repeats", "startup_s", "foreign_cpu_fraction", "wall_s",
]  # fmt: skip


# ---- small helpers ----------------------------------------------------------------------------


class Log:
    """Progress lines: stderr and ``progress.log`` (appended, flushed line by line)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.lock = threading.Lock()

    def __call__(self, line: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        text = f"[{stamp}] {line}"
        with self.lock:
            print(text, file=sys.stderr, flush=True)
            if self.path is not None:
                with open(self.path, "a") as handle:
                    handle.write(text + "\n")


class CsvTable:
    """A CSV file rewritten atomically after every added row (a kill loses no finished row)."""

    def __init__(self, path: Path, fields: Sequence[str]) -> None:
        self.path = check_output(path, "--out")
        self.fields = list(fields)
        self.rows: list[dict[str, Any]] = []
        self.flush()

    def add(self, row: dict[str, Any]) -> None:
        unknown = set(row) - set(self.fields)
        if unknown:
            raise ValueError(f"{self.path.name}: columns {sorted(unknown)} are not in the header")
        self.rows.append(row)
        self.flush()

    def flush(self) -> None:
        """Rewrite the file (after changing ``rows`` in place)."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _cell(row.get(k, "")) for k in self.fields} for row in self.rows)
        atomic_write(self.path, buffer.getvalue(), "--out")


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ";".join(_cell(v) for v in value)
    return value


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like 1,4,8, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _phase_list(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    known = [p.name for p in PHASES]
    for name in names:
        if name not in known:
            raise argparse.ArgumentTypeError(f"unknown phase {name!r}, expected some of {known}")
    return [p for p in known if p in names]  # always in run order


def usable_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def clipped_counts(requested: Sequence[int], limit: int) -> list[int]:
    """Worker or thread counts clipped to ``limit``, without duplicates, ascending.

    >>> clipped_counts([1, 4, 8, 16], 2)
    [1, 2]
    >>> clipped_counts([8, 16], 16)
    [8, 16]
    """
    return sorted({min(n, limit) for n in requested})


# ---- the record of the run --------------------------------------------------------------------


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_bytes() -> str:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return str(int(line.split()[1]) * 1024)
    except OSError:
        pass
    return "unknown"


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() if done.returncode == 0 else "unknown"


def environment() -> list[tuple[str, str, str]]:
    """(section, key, value) rows: the machine and the library versions."""
    load = f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "unknown"
    rows = [
        ("machine", "cpu_model", _cpu_model()),
        ("machine", "cpu_count", str(os.cpu_count())),
        ("machine", "usable_cpus", str(usable_cpus())),
        ("machine", "memory_bytes", _memory_bytes()),
        ("machine", "platform", platform.platform()),
        ("machine", "load_average_1min", load),
        ("versions", "python", platform.python_version()),
    ]
    for name in ("numpy", "scipy", "torch", "simpy", "pydantic", "pydantic-core", "networkx",
                 "pyyaml", "matplotlib", "threadpoolctl", "wpsim"):  # fmt: skip
        rows.append(("versions", name, _version(name)))
    try:
        import numpy  # noqa: F401  (loads its BLAS, which threadpool_info then reports)
        from threadpoolctl import threadpool_info

        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                rows.append(("versions", "blas", f"{pool.get('internal_api')} "
                             f"{pool.get('version')} ({pool.get('filepath')})"))  # fmt: skip
                break
    except Exception as error:  # noqa: BLE001 - a record, never a reason to stop
        rows.append(("versions", "blas", f"unknown ({type(error).__name__})"))
    commit = _git("rev-parse", "HEAD")  # "unknown" where the tree travelled without .git
    dirty = "unknown" if commit == "unknown" else "yes" if _git("status", "--porcelain") else "no"
    rows += [("run", "git_commit", commit), ("run", "git_dirty", dirty)]
    return rows


class Manifest:
    """``manifest.csv``: section, key, value; rewritten atomically at every change."""

    def __init__(self, path: Path) -> None:
        self.table = CsvTable(path, ["section", "key", "value"])

    def add(self, section: str, key: str, value: Any) -> None:
        self.table.add({"section": section, "key": key, "value": value})


# ---- the parent: phases in processes, each with a deadline --------------------------------------


@dataclass
class Deadlines:
    """When each phase must stop starting work (soft) and when it is killed (hard)."""

    t0: float
    budget_s: float
    phases: list[Phase]

    @property
    def end(self) -> float:
        return self.t0 + self.budget_s * (1.0 - SLACK)

    def reserved_after(self, name: str) -> float:
        names = [p.name for p in self.phases]
        later = self.phases[names.index(name) + 1 :]
        return self.budget_s * sum(p.share for p in later)

    def for_phase(self, phase: Phase, now: float) -> tuple[float, float]:
        """(soft, hard) deadlines, as ``time.time()``: the later phases' shares stay reserved;
        ``calibrate`` stops at its own share and is killed at its hard share."""
        soft = self.end - self.reserved_after(phase.name)
        hard = soft + GRACE_S
        if phase.hard_share:
            soft = min(now + phase.share * self.budget_s, soft)
            hard = min(now + phase.hard_share * self.budget_s, hard)
        hard = min(hard, self.t0 + self.budget_s - 1.0)
        return max(soft, now), max(hard, soft, now)


def _relay(stream, log: Log, status: dict[str, Any]) -> None:
    for raw in stream:
        line = raw.rstrip("\n")
        if line.startswith(STATUS_PREFIX):
            try:
                status.update(json.loads(line[len(STATUS_PREFIX) :]))
            except ValueError:
                log(f"  (unreadable status line: {line[:200]})")
            continue
        log(f"  {line}")


def run_child(command: list[str], hard: float, log: Log) -> dict[str, Any]:
    """Run ``command`` in its own process group, relaying its output; kill the group at
    ``hard`` (``time.time()``). Returns its status line's fields, exit code and whether killed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    status: dict[str, Any] = {}
    try:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    except OSError as error:
        return {"status": f"failed to start: {error}", "exit_code": None, "killed": False}
    reader = threading.Thread(target=_relay, args=(proc.stdout, log, status), daemon=True)
    reader.start()
    killed = False
    try:
        proc.wait(timeout=max(0.0, hard - time.time()))
    except subprocess.TimeoutExpired:
        killed = True
        log(f"  hard deadline reached: killing process group {proc.pid}")
        _kill_group(proc)
    except BaseException:
        _kill_group(proc)
        raise
    reader.join(timeout=5.0)
    status["exit_code"] = proc.returncode
    status["killed"] = killed
    return status


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def phase_command(name: str, args: argparse.Namespace, soft: float) -> list[str]:
    """The exact command of a phase (recorded in the manifest)."""
    out = Path(args.out)
    if name == "calibrate":
        return [sys.executable, "-m", "wpsim.cli", "calibrate", "--quick", "--out",
                str(out / FILES["calibration"])]  # fmt: skip
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--out", str(out),
               "--deadline", f"{soft:.3f}", "--workers", ",".join(map(str, args.workers)),
               "--torch-threads", ",".join(map(str, args.torch_threads)),
               "--repeats", str(args.repeats), "--gpu-precisions", args.gpu_precisions]  # fmt: skip
    if args.hardware:
        command += ["--hardware", str(args.hardware)]
    if args.gpu_machine:
        command += ["--gpu-machine", str(args.gpu_machine)]
    if args.cases:
        command += ["--cases", str(args.cases)]
    if args.tiny:
        command.append("--tiny")
    return command


def run_parent(args: argparse.Namespace) -> int:
    t0 = time.time()
    # the phases run in the repository root: paths given relative to here must still hold there
    for name in ("out", "hardware", "gpu_machine"):
        if getattr(args, name):
            setattr(args, name, str(Path(getattr(args, name)).resolve()))
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        print(f"at_scale: --out {out}: is a file, expected a folder", file=sys.stderr)
        return 2
    if not out.parent.is_dir():
        print(f"at_scale: --out {out}: folder {out.parent} does not exist", file=sys.stderr)
        return 2
    out.mkdir(exist_ok=True)
    log = Log(check_output(out / FILES["log"], "--out"))
    phases = [p for p in PHASES if p.name in args.phases]
    if args.hardware and "calibrate" in args.phases:
        phases = [p for p in phases if p.name != "calibrate"]
    manifest = Manifest(out / FILES["manifest"])
    manifest.add("run", "date_utc", datetime.now(UTC).isoformat(timespec="seconds"))
    manifest.add("run", "command", shlex.join([sys.executable, *sys.argv]))
    manifest.add("run", "budget_s", args.budget_s)
    manifest.add("run", "phases", ",".join(p.name for p in phases))
    manifest.add("run", "tiny", "yes" if args.tiny else "no")
    for section, key, value in environment():
        manifest.add(section, key, value)
    if args.hardware:
        manifest.add("phase:calibrate", "status", f"skipped: --hardware {args.hardware} given")
    log(f"at_scale: budget {args.budget_s:.0f} s, phases {', '.join(p.name for p in phases)}, "
        f"{usable_cpus()} CPUs, out {out}")  # fmt: skip
    deadlines = Deadlines(t0, args.budget_s, phases)
    for phase in phases:
        now = time.time()
        soft, hard = deadlines.for_phase(phase, now)
        command = phase_command(phase.name, args, soft)
        section = f"phase:{phase.name}"
        manifest.add(section, "command", shlex.join(command))
        manifest.add(section, "budget_s", round(soft - now, 1))
        if soft - now < 1.0:
            log(f"phase {phase.name}: no time left, skipped")
            manifest.add(section, "status", "skipped: no time left in the budget")
            continue
        log(f"phase {phase.name}: until {soft - t0:.0f} s (killed at {hard - t0:.0f} s)")
        status = run_child(command, hard, log)
        wall = time.time() - now
        manifest.add(section, "wall_s", round(wall, 1))
        manifest.add(section, "exit_code", status.get("exit_code"))
        text = status.get("status")
        if status.get("killed"):
            text = f"killed at its hard deadline after {wall:.0f} s ({text or 'no status line'})"
        elif text is None:
            code = status.get("exit_code")
            text = "done" if code == 0 else f"failed: exit code {code}"
        manifest.add(section, "status", text)
        for key in ("rows", "units_done", "units_total"):
            if key in status:
                manifest.add(section, key, status[key])
        for key, value in sorted(status.get("info", {}).items()):
            manifest.add(phase.name, key, value)
        log(f"phase {phase.name}: {text} ({wall:.0f} s)")
    total = time.time() - t0
    manifest.add("run", "wall_s", round(total, 1))
    log(f"at_scale: finished in {total:.0f} s of {args.budget_s:.0f}; results in {out}")
    return 0


# ---- the children -----------------------------------------------------------------------------


class Budget:
    """A child's deadline: start a unit only if its estimate fits."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.longest_s = 0.0

    def fits(self, estimate_s: float | None = None) -> bool:
        estimate = self.longest_s if estimate_s is None else estimate_s
        return time.time() + estimate <= self.deadline

    def done(self, wall_s: float) -> None:
        self.longest_s = max(self.longest_s, wall_s)


def report_status(**fields: Any) -> None:
    print(STATUS_PREFIX + json.dumps(fields, default=str), flush=True)


def cpu_machine(args: argparse.Namespace):
    """The machine file of this computer: ``--hardware`` or the calibration; None if neither."""
    from wpsim.hardware import load_machine

    path = Path(args.hardware) if args.hardware else Path(args.out) / FILES["calibration"]
    if not path.is_file():
        return None, path
    return load_machine(path), path


def helper_policy(helpers: int) -> str:
    """Register (once) ``wavefront-h<k>``: the wavefront on groups of ``k`` helper cores, so that
    :func:`wpsim.validate.validate`, which takes policy names, can run it."""
    from wpsim.policies import REGISTRY, register
    from wpsim.policies.wavefront import Wavefront

    name = f"wavefront-h{helpers}"
    if name not in REGISTRY:

        def __init__(self, helpers: int | None = helpers, instances: int = 1) -> None:
            Wavefront.__init__(self, helpers=helpers, instances=instances)

        register(type(f"WavefrontHelpers{helpers}", (Wavefront,), {
            "name": name, "__init__": __init__,
            "description": f"wavefront on groups of {helpers} helper cores",
        }))  # fmt: skip
    return name


def _accuracy_case(spec: tuple) -> Any:
    from accuracy import Case

    return Case(*spec)


def run_accuracy(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    from kernel import CpuMeter

    from wpsim.calibrate import calibration_mismatch
    from wpsim.errors import WpsimError
    from wpsim.validate import validate

    machine, path = cpu_machine(args)
    if machine is None:
        return {"status": f"skipped: no machine file ({path} missing: calibration failed?)"}
    table = CsvTable(Path(args.out) / FILES["accuracy"], ACCURACY_FIELDS)
    cpus = min(usable_cpus(), machine.total_cores)
    workers = []
    for n in clipped_counts(args.workers, cpus):
        try:
            machine.with_cores(n)
        except WpsimError as error:
            log(f"accuracy: {n} workers skipped: {error}")
            continue
        if n > 1:
            workers.append(n)
    if not workers:
        return {"status": f"skipped: no worker count > 1 fits {cpus} CPUs"}
    specs = TINY_ACCURACY_CASES if args.tiny else ACCURACY_CASES
    cases = [_accuracy_case(s) for s in specs[: args.cases or None]]
    mismatch = calibration_mismatch(machine)
    if mismatch:
        log(f"accuracy: WARNING: {mismatch}")
    log(f"accuracy: {len(cases)} cases x {','.join(ACCURACY_POLICIES)} (+ {helper_policy(HELPER_GROUP)}"
        f" where workers > layers) x workers {workers}; {args.repeats} rounds; {machine.name}")  # fmt: skip
    budget = Budget(args.deadline)
    done = 0
    for case in cases:
        if done and not budget.fits():
            log(f"accuracy: stopping before {case.name}: the longest case so far "
                f"({budget.longest_s:.0f} s) would not finish before the deadline")  # fmt: skip
            break
        started = time.time()
        meter = CpuMeter()
        calls = [(ACCURACY_POLICIES, workers)]
        helper_workers = [n for n in workers if n > case.layers and n % HELPER_GROUP == 0]
        if helper_workers:
            calls.append(([helper_policy(HELPER_GROUP)], helper_workers))
        rows = []
        try:
            for policies, counts in calls:
                report = validate(case.workload(), machine, workers=counts, policies=policies,
                                  chunk=case.chunk, repeats=args.repeats)  # fmt: skip
                rows += _accuracy_rows(case, report, args.repeats, machine.name)
        except WpsimError as error:
            log(f"accuracy: {case.name}: error: {error}")
            continue
        wall = time.time() - started
        foreign = meter.foreign_fraction()
        for row in rows:
            table.add({**row, "case_wall_s": wall, "foreign_cpu_fraction": foreign})
            if not row["baseline"]:
                log(f"accuracy: {case.name} {row['policy']:<13} {row['workers']:>2} workers: "
                    f"speed-up measured {row['measured_speedup']:.2f}x, predicted "
                    f"{row['predicted_speedup']:.2f}x ({100 * row['signed_error']:+.1f}%)")  # fmt: skip
        budget.done(wall)
        done += 1
        log(f"accuracy: {case.name} done in {wall:.1f} s ({done}/{len(cases)})")
    stopped = "" if done == len(cases) else f"; stopped at budget after {done} of {len(cases)}"
    return {"status": f"done{stopped}", "rows": len(table.rows), "units_done": done,
            "units_total": len(cases)}  # fmt: skip


def _accuracy_rows(case, report, repeats: int, machine_name: str) -> list[dict[str, Any]]:
    from accuracy import _mean_task_s

    base = _mean_task_s(report.per_kind, "sequential", 1, "measured_mean_s")
    base_sim = _mean_task_s(report.per_kind, "sequential", 1, "simulated_mean_s")
    rows = []
    for row in report.rows:
        helpers = HELPER_GROUP if row["policy"].startswith("wavefront-h") else 1
        rows.append({
            "case": case.name, "cell": case.cell, "layers": case.layers, "hidden": case.hidden,
            "batch": case.batch, "seq_len": case.seq_len, "helpers": helpers,
            "repeats": repeats, "task_sim_over_meas": base_sim / base, "machine": machine_name,
            **{k: v for k, v in row.items() if k in ACCURACY_FIELDS},
        })  # fmt: skip
    return rows


def model_choice(workload, machine, threads: int) -> tuple[int, int, float, str]:
    """The chunk and helper-group size the simulator predicts fastest for the wavefront on
    ``threads`` cores: (chunk, helpers, predicted makespan s, label)."""
    from wpsim.engine import simulate
    from wpsim.errors import WpsimError
    from wpsim.policies import get_policy

    best = None
    for helpers in HELPERS:
        if helpers > threads or threads % helpers:
            continue
        for chunk in CHUNKS:
            if chunk > workload.seq_len:
                continue
            policy = get_policy("wavefront", helpers=helpers if helpers > 1 else None)
            try:
                makespan = simulate(workload, machine, policy, cores=threads,
                                    chunk=chunk).makespan_s  # fmt: skip
            except WpsimError:
                continue
            # ties: the smaller chunk, then fewer helpers (the candidates' order)
            if best is None or makespan < best[2]:
                best = (chunk, helpers, makespan, "model")
    if best is None:
        raise ValueError(f"no wavefront configuration fits {threads} cores")
    return best


def run_torch(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    import numpy as np
    from kernel import DEFAULT_GRID, CpuMeter, TorchRunner, interleaved

    from kernels import init_input, init_params
    from kernels.executor import Executor
    from wpsim.policies import get_policy
    from wpsim.workload import Workload

    machine, path = cpu_machine(args)
    threads = clipped_counts(args.torch_threads, usable_cpus())
    table = CsvTable(Path(args.out) / FILES["torch"], TORCH_FIELDS)
    if machine is None:
        log(f"torch: no machine file ({path}): chunk 20, no helpers (kernel.py's default)")
    grid = [("lstm", 2, 32, 1), ("gru", 2, 32, 2)] if args.tiny else DEFAULT_GRID
    grid = grid[: args.cases or None]
    seq_len = TINY_TORCH_SEQ_LEN if args.tiny else TORCH_SEQ_LEN
    repeats = 3 if args.tiny else 5
    units = [(spec, n) for spec in grid for n in threads]
    log(f"torch: {len(grid)} workloads x threads {threads}, T={seq_len}, min of {repeats} "
        "interleaved runs")  # fmt: skip
    budget = Budget(args.deadline)
    done = 0
    for (cell, layers, hidden, batch), n in units:
        if done and not budget.fits():
            log(f"torch: stopping: the longest unit so far ({budget.longest_s:.0f} s) would not "
                "finish before the deadline")  # fmt: skip
            break
        started = time.time()
        name = f"{cell}-L{layers}-H{hidden}-B{batch}"
        w = Workload(name=name, cell=cell, layers=layers, hidden=hidden, input=hidden,
                     seq_len=seq_len, batch=batch)  # fmt: skip
        if machine is not None:
            chunk, helpers, predicted, label = model_choice(w, machine, n)
        else:
            chunk, helpers, predicted, label = min(20, seq_len), 1, float("nan"), "default"
        params, x = init_params(w), init_input(w)
        runner = TorchRunner(w, params, x)
        meter = CpuMeter()
        policy = get_policy("wavefront", helpers=helpers if helpers > 1 else None)
        with Executor(w, policy, n, chunk=chunk, params=params, x=x) as ex:
            t_exec, t_torch, y_torch, _ = interleaved(ex, runner, n, repeats)
            result = ex.result()
        worst = float(np.abs(result.outputs["output"] - y_torch).max())
        wall = time.time() - started
        table.add({
            "workload": name, "cell": cell, "layers": layers, "hidden": hidden, "batch": batch,
            "seq_len": seq_len, "threads": n, "chunk": chunk, "helpers": helpers,
            "model_choice": label, "predicted_makespan_s": predicted, "exec_s": t_exec,
            "torch_s": t_torch, "ratio": t_exec / t_torch, "exec_ahead": t_exec < t_torch,
            "max_abs_diff": worst, "repeats": repeats, "startup_s": result.startup_s,
            "foreign_cpu_fraction": meter.foreign_fraction(), "wall_s": wall,
        })  # fmt: skip
        log(f"torch: {name} on {n}: wavefront (chunk {chunk}, helpers {helpers}) "
            f"{t_exec * 1e3:.1f} ms, torch {t_torch * 1e3:.1f} ms: ratio {t_exec / t_torch:.2f}")  # fmt: skip
        budget.done(wall)
        done += 1
    stopped = "" if done == len(units) else f"; stopped at budget after {done} of {len(units)}"
    return {"status": f"done{stopped}", "rows": len(table.rows), "units_done": done,
            "units_total": len(units)}  # fmt: skip


def run_child_phase(args: argparse.Namespace) -> int:
    """The body of ``--child PHASE``: one status line on stdout, progress on stderr."""

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        if args.child == "accuracy":
            status = run_accuracy(args, log)
        elif args.child == "torch":
            status = run_torch(args, log)
        elif args.child == "gpu":
            from at_scale_gpu import run_gpu

            status = run_gpu(args, log)
        else:
            raise ValueError(f"--child {args.child}: not a measuring phase")
    except Exception as error:  # noqa: BLE001 - one line in the manifest, rows already kept
        report_status(status=f"failed: {type(error).__name__}: {error}")
        raise
    report_status(**status)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="results folder (created if missing)")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="wall-clock budget of the whole run in seconds (default 480)")  # fmt: skip
    parser.add_argument("--phases", type=_phase_list, default=[p.name for p in PHASES],
                        help="phases to run (default: calibrate,accuracy,torch,gpu)")  # fmt: skip
    parser.add_argument("--hardware", help="machine file of this computer: skip the calibration")
    parser.add_argument("--workers", type=_int_list, default=[1, 4, 8, 16],
                        help="accuracy worker counts, clipped to the CPUs (default 1,4,8,16)")  # fmt: skip
    parser.add_argument("--torch-threads", type=_int_list, default=[8, 16],
                        help="thread counts against torch, clipped to the CPUs (default 8,16)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds of the accuracy matrix (default 3)")  # fmt: skip
    parser.add_argument("--gpu-precisions", default="fp32,fp16",
                        help="fp32 (TF32 off), fp16, tf32 (fp32 with TF32 on, no prediction)")  # fmt: skip
    parser.add_argument("--gpu-machine", help="GPU machine file (default: by the device name)")
    parser.add_argument("--cases", type=int, help="only the first N workloads of each phase")
    parser.add_argument("--tiny", action="store_true",
                        help="tiny workloads and shapes: exercise the pipeline in seconds")  # fmt: skip
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.budget_s <= 0 or args.repeats < 1 or (args.cases is not None and args.cases < 1):
        parser.error("--budget-s, --repeats and --cases must be positive")
    if args.child:
        if args.deadline is None:
            args.deadline = time.time() + args.budget_s
        return run_child_phase(args)
    try:
        return run_parent(args)
    except KeyboardInterrupt:
        print("at_scale: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
