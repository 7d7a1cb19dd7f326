"""Writing the machine file from the measurements: every value with its source comment."""

from __future__ import annotations

import datetime as _dt
import math
import platform
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml

from wpsim.cells import elementwise_flops_per_unit, gate_count, get_cell
from wpsim.machines.host import CpuSpec, label
from wpsim.measure.calibrate.compute import ELEM_STEPS, elementwise_grid, gemm_rates_by_shape
from wpsim.measure.calibrate.memory import hit_curve
from wpsim.measure.calibrate.spec import flops_per_cycle
from wpsim.measure.calibrate.timing import median


def _fmt(value: float) -> str:
    """A YAML float PyYAML reads as a float (always with a dot), 4 significant digits."""
    if value == 0:
        return "0.0"
    text = f"{value:.4g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        sign = exponent[0] if exponent[0] in "+-" else "+"
        text = f"{mantissa}e{sign}{int(exponent.lstrip('+-'))}"
    elif "." not in text:
        text += ".0"
    return text


def _si(value: float, unit: str) -> str:
    for scale, prefix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}"


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.3g} us"


@dataclass
class Calibration:
    """A calibrated machine: the file text and the numbers behind it."""

    text: str
    values: dict[str, float]
    raw: dict[str, Any]


@dataclass(frozen=True)
class _Source:
    """The source comments of one calibration run."""

    date: str

    def tag(self, what: str) -> str:
        return f"wpsim calibrate {what}, {self.date}"

    def measured(self, what: str) -> str:
        return "measured: " + self.tag(what)


@dataclass(frozen=True)
class _Compute:
    """The compute numbers every section reads: the clock, the peak and the GEMM rates."""

    per_cycle: dict[str, float]
    rule: str
    clock: float
    peak: float
    clock_note: str
    gemm_rates: dict[tuple[int, int], float]


def build_machine_file(
    spec: CpuSpec, raw: dict[str, Any], date: str, prior: dict[str, tuple[float, str]] | None = None
) -> Calibration:
    """Turn raw measurements into a machine YAML with a source comment on every number.

    One builder per section of the file (the header and clock, caches, memory, hand-off,
    barrier, dispatch, kernel-call overheads, efficiency, co-running, the calibration block);
    each returns its lines and the derived values it adds.

    Parameters
    ----------
    spec : CpuSpec
    raw : dict
        What :func:`wpsim.measure.calibrate.run_measurements` returned.
    date : str
        ISO date written into each comment and the calibration block.
    prior : dict, optional
        Latencies (and comments) to carry over from the previous file.
    """
    source = _Source(date)
    compute = _compute(spec, raw)
    latency = _latency_from(prior or {})
    cache_lines, levels, previous = _cache_section(spec, raw, compute.clock, latency, source)
    memory_lines, memory_values = _memory_section(
        raw["bandwidth"]["DRAM"], previous, latency, source
    )
    handoff_lines, handoff_values = _handoff_section(raw, previous, source)
    barrier_lines, barrier2 = _barrier_section(raw, handoff_values["handoff_latency_s"], source)
    dispatch_lines, dispatch_s = _dispatch_section(raw["dispatch"], source)
    overheads = raw.get("kernel_call_overhead_s") or {}
    efficiency_lines, table, elementwise, elem_fracs = _efficiency_section(
        raw, compute, overheads, source
    )
    corun_lines, corun_value = _corun_section(raw.get("corun"), source)
    lines = [
        *_header_lines(spec, date, compute, source),
        *cache_lines,
        *memory_lines,
        *handoff_lines,
        *barrier_lines,
        *dispatch_lines,
        *_kernel_call_lines(overheads, source),
        *efficiency_lines,
        *corun_lines,
        *_runtime_lines(),
    ]
    values = {
        "clock_hz": compute.clock,
        "peak_flops_per_core": compute.peak,
        "elementwise": elementwise,
        "corun_slowdown_per_core": corun_value,
        "dispatch_overhead_s": dispatch_s,
        **handoff_values,
        **memory_values,
        **{f"{c.name}_bandwidth_Bps": v for c, v, _ in levels},
        **{f"gemm_n{n}": frac for n, (frac, _) in table},
    }
    if barrier2 is not None:
        values["barrier2_s"] = barrier2
    lines += _calibration_block(spec, raw, date, values, compute, elem_fracs)
    return Calibration(text="\n".join(lines) + "\n", values=values, raw=raw)


