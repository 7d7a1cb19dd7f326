"""Stacked, uni- or bidirectional networks of a declared cell, run chunk by chunk.

:class:`Network` composes :class:`kernels.declared.CellKernel` chunk tasks the way
``torch.nn.RNN/LSTM/GRU`` composes layers: layer ``l > 0`` reads the concatenated outputs of
both directions of layer ``l - 1`` (``[forward, reverse]``), parameters are named
``{name}_l{l}`` and ``{name}_l{l}_reverse``, and each state is one array (L*D, B, width) indexed
``l*D + d`` (a list of L*D arrays (B, width) for a state whose width differs between layers, such
as QRNN's carried input). A sequence is cut into chunks of ``chunk`` steps aligned at t = 0; the reverse
direction visits them from the last to the first, handing its states backwards in time.

Examples
--------
>>> import numpy as np
>>> from wpsim.cells import get_cell
>>> net = Network(get_cell("lstm", proj_size=2), hidden=4, input_size=3, layers=2,
...               bidirectional=True)
>>> params = net.init_params(seed=0)
>>> x = np.random.default_rng(0).standard_normal((6, 2, 3))
>>> out, states = net.forward(params, x, chunk=4)
>>> out.shape, {s: v.shape for s, v in states.items()}
((6, 2, 4), {'h': (4, 2, 2), 'c': (4, 2, 4)})
>>> grads = net.backward(params, x, np.ones_like(out), chunk=4)
>>> grads["weight_hr_l1_reverse"].shape, grads["x"].shape, grads["c"].shape
((2, 4), (6, 2, 3), (4, 2, 4))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from kernels.declared.chunk import CellKernel, init_params
from kernels.params import chunk_bounds, suffix
from wpsim.cells import Cell, output_width

__all__ = ["Network"]


class Network:
    """A stack of ``layers`` layers of ``cell`` (``hidden`` units), bidirectional or not, whose
    first layer reads ``input_size`` features, computed in ``dtype``."""

    def __init__(
        self,
        cell: Cell,
        hidden: int,
        input_size: int,
        layers: int = 1,
        bidirectional: bool = False,
        dtype: Any = "float64",
    ) -> None:
        self.cell = cell
        self.layers = layers
        self.directions = 2 if bidirectional else 1
        self.width = output_width(cell, hidden)
        above = self.directions * self.width
        self.kernels = [
            CellKernel(cell, hidden, input_size if layer == 0 else above, dtype)
            for layer in range(layers)
        ]
        self.dtype = self.kernels[0].dtype
        self.states = list(self.kernels[0].next_of)

    def init_params(self, seed: int = 0) -> dict[str, np.ndarray]:
        """Parameters of every layer-direction, in PyTorch's state_dict order (layer by layer,
        forward before reverse), each drawn by :func:`kernels.declared.init_params` with seed
        ``seed + l*D + d``."""
        params = {}
        for layer, kernel in enumerate(self.kernels):
            for d in range(self.directions):
                drawn = init_params(kernel, seed + layer * self.directions + d)
                params.update({name + suffix(layer, d == 1): v for name, v in drawn.items()})
        return params

    def _layer_params(self, params: Mapping[str, Any], layer: int, d: int) -> dict[str, Any]:
        tail = suffix(layer, d == 1)
        return {name: params[name + tail] for name in self.kernels[layer].param_shapes}

    def _initial(
        self, states: Mapping[str, Any] | None, index: int
    ) -> dict[str, np.ndarray | None]:
        states = states or {}
        return {s: None if states.get(s) is None else states[s][index] for s in self.states}

    def _run(self, params, x, states, chunk, save):
        x = np.ascontiguousarray(x, dtype=self.dtype)
        steps, batch, _ = x.shape
        bounds = chunk_bounds(steps, chunk)
        finals = {s: self._state_arrays(s, batch) for s in self.states}
        record = []
        inp = x
        for layer, kernel in enumerate(self.kernels):
            out = np.empty((steps, batch, self.directions * self.width), self.dtype)
            runs = []
            for d in range(self.directions):
                lp = self._layer_params(params, layer, d)
                carried = self._initial(states, layer * self.directions + d)
                chunks = []
                for t0, t1 in reversed(bounds) if d else bounds:
                    run = kernel.forward(lp, inp[t0:t1], carried, reverse=d == 1, save=save)
                    out[t0:t1, :, d * self.width : (d + 1) * self.width] = run.output
                    carried = run.states
                    chunks.append((t0, t1, run.saved))
                for s in self.states:
                    finals[s][layer * self.directions + d] = carried[s]
                runs.append((lp, chunks))
            record.append(runs)
            inp = out
        return inp, finals, record

    def forward(
        self,
        params: Mapping[str, Any],
        x: np.ndarray,
        states: Mapping[str, np.ndarray] | None = None,
        *,
        chunk: int | None = None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The outputs of the top layer (T, B, D*width) and the final states by name, each
        (L*D, B, width); ``states`` the initial ones (missing: zeros)."""
        out, finals, _ = self._run(params, x, states, chunk, save=False)
        return out, finals

    def backward(
        self,
        params: Mapping[str, Any],
        x: np.ndarray,
        d_output: np.ndarray,
        states: Mapping[str, np.ndarray] | None = None,
        d_states: Mapping[str, np.ndarray] | None = None,
        *,
        chunk: int | None = None,
    ) -> dict[str, np.ndarray]:
        """Gradients of the loss whose gradients w.r.t. the outputs and the final states are
        ``d_output`` and ``d_states``: every parameter (by its full name), ``"x"``, and each
        initial state by name. The forward is run again with activations saved."""
        _, _, record = self._run(params, x, states, chunk, save=True)
        d_states = d_states or {}
        grads: dict[str, np.ndarray] = {}
        # an array of every layer-direction, or a list of them (see _state_arrays)
        initial: dict[str, Any] = {s: self._state_arrays(s, x.shape[1]) for s in self.states}
        dtop = np.asarray(d_output, dtype=self.dtype)
        for layer in reversed(range(self.layers)):
            kernel = self.kernels[layer]
            runs = record[layer]
            din = np.zeros((x.shape[0], x.shape[1], kernel.input_size), self.dtype)
            for d, (lp, chunks) in enumerate(runs):
                index = layer * self.directions + d
                carried: dict[str, Any] = {
                    s: None if d_states.get(s) is None else d_states[s][index] for s in self.states
                }
                total = {name: np.zeros(v.shape, self.dtype) for name, v in lp.items()}
                for t0, t1, saved in reversed(chunks):
                    dy = dtop[t0:t1, :, d * self.width : (d + 1) * self.width]
                    back = kernel.backward(lp, saved, dy, carried)
                    din[t0:t1] += back.dx
                    carried = back.dstates
                    for name, g in back.dparams.items():
                        total[name] += g
                for s in self.states:
                    initial[s][index] = carried[s]
                grads.update({name + suffix(layer, d == 1): g for name, g in total.items()})
            dtop = din
        ordered = {name: grads[name] for name in self._names()}
        return {**ordered, "x": dtop, **initial}

    def _state_arrays(self, state: str, batch: int) -> np.ndarray | list[np.ndarray]:
        """Room for ``state`` of every layer-direction: one (L*D, B, width) array, or a list."""
        widths = [k.widths[state] for k in self.kernels for _ in range(self.directions)]
        if len(set(widths)) == 1:
            return np.empty((len(widths), batch, widths[0]), self.dtype)
        return [np.empty((batch, w), self.dtype) for w in widths]

    def _names(self) -> list[str]:
        return [
            name + suffix(layer, d == 1)
            for layer, kernel in enumerate(self.kernels)
            for d in range(self.directions)
            for name in kernel.param_shapes
        ]
