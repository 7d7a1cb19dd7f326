"""Workload descriptions: one RNN run (cell, shape, phase, precision, sparsity, output layer).

A workload YAML uses exactly these fields (the public contract)::

    cell: lstm          # rnn (Elman, tanh) | lstm | gru
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

plus an optional free-text ``name``. Unknown fields are errors.

``input: 0`` is cuDNN's skip-input mode (``CUDNN_SKIP_INPUT``): layer 0 has no ``weight_ih`` and
no input projection; its input ``x`` (of width ``hidden``) is added to each gate's pre-activation
(element-wise, counted in nothing but the bytes read). Benchmarks of the recurrent part alone
(DeepBench's RNN kernels) use it. The numpy kernels do not execute it (nor ``bfloat16``, which
numpy lacks); ``simulate`` and ``predict`` model both.

Per-cell sizes (G = gates: rnn 1, lstm 4, gru 3; D = directions; s = bytes per element):

* input size of layer l: ``I_0 = input``, ``I_l = D * hidden`` for l > 0 (a bidirectional
  layer's output is the concatenation of both directions);
* ``weight_ih`` is ``G*H x I_l``, ``weight_hh`` is ``G*H x H``, two biases of ``G*H``
  (PyTorch's layout);
* the output layer (if any) is ``V: output_size x D*H`` with bias ``c``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from wpsim.config import NotBool, load_model, validate_mapping
from wpsim.resources import data_dir

GATES = {"rnn": 1, "lstm": 4, "gru": 3}
DTYPE_BYTES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2}
INDEX_BYTES = 4  # CSR column index / row pointer width for sparse recurrent weights

#: Element-wise flops per hidden unit per batch row of one step (documented in docs/reference):
#: rnn: sum of the two projections, two bias adds, tanh = 4.
#: lstm: per gate (add, two biases, activation) 4 x 4, then c = f*c + i*g (3), h = o*tanh(c) (2) = 21.
#: gru: r and z gates 4 each, n gate (bias b_in, bias b_hn, r*(.), add, tanh) 5, h = (1-z)*n + z*h 4 = 17.
ELEMENTWISE_FLOPS = {"rnn": 4, "lstm": 21, "gru": 17}


class Workload(BaseModel):
    """One RNN run. See the module docstring for the field contract.

    Examples
    --------
    >>> w = Workload(cell="lstm", layers=2, hidden=8, input=4, seq_len=3)
    >>> w.gates, w.directions, w.layer_input_size(1)
    (4, 1, 8)
    """

    # numbers are numbers: no booleans as 1/0, no inf/nan (see wpsim.config)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = ""
    cell: Literal["rnn", "lstm", "gru"] = "lstm"
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

    @field_validator("output_size")
    @classmethod
    def _output_size_matches_output(cls, value: int, info: ValidationInfo) -> int:
        output = info.data.get("output", "none")
        if output != "none" and value < 1:
            raise ValueError(f"an integer >= 1 because output is '{output}'")
        if output == "none" and value != 0:
            raise ValueError("0 because output is 'none'")
        return value

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def gates(self) -> int:
        """Number of gate blocks G stacked in the weight matrices."""
        return GATES[self.cell]

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

    def layer_input_size(self, layer: int) -> int:
        """Input width I_l of ``layer``: ``input`` for layer 0, ``D * hidden`` above.

        0 for layer 0 of a skip-input workload: no ``weight_ih``, no input projection.
        """
        return self.input if layer == 0 else self.directions * self.hidden

    def weight_ih_bytes(self, layer: int) -> int:
        """Bytes of ``weight_ih`` (dense) for one direction of ``layer``."""
        return self.gates * self.hidden * self.layer_input_size(layer) * self.dtype_bytes

    def weight_hh_nonzeros(self) -> int:
        """Stored entries of ``weight_hh``: all of them, or ``round(density * G*H*H)``."""
        full = self.gates * self.hidden * self.hidden
        return full if not self.sparse else max(1, round(self.density * full))

    def weight_hh_bytes(self) -> int:
        """Bytes of ``weight_hh`` for one direction: dense, or CSR (values + indices + row pointers)."""
        nnz = self.weight_hh_nonzeros()
        if not self.sparse:
            return nnz * self.dtype_bytes
        rows = self.gates * self.hidden
        return nnz * (self.dtype_bytes + INDEX_BYTES) + (rows + 1) * INDEX_BYTES

    def bias_bytes(self) -> int:
        """Bytes of ``bias_ih`` + ``bias_hh`` for one direction."""
        return 2 * self.gates * self.hidden * self.dtype_bytes

    def layer_weight_bytes(self, layer: int) -> int:
        """All parameters one direction of ``layer`` reads each step."""
        return self.weight_ih_bytes(layer) + self.weight_hh_bytes() + self.bias_bytes()

    def output_weight_bytes(self) -> int:
        """Bytes of the output layer ``V`` and ``c`` (0 when ``output`` is none)."""
        if self.output == "none":
            return 0
        return (
            self.output_size * self.directions * self.hidden + self.output_size
        ) * self.dtype_bytes

    def n_chunks(self, chunk: int) -> int:
        """Number of time-chunks of ``chunk`` steps: ``ceil(seq_len / chunk)``."""
        return math.ceil(self.seq_len / chunk)

    def state_bytes(self) -> int:
        """Recurrent state handed from one step to the next: h (and c for LSTM)."""
        per_vector = self.batch * self.hidden * self.dtype_bytes
        return 2 * per_vector if self.cell == "lstm" else per_vector

    def parameter_count(self) -> int:
        """Number of dense-equivalent parameters (as PyTorch counts them)."""
        per = 0
        for layer in range(self.layers):
            i = self.layer_input_size(layer)
            per += self.directions * self.gates * self.hidden * (i + self.hidden + 2)
        if self.output != "none":
            per += self.output_size * (self.directions * self.hidden + 1)
        return per


def load_workload(path: str | Path) -> Workload:
    """Read and validate a workload YAML file.

    Raises
    ------
    ConfigError
        One line naming the file, the field, the bad value and what was expected.
    """
    return load_model(Workload, path)


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