def _compute(spec: CpuSpec, raw: dict[str, Any]) -> _Compute:
    """The effective clock (at least the fastest GEMM's rate allows) and the fp32 peak."""
    per_cycle, rule = flops_per_cycle(spec.flags)
    fp32 = per_cycle["float32"]
    gemm_rates = gemm_rates_by_shape(raw["gemm_s"], gate_count(get_cell("lstm")))
    peak_size = raw["peak_gemm"]["size"]
    peak_rate = 2.0 * peak_size**3 / raw["peak_gemm"]["seconds"]
    best_rate = max([peak_rate, *gemm_rates.values()])
    tsc_hz = (spec.mhz or 0.0) * 1e6
    clock = max(tsc_hz, best_rate / fp32)
    clock_note = (
        f"effective clock = max(/proc/cpuinfo {tsc_hz / 1e6:.0f} MHz, best fp32 GEMM "
        f"{best_rate / 1e9:.1f} GFLOP/s / {fp32:.0f} flop/cycle): a lower bound of the running clock"
    )
    return _Compute(per_cycle, rule, clock, clock * fp32, clock_note, gemm_rates)


def _latency_from(
    prior: dict[str, tuple[float, str]],
) -> Callable[[str, float, str], tuple[float, str]]:
    """Latencies are not measured: the previous file's value and comment where it had a source,
    else the given fallback."""

    def latency(key: str, fallback: float, note: str) -> tuple[float, str]:
        if key in prior and prior[key][1].startswith(
            ("spec", "measured", "estimate", "assumption", "configuration", "unused")
        ):
            return prior[key]
        return fallback, note

    return latency


def _header_lines(spec: CpuSpec, date: str, compute: _Compute, source: _Source) -> list[str]:
    per_cycle = compute.per_cycle
    return [
        f"# This machine, calibrated by `wpsim calibrate` on {date}: {spec.model} "
        f"({spec.vendor}; {spec.sockets} socket(s) x {spec.cores_per_socket} core(s)"
        f"{', hypervisor ' + spec.hypervisor if spec.hypervisor else ''}).",
        "#",
        "# Every measured value says what was measured; the raw measurements, the CPU model and the",
        "# library versions are in the `calibration:` block at the end. Re-run to refresh:",
        "#   wpsim calibrate --out FILE   (without --out: this computer's entry in the cache, `-m host`)",
        "# Cache and DRAM latencies are not used by the cost model and are not measured (numpy has",
        "# no dependent-load loop); they keep their previous source. Units: s, B, B/s, Hz.",
        "kind: cpu",
        f'name: "this host (calibrated {date}): {spec.model}, '
        f'{spec.sockets * spec.cores_per_socket} cores"',
        f"sockets: {spec.sockets}  # spec: {spec.topology_source}",
        f"cores_per_socket: {spec.cores_per_socket}  # spec: {spec.topology_source}",
        f"clock_hz: {_fmt(compute.clock)}  # {source.measured(compute.clock_note)}",
        "peak_flops_per_cycle:",
        f"  float32: {per_cycle['float32']:.0f}  # spec: cpu flags, {compute.rule}",
        f"  float64: {per_cycle['float64']:.0f}  # spec: cpu flags, half the fp32 lanes",
    ]


