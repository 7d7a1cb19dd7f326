"""Real numpy kernels of recurrent networks of any declared cell: forward, BPTT, chunk tasks.

Every cell is computed from its declaration (:mod:`wpsim.cells`: parameters, ops, carried
states); nothing here knows a cell by name. The parameter names, shapes and gate orders are the
declaration's: PyTorch's for the cells PyTorch has (``torch.nn.RNN`` with tanh or relu,
``torch.nn.LSTM`` gates i, f, g, o with optional ``proj_size``, ``torch.nn.GRU`` gates r, z, n
with ``b_hn`` inside ``r * (W_hn h + b_hn)``), so a state_dict of such a module loads unchanged
(:func:`load_state_dict`). Tensors are time-major, (T, B, features). The optional output layer is
``weight_out`` (output_size, D*W) and ``bias_out``: ``o = c + V h_top``, followed by a softmax
for ``output: softmax``.

Modules:

* :mod:`kernels.declared` -- the forward and BPTT of one layer-direction over a chunk of steps,
  interpreted from the declaration (:class:`~kernels.declared.CellKernel`);
* :mod:`kernels.tasks` -- every task of a workload's graph on named arrays (what the
  executor's workers run, :class:`~kernels.tasks.TaskRunner`);
* :mod:`kernels.inputs` -- the layer input a product of it reads outside the cell's kernel
  (QRNN's ``[x_t, x_{t-1}]``), and its gradient sent back;
* :mod:`kernels.reference` -- whole-network :func:`forward` and :func:`backward`: the same
  tasks in one process;
* :mod:`kernels.products` -- the products of activations by weights (dense in row blocks,
  recurrent, split by rows): :func:`~kernels.products.matmul_xwt`,
  :class:`~kernels.products.Recurrent`, :func:`split_rows`;
* :mod:`kernels.cells` -- the sigmoid and the output layer (:func:`output_forward`,
  :func:`output_backward`);
* :mod:`kernels.params` -- names, shapes, :func:`init_params`, :func:`load_state_dict`,
  :func:`layer_params`;
* :mod:`kernels.executor` -- the tasks on N worker processes.

Precision: float32 and float64 are computed in their own dtype; float16 workloads are computed
in float32 and the results cast back to float16. Sparse workloads (``density < 1``) run the
products on the recurrence with scipy.sparse CSR matrices. No module here imports torch.

Examples
--------
>>> from wpsim.model.workload import Workload
>>> from kernels import forward, init_params, init_input
>>> w = Workload(cell="gru", layers=2, hidden=8, input=4, seq_len=6, batch=3)
>>> out, h_n = forward(w, init_params(w, seed=0), init_input(w, seed=0))
>>> out.shape, h_n.shape
((6, 3, 8), (2, 3, 8))
>>> w = Workload(cell="sru", layers=2, hidden=8, input=4, seq_len=6, batch=3)
>>> out, c_n = forward(w, init_params(w, seed=0), init_input(w, seed=0))
>>> out.shape, c_n.shape
((6, 3, 8), (2, 3, 8))
"""

from kernels.cells import output_backward, output_forward
from kernels.params import (
    chunk_bounds,
    compute_dtype,
    init_input,
    init_params,
    layer_params,
    load_state_dict,
    param_names,
    param_shapes,
    prune_largest,
)
from kernels.products import recurrent_rows, split_rows
from kernels.reference import backward, forward

__all__ = [
    "backward",
    "chunk_bounds",
    "compute_dtype",
    "forward",
    "init_input",
    "init_params",
    "layer_params",
    "load_state_dict",
    "output_backward",
    "output_forward",
    "param_names",
    "param_shapes",
    "prune_largest",
    "recurrent_rows",
    "split_rows",
]
