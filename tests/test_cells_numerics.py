"""kernels.declared (the forward and BPTT interpreted from a cell's declaration), checked:

* the built-ins PyTorch has (Elman RNN with tanh and relu, LSTM with and without proj_size, GRU)
  against torch.nn, forward and every gradient, in float64 to 1e-12, uni- and bidirectional,
  stacked, chunked;
* SRU, QRNN (window 1 and 2), MGU and IndRNN against references written from their papers'
  equations (tests/cells_from_papers.py, PyTorch autograd), and every cell against finite
  differences of its own forward;
* chunking, directions, sparse weights and the product hooks.
"""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import scipy.sparse as sp
import yaml

from kernels.declared import CellKernel, Network, init_params
from wpsim.cells import cell_from_dict, cell_names, get_cell

torch = pytest.importorskip("torch")
import cells_from_papers  # noqa: E402  (tests/, next to this file)

KERNEL_MODULES = [
    "kernels.declared",
    "kernels.declared.plan",
    "kernels.declared.steps",
    "kernels.declared.program",
    "kernels.declared.chunk",
    "kernels.declared.network",
]
TOL64 = dict(rtol=1e-12, atol=1e-12)
TOL32 = dict(rtol=1e-5, atol=1e-6)
TORCH_CELLS = [
    ("rnn", {}, "RNN", {}),
    ("rnn", {"nonlinearity": "relu"}, "RNN", {"nonlinearity": "relu"}),
    ("lstm", {}, "LSTM", {}),
    ("lstm", {"proj_size": 3}, "LSTM", {"proj_size": 3}),
    ("gru", {}, "GRU", {}),
]
PAPER_CELLS = [
    ("sru", {}),
    ("qrnn", {}),
    ("qrnn", {"window": 2}),
    ("mgu", {}),
    ("indrnn", {}),
    ("indrnn", {"nonlinearity": "tanh"}),
    ("minimalrnn", {}),
]


