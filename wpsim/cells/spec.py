"""Cell declarations: a recurrent cell as data (parameters, ops, carried states).

A cell is declared once, from a small vocabulary, and everything else is derived from the
declaration (:mod:`wpsim.cells.analysis` for graphs, flops and bytes; :mod:`kernels.declared`
for the numpy forward and BPTT). The same schema is written in Python by the built-in cells and
in YAML by users (:func:`load_cell`)::

    name: mgu                       # a name: letters, digits, '_' and '-'
    reference: "Zhou et al. 2016"   # optional: where the equations come from
    sizes: {}                       # optional named constants usable in shapes, e.g. {P: 64}
    states:                         # values carried from one step to the next
      h: {width: H, next: h_new}    #   width, and the value that becomes the state
    params:                         # in state_dict order; PyTorch's layout where it has the cell
      weight_ih: {shape: [2*H, I], gates: [f, n]}   # gates: equal row blocks, in order
      weight_hh: {shape: [2*H, H], gates: [f, n]}
      bias: {shape: [2*H], gates: [f, n]}
    ops:                            # one op a line, 'name = op(operand, ...)'
      - gx = matmul(weight_ih, x)   # x: the layer input (width I), a row vector per batch row
      - ...
    output: h_new                   # the layer's output at each step

Sizes are integer expressions of ``H`` (hidden size), ``I`` (the layer's input width) and the
cell's ``sizes``, with ``+``, ``-``, ``*`` and ``//``.

Operands are ``x``, a state (its value at the previous step; the initial state at the first),
a parameter, or an earlier op; ``name.gate`` is one gate block of a value or parameter that has
gate blocks. A value inherits the gate blocks of the parameter it was multiplied by (``matmul``)
and keeps them through element-wise ops whose gated operands agree.

The ops (:data:`OP_KINDS`; ``a``, ``b`` values of equal width, or one of them a 1-D parameter
broadcast over the batch rows)::

    matmul(W, a)    a @ W^T          W a 2-D parameter (R, C) or a gate block of one; a of width C
    add(a, b)       a + b
    sub(a, b)       a - b
    mul(a, b)       a * b            element-wise
    one_minus(a)    1 - a
    sigmoid(a)      1 / (1 + exp(-a))
    tanh(a)
    relu(a)         max(a, 0)
    identity(a)     a                (e.g. to name a gate block as an output)
    concat(a, ...)  [a, b, ...]      along the features

A declaration is checked when it is built (:func:`cell_from_dict`): every name defined once, every
operand defined above its use, widths that agree for every ``H`` and ``I``, every op, parameter
and state used. Errors are one line naming the source, the field and what was expected.
"""

from __future__ import annotations

import ast
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wpsim.config import read_yaml, validate_mapping
from wpsim.errors import ConfigError

__all__ = [
    "ACTIVATIONS",
    "ELEMENTWISE",
    "OP_KINDS",
    "Cell",
    "Op",
    "Operand",
    "Param",
    "State",
    "cell_from_dict",
    "cell_to_dict",
    "evaluate_size",
    "load_cell",
    "size_env",
    "value_gates",
    "value_widths",
]

#: Every op of the vocabulary and its number of operands (None: two or more).
OP_KINDS: dict[str, int | None] = {
    "matmul": 2,
    "add": 2,
    "sub": 2,
    "mul": 2,
    "one_minus": 1,
    "sigmoid": 1,
    "tanh": 1,
    "relu": 1,
    "identity": 1,
    "concat": None,
}
#: The nonlinearities (an activation's derivative is a function of its output).
ACTIVATIONS = frozenset({"sigmoid", "tanh", "relu"})
#: Ops computed element by element on operands of one width.
ELEMENTWISE = frozenset({"add", "sub", "mul", "one_minus", "identity"} | ACTIVATIONS)
#: The layer input's name in every declaration.
INPUT = "x"

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CELL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_OP_LINE = re.compile(r"^\s*([A-Za-z_]\w*)\s*=\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$")
_OPERAND = re.compile(r"^([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?$")
#: Size names every declaration may use.
BASE_SIZES = ("H", "I")
#: Bindings of the sizes used to check widths: a linear or polynomial identity between size
#: expressions that holds at both holds in general (no built-in width has a coincidence there).
_CHECK_ENVS = ({"H": 1009, "I": 2003}, {"H": 3001, "I": 4001})


