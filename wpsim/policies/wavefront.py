"""``wavefront`` (dataflow) and ``helper``.

``wavefront``: any ready cell on any free core group, preferring the group that last ran the same
layer (its weights are hot), then the oldest wavefront (lowest generation), then the lowest layer,
then the lowest task id. With ``--helpers K`` each group has K cores sharing every cell.

``helper``: the accelerator's helper-core mode: cores cooperate on one cell (row split of the gate
matrices, hidden state exchanged each step). By default all cores form one group; with
``--helpers K`` there are P/K groups scheduled as a wavefront.
"""

from __future__ import annotations

from wpsim.policies.base import DynamicPolicy


class Wavefront(DynamicPolicy):
    """Dataflow over the layer x time grid; layer affinity, then oldest wavefront."""

    name = "wavefront"
    description = "dataflow: any ready cell, same-layer core first, then oldest wavefront"


class Helper(Wavefront):
    """Cells split across groups of helper cores (all cores in one group by default)."""

    name = "helper"
    description = (
        "each cell split across K helper cores (default: all), hidden state exchanged per step"
    )

    def core_groups(self, n_cores: int) -> list[tuple[int, ...]]:
        if self.helpers is None:
            return [tuple(range(n_cores))]
        return super().core_groups(n_cores)
