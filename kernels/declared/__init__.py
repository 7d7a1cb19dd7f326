"""Numpy kernels of any declared cell (:mod:`wpsim.cells`), interpreted from the declaration.

* :mod:`kernels.declared.plan` -- what is worked out once from a declaration and the sizes:
  the executed ops, buffers, shared gradients (:class:`ChunkPlan`);
* :mod:`kernels.declared.steps` -- the runs of one op forward and of one backward contribution;
* :mod:`kernels.declared.program` -- a chunk's buffers and runs bound once
  (:class:`ForwardProgram`, :class:`BackwardProgram`), run again without set-up;
* :mod:`kernels.declared.chunk` -- :class:`CellKernel`: one layer-direction over a chunk of k
  steps, forward and BPTT, the off-recurrence stages batched over the k steps;
* :mod:`kernels.declared.network` -- :class:`Network`: stacked, bidirectional, chunked.

These depend on wpsim's public :mod:`wpsim.cells` only (and on :mod:`kernels.cells` for its
sigmoid, :mod:`kernels.products` for the products). The executor's tasks run them
(:mod:`kernels.tasks`).

Examples
--------
>>> import numpy as np
>>> from wpsim.cells import get_cell
>>> from kernels.declared import Network
>>> net = Network(get_cell("sru"), hidden=4, input_size=3, layers=2)
>>> out, states = net.forward(net.init_params(), np.ones((5, 1, 3)), chunk=2)
>>> out.shape, states["c"].shape
((5, 1, 4), (2, 1, 4))
"""

from kernels.declared.chunk import (
    CellKernel,
    ChunkBackward,
    ChunkForward,
    Prepared,
    Saved,
    init_params,
)
from kernels.declared.network import Network
from kernels.declared.plan import ChunkPlan, fold_biases
from kernels.declared.program import BackwardProgram, ForwardProgram

__all__ = [
    "BackwardProgram",
    "CellKernel",
    "ChunkBackward",
    "ChunkForward",
    "ChunkPlan",
    "ForwardProgram",
    "Network",
    "Prepared",
    "Saved",
    "fold_biases",
    "init_params",
]
