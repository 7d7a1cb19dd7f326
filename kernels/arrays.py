"""The arrays of a workload's tasks, named and shaped from the cell's declaration.

Arrays (``i`` instance, ``l`` layer, ``d`` direction, ``key = i.l.d``; T steps, B batch, W the
width of the cell's output, I_l the layer's input width, O output size, D directions; all in the
compute dtype):

=====================  ===============  ==================================================
name                   shape            contents
=====================  ===============  ==================================================
``x``                  (T, B, I)        network input (shared by all instances)
``p{i}.{param}``       declared shapes  parameters (one copy per instance)
``h{key}``             (T, B, W)        the layer-direction's output after every step
``s{key}.{state}``     (T, B, width)    a state that is not the output, after a chunk's last
                                        processed step (only those slots are written)
``gx{key}.{op}``       (T, B, width)    products off the recurrence: hoisted input products
                                        (``input_gemm`` tasks), and a split group's
``y{i}``               (T, B, O)        output layer (when the workload has one)
``gout``               like the output  loss gradient w.r.t. the output (training)
``v{key}.{op}``        (T, B, width)    values the forward keeps for the backward (training)
``dg{key}.{op}``       (T, B, width)    gradient of each op that reads a parameter (training)
``dx{key}``            (T, B, I_l)      gradient w.r.t. the layer input, per direction
``ds{key}.{state}``    (chunks, B, w)   gradient w.r.t. each chunk's entering state
``gy{i}, dtop{i}``                      output-layer gradients (training with an output layer)
``g{i}.{param}``       declared shapes  parameter gradients (training)
``rb{g}``              (2, k, B*m)      double-buffered exchange blocks of a group of k > 1
``init{key}.{state}``  (B, width)       optional: the initial state (absent: zeros)
``dfin{key}.{state}``  (B, width)       optional: the loss's gradient w.r.t. the final state
=====================  ===============  ==================================================

Each array element has one writer per run (``dx`` of a hoisted graph: the cell task writes,
the ``input_gemm_bwd`` task after it adds the hoisted products' part), so repeated runs
overwrite and nothing accumulates.

The executor places them in one shared segment (:mod:`kernels.executor`); the in-process
reference (:mod:`kernels.reference`) allocates them as plain arrays. :mod:`kernels.tasks` runs
the tasks on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kernels.declared import CellKernel
from kernels.params import compute_dtype, layer_input_width, network_cell, param_shapes
from wpsim.cells import Cell, input_products, output_width
from wpsim.model.workload import Workload

__all__ = [
    "array_specs",
    "batched_products",
    "final_states",
    "hoisted_products",
    "initial_state_grads",
    "layer_kernels",
    "param_ops",
    "recurrent_products",
    "saved_names",
    "shape_kernels",
]


def layer_kernels(workload: Workload, cell: Cell | None = None) -> list[CellKernel]:
    """One :class:`~kernels.declared.CellKernel` per layer (both directions share it), in the
    workload's compute dtype."""
    cell = cell or network_cell(workload)
    dt = compute_dtype(workload)
    return [
        CellKernel(cell, workload.hidden, layer_input_width(workload, l, cell), dt)
        for l in range(workload.layers)
    ]


def batched_products(kernel: CellKernel) -> list[str]:
    """The ``matmul`` ops off the recurrence (run once over a chunk's steps)."""
    plan = kernel.plan
    return [op.name for op in plan.cell.ops if op.kind == "matmul" and not plan.recurrent(op.name)]


def recurrent_products(kernel: CellKernel) -> list[str]:
    """The ``matmul`` ops on the recurrence (run one step at a time)."""
    plan = kernel.plan
    return [op.name for op in plan.cell.ops if op.kind == "matmul" and plan.recurrent(op.name)]


def hoisted_products(kernel: CellKernel) -> list[str]:
    """The products of the layer input (:func:`wpsim.cells.input_products`, the rule the
    simulator's graph follows too): what an ``input_gemm`` task computes, for every step.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> hoisted_products(CellKernel(get_cell("sru"), 4, 3))
    ['gx']
    >>> hoisted_products(CellKernel(get_cell("qrnn", window=2), 4, 3))  # W [x_t, x_{t-1}]
    ['gx']
    """
    return list(input_products(kernel.cell))


