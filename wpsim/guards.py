"""Guards that refuse, before any work starts, what this computer cannot hold.

Size
    :func:`estimate` counts the tasks of the graph a command would build, in closed form from
    the workload (no graph is built), and the memory it would take: :data:`BYTES_PER_TASK` of
    the engine for the graph, the compiled plan and the trace, plus, for ``run``, the executor's
    shared buffers (every array of :func:`kernels.executor.array_specs`, computed from
    the shapes), the parent's copy of the parameters and :data:`WORKER_BYTES` per worker
    process (``predict`` builds no graph: nothing). :func:`check_size` refuses with the
    estimate and the limit when it exceeds
    :data:`MEMORY_FRACTION` of the memory available now (the smallest of the kernel's
    ``MemAvailable``, the cgroup's headroom and ``RLIMIT_AS``), unless told to go ahead
    (``--allow-large``). Sweeps check each point against the limit divided among their workers.
Processes
    :func:`check_workers`: more worker processes than CPUs this process may use get a warning
    (they share CPUs: measured times are then not the kernels' own); more than
    :data:`MAX_WORKERS_PER_CPU` times the CPUs are refused unless forced (``--force-workers``):
    each worker costs tens of MB and a start-up, and 100,000 of them took a machine down.

Examples
--------
>>> from wpsim.model.workload import Workload
>>> w = Workload(cell="lstm", layers=1024, hidden=16, input=16, seq_len=100_000_000)
>>> e = estimate(w, "simulate")
>>> e.n_tasks
102400000000
>>> e.total_bytes > 10**14
True
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any

from wpsim.errors import ConfigError
from wpsim.model.workload import Workload

#: Peak bytes per task of each engine: graph, compiled plan, cost model and trace; for
#: ``compare`` every CPU policy's result kept; for ``run`` the coordinator's graph, plan and
#: order. The largest measured over unidirectional inference and bidirectional training with an
#: output layer, wavefront and layerwise (250k to 1M tasks), rounded up: see
#: ``benchmarks/guards.py``.
BYTES_PER_TASK = {
    "graph": 2_400,
    # the closed forms (wpsim.sim.closed_forms) build no graph: their memory does not grow with tasks
    "predict": 0,
    "simulate": 3_800,
    "compare": 4_800,
    "run": 3_400,
}
#: Resident memory of one executor worker process besides the shared arrays (numpy, scipy and
#: the kernels imported): 64 MiB measured (``benchmarks/guards.py``), rounded up.
WORKER_BYTES = 80 * 2**20
#: Share of the available memory one command may plan to use: the rest is for everything else
#: running, and for the estimate's own error.
MEMORY_FRACTION = 0.8
#: Worker processes per CPU beyond which a command refuses unless forced: oversubscribing a
#: few times over is a legitimate experiment (time-sharing, a policy on more groups than CPUs),
#: beyond that the workers only wait for each other and their start-up and memory add up.
MAX_WORKERS_PER_CPU = 4


class SizeError(ConfigError):
    """A workload too large for this computer (the estimate and the limit in one line)."""


# ---- tasks ------------------------------------------------------------------------------------


def estimate_tasks(
    workload: Workload,
    granularity: str = "cell",
    chunk: int = 1,
    hoist_input: int | None = None,
    instances: int = 1,
) -> int:
    """Tasks of ``wpsim.model.graph.build(workload, granularity, chunk, hoist_input, instances)``:
    exact for cell graphs (:func:`wpsim.model.analysis.closed_form_n_tasks` plus hoisted input
    GEMMs), an upper bound for op graphs (every op of every step: the graph is built so before
    its hoistable ops are batched over time, so that is its peak; the bytes per task measured
    on cell graphs are applied to it).

    Examples
    --------
    >>> w = Workload(cell="gru", layers=3, hidden=8, input=8, seq_len=10, phase="training")
    >>> estimate_tasks(w, chunk=2), estimate_tasks(w, hoist_input=10)
    (33, 69)
    """
    from wpsim.model.analysis import closed_form_n_tasks

    w = workload
    factor = 2 if w.phase == "training" else 1  # a backward task for every forward one
    if granularity == "op":
        outputs = 2 * w.seq_len if w.output != "none" else 0
        forward = w.directions * w.layers * w.seq_len * 4 + outputs
        per_instance = factor * forward + w.directions * w.layers + 1
    else:
        per_instance = closed_form_n_tasks(w, max(1, chunk))
        if hoist_input:
            per_instance += factor * w.directions * w.layers * math.ceil(w.seq_len / hoist_input)
    return max(1, instances) * per_instance


def executor_buffer_bytes(
    workload: Workload,
    instances: int = 1,
    hoisted: bool = False,
    chunk: int = 1,
    group_sizes: list[int] | None = None,
    *,
    kernels: Any = None,
) -> int:
    """Bytes the real executor allocates for ``workload``: its shared segment (parameters,
    input, activations, saved activations and gradients) and the coordinator's own copy of the
    parameters and input, computed from the shapes (nothing is allocated). ``kernels``: the
    layers' shapes (:func:`kernels.arrays.shape_kernels`) when the caller sizes many
    schedules (:class:`BufferSizes`)."""
    from kernels.executor import array_specs
    from kernels.params import compute_dtype

    training = workload.phase == "training"
    # one instance's arrays, then the others by multiplication (no loop over instances)
    specs = array_specs(workload, 1, hoisted, training, chunk, group_sizes or [1], kernels=kernels)
    shared_names = {"x", "gout"}
    shared = per_instance = 0
    for name, spec in specs.items():
        nbytes = math.prod(spec[0]) * spec[1].itemsize
        if name in shared_names or name.startswith("rb"):
            shared += nbytes
        else:
            per_instance += nbytes
    segment = shared + max(1, instances) * per_instance
    itemsize = compute_dtype(workload).itemsize
    inputs = workload.seq_len * workload.batch * workload.input
    return segment + (workload.parameter_count() + inputs) * itemsize


class BufferSizes:
    """:func:`executor_buffer_bytes` of one workload at many candidate schedules (``--policy
    auto``, ``--chunk auto``): the layers' shapes are worked out once, and each distinct
    (instances, hoisted input, chunk, core group sizes) is sized once, whatever the number of
    policies that share it.

    Examples
    --------
    >>> from wpsim.model.workload import Workload
    >>> w = Workload(cell="lstm", layers=2, hidden=8, input=4, seq_len=10, phase="training")
    >>> sizes = BufferSizes(w)
    >>> sizes(1, False, 5, [1, 1]) == executor_buffer_bytes(w, 1, False, 5, [1, 1])
    True
    >>> sizes(1, False, 5, [1, 1]) < sizes(1, False, 1, [1, 1])  # fewer chunks, fewer states
    True
    >>> len(sizes.sized)  # (1, False, 5, (1, 1)) sized once
    2
    """

    def __init__(self, workload: Workload) -> None:
        self.workload = workload
        self.kernels: Any = None
        self.sized: dict[tuple, int] = {}

    def __call__(self, instances: int, hoisted: bool, chunk: int, group_sizes: list[int]) -> int:
        key = (instances, hoisted, chunk, tuple(group_sizes))
        found = self.sized.get(key)
        if found is None:
            if self.kernels is None:
                from kernels.arrays import shape_kernels

                self.kernels = shape_kernels(self.workload)
            found = self.sized[key] = executor_buffer_bytes(
                self.workload, instances, hoisted, chunk, group_sizes, kernels=self.kernels
            )
        return found


# ---- memory -----------------------------------------------------------------------------------


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    """``memory.max - memory.current`` of this process's cgroup (v2), when it has a limit."""
    try:
        with open("/proc/self/cgroup") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            folder = "/sys/fs/cgroup" + line[3:].strip()
            try:
                with open(os.path.join(folder, "memory.max")) as handle:
                    limit = handle.read().strip()
                with open(os.path.join(folder, "memory.current")) as handle:
                    current = int(handle.read().strip())
            except (OSError, ValueError):
                return None
            if limit == "max":
                return None
            try:
                return max(0, int(limit) - current)
            except ValueError:
                return None
    return None