def _cache_section(
    spec: CpuSpec,
    raw: dict[str, Any],
    clock: float,
    latency: Callable[[str, float, str], tuple[float, str]],
    source: _Source,
) -> tuple[list[str], list[tuple[Any, float, str]], float]:
    """Each cache's bandwidth (a level is at most as fast as the one inside it) and hit curve;
    returns the lines, ``(cache, bandwidth, how)`` by level, and the last level's bandwidth."""
    bw = raw["bandwidth"]
    levels = []
    previous = math.inf
    for cache in spec.caches:
        m = bw[cache.name]
        if cache.scope == "core":
            value = m["gemv_Bps"]
            how = (
                f"batched GEMV read bandwidth, working set {m['working_set_bytes'] / 1024:.0f} KiB "
                f"(streaming dot: {_si(m['stream_Bps'], 'B/s')})"
            )
        else:
            value = m["gemv_Bps"]
            how = (
                f"GEMV read bandwidth, working set {m['working_set_bytes'] / 2**20:.0f} MiB "
                f"(a quarter: the level is shared) "
                f"(streaming dot: {_si(m['stream_Bps'], 'B/s')})"
            )
        if value > previous:
            how += f"; {_si(value, 'B/s')} clamped to the level inside it"
            value = previous
        previous = value
        levels.append((cache, value, how))
    cycles = {1: 4, 2: 14, 3: 50}
    lines = ["caches:"]
    for cache, value, how in levels:
        lat_value, lat_comment = latency(
            f"caches.{cache.name}",
            cycles.get(cache.level, 50) / clock,
            f"assumption: not measured (unused by the cost model): "
            f"{cycles.get(cache.level, 50)} cycles at the clock",
        )
        lines += [
            f"  - name: {cache.name}",
            f"    scope: {cache.scope}",
            f"    size_bytes: {cache.size_bytes}  # spec: {cache.source}",
            f"    bandwidth_Bps: {_fmt(value)}  # {source.measured(how)}",
            f"    latency_s: {_fmt(lat_value)}  # {lat_comment}",
        ]
        reuse = raw.get("reuse_rates")
        if reuse and reuse["level"] == cache.name:
            lines.append(
                "    hit_curve:  # [reuse distance / size, fraction served here]: 1/rate = f/hi + "
                "(1-f)/lo of two matrices x vector re-read"
            )
            for ratio, fraction in hit_curve(reuse["Bps_by_ratio"]):
                rate = reuse["Bps_by_ratio"][f"{ratio:g}"]
                lines.append(
                    f"      - [{ratio:g}, {fraction:g}]  # "
                    + source.measured(
                        f"working set {ratio:g} x {cache.size_bytes} B, {_si(rate, 'B/s')}"
                    )
                )
    return lines, levels, previous


def _memory_section(
    dram: dict[str, Any],
    previous: float,
    latency: Callable[[str, float, str], tuple[float, str]],
    source: _Source,
) -> tuple[list[str], dict[str, float]]:
    """DRAM: one core's bandwidth (at most the last cache's) and the socket's, all cores at once."""
    solo_rounds = dram.get("solo_rounds_Bps") or []
    per_core = min(median([dram["gemv_Bps"], *solo_rounds]), previous)
    rounds = dram.get("concurrent_rounds_Bps") or [[per_core]]
    socket_bw = max(median([sum(r) for r in rounds]), per_core)
    n_conc = len(rounds[0])
    mem_lat, mem_lat_note = latency(
        "memory", 1.0e-7, "assumption: not measured (unused by the cost model): 100 ns"
    )
    lines = [
        "memory:",
        f"  bandwidth_Bps: {_fmt(socket_bw)}  # "
        + source.measured(
            f"GEMV read of {dram['working_set_bytes'] / 2**20:.0f} MiB on {n_conc} cores at once, sum, median of {len(rounds)} round(s)"
        ),
        f"  per_core_bandwidth_Bps: {_fmt(per_core)}  # "
        + source.measured(
            f"GEMV read of {dram['working_set_bytes'] / 2**20:.0f} MiB on one core, median of {1 + len(solo_rounds)} run(s) alternating with the all-core runs"
        ),
        f"  latency_s: {_fmt(mem_lat)}  # {mem_lat_note}",
    ]
    return lines, {"dram_per_core_Bps": per_core, "dram_socket_Bps": socket_bw}


def _handoff_section(
    raw: dict[str, Any], previous: float, source: _Source
) -> tuple[list[str], dict[str, float]]:
    """Hand-off between cores: ping-pong latency, and bandwidth from the slope over payloads."""
    cores = raw.get("cores", [0])
    handoff = raw.get("handoff_s")
    if handoff:
        lat = float(handoff["0"])
        points = [(int(s), t - lat) for s, t in handoff.items() if int(s) > 0]
        denom = sum(s * d for s, d in points)
        hand_bw = sum(s * s for s, _ in points) / denom if denom > 0 else previous
        lat_note = source.measured(
            f"shared-memory ping-pong cores {cores[0]}-{cores[1]}, half round trip, 0 B"
        )
        bw_note = source.measured(
            "ping-pong slope over 4-256 KiB payloads (producer store + consumer load)"
        )
    else:
        lat, hand_bw = 0.0, previous
        lat_note = "unused: one core, no hand-off between cores"
        bw_note = "unused: one core, no hand-off between cores"
    cross = raw.get("handoff_cross_socket_s")
    if cross:
        cross_lat = max(float(cross["0"]), lat)
        cross_note = source.measured("ping-pong between sockets, half round trip, 0 B")
    else:
        cross_lat = lat
        cross_note = "unused (one socket): set to the within-socket hand-off latency"
    lines = [
        "handoff:",
        f"  latency_s: {_fmt(lat)}  # {lat_note}",
        f"  bandwidth_Bps: {_fmt(hand_bw)}  # {bw_note}",
        f"  cross_socket_latency_s: {_fmt(cross_lat)}  # {cross_note}",
    ]
    return lines, {"handoff_latency_s": lat, "handoff_bandwidth_Bps": hand_bw}


