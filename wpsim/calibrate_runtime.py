"""``wpsim calibrate --runtime torch``: measure PyTorch's RNN runtime on this computer.

Writes a runtime file (:mod:`wpsim.runtime`) whose terms are this computer's PyTorch on one
thread: ``torch.nn.RNN``, ``LSTM`` and ``GRU`` with 8 inputs and 8 hidden units (the products
are a few hundred flops, so the time is the framework's), batch 1, at two sequence lengths and
one and two layers. For each cell::

    t(L, T) = call + L * (layer + T * step)      (one call of L layers over T steps)

so the per-step cost is the slope in ``T`` (one layer), the per-layer cost the difference
between two layers and one at the shorter length less the steps, and the per-call cost what
remains. Inference runs under ``torch.no_grad()`` (``call_s.forward``, ``layer_s.forward``,
``step_s.forward``); training times ``loss.backward()`` alone after a forward pass with autograd
(``call_s.backward_data``, ``layer_s.backward_data``, ``step_s.backward``); the extra cost of
recording the forward pass for autograd is counted in the backward terms (measured: the forward
pass with autograd less without), so a training run's total is right and its forward phase is
the inference forward pass. Each time is the median of repeated calls after a warm-up.

Since PyTorch 2.0 an fp32 LSTM on a CPU with oneDNN runs oneDNN's fused primitive, GRU and RNN
ATen's per-step loop: the measured LSTM step is accordingly cheaper. The file records the
computer, the PyTorch version and every raw time in its ``calibration`` block. It describes this
computer only: never commit it as everyone's default (``hw_configs/runtimes/host_*.yaml`` is
ignored by git).

Measured on "Intel Xeon (KVM), 2 cores", PyTorch 2.13.0+cpu, one thread (full run, 2 s): per
step forward RNN 3.1 us, LSTM 0.2 us (oneDNN's fused primitive), GRU 8.7 us (14 operators of
ATen's loop, 0.62 us each); backward RNN 18.4 us, LSTM 0 us, GRU 60 us; per call about 17 us.
``reports/framework_baselines`` compares these with the public figures of
``hw_configs/runtimes/pytorch_eager_cpu.yaml`` (1 us per operator, two per forward operator in
backward); they are not used for any other machine.
"""

from __future__ import annotations

import datetime as _dt
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import yaml

from wpsim.errors import WpsimError

CELLS = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
SIZE = 8  # inputs and hidden units: the products are negligible next to the framework's work
LENGTHS = (4, 36)  # sequence lengths of the slope
QUICK_LENGTHS = (2, 12)


def _median_s(call: Any, repeats: int) -> float:
    """Median seconds of ``call()`` over ``repeats`` runs, after two warm-up runs."""
    call()
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _times(torch: Any, cell: str, layers: int, steps: int, repeats: int) -> dict[str, float]:
    """Seconds of an inference call, a training forward pass and its backward pass."""
    module = getattr(torch.nn, CELLS[cell])(SIZE, SIZE, layers)
    x = torch.randn(steps, 1, SIZE)
    with torch.no_grad():
        inference = _median_s(lambda: module(x), repeats)
    forward = _median_s(lambda: module(x), repeats)

    def backward() -> None:
        module(x)[0].sum().backward()

    both = _median_s(backward, repeats)
    return {"inference_s": inference, "forward_s": forward, "backward_s": max(both - forward, 0.0)}


def _terms(t: dict[tuple[int, int], float], short: int, long: int) -> tuple[float, float, float]:
    """(call, layer, step) from ``t[(layers, steps)]`` by the module docstring's formula."""
    step = max((t[(1, long)] - t[(1, short)]) / (long - short), 0.0)
    layer = max(t[(2, short)] - t[(1, short)] - short * step, 0.0)
    call = max(t[(1, short)] - layer - short * step, 0.0)
    return call, layer, step