def _address_space_headroom() -> int | None:
    """``RLIMIT_AS`` minus this process's virtual size, when a limit is set (``ulimit -v``)."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    except (ImportError, OSError, ValueError):
        return None
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        with open("/proc/self/statm") as handle:
            virtual = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        virtual = 0
    return max(0, soft - virtual)


def available_memory_bytes() -> int:
    """Memory this process can still use: the smallest of the kernel's ``MemAvailable``, the
    cgroup's headroom and the address-space limit (physical free pages where none is known)."""
    known = [
        v
        for v in (_meminfo_available(), _cgroup_headroom(), _address_space_headroom())
        if v is not None
    ]
    if known:
        return min(known)
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 2**34


def memory_limit_bytes(share: int = 1) -> int:
    """What one command (or one of ``share`` sweep workers) may plan to use."""
    return int(MEMORY_FRACTION * available_memory_bytes()) // max(1, share)


# ---- the size guard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeEstimate:
    """Tasks and bytes a command would need, before it builds anything."""

    engine: str
    n_tasks: int
    graph_bytes: int  # graph, plan, cost model and trace
    buffer_bytes: int = 0  # the executor's arrays (``run``)
    worker_bytes: int = 0  # the executor's worker processes (``run``)

    @property
    def total_bytes(self) -> int:
        return self.graph_bytes + self.buffer_bytes + self.worker_bytes


