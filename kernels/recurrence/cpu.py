"""The fused LSTM on the CPU: BLAS for every matrix product, one Numba kernel per step for the rest.

Forward::

    Z_x = W_ih @ x^T                        one (batched) GEMM for all steps: (T, 4H, B)
    for t in 0 .. T-1:
        Z_h = W_hh @ h                      the recurrent GEMM: (4H, B)
        forward_step: gates, c, h from Z_x[t] + Z_h + b      (short vectorised loops; y[t] = h^T)

Backward::

    for t in T-1 .. 0:
        dh += grad_y[t]^T
        backward_step: dZ[:, t] from the saved gates and cells, dh, dc   (one pass)
        dh = W_hh^T @ dZ[:, t]              the recurrent GEMM
    dW_ih = dZ @ X;  dW_hh = dZ @ H_prev;  db = rowsum(dZ);  dX = dZ^T @ W_ih   (large GEMMs)

Why these orientations: the per-step GEMM is a thin product (B = 32 columns). OpenBLAS runs
``W_hh @ h^T`` (a (4H, B) result) 1.4x faster than ``h @ W_hh^T`` (a (B, 4H) result) on the
reference workload, so states, gates, cells and dZ are feature-major (features x batch), and dZ
of all steps is one (4H, T*B) matrix so that each weight gradient is a single GEMM after the loop
(64 accumulating per-step GEMMs ran 1.3x slower).

Why the elementwise work is a Numba kernel and the matrix products are not: a hand-written
Numba GEMM does not come near BLAS, and BLAS called from inside Numba (``np.dot``, a whole
time loop in one compiled function) measured no faster than the Python loop below.

Why the transcendentals are not libm's in float32: see ``kernels/_float32.py`` (without SVML they
would stop the step loops from vectorising).
"""
import numpy as np
from numba import njit

from .._float32 import KERNEL_OPTIONS, ONE, sigmoid, tanh
from ._shapes import LSTMSaved, check_lstm_gradient_inputs, check_lstm_inputs


def lstm_forward(x, h0, c0, weight_ih, weight_hh, bias):
    """``(y, h_n, c_n, saved)``; see the module docstring for the loop."""
    steps, batch, _, hidden = check_lstm_inputs("lstm_forward", x, h0, c0, weight_ih, weight_hh, bias)
    projected = np.matmul(weight_ih, x.transpose(0, 2, 1))                     # (T, 4H, B)
    bias_columns = np.repeat(bias[:, None], batch, axis=1)                     # (4H, B)
    y = np.empty((steps, batch, hidden), dtype=x.dtype)
    gates = np.empty((steps, 4 * hidden, batch), dtype=x.dtype)
    cells = np.empty((steps + 1, hidden, batch), dtype=x.dtype)
    cells[0] = c0.T
    recurrent = np.empty((4 * hidden, batch), dtype=x.dtype)
    h = h0.T.copy()                                                            # (H, B), updated in place
    for t in range(steps):
        np.matmul(weight_hh, h, out=recurrent)
        forward_step(projected[t], recurrent, bias_columns, cells[t], gates[t], cells[t + 1], h)
        y[t] = h.T
    return y, y[-1].copy(), cells[-1].T.copy(), LSTMSaved(gates, cells)


def lstm_backward(grad_y, grad_h_n, grad_c_n, x, h0, weight_ih, weight_hh, y, saved):
    """``(grad_x, grad_h0, grad_c0, grad_weight_ih, grad_weight_hh, grad_bias)``; see the module
    docstring for the loop."""
    steps, batch, inputs, hidden = check_lstm_gradient_inputs("lstm_backward", grad_y, grad_h_n, grad_c_n,
                                                               x, h0, weight_ih, weight_hh, y, saved)
    grad_z = np.empty((4 * hidden, steps * batch), dtype=x.dtype)            # dZ of all steps
    grad_z_step = np.empty((4 * hidden, batch), dtype=x.dtype)
    grad_h = grad_h_n.T.copy()                                                 # (H, B), updated in place
    grad_c = grad_c_n.T.copy()
    for t in reversed(range(steps)):
        grad_h += grad_y[t].T
        backward_step(saved.gates[t], saved.cells[t], saved.cells[t + 1], grad_h, grad_c, grad_z_step)
        # The kernel writes one contiguous block (it vectorises best over a flat index); the
        # weight gradients want dZ of all steps side by side, so the block is copied there.
        grad_z[:, t * batch:(t + 1) * batch] = grad_z_step
        np.matmul(weight_hh.T, grad_z_step, out=grad_h)
    grad_weight_hh = grad_z[:, :batch] @ h0
    if steps > 1:  # h_prev of steps 1 .. T-1 is y[0 .. T-2]: no copy of [h0; y[:-1]] needed
        grad_weight_hh += grad_z[:, batch:] @ y[:-1].reshape((steps - 1) * batch, hidden)
    grad_weight_ih = grad_z @ x.reshape(steps * batch, inputs)
    grad_x = (grad_z.T @ weight_ih).reshape(steps, batch, inputs)
    return grad_x, grad_h.T.copy(), grad_c.T.copy(), grad_weight_ih, grad_weight_hh, grad_z.sum(axis=1)


