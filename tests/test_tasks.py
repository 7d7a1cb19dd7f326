"""kernels.tasks, kernels.arrays and kernels.inputs: the executor's tasks for every registered
cell, read from its declaration.

* the multi-process executor is bitwise equal to the same tasks in one process
  (:mod:`kernels.reference`) for every cell of the registry and the options that change a
  cell's graph, inference and training;
* split groups and hoisted input products (``layerwise`` on 2 workers, a wavefront of helper
  pairs) agree with one process to rounding;
* each task computes the products the simulator's graph charges it (the products of the layer
  input hoisted into the input task, QRNN's window ``[x_t, x_{t-1}]`` included), and the
  results stay exact (bitwise, and within 1e-12 of the papers' equations);
* the arrays and hooks a task uses come from the declaration (no table per cell).

The workloads are tiny (H = 6, T = 5): every execution starts worker processes.
"""

from __future__ import annotations

import doctest
import json
import threading

import cells_from_papers  # (tests/, next to this file)
import networkx as nx
import numpy as np
import pytest
from conftest import make_machine

import kernels.arrays
import kernels.group
import kernels.inputs
import kernels.tasks
from kernels import backward, forward, init_input, init_params
from kernels.arrays import array_specs, hoisted_products, layer_kernels
from kernels.declared import BackwardProgram, ForwardProgram, steps
from kernels.executor import Executor, execute
from kernels.products import Recurrent
from kernels.tasks import TaskRunner
from wpsim.cells import cell_names
from wpsim.cli import main
from wpsim.cost.cpu import CpuCostModel
from wpsim.machines import HW_CONFIG_DIR
from wpsim.model.graph import build
from wpsim.model.plan import Plan, compile_plan
from wpsim.model.workload import Workload
from wpsim.policies import get_policy

#: Every registered cell with its defaults in both phases, and in training (whose tasks run the
#: forward too) the options that change what runs: each execution starts worker processes.
CASES = [(cell, phase) for cell in cell_names() for phase in ("inference", "training")] + [
    ("rnn(nonlinearity='relu')", "training"),
    ("lstm(proj_size=3)", "training"),
    ("qrnn(window=2)", "training"),
]


def _workload(cell: str, phase: str, **extra) -> Workload:
    base = dict(
        cell=cell, layers=2, hidden=6, input=3, seq_len=5, batch=2, bidirectional=True, phase=phase
    )
    return Workload(**(base | extra))


def _flat(value) -> np.ndarray:
    """A state of layers of different widths (QRNN's carried input) is a list of arrays."""
    if isinstance(value, list):
        return np.concatenate([np.ravel(v) for v in value])
    return np.asarray(value)


