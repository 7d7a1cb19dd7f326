"""The GPU phase of ``benchmarks/at_scale.py``: cuDNN RNNs timed with CUDA events, and wpsim's
prediction for the same shapes from a machine file built beforehand from spec sheets.

For every shape of :data:`GRID` (hidden 256-2048, batch 1-64, 1-4 layers, seq 50-200), both cells
(``torch.nn.LSTM`` and ``torch.nn.GRU``) and each precision:

* ``forward``: ``module(x)`` under ``torch.no_grad()`` in eval mode (cuDNN's inference path);
* ``train``: one training step without the optimiser, ``module(x)``, a mean-square loss and
  ``backward()`` (gradients set to None before each step): wpsim's ``phase: training`` graph
  (forward, BPTT and weight gradients).

Each is warmed up twice (cuDNN chooses its plans), then timed ``iters`` times, one CUDA event
pair per iteration (``iters`` from the warm-up time: about 0.2 s of work, 3 to 20 times); the
row gives the median and the minimum. ``fp32`` runs with TF32 off (``allow_tf32 = False`` for
cuDNN and cuBLAS) so that the CUDA-core FP32 peak of the machine file applies; ``fp16`` runs the
module and input in half precision (tensor cores); ``tf32`` (not by default) is fp32 with TF32
on, measured only (the machine-file schema has no TF32 rate).

Predictions, after all the timings (they need no GPU, so they are written on a CPU-only machine
too, with the timings marked skipped; a tight budget leaves some empty, and the report recomputes
them all from the machine file anyway): inference by the closed forms of :func:`wpsim.accel.gpu.evaluate` for
``streams`` (cuDNN's layer overlap, the primary) and ``gemm`` (one per-step GEMM after the other),
training by the simulator for the same two policies (the closed forms cover inference); and the
regime of one recurrent step (:func:`wpsim.accel.gpu.gemm_step`: launch, compute and memory
times, and whether ``W_hh`` stays in L2), to name the mechanism of each miss.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

#: (hidden, batch, layers, seq_len): a centre (1024, 16, 2, 100), one parameter varied at a time,
#: then corners (launch-bound, DRAM-bound, compute-bound). Cheap and central shapes first.
GRID = [
    (1024, 16, 2, 100),
    (256, 16, 2, 100),
    (512, 16, 2, 100),
    (2048, 16, 2, 100),
    (1024, 1, 2, 100),
    (1024, 4, 2, 100),
    (1024, 64, 2, 100),
    (1024, 16, 1, 100),
    (1024, 16, 4, 100),
    (1024, 16, 2, 50),
    (1024, 16, 2, 200),
    (256, 1, 1, 50),
    (256, 64, 4, 200),
    (2048, 1, 4, 200),
    (2048, 64, 4, 200),
]
TINY_GRID = [(32, 1, 1, 5), (64, 2, 2, 5)]
CELLS = ("lstm", "gru")
DTYPE = {"fp32": "float32", "fp16": "float16", "tf32": "float32"}
TARGET_S = 0.2  # timed work per (shape, mode)
FIELDS = [
    "cell", "precision", "hidden", "batch", "layers", "seq_len", "mode", "status",
    "measured_median_s", "measured_min_s", "iters", "predicted_s", "predicted_gemm_s",
    "step_launch_s", "step_compute_s", "step_memory_s", "weights_level", "machine_file",
    "device", "wall_s",
]  # fmt: skip


def machine_file(device_name: str | None, override: str | None) -> Path:
    """``--gpu-machine``, else ``h200_sxm.yaml`` for an H200 and ``h100_sxm.yaml`` otherwise.

    >>> machine_file("NVIDIA H200", None).name, machine_file(None, None).name
    ('h200_sxm.yaml', 'h100_sxm.yaml')
    """
    if override:
        return Path(override)
    name = "h200_sxm.yaml" if device_name and "H200" in device_name.upper() else "h100_sxm.yaml"
    return ROOT / "hw_configs" / name


def predictions(machine, cell: str, precision: str, shape: tuple[int, ...]) -> dict[str, dict]:
    """wpsim's times for one shape: ``{mode: {predicted_s, predicted_gemm_s, step_*}}``."""
    from wpsim.accel.gpu import evaluate, gemm_step
    from wpsim.workload import Workload

    hidden, batch, layers, seq_len = shape
    w = Workload(cell=cell, layers=layers, hidden=hidden, input=hidden, seq_len=seq_len,
                 batch=batch, dtype=DTYPE[precision])  # fmt: skip
    step = gemm_step(machine, w)
    regime = {"step_launch_s": step["launch_s"], "step_compute_s": step["compute_s"],
              "step_memory_s": step["memory_s"], "weights_level": step["level"]}  # fmt: skip
    out = {}
    for mode, engine, workload in (("forward", "predict", w),
                                   ("train", "simulate", w.model_copy(update={"phase": "training"}))):  # fmt: skip
        if precision == "tf32":
            out[mode] = {"predicted_s": "", "predicted_gemm_s": "", **regime}
            continue
        out[mode] = {
            "predicted_s": evaluate(engine, workload, machine, "streams").makespan_s,
            "predicted_gemm_s": evaluate(engine, workload, machine, "gemm").makespan_s,
            **regime,
        }
    return out