def saved_names(kernel: CellKernel) -> list[str]:
    """The values a training forward keeps (besides ``x`` and the output), declaration order."""
    plan = kernel.plan
    return [
        op.name
        for op in plan.cell.ops
        if op.name in plan.full[True] and op.name != plan.cell.output
    ]


def param_ops(kernel: CellKernel) -> list[str]:
    """The ops whose gradient the parameters' gradients read, declaration order."""
    wanted = {rule[0] for rule in kernel.plan.param_rules}
    return [op.name for op in kernel.plan.cell.ops if op.name in wanted]


def shape_kernels(workload: Workload) -> list[CellKernel]:
    """One :class:`~kernels.declared.CellKernel` per layer for the shapes of its arrays only
    (:func:`array_specs`): layers of one input width share one (building one reads the
    declaration, about a millisecond; the size guard sizes stacks of thousands of layers, and
    many candidate schedules of one workload).

    Examples
    --------
    >>> w = Workload(cell="gru", layers=3, hidden=4, input=3, seq_len=2, bidirectional=True)
    >>> ks = shape_kernels(w)
    >>> [k.input_size for k in ks], ks[1] is ks[2]
    ([3, 8, 8], True)
    """
    cell = network_cell(workload)
    dt = compute_dtype(workload)
    by_width: dict[int, CellKernel] = {}
    kernels = []
    for l in range(workload.layers):
        w_in = layer_input_width(workload, l, cell)
        if w_in not in by_width:
            by_width[w_in] = CellKernel(cell, workload.hidden, w_in, dt)
        kernels.append(by_width[w_in])
    return kernels


