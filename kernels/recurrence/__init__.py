"""The fused LSTM, one layer, forward and backward through time.

Three modules implement one contract:

    reference   plain array code, one step at a time with the textbook equations: the
                definition and the test oracle; runs on NumPy and CuPy arrays
    cpu         one GEMM for the input projection of all steps, one recurrent GEMM (BLAS) and
                one fused Numba gate kernel per step; backward with the matching fused kernel
                and the weight gradients as large GEMMs after the loop
    gpu         the same plan with cuBLAS and ``numba.cuda`` step kernels

Contract (the same names and argument order in every implementation)::

    lstm_forward(x, h0, c0, weight_ih, weight_hh, bias) -> (y, h_n, c_n, saved)
    lstm_backward(grad_y, grad_h_n, grad_c_n, x, h0, weight_ih, weight_hh, y, saved)
        -> (grad_x, grad_h0, grad_c0, grad_weight_ih, grad_weight_hh, grad_bias)

Shapes and layouts (all C-contiguous, one float dtype, float32 or float64; time-major)::

    x          (T, B, I)     input sequence, T >= 1
    h0, c0     (B, H)        initial hidden and cell state
    weight_ih  (4H, I)       PyTorch's layout, gate rows in the order (i, f, g, o)
    weight_hh  (4H, H)
    bias       (4H,)         bias_ih + bias_hh, summed by the caller (each gets grad_bias)
    y          (T, B, H)     hidden state of every step; h_n = y[-1]
    h_n, c_n   (B, H)        final hidden and cell state
    saved      LSTMSaved(gates, cells), exactly what the backward needs besides x, h0, the
               weights and y (the previous hidden states are y shifted by one step):
        gates  (T, 4H, B)    activated gates i, f, g, o of every step
        cells  (T+1, H, B)   cell states c0 .. c_T

The math, per step (sigma the logistic function, * elementwise, z split in four blocks of H)::

    z = W_ih x_t + W_hh h_{t-1} + b
    i, f, g, o = sigma(z_i), sigma(z_f), tanh(z_g), sigma(z_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

``saved`` is feature-major, (features, batch) per step, the orientation of the equations above
with states as columns. It is also the orientation BLAS runs fastest for the thin per-step
product here (``W_hh @ h^T``, see ``cpu``); all implementations share it, so any forward's
``saved`` feeds any backward. tanh(c_t) is not saved: the backward recomputes it, one tanh per
cell, cheaper than storing and reloading a (T, H, B) array. Stacked layers, batch_first,
dropout and initial-state defaults live above the kernels (``scratchgen.ops.recurrence``).
"""
from ._shapes import LSTMSaved  # noqa: E402,F401  (what every implementation returns as ``saved``)
