"""Chunk tasks: one direction of one layer over k consecutive time steps, forward and backward.

These are the units the real executor runs. All arrays are numpy, time-major, like PyTorch's
``batch_first=False``; every function is pure apart from the ``out``-style buffers it is given.

Shapes (``G`` gates: rnn 1, lstm 4, gru 3; ``H`` hidden; ``I`` layer input; ``B`` batch; ``k``
steps in the chunk; ``GH = G*H``):

* ``layer_params``: a mapping with ``weight_ih`` (GH, I), ``weight_hh`` (GH, H) as a dense array
  or a ``scipy.sparse`` CSR matrix/array, ``bias_ih`` (GH,), ``bias_hh`` (GH,), all in one float
  dtype (float32 or float64; float16 workloads are computed in float32 by the caller, see
  :func:`kernels.params.layer_params`).
* ``x_chunk`` (k, B, I); ``h0``/``c0`` (B, H); ``h_seq`` (k, B, H).

Equations are PyTorch's (``torch.nn.RNN/LSTM/GRU``), gate order and bias placement included::

    rnn :  h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
    lstm:  [i, f, g, o] = [s, s, tanh, s](W_ih x + b_ih + W_hh h + b_hh)      (s = sigmoid)
           c' = f * c + i * g ;  h' = o * tanh(c')
    gru :  [r, z] = s(W_i[rz] x + b_i[rz] + W_h[rz] h + b_h[rz])
           n = tanh(W_in x + b_in + r * (W_hn h + b_hn)) ;  h' = (1 - z) * n + z * h
                                                   (computed as n + z * (h - n))

How a chunk runs: the input projection of the k steps is ONE GEMM
``(k*B, I) @ W_ih^T`` plus a folded bias (``b_ih + b_hh`` for rnn/lstm, ``b_ih + [b_hr, b_hz,
0]`` for gru, whose ``b_hn`` stays inside ``r * (.)``); then k sequential steps each do one
recurrent GEMM ``h @ W_hh^T`` (B rows) and the element-wise update. The per-step arithmetic does
not depend on the chunking, so two chunkings of a sequence differ only by the rounding of the
input GEMM, and one chunking run twice is bitwise identical.

Directions: with ``reverse=True`` the k steps are processed from the last to the first; arrays
are always indexed in *time order* (index ``j`` is global step ``t0 + j``).

``saved`` (returned by :func:`cell_chunk_forward` with ``save=True``, consumed by
:func:`cell_chunk_backward`) is a dict of arrays, indexed in time order:

=========  ===========  ===============================================================
key        shape        contents
=========  ===========  ===============================================================
``h0``     (B, H)       state entering the chunk (h before the first *processed* step)
``h``      (k, B, H)    hidden state after each step (the same array as ``h_seq``)
``c0``     (B, H)       lstm only: cell state entering the chunk
``gates``  (k, B, GH)   lstm ``[i, f, g, o]``, gru ``[r, z, n]``, after their activations
``c``      (k, B, H)    lstm only: cell state after each step
``tanh_c`` (k, B, H)    lstm only: ``tanh(c)``
``hn``     (k, B, H)    gru only: ``W_hn h_prev + b_hn`` (needed for the r gradient)
=========  ===========  ===============================================================

rnn saves only ``h0`` and ``h`` (``tanh' = 1 - h^2``). ``h0``/``c0`` are references to the arrays
passed in (converted to the compute dtype if needed): do not overwrite them before the backward.

Sparse recurrent weights: when ``weight_hh`` is a scipy.sparse matrix the recurrent products use
CSR kernels (``W_hh h`` as a CSR mat-vec, ``W_hh^T dg`` as the same arrays read as CSC) into
preallocated buffers; the result equals the dense-equivalent one to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from scipy.special import expit

from kernels.products import Recurrent, matmul_xwt
from wpsim.cells import gate_count, get_cell

__all__ = [
    "cell_chunk_backward",
    "cell_chunk_forward",
    "input_projection",
    "layer_weight_grads",
    "lstm_gate_affine",
    "output_backward",
    "output_forward",
    "sigmoid",
]


#: ``recurrent(h_prev, out)`` must write ``h_prev @ W_hh^T`` (no bias) into ``out`` (B, G*H).
RecurrentFn = Callable[[np.ndarray, np.ndarray], None]


# ---- small helpers ---------------------------------------------------------------------------
#: The cells these hand-written kernels compute (any declared cell: :mod:`kernels.declared`).
KERNEL_CELLS = ("rnn", "lstm", "gru")


def _check_cell(cell: str) -> int:
    if cell not in KERNEL_CELLS:
        raise ValueError(f"cell must be one of {list(KERNEL_CELLS)}, got {cell!r}")
    return gate_count(get_cell(cell))


def _dtype_of(layer_params: Mapping[str, Any]) -> np.dtype:
    dtype = np.dtype(layer_params["weight_ih"].dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(
            f"kernels compute in float32 or float64, got {dtype}; "
            "cast float16 parameters with kernels.params.layer_params(..., dtype=np.float32)"
        )
    return dtype


def _state(value: np.ndarray | None, batch: int, hidden: int, dtype: np.dtype) -> np.ndarray:
    if value is None:
        return np.zeros((batch, hidden), dtype)
    value = np.ascontiguousarray(value, dtype=dtype)
    if value.shape != (batch, hidden):
        raise ValueError(f"state must have shape {(batch, hidden)}, got {value.shape}")
    return value


#: Largest input :func:`sigmoid` hands to ``scipy.special.expit`` (see there).
SIGMOID_EXPIT_MAX = 512


def sigmoid(x: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Logistic sigmoid into ``out`` (may be ``x``).

    ``scipy.special.expit`` is one call but not vectorised; ``0.5 * tanh(x / 2) + 0.5`` is four
    vectorised ufunc passes (and cannot overflow, unlike ``1 / (1 + exp(-x))``). Measured here,
    float32: 768 values 3.2 vs 2.8 us, 12,288 values 45 vs 10 us; the two break even near 600
    values, below which the three extra calls cost more than they save (an LSTM step at H=4:
    +4 us). So expit up to :data:`SIGMOID_EXPIT_MAX` values, the tanh form above; both within
    1e-7 of the exact value in float32 and 2.2e-16 in float64.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(-30, 30, 2001)
    >>> exact = 1 / (1 + np.exp(-x))
    >>> bool(np.allclose(sigmoid(x, np.empty_like(x)), exact, rtol=0, atol=1e-15))
    True
    >>> bool(np.allclose(sigmoid(x[:5], np.empty(5)), exact[:5], rtol=0, atol=1e-15))
    True
    """
    if x.size <= SIGMOID_EXPIT_MAX:
        return expit(x, out=out)
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    np.multiply(out, 0.5, out=out)
    np.add(out, 0.5, out=out)
    return out


