"""Tests of the numpy RNN kernels that need no PyTorch: chunking, splitting, sparsity,
finite-difference gradients, parameter handling and the documentation examples."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
import kernels.cells
import kernels.params
import kernels.products
import kernels.reference
from kernels import (
    backward,
    forward,
    init_input,
    init_params,
    layer_params,
    load_state_dict,
    param_shapes,
    recurrent_rows,
    split_rows,
)
from kernels.declared import CellKernel
from wpsim.errors import ConfigError
from wpsim.model.workload import Workload

CELLS = ["rnn", "lstm", "gru"]


def _workload(cell: str, **kw) -> Workload:
    base = dict(cell=cell, layers=2, hidden=6, input=4, seq_len=7, batch=2, bidirectional=True)
    base.update(kw)
    return Workload(**base)


def _states(w: Workload, seed: int = 5, scale: float = 0.5):
    rng = np.random.default_rng(seed)
    shape = (w.layers * w.directions, w.batch, w.hidden)
    h = (scale * rng.standard_normal(shape)).astype(w.dtype)
    c = (scale * rng.standard_normal(shape)).astype(w.dtype)
    return (h, c) if w.cell == "lstm" else h


def _assert_scaled_close(actual, desired, rel):
    """Equal within ``rel`` relative to the reference's largest magnitude."""
    desired = np.asarray(desired)
    scale = max(float(np.abs(desired).max()), 1e-30)
    np.testing.assert_allclose(actual, desired, rtol=rel, atol=rel * scale)


# ---- documentation ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "module", [kernels, kernels.cells, kernels.params, kernels.reference], ids=lambda m: m.__name__
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


# ---- parameters ------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("output", ["none", "softmax"])
def test_param_shapes_count_and_order(cell, output):
    w = _workload(cell, output=output, output_size=3 if output != "none" else 0)
    p = init_params(w, seed=3)
    assert list(p) == list(param_shapes(w))
    assert sum(v.size for v in p.values()) == w.parameter_count()
    assert list(p)[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert list(p)[4] == "weight_ih_l0_reverse"
    assert p["weight_ih_l1"].shape == (w.gates * 6, 12)
    bound = 1 / np.sqrt(w.hidden)
    assert all(np.abs(v).max() <= bound for k, v in p.items() if not k.endswith("_out"))


def test_init_params_deterministic_and_dtype():
    w = _workload("lstm", dtype="float64")
    a, b, c = init_params(w, seed=1), init_params(w, seed=1), init_params(w, seed=2)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["weight_ih_l0"], c["weight_ih_l0"])
    a32 = init_params(w.model_copy(update={"dtype": "float32"}), seed=1)
    assert a32["weight_hh_l1"].dtype == np.float32
    np.testing.assert_allclose(a32["weight_hh_l1"], a["weight_hh_l1"], rtol=1e-7)


def test_weights_reach_the_kernels_in_fortran_order():
    """The kernels multiply by W^T, fastest when W^T is C-contiguous: W in Fortran order."""
    from kernels.params import WEIGHT_ORDER, layer_params

    assert WEIGHT_ORDER == "F"
    w = Workload(cell="gru", layers=2, hidden=6, input=4, seq_len=3)
    params = init_params(w)
    assert all(params[n].flags.f_contiguous for n in params if n.startswith("weight_"))
    c_ordered = {k: np.ascontiguousarray(v) for k, v in params.items()}
    lp = layer_params(c_ordered, 1, cell=w.cell_declaration)
    for kind in ("weight_ih", "weight_hh"):
        assert lp[kind].flags.f_contiguous
        np.testing.assert_array_equal(lp[kind], params[f"{kind}_l1"])
    # no copy when the weights are already in that order
    assert np.shares_memory(
        layer_params(params, 1, cell=w.cell_declaration)["weight_ih"], params["weight_ih_l1"]
    )
    # and every weight starts on a 64-byte boundary (they stream up to 2x faster so)
    from kernels.params import ALIGN_BYTES, load_state_dict

    loaded = load_state_dict(w, c_ordered)
    for weights in (params, loaded, lp):
        assert all(v.ctypes.data % ALIGN_BYTES == 0 for k, v in weights.items() if "weight" in k)
    assert all(loaded[n].flags.f_contiguous for n in loaded if n.startswith("weight_"))
    # same outputs whatever order the caller's dict is in
    x = init_input(w)
    a, _ = forward(w, params, x)
    b, _ = forward(w, c_ordered, x)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype, tol", [("float32", 1e-7), ("float64", 1e-15)])
