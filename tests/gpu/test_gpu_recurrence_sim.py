"""The GPU LSTM (fused gate kernels around the GEMMs) against the NumPy reference, forward and backward.

Runs in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) or on a real GPU (see gpu_target.py).
One case has H * B > 256 so a step spans two blocks; one shrinks the grid to a single block so the
grid-stride loop wraps; large inputs saturate the gates (sigmoid and tanh at +-1).
"""
import numpy as np
import pytest
from gpu_target import array_module_or_skip, assert_close, on_device

xp = array_module_or_skip()

from scratchgen.kernels import _cuda  # noqa: E402
from scratchgen.kernels.recurrence import gpu, reference  # noqa: E402

# (T, B, I, H, input scale)
CASES = {
    "one step, one unit": (1, 1, 1, 1, 1.0),
    "odd sizes": (3, 5, 4, 7, 2.0),
    "two blocks per step": (2, 9, 3, 33, 1.0),
    "saturated gates": (2, 2, 3, 4, 30.0),
}
OUTPUT_NAMES = ("y", "h_n", "c_n", "gates", "cells")
GRADIENT_NAMES = ("grad_x", "grad_h0", "grad_c0", "grad_weight_ih", "grad_weight_hh", "grad_bias")


def lstm_arrays(case, dtype, seed=0):
    steps, batch, inputs, hidden, input_scale = case
    rng = np.random.default_rng(seed)
    draw = lambda *shape, scale=1.0: (scale * rng.uniform(-1, 1, shape)).astype(dtype)  # noqa: E731
    weight_scale = 1 / np.sqrt(hidden)
    forward = (draw(steps, batch, inputs, scale=input_scale), draw(batch, hidden), draw(batch, hidden),
               draw(4 * hidden, inputs, scale=weight_scale), draw(4 * hidden, hidden, scale=weight_scale),
               draw(4 * hidden, scale=weight_scale))
    output_grads = (draw(steps, batch, hidden), draw(batch, hidden), draw(batch, hidden))
    return forward, output_grads


def check_forward_and_backward(case, dtype):
    forward, output_grads = lstm_arrays(case, dtype)
    y, h_n, c_n, saved = gpu.lstm_forward(*on_device(xp, *forward))
    expected = reference.lstm_forward(*forward)
    for name, actual, wanted in zip(OUTPUT_NAMES, (y, h_n, c_n, *saved), (*expected[:3], *expected[3])):
        assert_close(actual, wanted, name)
    x, h0, _, weight_ih, weight_hh, _ = forward
    expected_y, expected_saved = expected[0], expected[3]
    grads = gpu.lstm_backward(*on_device(xp, *output_grads, x, h0, weight_ih, weight_hh, expected_y),
                              reference.LSTMSaved(*on_device(xp, *expected_saved)))
    wanted = reference.lstm_backward(*output_grads, x, h0, weight_ih, weight_hh, expected_y, expected_saved)
    for name, actual, wanted_grad in zip(GRADIENT_NAMES, grads, wanted):
        assert_close(actual, wanted_grad, name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_lstm_matches_reference(case, dtype):
    check_forward_and_backward(case, dtype)


def test_grid_stride_loop_covers_more_units_than_threads(monkeypatch):
    monkeypatch.setattr(_cuda, "MAX_BLOCKS", 1)
    check_forward_and_backward(CASES["two blocks per step"], np.float32)
