"""Running a sweep: backends, chunking, durable appends, resumption.

Backends
--------
``local`` (default)
    One worker process per core (``--workers N``); ``--workers 1`` evaluates in-process.
``dask``
    Dask distributed: a ``LocalCluster`` of ``--workers`` processes by default, or a running
    cluster at ``--scheduler tcp://HOST:PORT`` (its workers need wpsim importable; they receive
    the workload and machine as data, not as files).

Whatever the backend, only this process writes ``results.csv``. Points go out in chunks sized to
about ``chunk_target_s`` of work each (measured as the sweep runs, starting from one point), and at
most two chunks per worker are in flight, so an interrupted sweep loses at most those. A chunk
travels as its points' numbers (:class:`~wpsim.sweep.spec.Points`): a worker finds a grid's or a
zip's values from them (:class:`~wpsim.sweep.spec.PointTable`); a random sweep's drawn values
travel with them. Execution
order keeps the points that share a workload and machine together (varying the policy and run
options innermost), so each worker reuses its cached inputs and, for the analytic engine, its
compiled task graphs.
"""

from __future__ import annotations

import itertools
import math
import os
import platform
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from wpsim import __version__
from wpsim.errors import ConfigError, WpsimError
from wpsim.outputs import output_folder
from wpsim.sweep import store
from wpsim.sweep.evaluate import (
    Evaluator,
    columns_for,
    init_worker,
    run_chunk,
    run_local_chunk,
    warm_up,
)
from wpsim.sweep.progress import Progress
from wpsim.sweep.spec import LoadedSweep, Points, expand_lazily, file_sha256, load_sweep

#: The most points in a chunk of an analytic sweep: a worker evaluates them in blocks
#: (:meth:`wpsim.sweep.evaluate.Evaluator.predict_rows`), whose fixed cost large chunks share.
ANALYTIC_MAX_CHUNK = 8192
#: The first chunk of an analytic sweep: large enough that a block's fixed cost (a few
#: milliseconds) is shared, small enough to show progress at once. Later chunks follow the rate.
ANALYTIC_FIRST_CHUNK = 256


@dataclass
class SweepSummary:
    """What a call to :func:`run_sweep` did."""

    out_dir: Path
    n_points: int
    done_before: int
    run_now: int
    failed: int  # failed points in the whole results file
    wall_s: float
    backend: str
    workers: int
    complete: bool
    startup_s: float = 0.0  # starting the backend (worker processes, Dask cluster), within wall_s

    @property
    def rate(self) -> float:
        """Points per second in this call."""
        return self.run_now / self.wall_s if self.wall_s > 0 else float("nan")


def default_workers() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# ---- execution order ------------------------------------------------------------------------


#: Points a group of a zip, random or very wide grid sweep holds (one workload each, or no
#: workload shared by neighbours: any grouping is as good, and large ones are cheap to send)
GROUP_POINTS = 4096


def execution_groups(loaded: LoadedSweep) -> Iterator[Points]:
    """Every point, lazily, in groups that share a workload and machine.

    In grid mode the ``workload.*`` and ``hardware.*`` parameters become the outer loops (in
    ``vary:`` order) and the policy and run options the inner ones; one group is one setting of
    the outer loops. Each point keeps its number (its position in the spec's own order). Zip and
    random sweeps run in point order, :data:`GROUP_POINTS` points per group. A group is its
    points' numbers (workers find their values in :meth:`LoadedSweep.table`), and a random
    sweep's drawn values.
    """
    spec = loaded.spec
    params = loaded.params
    sizes = [len(v) if isinstance(v, list) else 0 for v in loaded.values.values()]
    inner = [i for i, p in enumerate(params) if p.split(".")[0] not in ("workload", "hardware")]
    inner_size = math.prod(sizes[i] for i in inner)
    if spec.mode == "random":
        drawn = expand_lazily(loaded)
        while batch := list(itertools.islice(drawn, GROUP_POINTS)):
            numbers = np.array([n for n, _ in batch], dtype=np.int64)
            yield Points(numbers, [tuple(values.values()) for _, values in batch])
        return
    n_points = loaded.n_points
    if spec.mode != "grid" or not params or inner_size > GROUP_POINTS:
        for start in range(0, n_points, GROUP_POINTS):
            yield Points(np.arange(start, min(n_points, start + GROUP_POINTS), dtype=np.int64))
        return
    strides = [math.prod(sizes[i + 1 :]) for i in range(len(params))]
    outer = [i for i in range(len(params)) if i not in inner]
    # the inner loops' offsets, once (every group repeats them)
    offsets = np.array(
        [
            sum(v * strides[i] for i, v in zip(inner, combo, strict=True))
            for combo in itertools.product(*(range(sizes[i]) for i in inner))
        ],
        dtype=np.int64,
    )
    for outer_combo in itertools.product(*(range(sizes[i]) for i in outer)):
        base = sum(v * strides[i] for i, v in zip(outer, outer_combo, strict=True))
        yield Points(base + offsets)


