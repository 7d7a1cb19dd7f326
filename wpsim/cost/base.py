"""What every cost model gives: a task's :class:`TaskCost` (seconds, bytes by level, and what the
time is made of), through the :class:`CostModel` protocol the engine calls."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

DRAM = "DRAM"


@dataclass(slots=True)
class TaskCost:
    """What one task costs when it starts, and what that time is made of.

    ``fixed_s`` (dispatch, hand-off, synchronisation, the element-wise update) plus
    ``max(compute_s, cache_s + dram_bytes / share)`` where ``dram_bytes`` is per core;
    ``level_bytes`` sums all cores of the group.

    The parts of ``fixed_s``, for :mod:`wpsim.breakdown` (they change no time): ``dispatch_s``
    (the runtime's dispatch overhead), ``overhead_s`` (the per-task and per-step costs of the
    kernel call), ``handoff_s`` (activations from other cores), ``sync_s`` (helper barriers and
    all-gathers), ``elementwise_s`` (compute outside the overlap with the weight reads) and
    ``load_s`` (memory time outside it: a persistent kernel's one-time weight load from
    DRAM). ``corun``: the co-running slowdown factor already applied to ``compute_s`` and
    ``elementwise_s``. ``compute_parts``: where ``compute_s`` is not all arithmetic, the
    ``(cause, seconds)`` parts of it that are something else (a persistent GPU kernel's
    per-step synchronisation and broadcast of ``h``).
    """

    fixed_s: float
    compute_s: float
    cache_s: float
    dram_bytes: float
    level_bytes: dict[str, float]
    handoff_bytes: int
    dispatch_s: float = 0.0
    overhead_s: float = 0.0
    handoff_s: float = 0.0
    sync_s: float = 0.0
    elementwise_s: float = 0.0
    load_s: float = 0.0
    corun: float = 1.0
    compute_parts: tuple[tuple[str, float], ...] = ()
    #: the duration when nothing comes from DRAM: ``fixed_s + max(compute_s, cache_s)``
    cached_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.cached_s = self.fixed_s + max(self.compute_s, self.cache_s)

    def duration(self, dram_share_Bps: float) -> float:
        memory = self.cache_s + (self.dram_bytes / dram_share_Bps if self.dram_bytes else 0.0)
        return self.fixed_s + max(self.compute_s, memory)


class CostModel(Protocol):
    """What the engine (:mod:`wpsim.sim.engine`) asks of a cost model; CPU, accelerator and GPU
    models, and the idealised one, each give it."""

    def start(self, tid: int, cores: tuple[int, ...], busy_on_socket: int) -> TaskCost:
        """The cost of task ``tid`` starting now on ``cores`` while ``busy_on_socket`` cores of
        their socket are busy (this task's included); the model may update its state (cache
        residency) as the task reads its weights."""
        ...

    def dram_share_Bps(self, streams: int) -> float:
        """The DRAM bandwidth one core streaming from DRAM gets while ``streams`` cores of its
        socket stream at once."""
        ...