def _barrier_section(
    raw: dict[str, Any], handoff_latency_s: float, source: _Source
) -> tuple[list[str], float | None]:
    """The barrier: the measured 2-process barrier, one tree level of hand-offs per doubling."""
    barrier2 = (raw.get("barrier_s") or {}).get("2")
    if barrier2 is not None:
        per_doubling = min(2 * handoff_latency_s, barrier2)
        base = barrier2 - per_doubling
        base_note = (
            f"estimate: measured 2-process flag barrier {_us(barrier2)} ({source.tag('barrier')})"
            f" minus one tree level"
        )
        dbl_note = (
            "estimate: 2 x measured hand-off latency per tree level (arrival + release), at most "
            "the measured 2-process barrier"
        )
    else:
        per_doubling, base = 0.0, 0.0
        base_note = dbl_note = "unused: one core, no barrier"
    lines = [
        "barrier:",
        f"  base_s: {_fmt(base)}  # {base_note}",
        f"  per_doubling_s: {_fmt(per_doubling)}  # {dbl_note}",
    ]
    return lines, barrier2


def _dispatch_section(dispatch: dict[str, Any], source: _Source) -> tuple[list[str], float]:
    """The executor's dispatch overhead: task by task, in a sequence, with every core busy, and
    for a group of every core of the socket."""
    measured = source.measured
    dispatch_s = float(dispatch["dispatch_s"])
    if dispatch["method"] == "kernels.executor":
        graphs = dispatch["graphs"]
        dispatch_note = measured(
            "kernels.executor, 1 worker, sequential, every task through the coordinator: "
            "makespan per task - in-process cell time, median over one-layer LSTM graphs H="
            + ",".join(str(int(g["hidden"])) for g in graphs)
            + " ("
            + ", ".join(_us(g["dispatch_s"]) for g in graphs)
            + f"; trivial H=1 cells: {_us(dispatch['trivial']['dispatch_s'])})"
        )
    else:
        dispatch_note = measured(f"dispatch microbenchmark: {dispatch['method']}")
    lines = [f"dispatch_overhead_s: {_fmt(dispatch_s)}  # {dispatch_note}"]
    sequence = dispatch.get("sequence")
    if sequence:
        how = (
            "kernels.executor, 1 worker, sequential, the order handed out at once: makespan "
            "per task - in-process cell time"
        )
        points = sorted(
            (g["cell_in_process_s"], g["dispatch_s"], g["hidden"]) for g in sequence["graphs"]
        )
        lines.append(
            "dispatch_overhead_sequence_s:  # [task s, overhead s] by the "
            "in-process time of the cell"
        )
        for task_s, overhead_s, hidden in points:
            lines.append(
                f"  - [{_fmt(task_s)}, {_fmt(overhead_s)}]  # "
                + measured(f"{how}, one-layer LSTM H={int(hidden)}")
            )
    busy = dispatch.get("all_cores_busy")
    if busy:
        workers = int(busy["workers"])
        how = (
            f"kernels.executor, {workers} workers on {workers} cores (independent instances), "
            "one-layer LSTM: makespan x workers / tasks - in-process cell"
        )

        def runs_note(point: dict[str, Any]) -> str:
            runs = ", ".join(f"H={int(r['hidden'])} {_us(r['dispatch_s'])}" for r in point["runs"])
            return f"median cell {_us(point['task_s'])}, median of {runs}"

        busy_points = busy["points"]
        if len(busy_points) == 1:
            lines.append(
                f"dispatch_overhead_busy_s: {_fmt(busy_points[0]['dispatch_s'])}  # "
                + measured(f"{how}: {runs_note(busy_points[0])}")
            )
        else:
            lines.append(
                "dispatch_overhead_busy_s:  # every core busy: [task s, overhead s] by the "
                "task's own time (linear between, flat outside)"
            )
            for point in busy_points:
                lines.append(
                    f"  - [{_fmt(point['task_s'])}, {_fmt(point['dispatch_s'])}]  # "
                    + measured(f"{how}, {point['kind']}: {runs_note(point)}")
                )
    group = dispatch.get("whole_socket_group")
    group_points = dispatch.get("whole_socket_group_points") or ([group] if group else [])

    def group_note(point: dict[str, Any]) -> str:
        return measured(
            f"kernels.executor, layerwise on {int(point['workers'])} workers, one-layer "
            f"{point.get('cell', 'rnn').upper()} H={int(point['hidden'])} (every step one task "
            f"split across the workers): makespan / tasks - a member's product and step in process "
            f"{_us(point['cell_in_process_s'])}, median of "
            + ", ".join(_us(v) for v in point["runs_dispatch_s"])
        )

    if len(group_points) == 1:
        lines.append(
            f"dispatch_overhead_group_s: {_fmt(group_points[0]['dispatch_s'])}  # "
            + group_note(group_points[0])
        )
    elif group_points:
        lines.append(
            "dispatch_overhead_group_s:  # [member's time s, overhead s] by a member's own time"
        )
        for point in sorted(group_points, key=lambda p: p["cell_in_process_s"]):
            lines.append(
                f"  - [{_fmt(point['cell_in_process_s'])}, {_fmt(point['dispatch_s'])}]  # "
                + group_note(point)
            )
    return lines, dispatch_s