@pytest.mark.parametrize("n", [5, 4096])  # expit below SIGMOID_EXPIT_MAX, the tanh form above
def test_sigmoid_is_accurate_on_both_paths(dtype, tol, n):
    from kernels.cells import SIGMOID_EXPIT_MAX, sigmoid

    assert (n <= SIGMOID_EXPIT_MAX) == (n == 5)
    x = np.linspace(-40, 40, n).astype(dtype)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    out = sigmoid(x, np.empty_like(x))
    assert out.dtype == np.dtype(dtype)
    np.testing.assert_allclose(out, exact, rtol=0, atol=tol)
    np.testing.assert_allclose(sigmoid(x, x), exact, rtol=0, atol=tol)  # in place


@pytest.mark.parametrize("density", [0.05, 0.3, 0.999])
def test_pruning_keeps_exact_count_of_largest(density):
    w = Workload(cell="gru", hidden=10, input=3, seq_len=2, density=density, dtype="float64")
    dense = init_params(w.model_copy(update={"density": 1.0}), seed=4)["weight_hh_l0"]
    pruned = init_params(w, seed=4)["weight_hh_l0"]
    kept = pruned != 0
    assert kept.sum() == w.weight_hh_nonzeros()
    np.testing.assert_array_equal(pruned[kept], dense[kept])
    if (~kept).any():
        assert np.abs(dense[~kept]).max() <= np.abs(dense[kept]).min()


def test_load_state_dict_round_trip_and_cast():
    w = _workload("lstm", output="linear", output_size=2)
    p = init_params(w, seed=0)
    as64 = {k: v.astype(np.float64) for k, v in p.items()}
    loaded = load_state_dict(w, as64)
    assert list(loaded) == list(p)
    assert all(loaded[k].dtype == np.float32 and np.array_equal(loaded[k], p[k]) for k in p)
    prefixed = load_state_dict(w, {"rnn." + k: v for k, v in p.items()}, prefix="rnn.")
    assert all(np.array_equal(prefixed[k], p[k]) for k in p)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("bias_hh_l1_reverse"), "missing parameter 'bias_hh_l1_reverse'"),
        (lambda d: d.update(weight_hr_l0=np.zeros(3)), "unexpected parameter 'weight_hr_l0'"),
        (
            lambda d: d.update(weight_hh_l0=np.zeros((24, 5))),
            "parameter 'weight_hh_l0' has shape (24, 5), expected (24, 6)",
        ),
        (lambda d: d.update(bias_ih_l0=np.array(["a"] * 24)), "is not numeric"),
        (lambda d: d.pop("weight_out"), "missing parameter 'weight_out'"),
    ],
)
def test_load_state_dict_errors_are_one_line(mutate, message):
    w = _workload("lstm", output="softmax", output_size=3)
    state = dict(init_params(w))
    mutate(state)
    with pytest.raises(ConfigError) as info:
        load_state_dict(w, state)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_forward_rejects_bad_shapes():
    w = _workload("gru")
    p = init_params(w)
    with pytest.raises(ValueError, match="x must have shape"):
        forward(w, p, np.zeros((3, 2, 5), np.float32))
    with pytest.raises(ValueError, match="h0 must have shape"):
        forward(w, p, init_input(w), np.zeros((2, 2, 6), np.float32))
    with pytest.raises(ConfigError, match="missing parameter 'weight_ih_l1'"):
        forward(w, {k: v for k, v in p.items() if k != "weight_ih_l1"}, init_input(w))
    with pytest.raises(ValueError, match="chunk must be >= 1"):
        forward(w, p, init_input(w), chunk=0)


