"""MinimalRNN (Chen, MinimalRNN: Toward More Interpretable and Trainable Recurrent Neural
Networks, 2017, eqs. 1-3).

::

    z = tanh(W_x x + b_z)                  (the input map Phi)
    u = s(U_h h + U_z z + b_u)
    h' = u * h + (1 - u) * z

The input is mapped once, off the recurrence, and so is its product ``U_z z``: both run for k
steps at once; only ``U_h h`` is a recurrent product. Parameters ``weight_ih`` (W_x),
``bias_ih`` (b_z), ``weight_uz`` (U_z), ``weight_hh`` (U_h), ``bias_hh`` (b_u).
"""

from __future__ import annotations

from wpsim.cells.registry import register
from wpsim.cells.spec import Cell, cell_from_dict


@register
def minimalrnn() -> Cell:
    """The MinimalRNN cell.

    Examples
    --------
    >>> from wpsim.cells import get_cell, op_phases
    >>> op_phases(get_cell("minimalrnn"))["uz"]
    'before'
    """
    return cell_from_dict(
        {
            "name": "minimalrnn",
            "reference": "Chen, MinimalRNN: Toward More Interpretable and Trainable Recurrent "
            "Neural Networks, 2017",
            "states": {"h": {"width": "H", "next": "h_new"}},
            "params": {
                "weight_ih": {"shape": ["H", "I"]},
                "bias_ih": {"shape": ["H"]},
                "weight_uz": {"shape": ["H", "H"]},
                "weight_hh": {"shape": ["H", "H"]},
                "bias_hh": {"shape": ["H"]},
            },
            "ops": [
                "zx = matmul(weight_ih, x)",
                "za = add(zx, bias_ih)",
                "z = tanh(za)",
                "uz = matmul(weight_uz, z)",
                "uz_b = add(uz, bias_hh)",
                "uh = matmul(weight_hh, h)",
                "ua = add(uz_b, uh)",
                "u = sigmoid(ua)",
                "uh_keep = mul(u, h)",
                "omu = one_minus(u)",
                "uz_new = mul(omu, z)",
                "h_new = add(uh_keep, uz_new)",
            ],
            "output": "h_new",
        },
        source=__name__,
    )
