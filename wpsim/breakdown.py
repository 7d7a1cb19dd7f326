"""Why a makespan is what it is: its break-down by cause.

Causes
------
Every second of a task's time has one cause:

* ``compute``: arithmetic (the products and the element-wise update, at the speed of a core
  with nothing else running);
* ``contention``: the calibrated co-running slowdown of that arithmetic (shared caches and
  memory: ``corun_slowdown_per_core``);
* ``memory.<level>``: reading weights from that level (a cache of the machine, or ``DRAM``)
  for as long as the reads are not hidden behind the arithmetic;
* ``handoff``: activations moved in from another core (latency + bytes / bandwidth);
* ``sync``: helper cores meeting at a barrier and all-gathering the hidden state; on a GPU, a
  persistent kernel's per-step synchronisation that its work does not hide;
* ``dispatch``: the runtime handing the task to a core (a GPU's kernel launch);
* ``overhead``: the per-task and per-step costs of the kernel call the machine file models
  (``task_overhead_s``, ``step_overhead_s``), and a runtime's serial per-call and per-layer
  terms (:func:`wpsim.sim.runtime.finish`: on the critical path; the cores' time counts them as
  ``idle``, since no task runs meanwhile);
* ``idle``: no task (see the two views below);
* ``busy``: task time of unknown make-up (a measured trace: no cost model says what it was).

A task's time is ``fixed + max(products, memory)`` (:mod:`wpsim.cost.cpu`). The fixed part is
split as the cost model charged it (:class:`~wpsim.cost.base.TaskCost`: dispatch, overhead,
hand-off, synchronisation, the element-wise update). The overlapped part ``R = duration -
fixed`` is split with the arithmetic first: ``compute = min(products / corun, R)``,
``contention = min(products, R) - compute`` and the rest, ``R - min(products, R)``, is memory
time the arithmetic does not hide, shared among the levels in proportion to the time each takes
(``cache_s`` split by ``bytes / bandwidth`` of each cache level; DRAM the remainder of a
streaming task's time). So a compute-bound task is all compute, and a task whose weights stream
from DRAM at ten times its arithmetic is nine tenths ``memory.DRAM``. The split is continuous:
no cause jumps when a task crosses from compute-bound to memory-bound. A simulated task that
streams from DRAM has the duration the engine gave it (its share of the bandwidth changes as
others start and end), so its parts are those of its actual duration.

Two views, each adding up to the makespan (to rounding)
------------------------------------------------------
* **Critical path** (``Result.breakdown_s``), the answer to "why this long": the chain of
  tasks that ends last, followed back from the last task to end: at each task, to whichever
  ended last of its graph predecessors and the previous task on its cores (ties: a graph
  predecessor first, in the graph's order). The chain covers the makespan: the parts of its
  tasks plus ``idle``, the time between one task of the chain ending and the next starting
  (the next was ready and its cores free but had not started: the policy held it back, or a
  measured runtime was slow to start it).
* **Core time** (``Result.core_breakdown_s``), the answer to "where did the cores' time go":
  every core's time from the first start to the last end, averaged over the cores: the parts
  of the tasks it ran (a task on ``k`` cores counts on each), and ``idle`` where it ran none
  (waiting on dependencies, or never used). ``1 - idle / makespan`` is the mean utilisation.

The closed forms (:mod:`wpsim.sim.closed_forms`, :mod:`wpsim.sim.evaluate`) give the same two views from their
formulas: a makespan that is a sum of task costs (``c1 + c2 + n * c3``) is broken down as the
same sum of those tasks' parts, and ``work / groups`` (a makespan bound by the work) as the
parts of all tasks over the groups. A makespan set by a shared resource (the GPU streams' bound
on DRAM bytes or arithmetic) is all that resource, in both views.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from wpsim.trace import Trace

DRAM = "DRAM"
#: the causes before and after the memory levels, in the order results list them
LEADING = ("compute", "contention")
TRAILING = ("handoff", "sync", "dispatch", "overhead", "idle")


def causes(levels: Iterable[str]) -> list[str]:
    """Every cause of a machine whose memory levels are ``levels`` (``handoff`` is not a level
    here: it is a cause of its own), in the order results list them.

    Examples
    --------
    >>> causes(["L2", "DRAM", "handoff"])
    ['compute', 'contention', 'memory.L2', 'memory.DRAM', 'handoff', 'sync', 'dispatch', 'overhead', 'idle']
    """
    memory = [f"memory.{name}" for name in levels if name != "handoff"]
    if f"memory.{DRAM}" not in memory:
        memory.append(f"memory.{DRAM}")
    return [*LEADING, *memory, *TRAILING]


def empty(levels: Iterable[str]) -> dict[str, float]:
    """A break-down with every cause of ``levels`` at zero."""
    return dict.fromkeys(causes(levels), 0.0)


def add_task(
    acc: dict[str, float],
    cost: Any,
    duration_s: float,
    weight: float = 1.0,
    level_bw: Mapping[str, float] | None = None,
) -> None:
    """Add ``weight`` times the parts of one task of ``duration_s`` to ``acc``.

    ``cost``: the task's :class:`~wpsim.cost.base.TaskCost` (None: all ``busy``); ``level_bw``: the
    bandwidth of each cache level, to split ``cache_s`` among the levels a task read (a level
    missing from it counts by bytes).

    Examples
    --------
    >>> from wpsim.cost.base import TaskCost
    >>> cost = TaskCost(1.0, 2.0, 0.5, 0.0, {"L2": 100.0}, 0, dispatch_s=1.0)  # dispatch, then
    >>> acc = {}                                                               # max(2.0, 0.5)
    >>> add_task(acc, cost, 3.0)
    >>> acc
    {'dispatch': 1.0, 'compute': 2.0, 'contention': 0.0}
    >>> streaming = TaskCost(0.0, 1.0, 0.0, 8e9, {"DRAM": 8e9}, 0)  # 4 s at its share
    >>> acc = {}
    >>> add_task(acc, streaming, 4.0)
    >>> acc
    {'compute': 1.0, 'contention': 0.0, 'memory.DRAM': 3.0}
    """
    if cost is None:
        acc["busy"] = acc.get("busy", 0.0) + weight * duration_s
        return
    get = acc.get
    known = 0.0
    seconds = cost.dispatch_s
    if seconds:
        acc["dispatch"] = get("dispatch", 0.0) + weight * seconds
        known += seconds
    seconds = cost.overhead_s
    if seconds:
        acc["overhead"] = get("overhead", 0.0) + weight * seconds
        known += seconds
    seconds = cost.handoff_s
    if seconds:
        acc["handoff"] = get("handoff", 0.0) + weight * seconds
        known += seconds
    seconds = cost.sync_s
    if seconds:
        acc["sync"] = get("sync", 0.0) + weight * seconds
        known += seconds
    seconds = cost.load_s
    if seconds:
        acc["memory.DRAM"] = get("memory.DRAM", 0.0) + weight * seconds
        known += seconds
    corun = cost.corun
    elementwise = cost.elementwise_s
    if elementwise:
        alone = elementwise / corun
        acc["compute"] = get("compute", 0.0) + weight * alone
        acc["contention"] = get("contention", 0.0) + weight * (elementwise - alone)
        known += elementwise
    rest = cost.fixed_s - known  # fixed time the cost model did not attribute (rounding)
    if rest:
        acc["overhead"] = get("overhead", 0.0) + weight * rest
    overlap = duration_s - cost.fixed_s
    products = cost.compute_s
    with_corun = min(products, overlap)
    alone = min(products / corun, overlap)
    arithmetic = alone
    if cost.compute_parts and products:
        scale = with_corun / products
        for cause, seconds in cost.compute_parts:
            acc[cause] = get(cause, 0.0) + weight * seconds * scale
            arithmetic -= seconds * scale
    acc["compute"] = get("compute", 0.0) + weight * arithmetic
    acc["contention"] = get("contention", 0.0) + weight * (with_corun - alone)
    memory = overlap - with_corun
    if memory > 0.0:
        _add_memory(acc, cost, overlap, weight * memory, level_bw)


def _add_memory(
    acc: dict[str, float], cost: Any, overlap: float, seconds: float, level_bw: Any
) -> None:
    """Share ``seconds`` of exposed memory time among the levels ``cost`` read, in proportion
    to the time each took (DRAM: what the overlap leaves after the caches)."""
    cache_s = cost.cache_s
    dram_s = overlap - cache_s if cost.dram_bytes and overlap > cache_s else 0.0
    total = cache_s + dram_s
    get = acc.get
    if total <= 0.0:  # no record of the reads: the weights came from DRAM
        acc["memory.DRAM"] = get("memory.DRAM", 0.0) + seconds
        return
    if dram_s:
        acc["memory.DRAM"] = get("memory.DRAM", 0.0) + seconds * dram_s / total
    if not cache_s:
        return
    cached = seconds * cache_s / total
    levels = [
        (name, nbytes) for name, nbytes in cost.level_bytes.items() if name != DRAM and nbytes
    ]
    if len(levels) == 1:
        key = f"memory.{levels[0][0]}"
        acc[key] = get(key, 0.0) + cached
        return
    if not levels:
        acc["memory.DRAM"] = get("memory.DRAM", 0.0) + cached
        return
    bw = level_bw or {}
    times = [(name, nbytes / bw[name] if bw.get(name) else nbytes) for name, nbytes in levels]
    whole = sum(t for _, t in times)
    for name, t in times:
        key = f"memory.{name}"
        acc[key] = get(key, 0.0) + cached * t / whole


def critical_path(trace: Trace, preds: Sequence[Sequence[int]]) -> list[tuple[int, float]]:
    """The records of the chain that ends last, last first, each with the time between the end
    of the record before it on the chain (or the trace's first start) and its own start.

    At each record the chain goes back to whichever ended last of the task's graph
    predecessors (``preds``, by task id) and the previous record on any of its cores; ties go
    to a graph predecessor, the first in ``preds`` order. The last record to end starts it
    (ties: the lowest task id).

    Examples
    --------
    >>> tr = Trace([])
    >>> for task, core, start, end in [(0, 0, 0.0, 1.0), (1, 1, 0.0, 2.0), (2, 0, 2.5, 3.0)]:
    ...     tr.append(task, (core,), start, end, {}, True)
    >>> critical_path(tr, [[], [], [0, 1]])  # task 2 waited for task 1, then 0.5 more
    [(2, 0.5), (1, 0.0)]
    """
    n = len(trace)
    if not n:
        return []
    start, end, cores, task = trace.start_s, trace.end_s, trace.cores, trace.task
    index_of = dict(zip(task, range(n), strict=True))
    # each core's records in order of end (a core runs one task at a time: also of start; the
    # simulator's records come in that order already)
    on_core: dict[int, list[int]] = {}
    for i, group in enumerate(cores):
        for core in group:
            records = on_core.get(core)
            if records is None:
                on_core[core] = [i]
            else:
                records.append(i)
    ends_on_core = {}
    for core, records in on_core.items():
        ends = [end[i] for i in records]
        if any(a > b for a, b in zip(ends, ends[1:], strict=False)):
            records.sort(key=end.__getitem__)
            ends = [end[i] for i in records]
        ends_on_core[core] = ends
    origin = min(start)
    last_end = max(end)
    i = min((r for r in range(n) if end[r] == last_end), key=task.__getitem__)
    path = []
    seen = set()  # (a trace that breaks the rules, a task before its predecessor, could loop)
    while True:
        seen.add(i)
        chosen, chosen_end = -1, 0.0
        for p in preds[task[i]]:
            j = index_of.get(p)
            if j is not None and j not in seen and (chosen < 0 or end[j] > chosen_end):
                chosen, chosen_end = j, end[j]
        for core in cores[i]:
            # the record on this core that ended last by this one's start (not itself)
            records = on_core[core]
            at = bisect_right(ends_on_core[core], start[i]) - 1
            while at >= 0 and records[at] in seen:
                at -= 1
            if at >= 0 and (chosen < 0 or end[records[at]] > chosen_end):
                chosen, chosen_end = records[at], end[records[at]]
        path.append((i, start[i] - (chosen_end if chosen >= 0 else origin)))
        if chosen < 0:
            return path
        i = chosen


def critical_path_breakdown(
    trace: Trace,
    preds: Sequence[Sequence[int]],
    levels: Iterable[str],
    level_bw: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The makespan of ``trace`` by cause along its critical path (see the module's doc)."""
    acc = empty(levels)
    costs = trace.costs
    start, end = trace.start_s, trace.end_s
    shared: dict[int, list] = {}  # id of a cost that does not stream -> [cost, records]
    for i, wait in critical_path(trace, preds):
        acc["idle"] += wait
        cost = costs[i] if costs else None
        if cost is not None and not cost.dram_bytes:  # it lasts its cached_s
            entry = shared.get(id(cost))
            if entry is None:
                shared[id(cost)] = [cost, 1]
            else:
                entry[1] += 1
            continue
        add_task(acc, cost, end[i] - start[i], 1.0, level_bw)
    for cost, count in shared.values():
        add_task(acc, cost, cost.cached_s, count, level_bw)
    return acc


def core_breakdown(
    trace: Trace,
    n_cores: int,
    levels: Iterable[str],
    level_bw: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The makespan of ``trace`` by cause, averaged over ``n_cores`` cores (module's doc).

    A task that does not stream from DRAM lasts its cost's ``cached_s``, so the many tasks
    that share one :class:`~wpsim.cost.base.TaskCost` object are split once.
    """
    acc = empty(levels)
    span = trace.makespan_s
    if not len(trace) or not n_cores:
        acc["idle"] = span
        return acc
    start, end, cores = trace.start_s, trace.end_s, trace.cores
    costs = trace.costs or [None] * len(trace)
    if max(map(max, cores)) < n_cores:
        sizes = list(map(len, cores))
    else:  # (count the cores below n_cores only)
        sizes = [sum(1 for c in group if c < n_cores) for group in cores]
    busy = 0.0
    # a task that does not stream lasts its cost's cached_s: count them by (cost, cores)
    by_id = dict(zip(map(id, costs), costs, strict=True))
    for (key, k), count in Counter(zip(map(id, costs), sizes, strict=True)).items():
        cost = by_id[key]
        if cost is not None and not cost.dram_bytes and k:
            add_task(acc, cost, cost.cached_s, k * count, level_bw)
            busy += k * count * cost.cached_s
    for i, cost in enumerate(costs):
        if (cost is None or cost.dram_bytes) and sizes[i]:
            duration = end[i] - start[i]
            add_task(acc, cost, duration, sizes[i], level_bw)
            busy += sizes[i] * duration
    for cause in acc:
        acc[cause] /= n_cores
    acc["idle"] = span - busy / n_cores
    return acc


def from_terms(
    terms: Mapping[Any, float],
    record: Any,
    levels: Iterable[str],
    weight: float = 1.0,
    memo: dict[Any, dict[str, float]] | None = None,
) -> dict[str, float]:
    """A closed form's break-down: its makespan is ``sum(coefficient * seconds)`` over
    ``terms`` (``{key: coefficient}``), ``record(key)`` giving the ``(seconds, TaskCost)`` of
    each; the break-down is the same sum of their parts (times ``weight``). ``memo`` keeps each
    key's parts for the next call with the same records.

    Examples
    --------
    >>> from wpsim.cost.base import TaskCost
    >>> records = {"a": (2.0, TaskCost(0.0, 2.0, 0.0, 0.0, {}, 0)),
    ...            "b": (3.0, TaskCost(1.0, 2.0, 0.0, 0.0, {}, 0, dispatch_s=1.0))}
    >>> why = from_terms({"a": 1.0, "b": 2.0}, records.__getitem__, ["DRAM"])  # 2 + 2 * 3
    >>> why["compute"], why["dispatch"], total(why)
    (6.0, 2.0, 8.0)
    """
    acc = empty(levels)
    memo = {} if memo is None else memo
    for key, coefficient in terms.items():
        if not coefficient:
            continue
        parts = memo.get(key)
        if parts is None:
            seconds, cost = record(key)
            parts = memo[key] = {}
            add_task(parts, cost, seconds)
        factor = coefficient * weight
        for cause, seconds in parts.items():
            acc[cause] = acc.get(cause, 0.0) + factor * seconds
    return acc


def spread(busy_core_s: Mapping[str, float], n_cores: int, makespan_s: float) -> dict[str, float]:
    """The core view from the core-seconds of all tasks by cause: each over ``n_cores``, and
    ``idle`` what that leaves of ``makespan_s`` (a closed form's makespan is at least its
    work over the cores it uses).

    Examples
    --------
    >>> spread({"compute": 6.0, "idle": 0.0}, 4, 2.0)
    {'compute': 1.5, 'idle': 0.5}
    """
    out = {cause: seconds / n_cores for cause, seconds in busy_core_s.items()}
    out["idle"] = makespan_s - sum(busy_core_s.values()) / n_cores
    return out


def total(breakdown: Mapping[str, float]) -> float:
    """The sum of a break-down's parts (the makespan it explains)."""
    return sum(breakdown.values())


def format_lines(
    views: Sequence[tuple[str, Mapping[str, float]]],
    makespan_s: float | Sequence[float],
    indent: str = "  ",
) -> list[str]:
    """A table of one or more break-downs of ``makespan_s`` side by side: one line per cause
    that is not zero in any of them, its seconds and share of the makespan in each (a list:
    each view's own makespan, for break-downs of different runs).

    Examples
    --------
    >>> views = [("critical path", {"compute": 3e-3, "idle": 1e-3}),
    ...          ("core time", {"compute": 2e-3, "idle": 2e-3})]
    >>> for line in format_lines(views, 4e-3):
    ...     print(line)
      why                    critical path           core time
        compute             3.000 ms   75%      2.000 ms   50%
        idle                1.000 ms   25%      2.000 ms   50%
    """
    spans = list(makespan_s) if isinstance(makespan_s, Sequence) else [makespan_s] * len(views)
    shown = [
        cause
        for cause in dict.fromkeys(c for _, view in views for c in view)
        if any(
            abs(view.get(cause, 0.0)) > 5e-4 * span
            for (_, view), span in zip(views, spans, strict=True)
        )
    ]
    header = f"{indent}{'why':<16}" + "".join(f"{title:>20}" for title, _ in views)
    lines = [header.rstrip()]
    for cause in shown:
        cells = ""
        for (_, view), span in zip(views, spans, strict=True):
            seconds = view.get(cause, 0.0)
            share = 100 * seconds / span if span else 0.0
            cells += f"{_time(seconds):>14}{share:>5.0f}%"
        lines.append(f"{indent}  {cause:<14}{cells}")
    return lines


def shares(breakdown: Mapping[str, float], makespan_s: float, smallest: float = 0.005) -> str:
    """The causes of a break-down as a line, largest share first (those below ``smallest``
    left out).

    Examples
    --------
    >>> shares({"compute": 3.0, "dispatch": 1.0, "idle": 0.0}, 4.0)
    'compute 75%, dispatch 25%'
    """
    if not makespan_s:
        return ""
    ranked = sorted(breakdown.items(), key=lambda item: -item[1])
    return ", ".join(
        f"{cause} {100 * seconds / makespan_s:.0f}%"
        for cause, seconds in ranked
        if seconds / makespan_s >= smallest
    )


def _time(seconds: float) -> str:
    if abs(seconds) < 5e-10:
        return "0"
    if abs(seconds) >= 1.0:
        return f"{seconds:,.3f} s"
    if abs(seconds) >= 1e-3:
        return f"{seconds * 1e3:,.3f} ms"
    return f"{seconds * 1e6:,.2f} us"


__all__ = [
    "add_task",
    "causes",
    "core_breakdown",
    "critical_path",
    "critical_path_breakdown",
    "empty",
    "format_lines",
    "from_terms",
    "shares",
    "spread",
    "total",
]
