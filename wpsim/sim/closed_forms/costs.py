"""Steady-state task costs of the closed forms, for a block of points at once.

The formulas are :mod:`wpsim.cost.cpu`'s (compute, weight reads, dispatch, hand-off, helper
synchronisation), read with each policy's steady-state residency instead of the simulator's
cache state (see :mod:`wpsim.sim.closed_forms`). Every value is a numpy array over the block's points,
and every expression is evaluated in the order :mod:`wpsim.cost.cpu` evaluates it, so a point's
numbers are bit-equal to those of the one-task-at-a-time formulas. Tables (efficiency grids, hit
curves, dispatch tables) are read with the same interpolation rules; logarithms are taken with
:func:`math.log2` on each distinct value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from wpsim.cost.base import DRAM, TaskCost
from wpsim.machines.cpu import CpuMachine
from wpsim.sim.closed_forms.tasks import Sizes, TaskSet

#: Arrays over a block's points (or classes of tasks x points): numbers, integers (indices,
#: counts), truth values.
Floats = NDArray[np.float64]
Ints = NDArray[np.int64]
Bools = NDArray[np.bool_]
#: An efficiency grid by (log2 columns, log2 hidden size): its two axes and its values.
EfficiencyGrid = tuple[list[float], list[float], list[list[float]]]
#: The key of a class of tasks: (row, slot) of :attr:`TaskSet.rows`.
SlotKey = tuple[int, int]

# ---- tables --------------------------------------------------------------------------------


def log2(values: ArrayLike) -> Floats:
    """:func:`math.log2` of each value (numpy's may differ in the last bit)."""
    values = np.asarray(values, dtype=float)
    unique, inverse = np.unique(values, return_inverse=True)
    return np.array([math.log2(v) for v in unique])[inverse].reshape(values.shape)


def bracket(xs: Sequence[float], x: Floats) -> tuple[Ints, Ints, Floats]:
    """:meth:`wpsim.cost.cpu.CpuCostModel._bracket` for an array of ``x``."""
    last = len(xs) - 1
    if last == 0:
        zero = np.zeros(np.shape(x), dtype=int)
        return zero, zero, np.zeros(np.shape(x))
    table = np.asarray(xs, dtype=float)
    hi = np.clip(np.searchsorted(table, x, side="left"), 1, last)
    lo = hi - 1
    f = (x - table[lo]) / (table[hi] - table[lo])
    below, above = x <= table[0], x >= table[-1]
    clamp = below | above
    edge = np.where(below, 0, last)
    return np.where(clamp, edge, lo), np.where(clamp, edge, hi), np.where(clamp, 0.0, f)


def linear(xs: Sequence[float], ys: Sequence[float], x: Floats) -> Floats:
    """``ys`` read at ``x`` with :func:`bracket` (the efficiency table's rule)."""
    i, j, f = bracket(xs, x)
    y = np.asarray(ys, dtype=float)
    return y[i] + f * (y[j] - y[i])


def bilinear(
    xs: Sequence[float],
    ys: Sequence[float],
    grid: Sequence[Sequence[float]],
    x: Floats,
    y: Floats,
) -> Floats:
    """:meth:`wpsim.cost.cpu.CpuCostModel._bilinear` for arrays."""
    table = np.asarray(grid, dtype=float)
    i, j, fx = bracket(xs, x)
    a, b, fy = bracket(ys, y)
    lo = table[i, a] + fy * (table[i, b] - table[i, a])
    hi = table[j, a] + fy * (table[j, b] - table[j, a])
    return lo + fx * (hi - lo)


def piecewise(points: Sequence[Sequence[float]], x: ArrayLike) -> Floats:
    """:func:`wpsim.machines.piecewise_linear` for an array of ``x``."""
    xs = np.array([p[0] for p in points], dtype=float)
    ys = np.array([p[1] for p in points], dtype=float)
    x = np.asarray(x, dtype=float)
    if len(xs) == 1:
        return np.full(x.shape, ys[0])
    at = np.searchsorted(xs, x, side="left")
    hi = np.clip(at, 1, len(xs) - 1)
    lo = hi - 1
    value = ys[lo] + (x - xs[lo]) / (xs[hi] - xs[lo]) * (ys[hi] - ys[lo])
    return np.where(x <= xs[0], ys[0], np.where(at >= len(xs), ys[-1], value))


def _grid(points: Sequence[Sequence[float]] | None) -> EfficiencyGrid | None:
    """:meth:`wpsim.cost.cpu.CpuCostModel._grid`."""
    if not points:
        return None
    by_nh = {(n, h): f for n, h, f in points}
    ns = sorted({n for n, _ in by_nh})
    hs = sorted({h for _, h in by_nh})
    if not all((n, h) in by_nh for n in ns for h in hs):
        return None
    grid = [[by_nh[(n, h)] for h in hs] for n in ns]
    return [math.log2(n) for n in ns], [math.log2(h) for h in hs], grid


def level_for(
    machine: CpuMachine, private_ws: ArrayLike, shared_ws: Floats, n_sockets: Floats
) -> tuple[Ints, Floats]:
    """The level holding a working set at each point (see :mod:`wpsim.sim.closed_forms`): its index
    (the machine's private levels in order, then the shared level; -1 for DRAM) and the
    bandwidth it serves it at (nan for DRAM).

    A private level with a ``hit_curve`` serves the fraction ``f`` the curve gives at
    ``private_ws``; the rest comes from the levels outside it, and the bandwidth blends the two
    (``1 / bw = f / bw_level + (1 - f) / bw_outside``), named after the one that serves more.

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> m = load_machine(resolve_machine_path("xeon8160_2s"))
    >>> index, bw = level_for(m, np.array([1e5, 1e7, 1e9]), np.array([1e5, 1e7, 1e9]), np.ones(3))
    >>> [level_name(m, i) for i in index]
    ['L2', 'L3', 'DRAM']
    """
    levels = machine.private_levels
    shared = machine.shared_level
    private_ws = np.asarray(private_ws, dtype=float)
    if shared is not None:
        fits = shared_ws <= shared.size_bytes * n_sockets
        index = np.where(fits, len(levels), -1)
        bw = np.where(fits, shared.bandwidth_Bps, np.nan)
    else:
        index = np.full(private_ws.shape, -1)
        bw = np.full(private_ws.shape, np.nan)
    # from the outermost private level in: each level's answer is its own or the next one's
    for i in range(len(levels) - 1, -1, -1):
        level = levels[i]
        curve = level.hit_curve
        if curve is None:
            fits = private_ws <= level.size_bytes
            index = np.where(fits, i, index)
            bw = np.where(fits, level.bandwidth_Bps, bw)
            continue
        applies = private_ws <= level.size_bytes * curve[-1][0]
        f = piecewise(curve, private_ws / level.size_bytes)
        with np.errstate(invalid="ignore", divide="ignore"):
            blended = 1.0 / (f / level.bandwidth_Bps + (1.0 - f) / bw)
        outside = (f <= 0.0) | np.isnan(bw)
        curve_index = np.where(f >= 1.0, i, np.where(outside | (f < 0.5), index, i))
        curve_bw = np.where(f >= 1.0, level.bandwidth_Bps, np.where(outside, bw, blended))
        index = np.where(applies, curve_index, index)
        bw = np.where(applies, curve_bw, bw)
    return index, bw


def level_name(machine: CpuMachine, index: int) -> str:
    """The name of a :func:`level_for` index."""
    private = machine.private_levels
    if index < 0:
        return DRAM
    if index < len(private):
        return private[index].name
    shared = machine.shared_level
    assert shared is not None  # (level_for gives this index only when there is one)
    return shared.name


# ---- the machine at each point ---------------------------------------------------------------


@dataclass
class Placement:
    """The machine and the policy's groups at each point of a block (arrays over points)."""

    cores: Floats  # cores the run uses
    cores_per_socket: Floats  # of the machine cut to them
    socket_cores: Floats  # of the whole machine (``CpuMachine.socket_cores``)
    k: Floats  # cores per group
    groups: Floats  # number of groups
    first_cores: dict[int, list[int]]  # by ``cores``: the first core of each group
    machine: Ints  # which of the block's distinct machines (the fields above are theirs)


# ---- costs -----------------------------------------------------------------------------------


class BlockCosts:
    """Residency and task costs of one :class:`TaskSet` under one policy.

    Parameters
    ----------
    machine : CpuMachine
        The machine (all its cores: :class:`Placement` says what each point uses).
    sizes, ts, at : the block's workloads, task classes and placement.
    policy_name : str
    sequence : bool
        One group runs the whole graph in an order fixed in advance (dispatch).
    ideal : bool
        ``cost="ideal"``: a task takes ``flops / (k * 1e9)`` seconds.
    """

    def __init__(
        self,
        machine: CpuMachine,
        sizes: Sizes,
        ts: TaskSet,
        at: Placement,
        policy_name: str,
        sequence: Bools,
        ideal: bool,
    ) -> None:
        self.m, self.sz, self.ts, self.at = machine, sizes, ts, at
        self.ideal = ideal
        self.sequence = sequence
        k, G = at.k, at.groups
        self.k = k
        m = machine
        self.peak = m.peak_flops_per_core(sizes.dtype)
        self.private = m.private_levels
        self.shared = m.shared_level
        self._hot_bytes = max((level.size_bytes for level in self.private), default=0)
        eff = m.efficiency
        self._eff_x = [math.log2(n) for n, _ in eff.gemm_by_n]
        self._eff_y = [f for _, f in eff.gemm_by_n]
        calibrated = m.cell_calibration(sizes.cell)
        self._eff_nh = _grid(calibrated.gemm_by_n_h)
        self._eff_nh_hot = _grid(calibrated.gemm_by_n_h_hot)
        grids = (self._eff_nh, self._eff_nh_hot)
        self._log_h = None if grids == (None, None) else log2(sizes.h)
        self._elem_step_s = self._elementwise_step_s(calibrated.elementwise_step_s)
        self.step_overhead = calibrated.step_overhead_s
        self.step_overhead_bwd = calibrated.backward_step_overhead_s
        self.task_overhead = calibrated.task_overhead_s
        # residency of each set of weight blocks
        cps = at.cores_per_socket
        used_cores = k * G
        sockets_used = np.maximum(1, np.ceil(used_cores / cps))
        live_layers, live_bytes = ts.live_layers, ts.live_bytes
        assert live_layers is not None and live_bytes is not None, "fill_live(ts, sizes) first"
        active = np.minimum(G, live_layers)
        layer_bytes = live_bytes / np.maximum(live_layers, 1)
        layer_index = {key: i for i, key in enumerate(ts.layer_keys)}
        # the distinct (cores, groups, cores per socket, active groups) of the block, once: the
        # first three are the machine's, so the distinct (machine, active groups) pairs
        pair = at.machine * (int(np.max(active)) + 1) + active.astype(np.int64)
        _, first, self._combo_of_point = np.unique(pair, return_index=True, return_inverse=True)
        self._combos = np.stack([at.cores, at.groups, cps, active], axis=1)[first]
        self.level: list[tuple[Ints, Floats]] = []  # (level index, bandwidth or nan)
        self.streams: list[Floats] = []
        for ws in ts.weight_sets:
            size = ws.size
            if policy_name == "sequential":
                one = np.ones(size.shape)
                self.level.append(self._level_for(size, size, one))
                self.streams.append(one)
                continue
            single = self._level_for(size / k, size, sockets_used)
            on_socket = self._on_socket(layer_index[ws.key])
            multi = self._level_for(size / k, on_socket * layer_bytes, np.ones(size.shape))
            one_group = G == 1
            self.level.append(
                (np.where(one_group, single[0], multi[0]), np.where(one_group, single[1], multi[1]))
            )
            self.streams.append(
                np.where(one_group, np.minimum(cps, used_cores), np.minimum(cps, on_socket * k))
            )
        # every core busy in steady state: the busy dispatch overhead applies
        self.all_busy = active * k >= at.socket_cores
        self.whole_socket_group = (k > 1) & (k >= at.socket_cores)

    def _on_socket(self, layer: int) -> Floats:
        """Active groups on the socket of the group holding layer-direction ``layer`` (1 if
        none): layer-direction i lives on group ``i mod G``, groups fill socket 0 first
        (counted once per distinct combination of the block's points)."""
        at = self.at
        counts = np.ones(len(self._combos))
        for u, (cores, groups, cps, n_active) in enumerate(self._combos):
            firsts = at.first_cores[int(cores)]
            socket = firsts[layer % int(groups)] // int(cps)
            count = sum(1 for g in range(int(n_active)) if firsts[g] // int(cps) == socket)
            counts[u] = count or 1
        return counts[self._combo_of_point]

    def _level_for(
        self, private_ws: Floats, shared_ws: Floats, n_sockets: Floats
    ) -> tuple[Ints, Floats]:
        return level_for(self.m, private_ws, shared_ws, n_sockets)

    def level_name(self, index: int) -> str:
        return level_name(self.m, index)

    # ---- compute ---------------------------------------------------------------------------
    def _elementwise_step_s(self, table: list[tuple[float, float, float]] | None) -> Floats | None:
        if not table:
            return None
        points = {(h, b): seconds for h, b, seconds in table}
        hs, bs = sorted({h for h, _ in points}), sorted({b for _, b in points})
        grid = [[points[(h, b)] for b in bs] for h in hs]
        log_hs, log_bs = [math.log2(h) for h in hs], [math.log2(b) for b in bs]
        return bilinear(log_hs, log_bs, grid, log2(self.sz.h), log2(self.sz.b))

    def efficiency(self, n_columns: Floats, hot: Bools) -> Floats:
        """:meth:`wpsim.cost.cpu.CpuCostModel.efficiency` at each point."""
        x = log2(np.maximum(n_columns, 1.0))

        def read(grid: EfficiencyGrid | None) -> Floats:
            if grid is None:
                return linear(self._eff_x, self._eff_y, x)
            ns, hs, table = grid
            assert self._log_h is not None  # (with a grid)
            return bilinear(ns, hs, table, x, self._log_h)

        cold = read(self._eff_nh)
        if self._eff_nh_hot is None:
            return cold
        return np.where(hot, read(self._eff_nh_hot), cold)

    # ---- every class of tasks at once ---------------------------------------------------------
    def costs(
        self, handoff: Bools, track: bool = False
    ) -> tuple[dict[SlotKey, Floats], dict[SlotKey, TaskCost]]:
        """Seconds of a task of every slot at every point, as ``{(row, slot): array}``, and
        with ``track`` each slot's :class:`~wpsim.cost.base.TaskCost` at point 0 (for the
        break-down by cause). All slots are stacked into (slots x points) arrays, so a block
        costs a fixed number of numpy operations whatever its rows."""
        ts = self.ts
        keys = [(r, s) for r, row in enumerate(ts.rows) for s in range(len(row.slots))]
        slots = [ts.rows[r].slots[s] for r, s in keys]

        def stack(name: str) -> Floats:
            return np.stack([getattr(slot, name) for slot in slots])

        steps, flops_in, flops_rec, flops_elem = (
            stack(n) for n in ("steps", "flops_in", "flops_rec", "flops_elem")
        )
        records: dict[SlotKey, TaskCost] = {}
        if self.ideal:
            seconds = (flops_in + flops_rec + flops_elem) / (self.k * 1e9)
            if track:
                records = {
                    key: TaskCost(0.0, float(seconds[i, 0]), 0.0, 0.0, {}, 0)
                    for i, key in enumerate(keys)
                }
            return {key: seconds[i] for i, key in enumerate(keys)}, records
        # by weight set (the last row: no weights): level, bandwidth, streams, blocks
        sets = ts.weight_sets
        shape = self.k.shape
        nan, none = np.full(shape, np.nan), np.zeros(shape)
        level = np.stack([lv for lv, _ in self.level] + [np.full(shape, -1)])
        bw = np.stack([b for _, b in self.level] + [nan])
        streams = np.stack(self.streams + [np.ones(shape)])
        ih = np.stack(
            [_sum([z for z, i in zip(ws.sizes, ws.is_ih, strict=True) if i], shape) for ws in sets]
            + [none]
        )
        hh = np.stack(
            [
                _sum([z for z, i in zip(ws.sizes, ws.is_ih, strict=True) if not i], shape)
                for ws in sets
            ]
            + [none]
        )
        blocks = [
            [(ws.sizes[j], ws.is_ih[j]) if j < len(ws.sizes) else (none, False) for ws in sets]
            + [(none, False)]
            for j in range(2)
        ]
        if any(len(ws.sizes) > 2 for ws in sets):
            raise ValueError("a set of more than two weight blocks")
        index = np.array([ts.rows[r].weight_set for r, _ in keys])  # -1: the last row
        cold = np.array([slot.cold for slot in slots])[:, None]
        cell = np.array([ts.rows[r].kind == "cell" for r, _ in keys])[:, None]
        level, bw, streams = level[index], bw[index], streams[index]
        level = np.where(cold, -1, level)
        bw = np.where(cold, np.nan, bw)
        streams = np.where(cold, 1.0, streams)
        ih_bytes, hh_bytes = ih[index], hh[index]
        k = self.k[None, :]
        # a cell task loops over its steps even without a recurrent product (Task.recurrent)
        cellish = np.array([ts.rows[r].kind in ("cell", "cell_bwd") for r, _ in keys])[:, None]
        recurrent = (flops_rec != 0) | cellish
        compute, elementwise = self._compute_parts(
            steps, flops_in, flops_rec, flops_elem, ih_bytes, hh_bytes, cell, recurrent, k
        )
        # what a member reads of each of the (at most two) blocks
        read = []
        for j in range(2):
            size = np.stack([z for z, _ in blocks[j]])[index]
            is_ih = np.array([i for _, i in blocks[j]])[index][:, None]
            whole = (k == 1) | (is_ih & self._ih_by_time(size, steps, k))
            read.append(np.where(whole, size, size / k))
        weight_bytes = read[0] + read[1]
        in_dram = np.isnan(bw)
        memory_spec = self.m.memory
        share = np.minimum(
            memory_spec.per_core_bandwidth_Bps, memory_spec.bandwidth_Bps / np.maximum(streams, 1)
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            memory = np.where(
                in_dram, np.where(weight_bytes != 0, weight_bytes / share, 0.0), weight_bytes / bw
            )
        dispatch = self.dispatch_s(elementwise + np.maximum(compute, memory))
        m = self.m
        fixed = dispatch
        zero = 0.0 * fixed
        overhead = handoff_s = sync = zero
        has_rec = flops_rec != 0
        if np.any(recurrent):
            backward = np.array([ts.rows[r].kind.endswith("_bwd") for r, _ in keys])[:, None]
            per_step = np.where(backward, self.step_overhead_bwd, self.step_overhead)
            overhead = np.where(recurrent, self.task_overhead + steps * per_step, 0.0)
            fixed = fixed + overhead
        if np.any(handoff):
            max_in = stack("max_in_bytes")
            handoff_s = np.where(
                handoff[None, :], m.handoff.latency_s + max_in / m.handoff.bandwidth_Bps, 0.0
            )
            fixed = fixed + handoff_s
        split = k > 1
        if np.any(split):
            n_sync = np.where(has_rec, steps, 1.0)
            vector = self.sz.gathered[None, :]  # the states the recurrent products read
            gather = (k - 1) / k * vector / m.handoff.bandwidth_Bps
            sync = np.where(split, n_sync * (_barrier_s(m, self.k)[None, :] + gather), 0.0)
            fixed = fixed + sync
        seconds = fixed + elementwise + np.maximum(compute, memory)
        out = {key: seconds[i] for i, key in enumerate(keys)}
        if track:
            for i, key in enumerate(keys):
                nbytes = float(weight_bytes[i, 0])
                dram = bool(in_dram[i, 0])
                records[key] = TaskCost(
                    float(fixed[i, 0] + elementwise[i, 0]),
                    float(compute[i, 0]),
                    0.0 if dram else float(memory[i, 0]),
                    nbytes if dram else 0.0,
                    {self.level_name(int(level[i, 0])): nbytes},
                    0,
                    float(dispatch[i, 0]),
                    float(overhead[i, 0]),
                    float(handoff_s[i, 0]),
                    float(sync[i, 0]),
                    float(elementwise[i, 0]),
                )
        return out, records

    def _compute_parts(
        self,
        steps: Floats,
        flops_in: Floats,
        flops_rec: Floats,
        flops_elem: Floats,
        ih_bytes: Floats,
        hh_bytes: Floats,
        cell: Bools,
        recurrent: Bools,
        k: Floats,
    ) -> tuple[Floats, Floats]:
        """:meth:`wpsim.cost.cpu.CpuCostModel.compute_parts`: (products, element-wise) seconds."""
        m, peak = self.m, self.peak
        b = self.sz.b[None, :]
        fixed_s = m.efficiency.product_fixed_s
        with np.errstate(invalid="ignore", divide="ignore"):
            by_time = self._ih_by_time(ih_bytes, steps, k)
            columns = np.where(by_time, b * steps / k, b * steps)
            hot = np.where(by_time, ih_bytes <= self._hot_bytes, ih_bytes / k <= self._hot_bytes)
            whole = flops_in / self.efficiency(columns, hot) / peak
            products = 0.0 + np.where(flops_in != 0, _member_s(whole, fixed_s, k), 0.0)
            gemv = (k == 1) & (b <= m.recurrent_gemv_max_batch)
            hot = hh_bytes / k <= self._hot_bytes
            # the columns of a recurrent product are the point's (steps are finite)
            whole = flops_rec / self.efficiency(np.where(gemv, 1.0, b), hot) / peak
            products = products + np.where(
                flops_rec != 0, _member_s(whole, steps * fixed_s, k), 0.0
            )
            elem = flops_elem / m.efficiency.elementwise / peak
            if self._elem_step_s is not None:
                elem = np.where(cell, steps * self._elem_step_s[None, :], elem)
            whole_each = (k > 1) & recurrent & (not m.elementwise_split_across_helpers)
            elem = np.where(flops_elem != 0, np.where(whole_each, elem, elem / k), 0.0)
        return products, elem

    def _ih_by_time(self, ih_bytes: Floats, steps: Floats, k: Floats) -> Bools:
        """Whether the ``k`` members split an input projection over its time steps."""
        return (
            (1 < k)
            & (k <= steps)
            & (0 < ih_bytes)
            & (ih_bytes <= self.m.input_split_by_time_max_bytes)
        )

    def dispatch_s(self, task_s: Floats) -> Floats:
        """:meth:`wpsim.machines.cpu.CpuMachine.dispatch_s` at each point (the last axis of
        ``task_s``)."""
        m = self.m
        # the three choices of each point as one number (all busy 4, whole socket 2, sequence 1)
        choice = 4 * self.all_busy + 2 * self.whole_socket_group + 1 * self.sequence
        distinct = np.unique(choice)
        out = np.zeros(task_s.shape)
        for code in distinct:
            variant = m.dispatch_variant(bool(code & 4), bool(code & 2), bool(code & 1))
            if len(distinct) == 1 and isinstance(variant, list):  # one for all points
                return piecewise(variant, task_s)
            at = choice == code
            if isinstance(variant, list):
                out[..., at] = piecewise(variant, task_s[..., at])
            else:
                out[..., at] = variant
        return out


def _member_s(whole_s: Floats, fixed_s: float | Floats, k: Floats) -> Floats:
    """:meth:`wpsim.cost.cpu.CpuCostModel._member_s`."""
    fixed = np.minimum(fixed_s, whole_s)
    return fixed + (whole_s - fixed) / k


def _sum(values: list[Floats], shape: tuple[int, ...]) -> Floats:
    total = np.zeros(shape)
    for value in values:
        total = total + value
    return total


def _barrier_s(m: CpuMachine, k: Floats) -> Floats:
    out = np.zeros(k.shape)
    for value in np.unique(k):
        out[k == value] = m.barrier_s(int(value))
    return out


__all__ = [
    "BlockCosts",
    "Bools",
    "EfficiencyGrid",
    "Floats",
    "Ints",
    "Placement",
    "SlotKey",
    "bilinear",
    "bracket",
    "level_for",
    "level_name",
    "linear",
    "log2",
    "piecewise",
]
