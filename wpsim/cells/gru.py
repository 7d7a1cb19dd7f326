"""GRU, as ``torch.nn.GRU`` (gates r, z, n; ``b_hn`` inside the reset product).

::

    r = s(W_ir x + b_ir + W_hr h + b_hr)      z = s(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
    h' = (1 - z) * n + z * h

(Cho et al. 2014, in PyTorch's variant.)
"""

from __future__ import annotations

from wpsim.cells.registry import register
from wpsim.cells.spec import Cell, cell_from_dict


@register
def gru() -> Cell:
    """The GRU cell.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> get_cell("gru").params[0].gates
    ('r', 'z', 'n')
    """
    gates = ["r", "z", "n"]
    return cell_from_dict(
        {
            "name": "gru",
            "reference": "torch.nn.GRU; Cho et al. 2014",
            "states": {"h": {"width": "H", "next": "h_new"}},
            "params": {
                "weight_ih": {"shape": ["3*H", "I"], "gates": gates},
                "weight_hh": {"shape": ["3*H", "H"], "gates": gates},
                "bias_ih": {"shape": ["3*H"], "gates": gates},
                "bias_hh": {"shape": ["3*H"], "gates": gates},
            },
            "ops": [
                "gx = matmul(weight_ih, x)",
                "gx_b = add(gx, bias_ih)",
                "gh = matmul(weight_hh, h)",
                "gh_b = add(gh, bias_hh)",
                "ar = add(gx_b.r, gh_b.r)",
                "r = sigmoid(ar)",
                "az = add(gx_b.z, gh_b.z)",
                "z = sigmoid(az)",
                "rn = mul(r, gh_b.n)",
                "an = add(gx_b.n, rn)",
                "n = tanh(an)",
                "omz = one_minus(z)",
                "zn = mul(omz, n)",
                "zh = mul(z, h)",
                "h_new = add(zn, zh)",
            ],
            "output": "h_new",
        },
        source=__name__,
    )
