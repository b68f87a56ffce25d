"""The fused LSTM on the GPU: cuBLAS for every matrix product, one ``numba.cuda`` kernel per step.

The plan of ``cpu`` (see its docstring), with CuPy's ``xp.matmul`` for the GEMMs::

    Z_x = W_ih @ X^T                        one GEMM for all steps: (4H, T*B)
    for t in 0 .. T-1:
        Z_h = W_hh @ h^T                    the recurrent GEMM: (4H, B)
        forward step kernel: gates, c, h from Z_x[:, t] + Z_h + b   (one thread per (unit, sample))
    for t in T-1 .. 0:
        backward step kernel: dZ[:, t] from the saved gates and cells, dh, dc
        dh = W_hh^T @ dZ[:, t]              the recurrent GEMM
    dW_ih = dZ @ X;  dW_hh = dZ @ H_prev;  db = rowsum(dZ);  dX = dZ^T @ W_ih   (large GEMMs)

A step's gate math (four activations, the cell update, their derivatives) is one kernel launch
instead of a dozen element-wise CuPy kernels, each of which would read and write all of (4H, B)
from global memory. Thread (k, b) reads the four pre-activations of unit k for sample b and writes
everything derived from them, so one pass over memory does the whole step. Consecutive threads
take consecutive samples b, matching the feature-major (4H, B) layout of the pre-activations, the
gates and the cells, so those accesses coalesce.

The GPU has fast hardware exp and tanh, so the activations are the textbook ones (``cpu`` needs
vectorisable polynomial stand-ins; see ``kernels/_float32.py``).
"""
import math

from .._checks import array_module
from .._cuda import cuda, launch_over
from ._shapes import LSTMSaved, check_lstm_gradient_inputs, check_lstm_inputs


@cuda.jit(device=True, inline="always")
def sigmoid(z, one):
    """1 / (1 + exp(-z)) from exp(-|z|), which never overflows and keeps the tails' digits.

    ``one`` is 1 in the arrays' dtype, so a float32 kernel computes in float32 throughout.
    """
    e = math.exp(-abs(z))
    return one / (one + e) if z >= 0 else e / (one + e)


@cuda.jit
def lstm_forward_step_kernel(t, projected, recurrent, bias, gates, cells, y):
    """Step ``t`` for every (unit k, sample b)::

        z = projected[:, t*B + b] + recurrent[:, b] + bias      (the four gates of unit k)
        i, f, g, o = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)
        cells[t+1, k, b] = f * cells[t, k, b] + i * g;   y[t, b, k] = o * tanh(cells[t+1, k, b])
    """
    hidden, batch = cells.shape[1], cells.shape[2]
    column, one = t * batch, cells.dtype.type(1)
    for unit in range(cuda.grid(1), hidden * batch, cuda.gridsize(1)):
        k, b = unit // batch, unit % batch
        ki, kf, kg, ko = k, hidden + k, 2 * hidden + k, 3 * hidden + k
        i = sigmoid(projected[ki, column + b] + recurrent[ki, b] + bias[ki], one)
        f = sigmoid(projected[kf, column + b] + recurrent[kf, b] + bias[kf], one)
        g = math.tanh(projected[kg, column + b] + recurrent[kg, b] + bias[kg])
        o = sigmoid(projected[ko, column + b] + recurrent[ko, b] + bias[ko], one)
        c = f * cells[t, k, b] + i * g
        gates[t, ki, b], gates[t, kf, b], gates[t, kg, b], gates[t, ko, b] = i, f, g, o
        cells[t + 1, k, b] = c
        y[t, b, k] = o * math.tanh(c)


