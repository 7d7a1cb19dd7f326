"""Real numpy kernels of Elman RNN, LSTM and GRU networks: forward, BPTT backward, chunk tasks.

The equations, parameter names, shapes and gate orders are PyTorch's (``torch.nn.RNN``
with tanh, ``torch.nn.LSTM`` gates i, f, g, o, ``torch.nn.GRU`` gates r, z, n with ``b_hn``
inside ``r * (W_hn h + b_hn)``); tensors are time-major, (T, B, features). A state_dict of
such a PyTorch module loads unchanged (:func:`load_state_dict`). The optional output layer
is ``weight_out`` (output_size, D*H) and ``bias_out``: ``o = c + V h_top``, followed by a
softmax for ``output: softmax``.

Modules (flat, pure functions):

* :mod:`kernels.products` -- the products of activations by weights (dense in row blocks, recurrent,
  split by rows): :func:`matmul_xwt`, :class:`Recurrent`, :func:`split_rows`.
* :mod:`kernels.cells` -- the chunk tasks the executor runs: :func:`cell_chunk_forward`,
  :func:`cell_chunk_backward`, :func:`layer_weight_grads`, :func:`input_projection`,
  :func:`recurrent_rows` / :func:`split_rows` (the row split of the recurrent GEMM),
  :func:`output_forward`, :func:`output_backward`; every dense product of activations by a
  weight matrix goes through :func:`kernels.products.matmul_xwt` (row blocks sized for OpenBLAS's
  small-matrix kernel where the BLAS has it, see :func:`kernels.products.row_blocks`).
* :mod:`kernels.params` -- names, shapes, :func:`init_params`, :func:`load_state_dict`,
  :func:`layer_params`.
* :mod:`kernels.reference` -- whole-network :func:`forward` and :func:`backward`.

Precision: float32 and float64 are computed in their own dtype; float16 workloads are computed
in float32 and the results cast back to float16. Sparse workloads (``density < 1``) run the
recurrent products with scipy.sparse CSR matrices. No module here imports torch.

Examples
--------
>>> from wpsim.model.workload import Workload
>>> from kernels import forward, init_params, init_input
>>> w = Workload(cell="gru", layers=2, hidden=8, input=4, seq_len=6, batch=3)
>>> out, h_n = forward(w, init_params(w, seed=0), init_input(w, seed=0))
>>> out.shape, h_n.shape
((6, 3, 8), (2, 3, 8))
"""

from kernels.cells import (
    cell_chunk_backward,
    cell_chunk_forward,
    input_projection,
    layer_weight_grads,
    output_backward,
    output_forward,
)
from kernels.params import (
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
from kernels.reference import backward, chunk_bounds, forward

__all__ = [
    "backward",
    "cell_chunk_backward",
    "cell_chunk_forward",
    "chunk_bounds",
    "compute_dtype",
    "forward",
    "init_input",
    "init_params",
    "input_projection",
    "layer_params",
    "layer_weight_grads",
    "load_state_dict",
    "output_backward",
    "output_forward",
    "param_names",
    "param_shapes",
    "prune_largest",
    "recurrent_rows",
    "split_rows",
]