# ---- one time step, flat loops over every (unit, sample) pair ------------------------------------
# Each array below is one step's contiguous block; a flat index j = unit * B + sample runs over
# H * B values and gate q's value sits at q * H * B + j. (A loop nest over units, then samples,
# vectorised too but ran 1.5-2.5x slower: its inner loop is only B long.)
@njit(**KERNEL_OPTIONS)
def forward_step(projected, recurrent, bias_columns, cell_prev, gates, cell, h):
    """Gates, cell and hidden state of one step, all (features, B)::

        z = projected + recurrent + bias_columns               (4H, B)
        i, f, g, o = sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)
        cell = f * cell_prev + i * g;   h = o * tanh(cell)

    Five short loops rather than one: LLVM vectorises a loop only after checking at run time that
    the arrays it writes do not overlap those it reads, and gives up above a handful of such
    pairs. One loop over all seven blocks (four gate offsets each) was past that limit and ran
    about 10 ns per (unit, sample) here, its four gates packed side by side at best; each loop
    below touches two to four blocks and runs at full vector width (about 5 ns; the whole forward at
    the DESIGN workload took 0.86-0.97x the thread-CPU time of the one-loop version in interleaved
    runs, e.g. ``python -m benchmarks.ab revisions 8c7871e WORKTREE --only 'kernel/lstm T=64'``). The
    gates and cells they pass between them are L2-resident. (``backward_step``, split the same way,
    ran 1.16x slower: it touches fewer blocks, and keeps its one loop.)
    """
    n = cell.size
    z_x, z_h, b = projected.reshape(4 * n), recurrent.reshape(4 * n), bias_columns.reshape(4 * n)
    a, c_prev, c, h = gates.reshape(4 * n), cell_prev.reshape(n), cell.reshape(n), h.reshape(n)
    for j in range(2 * n):  # i and f: two sigmoid gates side by side
        a[j] = sigmoid(z_x[j] + z_h[j] + b[j])
    # g, then o: offsets added to j (a loop over range(3 * n, 4 * n) did not vectorise)
    for j in range(n):
        a[2 * n + j] = tanh(z_x[2 * n + j] + z_h[2 * n + j] + b[2 * n + j])
    for j in range(n):
        a[3 * n + j] = sigmoid(z_x[3 * n + j] + z_h[3 * n + j] + b[3 * n + j])
    for j in range(n):
        c[j] = a[n + j] * c_prev[j] + a[j] * a[2 * n + j]
    for j in range(n):
        h[j] = a[3 * n + j] * tanh(c[j])


@njit(**KERNEL_OPTIONS)
def backward_step(gates, cell_prev, cell, grad_h, grad_c, grad_z):
    """Pre-activation gradients of one step; ``grad_c`` becomes the gradient of c_prev::

        dc = grad_c + grad_h * o * (1 - tanh(c)^2)
        grad_z = [dc g i(1-i), dc c_prev f(1-f), dc i (1-g^2), grad_h tanh(c) o(1-o)]   (4H, B)
        grad_c = dc * f
    """
    n = cell.size
    a, c_prev, c = gates.reshape(4 * n), cell_prev.reshape(n), cell.reshape(n)
    dh, dc_next, dz = grad_h.reshape(n), grad_c.reshape(n), grad_z.reshape(4 * n)
    for j in range(n):
        i, f, g, o = a[j], a[n + j], a[2 * n + j], a[3 * n + j]
        tanh_c = tanh(c[j])
        dc = dc_next[j] + dh[j] * o * (ONE - tanh_c * tanh_c)
        dz[j] = dc * g * i * (ONE - i)
        dz[n + j] = dc * c_prev[j] * f * (ONE - f)
        dz[2 * n + j] = dc * i * (ONE - g * g)
        dz[3 * n + j] = dh[j] * tanh_c * o * (ONE - o)
        dc_next[j] = dc * f
