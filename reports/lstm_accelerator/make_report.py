"""The three modes of a multi-core LSTM accelerator (Peng, Shi, Zhang, Irving, MCSoC 2019).

One two-core design (``hw_configs/lstm_accel_2core.yaml``), one set of parameters for all three
modes: multi-programming (``multiprogram``: an independent model per core), multithreading
(``pipeline``: layers mapped to cores, pipelined over time) and helper-core (``helper``: both
cores share every cell), each against the single-core design (``sequential`` on one core).
Published: 1.98x, 1.91x and 1.88x.

Writes ``workloads.csv``, ``headline.csv``, ``helper_step.csv``, ``sweep_cores.csv``,
``sweep_buffer.csv``, ``sweep_seq_len.csv``, ``lstm_accelerator.png`` and ``README.md`` into
``out_dir`` (default: this folder). Run: ``python reports/lstm_accelerator/make_report.py``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from wpsim.machines import load_machine, resolve_machine_path
from wpsim.machines.accelerator import AcceleratorMachine
from wpsim.model.workload import Workload
from wpsim.policies import get_policy
from wpsim.sim import accelerator as accel

HERE = Path(__file__).resolve().parent
PUBLISHED = {"multiprogram": 1.98, "pipeline": 1.91, "helper": 1.88}
MODE_NAMES = {
    "multiprogram": "multi-programming",
    "pipeline": "multithreading",
    "helper": "helper-core",
}
#: LSTM models of a few layers, in the spirit of the paper's speech and language-model workloads.
#: fp16, batch 1 (an accelerator serving one stream). The first four fit one core's 4 MiB buffer
#: layer by layer; ptb-2x650 (PTB "medium") does not.
WORKLOADS = {
    "speech-3x320": dict(layers=3, hidden=320, input=40, seq_len=300),
    "lm-2x256": dict(layers=2, hidden=256, input=256, seq_len=100),
    "lm-4x256": dict(layers=4, hidden=256, input=256, seq_len=100),
    "lm-2x384": dict(layers=2, hidden=384, input=384, seq_len=100),
    "ptb-2x650": dict(layers=2, hidden=650, input=650, seq_len=35),
}
HEADLINE_WORKLOADS = ["speech-3x320", "lm-2x256", "lm-4x256", "lm-2x384"]
BUFFERS_MIB = [0.25, 0.5, 1, 2, 4, 8, 16]
CORES = [1, 2, 3, 4, 5, 6, 7, 8]
SEQ_LENS = [10, 30, 100, 300, 1000, 3000, 10000]


def workload(name: str, **override) -> Workload:
    return Workload(name=name, cell="lstm", dtype="float16", **{**WORKLOADS[name], **override})


def mode_speedup(w: Workload, m: AcceleratorMachine, mode: str, warm: bool,
                 engine: str = "simulate") -> float:  # fmt: skip
    """Speed-up of ``mode`` on all of ``m``'s cores over the single-core design.

    Multi-programming runs one instance per core (throughput against those instances one after
    the other on one core); the other two modes run one instance.
    """
    instances = m.cores if mode == "multiprogram" else 1
    policy = get_policy(mode, instances=instances)
    run = accel.simulate if engine == "simulate" else accel.predict
    return run(w, m, policy, warm=warm).speedup


def helper_step_parts(w: Workload, m: AcceleratorMachine) -> list[dict[str, object]]:
    """One steady-state cell of layer 1 on one core and split over two helper cores."""
    plan = accel._plan(w, get_policy("helper"), 1, "cell")
    tid = w.n_chunks(1) + 1  # layer 1, step 1
    model = accel.AccelCostModel(m, plan)
    rows = []
    for k in (1, 2):
        t = plan.tasks[tid]
        compute = model.compute_s(tid, k)
        vector = t.flops_elem / (k * m.vector_lanes * m.clock_hz)
        latency = m.mac_pipeline_latency_s
        sync = (m.barrier_s(k) + (k - 1) / k * w.batch * w.hidden * w.dtype_bytes
                / m.noc.bandwidth_Bps) if k > 1 else 0.0  # fmt: skip
        rows.append({
            "cores": k, "mac_ns": (compute - vector - latency) * 1e9, "vector_ns": vector * 1e9,
            "pipeline_latency_ns": latency * 1e9, "task_overhead_ns": m.task_overhead_s * 1e9,
            "barrier_and_gather_ns": sync * 1e9,
            "total_ns": (compute + m.task_overhead_s + sync) * 1e9,
        })  # fmt: skip
    return rows


def _write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()})


def main(out_dir: Path | None = None) -> None:
    """Write the data, the figure and the README of this reproduction into ``out_dir``."""
    out = Path(out_dir) if out_dir is not None else HERE
    out.mkdir(parents=True, exist_ok=True)
    m = load_machine(resolve_machine_path("lstm_accel_2core"))

    wl_rows = []
    for name in WORKLOADS:
        w = workload(name)
        per_layer = max(w.layer_weight_bytes(i) for i in range(w.layers))
        wl_rows.append({
            "workload": name, "layers": w.layers, "hidden": w.hidden, "input": w.input,
            "seq_len": w.seq_len, "dtype": w.dtype, "largest_layer_MB": per_layer / 1e6,
            "fits_one_core_buffer": per_layer <= m.weight_buffer.size_bytes,
        })  # fmt: skip
    _write(out / "workloads.csv", wl_rows)

    headline = []
    for name in WORKLOADS:
        w = workload(name)
        for warm in (True, False):
            row = {"workload": name, "start": "warm" if warm else "cold"}
            for mode in PUBLISHED:
                row[mode] = mode_speedup(w, m, mode, warm)
            row["ideal_pipeline"] = accel.simulate(w, m, "pipeline", cost="ideal").speedup
            headline.append(row)
    _write(out / "headline.csv", headline)

    parts = helper_step_parts(workload("lm-2x256"), m)
    _write(out / "helper_step.csv", parts)

    core_rows = []
    for name in ("lm-4x256", "speech-3x320"):
        w = workload(name)
        for n in CORES:
            mn = m.with_cores(n)
            row = {"workload": name, "cores": n}
            for mode in PUBLISHED:
                row[mode] = mode_speedup(w, mn, mode, warm=True)
            core_rows.append(row)
    _write(out / "sweep_cores.csv", core_rows)

    buffer_rows = []
    for name in ("ptb-2x650", "lm-4x256"):
        w = workload(name)
        for mib in BUFFERS_MIB:
            mb = m.with_weight_buffer(int(mib * 2**20))
            row = {"workload": name, "buffer_MiB": mib}
            single = accel.simulate(w, mb.with_cores(1), "sequential", warm=True)
            row["single_core_ms"] = single.makespan_s * 1e3
            for mode in PUBLISHED:
                row[mode] = mode_speedup(w, mb, mode, warm=True)
            buffer_rows.append(row)
    _write(out / "sweep_buffer.csv", buffer_rows)

    seq_rows = []
    for name in ("lm-2x256", "speech-3x320"):
        for seq_len in SEQ_LENS:
            w = workload(name, seq_len=seq_len)
            row = {"workload": name, "seq_len": seq_len}
            for mode in PUBLISHED:
                row[mode] = mode_speedup(w, m, mode, warm=False, engine="predict")
            seq_rows.append(row)
    _write(out / "sweep_seq_len.csv", seq_rows)

    _figure(out / "lstm_accelerator.png", headline, core_rows, buffer_rows, seq_rows)
    _readme(out / "README.md", m, wl_rows, headline, parts, core_rows, buffer_rows, seq_rows)


def _figure(path, headline, core_rows, buffer_rows, seq_rows) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    colors = {"multiprogram": "C0", "pipeline": "C1", "helper": "C2"}

    ax = axes[0][0]
    rows = [r for r in headline if r["workload"] in HEADLINE_WORKLOADS]
    names = HEADLINE_WORKLOADS
    width = 0.13
    for i, mode in enumerate(PUBLISHED):
        for j, start in enumerate(("warm", "cold")):
            values = [next(r[mode] for r in rows if r["workload"] == n and r["start"] == start)
                      for n in names]  # fmt: skip
            offset = (2 * i + j - 2.5) * width
            ax.bar([k + offset for k in range(len(names))], values, width, color=colors[mode],
                   alpha=1.0 if start == "warm" else 0.45,
                   label=f"{MODE_NAMES[mode]} ({start})")  # fmt: skip
        ax.axhline(PUBLISHED[mode], color=colors[mode], ls="--", lw=1)
    ax.set_xticks(range(len(names)), names, fontsize=8)
    ax.set_ylim(1.0, 2.1)
    ax.set_ylabel("speed-up over one core")
    ax.set_title("two cores (dashed: published 1.98 / 1.91 / 1.88)")
    ax.legend(fontsize=6, ncol=3, loc="lower center")

    ax = axes[0][1]
    for name, style in (("lm-4x256", "-"), ("speech-3x320", ":")):
        for mode in PUBLISHED:
            rows = [r for r in core_rows if r["workload"] == name]
            ax.plot([r["cores"] for r in rows], [r[mode] for r in rows], style, marker="o", ms=3,
                    color=colors[mode], label=f"{MODE_NAMES[mode]}, {name}")  # fmt: skip
    ax.plot(CORES, CORES, color="grey", lw=0.6)
    ax.set_xlabel("cores")
    ax.set_ylabel("speed-up over one core (warm)")
    ax.set_title("core count: multithreading stops at the layer count")
    ax.legend(fontsize=6)

    ax = axes[1][0]
    for name, style in (("ptb-2x650", "-"), ("lm-4x256", ":")):
        rows = [r for r in buffer_rows if r["workload"] == name]
        for mode in PUBLISHED:
            ax.plot([r["buffer_MiB"] for r in rows], [r[mode] for r in rows], style, marker="o",
                    ms=3, color=colors[mode], label=f"{MODE_NAMES[mode]}, {name}")  # fmt: skip
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.axhline(2, color="grey", lw=0.6)
    ax.set_xlabel("weight buffer per core (MiB)")
    ax.set_ylabel("speed-up over one core, same buffer")
    ax.set_title("buffer size: helper cores win when only half a layer fits")
    ax.legend(fontsize=6)

    ax = axes[1][1]
    for name, style in (("lm-2x256", "-"), ("speech-3x320", ":")):
        rows = [r for r in seq_rows if r["workload"] == name]
        for mode in PUBLISHED:
            ax.plot([r["seq_len"] for r in rows], [r[mode] for r in rows], style, marker="o",
                    ms=3, color=colors[mode], label=f"{MODE_NAMES[mode]}, {name}")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("sequence length (cold start: weights loaded from DRAM)")
    ax.set_ylabel("speed-up over one core")
    ax.set_title("cold start: the first load of each layer is shared DRAM time")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _readme(path, m, wl_rows, headline, parts, core_rows, buffer_rows, seq_rows) -> None:
    def get(name, start, mode):
        return next(r[mode] for r in headline if r["workload"] == name and r["start"] == start)

    best = {mode: max(get(n, "warm", mode) for n in HEADLINE_WORKLOADS) for mode in PUBLISHED}
    best_cold = {mode: max(get(n, "cold", mode) for n in HEADLINE_WORKLOADS) for mode in PUBLISHED}
    head = "\n".join(
        f"| {MODE_NAMES[mode]} (`{mode}`) | {PUBLISHED[mode]:.2f}x | {best[mode]:.2f}x | "
        f"{best_cold[mode]:.2f}x |"
        for mode in PUBLISHED
    )
    per_workload = "\n".join(
        f"| {r['workload']} | {r['start']} | {r['multiprogram']:.2f} | {r['pipeline']:.2f} "
        f"({r['ideal_pipeline']:.2f}) | {r['helper']:.2f} |"
        for r in headline
    )
    wl_table = "\n".join(
        f"| {r['workload']} | {r['layers']} | {r['hidden']} | {r['input']} | {r['seq_len']} | "
        f"{r['largest_layer_MB']:.2f} | {'yes' if r['fits_one_core_buffer'] else 'no'} |"
        for r in wl_rows
    )
    one, two = parts
    step_table = "\n".join(
        f"| {label} | {one[key]:.0f} | {two[key]:.0f} |"
        for label, key in (
            ("MAC array", "mac_ns"), ("vector unit (gates, state)", "vector_ns"),
            ("MAC pipeline fill", "pipeline_latency_ns"), ("task issue", "task_overhead_ns"),
            ("barrier + all-gather of h over the NoC", "barrier_and_gather_ns"),
            ("total", "total_ns"),
        )
    )  # fmt: skip
    fixed = (two["pipeline_latency_ns"] + two["task_overhead_ns"]
             + two["barrier_and_gather_ns"])  # fmt: skip
    cores_lm = {r["cores"]: r for r in core_rows if r["workload"] == "lm-4x256"}
    cores_sp = {r["cores"]: r for r in core_rows if r["workload"] == "speech-3x320"}
    buf = {r["buffer_MiB"]: r for r in buffer_rows if r["workload"] == "ptb-2x650"}
    buf_lm = {r["buffer_MiB"]: r for r in buffer_rows if r["workload"] == "lm-4x256"}
    seq = {r["seq_len"]: r for r in seq_rows if r["workload"] == "lm-2x256"}
    seq_198 = min((t for t in SEQ_LENS if seq[t]["multiprogram"] >= 1.98), default=None)
    buffer_table = "\n".join(
        f"| {mib:g} | {buf[mib]['multiprogram']:.2f} | {buf[mib]['pipeline']:.2f} | "
        f"{buf[mib]['helper']:.2f} | {buf_lm[mib]['multiprogram']:.2f} | "
        f"{buf_lm[mib]['pipeline']:.2f} | {buf_lm[mib]['helper']:.2f} |"
        for mib in BUFFERS_MIB
    )
    core_table = "\n".join(
        f"| {n} | {cores_lm[n]['multiprogram']:.2f} | {cores_lm[n]['pipeline']:.2f} | "
        f"{cores_lm[n]['helper']:.2f} | {cores_sp[n]['pipeline']:.2f} | "
        f"{cores_sp[n]['helper']:.2f} |"
        for n in CORES
    )
    sp_pipe = get("speech-3x320", "warm", "pipeline")
    colds = [get(n, "cold", "multiprogram") for n in HEADLINE_WORKLOADS]
    cold_mp = (min(colds), max(colds))
    balanced_values = [
        get(n, "warm", "pipeline") for n in HEADLINE_WORKLOADS if n != "speech-3x320"
    ]
    balanced = (min(balanced_values), max(balanced_values))
    text = f"""# Multi-core LSTM accelerator: three modes on two cores (Peng et al., MCSoC 2019)

