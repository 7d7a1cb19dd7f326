"""Loading YAML descriptions into validated dataclass-like models.

Every description (workload, machine, sweep) is a pydantic model with ``extra="forbid"``;
:func:`read_yaml` and :func:`load_model` are the single way in, and every problem becomes a
:class:`ConfigError` whose one-line message names the file, the field, the bad value and what
was expected. Hostile or careless files get the same answer in bounded time and memory:

* only regular files are read (a named pipe would block, ``/dev/zero`` never ends), at most
  :data:`MAX_INPUT_BYTES`;
* the text must be UTF-8;
* collections nest at most :data:`MAX_NESTING` levels (the YAML composer recurses once per
  level: 50,000 nested ``[`` exhausted Python's stack);
* a key given twice in one mapping is an error (YAML would keep the last one silently);
* integers have at most 64 bits (a 100,000-digit literal took Python's int-conversion limit);
* strings are text (no unpaired surrogates from ``"\ud800"`` escapes: they cannot be written);
* numeric fields take numbers only: no booleans (YAML reads ``yes``/``true`` as booleans, which
  pydantic would take as 1) and no ``.inf``/``.nan`` (the models set ``allow_inf_nan=False``).
"""

from __future__ import annotations

import difflib
import os
import stat
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError

from wpsim.errors import ConfigError

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails

ModelT = TypeVar("ModelT", bound=BaseModel)

#: Largest input file read (bytes). The largest shipped file, a calibrated machine with its raw
#: measurements, is 54 KB; 1 MiB leaves room for generated files and long inline sweep lists,
#: and bounds the time a hostile file costs: PyYAML's pure-Python loader (the one that enforces
#: the rules below) takes seconds per MiB (benchmarks/guards.py measures it).
MAX_INPUT_BYTES = 2**20
#: Deepest nesting of lists and mappings accepted (shipped files nest at most 5 levels).
MAX_NESTING = 64
#: Largest magnitude of an integer literal (a signed 64-bit integer).
MAX_INT = 2**63 - 1
# longest integer literal converted at all: 0b + 64 binary digits + sign and underscores
_MAX_INT_CHARS = 80


def _reject_bool(value: Any) -> Any:
    """YAML reads yes/no/true/false as booleans, which pydantic would otherwise take as 1/0."""
    if isinstance(value, bool):
        raise ValueError("a number, not a boolean (yes/no/true/false)")
    return value


#: Annotate a numeric field with this to refuse booleans (``layers: true`` is not 1).
NotBool = BeforeValidator(_reject_bool)


