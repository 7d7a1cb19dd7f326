"""The numpy kernels (the executor's tasks run in one process, :mod:`kernels.reference`) against
torch.nn.RNN / LSTM / GRU (outputs and every gradient), the ReLU RNN and the LSTM with
``proj_size`` included."""

from __future__ import annotations

import numpy as np
import pytest

from kernels import backward, forward, init_input, init_params, load_state_dict
from wpsim.cells import value_widths
from wpsim.model.workload import Workload

torch = pytest.importorskip("torch")

TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-12, atol=1e-13)}
MODULES = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def _state_shapes(w: Workload) -> list[tuple[int, int, int]]:
    """The shape of each state (h, and c for an LSTM) as torch gives it: (L*D, B, width)."""
    cell = w.cell_declaration
    widths = value_widths(cell, w.hidden, w.input)
    return [(w.layers * w.directions, w.batch, widths[s.name]) for s in cell.states]


def _torch_rnn(w: Workload, params: dict):
    cls = getattr(torch.nn, MODULES[w.cell_name])
    options = dict(w.cell_declaration.options)  # nonlinearity, proj_size: torch's own names
    module = cls(w.input, w.hidden, num_layers=w.layers, bidirectional=w.bidirectional, **options)
    module = module.to(getattr(torch, w.dtype))
    rnn_params = {k: torch.from_numpy(v) for k, v in params.items() if not k.endswith("_out")}
    module.load_state_dict(rnn_params)
    return module


def _run_torch(w, params, x, h0, grad_output, grad_hn):
    """Torch forward + autograd backward of sum(output * grad_output) + sum(h_n * grad_hn)."""
    module = _torch_rnn(w, params)
    xt = torch.from_numpy(x).requires_grad_()
    multi = len(_state_shapes(w)) > 1
    states = [torch.from_numpy(s).requires_grad_() for s in (h0 if multi else (h0,))]
    out, hn = module(xt, tuple(states) if multi else states[0])
    linear = None
    if w.output != "none":
        linear = torch.nn.Linear(w.directions * w.output_width, w.output_size).to(xt.dtype)
        linear.load_state_dict(
            {
                "weight": torch.from_numpy(params["weight_out"]),
                "bias": torch.from_numpy(params["bias_out"]),
            }
        )
        out = linear(out)
        if w.output == "softmax":
            out = torch.softmax(out, dim=-1)
    hn_list = list(hn) if multi else [hn]
    gh_list = list(grad_hn) if multi else [grad_hn]
    loss = (out * torch.from_numpy(grad_output)).sum()
    for h, g in zip(hn_list, gh_list, strict=True):
        loss = loss + (h * torch.from_numpy(g)).sum()
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    if linear is not None:
        grads["weight_out"] = linear.weight.grad.numpy()
        grads["bias_out"] = linear.bias.grad.numpy()
    grads["x"] = xt.grad.numpy()
    grads["h0"] = states[0].grad.numpy()
    if multi:
        grads["c0"] = states[1].grad.numpy()
    outputs = [out.detach().numpy()] + [h.detach().numpy() for h in hn_list]
    return outputs, grads


def _compare(w: Workload, chunk: int | None = 2, seed: int = 0):
    params = init_params(w, seed)
    x = init_input(w, seed + 1)
    rng = np.random.default_rng(seed + 2)
    shapes = _state_shapes(w)
    multi = len(shapes) > 1
    states = [(0.5 * rng.standard_normal(shape)).astype(w.dtype) for shape in shapes]
    h0 = tuple(states) if multi else states[0]
    out, hn = forward(w, params, x, h0, chunk=chunk)
    grad_output = rng.standard_normal(out.shape).astype(w.dtype)
    grad_hn_list = [rng.standard_normal(shape).astype(w.dtype) for shape in shapes]
    grad_hn = tuple(grad_hn_list) if multi else grad_hn_list[0]
    grads = backward(w, params, x, grad_output, h0, grad_hn=grad_hn, chunk=chunk)

    ref_outputs, ref_grads = _run_torch(w, params, x, h0, grad_output, grad_hn)
    tol = TOL[w.dtype]
    ours = [out] + (list(hn) if multi else [hn])
    for name, a, b in zip(["output", "h_n", "c_n"], ours, ref_outputs, strict=False):
        assert a.dtype == np.dtype(w.dtype)
        np.testing.assert_allclose(a, b, **tol, err_msg=name)
    assert set(grads) == set(ref_grads)
    for name, ref in ref_grads.items():
        assert grads[name].shape == ref.shape, name
        np.testing.assert_allclose(grads[name], ref, **tol, err_msg=name)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_matches_torch(cell, bidirectional, dtype):
    w = Workload(
        cell=cell,
        layers=2,
        hidden=7,
        input=5,
        seq_len=5,
        batch=2,
        bidirectional=bidirectional,
        dtype=dtype,
    )
    _compare(w)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
@pytest.mark.parametrize("cell", ["rnn(nonlinearity='relu')", "lstm(proj_size=3)"])
def test_relu_rnn_and_projected_lstm_match_torch_in_float64(cell, bidirectional):
    w = Workload(
        cell=cell,
        layers=2,
        hidden=7,
        input=5,
        seq_len=5,
        batch=2,
        bidirectional=bidirectional,
        dtype="float64",
    )
    _compare(w, chunk=2)


@pytest.mark.parametrize("output", ["linear", "softmax"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "lstm(proj_size=2)"])
def test_output_layer_matches_torch(cell, output):
    w = Workload(
        cell=cell,
        layers=2,
        hidden=6,
        input=4,
        seq_len=4,
        batch=2,
        bidirectional=True,
        dtype="float64",
        output=output,
        output_size=5,
    )
    _compare(w, chunk=3)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_batch_one_whole_sequence_matches_torch(cell):
    w = Workload(cell=cell, layers=2, hidden=16, input=3, seq_len=5, batch=1, dtype="float32")
    _compare(w, chunk=None)


def test_sparse_workload_matches_torch_with_pruned_weights():
    w = Workload(
        cell="lstm",
        layers=2,
        hidden=8,
        input=4,
        seq_len=5,
        batch=2,
        bidirectional=True,
        dtype="float64",
        density=0.25,
    )
    _compare(w, chunk=2)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_load_state_dict_from_torch_module(cell):
    w = Workload(cell=cell, layers=2, hidden=5, input=3, seq_len=4, batch=2, bidirectional=True)
    torch.manual_seed(0)
    module = getattr(torch.nn, MODULES[cell])(3, 5, num_layers=2, bidirectional=True)
    params = load_state_dict(w, module.state_dict())
    assert list(params) == list(module.state_dict())
    x = init_input(w, 0)
    with torch.no_grad():
        ref, _ = module(torch.from_numpy(x))
    out, _ = forward(w, params, x)
    np.testing.assert_allclose(out, ref.numpy(), **TOL["float32"])