def array_specs(
    workload: Workload,
    instances: int,
    hoisted: bool,
    training: bool,
    chunk: int,
    group_sizes: list[int],
    *,
    kernels: list[CellKernel] | None = None,
) -> dict[str, tuple]:
    """Names, shapes, dtypes (and memory order, when not C) of every array (see the module
    docstring); ``kernels``: :func:`shape_kernels`'s, when the caller sizes many schedules.

    Examples
    --------
    >>> w = Workload(cell="lstm", layers=2, hidden=4, input=3, seq_len=5)
    >>> specs = array_specs(w, 1, hoisted=False, training=False, chunk=2, group_sizes=[1, 1])
    >>> sorted(specs)[:4], specs["h0.1.0"][0]
    (['h0.0.0', 'h0.1.0', 'p0.bias_hh_l0', 'p0.bias_hh_l1'], (5, 1, 4))
    >>> specs["s0.1.0.c"][0]
    (5, 1, 4)
    """
    dt = compute_dtype(workload)
    cell = network_cell(workload)
    T, B, H = workload.seq_len, workload.batch, workload.hidden
    D, L = workload.directions, workload.layers
    n_chunks = -(-T // chunk)  # len(chunk_bounds(T, chunk)), without listing them
    split = any(k > 1 for k in group_sizes)
    kernels = kernels if kernels is not None else shape_kernels(workload)
    width = output_width(cell, H)
    specs: dict[str, tuple] = {"x": ((T, B, workload.input), dt)}
    shapes = param_shapes(workload)
    out_width = workload.output_size if workload.output != "none" else D * width
    if training:
        specs["gout"] = ((T, B, out_width), dt)
    exchange = 1
    for i in range(instances):
        for name, shape in shapes.items():
            # matrices in the order the kernels multiply fastest (kernels.params.WEIGHT_ORDER)
            order = "F" if len(shape) == 2 else "C"
            specs[f"p{i}.{name}"] = (shape, dt, order)
        if training:
            for name, shape in shapes.items():
                specs[f"g{i}.{name}"] = (shape, dt)
        for l in range(L):
            kernel = kernels[l]
            widths = kernel.widths
            if hoisted or split:
                shared = set(batched_products(kernel)) if split else set()
                shared |= set(hoisted_products(kernel)) if hoisted else set()
            for d in range(D):
                key = f"{i}.{l}.{d}"
                specs[f"h{key}"] = ((T, B, width), dt)
                for s, v in kernel.next_of.items():
                    if v != cell.output:
                        specs[f"s{key}.{s}"] = ((T, B, widths[s]), dt)
                if hoisted or split:
                    for op in sorted(shared):
                        specs[f"gx{key}.{op}"] = ((T, B, widths[op]), dt)
                if training:
                    for op in saved_names(kernel):
                        specs[f"v{key}.{op}"] = ((T, B, widths[op]), dt)
                    for op in param_ops(kernel):
                        specs[f"dg{key}.{op}"] = ((T, B, widths[op]), dt)
                    specs[f"dx{key}"] = ((T, B, kernel.input_size), dt)
                    for s in kernel.next_of:
                        specs[f"ds{key}.{s}"] = ((n_chunks, B, widths[s]), dt)
            if split:  # rows (forward) and columns (backward) of each recurrent product
                for op in recurrent_products(kernel):
                    cols = kernel.param_shapes[kernel.plan.ops[op].args[0].name][1]
                    exchange = max(exchange, widths[op], cols)
        if workload.output != "none":
            specs[f"y{i}"] = ((T, B, workload.output_size), dt)
            if training:
                specs[f"gy{i}"] = ((T, B, workload.output_size), dt)
                specs[f"dtop{i}"] = ((T, B, D * width), dt)
    for g, k in enumerate(group_sizes):
        if k > 1:
            specs[f"rb{g}"] = ((2, k, B * -(-exchange // k)), dt)
    return specs


def _stacked(arrays: list[np.ndarray], dtype: np.dtype) -> np.ndarray | list[np.ndarray]:
    """One (L*D, B, width) array, or a list where the widths differ between layers; copies
    (the arrays may be views of a segment about to be unmapped)."""
    if len({a.shape for a in arrays}) == 1:
        return np.stack(arrays).astype(dtype)
    return [np.array(a, dtype=dtype) for a in arrays]


def final_states(
    workload: Workload, arrays: dict[str, np.ndarray], dtype: Any, instance: int = 0
) -> dict[str, Any]:
    """``{state}_n``: each state of every layer-direction after its last step (the last step of
    the forward direction, the first of the reverse), (L*D, B, width) like PyTorch's ``h_n``
    (a list of L*D arrays for a state whose width differs between layers).

    Examples
    --------
    >>> w = Workload(cell="lstm", hidden=2, input=3, seq_len=4)
    >>> specs = array_specs(w, 1, False, False, 2, [1])
    >>> arrays = {name: np.zeros(spec[0]) for name, spec in specs.items()}
    >>> {k: v.shape for k, v in final_states(w, arrays, "float32").items()}
    {'h_n': (1, 1, 2), 'c_n': (1, 1, 2)}
    """
    cell = network_cell(workload)
    T, L, D = workload.seq_len, workload.layers, workload.directions
    out: dict[str, Any] = {}
    for s in cell.states:
        found = []
        for l in range(L):
            for d in range(D):
                key = f"{instance}.{l}.{d}"
                name = f"h{key}" if s.next == cell.output else f"s{key}.{s.name}"
                found.append(arrays[name][0 if d else T - 1])
        out[f"{s.name}_n"] = _stacked(found, np.dtype(dtype))
    return out


def initial_state_grads(
    workload: Workload, arrays: dict[str, np.ndarray], dtype: Any, instance: int = 0
) -> dict[str, Any]:
    """``{state}0``: the gradient w.r.t. each initial state of every layer-direction, stacked
    as :func:`final_states`."""
    cell = network_cell(workload)
    L, D = workload.layers, workload.directions
    out: dict[str, Any] = {}
    for s in cell.states:
        found = []
        for l in range(L):
            for d in range(D):
                ds = arrays[f"ds{instance}.{l}.{d}.{s.name}"]
                found.append(ds[len(ds) - 1 if d else 0])
        out[f"{s.name}0"] = _stacked(found, np.dtype(dtype))
    return out