# ---- reading ------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a nesting limit, no duplicate keys and 64-bit integers."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # checked in the scanner too: a '[' may start a key, so the scanner reads ahead over
        # every nested '[' before the composer sees one (quadratic time and memory)
        if self.flow_level >= MAX_NESTING:
            raise yaml.scanner.ScannerError(
                None, None, f"nested deeper than {MAX_NESTING} levels", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested deeper than {MAX_NESTING} levels",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # merged keys may be overridden on purpose
                key = self.construct_object(key_node, deep=True)
                try:
                    seen = first_line.get(key)
                except TypeError:  # unhashable: the base class reports it
                    continue
                if seen is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given at line {seen})",
                        key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        text = str(node.value)
        if len(text) > _MAX_INT_CHARS:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"integer of {len(text)} characters, expected at most 64 bits",
                node.start_mark,
            )
        value = super().construct_yaml_int(node)
        if abs(value) > MAX_INT:
            raise yaml.constructor.ConstructorError(
                None, None, "integer out of range, expected at most 64 bits", node.start_mark
            )
        return value

    def construct_yaml_str(self, node: Any) -> str:
        value = super().construct_yaml_str(node)
        if any("\ud800" <= char <= "\udfff" for char in value):  # from a "\ud800" escape
            raise yaml.constructor.ConstructorError(
                None, None, "a string with an unpaired surrogate, not text", node.start_mark
            )
        return value


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)
_StrictLoader.add_constructor("tag:yaml.org,2002:str", _StrictLoader.construct_yaml_str)


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a regular file of at most :data:`MAX_INPUT_BYTES` bytes.

    Raises
    ------
    ConfigError
        Missing, unreadable, not a regular file, too large, or not UTF-8.
    """
    path = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)  # non-blocking: opening a named pipe must not wait
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise ConfigError(f"{path}: is a folder, expected a YAML file")
        if not stat.S_ISREG(mode):
            raise ConfigError(
                f"{path}: not a regular file (a pipe or a device), expected a YAML file"
            )
        chunks, size = [], 0
        while size <= MAX_INPUT_BYTES:
            chunk = os.read(fd, min(1 << 20, MAX_INPUT_BYTES + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    finally:
        os.close(fd)
    if size > MAX_INPUT_BYTES:
        raise ConfigError(
            f"{path}: larger than {MAX_INPUT_BYTES // 2**20} MiB, the limit for input files"
        )
    data = b"".join(chunks)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
            "save it as UTF-8"
        ) from None


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML ``text`` with the rules of the module docstring; ``source`` names it in errors."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None)
        if not problem:  # e.g. a reader error: an unacceptable character
            problem = " ".join(str(error).split()) or "invalid syntax"
        raise ConfigError(f"{source}: malformed YAML{where}: {problem}") from None
    except RecursionError:  # pragma: no cover - the nesting limit comes first
        raise ConfigError(f"{source}: malformed YAML: nested too deeply") from None
    except Exception as error:  # noqa: BLE001 - PyYAML's constructors raise what they meet:
        # ValueError for a date like 2024-13-45, AttributeError for "!!timestamp x", ...
        text = " ".join(str(error).split())[:200]
        raise ConfigError(f"{source}: malformed YAML: {type(error).__name__}: {text}") from None


def read_yaml(path: str | Path) -> Any:
    """Read and parse a YAML file; every problem is a one-line :class:`ConfigError`."""
    return parse_yaml(read_text(path), str(path))


# ---- validation ---------------------------------------------------------------------------------


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation can hold (``list[CacheLevel] | None`` -> CacheLevel)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _fields_at(model_cls: type[BaseModel] | None, location: tuple) -> list[str]:
    """Field names of the (sub)model at ``location`` of ``model_cls`` (empty when unknown)."""
    models = [model_cls] if model_cls is not None else []
    for part in location:
        if not isinstance(part, str):
            continue  # a list index or a dict key: the same models below it
        below: list[type[BaseModel]] = []
        for model in models:
            field = model.model_fields.get(part)
            if field is not None:
                below += _models_in(field.annotation)
        models = below or models
    return [name for model in models for name in model.model_fields]


def unknown_field_message(name: str, known: list[str], what: str = "field") -> str:
    """``unknown field 'hiden' (did you mean 'hidden'?)``, or the known names when none is close.

    Examples
    --------
    >>> unknown_field_message("hiden", ["hidden", "input", "layers"])
    "unknown field 'hiden' (did you mean 'hidden'?)"
    >>> unknown_field_message("zzz", ["hidden", "input"])
    "unknown field 'zzz'; expected one of hidden, input"
    """
    leaf = name.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(leaf, known, n=1, cutoff=0.6)
    if close:
        return f"unknown {what} '{name}' (did you mean '{close[0]}'?)"
    if known:
        return f"unknown {what} '{name}'; expected one of {', '.join(known)}"
    return f"unknown {what} '{name}'"


def _all_models(model_cls: type[BaseModel] | None) -> list[type[BaseModel]]:
    """``model_cls`` and every model its fields can hold, recursively."""
    found: list[type[BaseModel]] = []
    todo = [model_cls] if model_cls is not None else []
    while todo:
        model = todo.pop()
        if model in found:
            continue
        found.append(model)
        for field in model.model_fields.values():
            todo += _models_in(field.annotation)
    return found


def _is_union_tag(part: Any, tags: set[str]) -> bool:
    """Whether a location part names a branch of a union (``list[any]``, ``RangeSpec``), which
    pydantic inserts into the location, rather than a field, key or index of the data."""
    return isinstance(part, str) and ("[" in part or part in tags)


def _union_best(errors: list[ErrorDetails], tags: set[str]) -> ErrorDetails:
    """The first error, or, when it is one branch of a union, the branch that got furthest
    into the value (``{min: 1, max: .inf}`` is a range with a bad ``max``, not a bad list)."""
    first = errors[0]
    cut = next((i for i, p in enumerate(first["loc"]) if _is_union_tag(p, tags)), None)
    if cut is None:
        return first
    prefix = tuple(first["loc"][:cut])
    same = [e for e in errors if tuple(e["loc"][:cut]) == prefix]
    # deepest first; at one depth, a branch whose type matched (a value error) over one whose
    # type did not (``list_type``, ``model_type``...)
    return max(same, key=lambda e: (len(e["loc"]), not e["type"].endswith("_type")))


def format_validation_error(
    source: str, error: ValidationError, model_cls: type[BaseModel] | None = None
) -> str:
    """Return a one-line message for the first problem in ``error`` (an unknown field first:
    a misspelt field also makes the intended one "missing").

    Examples
    --------
    >>> from pydantic import BaseModel, ConfigDict
    >>> class M(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     layers: int
    >>> try:
    ...     M.model_validate({"layers": "x"})
    ... except ValidationError as e:
    ...     print(format_validation_error("w.yaml", e))
    w.yaml: field 'layers': got 'x', expected a valid integer, unable to parse string as an integer
    >>> try:
    ...     M.model_validate({"layer": 2})
    ... except ValidationError as e:
    ...     print(format_validation_error("w.yaml", e, M))
    w.yaml: unknown field 'layer' (did you mean 'layers'?)
    """
    errors = error.errors()
    tags = {m.__name__ for m in _all_models(model_cls)}
    first = next((e for e in errors if e["type"] == "extra_forbidden"), None)
    if first is None:
        first = _union_best(errors, tags)
    loc = tuple(part for part in first["loc"] if not _is_union_tag(part, tags))
    location = ".".join(str(part) for part in loc) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        known = _fields_at(model_cls, loc[:-1])
        return f"{source}: {unknown_field_message(location, known)}"
    if kind == "missing":
        return f"{source}: field '{location}': missing, a value is required"
    message = first["msg"]
    for prefix in ("Value error, ", "Input should be "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    got = first.get("input")
    if isinstance(got, dict | list):
        return f"{source}: field '{location}': {message}"
    shown = repr(got)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{source}: field '{location}': got {shown}, expected {message}"


def validate_mapping(model_cls: type[ModelT], data: Any, source: str) -> ModelT:
    """Validate an already-parsed mapping, reporting problems against ``source``."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of field: value, got {type(data).__name__}"
        )
    try:
        return model_cls.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(source, error, model_cls)) from None


def load_model(model_cls: type[ModelT], path: str | Path) -> ModelT:
    """Read ``path`` as YAML and validate it as ``model_cls``."""
    return validate_mapping(model_cls, read_yaml(path), str(path))
