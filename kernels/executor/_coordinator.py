"""The coordinator: start the workers, drive the policy, collect trace and outputs, clean up.

The scheduling loop is :func:`wpsim.sim.engine.run_plan` with real time instead of simulated time:
count unfinished predecessors, ``policy.push`` each task that becomes ready, and whenever groups
are idle ask ``policy.assign(idle)`` (idle groups in ascending order) for work. Completions seen
in one scan of the mailboxes are all processed before the policy is asked again, like the
engine's deferred dispatch for events at the same instant.

With ONE group of workers (``sequential``, ``layerwise``, any policy on one worker) the order
cannot depend on timing: the policy's choices are the same whenever the tasks finish. So the
coordinator runs the loop above once without the workers (:func:`static_order`), writes the
order to the segment and hands it out as one command (sequence mode). The members then run task
after task with no round trip through the coordinator: measured here (2 vCPUs, VM), that round
trip is 40-75 us a task, the wake-up of a parked process on this hypervisor.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from time import perf_counter
from typing import Any

import numpy as np

from kernels.executor._execution import Execution, microseconds
from kernels.executor._result import measured_result
from kernels.executor._worker import Fault
from kernels.params import init_input, init_params, param_shapes
from kernels.tasks import RUNNABLE_KINDS
from wpsim.errors import ConfigError, ExecutionError
from wpsim.model.workload import Workload
from wpsim.result import Result
from wpsim.trace import Trace

#: How long a worker spins on shared memory before it parks (env ``WPSIM_EXECUTOR_SPIN_US``).
DEFAULT_SPIN_US = 50.0


#: Test hook (``mode:task``, e.g. ``raise:3``): inject a failure when no ``fail_at_task`` given.
FAULT_ENV = "WPSIM_EXECUTOR_FAULT"


FAULT_MODES = ("raise", "kill", "hang", "start")


def fault_from_env() -> Fault | None:
    text = os.environ.get(FAULT_ENV)
    if not text:
        return None
    mode, _, tid = text.partition(":")
    if mode not in ("raise", "kill", "hang") or not tid.isdigit():
        raise ConfigError(
            f"{FAULT_ENV}: got {text!r}, expected MODE:TASK with MODE raise|kill|hang"
        )
    return mode, int(tid)


def check_inputs(workload, params, x, grad_output, seed):
    shapes = param_shapes(workload)
    for name, shape in shapes.items():
        if name not in params:
            raise ConfigError(
                f"params: missing parameter '{name}' for this {workload.cell} workload"
            )
        if tuple(params[name].shape) != shape:
            raise ConfigError(
                f"params: parameter '{name}' has shape {tuple(params[name].shape)}, expected {shape}"
            )
    want = (workload.seq_len, workload.batch, workload.input)
    if np.shape(x) != want:
        raise ConfigError(f"x: got shape {np.shape(x)}, expected {want} (seq_len, batch, input)")
    out_width = (
        workload.output_size
        if workload.output != "none"
        else workload.directions * workload.output_width
    )
    gshape = (workload.seq_len, workload.batch, out_width)
    if workload.phase == "training":
        if grad_output is None:
            grad_output = np.random.default_rng(seed + 1).standard_normal(gshape)
        elif np.shape(grad_output) != gshape:
            raise ConfigError(f"grad_output: got shape {np.shape(grad_output)}, expected {gshape}")
    return params, x, grad_output


# ---- public entry points -----------------------------------------------------------------------
class Executor:
    """Worker processes kept alive for repeated runs of one workload under one policy.

    :func:`execute` is ``with Executor(...) as ex:`` around ``ex.run()`` calls; use the class
    directly to interleave runs with other measurements (``benchmarks/kernel.py`` alternates
    executor and PyTorch runs so that both see the same machine load).

    Parameters
    ----------
    workload, policy, workers, chunk, params, x, seed, grad_output, granularity, pin,
    fail_at_task, fail_mode
        As for :func:`execute`.

    Examples
    --------
    >>> from wpsim.model.workload import Workload
    >>> w = Workload(cell="rnn", layers=2, hidden=8, input=4, seq_len=6)
    >>> with Executor(w, "pipeline", workers=2, chunk=3) as ex:
    ...     makespans = [ex.run() for _ in range(3)]
    ...     result = ex.result()
    >>> len(result.extra["makespans_s"]), result.outputs["output"].shape
    (3, (6, 1, 8))
    """

    def __init__(
        self,
        workload: Workload,
        policy: Any,
        workers: int,
        chunk: int = 1,
        params: Mapping[str, Any] | None = None,
        x: np.ndarray | None = None,
        seed: int = 0,
        *,
        grad_output: np.ndarray | None = None,
        granularity: str = "cell",
        pin: bool = True,
        fail_at_task: int | None = None,
        fail_mode: str = "raise",
        stall_timeout_s: float | None = None,
    ) -> None:
        from wpsim.model.graph import build
        from wpsim.model.plan import compile_plan
        from wpsim.policies import get_policy

        for name, value in (("workers", workers), ("chunk", chunk)):
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"--{name}: got {value!r}, expected an integer >= 1")
        if granularity != "cell":
            raise ConfigError(
                f"--granularity {granularity}: only cell tasks run for real (op-level tasks are "
                "too small to dispatch to processes); use the simulator for op granularity"
            )
        if isinstance(policy, str):
            policy = get_policy(policy)
        options = dict(policy.graph_options(workload, chunk))
        if options.get("granularity", "cell") != "cell":
            raise ConfigError(
                f"policy {policy.name!r} needs op granularity, which cannot run for real"
            )
        graph = build(workload, **options)
        plan = compile_plan(graph)
        kinds = sorted({t.kind for t in plan.tasks} - set(RUNNABLE_KINDS))
        if kinds:
            raise ConfigError(f"task kinds {', '.join(kinds)} cannot run for real")
        groups = [tuple(g) for g in policy.core_groups(workers)]
        if not groups or any(c < 0 or c >= workers for g in groups for c in g):
            raise ConfigError(
                f"policy {policy.name!r} gave core groups {groups} for {workers} workers"
            )
        if fail_at_task is not None:
            if fail_mode not in FAULT_MODES:
                raise ConfigError(
                    f"fail_mode: got {fail_mode!r}, expected one of {', '.join(FAULT_MODES)}"
                )
            fault: Fault | None = (fail_mode, int(fail_at_task))
        else:
            fault = fault_from_env()
        self._inputs = check_inputs(
            workload,
            params if params is not None else init_params(workload, seed),
            x if x is not None else init_input(workload, seed),
            grad_output,
            seed,
        )
        self.workload = workload
        self.policy = policy
        self.workers = int(workers)
        self.plan = plan
        self.groups = groups
        hoisted = graph.graph.get("hoist_input") is not None
        if stall_timeout_s is not None and not (0 < stall_timeout_s < math.inf):
            raise ConfigError(f"--stall-timeout: got {stall_timeout_s!r}, expected seconds > 0")
        self._run = Execution(
            workload,
            policy,
            plan,
            groups,
            hoisted,
            microseconds("WPSIM_EXECUTOR_SPIN_US", DEFAULT_SPIN_US),
            fault,
            pin,
            stall_timeout_s,
        )
        self._runs: list[tuple[Trace, float]] = []
        self.startup_s = float("nan")
        self._started = False
        self._closed = False

    def __enter__(self) -> Executor:
        self.start()
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.close(graceful=exc_type is None)

    def start(self) -> None:
        """Create the segment and start the workers (``__enter__`` does it)."""
        if self._started:
            return
        self._started = True
        t0 = perf_counter()
        try:
            self._run.create_segment(*self._inputs)
            self._run.start_workers()
        except BaseException:
            self.close(graceful=False)
            raise
        self.startup_s = perf_counter() - t0

    def run(self, record: bool = True) -> float:
        """Run the graph once; return its makespan in seconds (kept for :meth:`result` if
        ``record``). On any failure every worker is stopped and the segment removed."""
        if self._closed or not self._started:
            raise ExecutionError("the executor is not running (use it as a context manager)")
        try:
            trace, makespan = self._run.run_once()
        except BaseException:
            self.close(graceful=False)
            raise
        if record:
            self._runs.append((trace, makespan))
        return makespan

    def result(self) -> Result:
        """Outputs of the last run, the trace of the median recorded run, all makespans
        (:func:`kernels.executor._result.measured_result`)."""
        if not self._runs:
            raise ExecutionError("no recorded run yet")
        if self._closed:
            raise ExecutionError("the executor is closed; call result() inside the with block")
        outputs, grads = self._run.collect()
        return measured_result(
            outputs,
            grads,
            self._runs,
            policy=self.policy.describe(),
            workers=self.workers,
            groups=self.groups,
            chunk=self.plan.chunk,
            tasks=self.plan.tasks,
            startup_s=self.startup_s,
            workload=self.workload,
        )

    def close(self, graceful: bool = True) -> None:
        """Stop the workers and remove the segment (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._run.shutdown(graceful)


def execute(
    workload: Workload,
    policy: Any,
    workers: int,
    chunk: int = 1,
    params: Mapping[str, Any] | None = None,
    x: np.ndarray | None = None,
    seed: int = 0,
    repeats: int = 1,
    *,
    warmup: int = 0,
    grad_output: np.ndarray | None = None,
    granularity: str = "cell",
    pin: bool = True,
    fail_at_task: int | None = None,
    fail_mode: str = "raise",
    stall_timeout_s: float | None = None,
) -> Result:
    """Run ``workload``'s task graph for real on ``workers`` processes under ``policy``.

    The graph is the one the simulator builds for the policy (``policy.graph_options``), the
    core groups are ``policy.core_groups(workers)`` (one worker process per core of a group;
    cores no group uses get no process) and every decision comes from the policy's
    ``push``/``assign``, as in :func:`wpsim.sim.engine.run_plan`.

    Parameters
    ----------
    workload : Workload
        Any cell, layers, direction, phase, dtype (float16 computed in float32), density
        (sparse ``W_hh`` run as CSR), output layer.
    policy : Policy or str
        A policy object (:func:`wpsim.policies.get_policy`) or a registered name.
    workers : int
        Worker processes available (the simulator's cores).
    chunk : int
        Time steps per cell task (policies may override, e.g. ``layerwise`` uses 1).
    params : mapping, optional
        Parameters (:func:`kernels.init_params` with ``seed`` by default).
    x : ndarray, optional
        Input, shape (seq_len, batch, input) (:func:`kernels.init_input` with ``seed`` by
        default).
    seed : int
        Seed of the default parameters and input.
    repeats : int
        Timed runs, with the same workers; all outputs are identical, times vary.
    warmup : int
        Untimed runs before them (page faults of the fresh segment, BLAS buffers).
    grad_output : ndarray, optional
        Training: the loss gradient w.r.t. the output (default: standard normal drawn
        with seed ``seed + 1``).
    granularity : {"cell"}
        Only whole-cell tasks run for real; ``"op"`` raises :class:`~wpsim.errors.ConfigError`.
    pin : bool
        Pin worker ``w`` to the ``w``-th allowed CPU (when there are enough CPUs). Turn off on
        a machine shared with other busy processes: a pinned worker cannot move away from them.
    fail_at_task : int, optional
        Test hook: the worker running this task fails as ``fail_mode`` says (``"raise"`` an
        exception, ``"kill"`` itself with SIGKILL, ``"hang"``; ``"start"``: every worker fails
        while starting). Also read from the environment variable
        ``WPSIM_EXECUTOR_FAULT=MODE:TASK`` when not given.
    stall_timeout_s : float, optional
        The stall watchdog's floor (:mod:`kernels.executor._watchdog`, default 10 s): a worker
        that makes no progress for this long, or for its task's predicted time at a pessimistic
        rate if longer, ends the run with one line naming it and its task.

    Returns
    -------
    Result
        ``engine="measured"`` (:func:`kernels.executor._result.measured_result`).

    Raises
    ------
    ConfigError
        Bad arguments, an op-granularity request, a task kind that cannot run for real.
    ExecutionError
        A worker raised, died, stalled or could not start; one line naming the task. Every
        worker is stopped and the shared-memory segment removed before it propagates (also on
        Ctrl-C and SIGTERM).

    Examples
    --------
    >>> from wpsim.model.workload import Workload
    >>> w = Workload(cell="gru", layers=2, hidden=8, input=4, seq_len=4)
    >>> r = execute(w, "wavefront", workers=2, chunk=2)
    >>> r.n_tasks, r.outputs["output"].shape, len(r.trace)
    (4, (4, 1, 8), 4)
    """
    for name, value, low in (("repeats", repeats, 1), ("warmup", warmup, 0)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ConfigError(f"--{name}: got {value!r}, expected an integer >= {low}")
    with Executor(
        workload,
        policy,
        workers,
        chunk,
        params,
        x,
        seed,
        grad_output=grad_output,
        granularity=granularity,
        pin=pin,
        fail_at_task=fail_at_task,
        fail_mode=fail_mode,
        stall_timeout_s=stall_timeout_s,
    ) as ex:
        for _ in range(warmup):
            ex.run(record=False)
        for _ in range(repeats):
            ex.run()
        return ex.result()
