"""Workload descriptions: one RNN run (cell, shape, phase, precision, sparsity, output layer).

A workload YAML uses exactly these fields (the public contract)::

    cell: lstm          # any registered cell (wpsim.cells), see below
    layers: 4
    hidden: 512
    input: 512          # input size of layer 0; 0 = skip input (see below)
    seq_len: 100
    batch: 1
    bidirectional: false
    phase: inference    # inference | training
    dtype: float32      # float32 | float64 | float16 | bfloat16
    density: 1.0        # fraction of non-zero recurrent weights (sparse when < 1)
    output: none        # none | linear | softmax
    output_size: 0

plus an optional free-text ``name`` and ``streams`` (default 1). Unknown fields are errors.

``streams: N`` runs N independent sequences at once that share the weights (Hwang & Sung's
parallel training streams, ICASSP 2015): the task graph holds N copies of every layer's chain,
which read the same weight blocks (a core that ran one stream's task has the weights hot for the
next stream's), and a training graph accumulates the weight gradients of all streams in one
task a layer. Unlike ``batch`` (more rows in every product of one sequence), streams add
independent tasks the schedule can overlap; unlike multiprogramming's instances, they share the
weights. ``simulate`` and ``predict`` model CPU and accelerator machines with streams; the GPU
models and the numpy kernels run one stream.

``cell`` names a cell declaration (:mod:`wpsim.cells`): a registered name (``rnn``, ``lstm``,
``gru``, ``sru``, ``qrnn``, ``mgu``, ``indrnn``, ``minimalrnn``, ...), a name with options
(``lstm(proj_size=64)``, ``rnn(nonlinearity='relu')``), a mapping of the name and options
(``{name: qrnn, window: 2}``), or the path of a cell YAML file (relative to the workload file's
folder when read by :func:`load_workload`). Every per-cell quantity below comes from the
declaration through :mod:`wpsim.cells.analysis`; nothing is tabulated per cell.

``input: 0`` is cuDNN's skip-input mode (``CUDNN_SKIP_INPUT``): layer 0 has no input products
(the products computed from ``x`` alone, ``weight_ih``); its input ``x`` (of width ``hidden``)
is added to each gate's pre-activation (element-wise, counted in nothing but the bytes read).
Benchmarks of the recurrent part alone (DeepBench's RNN kernels) use it. The numpy kernels do not
execute it (nor ``bfloat16``, which numpy lacks); ``simulate`` and ``predict`` model both.

Sizes (D = directions; s = bytes per element; G = the cell's gate count, rnn 1, lstm 4, gru 3):

* input size of layer l: ``I_0 = input``, ``I_l = D * output_width`` for l > 0 (a bidirectional
  layer's output is the concatenation of both directions; ``output_width`` is ``hidden``, or
  ``proj_size`` for a projected LSTM);
* the parameters are the declaration's, in PyTorch's layout where PyTorch has the cell (for the
  LSTM ``weight_ih`` is ``G*H x I_l``, ``weight_hh`` is ``G*H x H``, two biases of ``G*H``);
  those read on the recurrence form the block ``hh``, the others ``ih``
  (:func:`wpsim.cells.weight_blocks`); the recurrent matrices are stored in CSR when sparse;
* the output layer (if any) is ``V: output_size x D*output_width`` with bias ``c``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from wpsim.cells import (
    Cell,
    StepFlops,
    cell_names,
    gate_count,
    gathered_state_width,
    op_phases,
    output_width,
    param_shapes,
    recurrent_matrices,
    registered_name,
    resolve_cell,
    step_flops,
    value_widths,
    weight_blocks,
)
from wpsim.cells import (
    nonzeros as stored_entries,
)
from wpsim.cells import (
    state_bytes as cell_state_bytes,
)
from wpsim.config import NotBool, read_yaml, validate_mapping
from wpsim.errors import ConfigError
from wpsim.model.ops import layer_ops
from wpsim.resources import data_dir

DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
INDEX_BYTES = 4  # CSR column index / row pointer width for sparse recurrent weights


@functools.lru_cache(maxsize=256)
def declaration(cell: str) -> Cell:
    """The cell declaration a workload's ``cell`` string names (a name, a label with options or
    a YAML path), resolved once per string.

    Raises
    ------
    ConfigError
        For a cell that is not registered (listing the registered ones) or a bad YAML file.

    Examples
    --------
    >>> declaration("lstm(proj_size=4)").label
    'lstm(proj_size=4)'
    """
    return resolve_cell(cell)


def _canonical_cell(value: Any) -> str:
    """The ``cell`` field as one string (a mapping becomes its label), checked to resolve."""
    try:
        if isinstance(value, Mapping):
            return resolve_cell(value).label
        if not isinstance(value, str):
            raise ConfigError("")
        cell = declaration(value)
    except ConfigError as error:
        # one line: what was wrong (when the registry said) and every cell there is
        detail = str(error).removeprefix("cell: ")
        known = ", ".join(cell_names())
        if detail and not detail.startswith("got "):
            raise ValueError(f"{detail} (registered cells: {known})") from None
        raise ValueError(
            f"a registered cell ({known}), name(option=value) or a cell YAML file"
        ) from None
    shapes = [param_shapes(cell, 8, width) for width in (3, 5)]
    for name in recurrent_matrices(cell):
        if shapes[0][name] != shapes[1][name]:
            raise ValueError(
                f"a cell whose recurrent matrices do not depend on the input width "
                f"({cell.label}: '{name}' does)"
            )
    # one spelling a cell: "lstm(proj_size=0)" is "lstm"; a name or a file stays as written
    return cell.label if "(" in value else value


@functools.lru_cache(maxsize=4096)
def _step_flops(cell: str, hidden: int, input_size: int, batch: int, density: float) -> StepFlops:
    """Flops of one step of one layer-direction; ``input_size`` 0 is a skip-input layer: the ops
    of the ``input_proj`` kind (the products computed from ``x`` alone,
    :mod:`wpsim.model.ops`) are gone, the others are those of an input ``H`` wide."""
    decl = declaration(cell)
    if input_size > 0:
        return step_flops(decl, hidden, input_size, batch, density)
    full = step_flops(decl, hidden, hidden, batch, density)
    ops = layer_ops(decl, hidden, 0, batch, density)
    kept = [ops.flops[kind.name] for kind in ops.kinds]
    return dataclasses.replace(
        full,
        matmul_batched=sum(f[0] for f in kept),
        elementwise=sum(f[2] for f in kept),
        matmul_input=0.0,  # no input to project
    )


@functools.lru_cache(maxsize=256)
def _calibration_key(cell: str) -> str | None:
    return registered_name(declaration(cell))


@functools.lru_cache(maxsize=1024)
def _output_width(cell: str, hidden: int) -> int:
    return output_width(declaration(cell), hidden)


@functools.lru_cache(maxsize=1024)
def _param_shapes(cell: str, hidden: int, input_size: int) -> dict[str, tuple[int, ...]]:
    return param_shapes(declaration(cell), hidden, input_size)


@functools.lru_cache(maxsize=1024)
def _block_bytes(
    cell: str, hidden: int, input_size: int, dtype_bytes: int, density: float
) -> tuple[tuple[str, int], ...]:
    blocks = {"ih": 0, "hh": 0}
    for block in weight_blocks(declaration(cell), hidden, input_size, dtype_bytes, density):
        blocks[block.name] = block.bytes
    return tuple(blocks.items())


@functools.lru_cache(maxsize=1024)
def _handoff_width(cell: str, hidden: int, input_size: int) -> int:
    """Width of the values computed before the recurrence that the other ops read."""
    decl = declaration(cell)
    widths = value_widths(decl, hidden, input_size)
    phases = op_phases(decl)
    read = {a.name for op in decl.ops if phases[op.name] != "before" for a in op.args}
    return sum(widths[name] for name, phase in phases.items() if phase == "before" and name in read)


@functools.lru_cache(maxsize=1024)
def _gathered_width(cell: str, hidden: int) -> int:
    return gathered_state_width(declaration(cell), hidden)


class Workload(BaseModel):
    """One RNN run. See the module docstring for the field contract.

    Examples
    --------
    >>> w = Workload(cell="lstm", layers=2, hidden=8, input=4, seq_len=3)
    >>> w.gates, w.directions, w.layer_input_size(1)
    (4, 1, 8)
    >>> Workload(cell={"name": "qrnn", "window": 2}, hidden=8, input=4, seq_len=3).cell
    'qrnn(window=2)'
    """

    # numbers are numbers: no booleans as 1/0, no inf/nan (see wpsim.config)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = ""
    cell: str = "lstm"
    layers: Annotated[int, NotBool] = Field(1, ge=1, le=1024)
    hidden: Annotated[int, NotBool] = Field(..., ge=1, le=1_000_000)
    input: Annotated[int, NotBool] = Field(
        ..., ge=0, le=1_000_000
    )  # 0: skip input (module docstring)
    seq_len: Annotated[int, NotBool] = Field(..., ge=1, le=100_000_000)
    batch: Annotated[int, NotBool] = Field(1, ge=1, le=1_000_000)
    bidirectional: bool = Field(False, strict=True)
    phase: Literal["inference", "training"] = "inference"
    dtype: Literal["float32", "float64", "float16", "bfloat16"] = "float32"
    density: Annotated[float, NotBool] = Field(1.0, gt=0.0, le=1.0)
    output: Literal["none", "linear", "softmax"] = "none"
    output_size: Annotated[int, NotBool] = Field(0, ge=0, le=10_000_000, validate_default=True)
    streams: Annotated[int, NotBool] = Field(
        1, ge=1, le=1024
    )  # training streams (module docstring)

    @field_validator("cell", mode="before")
    @classmethod
    def _cell_is_declared(cls, value: Any) -> str:
        return _canonical_cell(value)

    @field_validator("output_size")
    @classmethod
    def _output_size_matches_output(cls, value: int, info: ValidationInfo) -> int:
        output = info.data.get("output", "none")
        if output != "none" and value < 1:
            raise ValueError(f"an integer >= 1 because output is '{output}'")
        if output == "none" and value != 0:
            raise ValueError("0 because output is 'none'")
        return value

    # ---- the cell ------------------------------------------------------------------------
    @property
    def cell_declaration(self) -> Cell:
        """The declaration of :attr:`cell` (:mod:`wpsim.cells`)."""
        return declaration(self.cell)

    @property
    def cell_name(self) -> str:
        """The cell's name without options (``lstm`` for ``lstm(proj_size=64)``; a YAML cell's
        own ``name``)."""
        return self.cell_declaration.name

    @property
    def calibration_key(self) -> str | None:
        """The key of the cell's entries in per-cell calibrations (machine and runtime files):
        its registered name, whose tables serve every option of it (``rnn``'s, measured with
        tanh, serve ``rnn(nonlinearity='relu')``; ``lstm``'s a projected LSTM, whose extra
        product the GEMM terms charge); None for a cell the registry does not build (declared
        in YAML, even under a registered name), which no calibration measured
        (:func:`wpsim.cells.registered_name`).

        Examples
        --------
        >>> Workload(cell="lstm(proj_size=4)", hidden=8, input=8, seq_len=2).calibration_key
        'lstm'
        """
        return _calibration_key(self.cell)

    @property
    def gates(self) -> int:
        """Number of gate blocks G the cell's parameters declare (rnn 1, lstm 4, gru 3)."""
        return gate_count(self.cell_declaration)

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def dtype_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def sparse(self) -> bool:
        return self.density < 1.0

    @property
    def skip_input(self) -> bool:
        """Whether layer 0 skips its input projection (``input: 0``, cuDNN's skip-input mode)."""
        return self.input == 0

    @property
    def output_width(self) -> int:
        """Features of one direction's output per batch row (``hidden``; ``proj_size`` for a
        projected LSTM)."""
        return _output_width(self.cell, self.hidden)

    def layer_input_size(self, layer: int) -> int:
        """Input width I_l of ``layer``: ``input`` for layer 0, ``D * output_width`` above.

        0 for layer 0 of a skip-input workload: no ``weight_ih``, no input projection.
        """
        return self.input if layer == 0 else self.directions * self.output_width

    def step_flops(self, layer: int) -> StepFlops:
        """Flops of one step of one direction of ``layer`` for the whole batch, by kind: products
        off the recurrence (batched over the k steps of a chunk), products on it, element-wise
        ops (:func:`wpsim.cells.step_flops`).

        Examples
        --------
        >>> w = Workload(cell="gru", hidden=4, input=3, seq_len=2, batch=2)
        >>> f = w.step_flops(0)
        >>> f.matmul_batched, f.matmul_recurrent, f.elementwise  # 2*3H*I*B, 2*3H*H*B, 17*H*B
        (144.0, 192.0, 136.0)
        """
        return _step_flops(
            self.cell, self.hidden, self.layer_input_size(layer), self.batch, self.density
        )

    def handoff_width(self, layer: int) -> int:
        """Features per batch row the ops before the recurrence hand to the others (the
        pre-activations ``W_ih x + b_ih``: ``G*H`` for rnn, lstm and gru): what a hoisted input
        GEMM writes.

        Examples
        --------
        >>> Workload(cell="lstm", hidden=8, input=4, seq_len=2).handoff_width(0)
        32
        """
        return _handoff_width(self.cell, self.hidden, self.layer_input_size(layer) or self.hidden)

    @property
    def gathered_state_bytes(self) -> int:
        """Bytes of the states the recurrent products read (``h``: ``B*H*s`` for rnn, lstm and
        gru; ``B*P*s`` for a projected LSTM; 0 for a cell without a recurrent product): what
        helper cores splitting a step all-gather after it."""
        return self.batch * self.dtype_bytes * _gathered_width(self.cell, self.hidden)

    @property
    def bias_gradient_width(self) -> int:
        """Units of the widest vector parameter (``G*H`` for rnn, lstm and gru): a weight
        gradient reduces one such gradient over the ``B*T`` rows (the two biases added to one
        pre-activation share theirs)."""
        shapes = self._shapes(0)
        return max((shape[0] for shape in shapes.values() if len(shape) == 1), default=0)

    def weight_block_bytes(self, layer: int, dense: bool = False) -> dict[str, int]:
        """Bytes of one direction's weight blocks of ``layer``: ``"ih"`` (read once per batched
        chunk) and ``"hh"`` (read every step; recurrent matrices in CSR when sparse, unless
        ``dense``: as a dense product multiplies a pruned matrix), 0 for an empty block.

        Examples
        --------
        >>> Workload(cell="sru", hidden=4, input=3, seq_len=2).weight_block_bytes(0)
        {'ih': 224, 'hh': 32}
        """
        density = 1.0 if dense else self.density
        return dict(
            _block_bytes(
                self.cell, self.hidden, self.layer_input_size(layer), self.dtype_bytes, density
            )
        )

    def _shapes(self, layer: int) -> dict[str, tuple[int, ...]]:
        return _param_shapes(self.cell, self.hidden, self.layer_input_size(layer))

    def weight_ih_bytes(self, layer: int) -> int:
        """Bytes of the matrices off the recurrence (``weight_ih``) for one direction of ``layer``."""
        recurrent = set(recurrent_matrices(self.cell_declaration))
        return self.dtype_bytes * sum(
            math.prod(shape)
            for name, shape in self._shapes(layer).items()
            if len(shape) == 2 and name not in recurrent
        )

    def weight_hh_nonzeros(self) -> int:
        """Stored entries of the recurrent matrices (``weight_hh``): all of them, or
        ``round(density * entries)`` of each."""
        shapes = self._shapes(0)
        return sum(
            stored_entries(math.prod(shapes[name]), self.density)
            for name in recurrent_matrices(self.cell_declaration)
        )

    def weight_hh_bytes(self) -> int:
        """Bytes of the recurrent matrices for one direction: dense, or CSR (values + indices +
        row pointers). 0 for a cell without one (SRU, QRNN, IndRNN)."""
        shapes = self._shapes(0)
        total = 0
        for name in recurrent_matrices(self.cell_declaration):
            entries = math.prod(shapes[name])
            if not self.sparse:
                total += entries * self.dtype_bytes
            else:
                total += stored_entries(entries, self.density) * (self.dtype_bytes + INDEX_BYTES)
                total += (shapes[name][0] + 1) * INDEX_BYTES
        return total

    def bias_bytes(self) -> int:
        """Bytes of the vectors (biases; IndRNN's and SRU's recurrent weight vectors) for one
        direction."""
        return self.dtype_bytes * sum(
            shape[0] for shape in self._shapes(0).values() if len(shape) == 1
        )

    def layer_weight_bytes(self, layer: int) -> int:
        """All parameters one direction of ``layer`` reads each step."""
        return sum(self.weight_block_bytes(layer).values())

    def output_weight_bytes(self) -> int:
        """Bytes of the output layer ``V`` and ``c`` (0 when ``output`` is none)."""
        if self.output == "none":
            return 0
        return (
            self.output_size * self.directions * self.output_width + self.output_size
        ) * self.dtype_bytes

    def n_chunks(self, chunk: int) -> int:
        """Number of time-chunks of ``chunk`` steps: ``ceil(seq_len / chunk)``."""
        return math.ceil(self.seq_len / chunk)

    def state_bytes(self, layer: int = 0) -> int:
        """Recurrent state one step hands to the next in ``layer`` (the cell's states: h, and c
        for an LSTM; a window-2 QRNN also carries the previous input, so its layers differ)."""
        width = self.layer_input_size(layer) or self.hidden
        return cell_state_bytes(
            self.cell_declaration, self.hidden, width, self.batch, self.dtype_bytes
        )

    def parameter_count(self) -> int:
        """Number of dense-equivalent parameters (as PyTorch counts them)."""
        per = 0
        for layer in range(self.layers):
            per += self.directions * sum(math.prod(s) for s in self._shapes(layer).values())
        if self.output != "none":
            per += self.output_size * (self.directions * self.output_width + 1)
        return per