def measure(quick: bool = False, progress: Any = None) -> dict[str, Any]:
    """Raw times and the derived terms for every cell (one thread)."""
    try:
        import torch
    except ImportError:
        raise WpsimError(
            "calibrate --runtime torch: PyTorch is not installed (pip install -e '.[test]')"
        ) from None
    progress = progress or (lambda _line: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    short, long = QUICK_LENGTHS if quick else LENGTHS
    repeats = 5 if quick else 25
    raw: dict[str, Any] = {}
    terms: dict[str, Any] = {}
    try:
        for cell in CELLS:
            runs = {(layers, steps): _times(torch, cell, layers, steps, repeats)
                    for layers in (1, 2) for steps in (short, long)}  # fmt: skip
            raw[cell] = {f"L{k[0]}_T{k[1]}": v for k, v in runs.items()}
            forward = _terms({k: v["inference_s"] for k, v in runs.items()}, short, long)
            # the backward terms carry autograd's recording of the forward pass (module doc)
            backward = _terms(
                {k: v["backward_s"] + v["forward_s"] - v["inference_s"] for k, v in runs.items()},
                short, long,
            )  # fmt: skip
            terms[cell] = {"forward": forward, "backward": backward}
            progress(
                f"calibrate --runtime torch: {cell}: step {forward[2] * 1e6:.1f} us forward, "
                f"{backward[2] * 1e6:.1f} us backward; call {forward[0] * 1e6:.1f} us"
            )
    finally:
        torch.set_num_threads(threads)
    return {"torch": str(torch.__version__), "lengths": [short, long], "repeats": repeats,
            "raw": raw, "terms": terms}  # fmt: skip


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def runtime_document(measured: dict[str, Any], date: str, cpu: str) -> dict[str, Any]:
    """The runtime file's content: per-cell step costs, per-call and per-layer costs (the mean
    over the cells: one framework call and one layer cost the same whatever the cell)."""
    terms = measured["terms"]
    call_forward = _mean([terms[c]["forward"][0] for c in CELLS])
    call_backward = _mean([terms[c]["backward"][0] for c in CELLS])
    return {
        "name": "host_torch",
        "machine_kind": "cpu",
        "description": f"PyTorch {measured['torch']} on this computer ({cpu}), one thread, "
        f"measured by wpsim calibrate --runtime torch on {date}",
        "call_s": {"forward": call_forward, "backward_data": call_backward},
        "layer_s": {
            "forward": _mean([terms[c]["forward"][1] for c in CELLS]),
            "backward_data": _mean([terms[c]["backward"][1] for c in CELLS]),
        },
        "step_s": {
            "forward": {c: terms[c]["forward"][2] for c in CELLS},
            "backward": {c: terms[c]["backward"][2] for c in CELLS},
        },
        "calibration": {
            "date": date,
            "cpu": cpu,
            "python": platform.python_version(),
            "torch": measured["torch"],
            "threads": 1,
            "size": SIZE,
            "lengths": measured["lengths"],
            "repeats": measured["repeats"],
            "raw_s": measured["raw"],
        },
    }


def calibrate_runtime(out: str | Path, quick: bool = False, progress: Any = None) -> dict:
    """Measure PyTorch here and write the runtime file ``out``; returns its content."""
    from wpsim.calibrate import read_cpu_spec, write_atomically
    from wpsim.config import validate_mapping
    from wpsim.runtime import Runtime

    out = Path(out)
    measured = measure(quick=quick, progress=progress)
    cpu = read_cpu_spec().model
    document = runtime_document(measured, _dt.date.today().isoformat(), cpu)
    validate_mapping(Runtime, document, str(out))  # must validate before we write
    header = (
        "# PyTorch's RNN runtime on this computer, measured by `wpsim calibrate --runtime torch`\n"
        "# (wpsim/calibrate_runtime.py): every term from the times in the calibration block.\n"
        "# This computer only: not a default for anyone else.\n"
    )
    write_atomically(out, header + yaml.safe_dump(document, sort_keys=False))
    return document
