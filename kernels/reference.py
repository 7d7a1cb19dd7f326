"""Whole-network forward and backward of any declared cell, in one process.

These run the tasks of the executor (:class:`kernels.tasks.TaskRunner`: every cell task is
:class:`kernels.declared.CellKernel` interpreting the workload's cell declaration) sequentially
in a valid order: layer by layer, each direction chunk by chunk, then the backward in reverse
with one weight-gradient task per layer-direction. So they are both the reference the
multi-process executor is checked against (bitwise, for whole cells) and the PyTorch-compatible
public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp

from kernels.arrays import array_specs, final_states, initial_state_grads, layer_kernels
from kernels.params import chunk_bounds, compute_dtype, param_shapes
from kernels.tasks import TaskRunner, TaskSpec
from wpsim.errors import ConfigError
from wpsim.model.workload import Workload

__all__ = ["backward", "forward"]

#: One state array (L*D, B, width), or a tuple of them in the declaration's state order
#: (``(h, c)`` for an LSTM, as PyTorch).
State = np.ndarray | tuple[np.ndarray, ...]


def _check_params(workload: Workload, params: Mapping[str, Any]) -> None:
    for name, shape in param_shapes(workload).items():
        if name not in params:
            raise ConfigError(
                f"params: missing parameter '{name}' for this {workload.cell} workload"
            )
        if tuple(params[name].shape) != shape:
            raise ConfigError(
                f"params: parameter '{name}' has shape {tuple(params[name].shape)}, expected {shape}"
            )


def _states(
    workload: Workload,
    given: State | None,
    widths: dict[str, list[int]],
    batch: int,
    dtype: np.dtype,
    what: str,
) -> dict[str, list[np.ndarray] | None]:
    """Split PyTorch's ``h0`` / ``(h0, c0)`` into per-layer-direction arrays by state name."""
    names = list(widths)
    if given is None:
        return dict.fromkeys(names)
    parts = list(given) if len(names) > 1 else [given]
    if len(names) > 1 and (not isinstance(given, tuple | list) or len(parts) != len(names)):
        raise ValueError(f"{workload.cell} {what} must be a tuple ({', '.join(names)}) of arrays")
    out: dict[str, list[np.ndarray] | None] = {}
    for name, part in zip(names, parts, strict=True):
        if part is None:
            out[name] = None
            continue
        shapes = [(batch, w) for w in widths[name]]
        if len({s for s in shapes}) == 1:
            want = (len(shapes), *shapes[0])
            part = np.ascontiguousarray(part, dtype=dtype)
            if part.shape != want:
                raise ValueError(f"{what} must have shape {want}, got {part.shape}")
            out[name] = list(part)
        else:
            arrays = [np.ascontiguousarray(p, dtype=dtype) for p in part]
            if [a.shape for a in arrays] != shapes:
                raise ValueError(f"{what}: state {name} must be arrays of shapes {shapes}")
            out[name] = arrays
    return out


def _widths(workload: Workload) -> dict[str, list[int]]:
    """The width of each state of every layer-direction (index ``l*D + d``)."""
    kernels = layer_kernels(workload)
    return {
        s: [k.widths[s] for k in kernels for _ in range(workload.directions)]
        for s in kernels[0].next_of
    }


def _run(
    workload: Workload,
    params: Mapping[str, Any],
    x: np.ndarray,
    h0: State | None,
    grad_output: np.ndarray | None,
    grad_hn: State | None,
    chunk: int | None,
    training: bool,
) -> tuple[Workload, dict[str, np.ndarray]]:
    """Allocate the arrays of :func:`kernels.arrays.array_specs` and run every task in order."""
    _check_params(workload, params)
    dtype = compute_dtype(workload)
    x = np.ascontiguousarray(x, dtype=dtype)
    if x.ndim != 3 or x.shape[2] != workload.input or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"x must have shape (seq_len, batch, {workload.input}) (time-major), got {x.shape}"
        )
    steps, batch, _ = x.shape
    w = workload.model_copy(
        update={"seq_len": steps, "batch": batch, "phase": "training" if training else "inference"}
    )
    chunk = steps if chunk is None else chunk
    bounds = chunk_bounds(steps, chunk)
    specs = array_specs(w, 1, hoisted=False, training=training, chunk=chunk, group_sizes=[1])
    arrays = {
        name: np.empty(spec[0], spec[1], order=spec[2] if len(spec) > 2 else "C")
        for name, spec in specs.items()
    }
    arrays["x"][...] = x
    for name in param_shapes(w):
        value = params[name]
        arrays[f"p0.{name}"][...] = value.toarray() if sp.issparse(value) else value
    L, D = w.layers, w.directions
    widths = _widths(w)
    for what, given, prefix in (("h0", h0, "init"), ("grad_hn", grad_hn, "dfin")):
        for s, per_layer in _states(w, given, widths, batch, dtype, what).items():
            if per_layer is not None:
                for index, value in enumerate(per_layer):
                    arrays[f"{prefix}0.{index // D}.{index % D}.{s}"] = value
    tasks: list[TaskSpec] = []
    for l in range(L):
        for d in range(D):
            for t0, t1 in reversed(bounds) if d else bounds:
                tasks.append(("cell", 0, l, d, t0, t1 - t0))
    if w.output != "none":
        tasks.append(("output", 0, L, 0, 0, steps))
    if training:
        grad_output = np.ascontiguousarray(grad_output, dtype=dtype)
        if grad_output.shape != arrays["gout"].shape:
            raise ValueError(
                f"grad_output must have shape {arrays['gout'].shape}, got {grad_output.shape}"
            )
        arrays["gout"][...] = grad_output
        if w.output != "none":
            tasks += [("output_bwd", 0, L, 0, 0, steps), ("wgrad", 0, L, 0, 0, steps)]
        for l in reversed(range(L)):
            for d in range(D):
                for t0, t1 in bounds if d else reversed(bounds):
                    tasks.append(("cell_bwd", 0, l, d, t0, t1 - t0))
                tasks.append(("wgrad", 0, l, d, 0, steps))
    runner = TaskRunner(w, tasks, arrays, hoisted=False, training=training, chunk=chunk)
    for tid in range(len(tasks)):
        runner.run(tid)
    return w, arrays