def execution_order(loaded: LoadedSweep) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every point as ``(number, {parameter: value})``, lazily, in execution order (see
    :func:`execution_groups`)."""
    table = loaded.table()
    for group in execution_groups(loaded):
        yield from group.items(loaded.params, table)


#: Points an analytic sweep's rate is timed on (:func:`measure_rate`), after the first
#: :data:`RATE_WARM_UP_POINTS`, which are evaluated untimed (imports, the first machine)
RATE_POINTS = 4096
RATE_WARM_UP_POINTS = 64


def measure_rate(loaded: LoadedSweep, budget_s: float = 1.0, most: int = 50) -> float | None:
    """Points per second one worker evaluates, timed in this process on the sweep's first
    points; None when all failed.

    An analytic sweep's points are timed as a worker evaluates them, a chunk at once
    (:data:`RATE_POINTS` points, after an untimed warm-up); a simulation's one at a time, at
    most ``most`` of them, stopping after ``budget_s``.
    """
    context = loaded.context()
    context["size_share"] = 1
    if loaded.spec.engine == "analytic":
        first = Points.join(
            list(itertools.islice(execution_groups(loaded), RATE_POINTS + RATE_WARM_UP_POINTS))
        )[: RATE_POINTS + RATE_WARM_UP_POINTS]
        timed = first
        if len(first) > 2 * RATE_WARM_UP_POINTS:
            Evaluator(context).run_chunk(first[:RATE_WARM_UP_POINTS])
            timed = first[RATE_WARM_UP_POINTS:]
        rows, seconds = Evaluator(context).run_chunk(timed)
        return rows.n / seconds if rows.failed < rows.n and seconds > 0 else None
    evaluator = Evaluator(context)
    start = time.perf_counter()
    n = ok = 0
    for index, point in execution_order(loaded):
        ok += evaluator.row(index, point)["status"] == "ok"
        n += 1
        if n >= most or time.perf_counter() - start > budget_s:
            break
    elapsed = time.perf_counter() - start
    return n / elapsed if ok and elapsed > 0 else None


# ---- backends ---------------------------------------------------------------------------------


class _SerialBackend:
    """Evaluate in this process (``--workers 1``)."""

    name = "local"

    def __init__(self, context: dict[str, Any]) -> None:
        self.workers = 1
        self.evaluator = Evaluator(context)
        self.queue: list[Points] = []

    def submit(self, chunk: Points) -> None:
        self.queue.append(chunk)

    def wait(self) -> list[tuple[Points, store.FormattedRows, float]]:
        chunk = self.queue.pop(0)
        rows, seconds = self.evaluator.run_chunk(chunk)
        return [(chunk, rows, seconds)]

    def pending(self) -> int:
        return len(self.queue)

    def close(self, cancel: bool = False) -> None:
        self.queue.clear()


class _ProcessBackend:
    """A pool of local worker processes."""

    name = "local"

    def __init__(self, context: dict[str, Any], workers: int) -> None:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing.context import BaseContext

        methods = mp.get_all_start_methods()
        ctx: BaseContext
        # fork is fastest; with other threads alive (e.g. an in-process Dask) use forkserver
        if "fork" in methods and threading.active_count() == 1:
            ctx = mp.get_context("fork")
        elif "forkserver" in methods:
            ctx = mp.get_context("forkserver")
        else:  # pragma: no cover - Windows
            ctx = mp.get_context("spawn")
        self.workers = workers
        self.pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=ctx,
            initializer=init_worker,
            initargs=(context, os.getpid()),
        )
        self.futures: dict[Any, Points] = {}  # (in flight, and their points)

    def submit(self, chunk: Points) -> None:
        self.futures[self.pool.submit(run_local_chunk, chunk)] = chunk

    def wait(self) -> list[tuple[Points, store.FormattedRows, float]]:
        from concurrent.futures import FIRST_COMPLETED, wait
        from concurrent.futures.process import BrokenProcessPool

        done, _ = wait(self.futures, return_when=FIRST_COMPLETED)
        out = []
        for future in done:
            chunk = self.futures.pop(future)
            try:
                rows, seconds = future.result()
            except BrokenProcessPool:
                raise WpsimError(
                    "a worker process died (out of memory?); finished points are saved, "
                    "re-run the same command to resume"
                ) from None
            out.append((chunk, rows, seconds))
        return out

    def pending(self) -> int:
        return len(self.futures)

    def close(self, cancel: bool = False) -> None:
        self.pool.shutdown(wait=not cancel, cancel_futures=cancel)


def lost_workers(error: BaseException) -> WpsimError:
    """The one-line error that ends a Dask sweep whose workers or scheduler went away (the
    finished points are on disk; the same command resumes)."""
    text = " ".join(str(error).split())[:200]
    what = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return WpsimError(
        f"--backend dask: lost the workers or the scheduler ({what}); the finished points are "
        "saved, run the same command again to resume"
    )


#: Dask scheduler address schemes (``distributed.comm``): ``tcp://HOST:PORT`` and its kin.
SCHEDULER_SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")


def check_scheduler(address: str) -> str:
    """``address`` when it looks like a Dask scheduler address; one-line ConfigError otherwise.

    Examples
    --------
    >>> check_scheduler("tcp://10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    """
    scheme, sep, rest = address.partition("://")
    if not sep or scheme not in SCHEDULER_SCHEMES or not rest or any(c.isspace() for c in rest):
        raise ConfigError(
            f"--scheduler: got {address!r}, expected an address such as tcp://HOST:PORT "
            f"(schemes: {', '.join(SCHEDULER_SCHEMES)})"
        )
    return address


def threaded_workers_warning(scheduler_info: dict[str, Any]) -> str | None:
    """A line for a Dask cluster whose workers run several threads in one process (what a plain
    ``dask worker ADDRESS`` starts), else None: evaluating a point holds the GIL, so those
    threads take turns (one such worker took 46.5 s against the local pool's 31.3 s on the
    10k-point benchmark grid, on a 2-core AMD EPYC machine).

    Examples
    --------
    >>> threaded_workers_warning({"workers": {"a": {"nthreads": 1}, "b": {"nthreads": 1}}})
    >>> print(threaded_workers_warning({"workers": {"a": {"nthreads": 2}}}))
    1 of 1 Dask workers run 2 threads in one process, which take turns on Python's GIL; start them as `dask worker ADDRESS --nworkers N --nthreads 1` (N: the cores of each machine)
    """
    threads = [w.get("nthreads", 1) for w in scheduler_info.get("workers", {}).values()]
    threaded = [n for n in threads if n > 1]
    if not threaded:
        return None
    return (
        f"{len(threaded)} of {len(threads)} Dask workers run {max(threaded)} threads in one "
        "process, which take turns on Python's GIL; start them as `dask worker ADDRESS "
        "--nworkers N --nthreads 1` (N: the cores of each machine)"
    )


class _DaskBackend:
    """Dask distributed: a LocalCluster, or a running scheduler."""

    name = "dask"

    def __init__(
        self, context: dict[str, Any], workers: int, scheduler: str | None, processes: bool
    ) -> None:
        try:
            import logging

            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError(
                "--backend dask: dask[distributed] is not installed "
                "(pip install 'dask[distributed]', or the wpsim[dask] extra)"
            ) from None
        self.cluster = None
        self.futures: dict[Any, Points] = {}  # (in flight, and their points)
        if scheduler:
            check_scheduler(scheduler)
        try:
            if scheduler:
                self.client = Client(scheduler, timeout="20s")
            else:
                self.cluster = LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=processes,
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self.client = Client(self.cluster)
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - OSError, TimeoutError, ValueError...
            where = scheduler or "a LocalCluster"
            text = " ".join(str(error).split())[:200]
            raise ConfigError(f"--scheduler: cannot connect to {where}: {text}") from None
        info = self.client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info.get("workers", {}).values()))
        warning = threaded_workers_warning(info)
        if warning:
            print(f"wpsim sweep: warning: {warning}", file=sys.stderr, flush=True)
        try:  # import the models on every worker now (start-up), and fail early if one cannot
            self.client.run(warm_up)
        except Exception as error:  # noqa: BLE001 - any worker-side failure, one line
            self.close()
            raise ConfigError(
                f"--backend dask: a worker cannot import wpsim ({type(error).__name__}: {error}); "
                "install wpsim on every worker"
            ) from None
        [self.context] = self.client.scatter([context], broadcast=True)

    def submit(self, chunk: Points) -> None:
        try:
            future = self.client.submit(run_chunk, self.context, chunk, pure=False)
        except Exception as error:  # noqa: BLE001 - the client closed under us
            raise lost_workers(error) from None
        self.futures[future] = chunk

    def wait(self) -> list[tuple[Points, store.FormattedRows, float]]:
        from distributed import wait

        # when every worker is gone, so is the scattered context every chunk needs: Dask
        # cancels the chunks (FutureCancelledError), which ends up here
        try:
            result = wait(list(self.futures), return_when="FIRST_COMPLETED")
            out = []
            for future in result.done:
                chunk = self.futures.pop(future)
                rows, seconds = future.result()
                out.append((chunk, rows, seconds))
        except KeyboardInterrupt:
            raise
        except Exception as error:  # noqa: BLE001 - a point's own errors are rows; this is Dask
            raise lost_workers(error) from None
        return out

    def pending(self) -> int:
        return len(self.futures)

    def close(self, cancel: bool = False) -> None:
        if cancel and self.futures:
            self.client.cancel(list(self.futures))
        self.futures.clear()
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _make_backend(
    context: dict[str, Any], backend: str, workers: int, scheduler: str | None, dask_processes: bool
) -> Any:
    if backend == "local":
        if scheduler:
            raise ConfigError("--scheduler needs --backend dask")
        if workers == 1:
            return _SerialBackend(context)
        return _ProcessBackend(context, workers)
    if backend == "dask":
        return _DaskBackend(context, workers, scheduler, dask_processes)
    raise ConfigError(f"--backend: got {backend!r}, expected 'local' or 'dask'")


