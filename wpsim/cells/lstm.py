"""LSTM, as ``torch.nn.LSTM`` (gates i, f, g, o; optional ``proj_size``).

::

    [i, f, g, o] = [s, s, tanh, s](W_ih x + b_ih + W_hh h + b_hh)      (s = sigmoid)
    c' = f * c + i * g
    h' = o * tanh(c')                      or, with proj_size P > 0,  h' = W_hr (o * tanh(c'))

With a projection, ``h`` has P features (``W_hh`` is 4H x P, ``W_hr`` P x H) and so has the
layer's output (Hochreiter & Schmidhuber 1997; Sak et al. 2014 for the projection).
"""

from __future__ import annotations

from wpsim.cells.registry import register
from wpsim.cells.spec import Cell, cell_from_dict


@register
def lstm(*, proj_size: int = 0) -> Cell:
    """The LSTM cell; ``proj_size`` > 0 adds torch's projection ``W_hr`` of the hidden state.

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [p.name for p in get_cell("lstm", proj_size=2).params]
    ['weight_ih', 'weight_hh', 'bias_ih', 'bias_hh', 'weight_hr']
    """
    if isinstance(proj_size, bool) or not isinstance(proj_size, int) or proj_size < 0:
        raise ValueError(f"proj_size: got {proj_size!r}, expected an integer >= 0")
    h = "P" if proj_size else "H"
    gates = ["i", "f", "g", "o"]
    params = {
        "weight_ih": {"shape": ["4*H", "I"], "gates": gates},
        "weight_hh": {"shape": ["4*H", h], "gates": gates},
        "bias_ih": {"shape": ["4*H"], "gates": gates},
        "bias_hh": {"shape": ["4*H"], "gates": gates},
    }
    out = (
        ["hc = mul(o, tc)", "h_new = matmul(weight_hr, hc)"]
        if proj_size
        else ["h_new = mul(o, tc)"]
    )
    if proj_size:
        params["weight_hr"] = {"shape": ["P", "H"]}
    return cell_from_dict(
        {
            "name": "lstm",
            "reference": "torch.nn.LSTM; Hochreiter & Schmidhuber 1997; Sak et al. 2014 (proj)",
            "sizes": {"P": proj_size} if proj_size else {},
            "states": {"h": {"width": h, "next": "h_new"}, "c": {"width": "H", "next": "c_new"}},
            "params": params,
            "ops": [
                "gx = matmul(weight_ih, x)",
                "gx_b = add(gx, bias_ih)",
                "gh = matmul(weight_hh, h)",
                "gh_b = add(gh, bias_hh)",
                "a = add(gx_b, gh_b)",
                "i = sigmoid(a.i)",
                "f = sigmoid(a.f)",
                "g = tanh(a.g)",
                "o = sigmoid(a.o)",
                "fc = mul(f, c)",
                "ig = mul(i, g)",
                "c_new = add(fc, ig)",
                "tc = tanh(c_new)",
                *out,
            ],
            "output": "h_new",
        },
        source=__name__,
    )
