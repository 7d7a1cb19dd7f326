"""Choosing the schedule with the closed-form model: ``wpsim tune``, ``--policy auto`` and
``--chunk auto``.

:func:`tune` searches policy x chunk x helper-group size x workers for one workload on one
machine with the closed forms (:func:`wpsim.sim.closed_forms.predict_many`, every candidate of a policy
in one block), simulates the best few (:func:`wpsim.sim.engine.simulate`, whose cache state and
contention are closer to a run than the closed forms' steady state) and chooses the fastest
simulated; with ``confirm_best`` (``wpsim tune --confirm``) it then times the chosen schedule and
the best of each other shape with the real executor on this computer and chooses the fastest
measured.

The candidates (:func:`search_space`):

* ``sequential`` on one worker, ``layerwise`` and ``helper`` (every worker on each cell) on
  every worker count: one group, so the chunk does not matter to ``layerwise`` (one input GEMM
  per layer) and is searched for ``helper``;
* ``wavefront`` and ``pipeline`` with groups of ``K`` helpers (``K`` a divisor of the workers,
  1 included) on every worker count; a single group (one worker, or all workers on each cell)
  is the same schedule whatever the policy, searched once as ``sequential`` or ``helper``;
* chunks: :func:`chunk_candidates` of the sequence length.

Ties (equal predicted makespans) go to fewer workers, then the smaller chunk, then the order of
:data:`POLICIES`, then fewer helpers: the cheapest of equal schedules.

The chunk (time steps per task) trades parallelism for efficiency: a longer chunk runs the input
projection of its steps as one matrix product and pays each task's fixed costs (the runtime's
dispatch, the kernel's per-call overhead) once per chunk instead of once per step, but fills the
wavefront's pipeline more slowly and leaves fewer tasks to share between workers. Without a
machine file to predict with (no calibration of this computer, or a machine that is not a
CPU), :func:`rule_chunk` applies: one chunk per layer for one group of workers (nothing to run in
parallel, and the longest chunk makes the largest input product), else ``ceil(seq_len / (4 x
groups))``: four chunks per group keep the wavefront's pipeline fill (about ``groups - 1``
chunk-times of idle cores) to a small part of a run while each task still spans several steps.

Examples
--------
>>> from wpsim.machines import load_machine, resolve_machine_path
>>> w = Workload(cell="lstm", layers=4, hidden=256, input=256, seq_len=64)
>>> m = load_machine(resolve_machine_path("xeon8160_2s"))
>>> t = tune(w, m, max_workers=4, simulate=0)
>>> t.chosen.describe()
'helper, 4 workers, chunk 64'
>>> chunk_candidates(10)
[1, 2, 3, 4, 5, 10]
>>> rule_chunk(w, groups=1), rule_chunk(w, groups=2)
(64, 8)
>>> choice = choose_chunk(w, "wavefront", 2, m)
>>> choice.chunk in chunk_candidates(64), choice.source
(True, 'model')
>>> choose_chunk(w, "wavefront", 2, None).describe()
'chunk 8 (rule without a calibration: ceil(64 steps / (4 x 2 groups)))'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from wpsim import breakdown
from wpsim.errors import ConfigError
from wpsim.machines.cpu import CpuMachine
from wpsim.model.workload import Workload
from wpsim.policies import Policy, get_policy

#: The policies searched, in the order that breaks ties (``multiprogram`` runs several
#: workloads, not one, and is not a candidate).
POLICIES = ["wavefront", "pipeline", "helper", "layerwise", "sequential"]
#: The most chunks per layer a candidate chunk size may give.
MAX_CHUNKS = 1024
#: Chunks per group of workers in :func:`rule_chunk`.
RULE_CHUNKS_PER_GROUP = 4
#: Candidates simulated (the best predicted ones) by default.
SIMULATE = 3
#: The largest graph :func:`tune` simulates (tasks); larger ones keep their predicted ranking.
SIMULATE_MAX_TASKS = 200_000
#: :func:`confirm` times a candidate at least this long in all (a short run is repeated): the
#: median of a few sub-millisecond runs is mostly the operating system's scheduling noise.
CONFIRM_MIN_TIMED_S = 0.25
#: ... but at most this many runs per candidate.
CONFIRM_MAX_RUNS = 200


@dataclass(frozen=True)
class Candidate:
    """One schedule: a policy with its helper-group size, on ``workers`` cores, ``chunk``
    steps per task; with what the closed form, the simulator and the real executor made of it."""

    policy: str
    helpers: int | None
    workers: int
    chunk: int
    predicted_s: float = math.nan
    simulated_s: float | None = None
    measured_s: float | None = None

    def policy_object(self) -> Policy:
        return get_policy(self.policy, helpers=self.helpers)

    def describe(self) -> str:
        """``wavefront, helpers=2, 4 workers, chunk 8``."""
        label = self.policy_object().describe()
        workers = "1 worker" if self.workers == 1 else f"{self.workers} workers"
        return f"{label}, {workers}, chunk {self.chunk}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "helpers": self.helpers,
            "workers": self.workers,
            "chunk": self.chunk,
            "predicted_s": self.predicted_s,
            "simulated_s": self.simulated_s,
            "measured_s": self.measured_s,
        }


@dataclass
class Tuning:
    """What :func:`tune` found: every candidate by predicted makespan, the chosen one, and why
    it wins (the break-downs by cause of it and of the runner-up: the best schedule of another
    shape, i.e. another policy, group size or worker count, not only another chunk)."""

    workload: Workload
    machine: str
    ranking: list[Candidate]
    chosen: Candidate
    runner_up: Candidate | None = None
    why: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> break-down
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "machine": self.machine,
            "chosen": self.chosen.to_dict(),
            "runner_up": self.runner_up.to_dict() if self.runner_up else None,
            "considered": len(self.ranking),
            "ranking": [c.to_dict() for c in self.ranking],
            "why": self.why,
            "notes": self.notes,
        }


def chunk_candidates(seq_len: int, max_chunks: int = MAX_CHUNKS) -> list[int]:
    """The chunk sizes worth predicting for ``seq_len`` steps: for every number of chunks ``n``
    from 1 to 16, then growing by a quarter up to ``max_chunks``, the smallest chunk that gives
    ``n`` chunks (``ceil(seq_len / n)``), each size once, ascending."""
    counts = set(range(1, 17))
    n = 16.0
    while n < max_chunks:
        n *= 1.25
        counts.add(min(int(n), max_chunks))
    counts.add(min(seq_len, max_chunks))
    return sorted({math.ceil(seq_len / c) for c in counts if c <= seq_len})


def _divisors(n: int) -> list[int]:
    return [k for k in range(1, n + 1) if n % k == 0]


def search_space(
    workload: Workload,
    machine: CpuMachine,
    policies: list[str] | None = None,
    workers: list[int] | None = None,
    chunks: list[int] | None = None,
    helpers: list[int | None] | None = None,
) -> list[Candidate]:
    """The candidates :func:`tune` predicts (see the module docstring). ``workers``: the worker
    counts (default: every count the machine can be cut to); ``chunks``: fixed chunk sizes
    (default: :func:`chunk_candidates`); ``helpers``: fixed group sizes (None: all workers in
    one group for ``helper``, one core for the others)."""
    policies = policies or POLICIES
    chunk_sizes = chunks or chunk_candidates(workload.seq_len)
    counts = workers or list(range(1, machine.total_cores + 1))
    valid = []
    for count in counts:
        try:
            machine.with_cores(count)
        except ConfigError:
            continue
        valid.append(count)
    out = []
    for name in policies:
        for count in valid:
            if name == "sequential" and count != min(valid):
                continue  # one core whatever the workers: searched on the fewest
            sizes = helpers
            if sizes is None:
                sizes = (
                    [None]
                    if name in ("sequential", "layerwise", "helper")
                    else [None if k == 1 else k for k in _divisors(count)]
                )
            for k in sizes:
                if k is not None and k > count:
                    continue
                policy = get_policy(name, helpers=k)
                if len(policy.core_groups(count)) == 1 and name not in ("layerwise", "sequential"):
                    # one group runs every cell in a fixed order whatever the policy's name:
                    # searched once, as sequential (one worker) or helper (all of them)
                    canonical = "sequential" if count == 1 else "helper"
                    if name != canonical and canonical in policies:
                        continue
                steps = {policy.graph_options(workload, c).get("chunk", c) for c in chunk_sizes}
                for chunk in sorted(steps):
                    out.append(Candidate(name, k, count, chunk))
    return out


def predict_all(
    workload: Workload, machine: CpuMachine, candidates: list[Candidate], granularity: str = "cell"
) -> list[Candidate]:
    """Every candidate with its predicted makespan (those the machine or policy refuses are
    left out); one :func:`~wpsim.sim.closed_forms.predict_many` block per policy and group size."""
    from wpsim.sim.closed_forms import predict_many

    by_policy: dict[tuple, list[Candidate]] = {}
    for c in candidates:
        by_policy.setdefault((c.policy, c.helpers), []).append(c)
    out = []
    for (name, k), members in by_policy.items():
        p = predict_many(
            [workload] * len(members),
            machine,
            get_policy(name, helpers=k),
            [c.workers for c in members],
            [c.chunk for c in members],
            granularity,
        )
        for i, c in enumerate(members):
            if i not in p.errors:
                out.append(replace(c, predicted_s=float(p.makespan_s[i])))
    return out


def _rank_key(c: Candidate) -> tuple:
    return (
        c.predicted_s,
        c.workers,
        c.chunk,
        POLICIES.index(c.policy) if c.policy in POLICIES else len(POLICIES),
        c.helpers or 1,
    )


def _key(c: Candidate) -> tuple:
    return (c.policy, c.helpers, c.workers, c.chunk)


def _shape(c: Candidate) -> tuple:
    """What a schedule is apart from its chunk: wavefront and pipeline over the same groups
    are one shape (the closed forms cannot tell them apart)."""
    name = "wavefront" if c.policy == "pipeline" else c.policy
    return (name, c.helpers, c.workers)


def _timed_shape(c: Candidate) -> tuple:
    """What a schedule is apart from its chunk, for the real executor (:func:`confirm`)."""
    return (c.policy, c.helpers, c.workers)


def tune(
    workload: Workload,
    machine: CpuMachine,
    policies: list[str] | None = None,
    max_workers: int | None = None,
    workers: list[int] | None = None,
    chunks: list[int] | None = None,
    helpers: list[int | None] | None = None,
    granularity: str = "cell",
    simulate: int = SIMULATE,
    confirm_best: int = 0,
    repeats: int = 3,
    rounds: int = 1,
) -> Tuning:
    """The best schedule for ``workload`` on ``machine`` (see the module docstring).

    Parameters
    ----------
    policies : list of str, optional
        Policy names to search (default :data:`POLICIES`).
    max_workers : int, optional
        The most workers (default: all the machine's cores); ``workers`` fixes the counts.
    chunks, helpers : list, optional
        Fixed chunk sizes or helper-group sizes instead of searching them.
    simulate : int
        Simulate the best this many candidates and choose the fastest simulated (0: choose by
        the closed form alone; graphs over :data:`SIMULATE_MAX_TASKS` tasks are not simulated).
    confirm_best : int
        Then time on this computer with the real executor (:func:`confirm`, ``repeats`` runs in
        ``rounds`` rounds) the chosen schedule, the best on each other worker count, and the
        best of each other shape (policy, group size, workers; wavefront and pipeline apart),
        this many in all, and choose the fastest measured: the model ranks the
        chunk sizes within a shape, the measurement decides between shapes, where a model is
        least sure (the synchronisation of processes on a loaded machine).

    Raises
    ------
    ConfigError
        Not a CPU machine, or no candidate the machine and policies accept.
    """
    if not isinstance(machine, CpuMachine):
        raise ConfigError(
            f"wpsim tune: machine '{machine.name}' is a {machine.kind}; tune searches CPU schedules"
        )
    if workers is None and max_workers is not None:
        workers = list(range(1, min(max_workers, machine.total_cores) + 1))
    space = search_space(workload, machine, policies, workers, chunks, helpers)
    ranking = sorted(predict_all(workload, machine, space, granularity), key=_rank_key)
    if not ranking:
        raise ConfigError(
            "wpsim tune: no candidate schedule (check --policies, --workers and "
            "--helpers against the machine's cores)"
        )
    notes: list[str] = []
    best = ranking[0]
    if simulate:
        from wpsim.model.analysis import closed_form_n_tasks
        from wpsim.sim.engine import simulate as simulate_run

        tried: list[Candidate] = []
        for c in ranking:
            if len(tried) >= simulate:
                break
            if closed_form_n_tasks(workload, c.chunk) > SIMULATE_MAX_TASKS:
                notes.append(
                    f"{c.describe()}: not simulated (graph over {SIMULATE_MAX_TASKS:,} tasks)"
                )
                continue
            sim = simulate_run(
                workload,
                machine,
                c.policy_object(),
                cores=c.workers,
                chunk=c.chunk,
                granularity=granularity,
            )
            tried.append(replace(c, simulated_s=sim.makespan_s))
        if tried:
            best = min(tried, key=lambda c: (c.simulated_s, _rank_key(c)))
            done = {_key(c): c for c in tried}
            ranking = [done.get(_key(c), c) for c in ranking]
    if confirm_best:
        # (wavefront and pipeline apart: the closed forms cannot tell them apart, the real
        # executor can, as its workers take cells in different orders); the best of each
        # worker count first: whether more processes pay off is what the model is least sure of
        shapes = {_timed_shape(best): best}
        for c in ranking:
            if all(c.workers != s.workers for s in shapes.values()):
                shapes[_timed_shape(c)] = c
        for c in ranking:
            shapes.setdefault(_timed_shape(c), c)
        timed = confirm(workload, list(shapes.values())[:confirm_best], repeats, 1, rounds)
        best = min(timed, key=lambda c: (c.measured_s, _rank_key(c)))
        done = {_key(c): c for c in timed}
        ranking = [done.get(_key(c), c) for c in ranking]
        notes.append(
            f"measured on this computer (median of {repeats * rounds} runs each): the "
            f"best of {len(timed)} shapes"
        )
    runner_up = next((c for c in ranking if _shape(c) != _shape(best)), None)
    tuning = Tuning(workload, machine.name, ranking, best, runner_up, notes=notes)
    tuning.why = explain(workload, machine, best, runner_up, granularity)
    return tuning


def explain(
    workload: Workload,
    machine: CpuMachine,
    chosen: Candidate,
    other: Candidate | None,
    granularity: str = "cell",
) -> dict[str, dict[str, float]]:
    """The predicted break-downs by cause along the critical path of ``chosen`` and of
    ``other``, by their :meth:`Candidate.describe` labels."""
    from wpsim.sim.closed_forms import predict

    out = {}
    for c in (chosen, other):
        if c is not None:
            r = predict(
                workload,
                machine,
                c.policy_object(),
                cores=c.workers,
                chunk=c.chunk,
                granularity=granularity,
            )
            out[c.describe()] = r.breakdown_s
    return out


def why_lines(tuning: Tuning, top: int = 3) -> list[str]:
    """A sentence on why the chosen schedule wins: the causes whose time it saves most against
    the best schedule of another policy."""
    if tuning.runner_up is None or len(tuning.why) < 2:
        return []
    (chosen_label, chosen), (other_label, other) = list(tuning.why.items())[:2]
    saved = sorted(
        ((other.get(c, 0.0) - chosen.get(c, 0.0), c) for c in set(chosen) | set(other)),
        reverse=True,
    )
    parts = [f"{cause} {seconds * 1e3:,.3f} ms" for seconds, cause in saved[:top] if seconds > 0]
    if not parts:
        return []
    return [f"against {other_label}, it saves {', '.join(parts)} along the critical path"]


def confirm(
    workload: Workload,
    candidates: list[Candidate],
    repeats: int = 3,
    warmup: int = 1,
    rounds: int = 1,
) -> list[Candidate]:
    """The candidates with ``measured_s``: the median makespan of the real executor
    (:func:`kernels.executor.execute`) on this computer, the candidates timed in turn for
    ``rounds`` rounds (a shared machine drifts: interleaving spreads the drift over all).
    A candidate timed for less than :data:`CONFIRM_MIN_TIMED_S` in all is timed again, in
    more interleaved rounds, until it has been (at most :data:`CONFIRM_MAX_RUNS` runs)."""
    from kernels.executor import execute

    times: list[list[float]] = [[] for _ in candidates]

    def timed_round(runs: list[int]) -> None:
        for i, c in enumerate(candidates):
            if runs[i] > 0:
                run = execute(
                    workload,
                    c.policy_object(),
                    c.workers,
                    chunk=c.chunk,
                    repeats=runs[i],
                    warmup=warmup,
                )
                times[i] += list(run.extra["makespans_s"])

    for _ in range(rounds):
        timed_round([repeats] * len(candidates))
    # short runs: the runs still missing, in `rounds` more interleaved rounds
    missing = []
    for ts in times:
        wanted = min(
            CONFIRM_MAX_RUNS, math.ceil(CONFIRM_MIN_TIMED_S / max(sorted(ts)[len(ts) // 2], 1e-9))
        )
        missing.append(max(0, wanted - len(ts)))
    for r in range(rounds if any(missing) else 0):
        timed_round([n // rounds + (r < n % rounds) for n in missing])
    out = []
    for c, ts in zip(candidates, times, strict=True):
        ts = sorted(ts)
        out.append(replace(c, measured_s=ts[len(ts) // 2]))
    return out


def choose(
    workload: Workload,
    machine: Any | None,
    policy: str | Policy | None,
    workers: int,
    chunk: int | None,
    granularity: str = "cell",
    helper_groups: bool = True,
) -> Candidate | None:
    """``--policy auto`` of ``simulate``, ``predict``, ``run`` and ``validate`` (with ``--chunk
    auto`` or a fixed chunk; ``--chunk auto`` alone is :func:`choose_chunk`): the
    best candidate on exactly ``workers`` cores (capped at the machine's), with ``policy``
    fixed unless it is None (auto), ``chunk`` fixed unless it is None (auto); closed forms
    only (``helper_groups`` False: cells on one core each, or on all of them). None when
    ``machine`` is not a CPU (no model to choose with)."""
    if not isinstance(machine, CpuMachine):
        return None
    workers = min(workers, machine.total_cores)
    policies: list[str] | None = None
    helpers: list[int | None] | None = None if helper_groups else [None]
    if policy is not None:
        policy_obj = get_policy(policy) if isinstance(policy, str) else policy
        policies, helpers = [policy_obj.name], [policy_obj.helpers]
    tuning = tune(
        workload,
        machine,
        policies,
        workers=[workers],
        chunks=None if chunk is None else [chunk],
        helpers=helpers,
        granularity=granularity,
        simulate=0,
    )
    return tuning.chosen


# ---- --chunk auto (the chunk alone) -----------------------------------------------------------


@dataclass(frozen=True)
class ChunkChoice:
    """The chunk chosen for a policy and worker count, and why."""

    chunk: int
    source: str  # "model" (the closed form on ``machine``) or "rule" (no calibration)
    machine: str | None = None
    predicted_makespan_s: float | None = None
    candidates: int = 0
    groups: int = 1
    seq_len: int = 0

    def describe(self) -> str:
        """One line for the command's output."""
        if self.source == "model":
            assert self.predicted_makespan_s is not None  # (the model predicted it)
            return (
                f"chunk {self.chunk} (lowest predicted makespan, "
                f"{self.predicted_makespan_s * 1e3:,.3f} ms, of {self.candidates} chunk sizes on "
                f"'{self.machine}')"
            )
        if self.groups <= 1:
            return f"chunk {self.chunk} (rule without a calibration: one chunk per layer)"
        return (
            f"chunk {self.chunk} (rule without a calibration: ceil({self.seq_len} steps / "
            f"({RULE_CHUNKS_PER_GROUP} x {self.groups} groups)))"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "chunk": self.chunk,
            "source": self.source,
            "machine": self.machine,
            "predicted_makespan_s": self.predicted_makespan_s,
            "candidates": self.candidates,
        }


def rule_chunk(workload: Workload, groups: int) -> int:
    """The chunk without a calibration (see the module docstring): ``seq_len`` for one group,
    else ``ceil(seq_len / (4 x groups))``."""
    if groups <= 1:
        return workload.seq_len
    return max(1, math.ceil(workload.seq_len / (RULE_CHUNKS_PER_GROUP * groups)))


def choose_chunk(
    workload: Workload, policy: Any, workers: int, machine: Any | None, granularity: str = "cell"
) -> ChunkChoice:
    """``--chunk auto``: the chunk with the lowest predicted makespan of ``policy`` (a name or
    a policy object, plug-ins included) on ``workers`` cores of ``machine``, the candidates
    (:func:`chunk_candidates`) predicted in one :func:`~wpsim.sim.closed_forms.predict_many` block
    (ties: the smaller chunk); :func:`rule_chunk` when ``machine`` is None or not a CPU. More
    workers than the machine has cores are predicted on all of its cores.

    Raises
    ------
    ConfigError
        An unknown policy, or options the policy rejects (e.g. more helpers than workers).
    """
    from wpsim.sim.closed_forms import predict_many

    if isinstance(policy, str):
        policy = get_policy(policy)
    groups = len(policy.core_groups(workers))
    if not isinstance(machine, CpuMachine):
        return ChunkChoice(
            rule_chunk(workload, groups), "rule", groups=groups, seq_len=workload.seq_len
        )
    chunks = sorted(
        {
            policy.graph_options(workload, c).get("chunk", c)
            for c in chunk_candidates(workload.seq_len)
        }
    )
    cores = min(workers, machine.total_cores)
    p = predict_many(
        [workload] * len(chunks), machine, policy, [cores] * len(chunks), chunks, granularity
    )
    if p.errors:
        raise p.errors[min(p.errors)]
    best = min(range(len(chunks)), key=lambda i: (p.makespan_s[i], chunks[i]))
    return ChunkChoice(
        chunks[best],
        "model",
        machine.name,
        float(p.makespan_s[best]),
        len(chunks),
        groups,
        workload.seq_len,
    )


def format_tuning(tuning: Tuning, top: int = 10) -> str:
    """The text ``wpsim tune`` prints: the ranking, the chosen schedule, and why it wins."""
    w = tuning.workload
    lines = [
        f"tune: {w.name or 'workload'} on '{tuning.machine}': {len(tuning.ranking)} "
        "schedules predicted"
    ]
    shown = tuning.ranking[:top]
    if tuning.chosen not in shown:
        shown.append(tuning.chosen)
    measured = any(c.measured_s is not None for c in shown)
    header = f"  {'rank':>4}  {'schedule':<40}{'predicted':>14}{'simulated':>14}"
    lines.append(header + (f"{'measured':>14}" if measured else ""))

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value * 1e3:,.3f} ms"

    for rank, c in enumerate(tuning.ranking[:top], 1):
        mark = "*" if c == tuning.chosen else " "
        line = f"{mark} {rank:>4}  {c.describe():<40}{ms(c.predicted_s):>14}{ms(c.simulated_s):>14}"
        lines.append(line + (f"{ms(c.measured_s):>14}" if measured else ""))
    lines.append(f"chosen: {tuning.chosen.describe()}")
    if tuning.runner_up is not None:
        lines.append(f"runner-up (best of another shape): {tuning.runner_up.describe()}")
    if tuning.why:
        views = list(zip(("chosen", "runner-up"), tuning.why.values(), strict=False))
        lines.append("predicted makespan by cause, along the critical path:")
        lines += breakdown.format_lines(views, [breakdown.total(view) for _, view in views])
    lines += why_lines(tuning)
    lines += [f"note: {note}" for note in tuning.notes]
    return "\n".join(lines)


__all__ = [
    "Candidate",
    "ChunkChoice",
    "Tuning",
    "choose",
    "choose_chunk",
    "chunk_candidates",
    "confirm",
    "format_tuning",
    "predict_all",
    "rule_chunk",
    "search_space",
    "tune",
]
