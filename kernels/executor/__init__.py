"""The real multi-process executor: a task graph run by N worker processes under a policy.

The same graph the simulator builds for a policy (``policy.graph_options`` then
:func:`wpsim.model.graph.build` and :func:`wpsim.model.plan.compile_plan`), the same policy object making
every decision through ``push``/``assign`` in a coordinator (the calling process), and a
:class:`wpsim.trace.Trace` in the simulator's schema, so ``wpsim validate`` can compare a
measured run with a simulated one task by task.

Design
------
Processes
    One worker process per core of the policy's core groups, started with the ``spawn`` method
    (see :data:`START_METHOD` for why; the workers do not re-run the caller's ``__main__``, so
    no ``if __name__ == "__main__"`` guard is needed), with ``OPENBLAS_NUM_THREADS``,
    ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS`` set to 1 in its environment before numpy loads,
    plus
    ``threadpoolctl.threadpool_limits(1)`` at start; each worker is pinned to one CPU
    (``os.sched_setaffinity``) when there are at least as many CPUs as workers. The
    coordinator is not pinned. A group of k > 1 workers runs each of its tasks split k ways.
Shared memory
    One ``multiprocessing.shared_memory`` segment holds a control block (one mailbox line per
    worker) and every array: parameters, input, activations, saved activations and gradients
    (:mod:`kernels.executor._layout`, :func:`kernels.arrays.array_specs`). Tasks read
    their inputs from, and write their outputs to, numpy views of it: nothing is pickled or
    copied between processes after start-up.
Signalling
    The coordinator writes ``(seq << 32) | task`` into a worker's command slot, then one byte
    into that worker's command pipe; the worker writes its timestamps, then ``seq`` into its
    done slot, then one byte into the coordinator's wake pipe. A waiter reads the shared word
    in a loop first and blocks in ``select`` on its pipe only after that (the byte is always
    written, so no wake-up is lost and no memory fence is needed; a spinning waiter drains the
    bytes later). Budgets, chosen by measurement on the 2-vCPU development VM (AMD EPYC,
    Linux 6.18, EEVDF scheduler):

    * a waiting worker spins :data:`DEFAULT_SPIN_US` = 50 us, calling ``os.sched_yield``
      between reads (the coordinator is often woken onto that worker's CPU and must get it at
      once), then blocks;
    * the coordinator spins (yielding) up to :data:`DEFAULT_IDLE_SPIN_US` = 1 ms, but only while
      fewer workers are busy than there are CPUs; with every CPU busy it blocks at once. A
      yielding spinner that shares a CPU with a busy worker waits out that worker's whole time
      slice: with it, a 2-worker wavefront of a 4-layer H = 512 LSTM (T = 100, chunk 10) took
      86-98 ms; blocked instead, it is woken onto the CPU that frees up: 38-41 ms;
    * group members meet at a barrier on per-worker counters, spinning without yielding for
      50 us (pinned members are on distinct CPUs), then yielding, then sleeping.

    Costs: from the end of a task to the start of the next on the same worker 6 us when the
    coordinator is spinning, ~40 us when it must be woken (tasks longer than its spin); a
    2-process barrier 0.5 us (2 us yielding). Blocking at once (0 us budgets: 44 us per task
    on a 1-worker chain) and long worker spins (200 us: the coordinator starves) both measured
    worse.
    Environment variables ``WPSIM_EXECUTOR_SPIN_US`` and ``WPSIM_EXECUTOR_IDLE_SPIN_US``
    override the budgets.
Failures
    A task that raises, a worker that dies (any signal) or fails to start, a worker that makes no
    progress for longer than its task's limit (the stall watchdog,
    :mod:`kernels.executor._watchdog`: a stopped or deadlocked worker), and Ctrl-C or SIGTERM
    all end the run at once with one line (:class:`wpsim.errors.ExecutionError` naming the
    worker and the task, or ``KeyboardInterrupt``), after every worker has been stopped (exit
    command, SIGTERM and SIGCONT, then SIGKILL) and the segment unlinked. Workers ignore SIGINT, get ``PR_SET_PDEATHSIG`` and
    watch their command pipe for end-of-file, so a killed coordinator leaves no orphan (its
    resource tracker then unlinks the segment).

Limits
------
Only cell-granularity graphs run (``op`` tasks are microseconds long: dispatching them to
processes would measure the dispatcher). Multiprogramming instances get their own copy of the
parameters (same values) and activations. Sparse ``W_hh`` becomes a private CSR copy in each
worker. Trace records carry no cache traffic (``level_bytes`` empty, ``hit`` empty: None).
The memory-ordering argument assumes x86-64 (TSO); see :mod:`kernels.executor._layout`.
Sequence mode: a policy with ONE group (``sequential``, ``layerwise``, any policy on one
worker) cannot make timing-dependent choices, so the coordinator computes its whole order up
front (:func:`kernels.executor._execution.static_order`) and hands it out as one command; the
members run task after task with a barrier between two tasks and report once. Measured here
(2 vCPUs) on a 2-layer H = 128 LSTM (T = 96, one step per task): 5.3 ms instead of 7.0 ms on 1
worker (medians of interleaved runs), and ``layerwise`` on 2 workers 4.7 ms instead of 24.6 ms
(medians of 5 repeats, one execution each way: the coordinator's wake-up per step, 40-75 us, is
gone). ``WPSIM_EXECUTOR_SEQUENCE=0`` turns it off.
"""

from kernels.arrays import array_specs
from kernels.executor._coordinator import DEFAULT_SPIN_US, Executor, execute
from kernels.executor._execution import DEFAULT_IDLE_SPIN_US, SEQUENCE_ENV
from kernels.executor._process import BLAS_ENV, START_METHOD
from kernels.group import input_split_by_time_max_bytes

__all__ = [
    "BLAS_ENV",
    "DEFAULT_IDLE_SPIN_US",
    "DEFAULT_SPIN_US",
    "SEQUENCE_ENV",
    "START_METHOD",
    "Executor",
    "array_specs",
    "execute",
    "input_split_by_time_max_bytes",
]
