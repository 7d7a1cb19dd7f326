"""The products of activations by weight matrices that every chunk task runs: dense products in
row blocks sized for OpenBLAS's small-matrix kernel (:func:`matmul_xwt`, :func:`row_blocks`),
the recurrent product of one step (:class:`Recurrent`: dense GEMM or GEMVs, or CSR sparse), and
its split by rows across helper cores (:func:`split_rows`, :func:`recurrent_rows`).
"""

from __future__ import annotations

import functools
import math
import os
from typing import Any

import numpy as np
import scipy.sparse as sp

try:  # the low-level CSR kernels accumulate into a caller's buffer: no per-step allocation
    from scipy.sparse._sparsetools import csc_matvec as _csc_matvec
    from scipy.sparse._sparsetools import csc_matvecs as _csc_matvecs
    from scipy.sparse._sparsetools import csr_matvec as _csr_matvec
    from scipy.sparse._sparsetools import csr_matvecs as _csr_matvecs
except ImportError:  # pragma: no cover - fall back on the public (allocating) operators
    _csc_matvec = _csc_matvecs = _csr_matvec = _csr_matvecs = None

__all__ = [
    "Recurrent",
    "blas_small_gemm",
    "gemv_max_batch",
    "matmul_xwt",
    "recurrent_rows",
    "row_blocks",
    "split_rows",
]


# ---- the dense products ----------------------------------------------------------------------
#: Largest ``M * N * K`` OpenBLAS runs with its small-matrix kernel (see :func:`row_blocks`).
SMALL_GEMM_MAX_MNK = 1_000_000


#: Largest left operand (bytes) for which splitting a product into row blocks pays: each block
#: reads all of it again, from L1 while it fits there (see :func:`row_blocks`).
SMALL_GEMM_MAX_X_BYTES = 40 * 1024


#: OpenBLAS core types with the small-matrix GEMM kernel (``*gemm_small_kernel_permit``).
SMALL_GEMM_ARCHS = frozenset({"SkylakeX", "Cooperlake", "SapphireRapids"})


@functools.cache
def blas_small_gemm() -> bool:
    """Whether numpy's BLAS runs small products with OpenBLAS's small-matrix kernel.

    True for OpenBLAS on the core types of :data:`SMALL_GEMM_ARCHS`; the environment variable
    ``WPSIM_SMALL_GEMM`` (``0`` or ``1``) overrides the detection, to compare the two ways.
    """
    forced = os.environ.get("WPSIM_SMALL_GEMM")
    if forced in ("0", "1"):
        return forced == "1"
    from threadpoolctl import threadpool_info

    return any(
        info.get("internal_api") == "openblas" and info.get("architecture") in SMALL_GEMM_ARCHS
        for info in threadpool_info()
    )


