"""The runs a chunk kernel executes: one op forward, or one contribution of an op's backward,
as a function of a step index ``j`` (a recurrent stage calls it for each step) or of ``ALL``
(a batched stage calls it once, on whole (k, B, width) arrays).

Operands are *sequences*: a (k, B, width) array, a list of per-step (B, width) views, or a
:class:`Const` (a parameter, the same at every step). Every run writes into buffers it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from kernels.cells import sigmoid
from kernels.products import Recurrent, matmul_xwt

__all__ = [
    "ALL",
    "Const",
    "Product",
    "activation_rule",
    "forward_run",
    "pass_gradient",
    "product_rule",
    "through_product",
]

#: The index a batched stage runs with: every step at once.
ALL = slice(None)
#: ``fn(a, out)`` writing ``a @ W^T`` (forward) or ``g @ W`` (backward) into ``out``.
ProductFn = Callable[[np.ndarray, np.ndarray], None]
Run = Callable[[Any], None]
#: What a run reads or writes at step ``j`` (or :data:`ALL`): an array, a list of per-step arrays
#: or a :class:`Const`.
Indexed = Any
_UFUNCS = {"add": np.add, "sub": np.subtract, "mul": np.multiply}


class Const:
    """A parameter seen as a sequence: the same array at every index.

    Examples
    --------
    >>> Const(np.ones(2))[3]
    array([1., 1.])
    """

    __slots__ = ("value",)

    def __init__(self, value: np.ndarray) -> None:
        self.value = value

    def __getitem__(self, index: Any) -> np.ndarray:
        return self.value


class Product:
    """``a @ W^T`` and ``g @ W`` for one ``matmul`` op's weight (dense or CSR), through
    :class:`kernels.products.Recurrent` for one step's rows and one GEMM for a batched stage's.

    Examples
    --------
    >>> p = Product(np.arange(6.0).reshape(3, 2), batch=1, dtype=np.dtype("float64"))
    >>> out = np.empty((1, 3))
    >>> p.step(np.ones((1, 2)), out)
    >>> out
    array([[1., 5., 9.]])
    """

    def __init__(self, weight: Any, batch: int, dtype: np.dtype) -> None:
        self.weight = weight
        self.sparse = sp.issparse(weight)
        self.recurrent = Recurrent(weight, batch, dtype)

    def step(self, a: np.ndarray, out: np.ndarray) -> None:
        """``out[...] = a @ W^T`` for one step's (B, C) rows."""
        self.recurrent.hh(a, out)

    def batched(self, a: np.ndarray, out: np.ndarray) -> None:
        """``out[...] = a @ W^T`` for (k, B, C) rows, as one GEMM."""
        flat = out.reshape(-1, out.shape[-1])
        a2 = a.reshape(-1, a.shape[-1])
        if self.sparse:
            flat[...] = (self.weight @ a2.T).T
        else:
            matmul_xwt(a2, self.weight, flat)

    def transposed(self, g: np.ndarray, out: np.ndarray) -> None:
        """``out[...] = g @ W`` for (B, R) or (k, B, R) ``g``."""
        if self.sparse:
            if g.ndim == 2:
                self.recurrent.hh_t(g, out)
            else:
                out[...] = (self.weight.T @ g.reshape(-1, g.shape[-1]).T).T.reshape(out.shape)
        elif out.flags.c_contiguous:
            np.dot(g.reshape(-1, g.shape[-1]), self.weight, out=out.reshape(-1, out.shape[-1]))
        else:
            np.matmul(g, self.weight, out=out)