def folded_bias(cell: str, bias_ih: np.ndarray, bias_hh: np.ndarray) -> np.ndarray:
    """Bias added once per chunk to the input projection (gru keeps ``b_hn`` out)."""
    if cell == "gru":
        hidden = bias_ih.shape[0] // 3
        folded = bias_ih.copy()
        folded[: 2 * hidden] += bias_hh[: 2 * hidden]
        return folded
    return bias_ih + bias_hh


# ---- forward ---------------------------------------------------------------------------------
def input_projection(
    cell: str,
    layer_params: Mapping[str, Any],
    x_chunk: np.ndarray,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Input projection of a chunk as one GEMM: ``X (k*B, I) @ W_ih^T + folded bias``.

    The folded bias is ``b_ih + b_hh`` for rnn/lstm and ``b_ih + [b_hr, b_hz, 0]`` for gru.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    layer_params : mapping
        ``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh`` of one layer-direction.
    x_chunk : ndarray, shape (k, B, I)
    out : ndarray, shape (k, B, G*H), optional, C-contiguous

    Returns
    -------
    ndarray, shape (k, B, G*H)

    Examples
    --------
    >>> import numpy as np
    >>> p = {"weight_ih": np.ones((2, 3)), "weight_hh": np.zeros((2, 2)),
    ...      "bias_ih": np.full(2, 0.5), "bias_hh": np.full(2, 0.25)}
    >>> input_projection("rnn", p, np.ones((2, 1, 3)))[:, 0]
    array([[3.75, 3.75],
           [3.75, 3.75]])
    """
    _check_cell(cell)
    dtype = _dtype_of(layer_params)
    w_ih = layer_params["weight_ih"]
    x_chunk = np.ascontiguousarray(x_chunk, dtype=dtype)
    k, batch, n_in = x_chunk.shape
    gh = w_ih.shape[0]
    if w_ih.shape[1] != n_in:
        raise ValueError(f"x_chunk has {n_in} features, weight_ih expects {w_ih.shape[1]}")
    if out is None:
        out = np.empty((k, batch, gh), dtype)
    elif out.shape != (k, batch, gh) or not out.flags.c_contiguous or out.dtype != dtype:
        raise ValueError(f"out must be a C-contiguous {dtype} array of shape {(k, batch, gh)}")
    flat = out.reshape(k * batch, gh)
    matmul_xwt(x_chunk.reshape(k * batch, n_in), w_ih, flat)
    flat += folded_bias(cell, layer_params["bias_ih"], layer_params["bias_hh"])
    return out


def cell_chunk_forward(
    cell: str,
    layer_params: Mapping[str, Any],
    x_chunk: np.ndarray,
    h0: np.ndarray | None,
    c0: np.ndarray | None = None,
    reverse: bool = False,
    *,
    save: bool = True,
    gates_x: np.ndarray | None = None,
    h_out: np.ndarray | None = None,
    recurrent: RecurrentFn | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, np.ndarray] | None]:
    """Run one chunk task: one layer-direction over k consecutive steps.

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    layer_params : mapping
        ``weight_ih`` (GH, I), ``weight_hh`` (GH, H) dense or scipy.sparse, ``bias_ih``,
        ``bias_hh`` (GH,), float32 or float64.
    x_chunk : ndarray, shape (k, B, I)
        Inputs of the k steps in time order.
    h0, c0 : ndarray, shape (B, H), optional
        State entering the chunk (zeros when None); ``c0`` is for lstm only.
    reverse : bool
        Process the steps from last to first (the reverse direction of a bidirectional layer).
    save : bool
        Keep the activations the backward needs (see the module docstring for ``saved``);
        with ``save=False`` only per-step buffers are allocated and ``saved`` is None.
    gates_x : ndarray, shape (k, B, GH), optional
        A precomputed :func:`input_projection` (e.g. split across workers).
    h_out : ndarray, shape (k, B, H), optional
        C-contiguous buffer for ``h_seq`` (e.g. a time slice of a layer-wide buffer).
    recurrent : callable, optional
        ``recurrent(h_prev, out)`` writes ``h_prev @ W_hh^T`` (no bias) into ``out`` (B, GH);
        the hook through which the executor splits the recurrent GEMM by rows (see
        :func:`recurrent_rows`). Default: the whole product on this worker.

    Returns
    -------
    h_seq : ndarray, shape (k, B, H)
        Hidden state after each step, time order.
    hT : ndarray, shape (B, H)
        State after the last processed step (``h_seq[-1]``, or ``h_seq[0]`` when reverse).
    cT : ndarray, shape (B, H) or None
        lstm cell state after the last processed step.
    saved : dict or None

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = {"weight_ih": rng.standard_normal((8, 3)), "weight_hh": rng.standard_normal((8, 2)),
    ...      "bias_ih": np.zeros(8), "bias_hh": np.zeros(8)}
    >>> x = rng.standard_normal((5, 1, 3))
    >>> h_seq, hT, cT, saved = cell_chunk_forward("lstm", p, x, None)
    >>> h_seq.shape, hT.shape, cT.shape, sorted(saved)
    ((5, 1, 2), (1, 2), (1, 2), ['c', 'c0', 'gates', 'h', 'h0', 'tanh_c'])

    Two chunks chained through their states give the same sequence:

    >>> a, h2, c2, _ = cell_chunk_forward("lstm", p, x[:2], None, save=False)
    >>> b, _, _, _ = cell_chunk_forward("lstm", p, x[2:], h2, c2, save=False)
    >>> bool(np.allclose(np.concatenate([a, b]), h_seq, rtol=1e-12, atol=0))
    True
    """
    n_gates = _check_cell(cell)
    dtype = _dtype_of(layer_params)
    x_chunk = np.asarray(x_chunk)
    k, batch, _ = x_chunk.shape
    w_hh = layer_params["weight_hh"]
    gh, hidden = w_hh.shape
    if gh != n_gates * hidden:
        raise ValueError(f"weight_hh has {gh} rows, expected {n_gates} x {hidden} for {cell}")
    if gates_x is None:
        gates_x = input_projection(cell, layer_params, x_chunk)
    elif gates_x.shape != (k, batch, gh):
        raise ValueError(f"gates_x must have shape {(k, batch, gh)}, got {gates_x.shape}")
    h0 = _state(h0, batch, hidden, dtype)
    if h_out is None:
        h_seq = np.empty((k, batch, hidden), dtype)
    else:
        if h_out.shape != (k, batch, hidden) or not h_out.flags.c_contiguous:
            raise ValueError(f"h_out must be C-contiguous with shape {(k, batch, hidden)}")
        h_seq = h_out
    if recurrent is None:
        recurrent = Recurrent(w_hh, batch, dtype).hh
    order = range(k - 1, -1, -1) if reverse else range(k)

    if cell == "rnn":
        h_prev = h0
        for j in order:
            h = h_seq[j]
            recurrent(h_prev, h)
            h += gates_x[j]
            np.tanh(h, out=h)
            h_prev = h
        saved = {"h0": h0, "h": h_seq} if save else None
        return h_seq, h_prev, None, saved

    if cell == "lstm":
        c0 = _state(c0, batch, hidden, dtype)
        return _lstm_forward(gates_x, h0, c0, h_seq, order, recurrent, save, dtype)
    return _gru_forward(gates_x, h0, h_seq, order, recurrent, save, dtype, layer_params)


def lstm_gate_affine(hidden: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, shift)`` over the ``4H`` gates ``[i, f, g, o]`` such that ``scale * tanh(scale
    * x) + shift`` is the LSTM's activations: ``sigmoid(x) = 0.5 * tanh(x / 2) + 0.5`` for
    ``i, f, o`` and ``tanh(x)`` for ``g`` (scale 1, shift 0: exact).

    All four gates then take one ``tanh`` and three broadcast ufunc calls, against two sigmoids
    of four calls each and a ``tanh`` (see :func:`sigmoid`): measured here, the element-wise
    part of an LSTM step (with its per-step overheads) at H=256 went from 26.8 to 15.9 us at
    batch 4, 9.3 to 8.4 us at batch 1. The arithmetic is that of :func:`sigmoid`'s tanh form
    (``x * 0.5`` is exact; ``tanh(x) * 1 + 0`` is ``tanh(x)``).

    Examples
    --------
    >>> import numpy as np
    >>> scale, shift = lstm_gate_affine(1, np.dtype("float64"))
    >>> x = np.array([0.3, -1.0, 0.7, 2.0])
    >>> got = scale * np.tanh(scale * x) + shift
    >>> bool(np.allclose(got, [1 / (1 + np.exp(-0.3)), 1 / (1 + np.exp(1.0)), np.tanh(0.7),
    ...                        1 / (1 + np.exp(-2.0))], rtol=0, atol=1e-15))
    True
    """
    scale = np.full(4 * hidden, 0.5, dtype)
    shift = np.full(4 * hidden, 0.5, dtype)
    scale[2 * hidden : 3 * hidden] = 1.0
    shift[2 * hidden : 3 * hidden] = 0.0
    return scale, shift


def _lstm_forward(gates_x, h0, c0, h_seq, order, recurrent, save, dtype):
    k, batch, hidden = h_seq.shape
    hh, h3 = 2 * hidden, 3 * hidden
    gates = np.empty((k if save else 1, batch, 4 * hidden), dtype)
    cs = np.empty((k if save else 2, batch, hidden), dtype)
    tcs = np.empty((k if save else 1, batch, hidden), dtype)
    tmp = np.empty((batch, hidden), dtype)
    scale, shift = lstm_gate_affine(hidden, dtype)
    h_prev, c_prev = h0, c0
    for n, j in enumerate(order):
        g = gates[j] if save else gates[0]
        recurrent(h_prev, g)
        g += gates_x[j]
        g *= scale  # all four activations at once, see lstm_gate_affine
        np.tanh(g, out=g)
        g *= scale
        g += shift
        gg = g[:, hh:h3]
        o = g[:, h3:]
        c = cs[j] if save else cs[n & 1]
        np.multiply(g[:, hidden:hh], c_prev, out=c)
        np.multiply(g[:, :hidden], gg, out=tmp)
        c += tmp
        tc = tcs[j] if save else tcs[0]
        np.tanh(c, out=tc)
        h = h_seq[j]
        np.multiply(o, tc, out=h)
        h_prev, c_prev = h, c
    saved = None
    if save:
        saved = {"h0": h0, "c0": c0, "h": h_seq, "gates": gates, "c": cs, "tanh_c": tcs}
    return h_seq, h_prev, c_prev, saved


def _gru_forward(gates_x, h0, h_seq, order, recurrent, save, dtype, layer_params):
    k, batch, hidden = h_seq.shape
    hh = 2 * hidden
    b_hn = np.asarray(layer_params["bias_hh"][hh:], dtype=dtype)
    gates = np.empty((k if save else 1, batch, 3 * hidden), dtype)
    hns = np.empty((k if save else 1, batch, hidden), dtype)
    gh = np.empty((batch, 3 * hidden), dtype)
    h_prev = h0
    for j in order:
        recurrent(h_prev, gh)
        gx = gates_x[j]
        g = gates[j] if save else gates[0]
        rz = g[:, :hh]
        np.add(gx[:, :hh], gh[:, :hh], out=rz)
        sigmoid(rz, out=rz)
        hn = hns[j] if save else hns[0]
        np.add(gh[:, hh:], b_hn, out=hn)
        n = g[:, hh:]
        np.multiply(g[:, :hidden], hn, out=n)
        n += gx[:, hh:]
        np.tanh(n, out=n)
        h = h_seq[j]
        np.subtract(h_prev, n, out=h)
        h *= g[:, hidden:hh]
        h += n
        h_prev = h
    saved = {"h0": h0, "h": h_seq, "gates": gates, "hn": hns} if save else None
    return h_seq, h_prev, None, saved


# ---- backward --------------------------------------------------------------------------------
def cell_chunk_backward(
    cell: str,
    layer_params: Mapping[str, Any],
    saved: Mapping[str, np.ndarray],
    dh_seq: np.ndarray | None,
    dh_next: np.ndarray | None = None,
    dc_next: np.ndarray | None = None,
    reverse: bool = False,
    *,
    need_dx: bool = True,
    dgates_out: np.ndarray | None = None,
    dgates_hh_out: np.ndarray | None = None,
    recurrent_t: RecurrentFn | None = None,
) -> tuple[np.ndarray | None, np.ndarray, np.ndarray | None, dict[str, np.ndarray]]:
    """Backward (BPTT) of one chunk task, consuming the ``saved`` of its forward.

    Steps run in the opposite order of the forward (last processed step first).

    Parameters
    ----------
    cell, layer_params, reverse
        As given to :func:`cell_chunk_forward`.
    saved : dict
        The forward's saved activations.
    dh_seq : ndarray, shape (k, B, H), or None
        Gradient of the loss w.r.t. ``h_seq`` from outside the recurrence (the layer above or
        the output layer/loss); may be a strided view. None means zeros.
    dh_next, dc_next : ndarray, shape (B, H), optional
        Gradient w.r.t. the chunk's final state ``hT``/``cT`` (from the next chunk in
        processing order, or from a loss on ``h_n``). None means zeros.
    need_dx : bool
        Compute ``dx_chunk`` (skip for layer 0 when the input gradient is not wanted).
    dgates_out, dgates_hh_out : ndarray, shape (k, B, GH), optional
        C-contiguous buffers for the gate gradients (``dgates_hh_out`` is used by gru only).
    recurrent_t : callable, optional
        ``recurrent_t(dg, out)`` writes ``dg @ W_hh`` into ``out`` (B, H); default in-process.

    Returns
    -------
    dx_chunk : ndarray, shape (k, B, I), or None
        ``dgates_ih (k*B, GH) @ W_ih`` as one GEMM.
    dh0 : ndarray, shape (B, H)
        Gradient w.r.t. the chunk's ``h0`` (the previous chunk's ``dh_next``).
    dc0 : ndarray, shape (B, H) or None
        lstm: gradient w.r.t. ``c0``.
    gate_grads : dict
        ``dgates_ih`` and ``dgates_hh``, (k, B, GH), gradients w.r.t. the pre-activation gate
        sums on the input side and the recurrent side. They are the same array for rnn/lstm;
        for gru the n block differs (``dgates_hh_n = dgates_ih_n * r``). Feed them to
        :func:`layer_weight_grads`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> p = {"weight_ih": rng.standard_normal((6, 3)), "weight_hh": rng.standard_normal((6, 2)),
    ...      "bias_ih": np.zeros(6), "bias_hh": np.zeros(6)}
    >>> x = rng.standard_normal((4, 1, 3))
    >>> h_seq, hT, _, saved = cell_chunk_forward("gru", p, x, None)
    >>> dx, dh0, _, gg = cell_chunk_backward("gru", p, saved, np.ones_like(h_seq))
    >>> dx.shape, dh0.shape, gg["dgates_ih"].shape
    ((4, 1, 3), (1, 2), (4, 1, 6))
    """
    n_gates = _check_cell(cell)
    dtype = _dtype_of(layer_params)
    h_seq = saved["h"]
    k, batch, hidden = h_seq.shape
    gh = n_gates * hidden
    if dh_seq is not None and dh_seq.shape != (k, batch, hidden):
        raise ValueError(f"dh_seq must have shape {(k, batch, hidden)}, got {dh_seq.shape}")
    if recurrent_t is None:
        recurrent_t = Recurrent(layer_params["weight_hh"], batch, dtype).hh_t

    def buffer(given: np.ndarray | None) -> np.ndarray:
        if given is None:
            return np.empty((k, batch, gh), dtype)
        if given.shape != (k, batch, gh) or not given.flags.c_contiguous:
            raise ValueError(f"gate-gradient buffers must be C-contiguous {(k, batch, gh)}")
        return given

    dg = buffer(dgates_out)
    dh = np.zeros((batch, hidden), dtype)
    if dh_next is not None:
        dh[...] = dh_next
    order = range(k) if reverse else range(k - 1, -1, -1)

    def h_prev_of(j: int) -> np.ndarray:
        if reverse:
            return h_seq[j + 1] if j < k - 1 else saved["h0"]
        return h_seq[j - 1] if j > 0 else saved["h0"]

    dc0 = None
    if cell == "rnn":
        tmp = np.empty((batch, hidden), dtype)
        for j in order:
            d = dg[j]
            if dh_seq is None:
                d[...] = dh
            else:
                np.add(dh, dh_seq[j], out=d)
            h = h_seq[j]
            np.multiply(h, h, out=tmp)
            np.subtract(1, tmp, out=tmp)
            d *= tmp
            recurrent_t(d, dh)
        dg_hh = dg
    elif cell == "lstm":
        dc0 = _lstm_backward(saved, dh_seq, dc_next, dg, dh, order, reverse, recurrent_t, dtype)
        dg_hh = dg
    else:
        dg_hh = buffer(dgates_hh_out)
        _gru_backward(saved, dh_seq, dg, dg_hh, dh, order, h_prev_of, recurrent_t, dtype)

    dx = None
    if need_dx:
        w_ih = layer_params["weight_ih"]
        dx = np.empty((k, batch, w_ih.shape[1]), dtype)
        np.dot(dg.reshape(k * batch, gh), w_ih, out=dx.reshape(k * batch, w_ih.shape[1]))
    return dx, dh, dc0, {"dgates_ih": dg, "dgates_hh": dg_hh}


def _lstm_backward(saved, dh_seq, dc_next, dg, dh, order, reverse, recurrent_t, dtype):
    gates, cs, tcs = saved["gates"], saved["c"], saved["tanh_c"]
    k, batch, hidden = cs.shape
    hh, h3 = 2 * hidden, 3 * hidden
    dc = np.zeros((batch, hidden), dtype)
    if dc_next is not None:
        dc[...] = dc_next
    dht = np.empty((batch, hidden), dtype)
    tmp = np.empty((batch, hidden), dtype)
    for j in order:
        if reverse:
            c_prev = cs[j + 1] if j < k - 1 else saved["c0"]
        else:
            c_prev = cs[j - 1] if j > 0 else saved["c0"]
        g, d, tc = gates[j], dg[j], tcs[j]
        gi, gf, gg, go = g[:, :hidden], g[:, hidden:hh], g[:, hh:h3], g[:, h3:]
        di, df, dgg, do = d[:, :hidden], d[:, hidden:hh], d[:, hh:h3], d[:, h3:]
        if dh_seq is None:
            dht[...] = dh
        else:
            np.add(dh, dh_seq[j], out=dht)
        # o gate and the path into c through tanh(c)
        np.multiply(dht, tc, out=do)
        np.multiply(tc, tc, out=tmp)
        np.subtract(1, tmp, out=tmp)
        tmp *= go
        tmp *= dht
        dc += tmp
        np.subtract(1, go, out=tmp)
        tmp *= go
        do *= tmp
        # i gate: dc * g * i(1-i)
        np.multiply(dc, gg, out=di)
        np.subtract(1, gi, out=tmp)
        tmp *= gi
        di *= tmp
        # f gate: dc * c_prev * f(1-f)
        np.multiply(dc, c_prev, out=df)
        np.subtract(1, gf, out=tmp)
        tmp *= gf
        df *= tmp
        # g: dc * i * (1-g^2)
        np.multiply(dc, gi, out=dgg)
        np.multiply(gg, gg, out=tmp)
        np.subtract(1, tmp, out=tmp)
        dgg *= tmp
        # state gradients handed to the previous step
        dc *= gf
        recurrent_t(d, dh)
    return dc


def _gru_backward(saved, dh_seq, dg, dg_hh, dh, order, h_prev_of, recurrent_t, dtype):
    gates, hns = saved["gates"], saved["hn"]
    batch, hidden = dh.shape
    hh = 2 * hidden
    dht = np.empty((batch, hidden), dtype)
    tmp = np.empty((batch, hidden), dtype)
    for j in order:
        g, d, dhh, hn = gates[j], dg[j], dg_hh[j], hns[j]
        r, z, n = g[:, :hidden], g[:, hidden:hh], g[:, hh:]
        dr, dz, dn = d[:, :hidden], d[:, hidden:hh], d[:, hh:]
        hp = h_prev_of(j)
        if dh_seq is None:
            dht[...] = dh
        else:
            np.add(dh, dh_seq[j], out=dht)
        # n: dht * (1-z) * (1-n^2)
        np.subtract(1, z, out=tmp)
        np.multiply(dht, tmp, out=dn)
        np.multiply(n, n, out=tmp)
        np.subtract(1, tmp, out=tmp)
        dn *= tmp
        # z: dht * (h_prev - n) * z(1-z)
        np.subtract(hp, n, out=dz)
        dz *= dht
        np.subtract(1, z, out=tmp)
        tmp *= z
        dz *= tmp
        # r: dn_pre * (W_hn h + b_hn) * r(1-r)
        np.multiply(dn, hn, out=dr)
        np.subtract(1, r, out=tmp)
        tmp *= r
        dr *= tmp
        # recurrent side: [dr, dz, dn * r]
        dhh[:, :hh] = d[:, :hh]
        np.multiply(dn, r, out=dhh[:, hh:])
        recurrent_t(dhh, dh)
        np.multiply(dht, z, out=tmp)
        dh += tmp


def layer_weight_grads(
    cell: str,
    x: np.ndarray,
    h_seq: np.ndarray,
    h0: np.ndarray | None,
    dgates_ih: np.ndarray,
    dgates_hh: np.ndarray | None = None,
    reverse: bool = False,
) -> dict[str, np.ndarray]:
    """Weight-gradient task of one layer-direction: GEMMs over all T steps at once.

    ``dW_ih = dG_ih^T X`` with ``dG_ih`` (T*B, GH) and ``X`` (T*B, I) as one GEMM;
    ``dW_hh = dG_hh^T H_prev`` as one GEMM over the T-1 steps whose previous state is in
    ``h_seq`` plus a rank-B update for the step fed by ``h0`` (skipped when h0 is None);
    ``db_ih``/``db_hh`` are column sums. For a sparse layer ``weight_hh``'s gradient is
    returned dense (the dense-equivalent gradient; mask it to train a fixed sparsity pattern).

    Parameters
    ----------
    cell : {"rnn", "lstm", "gru"}
    x : ndarray, shape (T, B, I)
        The layer's input over the whole sequence.
    h_seq : ndarray, shape (T, B, H)
        This direction's hidden states, time order.
    h0 : ndarray, shape (B, H), or None
        Its initial state.
    dgates_ih, dgates_hh : ndarray, shape (T, B, GH)
        Gate gradients from :func:`cell_chunk_backward` (concatenated over chunks, time order);
        ``dgates_hh`` defaults to ``dgates_ih`` (rnn, lstm).
    reverse : bool
        Direction, which decides which neighbour is the previous state.

    Returns
    -------
    dict
        ``weight_ih`` (GH, I), ``weight_hh`` (GH, H), ``bias_ih`` (GH,), ``bias_hh`` (GH,).

    Examples
    --------
    >>> import numpy as np
    >>> g = layer_weight_grads("rnn", np.ones((3, 1, 2)), np.ones((3, 1, 4)), None,
    ...                        np.ones((3, 1, 4)))
    >>> g["weight_ih"][0], g["weight_hh"][0], g["bias_ih"]
    (array([3., 3.]), array([2., 2., 2., 2.]), array([3., 3., 3., 3.]))
    """
    _check_cell(cell)
    if dgates_hh is None:
        dgates_hh = dgates_ih
    steps, batch, n_in = x.shape
    hidden = h_seq.shape[2]
    gh = dgates_ih.shape[2]
    dtype = dgates_ih.dtype
    g_ih = dgates_ih.reshape(steps * batch, gh)
    g_hh = dgates_hh.reshape(steps * batch, gh)
    x_flat = np.ascontiguousarray(x, dtype=dtype).reshape(steps * batch, n_in)
    dw_ih = g_ih.T @ x_flat
    dw_hh = np.zeros((gh, hidden), dtype)
    h_flat = h_seq.reshape(steps * batch, hidden)
    tb = steps * batch
    if steps > 1:
        if reverse:
            np.dot(g_hh[: tb - batch].T, h_flat[batch:], out=dw_hh)
        else:
            np.dot(g_hh[batch:].T, h_flat[: tb - batch], out=dw_hh)
    if h0 is not None:
        first = g_hh[tb - batch :] if reverse else g_hh[:batch]
        dw_hh += first.T @ np.asarray(h0, dtype=dtype)
    return {
        "weight_ih": dw_ih,
        "weight_hh": dw_hh,
        "bias_ih": g_ih.sum(axis=0),
        "bias_hh": g_hh.sum(axis=0),
    }


# ---- output layer ----------------------------------------------------------------------------
def output_forward(
    weight_out: np.ndarray, bias_out: np.ndarray, h_top: np.ndarray, softmax: bool
) -> np.ndarray:
    """Output layer over all steps as one GEMM: ``o = c + V h``, then softmax if asked.

    Parameters
    ----------
    weight_out : ndarray, shape (O, D*H)
    bias_out : ndarray, shape (O,)
    h_top : ndarray, shape (T, B, D*H)
        Top layer output (both directions concatenated, ``[fwd, rev]``).
    softmax : bool
        Apply a softmax over the last axis (probabilities, not log-probabilities).

    Returns
    -------
    ndarray, shape (T, B, O)

    Examples
    --------
    >>> import numpy as np
    >>> output_forward(np.zeros((3, 2)), np.zeros(3), np.ones((1, 1, 2)), softmax=True)
    array([[[0.33333333, 0.33333333, 0.33333333]]])
    """
    steps, batch, width = h_top.shape
    n_out = weight_out.shape[0]
    y = np.empty((steps, batch, n_out), weight_out.dtype)
    flat = y.reshape(steps * batch, n_out)
    matmul_xwt(np.ascontiguousarray(h_top).reshape(steps * batch, width), weight_out, flat)
    flat += bias_out
    if softmax:
        flat -= flat.max(axis=1, keepdims=True)
        np.exp(flat, out=flat)
        flat /= flat.sum(axis=1, keepdims=True)
    return y


def output_backward(
    weight_out: np.ndarray,
    h_top: np.ndarray,
    y: np.ndarray,
    grad_y: np.ndarray,
    softmax: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of :func:`output_forward` given ``grad_y = dL/dy``.

    Returns
    -------
    dh_top : ndarray, shape (T, B, D*H)
    d_weight_out : ndarray, shape (O, D*H)
    d_bias_out : ndarray, shape (O,)

    Examples
    --------
    >>> import numpy as np
    >>> v, h = np.ones((2, 3)), np.ones((1, 1, 3))
    >>> y = output_forward(v, np.zeros(2), h, softmax=False)
    >>> [a.shape for a in output_backward(v, h, y, np.ones_like(y), softmax=False)]
    [(1, 1, 3), (2, 3), (2,)]
    """
    steps, batch, width = h_top.shape
    n_out = weight_out.shape[0]
    g = np.ascontiguousarray(grad_y, dtype=weight_out.dtype).reshape(steps * batch, n_out)
    if softmax:
        yf = y.reshape(steps * batch, n_out)
        g = yf * (g - np.einsum("ij,ij->i", g, yf)[:, None])
    h_flat = np.ascontiguousarray(h_top).reshape(steps * batch, width)
    dh = (g @ weight_out).reshape(steps, batch, width)
    return dh, g.T @ h_flat, g.sum(axis=0)
