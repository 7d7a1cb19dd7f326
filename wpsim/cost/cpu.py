"""Cost of running a task on a group of cores.

The time of task ``v`` on a group of ``k`` cores (``k = 1`` unless the policy splits cells across
helper cores) is::

    time = dispatch + task_overhead + steps * step_overhead + handoff + sync + elementwise * corun
           + max(products * corun, cache + dram_bytes / dram_share)

* ``dispatch``: the runtime's per-task overhead; ``dispatch_overhead_busy_s`` instead when every
  core of the socket is busy at the start (the scheduler must then take a core from a worker; a
  table of it is read at the task's own time ``elementwise + max(products, cache + dram_bytes /
  per-core bandwidth)``, before the co-running slowdown); ``dispatch_overhead_sequence_s`` (a
  number or such a table) for every task of a run with one group, whose order is handed out at
  once; ``dispatch_overhead_group_s`` (the same) for a task split across a group of every core
  of the socket, read at a member's time.
* ``task_overhead``, ``step_overhead``: the fixed per-task and per-step costs of the cell's
  kernel call for the workload's cell type (``task_overhead_s``, ``step_overhead_s``; counted for
  tasks with recurrent work).

* ``compute = products + elementwise = (F_in / e(B*steps) + F_rec / e(B)) / k / peak + F_elem /
  e_elem / k' / peak``, split across ``k`` helpers as the runtime splits it (except each
  product's ``fixed`` part, ``product_fixed_s`` a call: one call for the input-side GEMM, one a
  step for the recurrent one; a member's share is ``fixed + (whole - fixed) / k``; measured
  here, half the rows of an Elman ``W_hh`` at H=128 took 0.79 of the time of all of them): the
  input-side GEMM over gate rows (``B*steps`` columns, 1/k of ``W_ih`` per member; over time
  steps where ``W_ih`` has at most ``input_split_by_time_max_bytes``: ``B*steps/k`` columns,
  all of ``W_ih``), the recurrent GEMM over gate rows too (``B`` columns; on one core a batch
  of at most ``recurrent_gemv_max_batch`` rows runs as ``B`` GEMVs, ``e(1)``); the element-wise
  update split too (``k' = k``) unless the machine says ``elementwise_split_across_helpers:
  false`` (then ``k' = 1`` for split recurrent tasks, as :mod:`kernels.executor` runs them:
  every member runs it whole after a recurrent product's barrier; an element-wise recurrence,
  as SRU's, runs on the lead alone while the others share its products). ``e(n)`` is the machine's
  efficiency table (by n and hidden size where it has ``gemm_by_n_h``, or ``gemm_by_n_h_by_cell``
  for the workload's cell), ``peak = clock * flops_per_cycle[dtype]``. Where the machine has
  ``elementwise_step_s`` for the cell, a forward cell task's element-wise term is ``steps *
  table(H, B)`` seconds instead of ``F_elem / e_elem``. Only the products overlap the weight
  reads: the element-wise update is a chain of small ufunc calls on activations that runs between
  them, on data already in the core's cache (measured: an LSTM step at H=256 whose 2 MiB of
  weights stream from outside L2 takes the products' 51 us plus the update's 13 us, not the larger
  of the two).
* ``corun = 1 + corun_slowdown_per_core * (other busy cores on the socket at start)``: the
  calibrated slowdown of co-running cores (shared cache and memory), fixed when the task starts.
* ``cache``: each weight block (``W_ih``, ``W_hh``, output layer) is read from the nearest level
  holding it: the core's private levels (an LRU of weight blocks each), then the socket's shared
  level (one LRU per socket), else DRAM; ``cache = sum(bytes / bandwidth(level))``. A block is
  then resident in every level it fits (inclusive hierarchy; a level with a ``hit_curve`` holds
  blocks as large as its curve reaches, and serves part of one larger than itself). Split
  across ``k`` helpers, core j reads slice j (``bytes / k``), a block of its own, except a
  ``W_ih`` of at most ``input_split_by_time_max_bytes``: its projection is split over time
  steps, and every member reads all of it (with ``B*steps/k`` columns). A private level with a
  measured ``hit_curve`` is not a strict LRU: it serves the fraction of a block its curve gives
  for the block's reuse distance (the bytes of the weights read on that core since the block's last
  use, itself included, over the level's size), and the rest is read further out; real caches
  do not drop from all hits to none when a working set outgrows them.
* ``dram_share = min(per_core_bandwidth, socket_bandwidth / streams)``: DRAM bandwidth is shared
  by the cores streaming from it at that moment (processor sharing); the engine recomputes it
  whenever a streaming task starts or ends (see :class:`~wpsim.sim.dram.DramPool`).
* ``handoff = latency + bytes / handoff_bandwidth`` for activations produced on a core outside the
  group (cross-socket latency if any producer is on another socket); free on the same core.
* ``sync = n_sync * (barrier(k) + (k-1)/k * B*H*s / handoff_bandwidth)`` for ``k > 1``: after each
  recurrent step the helpers meet at a barrier and all-gather the new hidden state, the state
  the recurrent products read (``n_sync = steps`` for tasks with recurrent products, else 1: an
  element-wise recurrence, as SRU's, needs no exchange a step; the members meet once, over the
  products they share).

Activations produced on the same core, and the workload's own input, are read from the private
cache and their time is neglected next to the weights'.

The per-cell tables (``gemm_by_n_h_by_cell``, ``gemm_by_n_h_hot``, ``elementwise_step_s``,
``task_overhead_s``, ``step_overhead_s``) are read under the cell's registered name, whose
tables serve every option of it (:attr:`~wpsim.model.workload.Workload.calibration_key`). A cell
a table does not name is charged as on a machine without the table: products at
``gemm_by_n_h`` (or ``gemm_by_n``), forward element-wise work at ``efficiency.elementwise``, no
fixed cost per task or step. ``wpsim calibrate`` writes the element-wise tables and fixed costs
of every registered cell; where a file gives them for other cells but not the workload's (a
file older than the cell, or a cell declared in YAML, which no calibration measures), the
result says so in ``extra["note"]`` (:meth:`~wpsim.machines.cpu.CpuMachine.cell_calibration`).
"""

