"""The real multi-process executor: a task graph run by N worker processes under a policy.

The same graph the simulator builds for a policy (``policy.graph_options`` then
:func:`wpsim.graph.build` and :func:`wpsim.plan.compile_plan`), the same policy object making
every decision through ``push``/``assign`` in a coordinator (the calling process), and a
:class:`wpsim.trace.Trace` in the simulator's schema, so ``wpsim validate`` can compare a
measured run with a simulated one task by task.

Design
------
Processes
    One worker process per core of the policy's core groups, started with the ``spawn`` method
    (see :data:`START_METHOD` for why), with ``OPENBLAS_NUM_THREADS``, ``OMP_NUM_THREADS`` and
    ``MKL_NUM_THREADS`` set to 1 in its environment before numpy loads, plus
    ``threadpoolctl.threadpool_limits(1)`` at start; each worker is pinned to one CPU
    (``os.sched_setaffinity``) when there are at least as many CPUs as workers. The
    coordinator is not pinned. A group of k > 1 workers runs each of its tasks split k ways.
Shared memory
    One ``multiprocessing.shared_memory`` segment holds a control block (one mailbox line per
    worker) and every array: parameters, input, activations, saved activations and gradients
    (:mod:`kernels.executor._layout`, :func:`kernels.executor._runner.array_specs`). Tasks read
    their inputs from, and write their outputs to, numpy views of it: nothing is pickled or
    copied between processes after start-up.
Signalling
    The coordinator writes ``(seq << 32) | task`` into a worker's command slot; the worker
    writes its timestamps, then ``seq`` into its done slot. Both sides spin on these words for
    :data:`DEFAULT_SPIN_US` (0.3 us one-way on the development machine) and then park in
    ``select`` on a pipe that the other side always writes one byte to after its store
    (cheap: no system call is on the path while the waiter spins, except the byte itself,
    ~1 us; wake-up from a park costs tens of microseconds). The spin-then-park keeps two
    busy workers and the coordinator from starving each other on two cores. Group members
    meet at a spin-then-yield barrier on per-worker counters.
Failures
    A task that raises, a worker that dies (any signal) or fails to start, and Ctrl-C all end
    the run at once with one line (:class:`wpsim.errors.ExecutionError` naming the task, or
    ``KeyboardInterrupt``), after every worker has been stopped (exit command, SIGTERM, then
    SIGKILL) and the segment unlinked. Workers ignore SIGINT, get ``PR_SET_PDEATHSIG`` and
    watch their command pipe for end-of-file, so a killed coordinator leaves no orphan (its
    resource tracker then unlinks the segment).

Limits
------
Only cell-granularity graphs run (``op`` tasks are microseconds long: dispatching them to
processes would measure the dispatcher). Multiprogramming instances get their own copy of the
parameters (same values) and activations. Sparse ``W_hh`` becomes a private CSR copy in each
worker. Trace records carry no cache traffic (``level_bytes`` empty, ``hit`` True).
The memory-ordering argument assumes x86-64 (TSO); see :mod:`kernels.executor._layout`.
"""

from kernels.executor._coordinator import (
    BLAS_ENV,
    DEFAULT_IDLE_SPIN_US,
    DEFAULT_SPIN_US,
    START_METHOD,
    ExecutionResult,
    Executor,
    execute,
)

__all__ = [
    "BLAS_ENV",
    "DEFAULT_IDLE_SPIN_US",
    "DEFAULT_SPIN_US",
    "START_METHOD",
    "ExecutionResult",
    "Executor",
    "execute",
]
