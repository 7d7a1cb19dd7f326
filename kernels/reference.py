"""Whole-network forward and backward built from the chunk tasks of :mod:`kernels.cells`.

These run the task graph sequentially in a valid order (layer by layer, each direction chunk by
chunk), so they are both the reference the parallel executor is checked against and the
PyTorch-compatible public API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kernels.cells import (
    cell_chunk_backward,
    cell_chunk_forward,
    layer_weight_grads,
    output_backward,
    output_forward,
)
from kernels.params import LAYER_KINDS, compute_dtype, layer_params, param_shapes, suffix
from kernels.products import Recurrent
from wpsim.errors import ConfigError
from wpsim.model.workload import Workload

__all__ = ["backward", "chunk_bounds", "forward"]

State = np.ndarray | tuple[np.ndarray, np.ndarray]


def chunk_bounds(seq_len: int, chunk: int | None) -> list[tuple[int, int]]:
    """Time ranges ``[t0, t1)`` of the chunks of ``chunk`` steps (the last may be shorter).

    Chunks are aligned at t = 0 for both directions; the reverse direction visits them from
    last to first. ``chunk=None`` is one chunk of the whole sequence.

    Examples
    --------
    >>> chunk_bounds(7, 3)
    [(0, 3), (3, 6), (6, 7)]
    """
    if chunk is None:
        chunk = seq_len
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return [(t0, min(t0 + chunk, seq_len)) for t0 in range(0, seq_len, chunk)]


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
    workload: Workload, h0: State | None, batch: int, dtype: np.dtype, what: str = "h0"
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Split PyTorch's ``h0`` / ``(h0, c0)`` into arrays of shape (L*D, B, H) (or None)."""
    if h0 is None:
        return None, None
    shape = (workload.layers * workload.directions, batch, workload.hidden)
    if workload.cell == "lstm":
        if not isinstance(h0, tuple | list) or len(h0) != 2:
            raise ValueError(f"lstm {what} must be a tuple (h, c) of arrays of shape {shape}")
        parts = list(h0)
    else:
        parts = [h0]
    out = []
    for part in parts:
        if part is None:
            out.append(None)
            continue
        part = np.ascontiguousarray(part, dtype=dtype)
        if part.shape != shape:
            raise ValueError(f"{what} must have shape {shape}, got {part.shape}")
        out.append(part)
    return out[0], (out[1] if len(out) > 1 else None)


class _Forward:
    """What the backward needs from a forward run."""

    def __init__(self) -> None:
        self.inputs: list[np.ndarray] = []  # layer inputs, (T, B, I_l)
        self.h_seq: dict[tuple[int, int], np.ndarray] = {}  # (layer, d) -> (T, B, H)
        self.chunks: dict[
            tuple[int, int], list
        ] = {}  # (layer, d) -> [(t0, t1, saved)] in run order
        self.lp: dict[tuple[int, int], dict] = {}
        self.top: np.ndarray | None = None
        self.y: np.ndarray | None = None
        self.h_n: np.ndarray | None = None
        self.c_n: np.ndarray | None = None


def _run_forward(workload, params, x, h0, c0, chunk, save) -> _Forward:
    dtype = compute_dtype(workload)
    cell, hidden, n_dir = workload.cell, workload.hidden, workload.directions
    steps, batch, _ = x.shape
    bounds = chunk_bounds(steps, chunk)
    run = _Forward()
    run.h_n = np.empty((workload.layers * n_dir, batch, hidden), dtype)
    if cell == "lstm":
        run.c_n = np.empty_like(run.h_n)
    inp = x
    for layer in range(workload.layers):
        run.inputs.append(inp)
        out = np.empty((steps, batch, n_dir * hidden), dtype)
        for d in range(n_dir):
            rev = d == 1
            idx = layer * n_dir + d
            lp = layer_params(params, layer, rev, sparse=workload.sparse, dtype=dtype)
            recurrent = Recurrent(lp["weight_hh"], batch, dtype).hh
            h_seq = np.empty((steps, batch, hidden), dtype)
            h = None if h0 is None else h0[idx]
            c = None if c0 is None else c0[idx]
            chunks = []
            for t0, t1 in reversed(bounds) if rev else bounds:
                _, h, c, saved = cell_chunk_forward(
                    cell,
                    lp,
                    inp[t0:t1],
                    h,
                    c,
                    rev,
                    save=save,
                    h_out=h_seq[t0:t1],
                    recurrent=recurrent,
                )
                chunks.append((t0, t1, saved))
            run.h_n[idx] = h
            if cell == "lstm":
                run.c_n[idx] = c
            out[:, :, d * hidden : (d + 1) * hidden] = h_seq
            if save:
                run.h_seq[layer, d], run.chunks[layer, d], run.lp[layer, d] = h_seq, chunks, lp
        inp = out
    run.top = inp
    if workload.output != "none":
        v = np.asarray(params["weight_out"], dtype=dtype)
        b = np.asarray(params["bias_out"], dtype=dtype)
        run.y = output_forward(v, b, inp, softmax=workload.output == "softmax")
    else:
        run.y = inp
    return run