# ---- chunk tasks -----------------------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
def test_chunkings_agree_and_are_deterministic(cell):
    w = _workload(cell, hidden=16, input=8, seq_len=9)
    p, x, h0 = init_params(w, 0), init_input(w, 1), _states(w)
    whole, whole_hn = forward(w, p, x, h0)
    g = np.random.default_rng(2).standard_normal(whole.shape).astype(np.float32)
    gwhole = backward(w, p, x, g, h0)
    for chunk in (1, 3, w.seq_len):
        out, hn = forward(w, p, x, h0, chunk=chunk)
        _assert_scaled_close(out, whole, 1e-6)
        _assert_scaled_close(np.stack(hn) if cell == "lstm" else hn, np.stack(whole_hn), 1e-6)
        grads = backward(w, p, x, g, h0, chunk=chunk)
        for name in gwhole:
            _assert_scaled_close(grads[name], gwhole[name], 1e-6)
    # the same chunking twice is bitwise identical
    a, _ = forward(w, p, x, h0, chunk=3)
    b, _ = forward(w, p, x, h0, chunk=3)
    assert np.array_equal(a, b)
    ga, gb = backward(w, p, x, g, h0, chunk=3), backward(w, p, x, g, h0, chunk=3)
    assert all(np.array_equal(ga[k], gb[k]) for k in ga)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("sparse", [False, True])
def test_split_recurrent_rows_matches_unsplit(cell, sparse):
    """The recurrent product split by rows (as a split group's members compute it) through the
    kernel's product hook gives the unsplit result."""
    w = _workload(cell, layers=1, bidirectional=False, hidden=16, seq_len=6, batch=3, density=0.4)
    lp = layer_params(init_params(w, 0), 0, sparse=sparse, cell=w.cell_declaration)
    x = init_input(w, 1)
    kernel = CellKernel(w.cell_declaration, w.hidden, w.input, "float32")
    ref = kernel.forward(lp, x, save=False)
    parts = split_rows(w.gates * w.hidden, 3)
    blocks = [lp["weight_hh"][rows] for rows in parts]  # pre-sliced once per worker

    def recurrent(h_prev, out):
        for rows, block in zip(parts, blocks, strict=True):
            recurrent_rows(block, h_prev, out=out[:, rows])

    split = kernel.forward(lp, x, save=False, products={"gh": recurrent})
    _assert_scaled_close(split.output, ref.output, 1e-6)
    _assert_scaled_close(split.states["h"], ref.states["h"], 1e-6)
    # recurrent_rows with a row slice of the full matrix gives the same blocks
    h = np.ascontiguousarray(ref.output[2])
    full = np.concatenate([recurrent_rows(lp["weight_hh"], h, rows) for rows in parts], axis=1)
    _assert_scaled_close(full, h @ lp["weight_hh"].T, 1e-6)


def test_split_rows_covers_all_rows():
    for n, parts in [(12, 5), (3, 8), (64, 1)]:
        slices = split_rows(n, parts)
        assert [i for s in slices for i in range(s.start, s.stop)] == list(range(n))
        sizes = [s.stop - s.start for s in slices]
        assert max(sizes) - min(sizes) <= 1


@pytest.fixture
def small_gemm(monkeypatch):
    """Set whether the BLAS counts as having the small-matrix kernel (``True``/``False``)."""

    def set_(on: bool) -> None:
        monkeypatch.setenv("WPSIM_SMALL_GEMM", "1" if on else "0")
        kernels.products.blas_small_gemm.cache_clear()
        kernels.products.row_blocks.cache_clear()

    yield set_
    kernels.products.blas_small_gemm.cache_clear()
    kernels.products.row_blocks.cache_clear()


@pytest.mark.parametrize(
    "m,k,n,itemsize",
    [
        (4, 256, 1024, 4),
        (16, 256, 1024, 4),
        (2, 512, 2048, 4),
        (8, 1024, 4096, 4),
        (3, 700, 999, 8),
    ],
)
def test_row_blocks_cover_the_rows_within_the_small_kernel(small_gemm, m, k, n, itemsize):
    small_gemm(True)
    blocks = kernels.products.row_blocks(m, k, n, itemsize)
    assert blocks is not None and len(blocks) > 1
    assert [i for s in blocks for i in range(s.start, s.stop)] == list(range(n))
    assert all(m * k * (s.stop - s.start) <= kernels.products.SMALL_GEMM_MAX_MNK for s in blocks)
    assert all((s.stop - s.start) % 16 == 0 for s in blocks[:-1])
    sizes = [s.stop - s.start for s in blocks]
    assert max(sizes) - min(sizes) < 16 * len(blocks)


