"""Sweep specifications: what to vary, how, and on which engine.

A sweep YAML names a base workload and machine and, under ``vary:``, the parameters to vary by
dotted path::

    name: cores-by-layers
    workload: demo              # a path (relative to this file, or the working directory), a
                                # name from workloads/, or an inline mapping of workload fields
    hardware: xeon8160_2s       # the same for machines (hw_configs/)
    policy: wavefront           # or {name: wavefront, helpers: 4, instances: 1}
    run: {cores: null, chunk: 1, granularity: cell, cost: model}
    engine: analytic            # analytic (closed forms) | simulate (discrete events)
    mode: grid                  # grid (every combination) | zip (i-th with i-th) | random
    samples: 100                # random mode only: how many points
    seed: 0                     # random mode only: the only source of randomness
    vary:
      hardware.cores_per_socket: [1, 2, 4, 8, 16, 24]
      workload.layers: [2, 4, 8]
      policy: [layerwise, wavefront]

Dotted paths:

* ``workload.FIELD``: any field of :class:`wpsim.model.workload.Workload`;
* ``hardware.FIELD[.KEY...]``: any field of the machine, then mapping keys, list indices or, in a
  list of named entries, a name (``hardware.caches.L2.size_bytes``);
* ``policy``: a name, or a mapping ``{name: wavefront, helpers: 4}`` (so one list can hold
  ``[layerwise, wavefront, {name: wavefront, helpers: 4}]``); ``policy.helpers``,
  ``policy.instances``;
* ``run.cores``, ``run.chunk``, ``run.granularity``, ``run.cost``, ``run.runtime`` (``lean`` or
  a runtime of ``hw_configs/runtimes/``, see :mod:`wpsim.sim.runtime`).

``cores``, ``chunk``, ``granularity``, ``cost``, ``runtime``, ``helpers`` and ``instances`` are accepted as
short forms and stored under their full path. In ``random`` mode a value may also be a range
``{min: A, max: B}`` (integers if both ends are; ``log: true`` samples log-uniformly).

Grid order: the last parameter under ``vary:`` changes fastest. Points are numbered from 0 in that
order; the number (``point``) identifies a point in ``results.csv``.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from wpsim.config import NotBool, read_yaml, unknown_field_message, validate_mapping
from wpsim.errors import ConfigError
from wpsim.resources import data_dir

#: Short forms accepted under ``vary:`` and the full dotted path they stand for.
ALIASES = {
    "cores": "run.cores",
    "chunk": "run.chunk",
    "granularity": "run.granularity",
    "cost": "run.cost",
    "runtime": "run.runtime",
    "helpers": "policy.helpers",
    "instances": "policy.instances",
    "policy.name": "policy",
}
RUN_FIELDS = ("cores", "chunk", "granularity", "cost", "runtime")
POLICY_FIELDS = ("helpers", "instances")

WORKLOAD_DIR = data_dir("workloads")


class Strict(BaseModel):
    # numbers are finite and never booleans, as in machine and workload files (wpsim.config)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Int = Annotated[int, NotBool]


class PolicySpec(Strict):
    """The base policy of every point: a registered name and its options."""

    name: str = "wavefront"
    helpers: Int | None = Field(None, ge=1)
    instances: Int = Field(1, ge=1)


class RunSpec(Strict):
    """Run options passed to the engine for every point (``cores: null`` = all cores)."""

    cores: Int | None = Field(None, ge=1)
    chunk: Int = Field(1, ge=1)
    granularity: Literal["cell", "op"] = "cell"
    cost: Literal["model", "ideal"] = "model"
    #: the software that runs the RNN: ``lean`` (none) or a runtime name or file (wpsim.sim.runtime)
    runtime: str = "lean"


class RangeSpec(Strict):
    """A range to sample from in ``random`` mode."""

    min: Annotated[int | float, NotBool]
    max: Annotated[int | float, NotBool]
    log: bool = Field(False, strict=True)

    @model_validator(mode="after")
    def _ordered(self) -> RangeSpec:
        if self.max < self.min:
            raise ValueError(f"min <= max (got min {self.min}, max {self.max})")
        if self.log and self.min <= 0:
            raise ValueError("min > 0 for a log range")
        if not math.isfinite(float(self.max) - float(self.min)):
            raise ValueError(f"a range narrower than {sys.float_info.max:.3g} (max - min)")
        return self


class SweepSpec(Strict):
    """A sweep description. See the module docstring for the fields."""

    name: str = ""
    description: str = ""
    workload: str | dict[str, Any]
    hardware: str | dict[str, Any]
    policy: str | PolicySpec = "wavefront"
    run: RunSpec = RunSpec()
    engine: Literal["analytic", "simulate"] = "analytic"
    mode: Literal["grid", "zip", "random"] = "grid"
    samples: Int | None = Field(None, ge=1, le=100_000_000)
    seed: Int = Field(0, ge=0)
    vary: dict[str, list[Any] | RangeSpec] = Field(default_factory=dict)

    @field_validator("vary")
    @classmethod
    def _nonempty_lists(cls, vary: dict[str, Any]) -> dict[str, Any]:
        for key, values in vary.items():
            if isinstance(values, list) and not values:
                raise ValueError(f"at least one value for {key!r}")
        return vary

    @model_validator(mode="after")
    def _mode_fields(self) -> SweepSpec:
        if self.mode == "random" and self.samples is None:
            raise ValueError("'samples' (how many points) because mode is 'random'")
        if self.mode != "random":
            ranges = [k for k, v in self.vary.items() if isinstance(v, RangeSpec)]
            if ranges:
                raise ValueError(
                    f"a list of values for {ranges[0]!r} ({{min, max}} ranges need mode: random)"
                )
        if self.mode == "zip":
            # (lists only: ranges were refused above)
            lengths = {k: len(v) for k, v in self.vary.items() if isinstance(v, list)}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"lists of one length in zip mode (got {lengths})")
        return self

    @property
    def policy_spec(self) -> PolicySpec:
        return self.policy if isinstance(self.policy, PolicySpec) else PolicySpec(name=self.policy)


@dataclass(frozen=True)
class PointTable:
    """The values of a grid or zip sweep's points, by point number.

    Attributes
    ----------
    mode : str
        ``grid`` (the last parameter fastest) or ``zip``.
    values : tuple of lists
        Each parameter's list of values, in ``vary:`` order.

    Examples
    --------
    >>> table = PointTable("grid", ([1, 2], ["x", "y", "z"]))
    >>> table.positions(np.array([0, 4, 5])).tolist()
    [[0, 0], [1, 1], [1, 2]]
    >>> PointTable("zip", ([1, 2], ["x", "y"])).positions(np.array([1])).tolist()
    [[1, 1]]
    """

    mode: str
    values: tuple[list[Any], ...]

    def positions(self, numbers: np.ndarray) -> np.ndarray:
        """Each point's position in each parameter's list: a (points x parameters) array."""
        numbers = np.asarray(numbers, dtype=np.int64)
        if self.mode == "zip":
            return np.repeat(numbers[:, None], len(self.values), axis=1)
        sizes = np.array([len(v) for v in self.values], dtype=np.int64)
        strides = np.array([math.prod(map(len, self.values[i + 1 :])) for i in range(len(sizes))])
        return (numbers[:, None] // strides.astype(np.int64)) % sizes


@dataclass
class Points:
    """Some points of a sweep, as they travel to the workers: their numbers and, for a random
    sweep (no :class:`PointTable`), each point's drawn values in ``vary:`` order.

    Examples
    --------
    >>> both = Points.join([Points(np.array([0, 1])), Points(np.array([7]))])
    >>> both.numbers.tolist(), len(both[1:])
    ([0, 1, 7], 2)
    """

    numbers: np.ndarray
    drawn: list[tuple[Any, ...]] | None = None

    def __len__(self) -> int:
        return len(self.numbers)

    def __getitem__(self, part: slice) -> Points:
        return Points(self.numbers[part], None if self.drawn is None else self.drawn[part])

    def keep(self, mask: np.ndarray) -> Points:
        """The points where ``mask`` is true."""
        drawn = (
            None if self.drawn is None else [d for d, k in zip(self.drawn, mask, strict=True) if k]
        )
        return Points(self.numbers[mask], drawn)

    @staticmethod
    def join(parts: list[Points]) -> Points:
        """The points of ``parts``, in order."""
        if len(parts) == 1:
            return parts[0]
        numbers = np.concatenate([p.numbers for p in parts]) if parts else np.zeros(0, np.int64)
        drawn = None
        if parts and parts[0].drawn is not None:
            drawn = [values for p in parts for values in p.drawn or ()]
        return Points(numbers, drawn)

    def items(self, params: list[str], table: PointTable | None) -> list[tuple[int, dict]]:
        """Each point as ``(number, {parameter: value})``."""
        if self.drawn is None:
            assert table is not None, "points without values need the sweep's table"
            rows = [
                tuple(values[i] for values, i in zip(table.values, at, strict=True))
                for at in table.positions(self.numbers).tolist()
            ]
        else:
            rows = self.drawn
        return [
            (n, dict(zip(params, row, strict=True)))
            for n, row in zip(self.numbers.tolist(), rows, strict=True)
        ]


@dataclass
class LoadedSweep:
    """A validated spec with its inputs resolved to plain data (what workers need).

    Attributes
    ----------
    spec : SweepSpec
    source : str
        The spec file (for messages).
    params : list of str
        Varied parameters, full dotted paths, in ``vary:`` order.
    values : dict
        Each parameter's list of values (or :class:`RangeSpec` in random mode).
    base_workload, base_hardware : dict
        The base workload and machine as mappings.
    input_files : dict
        ``{"workload": path, "hardware": path}`` for inputs read from files.
    """

    spec: SweepSpec
    source: str
    params: list[str]
    values: dict[str, Any]
    base_workload: dict[str, Any]
    base_hardware: dict[str, Any]
    input_files: dict[str, str] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        """How many points the sweep has."""
        spec = self.spec
        if spec.mode == "random":
            return int(spec.samples or 0)
        if not self.params:
            return 1
        if spec.mode == "zip":
            return len(next(iter(self.values.values())))
        return math.prod(len(v) for v in self.values.values())

    def points(self) -> list[tuple[int, dict[str, Any]]]:
        """Every point as ``(index, {param: value})``; see :func:`expand`."""
        return expand(self)

    def context(self) -> dict[str, Any]:
        """Plain, picklable data from which a worker evaluates any point of this sweep."""
        policy = self.spec.policy_spec
        return {
            "source": self.source,
            "engine": self.spec.engine,
            "params": list(self.params),
            "base_workload": self.base_workload,
            "base_hardware": self.base_hardware,
            "base_policy": policy.model_dump(),
            "base_run": self.spec.run.model_dump(),
            "identity": self.identity(),
            "table": self.table(),
        }

    def table(self) -> PointTable | None:
        """How a worker finds a point's values from its number (None for a random sweep,
        whose points are drawn in sequence: their values travel with their numbers)."""
        if self.spec.mode == "random":
            return None
        return PointTable(self.spec.mode, tuple(list(self.values[p]) for p in self.params))

    def identity(self) -> str:
        """SHA-256 of everything that decides the results (spec values and input contents)."""
        data: dict[str, Any] = {
            "spec": self.spec.model_dump(mode="json", exclude={"name", "description"}),
            "workload": self.base_workload,
            "hardware": self.base_hardware,
            "params": self.params,
        }
        data["spec"].pop("workload")
        data["spec"].pop("hardware")
        text = json.dumps(data, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _resolve_input(value: str, spec_dir: Path, folder: Path) -> Path | None:
    """A path relative to the spec, to the working directory, or a bare name in ``folder``."""
    candidates = [spec_dir / value, Path(value)]
    if Path(value).suffix not in {".yaml", ".yml"}:
        candidates.append(folder / f"{value}.yaml")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    return None


def _absolute_policy_files(
    spec: SweepSpec, values: dict[str, Any], spec_dir: Path
) -> tuple[SweepSpec, dict[str, Any]]:
    """Policy plug-ins named ``FILE.py:Class`` with ``FILE`` relative to the spec's folder (or
    the current one) made absolute, so that worker processes started anywhere load the file."""
    from wpsim.plugins import absolute_reference

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return absolute_reference(value, [spec_dir])
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            return {**value, "name": absolute_reference(value["name"], [spec_dir])}
        return value

    if isinstance(spec.policy, str):
        spec = spec.model_copy(update={"policy": fix(spec.policy)})
    else:
        named = spec.policy.model_copy(update={"name": fix(spec.policy.name)})
        spec = spec.model_copy(update={"policy": named})
    if isinstance(values.get("policy"), list):
        values = {**values, "policy": [fix(v) for v in values["policy"]]}
    return spec, values


def _canonical_param(source: str, key: str) -> str:
    key = ALIASES.get(key, key)
    if key == "policy":
        return key
    head, _, rest = key.partition(".")
    if head in {"workload", "hardware", "policy", "run"} and rest:
        return key
    raise ConfigError(
        f"{source}: field 'vary.{key}': unknown parameter path; expected workload.FIELD, "
        f"hardware.FIELD[.KEY...], policy, policy.helpers, policy.instances or run.cores|chunk|"
        f"granularity|cost|runtime"
    )


def _walk(data: Any, parts: list[str]) -> tuple[Any, Any] | None:
    """(container, key) that ``parts`` designate in ``data``, or None when a part is missing."""
    node = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, dict):
            if part not in node:
                return None
            key: Any = part
        elif isinstance(node, list):
            key = _list_key(node, part)
            if key is None:
                return None
        else:
            return None
        if last:
            return node, key
        node = node[key]
    return None


def _list_key(node: list, part: str) -> int | None:
    if part.lstrip("-").isdigit():
        index = int(part)
        return index if -len(node) <= index < len(node) else None
    for index, item in enumerate(node):
        if isinstance(item, dict) and item.get("name") == part:
            return index
    return None


def _check_runtime(where: str, value: Any) -> None:
    """Raise a one-line ConfigError at ``where`` unless ``value`` names a loadable runtime."""
    from wpsim.sim.runtime import load_runtime

    if not isinstance(value, str):
        raise ConfigError(f"{where}: got {value!r}, expected a runtime name or file")
    try:
        load_runtime(value)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _check_param(loaded: LoadedSweep, key: str) -> None:
    from wpsim.machines import MACHINE_KINDS
    from wpsim.model.workload import Workload
    from wpsim.policies import available, known

    source = loaded.source
    head, _, rest = key.partition(".")
    where = f"{source}: field 'vary.{key}'"
    if key == "policy":
        values = loaded.values[key]
        if isinstance(values, RangeSpec):
            raise ConfigError(f"{where}: expected a list of policy names, got a range")
        for value in values:
            if isinstance(value, dict):
                try:
                    value = PolicySpec.model_validate(value).name
                except ValidationError as error:
                    first = error.errors()[0]
                    field_name = ".".join(str(part) for part in first["loc"])
                    raise ConfigError(
                        f"{where}: policy mapping field {field_name!r}: {first['msg']}"
                    ) from None
            if not known(value):
                raise ConfigError(
                    f"{where}: got {value!r}, expected one of {', '.join(available())} "
                    "(or FILE.py:Class)"
                )
    elif head == "workload":
        if rest not in Workload.model_fields:
            fields = list(Workload.model_fields)
            raise ConfigError(f"{where}: {unknown_field_message(rest, fields, 'workload field')}")
    elif head == "policy":
        if rest not in POLICY_FIELDS:
            raise ConfigError(
                f"{where}: unknown policy option {rest!r}; expected helpers or instances"
            )
    elif head == "run":
        if rest not in RUN_FIELDS:
            raise ConfigError(
                f"{where}: unknown run option {rest!r}; expected {', '.join(RUN_FIELDS)}"
            )
        if rest == "runtime":
            values = loaded.values[key]
            if isinstance(values, RangeSpec):
                raise ConfigError(f"{where}: expected a list of runtime names, got a range")
            for value in values:
                _check_runtime(where, value)
    elif head == "hardware":
        parts = rest.split(".")
        kind = loaded.base_hardware.get("kind", "cpu")
        model = MACHINE_KINDS.get(kind)
        fields = list(model.model_fields) if model is not None else []
        if parts[0] not in fields:
            raise ConfigError(
                f"{where}: {unknown_field_message(parts[0], fields, 'machine field')}"
            )
        if len(parts) > 1 and _walk(loaded.base_hardware, parts) is None:
            raise ConfigError(
                f"{where}: {rest!r} does not exist in the base machine (keys, list indices or "
                f"entry names such as caches.L2.size_bytes)"
            )


def load_sweep(path: str | Path) -> LoadedSweep:
    """Read and validate a sweep YAML file, resolving its workload and machine.

    Raises
    ------
    ConfigError
        One line naming the file and the field (malformed YAML, unknown dotted path, unknown
        policy, missing input file...).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "s.yaml").write_text(
    ...     "workload: tiny\\nhardware: xeon8160_2s\\nvary:\\n  policy: [layerwise, wavefront]\\n"
    ...     "  cores: [1, 2]\\n")
    >>> s = load_sweep(d / "s.yaml")
    >>> s.n_points, s.params
    (4, ['policy', 'run.cores'])
    """
    source = str(path)
    raw = read_yaml(path)
    spec = validate_mapping(SweepSpec, raw, source)
    spec_dir = Path(path).resolve().parent
    from wpsim.machines import HW_CONFIG_DIR, resolve_machine_path
    from wpsim.machines.host import HOST_NAME

    inputs: dict[str, Any] = {}
    files: dict[str, str] = {}
    for name, value, folder in (
        ("workload", spec.workload, WORKLOAD_DIR),
        ("hardware", spec.hardware, HW_CONFIG_DIR),
    ):
        if isinstance(value, dict):
            inputs[name] = copy.deepcopy(value)
            continue
        resolved: Path | None
        if name == "hardware" and value == HOST_NAME and not (spec_dir / value).exists():
            resolved = resolve_machine_path(
                value
            )  # this computer's calibration (wpsim.machines.host)
        else:
            resolved = _resolve_input(value, spec_dir, folder)
        if resolved is None:
            raise ConfigError(f"{source}: field '{name}': file not found: {value!r}")
        data = read_yaml(resolved)
        if not isinstance(data, dict):
            raise ConfigError(
                f"{resolved}: expected a mapping of field: value, got {type(data).__name__}"
            )
        inputs[name] = data
        files[name] = str(resolved)
    params: list[str] = []
    values: dict[str, Any] = {}
    for key, vals in spec.vary.items():
        full = _canonical_param(source, key)
        if full in values:
            raise ConfigError(f"{source}: field 'vary.{key}': {full!r} is listed twice")
        params.append(full)
        values[full] = vals
    spec, values = _absolute_policy_files(spec, values, spec_dir)
    loaded = LoadedSweep(
        spec, source, params, values, inputs["workload"], inputs["hardware"], files
    )
    for key in params:
        _check_param(loaded, key)
    _check_base(loaded)
    return loaded


def _check_base(loaded: LoadedSweep) -> None:
    """The base workload, machine and policy must be valid on their own."""
    from wpsim.machines import machine_from_dict
    from wpsim.model.workload import workload_from_dict
    from wpsim.policies import available, known

    files = loaded.input_files
    workload_src = files.get("workload", f"{loaded.source}: workload")
    hardware_src = files.get("hardware", f"{loaded.source}: hardware")
    # a varied field may legitimately be missing from the base (e.g. a required one)
    workload = dict(loaded.base_workload)
    hardware = copy.deepcopy(loaded.base_hardware)
    for key in loaded.params:
        first = _first_value(loaded.values[key])
        head, _, rest = key.partition(".")
        if head == "workload":
            workload[rest] = first
        elif head == "hardware":
            set_path(hardware, rest, first)
    # validated together with the first value of each varied field: say so, or a bad value in
    # the spec's vary list would seem to be the input file's
    heads = {key.partition(".")[0] for key in loaded.params}
    also = f" with the first values of {loaded.source}'s vary"
    workload_from_dict(workload, workload_src + (also if "workload" in heads else ""))
    machine_from_dict(hardware, hardware_src + (also if "hardware" in heads else ""))
    name = loaded.spec.policy_spec.name
    if not known(name):
        raise ConfigError(
            f"{loaded.source}: field 'policy': got {name!r}, expected one of {', '.join(available())}"
            " (or FILE.py:Class)"
        )
    _check_runtime(f"{loaded.source}: field 'run.runtime'", loaded.spec.run.runtime)


def _first_value(values: Any) -> Any:
    if isinstance(values, RangeSpec):
        return values.min
    return values[0]


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if len(parts) == 1:
        data[parts[0]] = value
        return
    found = _walk(data, parts)
    if found is None:  # checked at load time; a range can only make this reachable if misused
        raise ConfigError(f"hardware.{dotted}: no such entry")
    container, key = found
    container[key] = value


def expand(loaded: LoadedSweep) -> list[tuple[int, dict[str, Any]]]:
    """Every point of the sweep, numbered from 0.

    ``grid``: the Cartesian product, last parameter fastest; ``zip``: the i-th value of every
    list together; ``random``: ``samples`` points, each parameter drawn independently from a
    generator seeded with ``seed`` (a list: uniformly among its values; a range: uniformly, or
    log-uniformly, integers when both ends are integers).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> spec = SimpleNamespace(mode="grid")
    >>> s = SimpleNamespace(spec=spec, params=["a", "b"], values={"a": [1, 2], "b": ["x", "y"]})
    >>> [p for _, p in expand(s)]
    [{'a': 1, 'b': 'x'}, {'a': 1, 'b': 'y'}, {'a': 2, 'b': 'x'}, {'a': 2, 'b': 'y'}]
    """
    return list(expand_lazily(loaded))


def expand_lazily(loaded: LoadedSweep) -> Iterator[tuple[int, dict[str, Any]]]:
    """:func:`expand` as a generator (a sweep of millions of points never sits in memory)."""
    spec = loaded.spec
    params = loaded.params
    if spec.mode == "grid":
        combos = itertools.product(*(loaded.values[p] for p in params))
        for i, combo in enumerate(combos):
            yield i, dict(zip(params, combo, strict=True))
        return
    if spec.mode == "zip":
        columns = [loaded.values[p] for p in params]
        n = len(columns[0]) if columns else 1
        for i in range(n):
            yield i, {p: col[i] for p, col in zip(params, columns, strict=True)}
        return
    rng = np.random.default_rng(spec.seed)
    for i in range(int(spec.samples or 0)):
        yield i, {p: _draw(rng, loaded.values[p]) for p in params}


def _draw(rng: Any, values: Any) -> Any:
    if isinstance(values, list):
        return values[int(rng.integers(len(values)))]
    low, high = values.min, values.max
    integer = isinstance(low, int) and isinstance(high, int)
    if values.log:
        draw = math.exp(rng.uniform(math.log(low), math.log(high)))
        return min(high, max(low, int(round(draw)))) if integer else float(draw)
    if integer:  # endpoint=True: high + 1 would overflow int64 at its top
        return int(rng.integers(int(low), int(high), endpoint=True))
    return float(rng.uniform(low, high))