def forward_run(
    kind: str,
    args: Sequence[Any],
    out: Any,
    product: ProductFn | None = None,
    columns: Sequence[tuple[int, int]] = (),
) -> Run:
    """The forward of one op: ``out[j] = kind(args[j]...)``; ``product`` computes a ``matmul``,
    ``columns`` are the output columns of each ``concat`` operand.

    Examples
    --------
    >>> out = np.empty((2, 1, 3))
    >>> forward_run("one_minus", [np.zeros((2, 1, 3))], out)(ALL)
    >>> out[:, 0]
    array([[1., 1., 1.],
           [1., 1., 1.]])
    """
    if kind == "matmul":
        a = args[1]

        def run(j):
            product(a[j], out[j])

    elif kind in _UFUNCS:
        ufunc, a, b = _UFUNCS[kind], args[0], args[1]

        def run(j):
            ufunc(a[j], b[j], out=out[j])

    elif kind == "concat":
        parts = [(a, lo, hi) for a, (lo, hi) in zip(args, columns, strict=True)]

        def run(j):
            o = out[j]
            for a, lo, hi in parts:
                o[..., lo:hi] = a[j]

    else:
        a = args[0]
        if kind == "one_minus":

            def run(j):
                np.subtract(1.0, a[j], out=out[j])

        elif kind == "sigmoid":

            def run(j):
                sigmoid(a[j], out[j])

        elif kind == "tanh":

            def run(j):
                np.tanh(a[j], out=out[j])

        elif kind == "relu":

            def run(j):
                np.maximum(a[j], 0.0, out=out[j])

        else:  # identity

            def run(j):
                np.copyto(out[j], a[j])

    return run


# ---- backward: one contribution to an operand's gradient ------------------------------------
def pass_gradient(g: Indexed, target: Indexed, write: bool, negate: bool) -> Run:
    """``target (+)= g`` (or ``-g``): add, sub, identity, one_minus, concat.

    Examples
    --------
    >>> t = np.ones(2)
    >>> pass_gradient([np.full(2, 3.0)], [t], write=False, negate=True)(0)
    >>> t
    array([-2., -2.])
    """
    if write:
        if negate:

            def run(j):
                np.negative(g[j], out=target[j])

        else:

            def run(j):
                np.copyto(target[j], g[j])

    else:
        ufunc = np.subtract if negate else np.add

        def run(j):
            t = target[j]
            ufunc(t, g[j], out=t)

    return run


def product_rule(
    g: Indexed, other: Indexed, target: Indexed, write: bool, tmp: np.ndarray | None
) -> Run:
    """``target (+)= g * other``: mul (``tmp``, scratch for the product, is read only when not
    ``write``)."""
    if write:

        def run(j):
            np.multiply(g[j], other[j], out=target[j])

    else:

        def run(j):
            np.multiply(g[j], other[j], out=tmp)
            t = target[j]
            np.add(t, tmp, out=t)

    return run


def through_product(
    fn: ProductFn, g: Indexed, target: Indexed, write: bool, tmp: np.ndarray | None
) -> Run:
    """``target (+)= g @ W``: matmul's operand (``tmp``, scratch for the product, is read only
    when not ``write``)."""
    if write:

        def run(j):
            fn(g[j], target[j])

    else:

        def run(j):
            fn(g[j], tmp)
            t = target[j]
            np.add(t, tmp, out=t)

    return run


def activation_rule(
    kind: str, g: Indexed, y: Indexed, target: Indexed, write: bool, tmp: np.ndarray
) -> Run:
    """``target (+)= g * act'``, the derivative from the output ``y``: ``y (1 - y)`` (sigmoid),
    ``1 - y^2`` (tanh), ``sign(y)`` (relu, whose output is never negative).

    Examples
    --------
    >>> y, t = np.array([0.5]), np.empty(1)
    >>> activation_rule("sigmoid", [np.ones(1)], [y], [t], True, np.empty(1))(0)
    >>> t
    array([0.25])
    """
    if kind == "sigmoid":

        def derivative(yj):
            np.subtract(1.0, yj, out=tmp)
            np.multiply(tmp, yj, out=tmp)

    elif kind == "tanh":

        def derivative(yj):
            np.multiply(yj, yj, out=tmp)
            np.subtract(1.0, tmp, out=tmp)

    else:

        def derivative(yj):
            np.sign(yj, out=tmp)

    if write:

        def run(j):
            derivative(y[j])
            np.multiply(g[j], tmp, out=target[j])

    else:

        def run(j):
            derivative(y[j])
            np.multiply(tmp, g[j], out=tmp)
            t = target[j]
            np.add(t, tmp, out=t)

    return run