def _prepare(workload, params, x, h0):
    _check_params(workload, params)
    dtype = compute_dtype(workload)
    x = np.ascontiguousarray(x, dtype=dtype)
    if x.ndim != 3 or x.shape[2] != workload.input or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(
            f"x must have shape (seq_len, batch, {workload.input}) (time-major), got {x.shape}"
        )
    h, c = _states(workload, h0, x.shape[1], dtype)
    return dtype, x, h, c


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
    h0 : ndarray (L*D, B, H), or a tuple ``(h0, c0)`` of them for lstm; optional (zeros)
        Index ``l*D + d`` is layer ``l``, direction ``d`` (0 forward, 1 reverse), as in PyTorch.
    chunk : int, optional
        Run each layer-direction as chunk tasks of this many steps (default: one chunk).

    Returns
    -------
    output : ndarray
        ``workload.output == "none"``: the top layer's hidden states, shape (T, B, D*H), the
        two directions concatenated ``[fwd, rev]`` (PyTorch's ``output``).
        ``"linear"``: ``o = c + V h_top``, shape (T, B, output_size).
        ``"softmax"``: ``softmax(o)`` over the last axis (probabilities), (T, B, output_size).
    h_n : ndarray (L*D, B, H), or ``(h_n, c_n)`` for lstm
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
    _, x, h, c = _prepare(workload, params, x, h0)
    run = _run_forward(workload, params, x, h, c, chunk, save=False)
    out_dtype = np.dtype(workload.dtype)
    y = run.y.astype(out_dtype, copy=False)
    h_n = run.h_n.astype(out_dtype, copy=False)
    if workload.cell == "lstm":
        return y, (h_n, run.c_n.astype(out_dtype, copy=False))
    return y, h_n


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
    w.r.t. ``h_n`` (``(dh_n, dc_n)`` for lstm; None means the loss ignores the final states).
    The forward is recomputed with activations saved, then every layer-direction runs its
    backward chunk tasks (last chunk first) and one weight-gradient task.

    Parameters
    ----------
    workload, params, x, h0, chunk
        As for :func:`forward`.
    grad_output : ndarray, same shape as ``output``
    grad_hn : ndarray or tuple, optional

    Returns
    -------
    dict[str, ndarray]
        One entry per parameter name (same shapes; ``weight_hh`` dense even when sparse), plus
        ``"x"`` (T, B, input), ``"h0"`` (L*D, B, H) and, for lstm, ``"c0"``; in the
        workload's dtype.

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
    dtype, x, h0_arr, c0_arr = _prepare(workload, params, x, h0)
    run = _run_forward(workload, params, x, h0_arr, c0_arr, chunk, save=True)
    dh_n, dc_n = _states(workload, grad_hn, x.shape[1], dtype, what="grad_hn")
    cell, hidden, n_dir = workload.cell, workload.hidden, workload.directions
    steps, batch, _ = x.shape
    grad_output = np.ascontiguousarray(grad_output, dtype=dtype)
    if grad_output.shape != run.y.shape:
        raise ValueError(f"grad_output must have shape {run.y.shape}, got {grad_output.shape}")

    grads: dict[str, np.ndarray] = {}
    if workload.output != "none":
        v = np.asarray(params["weight_out"], dtype=dtype)
        dtop, grads["weight_out"], grads["bias_out"] = output_backward(
            v, run.top, run.y, grad_output, softmax=workload.output == "softmax"
        )
    else:
        dtop = grad_output
    dh0 = np.zeros((workload.layers * n_dir, batch, hidden), dtype)
    dc0 = np.zeros_like(dh0) if cell == "lstm" else None
    gh = workload.gates * hidden
    for layer in reversed(range(workload.layers)):
        inp = run.inputs[layer]
        din = np.zeros_like(inp)
        for d in range(n_dir):
            rev = d == 1
            idx = layer * n_dir + d
            lp = run.lp[layer, d]
            recurrent_t = Recurrent(lp["weight_hh"], batch, dtype).hh_t
            dg_ih = np.empty((steps, batch, gh), dtype)
            dg_hh = np.empty_like(dg_ih) if cell == "gru" else None
            dh = None if dh_n is None else dh_n[idx]
            dc = None if dc_n is None else dc_n[idx]
            dh_seq = dtop[:, :, d * hidden : (d + 1) * hidden]
            for t0, t1, saved in reversed(run.chunks[layer, d]):
                dx, dh, dc, _ = cell_chunk_backward(
                    cell,
                    lp,
                    saved,
                    dh_seq[t0:t1],
                    dh,
                    dc,
                    rev,
                    dgates_out=dg_ih[t0:t1],
                    dgates_hh_out=None if dg_hh is None else dg_hh[t0:t1],
                    recurrent_t=recurrent_t,
                )
                din[t0:t1] += dx
            dh0[idx] = dh
            if dc0 is not None:
                dc0[idx] = dc
            h_init = None if h0_arr is None else h0_arr[idx]
            wg = layer_weight_grads(cell, inp, run.h_seq[layer, d], h_init, dg_ih, dg_hh, rev)
            for kind in LAYER_KINDS:
                grads[kind + suffix(layer, rev)] = wg[kind]
        dtop = din
    out_dtype = np.dtype(workload.dtype)
    ordered = {name: grads[name] for name in param_shapes(workload)}
    ordered["x"] = dtop
    ordered["h0"] = dh0
    if dc0 is not None:
        ordered["c0"] = dc0
    return {name: value.astype(out_dtype, copy=False) for name, value in ordered.items()}
