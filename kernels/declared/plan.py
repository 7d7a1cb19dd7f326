"""What a chunk kernel works out once from a declaration and the sizes: the ops it executes, the
buffers its values and gradients live in, and which gradient contributions write or add.

Nothing here touches arrays; :mod:`kernels.declared.chunk` executes the plan.

The executed ops
----------------
The declaration's ops, with one rewrite that moves work off the recurrence without changing the
result beyond rounding: a bias added on the recurrence (``t = add(u, b)``, ``u`` a recurrent
product) whose only use adds an off-recurrence value (``v = add(t, w)``) is added to that value
instead (``t = add(w, b)``, batched over the k steps; ``v = add(t, u)``). This is how PyTorch's
``b_hh`` of an LSTM joins the input projection (:func:`fold_biases`). Flops, weight blocks and
every analysis of :mod:`wpsim.cells` stay those of the declaration as written.

Buffers
-------
A value lives in a (k, B, width) array ("full") when the backward needs it (operands of ``mul``
and of ``matmul``, outputs of nonlinearities), when another stage reads it, or when it is the
output; otherwise in one per-step buffer ("single"), or two ("rotating") for a value that becomes
a state and is read one step later. A value whose state a batched stage reads is "extended": k+1
slots, the state's initial value in the extra one, so that the state's reads are a view.

Gradients: a value used once, whole, by ``add``/``identity`` (or as ``sub``'s first operand) has
that op's gradient and shares its buffer (its *root*). Each root receives contributions in a
known order; the first one to reach a region writes it, later ones add (regions that none reaches
are zeroed once). Where the order differs from step to step (contributions through a state from
other stages), the buffer is zeroed and every contribution adds.
"""

from __future__ import annotations

from typing import Any

from wpsim.cells import (
    Cell,
    Op,
    Operand,
    cell_from_dict,
    cell_to_dict,
    op_phases,
    param_shapes,
    schedule,
    value_gates,
    value_widths,
)

__all__ = ["ACTIVATIONS", "ChunkPlan", "first_writes", "fold_biases"]

ACTIVATIONS = ("sigmoid", "tanh", "relu")


def fold_biases(cell: Cell) -> Cell:
    """``cell`` with every bias added on the recurrence next to an off-recurrence value moved
    onto that value (see the module docstring); the same cell when there is none.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [str(op) for op in fold_biases(get_cell("rnn")).ops]  # doctest: +NORMALIZE_WHITESPACE
    ['gx = matmul(weight_ih, x)', 'gx_b = add(gx, bias_ih)', 'gh = matmul(weight_hh, h)',
     'gh_b = add(gx_b, bias_hh)', 'a = add(gh_b, gh)', 'h_new = tanh(a)']
    """
    while True:
        found = _foldable(cell)
        if found is None:
            return cell
        t, v, w, u, bias = found
        lines = []
        for op in cell.ops:
            if op.name == t.name:
                continue
            if op.name == v.name:
                lines.append(f"{t.name} = add({w}, {bias})")
                lines.append(f"{v.name} = add({t.name}, {u})")
            else:
                lines.append(str(op))
        cell = cell_from_dict({**cell_to_dict(cell), "ops": lines}, options=dict(cell.options))


def _foldable(cell: Cell) -> tuple[Op, Op, Operand, Operand, Operand] | None:
    phases = op_phases(cell)
    params = {p.name: p for p in cell.params}
    uses: dict[str, list[tuple[str, Operand]]] = {}
    for op in cell.ops:
        for a in op.args:
            uses.setdefault(a.name, []).append((op.name, a))
    carried = {s.next for s in cell.states}
    ops = {op.name: op for op in cell.ops}
    for t in cell.ops:
        if t.kind != "add" or phases[t.name] != "recurrence":
            continue
        kinds = [a.name in params for a in t.args]
        if sorted(kinds) != [False, True] or t.name in carried or t.name == cell.output:
            continue
        bias = t.args[kinds.index(True)]
        u = t.args[kinds.index(False)]
        if len(uses.get(t.name, [])) != 1:
            continue
        v_name, use = uses[t.name][0]
        v = ops[v_name]
        if v.kind != "add" or use.gate:
            continue
        w = v.args[1] if v.args[0].name == t.name else v.args[0]
        if w.name in ops and phases[w.name] == "before" or w.name == "x":
            return t, v, w, u, bias
    return None


def first_writes(
    regions: list[tuple[int, int]], width: int
) -> tuple[list[bool], list[tuple[int, int]]] | None:
    """For contributions to regions of a buffer of ``width``, in the order they are made: which
    write (True) rather than add, and the regions none reaches (they must be zero). None when a
    contribution covers part of what came before.

    Examples
    --------
    >>> first_writes([(0, 4), (4, 8), (0, 4)], 10)
    ([True, True, False], [(8, 10)])
    >>> first_writes([(0, 4), (2, 6)], 8) is None
    True
    """
    covered: list[tuple[int, int]] = []
    writes = []
    for lo, hi in regions:
        overlap = sum(max(0, min(hi, b) - max(lo, a)) for a, b in covered)
        if overlap == 0:
            writes.append(True)
            covered.append((lo, hi))
        elif overlap == hi - lo:
            writes.append(False)
        else:
            return None
    gaps, at = [], 0
    for lo, hi in sorted(covered):
        if lo > at:
            gaps.append((at, lo))
        at = hi
    if at < width:
        gaps.append((at, width))
    return writes, gaps


