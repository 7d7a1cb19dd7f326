"""The data shipped with wpsim: machine files (``hw_configs/``) and workloads (``workloads/``).

Both folders stay at the top of the repository, where people edit them, and the wheel carries
them inside the package as ``wpsim.hw_configs`` and ``wpsim.workloads`` (``pyproject.toml`` maps
the folders with ``package-dir``; one copy exists). They are read with :mod:`importlib.resources`,
so an installed wpsim finds them from any directory. A source checkout used without installing
(``PYTHONPATH=.``) falls back to the folders next to the ``wpsim`` package.

Examples
--------
>>> data_dir("hw_configs").joinpath("xeon8160_2s.yaml").is_file()
True
>>> "tiny" in names("workloads")
True
>>> shipped_file("workloads", "tiny").name
'tiny.yaml'
>>> shipped_file("workloads", "no_such_workload") is None
True
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Literal

Kind = Literal["hw_configs", "workloads"]
KINDS: tuple[str, ...] = ("hw_configs", "workloads")
_CHECKOUT = Path(__file__).resolve().parent.parent


def data_dir(kind: Kind) -> Path:
    """The folder of shipped ``kind`` files (``hw_configs`` or ``workloads``)."""
    if kind not in KINDS:
        raise ValueError(f"kind: got {kind!r}, expected one of {', '.join(KINDS)}")
    try:
        folder = importlib.resources.files(f"wpsim.{kind}")
    except ModuleNotFoundError:  # a checkout on sys.path, not installed
        return _CHECKOUT / kind
    # pip unpacks wheels, and editable installs point at the checkout: a real folder either way
    return Path(str(folder))


def shipped_file(kind: Kind, name: str) -> Path | None:
    """``data_dir(kind) / f"{name}.yaml"`` if it exists, else None."""
    if not name or "/" in name or "\\" in name:
        return None
    path = data_dir(kind) / f"{name}.yaml"
    return path if path.is_file() else None


def names(kind: Kind) -> list[str]:
    """The names of the shipped ``kind`` files, sorted (``xeon8160_2s``, ``tiny``, ...)."""
    return sorted(p.stem for p in data_dir(kind).glob("*.yaml"))


__all__ = ["data_dir", "names", "shipped_file"]
