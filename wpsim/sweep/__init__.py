"""What-if sweeps: many points of (workload, machine, policy, run options), run in parallel.

>>> from wpsim.sweep import load_sweep, run_sweep, read_results  # doctest: +SKIP
>>> summary = run_sweep("sweeps/cores_scaling.yaml", "out/cores")  # doctest: +SKIP
>>> rows = read_results("out/cores")  # doctest: +SKIP

See :mod:`wpsim.sweep.spec` for the YAML format, :mod:`wpsim.sweep.store` for the results folder
(``results.csv``, ``manifest.json``) and its durability, :mod:`wpsim.sweep.run` for the backends,
and :mod:`wpsim.sweep.plot` for the standard views.
"""

from wpsim.sweep.run import SweepSummary, run_sweep
from wpsim.sweep.spec import LoadedSweep, SweepSpec, expand, load_sweep
from wpsim.sweep.store import read_manifest, read_results

__all__ = [
    "LoadedSweep",
    "SweepSpec",
    "SweepSummary",
    "expand",
    "load_sweep",
    "read_manifest",
    "read_results",
    "run_sweep",
]