def test_row_blocks_only_where_they_pay(small_gemm):
    small_gemm(True)
    row_blocks = kernels.products.row_blocks
    assert row_blocks(1, 1024, 4096, 4) is None  # a GEMV
    assert row_blocks(4, 128, 512, 4) is None  # within the small kernel as a whole
    assert row_blocks(40, 512, 2048, 4) is None  # X (80 KiB) would be re-read from L2
    small_gemm(False)
    assert row_blocks(4, 256, 1024, 4) is None  # no small kernel: one call


@pytest.mark.parametrize("on", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blocked_products_match_one_product(small_gemm, on, dtype):
    small_gemm(on)
    rng = np.random.default_rng(5)
    w = np.asfortranarray(rng.standard_normal((1024, 256)).astype(dtype))
    for m in (1, 2, 4, 16):
        x = rng.standard_normal((m, 256)).astype(dtype)
        expected = x.astype(np.float64) @ w.T.astype(np.float64)
        _assert_scaled_close(
            kernels.products.matmul_xwt(x, w, np.empty((m, 1024), dtype)),
            expected,
            1e-5 if dtype == np.float32 else 1e-12,
        )
        out = np.empty((m, 1024), dtype)
        rec = kernels.products.Recurrent(w, m, np.dtype(dtype))
        assert (rec.blocks is not None) == (on and m >= 4)  # beyond 1e6 M*N*K from 4 rows
        rec.hh(x, out)
        _assert_scaled_close(out, expected, 1e-5 if dtype == np.float32 else 1e-12)
        wider = np.zeros((m, 1100), dtype)  # into some columns of a wider array
        kernels.products.matmul_xwt(x, w, wider[:, 50:1074])
        _assert_scaled_close(wider[:, 50:1074], expected, 1e-5 if dtype == np.float32 else 1e-12)
        assert not wider[:, :50].any() and not wider[:, 1074:].any()


@settings(max_examples=15, deadline=None)
@given(
    cell=st.sampled_from(CELLS),
    seq_len=st.integers(1, 7),
    chunk=st.integers(1, 8),
    batch=st.integers(1, 3),
)
def test_any_chunking_matches_whole_sequence(cell, seq_len, chunk, batch):
    w = _workload(cell, seq_len=seq_len, batch=batch, dtype="float64", hidden=4, input=3)
    p, x = init_params(w, 7), init_input(w, 8)
    whole, _ = forward(w, p, x)
    out, _ = forward(w, p, x, chunk=chunk)
    np.testing.assert_allclose(out, whole, rtol=1e-12, atol=1e-14)


# ---- sparse recurrent weights ----------------------------------------------------------------
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype, rel", [("float32", 1e-6), ("float64", 1e-12)])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("fast", [True, False], ids=["sparsetools", "public-api"])
def test_sparse_matches_dense_equivalent(cell, dtype, rel, batch, fast, monkeypatch):
    if not fast:
        monkeypatch.setattr(kernels.products, "_csr_matvecs", None)
    ws = _workload(cell, density=0.3, dtype=dtype, batch=batch, hidden=8, seq_len=5)
    wd = ws.model_copy(update={"density": 1.0})
    p, x, h0 = init_params(ws, 0), init_input(ws, 1), _states(ws)
    out_s, hn_s = forward(ws, p, x, h0, chunk=2)
    out_d, hn_d = forward(wd, p, x, h0, chunk=2)
    _assert_scaled_close(out_s, out_d, rel)
    _assert_scaled_close(np.stack(hn_s) if cell == "lstm" else hn_s, np.stack(hn_d), rel)
    g = np.random.default_rng(3).standard_normal(out_s.shape).astype(dtype)
    gs, gd = backward(ws, p, x, g, h0, chunk=2), backward(wd, p, x, g, h0, chunk=2)
    for name in gd:
        _assert_scaled_close(gs[name], gd[name], rel)


def test_params_may_hold_csr_weight_hh():
    import scipy.sparse as sp

    w = _workload("lstm", density=0.2, dtype="float64")
    p = init_params(w, 0)
    p_csr = load_state_dict(
        w, {k: sp.csr_array(v) if k.startswith("weight_hh") else v for k, v in p.items()}
    )
    assert sp.issparse(p_csr["weight_hh_l0"])
    x = init_input(w)
    np.testing.assert_allclose(forward(w, p_csr, x)[0], forward(w, p, x)[0], rtol=1e-13)


# ---- precision -------------------------------------------------------------------------------
def test_float16_is_computed_in_float32_and_cast():
    w16 = _workload("lstm", dtype="float16")
    w32 = w16.model_copy(update={"dtype": "float32"})
    p16, x16 = init_params(w16, 0), init_input(w16, 1)
    out16, (h16, c16) = forward(w16, p16, x16)
    assert out16.dtype == h16.dtype == c16.dtype == np.float16
    p32 = {k: v.astype(np.float32) for k, v in p16.items()}
    out32, _ = forward(w32, p32, x16.astype(np.float32))
    np.testing.assert_array_equal(out16, out32.astype(np.float16))
    grads = backward(w16, p16, x16, np.ones_like(out16))
    assert all(g.dtype == np.float16 for g in grads.values())


# ---- gradients against central finite differences -------------------------------------------
def _fd_case(cell):
    w = Workload(
        cell=cell,
        layers=2,
        hidden=3,
        input=2,
        seq_len=3,
        batch=2,
        bidirectional=True,
        dtype="float64",
        output="softmax",
        output_size=3,
    )
    rng = np.random.default_rng(11)
    p = {k: v * 2.0 for k, v in init_params(w, 3).items()}  # larger weights: non-trivial gates
    x = rng.standard_normal((3, 2, 2))
    h0 = _states(w, seed=12, scale=0.7)
    target = rng.dirichlet(np.ones(3), size=(3, 2))  # cross-entropy against soft targets
    r_h = rng.standard_normal((4, 2, 3))
    r_c = rng.standard_normal((4, 2, 3))
    return w, p, x, h0, target, r_h, r_c


def _loss(w, p, x, h0, target, r_h, r_c):
    y, hn = forward(w, p, x, h0)
    loss = -np.sum(target * np.log(y))
    if w.cell == "lstm":
        return loss + np.sum(hn[0] * r_h) + np.sum(hn[1] * r_c)
    return loss + np.sum(hn * r_h)


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_match_finite_differences(cell):
    w, p, x, h0, target, r_h, r_c = _fd_case(cell)
    y, _ = forward(w, p, x, h0)
    grad_hn = (r_h, r_c) if cell == "lstm" else r_h
    grads = backward(w, p, x, -target / y, h0, grad_hn=grad_hn, chunk=2)

    inputs = dict(p)
    inputs["x"] = x
    if cell == "lstm":
        inputs["h0"], inputs["c0"] = h0
    else:
        inputs["h0"] = h0
    assert set(grads) == set(inputs)

    def loss_with(name, value):
        q = dict(inputs)
        q[name] = value
        params = {k: q[k] for k in p}
        state = (q["h0"], q["c0"]) if cell == "lstm" else q["h0"]
        return _loss(w, params, q["x"], state, target, r_h, r_c)

    eps = 1e-6
    for name, value in inputs.items():
        numeric = np.empty_like(value)
        for i in np.ndindex(value.shape):
            plus, minus = value.copy(), value.copy()
            plus[i] += eps
            minus[i] -= eps
            numeric[i] = (loss_with(name, plus) - loss_with(name, minus)) / (2 * eps)
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-6, atol=1e-8, err_msg=name)


@pytest.mark.parametrize("update", [{"dtype": "bfloat16"}, {"input": 0}])
def test_modelled_only_workloads_are_refused_by_the_kernels(update):
    from wpsim.errors import ConfigError
    from wpsim.model.workload import Workload

    w = Workload(cell="rnn", hidden=4, input=4, seq_len=2).model_copy(update=update)
    with pytest.raises(ConfigError, match="modelled by simulate/predict"):
        kernels.params.compute_dtype(w)
