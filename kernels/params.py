"""Parameters: names, shapes, deterministic initialisation, pruning, PyTorch state_dict loading.

Names and shapes are those of the workload's cell declaration (:mod:`wpsim.cells`; PyTorch's for
the cells PyTorch has), each with the suffix ``_l{k}`` of its layer ``k`` and ``_reverse`` for
the reverse direction, plus the output layer. For an LSTM, as ``torch.nn.LSTM``::

    weight_ih_l{k}[_reverse]   (4*H, I_k)
    weight_hh_l{k}[_reverse]   (4*H, H)
    bias_ih_l{k}[_reverse]     (4*H,)
    bias_hh_l{k}[_reverse]     (4*H,)
    weight_out                 (output_size, D*W)     only when output != none
    bias_out                   (output_size,)

where ``I_k`` is the network input for ``k = 0`` and ``D*W`` above, ``W`` the width of the
cell's output (:func:`wpsim.cells.output_width`: ``H``, or ``P`` for a projected LSTM).

A parameter dict is a plain ``dict[str, numpy.ndarray]`` in that (PyTorch state_dict) order,
in the workload's dtype. ``weight_hh`` stays a dense array even for sparse workloads (pruned
entries are zeros, so the dict loads into PyTorch unchanged); :func:`layer_params` hands the
kernels a CSR copy of every matrix read on the recurrence
(:func:`wpsim.cells.recurrent_matrices`) when ``workload.density < 1``.

Memory order: the kernels multiply by the transposed weights (``X @ W_ih^T``, ``h @ W_hh^T``),
and OpenBLAS runs those products 1.5-2x faster for 2-20 rows when ``W^T`` is C-contiguous, i.e.
when ``W`` is stored in Fortran order (measured here: 10 rows x W (1024, 256), 10.5 vs 19.2 us a
row; batch 4 x W (2048, 512), 102 vs 169 us a row). So :func:`init_params` and
:func:`load_state_dict` return the weight matrices in Fortran order, and :func:`layer_params`
(which every kernel caller goes through) converts any other matrix once (:data:`WEIGHT_ORDER`).
Every array they return also starts on a 64-byte boundary (:func:`aligned`). Shapes and values
stay PyTorch's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final, Literal

import numpy as np
import scipy.sparse as sp

from wpsim.cells import Cell, nonzeros, output_width, recurrent_matrices
from wpsim.cells import param_shapes as cell_param_shapes
from wpsim.errors import ConfigError
from wpsim.model.workload import Workload

__all__ = [
    "aligned",
    "chunk_bounds",
    "compute_dtype",
    "layer_input_width",
    "network_cell",
    "init_input",
    "init_params",
    "layer_params",
    "load_state_dict",
    "param_names",
    "param_shapes",
    "prune_largest",
    "row_block",
    "suffix",
]

#: A contiguous memory order: row-major ``"C"`` or column-major ``"F"`` (numpy's names).
MemoryOrder = Literal["C", "F"]
#: Memory order of the dense weight matrices the kernels use (see the module docstring).
WEIGHT_ORDER: Final = "F"
#: Alignment of arrays the kernels stream, in bytes (the executor's segment uses the same).
ALIGN_BYTES = 64


def aligned(array: np.ndarray, order: Literal["C", "F", "K"] = "K") -> np.ndarray:
    """A copy of ``array`` whose data starts on an :data:`ALIGN_BYTES` boundary (``array``
    itself when it already does and ``order`` allows it).

    numpy's allocations are 16-byte aligned, and where an array starts decides how fast it
    streams: measured here (AVX-512), a dot product over 1 MiB read 147 GB/s when 64-byte
    aligned and 75 GB/s when not, a GEMV over a 1 MiB matrix took 11.4 against 16.6 us. So
    every array the kernels stream, and every one the calibration times, is aligned, like the
    executor's shared arrays.

    Examples
    --------
    >>> a = aligned(np.ones((3, 5), np.float32), order="F")
    >>> a.ctypes.data % ALIGN_BYTES, a.flags.f_contiguous, float(a.sum())
    (0, True, 15.0)
    """
    array = np.asarray(array)
    layout: MemoryOrder
    if order == "K":
        layout = "F" if array.flags.f_contiguous and not array.flags.c_contiguous else "C"
    else:
        layout = order
    contiguous = array.flags.f_contiguous if layout == "F" else array.flags.c_contiguous
    if contiguous and array.ctypes.data % ALIGN_BYTES == 0:
        return array
    raw = np.empty(array.nbytes + ALIGN_BYTES, np.uint8)
    start = -raw.ctypes.data % ALIGN_BYTES
    out = raw[start : start + array.nbytes].view(array.dtype).reshape(array.shape, order=layout)
    out[...] = array
    return out


def row_block(weight: np.ndarray, rows: slice) -> np.ndarray:
    """``weight[rows]`` as one aligned block in :data:`WEIGHT_ORDER`: a worker's share of a
    product split by rows. (A row slice of a Fortran-order matrix is strided, and numpy would
    copy it into BLAS's layout on every product.)

    Examples
    --------
    >>> w = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3))
    >>> b = row_block(w, slice(2, 4))
    >>> b.tolist(), b.flags.f_contiguous, b.ctypes.data % ALIGN_BYTES
    ([[6.0, 7.0, 8.0], [9.0, 10.0, 11.0]], True, 0)
    """
    return aligned(np.asarray(weight[rows], order=WEIGHT_ORDER))


def suffix(layer: int, reverse: bool = False) -> str:
    """PyTorch's parameter-name suffix for a layer-direction.

    Examples
    --------
    >>> suffix(0), suffix(2, reverse=True)
    ('_l0', '_l2_reverse')
    """
    return f"_l{layer}" + ("_reverse" if reverse else "")


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


def compute_dtype(workload: Workload) -> np.dtype:
    """The dtype the kernels compute in: the workload's, but float32 for float16.

    bfloat16 (numpy has no such type) and skip-input layers (``input: 0``) are modelled by
    ``simulate``/``predict`` only: a one-line error here, before any array is made.

    Examples
    --------
    >>> compute_dtype(Workload(hidden=2, input=2, seq_len=1, dtype="float16"))
    dtype('float32')
    """
    if workload.dtype == "bfloat16":
        raise ConfigError(
            "workload dtype bfloat16: modelled by simulate/predict, not executed by the numpy "
            "kernels (numpy has no bfloat16); use float32, float64 or float16"
        )
    if workload.streams > 1:
        raise ConfigError(
            f"workload streams {workload.streams}: modelled by simulate/predict, not executed by "
            "the numpy kernels; use streams: 1"
        )
    if workload.skip_input:
        raise ConfigError(
            "workload input 0 (skip input): modelled by simulate/predict, not executed by the "
            "numpy kernels; use an input size >= 1"
        )
    return np.dtype(np.float32 if workload.dtype == "float16" else workload.dtype)


def network_cell(workload: Workload) -> Cell:
    """The declaration of the workload's cell (:mod:`wpsim.cells`), which the kernels compute.

    Examples
    --------
    >>> network_cell(Workload(cell="gru", hidden=2, input=2, seq_len=1)).label
    'gru'
    """
    return workload.cell_declaration


def layer_input_width(workload: Workload, layer: int, cell: Cell | None = None) -> int:
    """Features of layer ``layer``'s input: the network input, or both directions of the
    output of the layer below.

    Examples
    --------
    >>> layer_input_width(Workload(hidden=4, input=3, seq_len=1, bidirectional=True), 1)
    8
    """
    if layer == 0:
        return workload.input
    cell = cell or network_cell(workload)
    return workload.directions * output_width(cell, workload.hidden)


def param_shapes(workload: Workload) -> dict[str, tuple[int, ...]]:
    """Every parameter's name and shape, in PyTorch state_dict order: the declaration's
    parameters of each layer-direction, then the output layer's.

    Examples
    --------
    >>> w = Workload(cell="gru", layers=2, hidden=4, input=3, seq_len=2, bidirectional=True)
    >>> shapes = param_shapes(w)
    >>> shapes["weight_ih_l0"], shapes["weight_ih_l1_reverse"], len(shapes)
    ((12, 3), (12, 8), 16)
    """
    cell = network_cell(workload)
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(workload.layers):
        layer_shapes = cell_param_shapes(
            cell, workload.hidden, layer_input_width(workload, layer, cell)
        )
        for d in range(workload.directions):
            s = suffix(layer, d == 1)
            shapes.update({name + s: shape for name, shape in layer_shapes.items()})
    if workload.output != "none":
        width = workload.directions * output_width(cell, workload.hidden)
        shapes["weight_out"] = (workload.output_size, width)
        shapes["bias_out"] = (workload.output_size,)
    return shapes


def param_names(workload: Workload) -> list[str]:
    """Parameter names in PyTorch state_dict order (see :func:`param_shapes`).

    Examples
    --------
    >>> param_names(Workload(cell="rnn", hidden=2, input=2, seq_len=1))
    ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']
    """
    return list(param_shapes(workload))


def prune_largest(weight: np.ndarray, nonzeros: int) -> np.ndarray:
    """Keep the ``nonzeros`` entries of largest magnitude, zero the rest (a new array).

    Ties are broken by flat (row-major) index, lowest first, so the result is deterministic.

    Examples
    --------
    >>> prune_largest(np.array([[0.1, -0.5], [0.3, 0.2]]), 2)
    array([[ 0. , -0.5],
           [ 0.3,  0. ]])
    """
    flat = np.asarray(weight).ravel()
    keep = np.argsort(-np.abs(flat), kind="stable")[:nonzeros]
    pruned = np.zeros_like(flat)
    pruned[keep] = flat[keep]
    return pruned.reshape(np.shape(weight))


def init_params(workload: Workload, seed: int = 0) -> dict[str, np.ndarray]:
    """Deterministic random parameters, initialised like PyTorch.

    Every entry is drawn from ``uniform(-1/sqrt(H), 1/sqrt(H))`` (the output layer from
    ``uniform(-1/sqrt(D*H), 1/sqrt(D*H))``, nn.Linear's bound) by one
    ``numpy.random.default_rng(seed)`` in state_dict order, in float64, then cast to the
    workload's dtype. When ``workload.density < 1`` every matrix read on the recurrence
    (``weight_hh``; :func:`wpsim.cells.recurrent_matrices`) is magnitude-pruned to
    ``nonzeros(entries, density)`` entries (:func:`prune_largest`); the pruned entries are
    stored as zeros.

    Parameters
    ----------
    workload : Workload
    seed : int

    Returns
    -------
    dict[str, ndarray]

    Examples
    --------
    >>> w = Workload(cell="lstm", hidden=4, input=3, seq_len=2, density=0.25)
    >>> p = init_params(w, seed=1)
    >>> list(p), p["weight_hh_l0"].dtype, int((p["weight_hh_l0"] != 0).sum())
    (['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0'], dtype('float32'), 16)
    """
    rng = np.random.default_rng(seed)
    dtype = np.dtype(workload.dtype)
    cell = network_cell(workload)
    bound = 1.0 / math.sqrt(workload.hidden)
    out_bound = 1.0 / math.sqrt(workload.directions * output_width(cell, workload.hidden))
    pruned = _recurrent_names(workload, cell) if workload.sparse else set()
    params: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(workload).items():
        b = out_bound if name.endswith("_out") else bound
        value = rng.uniform(-b, b, size=shape)
        if name in pruned:
            value = prune_largest(value, nonzeros(value.size, workload.density))
        order: MemoryOrder = WEIGHT_ORDER if name.startswith("weight_") else "C"
        params[name] = aligned(value.astype(dtype, order=order))
    return params


def _recurrent_names(workload: Workload, cell: Cell) -> set[str]:
    """Full names of the matrices read on the recurrence, every layer-direction."""
    return {
        name + suffix(layer, d == 1)
        for name in recurrent_matrices(cell)
        for layer in range(workload.layers)
        for d in range(workload.directions)
    }


def init_input(workload: Workload, seed: int = 0) -> np.ndarray:
    """A deterministic standard-normal input ``x`` of shape (seq_len, batch, input).

    Examples
    --------
    >>> init_input(Workload(hidden=2, input=3, seq_len=4, batch=2)).shape
    (4, 2, 3)
    """
    rng = np.random.default_rng(seed)
    shape = (workload.seq_len, workload.batch, workload.input)
    return rng.standard_normal(shape).astype(workload.dtype)


def layer_params(
    params: Mapping[str, Any],
    layer: int,
    reverse: bool = False,
    *,
    cell: Cell,
    sparse: bool = False,
    dtype: Any = None,
) -> dict[str, Any]:
    """The parameters of one layer-direction under the declaration's short names.

    Parameters
    ----------
    params : mapping
        A parameter dict (:func:`init_params`, :func:`load_state_dict`).
    layer : int
    reverse : bool
    cell : Cell
        The declaration (:func:`network_cell`), which names the parameters.
    sparse : bool
        Give the matrices read on the recurrence as ``scipy.sparse.csr_array`` (zeros dropped).
    dtype : dtype, optional
        Cast to this dtype (no copy when it already matches); pass
        :func:`compute_dtype` for float16 workloads.

    Returns
    -------
    dict
        Each parameter of the declaration (dense matrices in :data:`WEIGHT_ORDER`).

    Examples
    --------
    >>> w = Workload(cell="rnn", hidden=3, input=2, seq_len=1, density=0.5)
    >>> lp = layer_params(init_params(w), 0, cell=network_cell(w), sparse=True)
    >>> lp["weight_ih"].shape, lp["weight_hh"].format, lp["weight_hh"].nnz
    ((3, 2), 'csr', 4)
    """
    s = suffix(layer, reverse)
    recurrent = set(recurrent_matrices(cell))
    out: dict[str, Any] = {}
    for p in cell.params:
        value = params[p.name + s]
        if sp.issparse(value):
            value = value.tocsr()
            if dtype is not None and value.dtype != dtype:
                value = value.astype(dtype)
            if not sparse:
                value = value.toarray(order=WEIGHT_ORDER)
        elif len(p.shape) == 2:
            # no copy when it already is in that order and aligned
            value = aligned(np.asarray(value, dtype=dtype, order=WEIGHT_ORDER))
            if sparse and p.name in recurrent:
                value = sp.csr_array(value)
        else:
            value = np.ascontiguousarray(value, dtype=dtype)
        out[p.name] = value
    return out


def _to_numpy(name: str, value: Any) -> Any:
    if sp.issparse(value):
        return value
    try:
        if hasattr(value, "detach"):  # a torch tensor, without importing torch
            value = value.detach().cpu()
            if str(value.dtype) == "torch.bfloat16":
                value = value.float()
            value = value.numpy()
        array = np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise ConfigError(
            f"state_dict: parameter '{name}': cannot convert to an array ({reason})"
        ) from None
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise ConfigError(f"state_dict: parameter '{name}': dtype {array.dtype} is not numeric")
    return array


def load_state_dict(
    workload: Workload, state_dict: Mapping[str, Any], *, prefix: str = ""
) -> dict[str, np.ndarray]:
    """Validate a PyTorch-style state_dict and return a parameter dict for the kernels.

    Accepts torch tensors (converted without importing torch), numpy arrays, array-likes, and
    scipy.sparse matrices for ``weight_hh``. Names must be exactly those of
    :func:`param_names` (after removing ``prefix`` from keys that start with it); the output
    layer is ``weight_out``/``bias_out``. Values are cast to the workload's dtype and
    returned in state_dict order. Sparse workloads use the weights as given (their zeros are
    skipped by the CSR kernels); nothing is pruned here.

    Parameters
    ----------
    workload : Workload
    state_dict : mapping of str to tensor or array
    prefix : str
        Leading key text to strip, e.g. ``"rnn."`` for a model's sub-module.

    Returns
    -------
    dict[str, ndarray]

    Raises
    ------
    ConfigError
        One line naming the missing, unexpected or mis-shaped parameter.

    Examples
    --------
    >>> w = Workload(cell="gru", hidden=2, input=3, seq_len=1)
    >>> p = load_state_dict(w, init_params(w))
    >>> bad = dict(p, weight_ih_l0=np.zeros((6, 4)))
    >>> try:
    ...     load_state_dict(w, bad)
    ... except ConfigError as e:
    ...     print(e)
    state_dict: parameter 'weight_ih_l0' has shape (6, 4), expected (6, 3) for this gru workload
    """
    shapes = param_shapes(workload)
    dtype = np.dtype(workload.dtype)
    given: dict[str, Any] = {}
    for key, value in state_dict.items():
        name = key[len(prefix) :] if prefix and key.startswith(prefix) else key
        if name not in shapes:
            expected = ", ".join(list(shapes)[:4])
            raise ConfigError(
                f"state_dict: unexpected parameter '{key}' for this {workload.cell} workload "
                f"(layers={workload.layers}, bidirectional={workload.bidirectional}, "
                f"output={workload.output}); expected names like {expected}"
            )
        given[name] = value
    params: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if name not in given:
            raise ConfigError(
                f"state_dict: missing parameter '{prefix}{name}' for this {workload.cell} "
                f"workload (layers={workload.layers}, bidirectional={workload.bidirectional}, "
                f"output={workload.output})"
            )
        value = _to_numpy(name, given[name])
        if tuple(value.shape) != shape:
            raise ConfigError(
                f"state_dict: parameter '{prefix}{name}' has shape {tuple(value.shape)}, "
                f"expected {shape} for this {workload.cell} workload"
            )
        if sp.issparse(value):
            if name not in _recurrent_names(workload, network_cell(workload)):
                raise ConfigError(
                    f"state_dict: parameter '{name}': only the matrices read on the recurrence "
                    "(weight_hh) may be sparse"
                )
            params[name] = value.tocsr().astype(dtype)
        else:
            order: MemoryOrder = WEIGHT_ORDER if name.startswith("weight_") else "C"
            params[name] = aligned(np.array(value, dtype=dtype, order=order))
    return params