def _kernel_call_lines(overheads: dict[str, Any], source: _Source) -> list[str]:
    """A kernel call's fixed costs: per task (the intercept) and per step (the slope)."""
    lines: list[str] = []
    for key, part, what in (
        ("task_overhead_s", "task_s", "the intercept (a task's fixed part)"),
        ("step_overhead_s", "step_s", "the slope (per step)"),
    ):
        if overheads:
            lines.append(f"{key}:")
        for cell, parts in sorted(overheads.items()):
            lines.append(
                f"  {cell}: {_fmt(float(f'{parts[part]:.4g}'))}  # "
                + source.measured(
                    f"{cell} cell task (kernels.tasks.forward_task), products a fill, H=4, batch 1, "
                    f"1 and 32 steps per chunk: {what}"
                )
            )
    return lines


def _efficiency_section(
    raw: dict[str, Any], compute: _Compute, overheads: dict[str, Any], source: _Source
) -> tuple[list[str], list[tuple[int, tuple[float, int]]], float, dict[str, float]]:
    """GEMM efficiency by shape (each cell's own, with the weights hot), the product's fixed
    cost, and the element-wise work; returns the lines, the best efficiency by n, the element-wise
    efficiency and its value by shape."""
    measured = source.measured
    peak, gemm_rates = compute.peak, compute.gemm_rates
    # GEMM efficiency: best over H for each n (the compute ceiling)
    by_n: dict[int, tuple[float, int]] = {}
    for (n, h), rate in gemm_rates.items():
        frac = min(rate / peak, 1.0)
        if n not in by_n or frac > by_n[n][0]:
            by_n[n] = (frac, h)
    table = sorted(by_n.items())
    # element-wise: geometric mean over every cell's shapes
    elem_fracs = {}
    for key, seconds in raw["elementwise_s_per_step"].items():
        cell, h, b = key.split(",")
        elem_fracs[key] = (
            elementwise_flops_per_unit(get_cell(cell), int(h), int(h))
            * int(h)
            * int(b)
            / (seconds * peak)
        )
    elementwise = math.exp(sum(math.log(f) for f in elem_fracs.values()) / len(elem_fracs))
    elementwise = min(max(elementwise, 1e-6), 1.0)
    lines = [
        "efficiency:",
        "  gemm_by_n:  # fraction of clock x flops/cycle: X(n,H) @ W(4H,H)^T, best over H (compute ceiling)",
    ]
    for n, (frac, h) in table:
        lines.append(
            f"    - [{n}, {_fmt(round(frac, 4))}]  # "
            + measured(
                f"GEMM n={n}, best at H={h} of H={','.join(str(k) for k in sorted({k[1] for k in gemm_rates}))}"
            )
        )
    grid_hs = ",".join(str(h) for h in sorted({h for _, h in gemm_rates}))
    lines.append(
        "  gemm_by_n_h:  # [n, H, fraction of clock x flops/cycle]: X(n,H) @ W(4H,H)^T at each H"
    )
    for (n, h), rate in sorted(gemm_rates.items()):
        lines.append(
            f"    - [{n}, {h}, {_fmt(round(min(rate / peak, 1.0), 4))}]  # "
            + measured(f"GEMM n={n} H={h} (of H={grid_hs}), weights hot")
        )
    by_cell = raw.get("gemm_s_by_cell") or {}
    if by_cell:
        lines.append(
            "  gemm_by_n_h_by_cell:  # the same with each cell's own W(G*H,H) (lstm: gemm_by_n_h)"
        )
    for cell, seconds_by_key in sorted(by_cell.items()):
        lines.append(f"    {cell}:")
        for (n, h), rate in sorted(
            gemm_rates_by_shape(seconds_by_key, gate_count(get_cell(cell))).items()
        ):
            lines.append(
                f"      - [{n}, {h}, {_fmt(round(min(rate / peak, 1.0), 4))}]  # "
                + measured(f"GEMM n={n} H={h}, W({gate_count(get_cell(cell))}H,H)")
            )
    hot_by_cell = raw.get("gemm_s_hot") or {}
    if hot_by_cell:
        hot_kib = int(raw["gemm_hot_bytes"]) // 1024
        lines.append(
            f"  gemm_by_n_h_hot:  # the same with W's rows up to {hot_kib} KiB (the weights hot), "
            "for a product whose weights on one core fit its largest private cache"
        )
    for cell, hot_seconds in sorted(hot_by_cell.items()):
        streamed = by_cell.get(cell) or raw["gemm_s"]
        lines.append(f"    {cell}:")
        for (n, h), rate in sorted(
            gemm_rates_by_shape({**streamed, **hot_seconds}, gate_count(get_cell(cell))).items()
        ):
            how = (
                f"timed on the rows of W({gate_count(get_cell(cell))}H,H) that fit {hot_kib} KiB"
                if f"{n},{h}" in hot_seconds
                else f"W({gate_count(get_cell(cell))}H,H) fits {hot_kib} KiB: as gemm_by_n_h"
            )
            lines.append(
                f"      - [{n}, {h}, {_fmt(round(min(rate / peak, 1.0), 4))}]  # "
                + measured(f"GEMM n={n} H={h}, {how}")
            )
    fixed_points = raw.get("product_fixed_s")
    if fixed_points:
        fixed_s = max(0.0, median(list(fixed_points.values())))
        lines.append(
            f"  product_fixed_s: {_fmt(fixed_s)}  # "
            + measured(
                "2 t(half the rows) - t(all rows) of X(B,H) @ W(G*H,H)^T, median over [G, H, B] "
                + ", ".join(f"[{k}]" for k in fixed_points)
                + f" (range {min(fixed_points.values()) * 1e6:.2f}-"
                f"{max(fixed_points.values()) * 1e6:.2f} us)"
            )
        )
    lines += [
        f"  elementwise: {_fmt(round(elementwise, 5))}  # "
        + measured(
            f"cell gate math, geometric mean over {len(elem_fracs)} shapes of "
            f"{len({key.split(',')[0] for key in elem_fracs})} cells "
            f"(range {min(elem_fracs.values()):.3g}-{max(elem_fracs.values()):.3g})"
        ),
        "  elementwise_step_s:  # by cell, [H, B, seconds]: one step's gate math (forward cell tasks)",
    ]
    net_grid = elementwise_grid(raw["elementwise_s_per_step"], overheads, ELEM_STEPS)
    for cell, points in net_grid.items():
        lines.append(f"    {cell}:")
        for h, b, seconds in points:
            lines.append(
                f"      - [{h}, {b}, {_fmt(seconds)}]  # "
                + measured(
                    f"{cell} cell task (kernels.tasks.forward_task), products a fill, H={h}, batch {b}, "
                    f"per step of {ELEM_STEPS}, less task_ and step_overhead_s"
                )
            )
    return lines, table, elementwise, elem_fracs


