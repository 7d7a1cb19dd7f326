"""Reference implementations of SRU, QRNN, MGU, IndRNN and MinimalRNN written straight from their papers'
equations in PyTorch (autograd gives every gradient), independently of wpsim.cells' declarations
and of kernels.declared. One layer, one direction, time-major; each function takes the input
(T, B, I), the initial states and the parameters (torch tensors, the declarations' names and
layouts, which the docstrings spell out) and returns the outputs (T, B, H) and final states.
"""

from __future__ import annotations

import torch


def sru(x, states, p):
    """Lei et al., EMNLP 2018, eqs. 3-6, with the highway input projected (W_p x):

    f_t = s(W_f x_t + v_f * c_{t-1} + b_f)
    c_t = f_t * c_{t-1} + (1 - f_t) * (W x_t)
    r_t = s(W_r x_t + v_r * c_{t-1} + b_r)
    h_t = r_t * c_t + (1 - r_t) * (W_p x_t)

    ``weight_ih`` = [W; W_f; W_r; W_p], ``weight_c`` = [v_f; v_r], ``bias`` = [b_f; b_r].
    """
    c = states["c"]
    W, W_f, W_r, W_p = p["weight_ih"].chunk(4, dim=0)
    v_f, v_r = p["weight_c"].chunk(2)
    b_f, b_r = p["bias"].chunk(2)
    outputs = []
    for x_t in x:
        f = torch.sigmoid(x_t @ W_f.T + v_f * c + b_f)
        r = torch.sigmoid(x_t @ W_r.T + v_r * c + b_r)
        c_t = f * c + (1 - f) * (x_t @ W.T)
        outputs.append(r * c_t + (1 - r) * (x_t @ W_p.T))
        c = c_t
    return torch.stack(outputs), {"c": c}


def qrnn(x, states, p, window):
    """Bradbury et al., ICLR 2017, eqs. 1-4 (fo-pooling) with a masked convolution of width
    ``window`` over time (``x_{-1}`` is the state ``xp``, zero padding by default):

    Z = tanh(W_z * X + b_z),  F = s(W_f * X + b_f),  O = s(W_o * X + b_o)
    c_t = f_t * c_{t-1} + (1 - f_t) * z_t,  h_t = o_t * c_t

    ``weight_ih`` = [W_z; W_f; W_o], its columns [taps on x_t, taps on x_{t-1}].
    """
    T = x.shape[0]
    if window == 2:
        earlier = torch.cat([states["xp"][None], x[:-1]])
        columns = torch.cat([x, earlier], dim=-1)
    else:
        columns = x
    W_z, W_f, W_o = p["weight_ih"].chunk(3, dim=0)
    b_z, b_f, b_o = p["bias_ih"].chunk(3)
    Z = torch.tanh(columns @ W_z.T + b_z)
    F = torch.sigmoid(columns @ W_f.T + b_f)
    O = torch.sigmoid(columns @ W_o.T + b_o)
    c = states["c"]
    outputs = []
    for t in range(T):
        c = F[t] * c + (1 - F[t]) * Z[t]
        outputs.append(O[t] * c)
    final = {"c": c}
    if window == 2:
        final["xp"] = x[-1]
    return torch.stack(outputs), final


def mgu(x, states, p):
    """Zhou et al. 2016, eqs. 8-10 (the Minimal Gated Unit):

    f_t = s(W_f [h_{t-1}, x_t] + b_f)
    h~_t = tanh(W_h [f_t * h_{t-1}, x_t] + b_h)
    h_t = (1 - f_t) * h_{t-1} + f_t * h~_t

    ``W_f`` = [weight_hh_f, weight_ih_f] by columns, likewise ``W_h``; ``bias`` = [b_f; b_h].
    """
    h = states["h"]
    W_fx, W_hx = p["weight_ih"].chunk(2, dim=0)
    W_fh, W_hh = p["weight_hh"].chunk(2, dim=0)
    b_f, b_h = p["bias"].chunk(2)
    W_f = torch.cat([W_fh, W_fx], dim=1)
    W_h = torch.cat([W_hh, W_hx], dim=1)
    outputs = []
    for x_t in x:
        f = torch.sigmoid(torch.cat([h, x_t], dim=-1) @ W_f.T + b_f)
        candidate = torch.tanh(torch.cat([f * h, x_t], dim=-1) @ W_h.T + b_h)
        h = (1 - f) * h + f * candidate
        outputs.append(h)
    return torch.stack(outputs), {"h": h}


def indrnn(x, states, p, nonlinearity="relu"):
    """Li et al., CVPR 2018, eq. 2: ``h_t = act(W x_t + u * h_{t-1} + b)``.

    ``weight_ih`` = W, ``weight_hh`` = u, ``bias_ih`` = b.
    """
    act = torch.relu if nonlinearity == "relu" else torch.tanh
    h = states["h"]
    outputs = []
    for x_t in x:
        h = act(x_t @ p["weight_ih"].T + p["weight_hh"] * h + p["bias_ih"])
        outputs.append(h)
    return torch.stack(outputs), {"h": h}


def minimalrnn(x, states, p):
    """Chen 2017, eqs. 1-3, with the input map Phi(x) = tanh(W_x x + b_z):

    z_t = Phi(x_t),  u_t = s(U_h h_{t-1} + U_z z_t + b_u),  h_t = u_t * h_{t-1} + (1 - u_t) * z_t

    ``weight_ih`` = W_x, ``bias_ih`` = b_z, ``weight_uz`` = U_z, ``weight_hh`` = U_h,
    ``bias_hh`` = b_u.
    """
    h = states["h"]
    outputs = []
    for x_t in x:
        z = torch.tanh(x_t @ p["weight_ih"].T + p["bias_ih"])
        u = torch.sigmoid(h @ p["weight_hh"].T + z @ p["weight_uz"].T + p["bias_hh"])
        h = u * h + (1 - u) * z
        outputs.append(h)
    return torch.stack(outputs), {"h": h}


def reference(name: str, options: dict):
    """The reference function of a registered cell name and its options."""
    if name == "qrnn":
        return lambda x, s, p: qrnn(x, s, p, options.get("window", 1))
    if name == "indrnn":
        return lambda x, s, p: indrnn(x, s, p, options.get("nonlinearity", "relu"))
    return {"sru": sru, "mgu": mgu, "minimalrnn": minimalrnn}[name]