@cuda.jit
def lstm_backward_step_kernel(t, gates, cells, grad_y, grad_h, grad_c, grad_z):
    """Pre-activation gradients of step ``t``; ``grad_c`` becomes the gradient of c_{t-1}::

        dh = grad_y[t]^T + grad_h;   dc = grad_c + dh * o * (1 - tanh(c)^2)
        grad_z[:, t*B + b] = [dc g i(1-i), dc c_prev f(1-f), dc i (1-g^2), dh tanh(c) o(1-o)]
        grad_c = dc * f
    """
    hidden, batch = cells.shape[1], cells.shape[2]
    column, one = t * batch, cells.dtype.type(1)
    for unit in range(cuda.grid(1), hidden * batch, cuda.gridsize(1)):
        k, b = unit // batch, unit % batch
        ki, kf, kg, ko = k, hidden + k, 2 * hidden + k, 3 * hidden + k
        i, f, g, o = gates[t, ki, b], gates[t, kf, b], gates[t, kg, b], gates[t, ko, b]
        tanh_c = math.tanh(cells[t + 1, k, b])
        dh = grad_y[t, b, k] + grad_h[k, b]
        dc = grad_c[k, b] + dh * o * (one - tanh_c * tanh_c)
        grad_z[ki, column + b] = dc * g * i * (one - i)
        grad_z[kf, column + b] = dc * cells[t, k, b] * f * (one - f)
        grad_z[kg, column + b] = dc * i * (one - g * g)
        grad_z[ko, column + b] = dh * tanh_c * o * (one - o)
        grad_c[k, b] = dc * f


def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias):
    """``(y, h_n, c_n, saved)``; see the module docstring for the loop."""
    steps, batch, inputs, hidden = check_lstm_inputs("lstm_forward", x, h0, c0, weight_ih, weight_hh, bias)
    xp = array_module(x)
    projected = xp.matmul(weight_ih, x.reshape(steps * batch, inputs).T)      # (4H, T*B)
    y = xp.empty((steps, batch, hidden), dtype=x.dtype)
    gates = xp.empty((steps, 4 * hidden, batch), dtype=x.dtype)
    cells = xp.empty((steps + 1, hidden, batch), dtype=x.dtype)
    cells[0] = c0.T
    h = h0
    for t in range(steps):
        recurrent = xp.matmul(weight_hh, h.T)                                   # (4H, B)
        launch_over(hidden * batch, lstm_forward_step_kernel, t, projected, recurrent, bias, gates, cells, y)
        h = y[t]
    return y, y[-1].copy(), xp.ascontiguousarray(cells[-1].T), LSTMSaved(gates, cells)


def lstm_backward(grad_y, grad_h_n, grad_c_n, x, h0, weight_ih, weight_hh, y, saved):
    """``(grad_x, grad_h0, grad_c0, grad_weight_ih, grad_weight_hh, grad_bias)``; see the module
    docstring for the loop."""
    steps, batch, inputs, hidden = check_lstm_gradient_inputs(
        "lstm_backward", grad_y, grad_h_n, grad_c_n, x, h0, weight_ih, weight_hh, y, saved)
    xp = array_module(x)
    grad_z = xp.empty((4 * hidden, steps * batch), dtype=x.dtype)             # dZ of all steps
    grad_h = xp.ascontiguousarray(grad_h_n.T)                                  # (H, B), only read
    grad_c = grad_c_n.T.copy()  # updated in place: a copy even when the transpose is already contiguous
    for t in reversed(range(steps)):
        launch_over(hidden * batch, lstm_backward_step_kernel, t, *saved, grad_y, grad_h, grad_c, grad_z)
        grad_h = xp.matmul(weight_hh.T, grad_z[:, t * batch:(t + 1) * batch])
    grad_weight_hh = xp.matmul(grad_z[:, :batch], h0)
    if steps > 1:  # h_prev of steps 1 .. T-1 is y[0 .. T-2]: no copy of [h0; y[:-1]] needed
        grad_weight_hh += xp.matmul(grad_z[:, batch:], y[:-1].reshape((steps - 1) * batch, hidden))
    grad_weight_ih = xp.matmul(grad_z, x.reshape(steps * batch, inputs))
    grad_x = xp.matmul(grad_z.T, weight_ih).reshape(steps, batch, inputs)
    return (grad_x, xp.ascontiguousarray(grad_h.T), xp.ascontiguousarray(grad_c.T), grad_weight_ih,
            grad_weight_hh, grad_z.sum(axis=1))