def _corun_section(corun: dict[str, Any] | None, source: _Source) -> tuple[list[str], float]:
    """The co-running slowdown: a cell on one core against the same on every core at once."""
    if corun:
        busy = len(corun["cores"])
        corun_value = max(corun["slowdown"] - 1.0, 0.0) / max(busy - 1, 1)
        corun_note = source.measured(
            f"LSTM cell H={corun['hidden']} on 1 core vs {busy} at once: slowdown "
            f"{corun['slowdown']:.3f}x, minus 1, per additional core"
        )
    else:
        corun_value = 0.0
        corun_note = "unused: one core, nothing co-runs"
    return [f"corun_slowdown_per_core: {_fmt(round(corun_value, 4))}  # {corun_note}"], corun_value


def _elementwise_fit(elementwise_s_per_step: dict[str, float]) -> dict[str, dict[str, float]]:
    """Recorded only: per-step time = intercept + slope * H * B, by cell (numpy's per-call
    overhead is the intercept, which a flops-proportional efficiency cannot express)."""
    elem_fit = {}
    for cell in sorted({key.split(",")[0] for key in elementwise_s_per_step}):
        pts = [
            (int(k.split(",")[1]) * int(k.split(",")[2]), t)
            for k, t in elementwise_s_per_step.items()
            if k.startswith(cell + ",")
        ]
        if len(pts) >= 2:
            mx = sum(x for x, _ in pts) / len(pts)
            my = sum(y for _, y in pts) / len(pts)
            sxx = sum((x - mx) ** 2 for x, _ in pts)
            slope = sum((x - mx) * (y - my) for x, y in pts) / sxx if sxx else 0.0
            elem_fit[cell] = {"intercept_s": my - slope * mx, "s_per_unit": slope}
    return elem_fit