@functools.cache
def row_blocks(m: int, k: int, n: int, itemsize: int) -> tuple[slice, ...] | None:
    """Blocks of the ``n`` rows of ``W`` for ``X (m, k) @ W^T``, or None to run it whole.

    OpenBLAS runs a product of at most :data:`SMALL_GEMM_MAX_MNK` ``M*N*K`` with its
    small-matrix kernel, straight from the operands; a larger one first packs all of ``W``,
    which a product with few rows of ``X`` pays in full on every call. Measured here (Xeon,
    AVX-512, OpenBLAS 0.3.31, one thread), fp32 with ``W`` in the kernels' order: an LSTM step
    at H=256 and batch 4, ``(4, 256) @ (256, 1024)``, took 63 us whole and 15 us as two blocks
    of 512 rows; batch 16, 100 against 56 us; H=512 batch 2, 381 against 143 us (two GEMVs:
    300); a 10-step chunk's input projection at H=256, 97 against 53 us. Each block reads all
    of ``X`` again, which pays only while ``X`` stays in L1 (48 KiB here; up to
    :data:`SMALL_GEMM_MAX_X_BYTES`): a GRU's 20 rows at H=512 (40 KiB) took 491 us whole and
    324 as blocks, 40 rows at H=512 (80 KiB) 837 us whole and 1437 as blocks; the LSTM's 20
    rows at H=512 were even (0.95x). So a product is split into near-equal blocks of a multiple
    of 16 rows (one AVX-512 register of fp32), each within the small kernel's limit, when ``m >=
    2`` (one row is a GEMV), the whole is beyond that limit, ``X`` fits the bound, and the BLAS
    has the kernel (:func:`blas_small_gemm`).

    Examples
    --------
    >>> blocks = row_blocks(4, 256, 1024, 4)
    >>> blocks is None or [(s.start, s.stop) for s in blocks] == [(0, 512), (512, 1024)]
    True
    >>> row_blocks(1, 256, 1024, 4) is None  # a GEMV
    True
    """
    if (
        m < 2
        or m * k * n <= SMALL_GEMM_MAX_MNK
        or m * k * itemsize > SMALL_GEMM_MAX_X_BYTES
        or not blas_small_gemm()
    ):
        return None
    most = max(16, SMALL_GEMM_MAX_MNK // (m * k) // 16 * 16)
    count = math.ceil(n / most)
    rows = min(most, math.ceil(n / count / 16) * 16)  # near-equal blocks
    return tuple(slice(start, min(start + rows, n)) for start in range(0, n, rows))


def matmul_xwt(x: np.ndarray, weight: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out[...] = x @ weight^T``: the kernels' product of activations by a weight matrix.

    ``x`` (m, k), ``weight`` (n, k) dense (the kernels keep it in Fortran order, so that
    ``weight^T`` is C-contiguous), ``out`` (m, n) with unit stride along its rows (it may be
    some columns of a wider array). Split into row blocks of ``weight`` where that is faster
    (:func:`row_blocks`); each output element is one dot product over ``k`` either way.

    Examples
    --------
    >>> import numpy as np
    >>> w, x = np.arange(6.0).reshape(3, 2), np.ones((2, 2))
    >>> matmul_xwt(x, w, np.empty((2, 3)))
    array([[1., 5., 9.],
           [1., 5., 9.]])
    """
    blocks = row_blocks(x.shape[0], x.shape[1], weight.shape[0], x.itemsize)
    if blocks is None:
        if out.flags.c_contiguous:
            np.dot(x, weight.T, out=out)
        else:  # e.g. a member's columns of a wider buffer: matmul writes it in place
            np.matmul(x, weight.T, out=out)
    else:
        w_t = weight.T
        for rows in blocks:
            np.matmul(x, w_t[:, rows], out=out[:, rows])
    return out


#: Largest batch whose recurrent product runs as one GEMV per batch row where the BLAS lacks
#: the small-matrix kernel (see ``Recurrent.hh``; with it, a blocked GEMM is faster from 2 rows).
SKINNY_BATCH = 2


def gemv_max_batch() -> int:
    """Largest batch whose one-core recurrent product runs as GEMVs, one per batch row: 1 with
    the BLAS's small-matrix kernel (:func:`row_blocks`), :data:`SKINNY_BATCH` without."""
    return 1 if blas_small_gemm() else SKINNY_BATCH


class Recurrent:
    """The recurrent products of one layer-direction, into caller buffers.

    ``hh(h, out)`` writes ``h @ W_hh^T`` (forward) and ``hh_t(g, out)`` writes ``g @ W_hh``
    (backward) for a dense or CSR ``W_hh`` (G*H, H). Sparse buffers are allocated once here,
    so build one per layer-direction and pass ``.hh`` / ``.hh_t`` as ``recurrent`` /
    ``recurrent_t`` to every chunk task of it.

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> w = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    >>> rec = Recurrent(sp.csr_array(w), batch=1, dtype=np.dtype("float64"))
    >>> out = np.empty((1, 3))
    >>> rec.hh(np.array([[1.0, 1.0]]), out)
    >>> out
    array([[1., 2., 3.]])
    """

    def __init__(self, weight_hh: Any, batch: int, dtype: np.dtype) -> None:
        self.sparse = sp.issparse(weight_hh)
        #: the dense array, or the scipy CSR matrix when ``sparse``
        self.w: Any
        if not self.sparse:
            self.w = np.asarray(weight_hh, dtype=dtype)
            self.w_t = self.w.T
            self.gemv_rows = batch <= gemv_max_batch()
            blocks = row_blocks(batch, self.w.shape[1], self.w.shape[0], self.w.itemsize)
            self.blocks = [(rows, self.w_t[:, rows]) for rows in blocks] if blocks else None
            return
        w = weight_hh.tocsr()
        if w.dtype != dtype:
            w = w.astype(dtype)
        self.w = w
        self.rows, self.cols = w.shape
        self.batch = batch
        self.fast = _csr_matvecs is not None and w.indices.dtype == w.indptr.dtype
        if self.fast:
            self._h_t = np.empty((self.cols, batch), dtype)  # h^T
            self._gh_t = np.empty((self.rows, batch), dtype)  # (h W^T)^T
            self._g_t = np.empty((self.rows, batch), dtype)  # g^T
            self._dh_t = np.empty((self.cols, batch), dtype)  # (g W)^T

    def hh(self, h: np.ndarray, out: np.ndarray) -> None:
        """``out[...] = h @ W^T`` (out is (B, G*H), C-contiguous)."""
        if not self.sparse:
            if self.blocks is not None:  # only for a batch of 2 rows or more
                for rows, w_t in self.blocks:  # see row_blocks
                    np.matmul(h, w_t, out=out[:, rows])
            elif self.gemv_rows and out.flags.c_contiguous:
                # without the small-matrix kernel and with W in Fortran order
                # (kernels.params.WEIGHT_ORDER), one GEMV per row beats a GEMM of 2 rows; from 3
                # rows the GEMM is as fast or faster (benchmarks/kernel.py records the numbers)
                w = self.w
                for b in range(len(h)):
                    np.dot(w, h[b], out=out[b])
            else:
                np.dot(h, self.w_t, out=out)
        elif self.fast and self.batch == 1 and out.flags.c_contiguous:
            # one vector: the single mat-vec kernel, straight into the caller's buffer
            w = self.w
            out.fill(0)
            _csr_matvec(
                self.rows,
                self.cols,
                w.indptr,
                w.indices,
                w.data,
                np.ascontiguousarray(h).reshape(-1),
                out.reshape(-1),
            )
        elif self.fast:
            w = self.w
            self._h_t[...] = h.T
            self._gh_t.fill(0)
            _csr_matvecs(
                self.rows,
                self.cols,
                self.batch,
                w.indptr,
                w.indices,
                w.data,
                self._h_t.ravel(),
                self._gh_t.ravel(),
            )
            out[...] = self._gh_t.T
        else:
            out[...] = (self.w @ h.T).T

    def hh_t(self, g: np.ndarray, out: np.ndarray) -> None:
        """``out[...] = g @ W`` (g is (B, G*H), out is (B, H))."""
        if not self.sparse:
            np.dot(g, self.w, out=out)
        elif self.fast and self.batch == 1 and out.flags.c_contiguous:
            w = self.w
            out.fill(0)
            _csc_matvec(
                self.cols,
                self.rows,
                w.indptr,
                w.indices,
                w.data,
                np.ascontiguousarray(g).reshape(-1),
                out.reshape(-1),
            )
        elif self.fast:
            w = self.w
            self._g_t[...] = g.T
            self._dh_t.fill(0)
            # W^T in CSC form has exactly W's CSR arrays.
            _csc_matvecs(
                self.cols,
                self.rows,
                self.batch,
                w.indptr,
                w.indices,
                w.data,
                self._g_t.ravel(),
                self._dh_t.ravel(),
            )
            out[...] = self._dh_t.T
        else:
            out[...] = (self.w.T @ g.T).T


# ---- the split recurrent GEMM (layerwise / helper-core policies) ----------------------------
def split_rows(n_rows: int, parts: int) -> list[slice]:
    """Split ``n_rows`` gate rows into ``parts`` contiguous, near-equal slices.

    The first ``n_rows % parts`` slices get one extra row; empty slices are dropped.

    Examples
    --------
    >>> split_rows(10, 3)
    [slice(0, 4, None), slice(4, 7, None), slice(7, 10, None)]
    """
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    base, extra = divmod(n_rows, parts)
    slices, start = [], 0
    for p in range(parts):
        stop = start + base + (1 if p < extra else 0)
        if stop > start:
            slices.append(slice(start, stop))
        start = stop
    return slices


def recurrent_rows(
    weight_hh: Any,
    h_prev: np.ndarray,
    rows: slice | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """One worker's share of the recurrent GEMM: ``h_prev @ weight_hh[rows]^T`` (no bias).

    The layerwise policy splits the ``G*H`` rows of ``W_hh`` (all gates stacked, PyTorch order)
    across workers; worker ``p`` computes the columns ``rows_p`` of ``gates_hh = h_prev @
    W_hh^T`` and the blocks are concatenated (written side by side into one (B, G*H) buffer)
    before the element-wise cell update. Each output element is a dot product over the full
    ``H``, so the split needs no reduction. Pass the pre-sliced block with ``rows=None`` to
    avoid re-slicing a sparse matrix every step.

    Parameters
    ----------
    weight_hh : ndarray or scipy.sparse matrix, shape (G*H, H) or (rows, H) when pre-sliced
    h_prev : ndarray, shape (B, H)
    rows : slice, optional
        Rows of ``weight_hh`` to use; ``None`` uses all of them.
    out : ndarray, shape (B, n_rows), optional
        Buffer to write into (may be a strided view of the full (B, G*H) buffer).

    Returns
    -------
    ndarray, shape (B, n_rows)

    Examples
    --------
    >>> import numpy as np
    >>> w = np.arange(12.0).reshape(6, 2)
    >>> h = np.ones((1, 2))
    >>> full = np.empty((1, 6))
    >>> for rows in split_rows(6, 2):
    ...     _ = recurrent_rows(w, h, rows, out=full[:, rows])
    >>> full
    array([[ 1.,  5.,  9., 13., 17., 21.]])
    """
    w = weight_hh if rows is None else weight_hh[rows]
    if sp.issparse(w):
        result = (w @ h_prev.T).T
        if out is None:
            return np.ascontiguousarray(result)
        out[...] = result
        return out
    if out is None:
        return h_prev @ w.T
    if out.flags.c_contiguous and out.dtype == np.result_type(h_prev, w):
        matmul_xwt(h_prev, w, out)
    else:
        out[...] = h_prev @ w.T
    return out