def device_info(torch) -> dict[str, Any]:
    """What torch (and nvidia-smi, if present) say about the GPU: a record, not model input."""
    import subprocess

    props = torch.cuda.get_device_properties(0)
    info = {
        "gpu_name": props.name,
        "gpu_sms": props.multi_processor_count,
        "gpu_memory_bytes": props.total_memory,
        "gpu_capability": f"{props.major}.{props.minor}",
        "gpu_l2_bytes": getattr(props, "L2_cache_size", "unknown"),
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
    }
    query = "driver_version,clocks.sm,clocks.max.sm,clocks.mem,power.limit"
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20, check=False)  # fmt: skip
        info["nvidia_smi"] = f"{query}: {done.stdout.strip() or done.stderr.strip()}"
    except (OSError, subprocess.SubprocessError) as error:
        info["nvidia_smi"] = f"unavailable ({type(error).__name__})"
    return info


def time_cuda(torch, step: Callable[[], None]) -> tuple[float, float, int]:
    """Median and minimum seconds of ``step`` by CUDA events, and the iteration count."""
    for _ in range(2):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    step()
    torch.cuda.synchronize()
    guess = max(time.perf_counter() - start, 1e-6)
    iters = max(3, min(20, int(TARGET_S / guess)))
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(iters)]  # fmt: skip
    for begin, end in events:
        begin.record()
        step()
        end.record()
    torch.cuda.synchronize()
    times = [begin.elapsed_time(end) / 1e3 for begin, end in events]
    return statistics.median(times), min(times), iters


def measure(torch, cell: str, precision: str, shape: tuple[int, ...]) -> dict[str, tuple]:
    """cuDNN forward and training step of one shape: ``{mode: (median_s, min_s, iters)}``."""
    hidden, batch, layers, seq_len = shape
    tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    dtype = torch.float16 if precision == "fp16" else torch.float32
    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    module = cls(hidden, hidden, layers, device="cuda", dtype=dtype)  # initialised on the GPU
    x = torch.randn(seq_len, batch, hidden, device="cuda", dtype=dtype)
    results = {}
    module.eval()

    def forward() -> None:
        with torch.no_grad():
            module(x)

    results["forward"] = time_cuda(torch, forward)
    module.train()

    def train() -> None:
        module.zero_grad(set_to_none=True)
        out, _ = module(x)
        out.float().square().mean().backward()

    results["train"] = time_cuda(torch, train)
    return results