@pytest.mark.parametrize(
    "module", [kernels.arrays, kernels.inputs, kernels.tasks], ids=lambda m: m.__name__
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(("cell", "phase"), CASES)
def test_executor_is_bitwise_equal_to_one_process_for_every_cell(cell, phase):
    """Whole cells on 2 workers (wavefront, chunks of 2 steps, two layers, both directions)
    compute exactly what the same tasks compute in one process."""
    training = phase == "training"
    extra = dict(output="softmax", output_size=4) if cell == "gru" else {}
    w = _workload(cell, phase, **extra)
    params, x = init_params(w, seed=3), init_input(w, seed=4)
    out_width = 4 if extra else 2 * w.output_width
    g = np.random.default_rng(5).standard_normal((5, 2, out_width)).astype(w.dtype)
    run = execute(w, "wavefront", workers=2, chunk=2, params=params, x=x, grad_output=g)
    assert {len(c) for c in run.trace.cores} == {1}  # whole cells, one worker each
    y, states = forward(w, params, x, chunk=2)
    assert np.array_equal(run.outputs["output"], y)
    names = [s.name for s in w.cell_declaration.states]
    states = states if len(names) > 1 else (states,)
    for name, value in zip(names, states, strict=True):
        assert np.array_equal(_flat(run.outputs[f"{name}_n"]), _flat(value)), name
    if training:
        grads = backward(w, params, x, g, chunk=2)
        assert run.grads is not None and set(run.grads) == set(grads)
        for name, value in grads.items():
            assert np.array_equal(_flat(run.grads[name]), _flat(value)), name
    else:
        assert run.grads is None


@pytest.mark.parametrize(
    ("cell", "policy"),
    [
        ("sru", "layerwise"),
        ("qrnn(window=2)", "layerwise"),
        ("lstm(proj_size=3)", "helpers"),
    ],
)
def test_split_groups_and_hoisted_products_agree_with_one_process(cell, policy):
    """Every task split across a group of 2 (products on the recurrence by rows and columns,
    products off it by time steps, parameter gradients by parameter), and input products
    hoisted into input_gemm tasks, agree with one process to float64 rounding."""
    w = _workload(cell, "training", dtype="float64")
    params, x = init_params(w, seed=1), init_input(w, seed=2)
    g = np.random.default_rng(3).standard_normal((5, 2, 2 * w.output_width))
    if policy == "layerwise":
        run = execute(w, "layerwise", workers=2, params=params, x=x, grad_output=g)
        chunk = None
    else:
        helpers = get_policy("wavefront", helpers=2)
        run = execute(w, helpers, workers=2, chunk=2, params=params, x=x, grad_output=g)
        chunk = 2
    assert set(run.trace.cores) == {(0, 1)}
    y, _ = forward(w, params, x, chunk=chunk)
    np.testing.assert_allclose(run.outputs["output"], y, rtol=1e-12, atol=1e-14)
    grads = backward(w, params, x, g, chunk=chunk)
    for name, value in grads.items():
        np.testing.assert_allclose(
            _flat(run.grads[name]), _flat(value), rtol=1e-11, atol=1e-13, err_msg=name
        )
    kinds = {t.kind for t in run.tasks}
    if policy == "layerwise":
        assert {"input_gemm", "input_gemm_bwd"} <= kinds


@pytest.mark.parametrize("cell", ["sru", "qrnn(window=2)"])
def test_bound_task_programs_and_kernel_calls_agree_bitwise(cell, monkeypatch):
    """A warmed runner (an executor's worker) binds its cell tasks' programs until the budget
    is spent (kernels.tasks.TASK_PROGRAMS_MAX_BYTES) and calls the kernel's forward for the
    rest, as a runner that is not warmed (the in-process reference) does for all: none, some
    or all tasks bound give the same bits on 2 workers with split groups and hoisted input
    products, in a first run and a second. (Whole tasks: the test above.)"""
    w = _workload(cell, "training", dtype="float64")
    params, x = init_params(w, seed=1), init_input(w, seed=2)
    g = np.random.default_rng(3).standard_normal((5, 2, 2 * w.output_width))
    got = {}
    for budget in ("0", "30000", str(kernels.tasks.TASK_PROGRAMS_MAX_BYTES)):
        monkeypatch.setenv("WPSIM_TASK_PROGRAMS_MAX_BYTES", budget)
        with Executor(w, "layerwise", workers=2, params=params, x=x, grad_output=g) as ex:
            first = ex.run()
            ex.run()
            runs = ex.result()
        assert first > 0
        got[budget] = {"y": runs.outputs["output"]} | {k: _flat(v) for k, v in runs.grads.items()}
    for budget, ran in got.items():
        for name, value in ran.items():
            assert np.array_equal(value, got["0"][name]), (budget, name)


#: (workload cell, the independent reference's name and options): QRNN with a window of 2 (its
#: input projection reads x_{t-1}), window 1 and SRU as controls, and MinimalRNN (a product off
#: the recurrence that is not of the input: it stays in the cell)
HOISTED = [
    ("qrnn(window=2)", "qrnn", {"window": 2}),
    ("qrnn", "qrnn", {}),
    ("sru", "sru", {}),
    ("minimalrnn", "minimalrnn", {}),
]


def _products_by_task(w: Workload, policy: str, monkeypatch) -> tuple[dict[int, float], Plan]:
    """The flops of the products each task of the executor's graph (the policy's, as
    :func:`kernels.executor.execute` builds it) computes when its tasks run in one process, in
    dependency order, by task id; and the graph's plan."""
    graph = build(w, **get_policy(policy).graph_options(w, 2))
    plan = compile_plan(graph)
    hoisted = graph.graph.get("hoist_input") is not None
    specs = array_specs(w, 1, hoisted, False, plan.chunk, [1])
    arrays = {
        name: np.zeros(spec[0], spec[1], order=spec[2] if len(spec) > 2 else "C")
        for name, spec in specs.items()
    }
    for name, value in init_params(w, seed=1).items():
        arrays[f"p0.{name}"][...] = value
    arrays["x"][...] = init_input(w, seed=2)
    done: dict[int, float] = {}
    running = [-1]

    def counted(fn, sizes):
        """``fn``, adding ``2 m k n`` flops to the running task (``sizes`` gives m, k, n)."""

        def product(*args):
            m, k, n = sizes(*args)
            done[running[0]] = done.get(running[0], 0.0) + 2.0 * m * k * n
            return fn(*args)

        return product

    # every dense product of the kernels goes through these (sizes: rows, inner, columns)
    xwt = lambda a, weight, out: (a.shape[0], a.shape[1], weight.shape[0])  # noqa: E731
    monkeypatch.setattr(kernels.group, "matmul_xwt", counted(kernels.group.matmul_xwt, xwt))
    monkeypatch.setattr(steps, "matmul_xwt", counted(steps.matmul_xwt, xwt))
    hh = lambda self, h, out: (h.shape[0], h.shape[1], out.shape[1])  # noqa: E731
    monkeypatch.setattr(Recurrent, "hh", counted(Recurrent.hh, hh))
    tasks = [(t.kind, t.instance, t.layer, t.direction, t.t0, t.steps) for t in plan.tasks]
    runner = TaskRunner(w, tasks, arrays, hoisted=hoisted, training=False, chunk=plan.chunk)
    for tid in nx.lexicographical_topological_sort(graph):
        running[0] = tid
        runner.run(tid)
    return done, plan


@pytest.mark.parametrize("policy", ["layerwise", "wavefront"])
@pytest.mark.parametrize(("cell", "name", "options"), HOISTED, ids=[c[0] for c in HOISTED])
def test_each_task_runs_the_products_the_simulator_charges_it(
    cell, name, options, policy, monkeypatch
):
    """The products of the layer input (wpsim.cells.input_products) run where the simulator's
    graph charges them: hoisted (layerwise), every step's in the input task (QRNN's ``W [x_t,
    x_{t-1}]`` from the input shifted by a step), none in the cells; the others in the cells.
    Task by task (same ids), the executor's products have the flops the simulator charges."""
    w = _workload(cell, "inference", dtype="float64")
    done, plan = _products_by_task(w, policy, monkeypatch)
    charged = {t.id: t.flops_in + t.flops_rec for t in plan.tasks if t.flops_in + t.flops_rec}
    assert done == charged
    kinds = {plan.tasks[tid].kind for tid in done}
    if policy == "wavefront":
        assert kinds == {"cell"}
    else:  # MinimalRNN's U_z tanh(W_x x + b) stays in its cells
        assert kinds == ({"input_gemm", "cell"} if name == "minimalrnn" else {"input_gemm"})


WINDOW_3 = """
name: window3
states:
  c: {width: H, next: c_new}
  xp: {width: I, next: x}
  xpp: {width: I, next: xp_c}
params:
  weight_ih: {shape: [3*H, 3*I], gates: [z, f, o]}
  bias_ih: {shape: [3*H], gates: [z, f, o]}
ops:
  - xp_c = identity(xp)
  - xx = concat(x, xp, xpp)
  - gx = matmul(weight_ih, xx)
  - a = add(gx, bias_ih)
  - z = tanh(a.z)
  - f = sigmoid(a.f)
  - o = sigmoid(a.o)
  - fc = mul(f, c)
  - omf = one_minus(f)
  - fz = mul(omf, z)
  - c_new = add(fc, fz)
  - h_new = mul(o, c_new)
output: h_new
"""


def test_an_input_projection_two_steps_back_is_hoisted_too(tmp_path, monkeypatch):
    """A cell declared in YAML whose product reads ``[x_t, x_{t-1}, x_{t-2}]`` (a state carrying
    another): the input task assembles it from the input shifted by one and two steps (the
    states' initial values before them) and sends each run's gradient back to its step, or to
    the initial state it was."""
    path = tmp_path / "window3.yaml"
    path.write_text(WINDOW_3)
    inference = _workload(str(path), "inference", dtype="float64")
    done, plan = _products_by_task(inference, "layerwise", monkeypatch)
    assert {plan.tasks[tid].kind for tid in done} == {"input_gemm"}
    assert done == {tid: plan.tasks[tid].flops_in for tid in done}
    monkeypatch.undo()
    w = _workload(str(path), "training", dtype="float64")
    params, x = init_params(w, seed=1), init_input(w, seed=2)
    g = np.random.default_rng(3).standard_normal((5, 2, 2 * w.output_width))
    run = execute(w, "layerwise", workers=2, params=params, x=x, grad_output=g)
    y, _ = forward(w, params, x)
    assert np.array_equal(run.outputs["output"], y)
    grads = backward(w, params, x, g)
    assert run.grads is not None and set(run.grads) == set(grads) >= {"xp0", "xpp0"}
    for key, value in grads.items():
        np.testing.assert_allclose(
            np.ravel(_flat(run.grads[key])), np.ravel(_flat(value)), rtol=1e-12, atol=1e-12
        )


def _paper_network(w: Workload, name: str, options: dict, params, x, g) -> dict:
    """The network's output and gradients from the papers' equations (tests/cells_from_papers.py,
    torch autograd), layer by layer, zero initial states."""
    import torch

    from kernels.params import suffix
    from wpsim.cells import state_widths

    reference = cells_from_papers.reference(name, options)
    leaves = {k: torch.from_numpy(np.asarray(v)).requires_grad_() for k, v in params.items()}
    inp = xt = torch.from_numpy(x).requires_grad_()
    starts = {}
    for layer in range(w.layers):
        halves = []
        for d in range(w.directions):
            tail = suffix(layer, d == 1)
            p = {k[: -len(tail)]: v for k, v in leaves.items() if k.endswith(tail)}
            widths = state_widths(w.cell_declaration, w.hidden, inp.shape[2])
            zero = {
                s: torch.zeros(w.batch, n, dtype=torch.float64, requires_grad=True)
                for s, n in widths.items()
            }
            starts[layer, d] = zero
            flip = (lambda a: a.flip(0)) if d else (lambda a: a)
            halves.append(flip(reference(flip(inp), zero, p)[0]))
        inp = torch.cat(halves, dim=-1)
    (inp * torch.from_numpy(g)).sum().backward()
    grads = {k: v.grad.numpy() for k, v in leaves.items()}
    grads["x"] = xt.grad.numpy()
    for s in starts[0, 0]:
        grads[f"{s}0"] = [starts[key][s].grad.numpy() for key in sorted(starts)]
    return {"output": inp.detach().numpy(), "grads": grads}


@pytest.mark.parametrize("policy", ["layerwise", "wavefront"])
@pytest.mark.parametrize(("cell", "name", "options"), HOISTED, ids=[c[0] for c in HOISTED])
def test_hoisted_products_keep_the_results_exact(cell, name, options, policy):
    """On 2 workers (layerwise: one group of 2 splitting every task), training in float64:
    the outputs bitwise equal to the in-process reference, the gradients to the same graph's
    tasks in one process (layerwise: one worker; the hoisted ``dx`` adds ``g W`` after the
    cell's part, in another order than the reference's chunk kernel), and all within 1e-12 of
    the papers' equations."""
    w = _workload(cell, "training", dtype="float64")
    params, x = init_params(w, seed=1), init_input(w, seed=2)
    g = np.random.default_rng(3).standard_normal((5, 2, 2 * w.output_width))
    chunk = None if policy == "layerwise" else 2  # layerwise: one input GEMM per layer
    run = execute(w, policy, workers=2, chunk=chunk or 1, params=params, x=x, grad_output=g)
    y, _ = forward(w, params, x, chunk=chunk)
    assert np.array_equal(run.outputs["output"], y)
    if policy == "layerwise":
        one = execute(w, policy, workers=1, params=params, x=x, grad_output=g)
        assert one.grads is not None and np.array_equal(one.outputs["output"], y)
        grads = one.grads
    else:
        grads = backward(w, params, x, g, chunk=chunk)
    assert run.grads is not None and set(run.grads) == set(grads)
    for key, value in grads.items():
        assert np.array_equal(_flat(run.grads[key]), _flat(value)), key
    paper = _paper_network(w, name, options, params, x, g)
    np.testing.assert_allclose(run.outputs["output"], paper["output"], rtol=1e-12, atol=1e-12)
    for key, value in paper["grads"].items():
        np.testing.assert_allclose(
            np.ravel(_flat(run.grads[key])),
            np.ravel(_flat(value)),
            rtol=1e-12,
            atol=1e-12,
            err_msg=key,
        )


def _member_work(w: Workload, policy: str, warm: bool) -> tuple[dict, dict, Plan]:
    """Run every task of the policy's graph on a group of 2 members (threads with a barrier,
    the executor's split tasks: :class:`kernels.tasks.TaskRunner` of rank 0 and 1, warmed as
    a worker's: its tasks' programs bound, or not), in dependency order. Returns the flops of
    the products each member computes in a forward task and the members that run the cell's
    kernel (its element-wise work), by task id."""
    graph = build(w, **get_policy(policy, helpers=2).graph_options(w, 2))
    plan = compile_plan(graph)
    hoisted = graph.graph.get("hoist_input") is not None
    training = w.phase == "training"
    specs = array_specs(w, 1, hoisted, training, plan.chunk, [2])
    arrays = {
        name: np.zeros(spec[0], spec[1], order=spec[2] if len(spec) > 2 else "C")
        for name, spec in specs.items()
    }
    for name, value in init_params(w, seed=1).items():
        arrays[f"p0.{name}"][...] = value
    arrays["x"][...] = init_input(w, seed=2)
    if training:
        arrays["gout"][...] = np.random.default_rng(3).standard_normal(arrays["gout"].shape)
    products: dict[tuple[int, int], float] = {}
    kernel_runs: dict[int, set[int]] = {}
    now = threading.local()

    def counted(fn, sizes):
        def product(*args):
            m, k, n = sizes(*args)
            key = (now.task, now.rank)
            products[key] = products.get(key, 0.0) + 2.0 * m * k * n
            return fn(*args)

        return product

    def ran(fn):
        def run(*args, **kw):
            kernel_runs.setdefault(now.task, set()).add(now.rank)
            return fn(*args, **kw)

        return run

    xwt = lambda a, weight, out: (a.shape[0], a.shape[1], weight.shape[0])  # noqa: E731
    barrier = threading.Barrier(2)
    tasks = [(t.kind, t.instance, t.layer, t.direction, t.t0, t.steps) for t in plan.tasks]
    order = list(nx.lexicographical_topological_sort(graph))
    failed: list[BaseException] = []

    def member(rank: int) -> None:
        now.rank = rank
        runner = TaskRunner(
            w,
            tasks,
            arrays,
            hoisted=hoisted,
            training=training,
            chunk=plan.chunk,
            rank=rank,
            size=2,
            barrier=barrier.wait,
            scratch="rb0",
        )
        try:
            if warm:
                runner.warm()
            for tid in order:
                now.task = tid
                runner.run(tid)
                barrier.wait()  # a task ends when every member is done
        except BaseException as error:  # noqa: BLE001 - re-raised by the test
            failed.append(error)
            barrier.abort()

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels.group, "matmul_xwt", counted(kernels.group.matmul_xwt, xwt))
        patch.setattr(steps, "matmul_xwt", counted(steps.matmul_xwt, xwt))
        # the kernel runs a program, bound to the task's arrays or built for the call
        patch.setattr(ForwardProgram, "run", ran(ForwardProgram.run))
        patch.setattr(BackwardProgram, "run", ran(BackwardProgram.run))
        threads = [threading.Thread(target=member, args=(r,)) for r in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failed:
        raise failed[0]
    return products, kernel_runs, plan


@pytest.mark.parametrize("warm", [False, True], ids=["called", "bound"])
@pytest.mark.parametrize("policy", ["helper", "layerwise"])
@pytest.mark.parametrize("cell", ["sru", "qrnn(window=2)", "indrnn", "lstm"])
def test_split_members_do_the_work_the_simulator_charges_them(cell, policy, warm):
    """A group of 2 splitting every task: an element-wise recurrence (SRU, QRNN, IndRNN) runs
    once, on the lead, the other member taking its share of the products only; a cell with a
    recurrent product runs its element-wise update on every member (no second barrier a step).
    The simulator (``elementwise_split_across_helpers: false``, as the executor's calibrations
    say) charges a member the whole element-wise work and its share of the products: each
    member's product flops are what the model charges it (an even split), forward and
    backward tasks alike run their kernel where the model says."""
    w = _workload(
        cell, "training", bidirectional=False, seq_len=4, input=6, hidden=8, dtype="float64"
    )
    products, kernel_runs, plan = _member_work(w, policy, warm)
    machine = make_machine(cores=2).model_copy(update={"elementwise_split_across_helpers": False})
    model = CpuCostModel(machine, plan)
    peak = machine.peak_flops_per_core(w.dtype)
    alone = not w.step_flops(0).matmul_recurrent
    for task in plan.tasks:
        if task.kind not in ("cell", "cell_bwd", "input_gemm"):
            continue
        products_s, elem_s = model.compute_parts(task.id, 2)
        if task.kind in ("cell", "cell_bwd"):
            assert elem_s == model.compute_parts(task.id, 1)[1]  # a member's time holds it all
            assert kernel_runs[task.id] == ({0} if alone else {0, 1}), task.label
        else:
            assert task.id not in kernel_runs
        if not task.kind.endswith("_bwd"):  # the forward's products, counted
            for rank in range(2):
                done = products.get((task.id, rank), 0.0)
                assert done == pytest.approx(products_s * peak, rel=1e-12), (task.label, rank)


def test_split_members_keep_element_wise_recurrences_exact():
    """Split groups (a wavefront of helper pairs, and all the cores in one group) compute what
    one process computes, bitwise, for the cells whose recurrence runs on the lead alone."""
    for cell in ("sru", "qrnn(window=2)"):
        w = _workload(cell, "training")
        params, x = init_params(w, seed=1), init_input(w, seed=2)
        g = np.random.default_rng(3).standard_normal((5, 2, 2 * w.output_width)).astype(w.dtype)
        y, _ = forward(w, params, x, chunk=2)
        grads = backward(w, params, x, g, chunk=2)
        helpers = get_policy("wavefront", helpers=2)
        run = execute(w, helpers, workers=2, chunk=2, params=params, x=x, grad_output=g)
        assert set(run.trace.cores) == {(0, 1)}
        assert np.array_equal(run.outputs["output"], y)
        assert run.grads is not None
        for key, value in grads.items():
            assert np.array_equal(_flat(run.grads[key]), _flat(value)), key


def test_arrays_follow_the_declaration():
    """States other than the output, values kept for the backward and the gradients of the ops
    that read parameters get their arrays from the declaration."""
    w = _workload("sru", "training", bidirectional=False, layers=1)
    specs = array_specs(w, 1, hoisted=True, training=True, chunk=2, group_sizes=[1])
    kernel = layer_kernels(w)[0]
    assert hoisted_products(kernel) == ["gx"]
    assert specs["s0.0.0.c"][0] == (5, 2, 6)  # SRU's state c is not its output h
    assert specs["gx0.0.0.gx"][0] == (5, 2, 24)  # [W, W_f, W_r, W_p] x
    assert specs["ds0.0.0.c"][0] == (3, 2, 6)  # one gradient per chunk's entering state
    assert {name for name in specs if name.startswith("g0.")} == {
        "g0.weight_ih_l0",
        "g0.weight_c_l0",
        "g0.bias_l0",
    }
    assert not any(name.startswith("h0.0.0.") or name == "c0.0.0" for name in specs)


@pytest.mark.parametrize(
    ("cell", "phase", "policy"),
    [("sru", "training", "layerwise"), ("qrnn(window=2)", "inference", "wavefront")],
)
def test_run_and_validate_on_the_command_line(cell, phase, policy, tmp_path, capsys):
    """`wpsim run` and `wpsim validate` take a cell PyTorch does not have."""
    path = tmp_path / "w.yaml"
    path.write_text(
        f'cell: "{cell}"\nlayers: 2\nhidden: 16\ninput: 8\nseq_len: 4\nphase: {phase}\n'
        "bidirectional: true\n"
    )
    run = ["run", "-w", str(path), "-p", policy, "--workers", "2", "--repeats", "1", "--json"]
    assert main(run) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cores"] == 2 and out["makespan_s"] > 0
    machine = str(HW_CONFIG_DIR / "xeon_kvm_2core.yaml")
    check = ["validate", "-w", str(path), "--hardware", machine, "--workers", "1"]
    assert main([*check, "--policies", "sequential", "--repeats", "1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert rows and all(r["measured_makespan_s"] > 0 < r["predicted_makespan_s"] for r in rows)
