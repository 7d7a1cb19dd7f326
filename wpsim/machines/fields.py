"""Validated field types and tables shared by the machine and runtime descriptions.

Numbers are finite (no ``.inf``/``.nan``) and never booleans (:data:`wpsim.config.NotBool`);
unknown fields are errors; a description, once read, is frozen.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from wpsim.cells import cell_names
from wpsim.config import NotBool

PositiveFloat = Annotated[float, Field(gt=0), NotBool]
NonNegativeFloat = Annotated[float, Field(ge=0), NotBool]
Fraction = Annotated[float, Field(gt=0, le=1), NotBool]
UnitInterval = Annotated[float, Field(ge=0, le=1), NotBool]
PositiveInt = Annotated[int, Field(ge=1), NotBool]
Dtype = Literal["float32", "float64", "float16", "bfloat16"]


def _registered_cell(name: str) -> str:
    if name not in cell_names():
        raise ValueError(f"a registered cell name ({', '.join(cell_names())})")
    return name


#: A key of a per-cell calibration: a registered cell's name (:func:`wpsim.cells.cell_names`).
CellName = Annotated[str, AfterValidator(_registered_cell)]


class Strict(BaseModel):
    """A description: unknown fields are errors, numbers finite, the model frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def increasing_points(points: list, kind: str, x_name: str) -> list:
    """Check a table of ``kind`` points for :func:`piecewise_linear`: at least one point, the
    first values (``x_name``) strictly increasing. Returns it; raises ValueError otherwise."""
    if not points:
        raise ValueError(f"at least one {kind} point")
    xs = [p[0] for p in points]
    if xs != sorted(xs) or len(set(xs)) != len(xs):
        raise ValueError(f"{kind} points with strictly increasing {x_name}")
    return points


def piecewise_linear(points: list[tuple[float, float]], x: float) -> float:
    """A table of ``[x, y]`` points (x increasing) read at ``x``: linear between the points, the
    end values outside (dispatch tables, hit curves).

    Examples
    --------
    >>> piecewise_linear([(0.5, 1.0), (1.0, 0.7), (2.0, 0.0)], 1.5)
    0.35
    >>> piecewise_linear([(0.5, 1.0), (1.0, 0.7), (2.0, 0.0)], 0.1)
    1.0
    """
    if x <= points[0][0]:
        return points[0][1]
    for (x0, y0), (x1, y1) in zip(points, points[1:], strict=False):
        if x <= x1:
            return y0 + (x - x0) / (x1 - x0) * (y1 - y0)
    return points[-1][1]
