"""Elman RNN, as ``torch.nn.RNN`` (``nonlinearity`` tanh or relu).

``h' = act(W_ih x + b_ih + W_hh h + b_hh)`` (Elman 1990; PyTorch's parameters and bias placement).
"""

from __future__ import annotations

from wpsim.cells.registry import register
from wpsim.cells.spec import Cell, cell_from_dict


@register
def rnn(*, nonlinearity: str = "tanh") -> Cell:
    """The Elman cell; ``nonlinearity`` is ``"tanh"`` or ``"relu"`` (torch's option).

    Examples
    --------
    >>> from wpsim.cells import get_cell
    >>> get_cell("rnn", nonlinearity="relu").ops[-1].kind
    'relu'
    """
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity: got {nonlinearity!r}, expected 'tanh' or 'relu'")
    return cell_from_dict(
        {
            "name": "rnn",
            "reference": "torch.nn.RNN; Elman, Finding structure in time, 1990",
            "states": {"h": {"width": "H", "next": "h_new"}},
            "params": {
                "weight_ih": {"shape": ["H", "I"]},
                "weight_hh": {"shape": ["H", "H"]},
                "bias_ih": {"shape": ["H"]},
                "bias_hh": {"shape": ["H"]},
            },
            "ops": [
                "gx = matmul(weight_ih, x)",
                "gx_b = add(gx, bias_ih)",
                "gh = matmul(weight_hh, h)",
                "gh_b = add(gh, bias_hh)",
                "a = add(gx_b, gh_b)",
                f"h_new = {nonlinearity}(a)",
            ],
            "output": "h_new",
        },
        source=__name__,
    )
