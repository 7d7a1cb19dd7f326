"""Runtimes: the software that runs an RNN, as a few documented terms on top of a machine.

A machine file says what the hardware does. A runtime file (``hw_configs/runtimes/*.yaml``) says
what the framework or library that runs the RNN adds: PyTorch eager, TF-Keras, a fused oneDNN
primitive (MXNet, PyTorch's ``mkldnn`` path), cuDNN's standard or persistent algorithm, MIOpen.
A run names one with ``--runtime NAME`` (``run.runtime`` in a sweep); without one (``lean``, the
default) every model is the machine's alone, exactly as before runtimes existed. Baselines are
named after what they model: ``layerwise`` under ``pytorch_eager_cpu`` is what a PyTorch user
measures, ``layerwise`` under ``lean`` is the bare oneDNN-style primitive.

The terms (seconds; each optional, absent = 0 or unchanged):

* ``call_s[phase]``: once per call of the library or framework for ``phase`` (``forward``,
  ``backward_data``, ``backward_weights``): argument checks, descriptors, workspace, the Python
  and module layers. A CPU framework's one ``backward()`` call goes under ``backward_data``.
* ``layer_s[phase]``: once per layer-direction and phase (the framework's per-layer set-up:
  weight views or reorders, output allocation).
* ``step_s[pass][cell]``: a fixed cost per recurrent step of one layer-direction, ``pass``
  ``forward`` or ``backward`` (a backward step is a backward-data step): on a CPU the operators a
  framework dispatches each step (operators per step, counted in its source, times the cost of
  one dispatch); replaces the machine's own per-step and per-task software terms
  (``step_overhead_s``, ``task_overhead_s``, which describe the software the machine file was
  calibrated with).
* ``kernels_per_step[pass][cell]`` (GPU): kernels the library launches per recurrent step (its
  source or its documented structure); replaces the machine's ``gemm.kernels_per_step``.
* ``kernel_launch_s`` (GPU): the host's cost of one launch through this library's driver stack;
  replaces the machine's ``kernel_launch_s``.
* ``input_projection``: ``per_layer`` (one GEMM for the inputs of all steps, before the recurrent
  loop: oneDNN, cuDNN, PyTorch on CPUs; the default) or ``per_step`` (one product of ``B``
  columns inside every step: Keras' LSTM and GRU cells). ``per_step`` changes the graph of the
  policies that hoist the projection (``layerwise``).
* ``directions``: ``in_turn`` (the default: a bidirectional layer runs its forward direction,
  then its reverse one, each on all cores: PyTorch, oneDNN) or ``side_by_side`` (the two
  directions are independent subgraphs the framework runs at the same time, each on half the
  cores: TensorFlow's inter-op threads under Keras' ``Bidirectional``). ``side_by_side`` turns
  ``layerwise`` on a bidirectional workload into two groups of half the cores, direction d on
  group d, layers still one after the other (layer l+1 needs both directions of layer l).

How they enter the models: ``step_s``, ``kernels_per_step`` and ``kernel_launch_s`` go into the
machine the models see (:func:`apply_runtime`), so every task pays them where it runs, on any
policy. ``call_s`` and ``layer_s`` are serial, host-side work before and between the layers'
kernels: :func:`finish` adds them to the makespan, to the one-core baseline and to the phase
they belong to (frameworks run one layer-direction at a time, so this is exact for the
one-group policies they model; instances run their calls side by side).

No term is a per-case factor and none is set from an RNN timing of the published-validation set:
each comes from the library's source (what it launches per step), a public microbenchmark of one
operation, or ``wpsim calibrate --runtime`` on this computer.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from wpsim.config import NotBool, read_yaml, validate_mapping
from wpsim.errors import ConfigError
from wpsim.machines import HW_CONFIG_DIR
from wpsim.machines.cpu import CpuMachine
from wpsim.machines.fields import CellName, NonNegativeFloat, Strict
from wpsim.model.workload import Workload
from wpsim.policies import Policy
from wpsim.policies.layerwise import Layerwise
from wpsim.result import Result

RUNTIME_DIR = HW_CONFIG_DIR / "runtimes"
#: the name of "no runtime": the machine's own model, as before runtimes existed
LEAN = "lean"
PHASES = ("forward", "backward_data", "backward_weights")
KernelCount = Annotated[int, Field(ge=1, le=1000), NotBool]


class PhaseCosts(Strict):
    """Seconds by phase (``forward``, ``backward_data``, ``backward_weights``)."""

    forward: NonNegativeFloat = 0.0
    backward_data: NonNegativeFloat = 0.0
    backward_weights: NonNegativeFloat = 0.0


class StepCosts(Strict):
    """Seconds per recurrent step, by pass and cell."""

    forward: dict[CellName, NonNegativeFloat] = {}
    backward: dict[CellName, NonNegativeFloat] = {}


class StepKernels(Strict):
    """Kernels per recurrent step, by pass and cell."""

    forward: dict[CellName, KernelCount] = {}
    backward: dict[CellName, KernelCount] = {}


class Runtime(Strict):
    """A runtime description (see the module docstring for every term)."""

    name: str
    machine_kind: Literal["cpu", "gpu"]  # the kind of machine the software runs on
    description: str = ""
    call_s: PhaseCosts = PhaseCosts()
    layer_s: PhaseCosts = PhaseCosts()
    step_s: StepCosts = StepCosts()
    kernels_per_step: StepKernels | None = None  # GPU only
    kernel_launch_s: NonNegativeFloat | None = None  # GPU only
    input_projection: Literal["per_layer", "per_step"] = "per_layer"
    directions: Literal["in_turn", "side_by_side"] = "in_turn"
    calibration: dict[str, Any] | None = None  # a measured runtime: date, CPU, versions, raw data

    @model_validator(mode="after")
    def _gpu_terms_on_gpus(self) -> Runtime:
        if self.machine_kind == "cpu" and (
            self.kernels_per_step is not None or self.kernel_launch_s is not None
        ):
            raise ValueError("no kernels_per_step or kernel_launch_s for a cpu runtime")
        return self

    def serial_s(self, workload: Workload) -> dict[str, float]:
        """Seconds of the serial terms by phase: calls, and layers for every layer-direction.

        Examples
        --------
        >>> r = Runtime(name="r", machine_kind="cpu", call_s={"forward": 2e-5},
        ...             layer_s={"forward": 1e-6, "backward_data": 3e-6})
        >>> w = Workload(cell="lstm", layers=2, hidden=8, input=8, seq_len=4, bidirectional=True)
        >>> {k: round(v * 1e6, 3) for k, v in r.serial_s(w).items()}
        {'forward': 24.0, 'backward_data': 0.0, 'backward_weights': 0.0}
        """
        phases = PHASES if workload.phase == "training" else ("forward",)
        layer_directions = workload.layers * workload.directions
        out = dict.fromkeys(PHASES, 0.0)
        for phase in phases:
            out[phase] = getattr(self.call_s, phase) + layer_directions * getattr(
                self.layer_s, phase
            )
        return out


def available() -> list[str]:
    """Names of the shipped runtimes (``hw_configs/runtimes/*.yaml``) and ``lean``."""
    return [LEAN] + sorted(path.stem for path in RUNTIME_DIR.glob("*.yaml"))


def resolve_runtime_path(name_or_path: str | Path) -> Path:
    """A path, or the name of a shipped runtime (``cudnn_standard`` ->
    ``hw_configs/runtimes/cudnn_standard.yaml``)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix in {".yaml", ".yml"}:
        return path
    return RUNTIME_DIR / f"{name_or_path}.yaml"


def load_runtime(name_or_path: str | Path | None) -> Runtime | None:
    """The runtime a run names (``None`` or ``lean``: none).

    Raises
    ------
    ConfigError
        One line naming the file, the field and what was expected; or the known names.
    """
    if name_or_path is None or str(name_or_path) == LEAN:
        return None
    path = resolve_runtime_path(name_or_path)
    if not path.exists() and path.parent == RUNTIME_DIR:
        raise ConfigError(
            f"--runtime {name_or_path}: no such runtime; expected a runtime YAML file or one of "
            f"{', '.join(available())}"
        )
    return validate_mapping(Runtime, read_yaml(path), str(path))


def _check_kind(runtime: Runtime, machine: Any) -> None:
    kind = getattr(machine, "kind", "cpu")
    if kind != runtime.machine_kind:
        raise ConfigError(
            f"--runtime {runtime.name}: a runtime for {runtime.machine_kind} machines; "
            f"'{machine.name}' is a {kind} machine"
        )


def apply_runtime(runtime: Runtime | None, machine: Any, workload: Workload) -> Any:
    """The machine the models see under ``runtime``: its per-step terms folded in.

    CPU: ``step_overhead_s`` and ``backward_step_overhead_s`` become the runtime's ``step_s``
    (the entry of the cell's registered name, :attr:`Workload.calibration_key`; 0 without one,
    and for a cell declared in YAML) and ``task_overhead_s`` empties (the runtime's per-layer
    and per-call costs are added by :func:`finish`). GPU: ``gemm.kernels_per_step`` and
    ``gemm.backward_kernels_per_step`` become the runtime's counts for the workload's cell, and
    ``kernel_launch_s`` the runtime's launch cost, where it gives them.

    Examples
    --------
    >>> from wpsim.machines import load_machine, resolve_machine_path
    >>> v100 = load_machine(resolve_machine_path("v100"))
    >>> r = Runtime(name="r", machine_kind="gpu", kernels_per_step={"forward": {"lstm": 7}})
    >>> apply_runtime(r, v100, Workload(cell="lstm", hidden=8, input=8, seq_len=4)).gemm.kernels_per_step
    7
    """
    if runtime is None:
        return machine
    _check_kind(runtime, machine)
    cell = workload.calibration_key  # None: a cell declared in YAML, no runtime measured it
    if isinstance(machine, CpuMachine):
        if cell is None:
            steps: dict[str, dict[str, float]] = {"forward": {}, "backward": {}}
        else:
            steps = {
                "forward": {cell: runtime.step_s.forward.get(cell, 0.0)},
                "backward": {cell: runtime.step_s.backward.get(cell, 0.0)},
            }
        return machine.model_copy(
            update={
                "step_overhead_s": steps["forward"],
                "backward_step_overhead_s": steps["backward"],
                "task_overhead_s": {},
            }
        )
    update: dict[str, Any] = {}
    if runtime.kernel_launch_s is not None:
        update["kernel_launch_s"] = runtime.kernel_launch_s
    counts = runtime.kernels_per_step
    if counts is not None:
        gemm_update = {}
        if cell in counts.forward:
            gemm_update["kernels_per_step"] = counts.forward[cell]
        if cell in counts.backward:
            gemm_update["backward_kernels_per_step"] = counts.backward[cell]
        if gemm_update:
            update["gemm"] = machine.gemm.model_copy(update=gemm_update)
    return machine.model_copy(update=update) if update else machine


class DirectionsSideBySide(Layerwise):
    """``layerwise`` whose two directions run at the same time on two halves of the cores
    (direction d on group d; one group if there is one core); layers one after the other."""

    def core_groups(self, n_cores: int) -> list[tuple[int, ...]]:
        if n_cores < 2:
            return [tuple(range(n_cores))]
        half = n_cores // 2
        return [tuple(range(half)), tuple(range(half, 2 * half))]

    def home_group(self, tid: int) -> int:
        assert self.plan is not None, "reset() first"
        return self.plan.tasks[tid].direction % len(self.groups)


def adapt_policy(runtime: Runtime | None, policy: Policy, workload: Workload) -> Policy:
    """``policy`` as the runtime runs it: ``per_step`` keeps every step's input product inside
    its cell where the policy would hoist it (``hoist_input`` off); ``side_by_side`` runs the
    directions of a bidirectional ``layerwise`` at the same time (:class:`DirectionsSideBySide`).
    """
    if runtime is None:
        return policy
    if (
        runtime.directions == "side_by_side"
        and workload.bidirectional
        and type(policy) is Layerwise
    ):
        policy = DirectionsSideBySide(helpers=policy.helpers, instances=policy.instances)
    if runtime.input_projection == "per_layer":
        return policy
    base = policy.graph_options

    def graph_options(w: Workload, chunk: int) -> dict[str, Any]:
        options = dict(base(w, chunk))
        if options.get("hoist_input"):
            options["hoist_input"] = None
        return options

    adapted = copy.copy(policy)
    adapted.graph_options = graph_options  # type: ignore[method-assign, assignment]
    return adapted


def finish(runtime: Runtime | None, result: Result, workload: Workload) -> Result:
    """Add the runtime's serial terms (calls, layers) to a result: its makespan, its one-core
    baseline, its time by phase (``extra["phase_s"]``, where the model reports one), its
    break-downs by cause (:mod:`wpsim.breakdown`: ``overhead`` on the critical path, ``idle``
    in the cores' time, which run no task meanwhile), and say so in ``extra["runtime"]`` and
    ``extra["runtime_serial_s"]``."""
    if runtime is None:
        return result
    serial = runtime.serial_s(workload)
    total = sum(serial.values())
    result.makespan_s += total
    result.sequential_s += total
    if result.breakdown_s:
        result.breakdown_s["overhead"] = result.breakdown_s.get("overhead", 0.0) + total
    if result.core_breakdown_s:
        result.core_breakdown_s["idle"] = result.core_breakdown_s.get("idle", 0.0) + total
    phases = result.extra.get("phase_s")
    if isinstance(phases, dict):
        for phase, seconds in serial.items():
            phases[phase] = phases.get(phase, 0.0) + seconds
    result.extra["runtime"] = runtime.name
    result.extra["runtime_serial_s"] = total
    return result


def evaluate(
    engine: str,
    workload: Workload,
    machine: Any,
    policy: Policy,
    runtime: Runtime | None,
    run: Any,
    **options: Any,
) -> Result:
    """``run(engine, workload, machine, policy, **options)`` under ``runtime``: the machine and
    policy adapted, the serial terms added. A precomputed ``options["sequential_s"]`` must be
    the one-core baseline on the adapted machine without the serial terms (a result's
    ``sequential_s - extra["runtime_serial_s"]``)."""
    if runtime is None:
        return run(engine, workload, machine, policy, **options)
    machine = apply_runtime(runtime, machine, workload)
    policy = adapt_policy(runtime, policy, workload)
    return finish(runtime, run(engine, workload, machine, policy, **options), workload)
