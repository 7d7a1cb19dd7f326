"""kernels.tasks and kernels.arrays: the executor's tasks for every registered cell, read from its declaration.

* the multi-process executor is bitwise equal to the same tasks in one process
  (:mod:`kernels.reference`) for every cell of the registry and the options that change a
  cell's graph, inference and training;
* split groups and hoisted input products (``layerwise`` on 2 workers, a wavefront of helper
  pairs) agree with one process to rounding;
* the arrays and hooks a task uses come from the declaration (no table per cell).

The workloads are tiny (H = 6, T = 5): every execution starts worker processes.
"""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import kernels.arrays
import kernels.tasks
from kernels import backward, forward, init_input, init_params
from kernels.arrays import array_specs, hoisted_products, layer_kernels
from kernels.executor import Executor, execute
from wpsim.cells import cell_names
from wpsim.cli import main
from wpsim.machines import HW_CONFIG_DIR
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


@pytest.mark.parametrize("module", [kernels.arrays, kernels.tasks], ids=lambda m: m.__name__)
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
