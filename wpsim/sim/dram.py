"""DRAM bandwidth as a simpy resource apart (as SimPy keeps its resources apart from its core):
processor sharing of each socket's bandwidth among the tasks streaming from it.

A streaming task's completion moves whenever another streaming task on its socket starts or
ends and its share changes; :class:`DramPool` keeps those completion times.
"""

from __future__ import annotations

from collections.abc import Callable
from operator import attrgetter

import simpy

from wpsim.cost.base import CostModel, TaskCost


class _Stream:
    """A task streaming from DRAM in a :class:`DramPool`."""

    __slots__ = (
        "group",
        "cost",
        "by_socket",
        "socket",
        "remaining",
        "rate",
        "last_s",
        "delay_s",
        "due_s",
        "version",
    )

    def __init__(self, group: int, cost: TaskCost, by_socket: dict[int, int], now: float) -> None:
        self.group = group
        self.cost = cost
        self.by_socket = by_socket  # streaming cores on each socket
        # its one socket (the usual case), else -1: read at every change of its share
        self.socket = next(iter(by_socket)) if len(by_socket) == 1 else -1
        self.remaining = 1.0  # fraction of the task still to do
        self.rate = 0.0  # fraction a second
        self.last_s = now  # when ``remaining`` was last brought up to date
        self.delay_s = 0.0  # from then to the completion
        self.due_s = 0.0  # the completion time
        self.version = 0  # when the completion time was set (the pool's counter)


_completion_order = attrgetter("due_s", "version")


class DramPool:
    """Processor sharing of each socket's DRAM bandwidth among the groups streaming from it.

    A streaming task progresses at rate ``1 / duration(share)``; whenever a socket's share
    changes (the number of streams on it changed, and ``dram_share_Bps`` with it: not while
    each stream gets its core's own bandwidth), every streaming task on it banks its progress
    and gets a new completion time at the new rate. One simpy timeout stands for the earliest
    completion of all (ties: the completion set first; a timeout per stream at every change
    would mostly go stale: 14 a task with 16 streams); it is moved when the earliest changes,
    and a moved one is ignored when it fires. When a stream completes, ``on_done(group)`` is
    called (from the timeout's callback).
    """

    def __init__(
        self,
        env: simpy.Environment,
        cost: CostModel,
        n_sockets: int,
        on_done: Callable[[int], None],
    ) -> None:
        self.env = env
        self.cost = cost
        self.on_done = on_done
        self.streams = [0] * n_sockets
        self.share_Bps = [cost.dram_share_Bps(0)] * n_sockets  # each socket's share now
        self.versions = 0  # completion times set so far, one counter: the order of ties
        self.active: dict[int, _Stream] = {}  # by group
        self._armed: tuple[float, int, int] | None = None  # (time, version, group) of the timeout

    def join(self, group: int, cost: TaskCost, cores_by_socket: dict[int, int]) -> None:
        for socket, count in cores_by_socket.items():
            self.streams[socket] += count
        stream = self.active[group] = _Stream(group, cost, cores_by_socket, self.env.now)
        if not self._share_changed(cores_by_socket):
            self._set_rate(stream, self.env.now)  # the others go on at their rates
        self._arm()

    def _leave(self, group: int) -> None:
        stream = self.active.pop(group)
        for socket, count in stream.by_socket.items():
            self.streams[socket] -= count
        self._share_changed(stream.by_socket)
        self._arm()

    def _share_changed(self, sockets: dict[int, int]) -> bool:
        """Bring the shares of ``sockets`` up to date; if any changed, give every stream on
        those sockets its new rate (in ascending group order: the order of ties). Returns
        whether any changed."""
        changed = set()
        for socket in sockets:
            share = self.cost.dram_share_Bps(self.streams[socket])
            if share != self.share_Bps[socket]:
                self.share_Bps[socket] = share
                changed.add(socket)
        if not changed:
            return False
        now = self.env.now
        for group in sorted(self.active):
            stream = self.active[group]
            if not changed.isdisjoint(stream.by_socket):
                self._set_rate(stream, now)
        return True

    def _set_rate(self, stream: _Stream, now: float) -> None:
        """Bank ``stream``'s progress since its last update and set its rate and completion
        time at its sockets' share now."""
        socket = stream.socket
        if socket >= 0:
            share = self.share_Bps[socket]
        else:
            share = min([self.share_Bps[s] for s in stream.by_socket])
        remaining = stream.remaining - (now - stream.last_s) * stream.rate
        if remaining < 0.0:  # (rounding; not max(): a call, on the hot path of DRAM-bound runs)
            remaining = 0.0
        duration = stream.cost.duration(share)
        stream.remaining, stream.rate, stream.last_s = remaining, 1.0 / duration, now
        self.versions += 1
        stream.version = self.versions
        stream.delay_s = remaining * duration
        stream.due_s = now + stream.delay_s  # the time simpy gives a timeout of that delay

    def _arm(self) -> None:
        """Point the timeout at the earliest completion (unless it already does)."""
        if not self.active:
            self._armed = None
            return
        stream = min(self.active.values(), key=_completion_order)
        target = (stream.due_s, stream.version, stream.group)
        if target != self._armed:
            self._armed = target
            now = self.env.now
            # set at the last update: its own delay, for the very same time
            delay = stream.delay_s if stream.last_s == now else max(0.0, stream.due_s - now)
            timeout = self.env.timeout(delay, target)
            timeout.callbacks.append(self._fire)

    def _fire(self, event: simpy.Event) -> None:
        armed = self._armed
        if armed is None or event.value != armed:
            return  # moved since
        self._armed = None
        group = armed[2]
        self._leave(group)
        self.on_done(group)