def _output(w: Workload, arrays: dict[str, np.ndarray]) -> np.ndarray:
    if w.output != "none":
        return arrays["y0"]
    top = [arrays[f"h0.{w.layers - 1}.{d}"] for d in range(w.directions)]
    return top[0] if len(top) == 1 else np.concatenate(top, axis=2)


def _as_state(found: dict[str, Any]) -> State:
    values = list(found.values())
    return values[0] if len(values) == 1 else tuple(values)


def forward(
    workload: Workload,
    params: Mapping[str, Any],
    x: np.ndarray,
    h0: State | None = None,
    *,
    chunk: int | None = None,
) -> tuple[np.ndarray, State]:
    """Run the whole network forward, like ``torch.nn.RNN/LSTM/GRU`` (``batch_first=False``).

    Parameters
    ----------
    workload : Workload
        Cell, layers, sizes, direction, dtype, density and output layer. ``seq_len`` and
        ``batch`` are taken from ``x`` (they may differ from the workload's).
    params : mapping
        A parameter dict (:func:`kernels.init_params`, :func:`kernels.load_state_dict`).
    x : ndarray, shape (T, B, input)
    h0 : ndarray (L*D, B, width), or a tuple of them (one per state of the cell, in the
        declaration's order: ``(h0, c0)`` for an LSTM); optional (zeros)
        Index ``l*D + d`` is layer ``l``, direction ``d`` (0 forward, 1 reverse), as in PyTorch.
    chunk : int, optional
        Run each layer-direction as chunk tasks of this many steps (default: one chunk).

    Returns
    -------
    output : ndarray
        ``workload.output == "none"``: the top layer's outputs, shape (T, B, D*W), the
        two directions concatenated ``[fwd, rev]`` (PyTorch's ``output``).
        ``"linear"``: ``o = c + V h_top``, shape (T, B, output_size).
        ``"softmax"``: ``softmax(o)`` over the last axis (probabilities), (T, B, output_size).
    states : ndarray (L*D, B, width), or a tuple of them (``(h_n, c_n)`` for an LSTM)
        Final states (the reverse direction's final state is the one at t = 0).

    Float16 workloads are computed in float32 and the results cast to float16.

    Examples
    --------
    >>> from kernels import init_params, init_input
    >>> w = Workload(cell="lstm", layers=2, hidden=4, input=3, seq_len=5, batch=2,
    ...              bidirectional=True)
    >>> out, (h_n, c_n) = forward(w, init_params(w), init_input(w))
    >>> out.shape, h_n.shape, c_n.shape
    ((5, 2, 8), (4, 2, 4), (4, 2, 4))
    """
    w, arrays = _run(workload, params, x, h0, None, None, chunk, training=False)
    out_dtype = np.dtype(workload.dtype)
    y = np.array(_output(w, arrays), dtype=out_dtype)
    return y, _as_state(final_states(w, arrays, out_dtype))


def backward(
    workload: Workload,
    params: Mapping[str, Any],
    x: np.ndarray,
    grad_output: np.ndarray,
    h0: State | None = None,
    *,
    grad_hn: State | None = None,
    chunk: int | None = None,
) -> dict[str, np.ndarray]:
    """Gradients (BPTT) of every parameter, of ``x`` and of the initial states.

    The loss is any function of :func:`forward`'s outputs; ``grad_output`` is its gradient
    w.r.t. ``output`` (the softmax probabilities when the output is softmax) and ``grad_hn``
    w.r.t. the final states (shaped as ``h0``; None means the loss ignores them). The forward is
    recomputed with activations saved, then every layer-direction runs its backward chunk tasks
    (last chunk first) and one weight-gradient task.

    Parameters
    ----------
    workload, params, x, h0, chunk
        As for :func:`forward`.
    grad_output : ndarray, same shape as ``output``
    grad_hn : ndarray or tuple, optional

    Returns
    -------
    dict[str, ndarray]
        One entry per parameter name (same shapes; dense even when sparse), plus ``"x"``
        (T, B, input) and ``"{state}0"`` for each state of the cell (``"h0"``, and ``"c0"``
        for an LSTM); in the workload's dtype.

    Examples
    --------
    >>> from kernels import init_params, init_input
    >>> w = Workload(cell="gru", hidden=4, input=3, seq_len=5, output="softmax", output_size=2)
    >>> p, x = init_params(w), init_input(w)
    >>> y, _ = forward(w, p, x)
    >>> g = backward(w, p, x, grad_output=np.ones_like(y))
    >>> sorted(g)[:4], g["weight_hh_l0"].shape
    (['bias_hh_l0', 'bias_ih_l0', 'bias_out', 'h0'], (12, 4))
    """
    w, arrays = _run(workload, params, x, h0, grad_output, grad_hn, chunk, training=True)
    out_dtype = np.dtype(workload.dtype)
    grads = {name: np.array(arrays[f"g0.{name}"], dtype=out_dtype) for name in param_shapes(w)}
    D = w.directions
    dx = arrays["dx0.0.0"] if D == 1 else arrays["dx0.0.0"] + arrays["dx0.0.1"]
    grads["x"] = np.array(dx, dtype=out_dtype)
    grads.update(initial_state_grads(w, arrays, out_dtype))
    return grads
