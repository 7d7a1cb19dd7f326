"""Recurrent cells as data: declared once, analysed and computed from the declaration.

* :mod:`wpsim.cells.spec` -- the declaration (:class:`Cell`: parameters, ops, carried states),
  its vocabulary, and the YAML loader :func:`load_cell`;
* :mod:`wpsim.cells.registry` -- the built-in cells by name (:func:`get_cell`,
  :func:`resolve_cell`); each is one module of this package, found by discovery;
* :mod:`wpsim.cells.analysis` -- what follows from a declaration: the rolled graph, the ops that
  leave the recurrence, flops, weight blocks and state bytes.

The numpy forward and BPTT of any declared cell are :mod:`kernels.declared`.

Examples
--------
>>> from wpsim.cells import get_cell, op_phases, step_flops
>>> cell = get_cell("sru")
>>> sorted(name for name, phase in op_phases(cell).items() if phase == "recurrence")
['c_new', 'f', 'fa', 'fc', 'fu', 'omf', 'vf']
>>> step_flops(cell, hidden=4, input_size=4).matmul_recurrent
0.0
"""

from wpsim.cells.analysis import (
    CSR_INDEX_BYTES,
    OP_FLOPS,
    Product,
    Stage,
    StepFlops,
    WeightBlock,
    elementwise_flops_per_unit,
    gate_count,
    gathered_state_width,
    gathered_states,
    group_flops,
    input_lag,
    input_products,
    nonzeros,
    op_flops,
    op_groups,
    op_phases,
    output_width,
    param_block,
    param_shapes,
    parameter_count,
    products,
    recurrence_inputs,
    recurrent_matrices,
    recurrent_ops,
    rolled_graph,
    schedule,
    state_bytes,
    state_widths,
    step_flops,
    weight_blocks,
)
from wpsim.cells.registry import cell_names, get_cell, register, registered_name, resolve_cell
from wpsim.cells.spec import (
    OP_KINDS,
    Cell,
    Op,
    Operand,
    Param,
    State,
    cell_from_dict,
    cell_to_dict,
    load_cell,
    value_gates,
    value_widths,
)

__all__ = [
    "CSR_INDEX_BYTES",
    "OP_FLOPS",
    "OP_KINDS",
    "Cell",
    "Op",
    "Operand",
    "Param",
    "Product",
    "Stage",
    "State",
    "StepFlops",
    "WeightBlock",
    "cell_from_dict",
    "cell_names",
    "cell_to_dict",
    "elementwise_flops_per_unit",
    "gate_count",
    "gathered_state_width",
    "gathered_states",
    "get_cell",
    "group_flops",
    "input_lag",
    "input_products",
    "load_cell",
    "nonzeros",
    "op_flops",
    "op_groups",
    "op_phases",
    "output_width",
    "param_block",
    "param_shapes",
    "parameter_count",
    "products",
    "recurrence_inputs",
    "recurrent_matrices",
    "recurrent_ops",
    "register",
    "registered_name",
    "resolve_cell",
    "rolled_graph",
    "schedule",
    "state_bytes",
    "state_widths",
    "step_flops",
    "value_gates",
    "value_widths",
    "weight_blocks",
]