def load_workload(path: str | Path) -> Workload:
    """Read and validate a workload YAML file.

    Raises
    ------
    ConfigError
        One line naming the file, the field, the bad value and what was expected.
    """
    data = read_yaml(path)
    # a cell YAML named in a workload file is found beside it
    if isinstance(data, dict) and isinstance(data.get("cell"), str):
        cell = data["cell"]
        if cell.endswith((".yaml", ".yml")) and not Path(cell).is_absolute():
            data = {**data, "cell": str(Path(path).parent / cell)}
    return validate_mapping(Workload, data, str(path))


def workload_from_dict(data: dict, source: str = "<workload>") -> Workload:
    """Validate a mapping (e.g. from a sweep point) as a :class:`Workload`."""
    return validate_mapping(Workload, data, source)


#: The built-in default used by ``wpsim demo`` and whenever ``--workload`` is omitted.
DEFAULT_WORKLOAD = Workload(
    name="demo-lstm",
    cell="lstm",
    layers=4,
    hidden=512,
    input=512,
    seq_len=100,
    batch=1,
)


#: The shipped workloads (``workloads/`` of the repository, inside the wheel when installed).
WORKLOAD_DIR = data_dir("workloads")


def resolve_workload(value: str | None) -> Workload:
    """A workload by YAML path, by name of a file in ``workloads/`` (``demo``), or the default
    (``None``): what ``--workload`` accepts."""
    if value is None:
        return DEFAULT_WORKLOAD
    path = Path(value)
    if not path.exists() and path.suffix not in {".yaml", ".yml"}:
        candidate = WORKLOAD_DIR / f"{value}.yaml"
        if candidate.exists():
            path = candidate
    return load_workload(path)