# ---- the declaration ------------------------------------------------------------------------
@dataclass(frozen=True)
class Param:
    """A parameter of one layer-direction: ``shape`` as size expressions, ``gates`` the names of
    the equal blocks its first axis is split into (PyTorch's gate order)."""

    name: str
    shape: tuple[str, ...]
    gates: tuple[str, ...] = ()


@dataclass(frozen=True)
class State:
    """A value carried from one step to the next: read by the ops as ``name`` (its value at the
    previous step, or the initial state), replaced after each step by the value ``next``."""

    name: str
    width: str
    next: str


@dataclass(frozen=True)
class Operand:
    """A reference to a value or parameter, or to one of its gate blocks (``gate``)."""

    name: str
    gate: str = ""

    def __str__(self) -> str:
        return f"{self.name}.{self.gate}" if self.gate else self.name


@dataclass(frozen=True)
class Op:
    """``name = kind(args...)``: one op of a cell, producing the value ``name``."""

    name: str
    kind: str
    args: tuple[Operand, ...]

    def __str__(self) -> str:
        return f"{self.name} = {self.kind}({', '.join(str(a) for a in self.args)})"


@dataclass(frozen=True)
class Cell:
    """A recurrent cell, declared once (see the module docstring). Build one with
    :func:`cell_from_dict` or :func:`load_cell`, which check it; it is immutable and hashable.

    ``options`` are the arguments the registry's factory was called with (``proj_size`` of an
    LSTM, ...), kept so that a cell prints and compares as what it is.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> cell = get_cell("gru")
    >>> cell.label, [p.name for p in cell.params], [s.name for s in cell.states]
    ('gru', ['weight_ih', 'weight_hh', 'bias_ih', 'bias_hh'], ['h'])
    >>> str(cell.ops[0])
    'gx = matmul(weight_ih, x)'
    """

    name: str
    states: tuple[State, ...]
    params: tuple[Param, ...]
    ops: tuple[Op, ...]
    output: str
    sizes: tuple[tuple[str, int], ...] = ()
    options: tuple[tuple[str, Any], ...] = ()
    reference: str = ""
    _index: dict[str, Any] = field(
        default_factory=dict, init=False, compare=False, repr=False, hash=False
    )
    _hash: int = field(default=0, init=False, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        index: dict[str, Any] = {INPUT: INPUT}
        items: tuple[State | Param | Op, ...] = (*self.states, *self.params, *self.ops)
        for item in items:
            index.setdefault(item.name, item)
        object.__setattr__(self, "_index", index)
        # hashed once: the size functions are cached on the cell, and a declaration's hash
        # walks every op and operand
        fields = (self.name, self.states, self.params, self.ops, self.output, self.sizes)
        object.__setattr__(self, "_hash", hash((*fields, self.options, self.reference)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def label(self) -> str:
        """The name with the options, e.g. ``lstm(proj_size=64)``."""
        if not self.options:
            return self.name
        return f"{self.name}({', '.join(f'{k}={v!r}' for k, v in self.options)})"

    def lookup(self, name: str) -> str | State | Param | Op | None:
        """What ``name`` refers to: ``"x"``, a :class:`State`, :class:`Param` or :class:`Op`."""
        return self._index.get(name)

    def op(self, name: str) -> Op:
        """The op producing ``name`` (KeyError if there is none)."""
        item = self._index.get(name)
        if not isinstance(item, Op):
            raise KeyError(name)
        return item


# ---- sizes ----------------------------------------------------------------------------------
_BINOPS = {
    ast.Add: int.__add__,
    ast.Sub: int.__sub__,
    ast.Mult: int.__mul__,
    ast.FloorDiv: int.__floordiv__,
}


def _size_ast(text: str | int, names: set[str]) -> str:
    """Check a size expression; return its normalised text (or raise ValueError)."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ValueError("an integer or an expression of the sizes")
    source = str(text).strip()
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError:
        raise ValueError("an expression like 4*H or I") from None

    def check(node: ast.AST) -> None:
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            check(node.left)
            check(node.right)
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            pass
        elif isinstance(node, ast.Name):
            if node.id not in names:
                raise ValueError(
                    f"an expression of {', '.join(sorted(names))} (unknown size {node.id!r})"
                )
        else:
            raise ValueError("integers and sizes joined by +, -, * and //")

    check(tree)
    return ast.unparse(tree)


def evaluate_size(expression: str, env: Mapping[str, int]) -> int:
    """The value of a checked size expression under ``env`` (see :func:`size_env`).

    Examples
    --------
    >>> evaluate_size("4*H + I // 2", {"H": 3, "I": 5})
    14
    """

    def value(node: ast.AST) -> int:
        if isinstance(node, ast.BinOp):
            return _BINOPS[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.Constant):
            assert isinstance(node.value, int)  # _size_ast admits integer constants only
            return node.value
        return env[node.id]  # type: ignore[attr-defined]

    return value(_parsed_size(expression))


@functools.lru_cache(maxsize=4096)
def _parsed_size(expression: str) -> ast.expr:
    """The parsed tree of a size expression: a cell has a few, evaluated for every layer."""
    return ast.parse(expression, mode="eval").body


def size_env(cell: Cell, hidden: int, input_size: int) -> dict[str, int]:
    """The bindings of every size name: ``H``, ``I`` and the cell's own ``sizes``.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> size_env(get_cell("lstm", proj_size=3), 8, 5)
    {'H': 8, 'I': 5, 'P': 3}
    """
    return {"H": hidden, "I": input_size, **dict(cell.sizes)}


# ---- widths and gate blocks of every value --------------------------------------------------
def _op_gates(op: Op, gates: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The gate blocks of ``op``'s value, given those of its operands (see :func:`value_gates`)."""
    if op.kind == "matmul":
        w = op.args[0]
        return () if w.gate else gates[w.name]
    if op.kind in ELEMENTWISE:
        found = {gates[a.name] for a in op.args if not a.gate} - {()}
        return found.pop() if len(found) == 1 else ()
    return ()


def value_gates(cell: Cell) -> dict[str, tuple[str, ...]]:
    """The gate blocks of every value and parameter (empty when it has none).

    A ``matmul`` by a parameter with gate blocks has that parameter's blocks; an element-wise op
    has the blocks of its gated operands when they agree (else none); a gate block has none.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> value_gates(get_cell("lstm"))["a"]
    ('i', 'f', 'g', 'o')
    """
    gates: dict[str, tuple[str, ...]] = {INPUT: ()}
    gates.update({s.name: () for s in cell.states})
    gates.update({p.name: p.gates for p in cell.params})
    for op in cell.ops:
        gates[op.name] = _op_gates(op, gates)
    return gates


def _widths(cell: Cell, env: Mapping[str, int]) -> dict[str, int]:
    """Width of every value (and the row count of every 2-D parameter's block) under ``env``;
    assumes a checked cell."""
    widths = {INPUT: env["I"]}
    for s in cell.states:
        widths[s.name] = evaluate_size(s.width, env)
    gates = value_gates(cell)
    for p in cell.params:
        widths[p.name] = evaluate_size(p.shape[0], env)

    def width(a: Operand) -> int:
        whole = widths[a.name]
        return whole // len(gates[a.name]) if a.gate else whole

    for op in cell.ops:
        if op.kind == "matmul":
            widths[op.name] = width(op.args[0])
        elif op.kind == "concat":
            widths[op.name] = sum(width(a) for a in op.args)
        else:
            widths[op.name] = width(op.args[0])
    return widths


def value_widths(cell: Cell, hidden: int, input_size: int) -> dict[str, int]:
    """Width (features per batch row) of ``x``, every state and every op's value, for a layer of
    ``hidden`` units whose input has ``input_size`` features.

    Raises
    ------
    ConfigError
        If a width is below 1 at these sizes.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> w = value_widths(get_cell("gru"), hidden=4, input_size=3)
    >>> w["x"], w["h"], w["gx"], w["r"], w["h_new"]
    (3, 4, 12, 4, 4)
    """
    return dict(_value_widths(cell, hidden, input_size))


@functools.lru_cache(maxsize=1024)
def _value_widths(cell: Cell, hidden: int, input_size: int) -> dict[str, int]:
    # kept per (cell, sizes): the models ask for every layer of every candidate schedule, and
    # the widths depend on these three only (a declaration is frozen); callers get a copy
    widths = _widths(cell, size_env(cell, hidden, input_size))
    small = [name for name, w in widths.items() if w < 1]
    if small:
        raise ConfigError(
            f"cell {cell.label}: value '{small[0]}' has width {widths[small[0]]} at H={hidden}, "
            f"I={input_size}; expected at least 1"
        )
    return {name: w for name, w in widths.items() if not isinstance(cell.lookup(name), Param)}


# ---- building and checking ------------------------------------------------------------------
class _ParamFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shape: list[str | int] = Field(..., min_length=1, max_length=2)
    gates: list[str] = []


class _StateFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: str | int
    next: str


class _CellFile(BaseModel):
    """The schema of a cell declaration (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., pattern=_CELL_NAME.pattern)
    reference: str = ""
    sizes: dict[str, int] = {}
    states: dict[str, _StateFile] = Field(..., min_length=1)
    params: dict[str, _ParamFile] = Field(..., min_length=1)
    ops: list[str] = Field(..., min_length=1)
    output: str


def _parse_op(line: str) -> Op:
    match = _OP_LINE.match(line) if isinstance(line, str) else None
    if not match:
        raise ValueError("'name = op(operand, ...)'")
    name, kind, body = match.groups()
    if kind not in OP_KINDS:
        raise ValueError(f"an op among {', '.join(OP_KINDS)} (unknown op {kind!r})")
    args = []
    for text in body.split(","):
        operand = _OPERAND.match(text.strip())
        if not operand:
            raise ValueError(f"operands that are names or name.gate (got {text.strip()!r})")
        args.append(Operand(operand.group(1), operand.group(2) or ""))
    arity = OP_KINDS[kind]
    if (arity is None and len(args) < 2) or (arity is not None and len(args) != arity):
        expected = "2 or more" if arity is None else str(arity)
        raise ValueError(f"{expected} operands for {kind} (got {len(args)})")
    return Op(name, kind, tuple(args))


def cell_from_dict(
    data: Mapping[str, Any], source: str = "<cell>", options: Mapping[str, Any] | None = None
) -> Cell:
    """Validate a declaration (the YAML schema as a mapping) and return the :class:`Cell`.

    Parameters
    ----------
    data : mapping
        ``name``, ``states``, ``params``, ``ops``, ``output`` and optionally ``reference`` and
        ``sizes`` (see the module docstring).
    source : str
        What to name in error messages (a file name).
    options : mapping, optional
        The factory options the cell was built with (kept in :attr:`Cell.options`).

    Raises
    ------
    ConfigError
        One line: the source, the field and what was expected.

    Examples
    --------
    >>> cell = cell_from_dict({
    ...     "name": "tiny", "states": {"h": {"width": "H", "next": "h_new"}},
    ...     "params": {"w": {"shape": ["H", "I"]}, "u": {"shape": ["H"]}},
    ...     "ops": ["a = matmul(w, x)", "b = mul(u, h)", "c = add(a, b)", "h_new = tanh(c)"],
    ...     "output": "h_new"})
    >>> [str(op) for op in cell.ops][-1]
    'h_new = tanh(c)'
    >>> try:
    ...     cell_from_dict({**cell_to_dict(cell), "ops": ["a = matmul(w, x)", "h_new = tanh(b)"]},
    ...                    "my.yaml")
    ... except ConfigError as e:
    ...     print(e)
    my.yaml: field 'ops[1]' ('h_new = tanh(b)'): operand 'b' is not defined above (ops may use x, the states, the parameters and earlier ops)
    """
    model = validate_mapping(_CellFile, dict(data) if isinstance(data, Mapping) else data, source)
    sizes: list[tuple[str, int]] = []
    for name, value in model.sizes.items():
        if not _NAME.match(name) or name in BASE_SIZES:
            raise ConfigError(f"{source}: field 'sizes.{name}': expected a name other than H and I")
        if value < 1:
            raise ConfigError(f"{source}: field 'sizes.{name}': got {value}, expected >= 1")
        sizes.append((name, value))
    size_names = set(BASE_SIZES) | {n for n, _ in sizes}

    def size(expr: Any, where: str) -> str:
        try:
            return _size_ast(expr, size_names)
        except ValueError as error:
            raise ConfigError(
                f"{source}: field '{where}': got {expr!r}, expected {error}"
            ) from None

    states = tuple(
        State(name, size(s.width, f"states.{name}.width"), s.next)
        for name, s in model.states.items()
    )
    params = tuple(
        Param(name, tuple(size(d, f"params.{name}.shape") for d in p.shape), tuple(p.gates))
        for name, p in model.params.items()
    )
    ops = []
    for position, line in enumerate(model.ops):
        try:
            ops.append(_parse_op(line))
        except ValueError as error:
            raise ConfigError(
                f"{source}: field 'ops[{position}]': got {line!r}, expected {error}"
            ) from None
    cell = Cell(
        name=model.name,
        states=states,
        params=params,
        ops=tuple(ops),
        output=model.output,
        sizes=tuple(sizes),
        options=tuple((options or {}).items()),
        reference=model.reference,
    )
    _check(cell, source)
    return cell


def _check(cell: Cell, source: str) -> None:
    """The semantic checks of :func:`cell_from_dict` (names, operands, widths, uses)."""
    seen: dict[str, str] = {INPUT: "the input"}
    for where, items in (("states", cell.states), ("params", cell.params)):
        for item in items:
            if not _NAME.match(item.name) or item.name in seen:
                raise ConfigError(
                    f"{source}: field '{where}.{item.name}': expected a name (letters, digits, "
                    f"'_') not used before (x is the input)"
                )
            seen[item.name] = where
    for p in cell.params:
        if p.gates:
            if len(set(p.gates)) != len(p.gates) or not all(_NAME.match(g) for g in p.gates):
                raise ConfigError(
                    f"{source}: field 'params.{p.name}.gates': expected distinct names"
                )
            for env in _CHECK_ENVS:
                rows = evaluate_size(p.shape[0], {**env, **dict(cell.sizes)})
                if rows % len(p.gates):
                    raise ConfigError(
                        f"{source}: field 'params.{p.name}.gates': {len(p.gates)} gate blocks do "
                        f"not divide the {p.shape[0]} rows evenly"
                    )
    gates_so_far: dict[str, tuple[str, ...]] = {INPUT: ()}
    gates_so_far.update({s.name: () for s in cell.states})
    gates_so_far.update({p.name: p.gates for p in cell.params})
    envs = [{**env, **dict(cell.sizes)} for env in _CHECK_ENVS]
    widths = [
        {
            INPUT: env["I"],
            **{s.name: evaluate_size(s.width, env) for s in cell.states},
            **{p.name: evaluate_size(p.shape[0], env) for p in cell.params},
        }
        for env in envs
    ]
    cols = [
        {p.name: evaluate_size(p.shape[1], env) for p in cell.params if len(p.shape) == 2}
        for env in envs
    ]
    used: set[str] = set()
    for position, op in enumerate(cell.ops):
        where = f"{source}: field 'ops[{position}]' ('{op}')"
        if not _NAME.match(op.name) or op.name in seen:
            raise ConfigError(
                f"{where}: the name '{op.name}' is already used ({seen.get(op.name)})"
            )
        for k, a in enumerate(op.args):
            if a.name not in seen:
                raise ConfigError(
                    f"{where}: operand '{a.name}' is not defined above (ops may use x, the "
                    f"states, the parameters and earlier ops)"
                )
            used.add(a.name)
            if a.gate and a.gate not in gates_so_far[a.name]:
                blocks = gates_so_far[a.name]
                have = f"gate blocks {', '.join(blocks)}" if blocks else "no gate blocks"
                raise ConfigError(f"{where}: '{a.name}' has {have}, not '{a.gate}'")
            operand = cell.lookup(a.name)
            if op.kind == "matmul" and k == 0:
                if not (isinstance(operand, Param) and len(operand.shape) == 2):
                    raise ConfigError(f"{where}: matmul's first operand must be a 2-D parameter")
            elif isinstance(operand, Param) and (
                op.kind not in ("add", "sub", "mul") or len(operand.shape) != 1
            ):
                raise ConfigError(
                    f"{where}: parameter '{a.name}' may only be matmul's first operand (2-D) or "
                    f"an operand of add, sub or mul (1-D)"
                )
        if op.kind in ("add", "sub", "mul") and all(
            isinstance(cell.lookup(a.name), Param) for a in op.args
        ):
            raise ConfigError(f"{where}: at least one operand must be a value, not a parameter")
        for env_widths, env_cols in zip(widths, cols, strict=True):

            def width(a: Operand, env_widths: dict[str, int] = env_widths) -> int:
                whole = env_widths[a.name]
                return whole // len(gates_so_far[a.name]) if a.gate else whole

            if op.kind == "matmul":
                w, a = op.args
                if env_cols[w.name] != width(a):
                    weight = cell.lookup(w.name)
                    assert isinstance(weight, Param)  # checked above: a 2-D parameter
                    raise ConfigError(
                        f"{where}: '{a}' has {_width_text(cell, a, gates_so_far)} features, "
                        f"'{w.name}' has {weight.shape[1]} columns"
                    )
                env_widths[op.name] = width(w)
            elif op.kind == "concat":
                env_widths[op.name] = sum(width(a) for a in op.args)
            else:
                sizes_ = {width(a) for a in op.args}
                if len(sizes_) != 1:
                    texts = [f"'{a}' ({_width_text(cell, a, gates_so_far)})" for a in op.args]
                    raise ConfigError(f"{where}: operands of different widths: {', '.join(texts)}")
                env_widths[op.name] = sizes_.pop()
        seen[op.name] = "an op"
        gates_so_far[op.name] = _op_gates(op, gates_so_far)
    ops = {op.name for op in cell.ops}
    nexts: dict[str, str] = {}
    for s in cell.states:
        if s.next in nexts:
            raise ConfigError(
                f"{source}: field 'states.{s.name}.next': '{s.next}' is already the next value of "
                f"state '{nexts[s.next]}'; one state suffices"
            )
        nexts[s.next] = s.name
        if s.next != INPUT and s.next not in ops:
            raise ConfigError(
                f"{source}: field 'states.{s.name}.next': got {s.next!r}, expected an op's name or x"
            )
        for env_widths in widths:
            if env_widths[s.next] != env_widths[s.name]:
                raise ConfigError(
                    f"{source}: field 'states.{s.name}.next': '{s.next}' is not as wide as the "
                    f"state ({s.width})"
                )
        if s.name not in used:
            raise ConfigError(f"{source}: field 'states.{s.name}': the state is never read")
    if cell.output not in ops:
        raise ConfigError(f"{source}: field 'output': got {cell.output!r}, expected an op's name")
    for env, env_widths in zip(envs, widths, strict=True):
        other = _widths(cell, {**env, "I": env["I"] + 1})
        if other[cell.output] != env_widths[cell.output]:
            raise ConfigError(
                f"{source}: field 'output': the output's width depends on I (the layer input); "
                "a stacked layer's input is the output of the one below"
            )
    used |= {s.next for s in cell.states} | {cell.output}
    for p in cell.params:
        if p.name not in used:
            raise ConfigError(f"{source}: field 'params.{p.name}': the parameter is never used")
    for position, op in enumerate(cell.ops):
        if op.name not in used:
            raise ConfigError(
                f"{source}: field 'ops[{position}]' ('{op}'): '{op.name}' is never used (not an "
                "operand, a state's next value or the output)"
            )


def _width_text(cell: Cell, a: Operand, gates: Mapping[str, tuple[str, ...]]) -> str:
    """The width of operand ``a`` as declared text, e.g. ``4*H`` or ``H of 4*H``."""
    item = cell.lookup(a.name)
    if item == INPUT:
        whole = "I"
    elif isinstance(item, State):
        whole = item.width
    elif isinstance(item, Param):
        whole = item.shape[0]
    else:
        return f"the width of {a}"
    return f"1/{len(gates[a.name])} of {whole}" if a.gate else whole


def cell_to_dict(cell: Cell) -> dict[str, Any]:
    """The declaration as the mapping :func:`cell_from_dict` reads (YAML-ready).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> cell = get_cell("rnn", nonlinearity="relu")
    >>> cell_from_dict(cell_to_dict(cell), options=dict(cell.options)) == cell
    True
    >>> cell_to_dict(cell)["ops"][-1]
    'h_new = relu(a)'
    """
    data: dict[str, Any] = {"name": cell.name}
    if cell.reference:
        data["reference"] = cell.reference
    if cell.sizes:
        data["sizes"] = dict(cell.sizes)
    data["states"] = {s.name: {"width": s.width, "next": s.next} for s in cell.states}
    data["params"] = {
        p.name: {"shape": list(p.shape), **({"gates": list(p.gates)} if p.gates else {})}
        for p in cell.params
    }
    data["ops"] = [str(op) for op in cell.ops]
    data["output"] = cell.output
    return data


def load_cell(path: str | Path) -> Cell:
    """Read and check a cell declared in a YAML file.

    Raises
    ------
    ConfigError
        One line naming the file, the field and what was expected.
    """
    return cell_from_dict(read_yaml(path), str(path))
