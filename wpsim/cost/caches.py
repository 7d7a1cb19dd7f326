"""Cache state the cost models keep between tasks: an LRU residency of weight blocks
(:class:`LRUCache`), and the fixed point of a steady state (:class:`FixedPoint`)."""

from __future__ import annotations

from collections import OrderedDict

from wpsim.cost.base import TaskCost


class LRUCache:
    """Residency of weight blocks in one cache (least recently used evicted first)."""

    __slots__ = ("capacity", "used", "blocks")

    def __init__(self, capacity_bytes: float) -> None:
        self.capacity = capacity_bytes
        self.used = 0.0
        self.blocks: OrderedDict[object, float] = OrderedDict()

    def lookup(self, key: object) -> bool:
        """True (and mark most recently used) if ``key`` is resident."""
        if key in self.blocks:
            self.blocks.move_to_end(key)
            return True
        return False

    def reuse_distance(self, key: object) -> float:
        """Bytes of the blocks used since ``key``'s last use, itself included (0 if it is not
        resident); marks it most recently used."""
        blocks = self.blocks
        if key not in blocks:
            return 0.0
        distance = 0.0
        for other in reversed(blocks):
            distance += blocks[other]
            if other == key:
                break
        blocks.move_to_end(key)
        return distance

    def insert(self, key: object, size: float) -> None:
        """Make ``key`` resident, evicting least recently used blocks; too-large blocks stream."""
        if size > self.capacity:
            return
        blocks = self.blocks
        if key in blocks:
            blocks.move_to_end(key)
            return
        while self.used + size > self.capacity:
            _, evicted = blocks.popitem(last=False)
            self.used -= evicted
        blocks[key] = size
        self.used += size


class FixedPoint:
    """The private caches of a group of cores that its task with ``weights`` leaves as it found
    them (see :meth:`CpuCostModel._read_group_weights`): what such a task reads, and
    ``costs``, the :class:`TaskCost` of each (shape, busy cores, hand-off) met since, which
    repeat. Per member: its lookups in its socket's shared level, ``(block, its size, bytes to
    read)``, and the bytes and seconds of its private levels."""

    __slots__ = (
        "weights",
        "cores",
        "steps",
        "level_bytes",
        "cache_s",
        "socket_blocks",
        "private_bytes",
        "private_s",
        "costs",
        "_shared",
    )

    def __init__(
        self,
        weights: tuple,
        cores: tuple[int, ...],
        steps: int,
        level_bytes: dict[str, float],
        cache_s: float,
        socket_blocks: list[list],
        private_bytes: list[dict[str, float]],
        private_s: list[float],
        shared_resident: list[OrderedDict | None],
    ) -> None:
        self.weights = weights
        self.cores = cores
        self.steps = steps
        self.level_bytes = level_bytes
        self.cache_s = cache_s
        self.socket_blocks = socket_blocks
        self.private_bytes = private_bytes
        self.private_s = private_s
        self.costs: dict[tuple, TaskCost] = {}
        # the lookups in the shared levels, in order: (move to the LRU end, block)
        self._shared = tuple(
            (resident.move_to_end, block)
            for resident, blocks in zip(shared_resident, socket_blocks, strict=True)
            if resident is not None  # (no shared level: its blocks came from DRAM, no fixed point)
            for block, _, _ in blocks
        )

    def holds(self, fixed_points: list[FixedPoint | None], steps: int) -> bool:
        """Whether a group's fixed point still holds: no other task has touched a member's
        private caches since (each member's entry in ``fixed_points`` is still this one), and
        a task of ``steps`` steps reads the same blocks (a projection split over time steps
        reads all of ``W_ih``, see :meth:`CpuCostModel._ih_by_time`)."""
        return steps == self.steps and all(fixed_points[c] is self for c in self.cores)

    def replay_shared_hits(self) -> bool:
        """Look the fixed point's blocks up in the shared levels again, member after member;
        True if all are there (each is then the most recently used, in order), False at the
        first one missing (those before it were moved)."""
        try:
            for move_to_end, block in self._shared:
                move_to_end(block)
        except KeyError:
            return False
        return True