@pytest.mark.parametrize("module", KERNEL_MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(
        importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE
    )
    assert result.attempted > 0 and result.failed == 0


def _states(net: Network, batch: int, rng) -> dict:
    out = {}
    for s in net.states:
        widths = [k.widths[s] for k in net.kernels for _ in range(net.directions)]
        out[s] = np.stack([0.5 * rng.standard_normal((batch, w)) for w in widths])
    return out


def _torch_run(module, params, x, states, d_out, d_states, names):
    module.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    xt = torch.from_numpy(x).requires_grad_()
    leaves = [torch.from_numpy(states[s]).requires_grad_() for s in names]
    out, finals = module(xt, tuple(leaves) if len(leaves) > 1 else leaves[0])
    finals = list(finals) if isinstance(finals, tuple) else [finals]
    loss = (out * torch.from_numpy(d_out)).sum()
    for f, s in zip(finals, names, strict=True):
        loss = loss + (f * torch.from_numpy(d_states[s])).sum()
    loss.backward()
    grads = {n: p.grad.numpy() for n, p in module.named_parameters()}
    grads["x"] = xt.grad.numpy()
    grads.update({s: leaf.grad.numpy() for s, leaf in zip(names, leaves, strict=True)})
    return (
        out.detach().numpy(),
        {s: f.detach().numpy() for s, f in zip(names, finals, strict=True)},
        grads,
    )


def _compare(label, ours, ref, tol):
    np.testing.assert_allclose(ours, ref, **tol, err_msg=label)


@pytest.mark.parametrize(
    "layers,bidirectional,chunk,batch",
    [
        (1, False, None, 3),
        (1, True, 2, 1),
        (3, False, 2, 2),
        (2, True, 3, 2),
    ],
)
@pytest.mark.parametrize("name,options,module,kwargs", TORCH_CELLS, ids=lambda v: str(v))
def test_builtins_match_torch_in_float64(
    name, options, module, kwargs, layers, bidirectional, chunk, batch
):
    cell = get_cell(name, **options)
    net = Network(cell, hidden=5, input_size=4, layers=layers, bidirectional=bidirectional)
    rng = np.random.default_rng(layers * 10 + batch)
    params = net.init_params(seed=3)
    x = rng.standard_normal((7, batch, 4))
    states = _states(net, batch, rng)
    out, finals = net.forward(params, x, states, chunk=chunk)
    d_out = rng.standard_normal(out.shape)
    d_states = {s: rng.standard_normal(v.shape) for s, v in finals.items()}
    grads = net.backward(params, x, d_out, states, d_states, chunk=chunk)
    torch_module = getattr(torch.nn, module)(
        4, 5, num_layers=layers, bidirectional=bidirectional, dtype=torch.float64, **kwargs
    )
    ref_out, ref_finals, ref_grads = _torch_run(
        torch_module, params, x, states, d_out, d_states, net.states
    )
    label = f"torch {cell.label}"
    _compare(label, out, ref_out, TOL64)
    for s in net.states:
        _compare(label, finals[s], ref_finals[s], TOL64)
    assert set(grads) == set(ref_grads)
    for key, ref in ref_grads.items():
        _compare(label, grads[key], ref, TOL64)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("name,options,module,kwargs", TORCH_CELLS[2:], ids=lambda v: str(v))
def test_builtins_match_torch_in_float32(name, options, module, kwargs):
    cell = get_cell(name, **options)
    net = Network(cell, hidden=6, input_size=3, layers=2, bidirectional=True, dtype="float32")
    rng = np.random.default_rng(0)
    params = net.init_params(seed=1)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    states = {s: v.astype(np.float32) for s, v in _states(net, 2, rng).items()}
    out, finals = net.forward(params, x, states, chunk=2)
    assert out.dtype == np.float32
    d_out = rng.standard_normal(out.shape).astype(np.float32)
    d_states = {s: rng.standard_normal(v.shape).astype(np.float32) for s, v in finals.items()}
    grads = net.backward(params, x, d_out, states, d_states, chunk=2)
    torch_module = getattr(torch.nn, module)(3, 6, num_layers=2, bidirectional=True, **kwargs)
    ref_out, _, ref_grads = _torch_run(torch_module, params, x, states, d_out, d_states, net.states)
    np.testing.assert_allclose(out, ref_out, **TOL32)
    for key, ref in ref_grads.items():
        assert grads[key].dtype == np.float32
        np.testing.assert_allclose(grads[key], ref, **TOL32, err_msg=key)


# ---- cells without a torch module: references from the papers ------------------------------
def _chunked(kernel, params, x, states, reverse, chunk, d_out=None, d_states=None):
    """Forward (and backward when ``d_out`` is given) over chunks of ``chunk`` steps."""
    k = x.shape[0]
    bounds = [(t0, min(t0 + chunk, k)) for t0 in range(0, k, chunk)]
    out = np.empty((k, x.shape[1], kernel.widths[kernel.cell.output]))
    carried, saved = dict(states), []
    for t0, t1 in reversed(bounds) if reverse else bounds:
        run = kernel.forward(params, x[t0:t1], carried, reverse=reverse)
        out[t0:t1] = run.output
        carried = run.states
        saved.append((t0, t1, run.saved))
    if d_out is None:
        return out, carried
    dx = np.zeros_like(x)
    dparams = {name: np.zeros(v.shape) for name, v in params.items()}
    dcarried = d_states
    for t0, t1, s in reversed(saved):
        back = kernel.backward(params, s, d_out[t0:t1], dcarried)
        dx[t0:t1] += back.dx
        dcarried = back.dstates
        for name, g in back.dparams.items():
            dparams[name] += g
    return out, carried, dx, dcarried, dparams


@pytest.mark.parametrize("chunk", [1, 3, 7])
@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("name,options", PAPER_CELLS, ids=lambda v: str(v))
def test_paper_cells_match_their_papers_equations(name, options, reverse, chunk):
    cell = get_cell(name, **options)
    kernel = CellKernel(cell, hidden=5, input_size=4)
    rng = np.random.default_rng(7)
    params = init_params(kernel, seed=2)
    params = {k: v + 0.3 * rng.standard_normal(v.shape) for k, v in params.items()}
    x = rng.standard_normal((7, 3, 4))
    states = {s: 0.5 * rng.standard_normal((3, kernel.widths[s])) for s in kernel.next_of}
    d_out = rng.standard_normal((7, 3, 5))
    d_states = {s: rng.standard_normal(v.shape) for s, v in states.items()}
    out, finals, dx, dstates, dparams = _chunked(
        kernel, params, x, states, reverse, chunk, d_out, d_states
    )
    # the reference, in processing order (a reverse direction reads time backwards)
    flip = (lambda a: a.flip(0)) if reverse else (lambda a: a)
    pt = {k: torch.from_numpy(v).requires_grad_() for k, v in params.items()}
    xt = torch.from_numpy(x).requires_grad_()
    st = {k: torch.from_numpy(v).requires_grad_() for k, v in states.items()}
    ref_out, ref_finals = cells_from_papers.reference(name, options)(flip(xt), st, pt)
    ref_out = flip(ref_out)
    loss = (ref_out * torch.from_numpy(d_out)).sum()
    for s, f in ref_finals.items():
        loss = loss + (f * torch.from_numpy(d_states[s])).sum()
    loss.backward()
    label = f"paper {cell.label}"
    _compare(label, out, ref_out.detach().numpy(), TOL64)
    for s in states:
        _compare(label, finals[s], ref_finals[s].detach().numpy(), TOL64)
        _compare(label, dstates[s], st[s].grad.numpy(), TOL64)
    _compare(label, dx, xt.grad.numpy(), TOL64)
    for k, v in pt.items():
        _compare(label, dparams[k], v.grad.numpy(), TOL64)


def test_stacked_bidirectional_qrnn_carries_inputs_of_different_widths():
    """Window 2 carries each layer's previous input: I wide in layer 0, 2H above."""
    net = Network(get_cell("qrnn", window=2), hidden=3, input_size=2, layers=2, bidirectional=True)
    params = net.init_params(seed=0)
    x = np.random.default_rng(0).standard_normal((5, 2, 2))
    out, finals = net.forward(params, x, chunk=2)
    assert [a.shape for a in finals["xp"]] == [(2, 2), (2, 2), (2, 6), (2, 6)]
    np.testing.assert_array_equal(finals["xp"][0], x[-1])  # forward: the last input
    np.testing.assert_array_equal(finals["xp"][1], x[0])  # reverse: the first
    # the same network with the reference, layer by layer
    inp = torch.from_numpy(x)
    for layer in range(2):
        halves = []
        for d, flip in enumerate([lambda a: a, lambda a: a.flip(0)]):
            tail = f"_l{layer}" + ("_reverse" if d else "")
            p = {k: torch.from_numpy(params[k + tail]) for k in ("weight_ih", "bias_ih")}
            zero = {
                "c": torch.zeros(2, 3, dtype=torch.float64),
                "xp": torch.zeros(2, inp.shape[2], dtype=torch.float64),
            }
            halves.append(flip(cells_from_papers.qrnn(flip(inp), zero, p, 2)[0]))
        inp = torch.cat(halves, dim=-1)
    np.testing.assert_allclose(out, inp.numpy(), **TOL64)


# ---- finite differences ---------------------------------------------------------------------
USER_CELL = yaml.safe_load("""
name: my_gated
states: {h: {width: H, next: h_new}}
params:
  weight_ih: {shape: [2*H, I], gates: [g, n]}
  weight_hh: {shape: [2*H, H], gates: [g, n]}
  bias: {shape: [2*H], gates: [g, n]}
ops:
  - gx = matmul(weight_ih, x)
  - gx_b = add(gx, bias)
  - gh = matmul(weight_hh, h)
  - a = add(gx_b, gh)
  - g = sigmoid(a.g)
  - n = tanh(a.n)
  - d = sub(n, h)
  - gd = mul(g, d)
  - h_new = add(h, gd)
output: h_new
""")
#: every registered cell with its default options (a new cell file is checked with no edit
#: here), the other options of the built-ins, and a cell declared in YAML
ALL = [(name, {}) for name in cell_names()]
ALL += [c for c in [(n, o) for n, o, _, _ in TORCH_CELLS] + PAPER_CELLS if c[1]] + [("yaml", {})]


def _cell(name, options):
    return cell_from_dict(USER_CELL) if name == "yaml" else get_cell(name, **options)


@pytest.mark.parametrize("reverse", [False, True], ids=["fwd", "rev"])
@pytest.mark.parametrize("name,options", ALL, ids=lambda v: str(v))
def test_gradients_match_finite_differences(name, options, reverse):
    kernel = CellKernel(_cell(name, options), hidden=3, input_size=2)
    rng = np.random.default_rng(11)
    params = {k: v + 0.2 * rng.standard_normal(v.shape) for k, v in init_params(kernel, 4).items()}
    x = rng.standard_normal((4, 2, 2))
    states = {s: 0.5 * rng.standard_normal((2, kernel.widths[s])) for s in kernel.next_of}
    run = kernel.forward(params, x, states, reverse=reverse)
    d_out = rng.standard_normal(run.output.shape)
    d_states = {s: rng.standard_normal(v.shape) for s, v in run.states.items()}
    back = kernel.backward(params, run.saved, d_out, d_states)

    def loss(p, xx, ss):
        r = kernel.forward(p, xx, ss, reverse=reverse, save=False)
        return np.sum(r.output * d_out) + sum(np.sum(r.states[s] * d_states[s]) for s in ss)

    eps = 1e-6
    cases = [("x", back.dx, lambda v: (params, x + v, states), x.shape)]
    cases += [
        (
            s,
            back.dstates[s],
            lambda v, s=s: (params, x, {**states, s: states[s] + v}),
            states[s].shape,
        )
        for s in states
    ]
    cases += [
        (
            k,
            back.dparams[k],
            lambda v, k=k: ({**params, k: params[k] + v}, x, states),
            params[k].shape,
        )
        for k in params
    ]
    for label, grad, shifted, shape in cases:
        for _ in range(2):  # random directions
            v = rng.standard_normal(shape)
            numeric = (loss(*shifted(eps * v)) - loss(*shifted(-eps * v))) / (2 * eps)
            assert abs(numeric - np.sum(grad * v)) <= 1e-7 * max(1.0, abs(numeric)), label


# ---- chunking, buffers, sparse weights, hooks ----------------------------------------------
@pytest.mark.parametrize("name,options", ALL, ids=lambda v: str(v))
def test_save_and_chunking_do_not_change_the_results(name, options):
    kernel = CellKernel(_cell(name, options), hidden=4, input_size=3)
    rng = np.random.default_rng(3)
    params = init_params(kernel, 0)
    x = rng.standard_normal((6, 2, 3))
    kept = kernel.forward(params, x, save=True)
    lean = kernel.forward(params, x, save=False)
    np.testing.assert_array_equal(kept.output, lean.output)
    for reverse in (False, True):
        whole = kernel.forward(params, x, reverse=reverse, save=False)
        pieces, finals = _chunked(kernel, params, x, {}, reverse, chunk=2)
        np.testing.assert_allclose(pieces, whole.output, rtol=1e-13, atol=1e-14)
        for s, v in whole.states.items():
            np.testing.assert_allclose(finals[s], v, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name,options", [("gru", {}), ("lstm", {"proj_size": 2}), ("mgu", {})])
def test_sparse_recurrent_weights_equal_dense_ones_with_zeros(name, options):
    kernel = CellKernel(get_cell(name, **options), hidden=6, input_size=3)
    rng = np.random.default_rng(5)
    dense = init_params(kernel, 0)
    for key in ("weight_hh", "weight_hr"):
        if key in dense:
            dense[key] = dense[key] * (rng.random(dense[key].shape) < 0.4)
    sparse = {
        k: sp.csr_array(v) if k in ("weight_hh", "weight_hr") else v for k, v in dense.items()
    }
    x = rng.standard_normal((4, 2, 3))
    for batch_x in (x, x[:, :1]):
        a = kernel.forward(dense, batch_x)
        b = kernel.forward(sparse, batch_x)
        np.testing.assert_allclose(b.output, a.output, rtol=1e-13, atol=1e-14)
        d = np.ones_like(a.output)
        ga, gb = kernel.backward(dense, a.saved, d), kernel.backward(sparse, b.saved, d)
        for key in ga.dparams:
            np.testing.assert_allclose(gb.dparams[key], ga.dparams[key], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(gb.dx, ga.dx, rtol=1e-12, atol=1e-13)


def test_product_hooks_replace_a_product():
    """An executor may compute a recurrent product itself, e.g. split by rows."""
    kernel = CellKernel(get_cell("lstm"), hidden=4, input_size=3)
    params = init_params(kernel, 0)
    x = np.random.default_rng(0).standard_normal((5, 2, 3))
    w = params["weight_hh"]
    calls = []

    def by_halves(h, out):
        calls.append(1)
        out[:, :8] = h @ w[:8].T
        out[:, 8:] = h @ w[8:].T

    def back_by_halves(g, out):
        out[...] = g[:, :8] @ w[:8] + g[:, 8:] @ w[8:]

    plain = kernel.forward(params, x)
    split = kernel.forward(params, x, products={"gh": by_halves})
    assert len(calls) == 5
    np.testing.assert_allclose(split.output, plain.output, rtol=1e-14, atol=1e-15)
    d = np.ones_like(plain.output)
    a = kernel.backward(params, plain.saved, d)
    b = kernel.backward(params, split.saved, d, products_t={"gh": back_by_halves})
    np.testing.assert_allclose(b.dx, a.dx, rtol=1e-13, atol=1e-14)


def test_first_layer_may_skip_the_input_gradient():
    kernel = CellKernel(get_cell("qrnn", window=2), hidden=3, input_size=2)
    params = init_params(kernel, 0)
    x = np.random.default_rng(0).standard_normal((4, 1, 2))
    run = kernel.forward(params, x)
    full = kernel.backward(params, run.saved, np.ones_like(run.output))
    lean = kernel.backward(params, run.saved, np.ones_like(run.output), need_dx=False)
    assert lean.dx is None and set(lean.dstates) == {"c"}
    for key, value in full.dparams.items():
        np.testing.assert_array_equal(lean.dparams[key], value)


def test_bad_shapes_are_refused():
    kernel = CellKernel(get_cell("gru"), hidden=3, input_size=2)
    params = init_params(kernel, 0)
    with pytest.raises(ValueError, match=r"x must have shape \(k, B, 2\)"):
        kernel.forward(params, np.zeros((3, 1, 4)))
    with pytest.raises(ValueError, match="state 'h' must have shape"):
        kernel.forward(params, np.zeros((3, 1, 2)), {"h": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="unknown state 'c'"):
        kernel.forward(params, np.zeros((3, 1, 2)), {"c": np.zeros((1, 3))})
    with pytest.raises(ValueError, match="'weight_hh' has shape"):
        kernel.forward({**params, "weight_hh": np.zeros((3, 3))}, np.zeros((3, 1, 2)))
    with pytest.raises(ValueError, match="float32 or float64"):
        CellKernel(get_cell("gru"), 3, 2, dtype="float16")


@pytest.mark.parametrize(
    ("name", "options"),
    [(name, {}) for name in cell_names()] + [("lstm", {"proj_size": 2}), ("qrnn", {"window": 2})],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_bound_programs_compute_what_forward_computes(name, options, reverse):
    """CellKernel.bind: a forward bound to arrays it reads and writes in place (the input as
    column blocks, the states, the output, kept values, final states, a product computed
    elsewhere, scratch shared with another program) gives forward's bits, and a second run
    reads the arrays as they are then."""
    kernel = CellKernel(get_cell(name, **options), hidden=5, input_size=4)
    plan = kernel.plan
    params = init_params(kernel, 0)
    rng = np.random.default_rng(1)
    output = plan.cell.output
    saved = [op.name for op in plan.cell.ops if op.name in plan.full[True] and op.name != output]
    pool: dict = {}
    for save in (False, True):
        x = rng.standard_normal((3, 2, 4))
        states = {s: rng.standard_normal((2, kernel.widths[s])) for s in kernel.next_of}
        blocks = (x[..., :1].copy(), x[..., 1:].copy())
        products = [op for op in plan.cell.ops if op.kind == "matmul"]
        hoisted = [op.name for op in products if op.args[1].name == "x" and not op.args[1].gate]
        ref = kernel.forward(params, x, states, reverse=reverse, save=True)
        inputs = {op: ref.saved.values[op].copy() for op in hoisted}
        into = {output: np.empty_like(ref.output)}
        if save:
            into.update({op: np.empty_like(ref.saved.values[op]) for op in saved})
        finals = {s: np.empty((2, kernel.widths[s])) for s in kernel.next_of}
        program = kernel.bind(
            kernel.prepare(params, 2),
            blocks,
            states,
            reverse=reverse,
            save=save,
            into=into,
            inputs=inputs,
            finals=finals,
            pool=pool,
        )
        for again in (False, True):
            if again:  # new values in the same arrays
                x = rng.standard_normal((3, 2, 4))
                blocks[0][...], blocks[1][...] = x[..., :1], x[..., 1:]
                for value in states.values():
                    value[...] = rng.standard_normal(value.shape)
                ref = kernel.forward(params, x, states, reverse=reverse, save=True)
                for op, value in inputs.items():
                    value[...] = ref.saved.values[op]
            program.run()
            assert np.array_equal(into[output], ref.output)
            for op in saved if save else []:
                assert np.array_equal(into[op], ref.saved.values[op]), op
            for s, value in finals.items():
                assert np.array_equal(value, ref.states[s]), s


@pytest.mark.parametrize(
    ("name", "options"),
    [(name, {}) for name in cell_names()] + [("lstm", {"proj_size": 2}), ("qrnn", {"window": 2})],
)
@pytest.mark.parametrize("reverse", [False, True])
def test_bound_backward_programs_compute_what_backward_computes(name, options, reverse):
    """CellKernel.bind_backward: the BPTT bound to the saved arrays, the gradients from above
    and from the next chunk (read in place), writing the gradients of the ops that read
    parameters, of the input and of the initial states into given buffers, scratch shared
    with another program, gives backward's bits, and again on new values in the same arrays."""
    kernel = CellKernel(get_cell(name, **options), hidden=5, input_size=4)
    plan = kernel.plan
    params = kernel.prepare(init_params(kernel, 0), 2)
    rng = np.random.default_rng(2)
    width = kernel.widths[plan.cell.output]
    wanted = sorted({rule[0] for rule in plan.param_rules})
    pool: dict = {}
    x = rng.standard_normal((3, 2, 4))
    states = {s: rng.standard_normal((2, kernel.widths[s])) for s in kernel.next_of}
    saved = kernel.forward(init_params(kernel, 0), x, states, reverse=reverse).saved
    dy = rng.standard_normal((3, 2, width))
    d_states = {s: rng.standard_normal((2, kernel.widths[s])) for s in kernel.next_of}
    into = {op: np.empty((3, 2, kernel.widths[op])) for op in wanted} | {"x": np.empty_like(x)}
    dstates_into = {s: np.empty((2, kernel.widths[s])) for s in kernel.next_of}
    programs = [
        kernel.bind_backward(
            params,
            saved,
            dy,
            d_states,
            into=into,
            dstates_into=dstates_into,
            pool=pool,
        )
        for _ in range(2)  # the second shares the first's scratch
    ]
    for again in (False, True):
        if again:
            dy[...] = rng.standard_normal(dy.shape)
            for value in (*d_states.values(), *saved.values.values()):
                value[...] = rng.standard_normal(value.shape)
        ref = kernel.backward(init_params(kernel, 0), saved, dy, d_states, op_grads=True)
        for program in programs:
            program.run()
            assert np.array_equal(into["x"], ref.dx)
            for op in wanted:
                assert np.array_equal(into[op], ref.op_grads[op]), op
            for s, value in dstates_into.items():
                assert np.array_equal(value, ref.dstates[s]), s


def test_bound_programs_check_their_arrays():
    kernel = CellKernel(get_cell("gru"), hidden=3, input_size=2)
    params = init_params(kernel, 0)
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        kernel.bind(params, np.zeros((4, 1, 4))[..., ::2])
    with pytest.raises(ValueError, match="blocks must have 2 columns"):
        kernel.bind(params, (np.zeros((4, 1, 1)),))
    with pytest.raises(ValueError, match="h_new must be C-contiguous float64"):
        kernel.bind(params, np.zeros((4, 1, 2)), into={"h_new": np.zeros((4, 1, 3), "f4")})
    with pytest.raises(ValueError, match="state 'h' must be C-contiguous"):
        kernel.bind(params, np.zeros((4, 1, 2)), {"h": np.zeros((1, 6))[:, ::2]})
    with pytest.raises(ValueError, match="finals 'h' must be float64"):
        kernel.bind(params, np.zeros((4, 1, 2)), finals={"h": np.zeros((1, 2))})
    saved = kernel.forward(params, np.zeros((4, 1, 2))).saved
    with pytest.raises(ValueError, match="reads float64 arrays, got float32"):
        kernel.bind_backward(params, saved, np.zeros((4, 1, 3), "f4"))
    with pytest.raises(ValueError, match="'h_new' is not x or an op that reads a parameter"):
        kernel.bind_backward(params, saved, into={"h_new": np.zeros((4, 1, 3))})


def test_kept_inference_programs_give_fresh_results():
    """An inference call reuses the buffers of the last call of the same shapes and
    parameters; what it returns is the caller's, and a parameter changed in place is seen."""
    cell = get_cell("lstm")
    kernel = CellKernel(cell, hidden=4, input_size=3)
    params = init_params(kernel, 0)
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((5, 2, 3)), rng.standard_normal((5, 2, 3))
    h0 = {"h": rng.standard_normal((2, 4))}
    first = kernel.forward(params, x1, h0, save=False)
    kept = first.output.copy()
    second = kernel.forward(params, x2, save=False)
    np.testing.assert_array_equal(first.output, kept)
    for x, states, run in ((x1, h0, first), (x2, {}, second)):
        fresh = CellKernel(cell, hidden=4, input_size=3).forward(params, x, states, save=True)
        np.testing.assert_array_equal(run.output, fresh.output)
    params["weight_hh"][0, 0] += 1.0  # in place
    changed = kernel.forward(params, x1, h0, save=False)
    fresh = CellKernel(cell, hidden=4, input_size=3).forward(params, x1, h0, save=True)
    np.testing.assert_array_equal(changed.output, fresh.output)
    other = init_params(kernel, 1)  # another parameter set (the other direction of a layer)
    np.testing.assert_array_equal(
        kernel.forward(other, x1, save=False).output,
        CellKernel(cell, hidden=4, input_size=3).forward(other, x1).output,
    )
    out = np.empty((5, 2, 4))
    assert kernel.forward(params, x1, h0, save=False, out=out).output is out
    np.testing.assert_array_equal(out, changed.output)