def graph_options(workload: Workload, policy: Any, chunk: int, granularity: str) -> dict:
    """The arguments of ``wpsim.model.graph.build`` that ``policy`` asks for (see the engines)."""
    options = dict(policy.graph_options(workload, chunk)) if policy is not None else {}
    options.setdefault("chunk", chunk)
    options.setdefault("granularity", granularity)
    return options


def estimate(
    workload: Workload,
    engine: str,
    policy: Any = None,
    *,
    chunk: int = 1,
    granularity: str = "cell",
    workers: int = 0,
    sizes: BufferSizes | None = None,
) -> SizeEstimate:
    """The :class:`SizeEstimate` of running ``engine`` (``graph``, ``predict``, ``simulate``,
    ``compare``, ``run``) on ``workload`` under ``policy`` (its graph options); ``sizes``
    sizes the executor's arrays for a caller that estimates many schedules of ``workload``."""
    options = graph_options(workload, policy, chunk, granularity)
    n_tasks = estimate_tasks(
        workload,
        options["granularity"],
        options["chunk"],
        options.get("hoist_input"),
        options.get("instances", 1),
    )
    graph_bytes = n_tasks * BYTES_PER_TASK[engine]
    if engine != "run":
        return SizeEstimate(engine, n_tasks, graph_bytes)
    groups = [1]
    if policy is not None and workers:
        try:
            groups = [len(g) for g in policy.core_groups(workers)]
        except ConfigError:  # reported by the executor itself, with its own message
            groups = [1]
    buffers = (sizes or BufferSizes(workload))(
        options.get("instances", 1),
        options.get("hoist_input") is not None,
        options["chunk"],
        groups,
    )
    return SizeEstimate(engine, n_tasks, graph_bytes, buffers, max(0, workers) * WORKER_BYTES)


def _size(nbytes: float) -> str:
    """``1.5 GB``-style size (decimal units)."""
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:,.1f} {unit}"
    return f"{nbytes:.0f} B"


def smallest_run(
    workload: Workload,
    candidates: list[tuple[Any, int]],
    *,
    granularity: str = "cell",
    workers: int = 0,
) -> tuple[Any, int]:
    """The (policy, chunk) of ``candidates`` whose ``run`` :func:`estimate` is the smallest
    (the first of equals), the executor's arrays sized by one :class:`BufferSizes`.

    Examples
    --------
    >>> from wpsim.model.workload import Workload
    >>> from wpsim.policies import get_policy
    >>> w = Workload(cell="lstm", layers=2, hidden=8, input=4, seq_len=10, phase="training")
    >>> wave = get_policy("wavefront")
    >>> smallest_run(w, [(wave, 1), (wave, 5), (wave, 10)], workers=2)[1]
    10
    """
    sizes = BufferSizes(workload)
    return min(
        candidates,
        key=lambda pc: (
            estimate(
                workload,
                "run",
                pc[0],
                chunk=pc[1],
                granularity=granularity,
                workers=workers,
                sizes=sizes,
            ).total_bytes
        ),
    )