class ChunkPlan:
    """The plan of a chunk kernel for ``cell`` at ``hidden`` units and ``input_size`` inputs
    (see the module docstring). Attributes are read by :class:`kernels.declared.CellKernel`.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> plan = ChunkPlan(get_cell("lstm"), hidden=4, input_size=3)
    >>> [(s.recurrent, len(s.ops)) for s in plan.stages]
    [(False, 3), (True, 11)]
    >>> plan.grad_root["gx_b"], plan.grad_kind["a"], plan.grad_kind["c_new"]
    ('a', 'full', 'rotating')
    """

    def __init__(self, cell: Cell, hidden: int, input_size: int) -> None:
        self.declared = cell
        self.cell = cell = fold_biases(cell)
        self.widths = value_widths(cell, hidden, input_size)
        self.param_shapes = param_shapes(cell, hidden, input_size)
        self.gates = value_gates(cell)
        self.stages = schedule(cell)
        self.ops = {op.name: op for op in cell.ops}
        self.index = {op.name: i for i, op in enumerate(cell.ops)}
        self.stage_of = {"x": -1}
        for number, stage in enumerate(self.stages):
            self.stage_of.update(dict.fromkeys(stage.ops, number))
        self.params = {p.name: p for p in cell.params}
        self.next_of = {s.name: s.next for s in cell.states}
        self.state_of = {s.next: s.name for s in cell.states}
        # uses of every value (x, states, ops) as operands: (op name, position)
        self.uses: dict[str, list[tuple[str, int]]] = {name: [] for name in self.widths}
        for op in cell.ops:
            for position, a in enumerate(op.args):
                if a.name not in self.params:
                    self.uses[a.name].append((op.name, position))
        batched_read = {
            s: any(not self.recurrent(op) for op, _ in self.uses[s]) for s in self.next_of
        }
        self.extended = {v for s, v in self.next_of.items() if batched_read[s]}
        self.full = {save: self._full_values(save) for save in (False, True)}
        # each op's operands as (name, gate block's columns or None, is a parameter), itself
        # as one, and the columns of a concat's operands
        self.arg_specs = {
            op.name: tuple((a.name, self.region(a), a.name in self.params) for a in op.args)
            for op in cell.ops
        }
        self.self_spec = {op.name: (op.name, None, False) for op in cell.ops}
        self.columns: dict[str, tuple[tuple[int, int], ...]] = {}
        for op in cell.ops:
            if op.kind == "concat":
                at, columns = 0, []
                for a in op.args:
                    columns.append((at, at + self.operand_width(a)))
                    at += self.operand_width(a)
                self.columns[op.name] = tuple(columns)
        self._plan_gradients()
        self._plan_backward_rules()

    def recurrent(self, op: str) -> bool:
        """Whether ``op`` runs in a recurrent stage (one step at a time)."""
        return self.stages[self.stage_of[op]].recurrent

    def region(self, a: Operand) -> tuple[int, int] | None:
        """Columns (or rows, of a parameter) of ``a``'s gate block (None for all of it)."""
        if not a.gate:
            return None
        blocks = self.gates[a.name]
        rows = self.param_shapes[a.name][0] if a.name in self.params else self.widths[a.name]
        size = rows // len(blocks)
        start = blocks.index(a.gate) * size
        return start, start + size

    def operand_width(self, a: Operand) -> int:
        span = self.region(a)
        return self.widths[a.name] if span is None else span[1] - span[0]

    def value_kind(self, name: str, save: bool) -> str:
        """The buffer of op ``name``'s value: full, extended, rotating or single."""
        if name in self.extended:
            return "extended"
        if name in self.full[save]:
            return "full"
        return "rotating" if name in self.state_of else "single"

    def _full_values(self, save: bool) -> set[str]:
        kept: set[str] = set()
        if save:
            for op in self.cell.ops:
                if op.kind == "mul":
                    kept.update(a.name for a in op.args if a.name not in self.params)
                elif op.kind == "matmul":
                    kept.add(op.args[1].name)
                elif op.kind in ACTIVATIONS:
                    kept.add(op.name)
        kept = {self.next_of.get(name, name) for name in kept}
        full = set()
        for op in self.cell.ops:
            stage = self.stage_of[op.name]
            readers = list(self.uses[op.name])
            if op.name in self.state_of:
                readers += self.uses[self.state_of[op.name]]
            if (
                not self.stages[stage].recurrent
                or op.name == self.cell.output
                or op.name in kept
                or op.name in self.extended
                or any(self.stage_of[reader] != stage for reader, _ in readers)
            ):
                full.add(op.name)
        return full

    def _plan_gradients(self) -> None:
        """Shared gradient buffers, buffer kinds, and which contributions write or add."""
        cell = self.cell
        alias: dict[str, str] = {}
        for op in cell.ops:
            if op.kind not in ("add", "sub", "identity"):
                continue
            for position, a in enumerate(op.args):
                if (op.kind == "sub" and position == 1) or a.gate or a.name not in self.ops:
                    continue
                if (
                    self.uses[a.name] == [(op.name, position)]
                    and a.name != cell.output
                    and a.name not in self.state_of
                ):
                    alias[a.name] = op.name
        self.alias = alias

        def root(name: str) -> str:
            while name in alias:
                name = alias[name]
            return name

        self.grad_root = {name: root(name) for name in self.widths if name not in self.next_of}
        members: dict[str, list[str]] = {}
        for name, r in self.grad_root.items():
            members.setdefault(r, []).append(name)
        with_params = {op.name for op in cell.ops if any(a.name in self.params for a in op.args)}
        n = len(cell.ops)
        self.writes: dict[Any, bool] = {}
        self.grad_kind: dict[str, str] = {}
        self.grad_gaps: dict[str, list[tuple[int, int]]] = {}
        self.seeds: dict[str, list[tuple[int, int]]] = {}
        self.zero_initial: dict[str, bool] = {}
        for r, group in members.items():
            width = self.widths[r]
            home = self.stage_of[r]
            # contributions in execution order: later stages first; within a stage, a state's
            # reads (at the step after) before the output's gradient, before the same step's
            # reads in reverse op order
            events = []
            for name in [r] + ([self.state_of[r]] if r in self.state_of else []):
                for user, position in self.uses[name]:
                    later_step = name != r
                    key = (-self.stage_of[user], 0 if later_step else 2, n - self.index[user])
                    span = self.region(self.ops[user].args[position]) or (0, width)
                    events.append((key, (user, position), span, later_step))
            if r == cell.output:
                events.append(((-home, 1, 0), ("dy", 0), (0, width), False))
            events.sort(key=lambda e: e[0])
            per_step = (
                r != "x"
                and self.stages[home].recurrent
                and r not in self.extended
                and not (set(group) & with_params)
                and all(self.stage_of.get(m) == home for m in group)
                and all(-e[0][0] == home for e in events)
            )
            has_state_reads = any(e[3] for e in events)
            plan = first_writes([e[2] for e in events], width)
            if plan is None or (has_state_reads and not per_step):
                writes, gaps, per_step = [False] * len(events), [(0, width)], False
            else:
                writes, gaps = plan
            for event, write in zip(events, writes, strict=True):
                self.writes[event[1]] = write
            if r in self.extended:
                self.grad_kind[r] = "extended"
            elif per_step:
                self.grad_kind[r] = "rotating" if r in self.state_of else "single"
            else:
                self.grad_kind[r] = "full"
            self.grad_gaps[r] = gaps
            if r in self.state_of:
                # the last processed step has no step after it: its state's gradient is
                # seeded, in the regions the state's reads write, with the final-state gradient
                reads = [(e[2], w) for e, w in zip(events, writes, strict=True) if e[3]]
                self.seeds[r] = [span for span, write in reads if write] if per_step else []
                covered = sum(hi - lo for (lo, hi), write in reads if write)
                self.zero_initial[r] = not per_step or covered < width

    def _plan_backward_rules(self) -> None:
        """``rules[op]``: each contribution of ``op``'s backward to an operand's gradient, as
        (rule, operand spec, writes, scratch width or 0, spec of the value the rule reads or
        None, columns or None); ``param_rules``: each parameter an op reads, as (op, kind,
        position, parameter, rows or None, the other operand)."""
        self.rules: dict[str, list[tuple]] = {}
        self.param_rules: list[tuple] = []
        for op in self.cell.ops:
            specs = self.arg_specs[op.name]
            rules = []
            for position, a in enumerate(op.args):
                if a.name in self.params:
                    other = op.args[1] if op.kind == "matmul" else op.args[1 - position]
                    self.param_rules.append(
                        (op.name, op.kind, position, a.name, self.region(a), other)
                    )
                    continue
                if self.alias.get(a.name) == op.name:
                    continue  # it shares the op's gradient
                write = self.writes[(op.name, position)]
                kind, reads, columns = op.kind, None, None
                if kind in ("add", "identity") or (kind == "sub" and position == 0):
                    rule = "pass"
                elif kind in ("one_minus", "sub"):
                    rule = "negate"
                elif kind == "concat":
                    rule, columns = "pass", self.columns[op.name][position]
                elif kind == "mul":
                    rule, reads = "mul", specs[1 - position]
                elif kind == "matmul":
                    rule = "matmul"
                else:
                    rule, reads = kind, self.self_spec[op.name]
                scratch = kind in ACTIVATIONS or (not write and kind in ("mul", "matmul"))
                width = self.operand_width(a) if scratch else 0
                rules.append((rule, a.name, specs[position], write, width, reads, columns))
            self.rules[op.name] = rules
