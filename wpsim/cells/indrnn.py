"""IndRNN, the independently recurrent network (Li, Li, Cook, Zhu & Gao, CVPR 2018, eq. 2).

::

    h' = act(W x + u * h + b)

The recurrent weight is a vector ``u``: each unit sees only its own previous state, so the
recurrence is element-wise and the matrix work (``W x``) leaves it. ``act`` is relu, as in the
paper, or tanh. Parameters ``weight_ih`` (W), ``weight_hh`` (u, of H entries), ``bias_ih`` (b).
"""

from __future__ import annotations

from wpsim.cells.registry import register
from wpsim.cells.spec import Cell, cell_from_dict


@register
def indrnn(*, nonlinearity: str = "relu") -> Cell:
    """The IndRNN cell; ``nonlinearity`` is ``"relu"`` or ``"tanh"``.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> get_cell("indrnn").params[1].shape
    ('H',)
    """
    if nonlinearity not in ("relu", "tanh"):
        raise ValueError(f"nonlinearity: got {nonlinearity!r}, expected 'relu' or 'tanh'")
    return cell_from_dict(
        {
            "name": "indrnn",
            "reference": "Li et al., Independently Recurrent Neural Network (IndRNN), CVPR 2018",
            "states": {"h": {"width": "H", "next": "h_new"}},
            "params": {
                "weight_ih": {"shape": ["H", "I"]},
                "weight_hh": {"shape": ["H"]},
                "bias_ih": {"shape": ["H"]},
            },
            "ops": [
                "gx = matmul(weight_ih, x)",
                "gx_b = add(gx, bias_ih)",
                "uh = mul(weight_hh, h)",
                "a = add(gx_b, uh)",
                f"h_new = {nonlinearity}(a)",
            ],
            "output": "h_new",
        },
        source=__name__,
    )
