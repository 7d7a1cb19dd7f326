"""Choosing run options with the closed-form model: ``--chunk auto``.

The chunk (time steps per task) trades parallelism for efficiency: a longer chunk runs the input
projection of its steps as one matrix product and pays each task's fixed costs (the runtime's
dispatch, the kernel's per-call overhead) once per chunk instead of once per step, but fills the
wavefront's pipeline more slowly and leaves fewer tasks to share between workers.
:func:`choose_chunk` asks :func:`wpsim.sim.closed_forms.predict` for the makespan of every candidate chunk
(:func:`chunk_candidates`) under the policy and worker count on a calibrated machine file and
takes the lowest (ties: the smaller chunk).

Without a machine file to predict with (no calibration of this computer, or a machine that is
not a CPU), :func:`rule_chunk` applies: one chunk per layer for one group of workers (nothing to
run in parallel, and the longest chunk makes the largest input product), else
``ceil(seq_len / (4 x groups))``: four chunks per group keep the wavefront's pipeline fill (about
``groups - 1`` chunk-times of idle cores) to a small part of a run while each task still spans
several steps.

Examples
--------
>>> from wpsim.machines import load_machine, resolve_machine_path
>>> from wpsim.model.workload import Workload
>>> w = Workload(cell="lstm", layers=4, hidden=256, input=256, seq_len=64)
>>> chunk_candidates(10)
[1, 2, 3, 4, 5, 10]
>>> rule_chunk(w, groups=1), rule_chunk(w, groups=2)
(64, 8)
>>> choice = choose_chunk(w, "wavefront", 2, load_machine(resolve_machine_path("xeon8160_2s")))
>>> choice.chunk in chunk_candidates(64), choice.source
(True, 'model')
>>> choose_chunk(w, "wavefront", 2, None).describe()
'chunk 8 (rule without a calibration: ceil(64 steps / (4 x 2 groups)))'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from wpsim.model.workload import Workload

#: The most chunks per layer a candidate may have (the graph, and its prediction, grow with it).
MAX_CHUNKS = 1024
#: Chunks per group of workers in :func:`rule_chunk`.
RULE_CHUNKS_PER_GROUP = 4


@dataclass(frozen=True)
class ChunkChoice:
    """The chunk chosen, and why."""

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


def rule_chunk(workload: Workload, groups: int) -> int:
    """The chunk without a calibration (see the module docstring): ``seq_len`` for one group,
    else ``ceil(seq_len / (4 x groups))``."""
    if groups <= 1:
        return workload.seq_len
    return max(1, math.ceil(workload.seq_len / (RULE_CHUNKS_PER_GROUP * groups)))


def choose_chunk(
    workload: Workload,
    policy: Any,
    workers: int,
    machine: Any | None,
    granularity: str = "cell",
) -> ChunkChoice:
    """The chunk with the lowest predicted makespan of ``policy`` (a name or a policy object)
    on ``workers`` cores of ``machine``; :func:`rule_chunk` when ``machine`` is None or not a
    CPU. More workers than the machine has cores are predicted on all of its cores.

    Raises
    ------
    ConfigError
        An unknown policy, or options the policy rejects (e.g. more helpers than workers).
    """
    from wpsim.machines.cpu import CpuMachine
    from wpsim.policies import get_policy
    from wpsim.sim.closed_forms import predict

    if isinstance(policy, str):
        policy = get_policy(policy)
    groups = len(policy.core_groups(workers))
    if not isinstance(machine, CpuMachine):
        return ChunkChoice(
            rule_chunk(workload, groups), "rule", groups=groups, seq_len=workload.seq_len
        )
    cores = min(workers, machine.total_cores)
    best: tuple[float, int] | None = None
    candidates = chunk_candidates(workload.seq_len)
    for chunk in candidates:
        makespan = predict(
            workload, machine, policy, cores=cores, chunk=chunk, granularity=granularity
        ).makespan_s
        if best is None or makespan < best[0]:
            best = (makespan, chunk)
    assert best is not None
    return ChunkChoice(
        best[1], "model", machine.name, best[0], len(candidates), groups, workload.seq_len
    )


__all__ = ["ChunkChoice", "chunk_candidates", "choose_chunk", "rule_chunk"]