def check_size(
    workload: Workload,
    engine: str,
    policy: Any = None,
    *,
    chunk: int = 1,
    granularity: str = "cell",
    workers: int = 0,
    allow: bool = False,
    share: int = 1,
    what: str | None = None,
    limit_bytes: int | None = None,
) -> SizeEstimate:
    """Refuse (:class:`SizeError`) when :func:`estimate` exceeds :func:`memory_limit_bytes`.

    ``allow``: only return the estimate (``--allow-large``). ``share``: the limit is divided
    among this many concurrent workers (sweeps). ``what`` names the workload in the message.
    ``limit_bytes``: a limit computed earlier (a sweep worker computes it once).
    """
    found = estimate(
        workload, engine, policy, chunk=chunk, granularity=granularity, workers=workers
    )
    if allow:
        return found
    limit = memory_limit_bytes(share) if limit_bytes is None else limit_bytes
    if found.total_bytes <= limit:
        return found
    name = what or (f"workload '{workload.name}'" if workload.name else "the workload")
    parts = f"graph, plan and trace {_size(found.graph_bytes)}"
    if found.buffer_bytes or found.worker_bytes:
        parts += (
            f"; arrays {_size(found.buffer_bytes)}; {workers} worker processes "
            f"{_size(found.worker_bytes)}"
        )
    per = f" per sweep worker ({share} workers)" if share > 1 else ""
    raise SizeError(
        f"{engine}: {name} needs about {_size(found.total_bytes)} ({found.n_tasks:,} tasks; "
        f"{parts}), more than the {_size(limit)} this computer can give it now{per} "
        f"({int(100 * MEMORY_FRACTION)}% of the available memory); use a larger --chunk, a "
        "smaller workload, or --allow-large to try anyway"
    )


def check_chunk(workload: Workload, chunk: int) -> None:
    """A command's ``--chunk`` must not exceed the workload's ``seq_len`` (it would mean one
    chunk of ``seq_len`` steps: the number given is not what runs)."""
    if chunk > workload.seq_len:
        raise ConfigError(
            f"--chunk: got {chunk}, expected at most the workload's seq_len ({workload.seq_len})"
        )


# ---- processes --------------------------------------------------------------------------------


def cpu_count() -> int:
    """CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def check_workers(
    workers: int, flag: str = "--workers", force: bool = False, command: str = "wpsim"
) -> None:
    """Warn (on stderr) when ``workers`` exceeds the CPUs; refuse (:class:`ConfigError`) beyond
    :data:`MAX_WORKERS_PER_CPU` times the CPUs unless ``force``."""
    cpus = cpu_count()
    if workers <= cpus:
        return
    most = MAX_WORKERS_PER_CPU * cpus
    if workers > most and not force:
        raise ConfigError(
            f"{flag} {workers}: more than {MAX_WORKERS_PER_CPU} x the {cpus} CPU(s) this process "
            f"may use (at most {most}); pass --force-workers to start them anyway"
        )
    print(
        f"{command}: warning: {flag} {workers} is more than the {cpus} CPU(s) this process "
        "may use; the workers will share CPUs",
        file=sys.stderr,
        flush=True,
    )


__all__ = [
    "BYTES_PER_TASK",
    "MAX_WORKERS_PER_CPU",
    "MEMORY_FRACTION",
    "SizeError",
    "SizeEstimate",
    "available_memory_bytes",
    "check_chunk",
    "check_size",
    "check_workers",
    "cpu_count",
    "estimate",
    "estimate_tasks",
    "executor_buffer_bytes",
    "memory_limit_bytes",
]
