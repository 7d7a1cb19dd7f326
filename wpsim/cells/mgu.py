"""MGU, the Minimal Gated Unit (Zhou, Wu, Zhang & Zhou, 2016, eqs. 8-10).

::

    f = s(W_f [h, x] + b_f)
    n = tanh(W_h [f * h, x] + b_h)
    h' = (1 - f) * h + f * n

One gate, which also resets the state the candidate reads. ``W_f`` and ``W_h`` are stored split
by operand, as PyTorch stores its cells: ``weight_ih`` ``[W_fx, W_hx]`` (gates f, n) multiplies
``x``, ``weight_hh`` ``[W_fh, W_hh]`` multiplies ``h`` and ``f * h``; ``bias`` is ``[b_f, b_h]``.
"""

from __future__ import annotations

from wpsim.cells.registry import register
from wpsim.cells.spec import Cell, cell_from_dict


@register
def mgu() -> Cell:
    """The MGU cell.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> str(get_cell("mgu").ops[6])
    'hn = matmul(weight_hh.n, fh)'
    """
    gates = ["f", "n"]
    return cell_from_dict(
        {
            "name": "mgu",
            "reference": "Zhou et al., Minimal Gated Unit for Recurrent Neural Networks, 2016",
            "states": {"h": {"width": "H", "next": "h_new"}},
            "params": {
                "weight_ih": {"shape": ["2*H", "I"], "gates": gates},
                "weight_hh": {"shape": ["2*H", "H"], "gates": gates},
                "bias": {"shape": ["2*H"], "gates": gates},
            },
            "ops": [
                "gx = matmul(weight_ih, x)",
                "gx_b = add(gx, bias)",
                "hf = matmul(weight_hh.f, h)",
                "af = add(gx_b.f, hf)",
                "f = sigmoid(af)",
                "fh = mul(f, h)",
                "hn = matmul(weight_hh.n, fh)",
                "an = add(gx_b.n, hn)",
                "n = tanh(an)",
                "omf = one_minus(f)",
                "keep = mul(omf, h)",
                "fn = mul(f, n)",
                "h_new = add(keep, fn)",
            ],
            "output": "h_new",
        },
        source=__name__,
    )