def _calibration_block(
    spec: CpuSpec,
    raw: dict[str, Any],
    date: str,
    values: dict[str, float],
    compute: _Compute,
    elem_fracs: dict[str, float],
) -> list[str]:
    """The ``calibration:`` block: where and how it was measured, the derived values, the raw
    measurements."""
    try:  # a YAML date, so that no value of the file is a string starting with a digit
        when: Any = _dt.date.fromisoformat(date)
    except ValueError:
        when = date
    peak = compute.peak
    block = {
        "date": when,
        "tool": "wpsim calibrate",
        "cpu_model": label(spec.model, "CPU"),
        "cpu_vendor": spec.vendor,
        "hypervisor": spec.hypervisor or "none",
        "cpu_mhz_reported": spec.mhz,
        "cores_measured": raw.get("cores"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "numpy": label(str(raw.get("numpy")), "numpy"),
        "blas": raw.get("threadpool_info"),
        "blas_threads_per_process": 1,
        "quick": bool(raw.get("quick", False)),
        "loadavg_1min": raw.get("loadavg_1min"),
        "derived": {k: float(v) for k, v in values.items()},
        "gemm_efficiency_by_n_H": {
            f"{n},{h}": round(min(r / peak, 1.0), 4)
            for (n, h), r in sorted(compute.gemm_rates.items())
        },
        "elementwise_efficiency_by_shape": {
            k: float(f"{v:.4g}") for k, v in sorted(elem_fracs.items())
        },
        "elementwise_step_fit": _elementwise_fit(raw["elementwise_s_per_step"]),
        "raw": _round_floats(raw),
    }
    body = yaml.safe_dump(block, sort_keys=False, default_flow_style=None, width=100)
    return ["calibration:", *("  " + line for line in body.rstrip("\n").splitlines())]


def _runtime_lines() -> list[str]:
    """How the runtime whose overheads were measured splits its work (with the kernels present:
    :mod:`kernels.executor`; otherwise nothing, and the machine file keeps the defaults)."""
    try:
        from kernels.executor import input_split_by_time_max_bytes
        from kernels.products import gemv_max_batch
    except ImportError:
        return []
    return [
        f"input_split_by_time_max_bytes: {input_split_by_time_max_bytes()}  # configuration: "
        "kernels.executor (a split task projects its inputs over time steps while W_ih has at "
        "most this many bytes, else by gate rows)",
        f"recurrent_gemv_max_batch: {gemv_max_batch()}  # configuration: kernels.products."
        "gemv_max_batch() (the executor's one-core recurrent product runs one GEMV per batch row "
        "up to this batch)",
        "elementwise_split_across_helpers: false  # configuration: kernels.executor runs the "
        "whole element-wise update of a split step on every member (no second barrier), or an "
        "element-wise recurrence on the lead alone",
    ]


def _round_floats(node: Any) -> Any:
    if isinstance(node, float):
        return float(f"{node:.6g}")
    if isinstance(node, dict):
        return {k: _round_floats(v) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_round_floats(v) for v in node]
    return node