Regenerate: `python reports/lstm_accelerator/make_report.py` (or `wpsim report`). Files:
`make_report.py`, `workloads.csv`, `headline.csv`, `helper_step.csv`, `sweep_cores.csv`,
`sweep_buffer.csv`, `sweep_seq_len.csv`, `lstm_accelerator.png`. Model: `wpsim.sim.accelerator`
(a cost object for the same simpy engine as the CPU, `wpsim.sim.engine.run_plan`); modes: the
registered policies `multiprogram`, `pipeline` and `helper`; baseline: `sequential` on one core.

## The design (one set of parameters for all three modes)

`hw_configs/lstm_accel_2core.yaml`, every value with its reason on its line. Per core: a 16 x 16
fp16 MAC array at 1 GHz ({m.peak_flops_per_core("float16") / 1e9:.0f} GFLOP/s), a 16-lane vector
unit, a {m.weight_buffer.size_bytes / 2**20:.0f} MiB weight buffer read at the array's rate, a
{m.activation_buffer.size_bytes // 1024} KiB activation buffer; a NoC link of 32 B/cycle and 20
cycles; one shared DDR4 channel ({m.memory.bandwidth_Bps / 1e9:.0f} GB/s sustained). The paper
gives no parameter table in the material we have, so this is our design in its spirit: a
single-core LSTM engine of the E-PUR / ESE class, replicated. Nothing was adjusted per mode or to
approach the published numbers.

Workloads (LSTM, fp16, batch 1; "in the spirit of the paper": speech and language models of a
few layers):

| workload | layers | hidden | input | steps | largest layer (MB) | fits one core's buffer |
|---|---|---|---|---|---|---|
{wl_table}

![modes](lstm_accelerator.png)

## Headline: speed-up over the single-core design, two cores

"Up to" over the four workloads whose layers fit one core (as the paper's are presumably, all its
speed-ups being below 2). **Warm**: the weights were loaded before the timed run (an inference
server running many sequences; only capacity misses cost DRAM). **Cold**: one sequence from an
empty chip, each layer's first use reads its weights from DRAM.

| mode | published | model, warm (up to) | model, cold (up to) |
|---|---|---|---|
{head}

Per workload (pipeline in parentheses: the same schedule with idealised, flop-proportional costs):

| workload | start | multi-programming | multithreading | helper-core |
|---|---|---|---|---|
{per_workload}

### Why each mode misses 2x, from the mechanism

* **Multi-programming ({best["multiprogram"]:.2f}x warm vs 1.98x).** Each core runs its own model
  from its own buffer; once the weights are resident the two cores share nothing in the model, so
  the speed-up is exactly 2. The only coupling is the DRAM channel while both cores load weights:
  from a cold start the loads overlap and each takes twice as long ({cold_mp[0]:.2f}-{cold_mp[1]:.2f}x
  for these short sequences). The loss shrinks with sequence length: for lm-2x256 it reaches 1.98x at
  {seq_198 if seq_198 else "> 10000"} steps (`sweep_seq_len.csv`). The published 1.98x is thus
  the cold-start regime of a long input (about 3000 steps of this model), or a small shared cost
  (input streaming, host control) that the model does not have.
* **Multithreading ({best["pipeline"]:.2f}x warm vs 1.91x).** Three mechanisms, all visible:
  (1) pipeline fill and drain: with L layers on 2 cores the last layer starts one cell late
  (ideal-cost column: {headline[2]["ideal_pipeline"]:.3f} for 2 layers x 100 steps = 2T/(T+1));
  (2) the hand-off of h over the NoC every step (about 35 ns per cell); (3) load imbalance of the
  round-robin layer mapping: speech-3x320 puts layers 0 and 2 on core 0 (layer 0 is cheap, its
  input is 40 wide) and only layer 1 on core 1, so core 0 is the bottleneck: {sp_pipe:.2f}x. The
  published 1.91x sits between our balanced ({balanced[0]:.2f}-{balanced[1]:.2f}x) and unbalanced
  ({sp_pipe:.2f}x) models; the paper
  "properly schedules" layers, a mapping we do not reproduce (`pipeline` is round robin).
* **Helper-core ({best["helper"]:.2f}x warm vs 1.88x).** Splitting the rows halves the MAC and
  vector work but not the per-step fixed costs, and adds a barrier and an all-gather of h (one
  cell of lm-2x256's layer 1, `helper_step.csv`, in ns):

| part | one core | two helper cores |
|---|---|---|
{step_table}

  The {fixed:.0f} ns that do not shrink are {fixed / two["total_ns"]:.0%} of the helper step, hence
  {one["total_ns"] / two["total_ns"]:.2f}x for this cell; larger layers amortise them (lm-2x384:
  {get("lm-2x384", "warm", "helper"):.2f}x). This is the mode closest to the published value.

## Where each mode wins

**Core count** (warm, `sweep_cores.csv`; multi-programming runs one model per core):

| cores | lm-4x256 multi-prog. | lm-4x256 multithreading | lm-4x256 helper | speech multithreading | speech helper |
|---|---|---|---|---|---|
{core_table}

Multi-programming scales linearly (throughput of independent models, nothing shared once
resident). Multithreading is capped by the number of layers (4 and 3) and by the slowest core's
share of layers (3 cores on 4 layers: one core runs two layers, so 2x; 3 layers on 2 cores leave
one unbalanced). On one core `pipeline` still interleaves the layers step by step (oldest
wavefront first): lm-4x256's four 1.05 MB layers do not fit 4 MiB together, the LRU buffer
thrashes and every step streams from DRAM ({cores_lm[1]["pipeline"]:.2f}x), while the single-core
design runs layer by layer and keeps one layer resident: the schedule decides residency.
Helper-core keeps scaling the MAC work but not the per-step fixed costs, and the barrier and
all-gather grow with log2 of the group: it flattens early, for a single model's latency it is
still the only mode that uses more cores than layers.

**Weight buffer per core** (warm, 2 cores, speed-up over one core with the same buffer,
`sweep_buffer.csv`):

| buffer (MiB) | ptb-2x650 multi-prog. | ptb multithreading | ptb helper | lm-4x256 multi-prog. | lm-4x256 multithreading | lm-4x256 helper |
|---|---|---|---|---|---|---|
{buffer_table}

A ptb-2x650 layer (6.8 MB) does not fit a 4 MiB buffer: the single core streams it from DRAM at
every step, and so do multi-programming (both cores on one DRAM channel: about 1x) and
multithreading (one layer per core, still too large). Helper cores hold half a layer each
(3.4 MB): with 4 MiB the pair runs from its buffers and is **super-linear**
({buf[4]["helper"]:.0f}x: the single core is DRAM-bound). Below that even half a layer streams
and every mode is about the DRAM-bound 1x; from 8 MiB a whole layer fits one core and the three
modes return to their compute-bound values. lm-4x256 shows the same three regimes one step lower:
at 1 MiB its 1.05 MB layers stream on one core but fit as halves ({buf_lm[1]["helper"]:.0f}x for
helper cores); at 2 MiB multithreading interleaves two layers per core (2.1 MB), its LRU thrashes
and it is {1 / buf_lm[2]["pipeline"]:.0f}x slower than the single core running layer by layer,
while multi-programming needs one layer at a time and helper-core half of one.

In short: multi-programming wins for throughput on independent models that fit a core;
multithreading for one deep model whose layers balance over the cores and fit beside each other;
helper-core for one model whose layers do not fit a core, or for latency with more cores than
layers.
"""
    path.write_text(text)


if __name__ == "__main__":
    main()
