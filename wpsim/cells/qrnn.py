"""QRNN with fo-pooling (Bradbury, Merity, Xiong & Socher, ICLR 2017, eqs. 1-4), window 1 or 2.

::

    z = tanh(W_z X + b_z)    f = s(W_f X + b_f)    o = s(W_o X + b_o)
    c' = f * c + (1 - f) * z
    h' = o * c'

where ``X`` is ``x_t`` (window 1) or ``[x_t, x_{t-1}]`` (window 2, the masked convolution of
width 2; ``x_{-1} = 0``, the left padding). ``weight_ih`` stacks ``[W_z, W_f, W_o]`` (gates z, f,
o), its columns ``[x_t, x_{t-1}]``. The previous input is carried as the state ``xp`` (the value
of ``x`` one step back), so a chunk of steps needs only its own inputs and the carried states.
All matrix work multiplies inputs: it leaves the recurrence, which is element-wise (``c``).
"""

from __future__ import annotations

from wpsim.cells.registry import register
from wpsim.cells.spec import Cell, cell_from_dict


@register
def qrnn(*, window: int = 1) -> Cell:
    """The QRNN cell with a convolution of ``window`` steps (1 or 2).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> [s.name for s in get_cell("qrnn", window=2).states]
    ['c', 'xp']
    """
    if window not in (1, 2) or isinstance(window, bool):
        raise ValueError(f"window: got {window!r}, expected 1 or 2")
    states = {"c": {"width": "H", "next": "c_new"}}
    ops = ["gx = matmul(weight_ih, x)"]
    if window == 2:
        states["xp"] = {"width": "I", "next": "x"}
        ops = ["xx = concat(x, xp)", "gx = matmul(weight_ih, xx)"]
    gates = ["z", "f", "o"]
    return cell_from_dict(
        {
            "name": "qrnn",
            "reference": "Bradbury et al., Quasi-Recurrent Neural Networks, ICLR 2017 (fo-pooling)",
            "states": states,
            "params": {
                "weight_ih": {"shape": ["3*H", f"{window}*I"], "gates": gates},
                "bias_ih": {"shape": ["3*H"], "gates": gates},
            },
            "ops": [
                *ops,
                "a = add(gx, bias_ih)",
                "z = tanh(a.z)",
                "f = sigmoid(a.f)",
                "o = sigmoid(a.o)",
                "fc = mul(f, c)",
                "omf = one_minus(f)",
                "fz = mul(omf, z)",
                "c_new = add(fc, fz)",
                "h_new = mul(o, c_new)",
            ],
            "output": "h_new",
        },
        source=__name__,
    )
