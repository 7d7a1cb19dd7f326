"""Loading YAML descriptions into validated dataclass-like models.

Every description (workload, machine, sweep) is a pydantic model with ``extra="forbid"``;
:func:`load_model` turns YAML syntax errors and validation errors into a :class:`ConfigError`
whose one-line message names the file, the field, the bad value and what was expected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from wpsim.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def format_validation_error(source: str, error: ValidationError) -> str:
    """Return a one-line message for the first problem in ``error``.

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
    """
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "extra_forbidden":
        return f"{source}: field '{location}': unknown field (check the spelling; see the reference docs)"
    if kind == "missing":
        return f"{source}: field '{location}': missing, a value is required"
    message = first["msg"]
    for prefix in ("Value error, ", "Input should be "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    got = first.get("input")
    if isinstance(got, dict | list):
        return f"{source}: field '{location}': {message}"
    return f"{source}: field '{location}': got {got!r}, expected {message}"


def validate_mapping(model_cls: type[ModelT], data: Any, source: str) -> ModelT:
    """Validate an already-parsed mapping, reporting problems against ``source``."""
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of field: value, got {type(data).__name__}"
        )
    try:
        return model_cls.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(source, error)) from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file, turning I/O and syntax errors into a one-line :class:`ConfigError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "invalid syntax"
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None


def load_model(model_cls: type[ModelT], path: str | Path) -> ModelT:
    """Read ``path`` as YAML and validate it as ``model_cls``."""
    return validate_mapping(model_cls, read_yaml(path), str(path))