def run_gpu(args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    """Every (shape, cell, precision) until the deadline; one row per mode."""
    from at_scale import FILES, Budget, CsvTable

    from wpsim.hardware import load_machine

    precisions = [p.strip() for p in args.gpu_precisions.split(",") if p.strip()]
    unknown = [p for p in precisions if p not in DTYPE]
    if unknown:
        raise ValueError(f"--gpu-precisions: unknown {unknown}, expected some of {list(DTYPE)}")
    try:
        import torch

        cuda = torch.cuda.is_available()
        why = "" if cuda else f"skipped: no CUDA device (torch {torch.__version__})"
    except ImportError as error:
        torch, cuda, why = None, False, f"skipped: torch not importable ({error})"
    info = device_info(torch) if cuda else {}
    device = info.get("gpu_name", "none")
    path = machine_file(info.get("gpu_name"), args.gpu_machine)
    machine = load_machine(path)
    info["gpu_machine_file"] = str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
    table = CsvTable(Path(args.out) / FILES["gpu"], FIELDS)
    grid = (TINY_GRID if args.tiny else GRID)[: args.cases or None]
    units = [(shape, cell, p) for shape in grid for cell in CELLS
             for p in precisions]  # fmt: skip
    log(f"gpu: {len(units)} units ({len(grid)} shapes x {CELLS} x {precisions}) on {device}; "
        f"predictions from {info['gpu_machine_file']}" + (f"; timings {why}" if why else ""))  # fmt: skip
    budget = Budget(args.deadline)
    done = 0
    # first every timing (what only this machine can give), then the predictions, which need no
    # GPU and which the report recomputes anyway: a tight budget costs predictions, not timings
    for shape, cell, precision in units:
        if done and not budget.fits():
            log(f"gpu: stopping: the longest unit so far ({budget.longest_s:.1f} s) would not "
                "finish before the deadline")  # fmt: skip
            break
        started = time.time()
        measured: dict[str, tuple] = {}
        status = why or "measured"
        if cuda:
            try:
                measured = measure(torch, cell, precision, shape)
            except RuntimeError as error:  # e.g. out of memory, an unsupported cuDNN shape
                status = f"failed: {str(error).splitlines()[0][:200]}"
                torch.cuda.empty_cache()
        wall = time.time() - started
        hidden, batch, layers, seq_len = shape
        for mode in ("forward", "train"):
            median, low, iters = measured.get(mode, ("", "", ""))
            table.add({
                "cell": cell, "precision": precision, "hidden": hidden, "batch": batch,
                "layers": layers, "seq_len": seq_len, "mode": mode, "status": status,
                "measured_median_s": median, "measured_min_s": low, "iters": iters,
                "machine_file": info["gpu_machine_file"], "device": device, "wall_s": wall,
            })  # fmt: skip
        if measured:
            log(f"gpu: {cell} {precision} H{hidden} B{batch} L{layers} T{seq_len}: forward "
                f"{measured['forward'][0] * 1e3:.3f} ms, train {measured['train'][0] * 1e3:.3f} ms")  # fmt: skip
        budget.done(wall)
        done += 1
    predicted = 0
    by_unit: dict[tuple, dict[str, dict]] = {}  # both modes of a unit come from one call
    for row in table.rows:
        if not budget.fits(1.0):
            log("gpu: no time left for the remaining predictions (the report computes them)")
            break
        shape = tuple(row[k] for k in ("hidden", "batch", "layers", "seq_len"))
        key = (row["cell"], row["precision"], shape)
        if key not in by_unit:
            by_unit[key] = predictions(machine, *key)
        row.update(by_unit[key][row["mode"]])
        predicted += 1
    table.flush()
    log(f"gpu: {predicted} of {len(table.rows)} rows predicted from {info['gpu_machine_file']}")
    stopped = "" if done == len(units) else f"; stopped at budget after {done} of {len(units)}"
    state = "done" if cuda else why
    return {"status": f"{state}{stopped}", "rows": len(table.rows), "units_done": done,
            "units_total": len(units), "info": info}  # fmt: skip