from __future__ import annotations

import math

from wpsim.cost.base import DRAM, TaskCost
from wpsim.cost.caches import FixedPoint, LRUCache
from wpsim.machines.cpu import CpuMachine
from wpsim.machines.fields import piecewise_linear
from wpsim.model.graph import Task
from wpsim.model.plan import Plan


class CpuCostModel:
    """The cost model of :mod:`wpsim.cost.cpu` for one simulation (it holds cache state)."""

    def __init__(self, machine: CpuMachine, plan: Plan, *, sequence: bool = False) -> None:
        """``sequence``: one group runs the whole plan, in an order fixed in advance (see
        :meth:`wpsim.machines.cpu.CpuMachine.dispatch_s`)."""
        self.machine = machine
        self.plan = plan
        w = plan.workload
        self.batch = w.batch
        self.peak = machine.peak_flops_per_core(w.dtype)
        self.state_vector_bytes = w.gathered_state_bytes
        self.private = machine.private_levels
        self.shared = machine.shared_level
        n_cores = machine.total_cores
        # a level with a hit curve tracks blocks as far as the curve reaches (beyond, it serves
        # nothing); a strict one only what it holds
        self._curves = [level.hit_curve for level in self.private]
        tracked = [
            level.size_bytes * max(1.0, level.hit_curve[-1][0])
            if level.hit_curve
            else level.size_bytes
            for level in self.private
        ]
        self.private_lru = [[LRUCache(size) for size in tracked] for _ in range(n_cores)]
        # the largest block a level serves any of: its size, or as far as its hit curve reaches
        self._reach = tracked
        self.shared_lru = (
            [LRUCache(self.shared.size_bytes) for _ in range(machine.sockets)]
            if self.shared
            else []
        )
        self.private_bw = [level.bandwidth_Bps for level in self.private]
        self.private_names = [level.name for level in self.private]
        self.producer_core = [-1] * plan.n_tasks
        self._compute_memo: dict[tuple, tuple[float, float]] = {}
        self._efficiency_memo: dict[tuple[float, bool], float] = {}
        table = machine.efficiency.gemm_by_n
        self._eff_x = [math.log2(n) for n, _ in table]
        self._eff_y = [f for _, f in table]
        # the calibrations of the cell by its registered name (an LSTM's serve a projected one
        # too), or the machine's defaults for every cell (CpuMachine.cell_calibration)
        calibrated = machine.cell_calibration(w.calibration_key)
        self._eff_nh = self._grid(calibrated.gemm_by_n_h)  # (log2 n, log2 H, grid[n][H]) or None
        self._eff_nh_hot = self._grid(calibrated.gemm_by_n_h_hot)
        # the weights of a product on one core fit its largest private cache up to this size
        self._hot_bytes = max((level.size_bytes for level in self.private), default=0)
        self.elementwise_eff = machine.efficiency.elementwise
        self._step_overhead = calibrated.step_overhead_s
        self._step_overhead_bwd = calibrated.backward_step_overhead_s
        self._task_overhead = calibrated.task_overhead_s
        self._elem_step_s = self._elementwise_step_s(
            calibrated.elementwise_step_s, w.hidden, w.batch
        )
        # per core: the FixedPoint of the group that last ran a task on it, or None
        self._fixed_point: list[FixedPoint | None] = [None] * n_cores
        self._socket_of_core = [c // machine.cores_per_socket for c in range(n_cores)]
        self._socket_lru_of_core = [
            self.shared_lru[s] if self.shared else None for s in self._socket_of_core
        ]
        self._fitting_private: dict[float, list[int]] = {}
        self._shape = plan.shape
        # group size -> by task shape, what depends only on the work (see _static_part)
        self._n_shapes = max(plan.shape, default=-1) + 1
        self._static: dict[int, list[tuple[float, float, float, float] | None]] = {}
        self._static_one_core = self._statics(1)
        self._tasks, self._preds, self._pred_bytes = plan.tasks, plan.preds, plan.pred_bytes
        # each task's weight blocks in one list: read at every start, where the Task objects
        # lie scattered among the graph's (2-3% of a simulation's time)
        self._weights_of = [t.weights for t in plan.tasks]
        # the dispatch overhead of a task with a core free, with every core busy (one group runs
        # its order alone: never), and split across the whole socket: numbers or tables
        self._dispatch = machine.dispatch_variant(all_busy=False, sequence=sequence)
        self._dispatch_busy = self._dispatch if sequence else machine.dispatch_variant(True)
        self._dispatch_group = machine.dispatch_variant(True, whole_socket_group=True)
        self._cores_per_socket = machine.socket_cores
        self._latency = machine.handoff.latency_s
        self._cross_latency = machine.handoff.cross_socket_latency_s
        self._handoff_bw = machine.handoff.bandwidth_Bps
        self._corun = machine.corun_slowdown_per_core
        self._per_core_dram_Bps = machine.memory.per_core_bandwidth_Bps

    # ---- compute ---------------------------------------------------------------------------
    @staticmethod
    def _bracket(xs: list[float], x: float) -> tuple[int, int, float]:
        """Indices and fraction of ``x`` between neighbours in the sorted ``xs`` (ends clamp)."""
        if x <= xs[0]:
            return 0, 0, 0.0
        if x >= xs[-1]:
            return len(xs) - 1, len(xs) - 1, 0.0
        i = next(i for i in range(1, len(xs)) if x <= xs[i])
        return i - 1, i, (x - xs[i - 1]) / (xs[i] - xs[i - 1])

    @classmethod
    def _bilinear(
        cls, xs: list[float], ys: list[float], grid: list[list[float]], x: float, y: float
    ) -> float:
        """``grid[i][j]`` (at ``xs[i]``, ``ys[j]``, both sorted) read at ``(x, y)``: linear in
        each direction between the points, the edge values outside."""
        i, j, fx = cls._bracket(xs, x)
        a, b, fy = cls._bracket(ys, y)
        lo = grid[i][a] + fy * (grid[i][b] - grid[i][a])
        hi = grid[j][a] + fy * (grid[j][b] - grid[j][a])
        return lo + fx * (hi - lo)

    def _elementwise_step_s(
        self, table: list[tuple[float, float, float]] | None, hidden: int, batch: int
    ) -> float | None:
        """Seconds of one step's element-wise work from the cell's ``elementwise_step_s`` grid
        (log-log interpolation), or None without one."""
        if not table:
            return None
        points = {(h, b): seconds for h, b, seconds in table}
        hs, bs = sorted({h for h, _ in points}), sorted({b for _, b in points})
        grid = [[points[(h, b)] for b in bs] for h in hs]
        log_hs, log_bs = [math.log2(h) for h in hs], [math.log2(b) for b in bs]
        return self._bilinear(log_hs, log_bs, grid, math.log2(hidden), math.log2(batch))

    @staticmethod
    def _grid(points: list | None) -> tuple[list[float], list[float], list[list[float]]] | None:
        """``[n, H, fraction]`` points as (log2 n values, log2 H values, grid[n][H]), or None
        when they are missing or not a full grid."""
        if not points:
            return None
        by_nh = {(n, h): f for n, h, f in points}
        ns = sorted({n for n, _ in by_nh})
        hs = sorted({h for _, h in by_nh})
        if not all((n, h) in by_nh for n in ns for h in hs):
            return None
        grid = [[by_nh[(n, h)] for h in hs] for n in ns]
        return [math.log2(n) for n in ns], [math.log2(h) for h in hs], grid

    def efficiency(self, n_columns: float, hot: bool = False) -> float:
        """Fraction of peak for a product with ``n_columns`` right-hand columns: log-linear in n,
        and in the hidden size too where the machine has ``gemm_by_n_h``; ``hot``: its weights
        fit the core's largest private cache (``gemm_by_n_h_hot``, where the machine has it)."""
        key = (n_columns, hot)
        memo = self._efficiency_memo.get(key)
        if memo is not None:
            return memo
        x = math.log2(max(n_columns, 1.0))
        grid = self._eff_nh_hot if hot and self._eff_nh_hot is not None else self._eff_nh
        if grid is None:
            i, j, f = self._bracket(self._eff_x, x)
            value = self._eff_y[i] + f * (self._eff_y[j] - self._eff_y[i])
        else:
            ns, hs, table = grid
            value = self._bilinear(ns, hs, table, x, math.log2(self.plan.workload.hidden))
        self._efficiency_memo[key] = value
        return value

    def _weight_bytes(self, task: Task, part: str) -> float:
        """Bytes of ``task``'s weight blocks of one part (``ih`` or ``hh``)."""
        suffix = "." + part
        return sum(size for key, size in task.weights if key.endswith(suffix))

    def compute_s(self, tid: int, k: int) -> float:
        """Compute time of task ``tid`` split over ``k`` cores (no co-running slowdown): the sum
        of :meth:`compute_parts`."""
        products_s, elementwise_s = self.compute_parts(tid, k)
        return products_s + elementwise_s

    def compute_parts(self, tid: int, k: int) -> tuple[float, float]:
        """(products, element-wise) compute time of task ``tid`` split over ``k`` cores.

        Split as the runtime splits it: the input-side GEMM over gate rows (each member has all
        ``B * steps`` columns and 1/k of ``W_ih``; a small ``W_ih``'s over time steps, see
        :meth:`_ih_by_time`), the recurrent GEMM over gate rows (one GEMM of ``B``
        rows each; on one core a batch of at most ``recurrent_gemv_max_batch`` rows runs as
        ``B`` GEMVs), the element-wise work of a recurrent task split too, or in one member's
        time where ``elementwise_split_across_helpers`` is false (every member's after a
        recurrent product's barrier, the lead's for an element-wise recurrence).
        """
        t = self.plan.tasks[tid]
        measured_elem = t.kind == "cell" and self._elem_step_s is not None
        key = (t.flops_in, t.flops_rec, t.flops_elem, t.steps, t.recurrent, k, measured_elem)
        memo = self._compute_memo.get(key)
        if memo is None:
            b, peak = self.batch, self.peak
            fixed_s = self.machine.efficiency.product_fixed_s
            products_s = 0.0
            # both products are split by gate rows (every member reads 1/k of W_ih and of W_hh),
            # a small W_ih's projection over time steps instead; every member makes every call
            # of the whole (the projection once, the recurrent product once a step), whose
            # fixed part it does not share
            if t.flops_in:
                ih_bytes = self._weight_bytes(t, "ih")
                if self._ih_by_time(ih_bytes, k, t.steps):  # each member: its steps, all W_ih
                    columns, hot = b * t.steps / k, ih_bytes <= self._hot_bytes
                else:
                    columns, hot = b * t.steps, ih_bytes / k <= self._hot_bytes
                whole_s = t.flops_in / self.efficiency(columns, hot) / peak
                products_s += self._member_s(whole_s, fixed_s, k)
            if t.flops_rec:
                gemv = k == 1 and b <= self.machine.recurrent_gemv_max_batch
                hot = self._weight_bytes(t, "hh") / k <= self._hot_bytes
                whole_s = t.flops_rec / self.efficiency(1 if gemv else b, hot) / peak
                products_s += self._member_s(whole_s, t.steps * fixed_s, k)
            elem_s = 0.0
            if t.flops_elem:
                if measured_elem:
                    assert self._elem_step_s is not None  # (measured_elem says so)
                    elem_s = t.steps * self._elem_step_s
                else:
                    elem_s = t.flops_elem / self.elementwise_eff / peak
                if not (
                    k > 1 and t.recurrent and not self.machine.elementwise_split_across_helpers
                ):
                    elem_s /= k  # else one member's time holds all of it
            memo = self._compute_memo[key] = (products_s, elem_s)
        return memo

    def member_weight_bytes(self, tid: int, k: int) -> float:
        """Bytes of weights one of ``k`` members of task ``tid`` reads: its slice of each
        block, or all of a ``W_ih`` projected split over time steps (:meth:`_ih_by_time`)."""
        task = self._tasks[tid]
        return sum(
            size if self._whole_block(key, size, k, task.steps) else size / k
            for key, size in task.weights
        )

    def _whole_block(self, key: str, size: float, k: int, steps: int) -> bool:
        """Whether each of ``k`` members reads all of weight block ``key`` (one core, or a
        ``W_ih`` projected over time steps) rather than its slice."""
        return k == 1 or (key.endswith(".ih") and self._ih_by_time(size, k, steps))

    def _ih_by_time(self, ih_bytes: float, k: int, steps: int) -> bool:
        """Whether ``k`` members split the input projection of ``steps`` steps with
        ``ih_bytes`` of ``W_ih`` over the steps (``input_split_by_time_max_bytes``, and a step
        for each member at least) rather than over gate rows."""
        return 1 < k <= steps and 0 < ih_bytes <= self.machine.input_split_by_time_max_bytes

    @staticmethod
    def _member_s(whole_s: float, fixed_s: float, k: int) -> float:
        """One of ``k`` members' share of a product taking ``whole_s`` on one core, of which
        ``fixed_s`` (at most all of it) does not shrink with the size: ``fixed + (whole -
        fixed) / k``.

        Examples
        --------
        >>> CpuCostModel._member_s(10e-6, 2e-6, 2), CpuCostModel._member_s(10e-6, 2e-6, 1)
        (6e-06, 1e-05)
        """
        fixed_s = min(fixed_s, whole_s)
        return fixed_s + (whole_s - fixed_s) / k

    # ---- one task ------------------------------------------------------------------------
    def _read_weights(
        self, weights: tuple, core: int, k: int, j: int, steps: int
    ) -> tuple[dict[str, float], float, float, list, dict[str, float], float]:
        """Look up and update residency of the weight slices ``j`` of ``k`` for ``core`` (all
        of a ``W_ih`` whose projection of ``steps`` steps is split over them, see
        :meth:`_ih_by_time`).

        A private level with a ``hit_curve`` serves the fraction of a block the curve gives
        for its reuse distance; the rest is looked up further out. Returns (bytes by level, cache
        seconds, DRAM bytes, the blocks looked up in the socket's shared level as ``(block, its
        size, bytes still to read)``, bytes by private level, private-cache seconds).
        """
        level_bytes: dict[str, float] = {}
        private_bytes: dict[str, float] = {}
        cache_s = 0.0
        private_s = 0.0
        dram = 0.0
        socket_blocks = []
        lrus = self.private_lru[core]
        socket_lru = self._socket_lru_of_core[core]
        for key, size in weights:
            if self._whole_block(key, size, k, steps):
                part, block = size, key
            else:
                part, block = size / k, (key, k, j)
            fitting = self._fitting_private.get(part)
            if fitting is None:  # private levels that can serve this block (others never do)
                fitting = self._fitting_private[part] = [
                    i for i, level in enumerate(self.private) if part <= self._reach[i]
                ]
            hit_index = len(fitting)
            remaining = part  # bytes no private level has served yet
            for position, index in enumerate(fitting):
                curve = self._curves[index]
                if curve is None:
                    served = remaining if lrus[index].lookup(block) else 0.0
                else:
                    distance = lrus[index].reuse_distance(block) / self.private[index].size_bytes
                    served = remaining * piecewise_linear(curve, distance) if distance else 0.0
                if served:
                    name = self.private_names[index]
                    seconds = served / self.private_bw[index]
                    cache_s += seconds
                    private_s += seconds
                    private_bytes[name] = private_bytes.get(name, 0.0) + served
                    level_bytes[name] = level_bytes.get(name, 0.0) + served
                    remaining -= served
                    if not remaining:
                        hit_index = position
                        break
            else:
                socket_blocks.append((block, part, remaining))
                seconds, nbytes = self._read_shared(socket_lru, block, part, remaining, level_bytes)
                cache_s += seconds
                dram += nbytes
            for index in fitting[:hit_index]:  # now also resident in the smaller levels
                lrus[index].insert(block, part)
        return level_bytes, cache_s, dram, socket_blocks, private_bytes, private_s

    def _read_shared(
        self,
        socket_lru: LRUCache | None,
        block: object,
        size: float,
        nbytes: float,
        level_bytes: dict[str, float],
    ) -> tuple[float, float]:
        """Read ``nbytes`` of ``block`` (``size`` bytes whole) from the socket's shared level,
        else from DRAM (it is then resident there); counts them in ``level_bytes``. Returns
        (shared-level seconds, DRAM bytes)."""
        if socket_lru is not None and socket_lru.lookup(block):
            shared = self.shared
            assert shared is not None  # (a socket's LRU models it)
            level_bytes[shared.name] = level_bytes.get(shared.name, 0.0) + nbytes
            return nbytes / shared.bandwidth_Bps, 0.0
        if socket_lru is not None:
            socket_lru.insert(block, size)
        level_bytes[DRAM] = level_bytes.get(DRAM, 0.0) + nbytes
        return 0.0, nbytes

    def _read_group_weights(
        self, weights: tuple, cores: tuple[int, ...], steps: int
    ) -> tuple[dict[str, float], float, float]:
        """:meth:`_read_weights` for every member of a task's group (core ``j`` of ``k`` reads
        slice ``j``). Returns (bytes by level summed over the members, the slowest member's
        cache seconds, its DRAM bytes).

        A core's private LRUs are touched by the tasks of its group only. When a task leaves
        them exactly as it found them (all hits, or blocks that evict each other in a fixed
        cycle: the same blocks in the same recency order), the next task with the same weights
        on the same group finds the same private state, so it gets the same private outcome
        and leaves the same state again. Such a :class:`FixedPoint` is remembered for each
        member (:meth:`start` replays it); any other outcome forgets the members' fixed points.
        """
        k = len(cores)
        before = [[tuple(lru.blocks) for lru in self.private_lru[core]] for core in cores]
        reads = [self._read_weights(weights, core, k, j, steps) for j, core in enumerate(cores)]
        level_bytes, cache_s, dram = self._merge_members(reads)
        after = [[tuple(lru.blocks) for lru in self.private_lru[core]] for core in cores]
        fixed = None
        if not dram and before == after:
            fixed = FixedPoint(
                weights,
                cores,
                steps,
                level_bytes,
                cache_s,
                socket_blocks=[read[3] for read in reads],
                private_bytes=[read[4] for read in reads],
                private_s=[read[5] for read in reads],
                shared_resident=[
                    lru.blocks if (lru := self._socket_lru_of_core[core]) is not None else None
                    for core in cores
                ],
            )
        for core in cores:
            self._fixed_point[core] = fixed
        return level_bytes, cache_s, dram

    def _read_shared_again(self, fixed: FixedPoint) -> tuple[dict[str, float], float, float]:
        """A task at ``fixed`` whose replay found a block gone from a shared level: the private
        part is the fixed point's, the shared lookups are made one by one (those the replay
        moved are moved again, in the same order: the same LRU order results). The private
        fixed point still holds. Returns what :meth:`_read_group_weights` does."""
        reads = []
        for j, core in enumerate(fixed.cores):
            socket_lru = self._socket_lru_of_core[core]
            level_bytes, cache_s, dram = dict(fixed.private_bytes[j]), fixed.private_s[j], 0.0
            for block, size, nbytes in fixed.socket_blocks[j]:
                seconds, from_dram = self._read_shared(socket_lru, block, size, nbytes, level_bytes)
                cache_s += seconds
                dram += from_dram
            reads.append((level_bytes, cache_s, dram))
        return self._merge_members(reads)

    @staticmethod
    def _merge_members(reads: list[tuple]) -> tuple[dict[str, float], float, float]:
        """The members' (bytes by level, cache seconds, DRAM bytes, ...) as the group's: bytes
        summed, the slowest member's seconds and DRAM bytes."""
        level_bytes: dict[str, float] = {}
        cache_s = dram = 0.0
        for read in reads:
            for name, nbytes in read[0].items():
                level_bytes[name] = level_bytes.get(name, 0.0) + nbytes
            cache_s = max(cache_s, read[1])
            dram = max(dram, read[2])
        return level_bytes, cache_s, dram

    def _statics(self, k: int) -> list[tuple[float, float, float, float] | None]:
        """By task shape, :meth:`_static_part` on ``k`` cores, filled as tasks come."""
        statics = self._static.get(k)
        if statics is None:
            statics = self._static[k] = [None] * self._n_shapes
        return statics

    def _static_part(self, tid: int, k: int) -> tuple[float, float, float, float]:
        """(step overhead s, helper synchronisation s, products s, element-wise s) of ``tid`` on
        ``k`` cores."""
        task = self._tasks[tid]
        step_s = 0.0
        if task.recurrent:
            per_step = self._step_overhead_bwd if task.is_backward else self._step_overhead
            step_s = self._task_overhead + task.steps * per_step
        sync_s = 0.0
        if k > 1:
            n_sync = task.steps if task.flops_rec else 1
            gather = (k - 1) / k * self.state_vector_bytes / self._handoff_bw
            sync_s = n_sync * (self.machine.barrier_s(k) + gather)
        return (step_s, sync_s, *self.compute_parts(tid, k))

    def start(self, tid: int, cores: tuple[int, ...], busy_on_socket: int) -> TaskCost:
        """Cost of ``tid`` starting now on ``cores``; updates cache residency.

        ``busy_on_socket``: cores of the first core's socket already running other tasks.

        A group at its private fixed point (see :meth:`_read_group_weights`) reads the same
        bytes from the same levels task after task, unless a block has left a shared level
        since, so its costs repeat: they are kept by task shape, busy cores and hand-off, and
        the same :class:`TaskCost` object is returned again (a TaskCost is never modified).
        """
        producer_core = self.producer_core
        # where tid's outputs will be (read by its successors only, which start after it ends)
        producer_core[tid] = cores[0]
        # activations from other cores
        handoff_bytes = 0
        latency = 0.0
        preds = self._preds[tid]
        if preds:
            socket_of = self._socket_of_core
            first_socket = socket_of[cores[0]]
            pred_bytes = self._pred_bytes[tid]
            # an index, not zip(): a zip of two lists is a third of this hot loop's time
            # (benchmarks/engine.py records the measurement)
            i = 0
            for p in preds:
                pc = producer_core[p]
                if pc >= 0 and pc not in cores:
                    handoff_bytes += pred_bytes[i]
                    if socket_of[pc] != first_socket:
                        latency = self._cross_latency
                    elif not latency:
                        latency = self._latency
                i += 1
        weights = self._weights_of[tid]
        fixed = self._fixed_point[cores[0]]
        if (
            fixed is not None
            and fixed.weights is weights
            and fixed.cores == cores
            # (one core: its own entry is the fixed point, and reads whole blocks at any steps)
            and (len(cores) == 1 or fixed.holds(self._fixed_point, self._tasks[tid].steps))
        ):
            if not fixed.replay_shared_hits():
                level_bytes, cache_s, dram = self._read_shared_again(fixed)
                return self._task_cost(
                    tid,
                    len(cores),
                    level_bytes,
                    cache_s,
                    dram,
                    busy_on_socket,
                    handoff_bytes,
                    latency,
                )
            # the fixed point's bytes again: its costs repeat
            key = (self._shape[tid], busy_on_socket, handoff_bytes, latency)
            cost = fixed.costs.get(key)
            if cost is None:
                cost = fixed.costs[key] = self._task_cost(
                    tid,
                    len(cores),
                    fixed.level_bytes,
                    fixed.cache_s,
                    0.0,
                    busy_on_socket,
                    handoff_bytes,
                    latency,
                )
            return cost
        level_bytes, cache_s, dram = self._read_group_weights(
            weights, cores, self._tasks[tid].steps
        )
        return self._task_cost(
            tid, len(cores), level_bytes, cache_s, dram, busy_on_socket, handoff_bytes, latency
        )

    def _task_cost(
        self,
        tid: int,
        k: int,
        level_bytes: dict[str, float],
        cache_s: float,
        dram: float,
        busy_on_socket: int,
        handoff_bytes: int,
        latency: float,
    ) -> TaskCost:
        """The cost of ``tid`` on ``k`` cores, once its weights and activations are found."""
        # the part that depends only on the task's work, once per shape and group size
        statics = self._static_one_core if k == 1 else self._statics(k)
        static = statics[self._shape[tid]]
        if static is None:
            static = statics[self._shape[tid]] = self._static_part(tid, k)
        step_s, sync_s, compute, elementwise = static
        if k > 1 and k >= self._cores_per_socket:
            fixed = self._dispatch_group  # the whole socket's cores form the group
        elif busy_on_socket + k >= self._cores_per_socket:
            fixed = self._dispatch_busy
        else:
            fixed = self._dispatch
        if isinstance(fixed, list):  # a table by the task's own time (a member's, when split),
            # as far as it is known at its start
            per_core = self._per_core_dram_Bps
            work = elementwise + max(compute, cache_s + dram / per_core if dram else cache_s)
            fixed = piecewise_linear(fixed, work)
        dispatch_s = fixed
        if step_s:
            fixed += step_s
        corun = 1.0
        if busy_on_socket and self._corun:
            corun = 1.0 + self._corun * busy_on_socket
            compute *= corun
            elementwise *= corun
        if elementwise:
            fixed += elementwise
        handoff_s = 0.0
        if handoff_bytes:
            handoff_s = latency + handoff_bytes / self._handoff_bw
            fixed += handoff_s
        if sync_s:
            fixed += sync_s
        # positional: keyword arguments take twice as long, once a task that streams from DRAM
        return TaskCost(
            fixed,
            compute,
            cache_s,
            dram,
            level_bytes,
            handoff_bytes,
            dispatch_s,
            step_s,
            handoff_s,
            sync_s,
            elementwise,
            0.0,
            corun,
        )

    def dram_share_Bps(self, streams: int) -> float:
        """Bandwidth one streaming core gets when ``streams`` cores stream from its socket."""
        memory = self.machine.memory
        return min(memory.per_core_bandwidth_Bps, memory.bandwidth_Bps / max(streams, 1))


class IdealCostModel:
    """Idealised costs: ``time = flops / (k * flops_per_s)``; no caches, overheads or contention.

    Under it the simulator must agree exactly with the closed forms of :mod:`wpsim.sim.closed_forms`.
    """

    def __init__(self, plan: Plan, flops_per_s: float = 1e9) -> None:
        self.plan = plan
        self.flops_per_s = flops_per_s

    def start(self, tid: int, cores: tuple[int, ...], busy_on_socket: int) -> TaskCost:
        compute = self.plan.tasks[tid].flops / (len(cores) * self.flops_per_s)
        return TaskCost(0.0, compute, 0.0, 0.0, {}, 0)

    def dram_share_Bps(self, streams: int) -> float:
        return math.inf
