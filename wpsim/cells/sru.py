"""SRU, the Simple Recurrent Unit (Lei, Zhang, Wang, Dai & Artzi, EMNLP 2018, eqs. 3-6).

::

    f = s(W_f x + v_f * c + b_f)
    c' = f * c + (1 - f) * (W x)
    r = s(W_r x + v_r * c + b_r)
    h' = r * c' + (1 - r) * (W_p x)

All matrix work multiplies the input only, so it leaves the recurrence and runs for k steps as
one GEMM; the recurrence is element-wise (``c``). The highway term uses a projection ``W_p x`` of
the input, the paper's choice when the input and hidden sizes differ (a stacked bidirectional
layer's input is 2H wide), made here for every layer so that one declaration serves them all.
``weight_ih`` stacks ``[W, W_f, W_r, W_p]`` (gates u, f, r, p); ``weight_c`` is ``[v_f, v_r]``.
The reset gate ``r`` reads the previous ``c`` but feeds no state: it runs after the recurrence,
batched over the k steps.
"""

from __future__ import annotations

from wpsim.cells.registry import register
from wpsim.cells.spec import Cell, cell_from_dict


@register
def sru() -> Cell:
    """The SRU cell.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [s.name for s in get_cell("sru").states]
    ['c']
    """
    return cell_from_dict(
        {
            "name": "sru",
            "reference": "Lei et al., Simple Recurrent Units for Highly Parallelizable "
            "Recurrence, EMNLP 2018",
            "states": {"c": {"width": "H", "next": "c_new"}},
            "params": {
                "weight_ih": {"shape": ["4*H", "I"], "gates": ["u", "f", "r", "p"]},
                "weight_c": {"shape": ["2*H"], "gates": ["f", "r"]},
                "bias": {"shape": ["2*H"], "gates": ["f", "r"]},
            },
            "ops": [
                "gx = matmul(weight_ih, x)",
                "fx = add(gx.f, bias.f)",
                "vf = mul(weight_c.f, c)",
                "fa = add(fx, vf)",
                "f = sigmoid(fa)",
                "fc = mul(f, c)",
                "omf = one_minus(f)",
                "fu = mul(omf, gx.u)",
                "c_new = add(fc, fu)",
                "rx = add(gx.r, bias.r)",
                "vr = mul(weight_c.r, c)",
                "ra = add(rx, vr)",
                "r = sigmoid(ra)",
                "rc = mul(r, c_new)",
                "omr = one_minus(r)",
                "rp = mul(omr, gx.p)",
                "h_new = add(rc, rp)",
            ],
            "output": "h_new",
        },
        source=__name__,
    )