# ---- the driver -------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _new_manifest(loaded: LoadedSweep, columns: list[str]) -> dict[str, Any]:
    inputs = {
        name: {"path": path, "sha256": file_sha256(path)}
        for name, path in loaded.input_files.items()
    }
    spec_path = Path(loaded.source)
    return {
        "format": store.FORMAT,
        "wpsim_version": __version__,
        "python": platform.python_version(),
        "spec_path": str(spec_path),
        "spec_sha256": file_sha256(spec_path) if spec_path.is_file() else None,
        "spec": loaded.spec.model_dump(mode="json"),
        "identity_sha256": loaded.identity(),
        "inputs": inputs,
        "machine_files": {inputs["hardware"]["path"]: inputs["hardware"]["sha256"]}
        if "hardware" in inputs
        else {},
        "params": loaded.params,
        "columns": columns,
        "engine": loaded.spec.engine,
        "n_points": loaded.n_points,
        "created": _now(),
        "status": "running",
        "runs": [],
    }


class _SigtermAsInterrupt:
    """Within the block, SIGTERM raises KeyboardInterrupt (saved like Ctrl-C)."""

    def __enter__(self) -> _SigtermAsInterrupt:
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handler)
        return self

    @staticmethod
    def _handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def run_sweep(
    spec: str | Path | LoadedSweep,
    out_dir: str | Path,
    *,
    backend: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    restart: bool = False,
    progress: bool = True,
    tty: bool | None = None,
    dask_processes: bool = True,
    chunk_target_s: float | None = None,
    max_chunk: int | None = None,
    max_points: int | None = None,
    allow_large: bool = False,
) -> SweepSummary:
    """Run (or resume) a sweep into ``out_dir``.

    Parameters
    ----------
    spec : path or LoadedSweep
        The sweep YAML (see :mod:`wpsim.sweep.spec`).
    out_dir : path
        Gets ``results.csv``, ``manifest.json`` and, with pyarrow, ``results.parquet``.
    backend : {"local", "dask"}
    workers : int, optional
        Local processes, or LocalCluster workers (default: one per core).
    scheduler : str, optional
        ``tcp://HOST:PORT`` of a running Dask scheduler (``backend="dask"``).
    restart : bool
        Discard earlier results in ``out_dir`` instead of resuming.
    progress : bool
        Show progress on standard error (a bar on a terminal, plain lines otherwise).
    dask_processes : bool
        LocalCluster workers as processes (True) or threads in this process (False: quick to
        start, but the GIL serialises the work; for tests).
    chunk_target_s : float, optional
        Seconds of work per chunk (default 0.2 local, 0.3 Dask).
    max_chunk : int, optional
        The most points in a chunk (default 512; analytic sweeps 8192, evaluated in blocks).
    max_points : int, optional
        Stop after this many new points (the sweep stays resumable).
    allow_large : bool
        Evaluate points whose estimated memory exceeds this computer's share for one worker
        (:func:`wpsim.guards.check_size`); by default they are failed rows.

    Returns
    -------
    SweepSummary

    Raises
    ------
    ConfigError
        Bad spec, or ``out_dir`` holds results of a different sweep.
    KeyboardInterrupt
        After saving every finished point (Ctrl-C or SIGTERM).
    """
    loaded = spec if isinstance(spec, LoadedSweep) else load_sweep(spec)
    out = output_folder(out_dir, "--out")
    workers = workers or default_workers()
    if max_chunk is None:
        max_chunk = ANALYTIC_MAX_CHUNK if loaded.spec.engine == "analytic" else 512
    if workers < 1:
        raise ConfigError(f"--workers: got {workers}, expected an integer >= 1")
    columns = columns_for(loaded.params, loaded.base_hardware)
    with store.FolderLock(out), _SigtermAsInterrupt():
        manifest = store.read_manifest(out)
        results_path = out / store.RESULTS
        if restart:
            for name in (store.RESULTS, store.PARQUET, store.MANIFEST):
                (out / name).unlink(missing_ok=True)
            manifest = None
        elif manifest is not None and manifest.get("identity_sha256") != loaded.identity():
            raise ConfigError(
                f"--out {out}: holds results of a different sweep (spec or input files "
                f"changed since); use another --out, or --restart to discard them"
            )
        elif manifest is None and results_path.exists():
            raise ConfigError(
                f"--out {out}: has a {store.RESULTS} but no manifest; use another --out"
            )
        if manifest is None:
            manifest = _new_manifest(loaded, columns)
        manifest["status"] = "running"
        run_record = {
            "started": _now(),
            "backend": backend,
            "workers": workers,
            "scheduler": scheduler,
            "wpsim_version": __version__,
        }
        manifest["runs"].append(run_record)
        store.write_manifest(out, manifest)
        journal = store.ResultsJournal(results_path, columns)
        done = journal.open()
        n_points = loaded.n_points
        done_before = len(done)
        todo = n_points - done_before
        if max_points is not None:
            todo = min(todo, max_points)
        meter = Progress(
            todo,
            label=f"sweep {loaded.spec.name or Path(loaded.source).stem}",
            enabled=progress,
            tty=tty,
        )
        start = time.monotonic()
        run_now = 0
        startup = 0.0
        interrupted = counted = False
        backend_obj = None
        try:
            if todo > 0:
                context = loaded.context()
                # each point's size guard: the memory of the computer a worker runs on, shared
                # by the workers of this one (a remote cluster's workers: their own)
                context["size_share"] = None if allow_large else (1 if scheduler else workers)
                backend_obj = _make_backend(context, backend, workers, scheduler, dask_processes)
                startup = time.monotonic() - start
                target = chunk_target_s or (0.3 if backend == "dask" else 0.2)
                groups = _pending_groups(loaded, done, max_points)
                first, most = 1, max_chunk
                if loaded.spec.engine == "analytic":
                    # every worker gets work: at most a share of what is left per chunk
                    most = max(1, min(max_chunk, -(-todo // (2 * backend_obj.workers))))
                    first = min(most, ANALYTIC_FIRST_CHUNK)
                run_now = _drive(backend_obj, groups, journal, meter, target, most, first)
            counted = True
        except KeyboardInterrupt:
            interrupted = True
            raise
        finally:
            if backend_obj is not None:
                backend_obj.close(cancel=True)
            journal.close()
            if todo > 0:
                meter.close()
            if counted:  # every chunk written whole: the journal counted what is on disk
                on_disk = done_before + journal.appended
                failed = journal.failed_before + journal.appended_failed
            else:  # what is on disk decides: an error ended the run before _drive returned
                on_disk, failed = store.scan(results_path, columns)
            run_now = on_disk - done_before
            complete = on_disk >= n_points
            if complete and not interrupted:
                journal.finalize()
                manifest["parquet"] = store.write_parquet(out, columns)
                manifest.update(status="complete", points_done=on_disk, points_failed=failed)
            else:
                manifest.update(
                    status="interrupted" if interrupted else "partial",
                    points_done=on_disk,
                    points_failed=failed,
                )
            wall = time.monotonic() - start  # (the sorted CSV and the Parquet file included)
            run_record.update(
                finished=_now(),
                points_run=run_now,
                wall_s=round(wall, 3),
                startup_s=round(startup, 3),
                interrupted=interrupted,
            )
            manifest["updated"] = _now()
            store.write_manifest(out, manifest)
    return SweepSummary(
        out,
        n_points,
        done_before,
        run_now,
        failed,
        wall,
        backend_obj.name if backend_obj else backend,
        backend_obj.workers if backend_obj else workers,
        complete,
        startup,
    )


def _pending_groups(
    loaded: LoadedSweep, done: set[int], max_points: int | None
) -> Iterator[Points]:
    """Execution groups without the points already done (at most ``max_points`` points)."""
    left = max_points
    finished = np.array(sorted(done), dtype=np.int64)
    for group in execution_groups(loaded):
        todo = group.keep(~np.isin(group.numbers, finished)) if len(finished) else group
        if left is not None:
            todo = todo[:left]
            left -= len(todo)
        if len(todo):
            yield todo
        if left is not None and left <= 0:
            return


def _chunks(groups: Iterator[Points], size_of: Any, max_chunk: int) -> Iterator[Points]:
    """Chunks of about ``size_of()`` points, made of whole groups when a group fits in one.

    Keeping a group in one chunk keeps one workload on one worker, so its cached inputs and
    compiled graphs are built once; a group larger than a chunk (slow points, e.g. simulations)
    is split, so the work stays balanced across workers.
    """
    parts: list[Points] = []
    held = 0  # points in parts
    for group in groups:
        limit = max(1, min(size_of(), max_chunk))
        while len(group) > limit:
            if parts:
                yield Points.join(parts)
                parts, held = [], 0
            yield group[:limit]
            group = group[limit:]
            limit = max(1, min(size_of(), max_chunk))
        parts.append(group)
        held += len(group)
        if held >= size_of():
            yield Points.join(parts)
            parts, held = [], 0
    if parts:
        yield Points.join(parts)


def _drive(
    backend: Any,
    groups: Iterator[Points],
    journal: store.ResultsJournal,
    meter: Progress,
    target_s: float,
    max_chunk: int,
    first_chunk: int = 1,
) -> int:
    """Keep two chunks per worker in flight; append the finished chunks in the order they were
    sent; return points run. Chunks start at ``first_chunk`` points and then hold about
    ``target_s`` of work each (at most ``max_chunk`` points).

    Appending in the order sent keeps the file in point order when the execution order is
    (the parameters of the inner loops last under ``vary:``), so completing the sweep rewrites
    nothing (:meth:`~wpsim.sweep.store.ResultsJournal.finalize`). A chunk that finishes before
    an earlier one waits for it in memory (at most the chunks in flight); whatever ends the
    run, finished chunks are appended before it returns or raises."""
    window = 2 * backend.workers
    state: dict[str, Any] = {"per_point_s": None, "size": first_chunk}
    chunks = _chunks(groups, lambda: state["size"], max_chunk)
    exhausted = False
    sent: dict[int, int] = {}  # id(chunk) -> its place in the order sent
    finished: dict[int, tuple[Points, store.FormattedRows]] = {}  # by place, not yet appended
    count = {"sent": 0, "appended": 0, "rows": 0}

    def append(place: int) -> None:
        chunk, rows = finished.pop(place)
        journal.append(rows, chunk.numbers)
        count["rows"] += rows.n
        meter.update(rows.n, rows.failed)

    try:
        while True:
            while not exhausted and backend.pending() < window:
                chunk = next(chunks, None)
                if chunk is None:
                    exhausted = True
                    break
                backend.submit(chunk)
                sent[id(chunk)] = count["sent"]
                count["sent"] += 1
            if backend.pending() == 0:
                return count["rows"]
            for chunk, rows, seconds in backend.wait():
                finished[sent.pop(id(chunk))] = (chunk, rows)
                while count["appended"] in finished:
                    append(count["appended"])
                    count["appended"] += 1
                sample = seconds / max(rows.n, 1)
                previous = state["per_point_s"]
                per_point = sample if previous is None else 0.7 * previous + 0.3 * sample
                state["per_point_s"] = per_point
                state["size"] = max(1, min(max_chunk, int(target_s / max(per_point, 1e-7))))
    finally:
        for place in sorted(finished):
            append(place)


__all__ = [
    "SweepSummary",
    "check_scheduler",
    "default_workers",
    "execution_order",
    "measure_rate",
    "run_sweep",
]
