"""The LSTM in plain array code, one time step at a time: the definition and the test oracle.

Written against ``xp`` (NumPy or CuPy). States are columns, as in the textbook equations: a
batch of hidden states is an (H, B) matrix, so a step reads ``W_hh @ h`` (see the package
docstring for why the saved state is kept in that orientation).
"""
from .._checks import array_module
from ._shapes import LSTMSaved, check_lstm_gradient_inputs, check_lstm_inputs


def sigmoid(xp, z):
    """1 / (1 + exp(-z)), written with exp(-|z|) so that no exp overflows."""
    e = xp.exp(-abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias):
    """``(y, h_n, c_n, saved)``: run the LSTM over ``x`` from the state ``(h0, c0)``.

    For t = 0 .. T-1, with x_t, h, c as columns (features x batch)::

        i, f, g, o = split4(W_ih x_t + W_hh h + b)
        i, f, g, o = sigmoid(i), sigmoid(f), tanh(g), sigmoid(o)
        c = f * c + i * g
        h = o * tanh(c)                      y[t] = h^T
    """
    steps, batch, _, hidden = check_lstm_inputs("lstm_forward", x, h0, c0, weight_ih, weight_hh, bias)
    xp = array_module(x)
    y = xp.empty((steps, batch, hidden), dtype=x.dtype)
    gates = xp.empty((steps, 4 * hidden, batch), dtype=x.dtype)
    cells = xp.empty((steps + 1, hidden, batch), dtype=x.dtype)
    h, cells[0] = h0.T, c0.T
    for t in range(steps):
        z = weight_ih @ x[t].T + weight_hh @ h + bias[:, None]                  # (4H, B)
        i, f, g, o = sigmoid(xp, z[:hidden]), sigmoid(xp, z[hidden:2 * hidden]), \
            xp.tanh(z[2 * hidden:3 * hidden]), sigmoid(xp, z[3 * hidden:])
        cells[t + 1] = f * cells[t] + i * g
        h = o * xp.tanh(cells[t + 1])                                            # (H, B)
        gates[t] = xp.concatenate([i, f, g, o])
        y[t] = h.T
    return y, y[-1].copy(), cells[-1].T.copy(), LSTMSaved(gates, cells)


def lstm_backward(grad_y, grad_h_n, grad_c_n, x, h0, weight_ih, weight_hh, y, saved):
    """``(grad_x, grad_h0, grad_c0, grad_weight_ih, grad_weight_hh, grad_bias)``, back through time.

    For t = T-1 .. 0, with dh and dc the gradients flowing back from step t+1 (starting as
    grad_h_n and grad_c_n) and i, f, g, o, c the saved gates and cell of step t::

        dh  = grad_y[t]^T + dh
        dc  = dc + dh * o * (1 - tanh(c)^2)
        dz  = [dc * g * i (1 - i),  dc * c_prev * f (1 - f),  dc * i * (1 - g^2),  dh * tanh(c) * o (1 - o)]
        dW_ih += dz x_t;   dW_hh += dz h_prev^T;   db += rowsum(dz);   grad_x[t] = (W_ih^T dz)^T
        dh  = W_hh^T dz;   dc = dc * f
    """
    steps, batch, _, hidden = check_lstm_gradient_inputs("lstm_backward", grad_y, grad_h_n, grad_c_n, x,
                                                         h0, weight_ih, weight_hh, y, saved)
    xp = array_module(x)
    grad_x = xp.empty_like(x)
    grad_weight_ih, grad_weight_hh = xp.zeros_like(weight_ih), xp.zeros_like(weight_hh)
    grad_bias = xp.zeros(4 * hidden, dtype=x.dtype)
    dh, dc = grad_h_n.T, grad_c_n.T
    for t in reversed(range(steps)):
        i, f, g, o = (saved.gates[t, k * hidden:(k + 1) * hidden] for k in range(4))
        c_prev, tanh_c = saved.cells[t], xp.tanh(saved.cells[t + 1])
        h_prev = y[t - 1] if t > 0 else h0                                      # (B, H)
        dh = grad_y[t].T + dh
        dc = dc + dh * o * (1 - tanh_c ** 2)
        dz = xp.concatenate([dc * g * i * (1 - i), dc * c_prev * f * (1 - f),
                             dc * i * (1 - g ** 2), dh * tanh_c * o * (1 - o)])  # (4H, B)
        grad_weight_ih += dz @ x[t]
        grad_weight_hh += dz @ h_prev
        grad_bias += dz.sum(axis=1)
        grad_x[t] = (weight_ih.T @ dz).T
        dh, dc = weight_hh.T @ dz, dc * f
    return grad_x, dh.T.copy(), dc.T.copy(), grad_weight_ih, grad_weight_hh, grad_bias
