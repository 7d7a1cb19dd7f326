"""Shared-memory layout of one execution: a control block, then 64-byte aligned numpy arrays.

Everything the workers share lives in ONE ``multiprocessing.shared_memory`` segment:

``control block`` (offset 0)
    One 128-byte line (two cache lines, so the adjacent-line prefetcher does not couple two
    workers) for global flags, then one line per worker with its mailbox, then one
    :data:`ERROR_BYTES` text area per worker for a failure message. Int64 slots are read and
    written through a ``memoryview`` cast to ``"q"`` (scalar access from Python is ~3x faster
    than numpy element access), float64 slots through a second view cast to ``"d"``.

``arrays`` (from the first 4 KiB boundary after the control block)
    Parameters, inputs, activations, saved activations, gradients and per-group scratch, each a
    C-contiguous numpy view at a 64-byte aligned offset (see :func:`kernels.arrays.
    array_specs` for the list).

Every slot of the control block has exactly one writer (the coordinator writes ``CMD`` and
``ABORT``; worker ``w`` writes its own ``DONE``, ``STATUS``, ``BARRIER``, ``READY``,
``CURRENT`` and timestamps), so no atomic read-modify-write is needed: an aligned 8-byte store
is atomic on the 64-bit CPUs we run on, and x86-64 keeps stores (and loads) in program order
(TSO), which is the release/acquire ordering the protocol needs (data written before the
``DONE``/``BARRIER`` store is visible to whoever reads that store).
"""

from __future__ import annotations

from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Literal

import numpy as np

ALIGN = 64
SLOTS_PER_LINE = 16  # int64 slots per 128-byte line
ERROR_BYTES = 1024

# global line
ABORT = 0

# per-worker slots (offset within the worker's line)
CMD = 0  # (seq << 32) | task id, written by the coordinator
DONE = 1  # seq of the last finished command
STATUS = 2  # 0 ok, 1 a task raised, 2 start-up failed
BARRIER = 3  # number of group barriers passed
READY = 4  # 1 once attached and initialised
PID = 5
CURRENT = 6  # task id being run (sequence mode: the coordinator cannot know it otherwise)
T_START = 8  # float64: perf_counter() at task start
T_END = 9  # float64: perf_counter() at task end

#: Task id that tells a worker to leave its loop.
EXIT_TASK = 0xFFFFFFFF
#: Task id that tells a worker to run the whole ``order`` array (see ``_execution``).
SEQUENCE_TASK = 0xFFFFFFFE
TASK_MASK = 0xFFFFFFFF


def _align(n: int, to: int = ALIGN) -> int:
    return (n + to - 1) // to * to


@dataclass(frozen=True)
class Layout:
    """Where everything lives in the segment.

    Attributes
    ----------
    n_workers : int
    arrays : dict
        ``name -> (offset, shape, dtype string, memory order "C" or "F")``.
    error_offset : int
        Start of the per-worker error text areas.
    size : int
        Segment size in bytes.
    """

    n_workers: int
    arrays: dict[str, tuple[int, tuple[int, ...], str, Literal["C", "F"]]]
    error_offset: int
    size: int

    @staticmethod
    def slot(worker: int, field: int) -> int:
        """Index of ``field`` of ``worker`` in the int64 / float64 control views."""
        return SLOTS_PER_LINE * (1 + worker) + field

    def error_range(self, worker: int) -> tuple[int, int]:
        start = self.error_offset + worker * ERROR_BYTES
        return start, start + ERROR_BYTES

    @property
    def data_bytes(self) -> int:
        return sum(
            int(np.prod(shape)) * np.dtype(dtype).itemsize
            for _, shape, dtype, _ in self.arrays.values()
        )


def plan_layout(n_workers: int, specs: dict[str, tuple]) -> Layout:
    """Place the control block and ``specs`` in one segment.

    ``specs``: ``name -> (shape, dtype)``, or ``(shape, dtype, order)`` for an array in Fortran
    order (``"F"``; the default is ``"C"``).

    Examples
    --------
    >>> layout = plan_layout(2, {"x": ((3, 5), np.dtype("float32")), "w": ((4, 2), "f8", "F")})
    >>> layout.arrays["x"][0] % 64, layout.size % 4096, layout.arrays["w"][3]
    (0, 0, 'F')
    """
    control = SLOTS_PER_LINE * 8 * (1 + n_workers)
    error_offset = control
    offset = _align(error_offset + ERROR_BYTES * n_workers, 4096)
    arrays: dict[str, tuple[int, tuple[int, ...], str, Literal["C", "F"]]] = {}
    for name, (shape, dtype, *order) in specs.items():
        dtype = np.dtype(dtype)
        arrays[name] = (offset, tuple(int(s) for s in shape), dtype.str, order[0] if order else "C")
        offset = _align(offset + max(1, int(np.prod(shape))) * dtype.itemsize)
    return Layout(n_workers, arrays, error_offset, _align(offset, 4096))


class Segment:
    """A mapped segment with its control views and array views.

    Parameters
    ----------
    layout : Layout
    name : str, optional
        Attach to this existing segment (workers); ``None`` creates a new one (coordinator).
    """

    def __init__(self, layout: Layout, name: str | None = None) -> None:
        self.layout = layout
        self.owner = name is None
        if self.owner:
            self.shm = shared_memory.SharedMemory(create=True, size=layout.size)
        else:
            self.shm = shared_memory.SharedMemory(name=name)
        buf = self.buf
        control = memoryview(buf)[: layout.error_offset]
        self.q = control.cast("q")
        self.d = control.cast("d")
        self.arrays: dict[str, np.ndarray] = {
            key: np.ndarray(shape, np.dtype(dtype), buffer=buf, offset=offset, order=order)
            for key, (offset, shape, dtype, order) in layout.arrays.items()
        }
        self._control = control

    @property
    def name(self) -> str:
        return self.shm.name

    @property
    def buf(self) -> memoryview:
        """The segment's bytes (until it is closed)."""
        buf = self.shm.buf
        assert buf is not None, "the segment is closed"
        return buf

    def write_error(self, worker: int, message: str) -> None:
        start, stop = self.layout.error_range(worker)
        data = message.encode("utf-8", "replace")[: stop - start - 1]
        buf = self.buf
        buf[start : start + len(data)] = data
        buf[start + len(data)] = 0

    def read_error(self, worker: int) -> str:
        start, stop = self.layout.error_range(worker)
        raw = bytes(self.buf[start:stop])
        return raw.split(b"\0", 1)[0].decode("utf-8", "replace")

    def close(self) -> None:
        """Drop every view and unmap (a view still held elsewhere keeps the mapping alive)."""
        self.arrays = {}
        for view in (self.q, self.d, self._control):
            view.release()
        try:
            self.shm.close()
        except BufferError:  # an array view escaped; the mapping goes with it
            pass

    def unlink(self) -> None:
        try:
            self.shm.unlink()
        except FileNotFoundError:
            pass
