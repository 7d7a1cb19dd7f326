"""Worker processes: how they start (``spawn``, one BLAS thread), how their exits read, and
Ctrl-C deferred while the coordinator starts or stops them."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from contextlib import contextmanager

#: Why spawn: the workers must load numpy with single-threaded BLAS (the environment variables
#: are read when the BLAS library loads, so they must be in the environment of a fresh
#: interpreter), and the parent may already run threads (a BLAS pool, torch's OpenMP pool in
#: the benchmark, pytest plugins): forking a multi-threaded process can deadlock a child on a
#: lock held by a thread that does not exist there. The price is start-up (~0.6 s, the
#: workers import numpy/scipy in parallel), paid once per :func:`execute`, not per repeat.
START_METHOD = "spawn"


BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned process that does not re-run the caller's ``__main__``.

    ``spawn`` normally re-imports the parent's main module in the child (so that functions
    defined there can be unpickled). A worker needs nothing from it, and re-running it costs
    the caller's imports (pytest, torch) per worker and breaks scripts that lack the
    ``if __name__ == "__main__"`` guard; so the main-module entries are dropped from the
    child's preparation data while this process starts.
    """

    @staticmethod
    def _Popen(process_obj):
        from multiprocessing import spawn

        original = spawn.get_preparation_data

        def without_main(name):
            data = original(name)
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
            return data

        spawn.get_preparation_data = without_main
        try:
            return multiprocessing.context.SpawnProcess._Popen(process_obj)
        finally:
            spawn.get_preparation_data = original


@contextmanager
def single_thread_blas_env():
    """Set the BLAS thread variables while workers start (spawn copies the environment)."""
    saved = {k: os.environ.get(k) for k in BLAS_ENV}
    os.environ.update(dict.fromkeys(BLAS_ENV, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextmanager
def sigint_deferred():
    """Ignore Ctrl-C and SIGTERM while cleaning up (main thread only), so cleanup always
    completes (the shared-memory segment is removed: no resource_tracker warning)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"
