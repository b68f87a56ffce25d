"""LSTM kernels: ``cpu`` against ``reference`` on drawn configurations (T = 1, batch 1, odd sizes,
stacked layers, given or zero initial state), ``reference`` against PyTorch, the float32
activations of the CPU kernels, saturation, long sequences, and the boundary checks."""
import copy

import numpy as np
import pytest
from conftest import require_torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from scratchgen.kernels import _float32 as activations
from scratchgen.kernels.recurrence import cpu, reference

TOLERANCES = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
GRADIENT_NAMES = ("grad_x", "grad_h0", "grad_c0", "grad_weight_ih", "grad_weight_hh", "grad_bias")


@st.composite
def lstm_configs(draw):
    return dict(steps=draw(st.sampled_from([1, 2, 3, 7])), batch=draw(st.integers(1, 4)),
                inputs=draw(st.integers(1, 6)), hidden=draw(st.integers(1, 9)),
                layers=draw(st.integers(1, 3)), initial_state=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


def lstm_arrays(config, dtype, input_scale=2.0):
    """Per-layer (h0, c0, weight_ih, weight_hh, bias), the input and the output gradients."""
    rng = np.random.default_rng(config["seed"])
    hidden, batch = config["hidden"], config["batch"]
    scale = 1 / np.sqrt(hidden)  # PyTorch's init range
    draw = lambda *shape, s=1.0: (s * rng.uniform(-1, 1, shape)).astype(dtype)  # noqa: E731
    layers, inputs = [], config["inputs"]
    for _ in range(config["layers"]):
        state = (draw(batch, hidden), draw(batch, hidden)) if config["initial_state"] else \
            (np.zeros((batch, hidden), dtype), np.zeros((batch, hidden), dtype))
        layers.append(state + (draw(4 * hidden, inputs, s=scale), draw(4 * hidden, hidden, s=scale),
                               draw(4 * hidden, s=scale)))
        inputs = hidden
    x = draw(config["steps"], batch, config["inputs"], s=input_scale)
    grad_y = draw(config["steps"], batch, hidden)
    grad_states = [(draw(batch, hidden), draw(batch, hidden)) for _ in layers]
    return x, layers, grad_y, grad_states


def run_stack(kernels, x, layers, grad_y, grad_states):
    """Forward through every layer, then backward through them all: every output and gradient."""
    results, tapes = [], []
    for h0, c0, weight_ih, weight_hh, bias in layers:
        y, h_n, c_n, saved = kernels.lstm_forward(x, h0, c0, weight_ih, weight_hh, bias)
        results += [("y", y), ("h_n", h_n), ("c_n", c_n), ("gates", saved.gates), ("cells", saved.cells)]
        tapes.append((x, h0, weight_ih, weight_hh, y, saved))
        x = y
    for (x, h0, weight_ih, weight_hh, y, saved), (grad_h_n, grad_c_n) in zip(tapes[::-1], grad_states[::-1]):
        grads = kernels.lstm_backward(grad_y, grad_h_n, grad_c_n, x, h0, weight_ih, weight_hh, y, saved)
        results += list(zip(GRADIENT_NAMES, grads))
        grad_y = grads[0]
    return results


@settings(max_examples=40)
@given(config=lstm_configs(), dtype=st.sampled_from([np.float32, np.float64]))
def test_cpu_matches_reference(config, dtype):
    arrays = lstm_arrays(config, dtype)
    untouched = copy.deepcopy(arrays)
    for (name, ours), (_, expected) in zip(run_stack(cpu, *arrays), run_stack(reference, *arrays)):
        assert ours.dtype == dtype and ours.shape == expected.shape, name
        np.testing.assert_allclose(ours, expected, **TOLERANCES[dtype], err_msg=name)
    # no kernel writes into its inputs (a transposed (1, H) state is contiguous: easy to alias)
    for before, after in zip(_leaves(untouched), _leaves(arrays)):
        np.testing.assert_array_equal(before, after)


def _leaves(nested):
    if isinstance(nested, np.ndarray):
        return [nested]
    return [leaf for item in nested for leaf in _leaves(item)]


@settings(max_examples=30)
@given(hidden=st.integers(1, 9), batch=st.integers(1, 5), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_forward_step_writes_every_gate_cell_and_state(hidden, batch, dtype, seed):
    """The step kernel's loops (one per gate block, then the cell, then h) cover every element:
    its outputs start as NaN and must equal the formula computed in NumPy."""
    rng = np.random.default_rng(seed)
    projected, recurrent, bias_columns = (rng.uniform(-3, 3, (4 * hidden, batch)).astype(dtype) for _ in range(3))
    cell_prev = rng.uniform(-1, 1, (hidden, batch)).astype(dtype)
    gates, cell, h = (np.full(shape, np.nan, dtype) for shape in ((4 * hidden, batch), (hidden, batch),
                                                                  (hidden, batch)))
    cpu.forward_step(projected, recurrent, bias_columns, cell_prev, gates, cell, h)
    z = (projected.astype(np.float64) + recurrent + bias_columns).reshape(4, hidden, batch)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    i, f, g, o = sigmoid(z[0]), sigmoid(z[1]), np.tanh(z[2]), sigmoid(z[3])
    expected_cell = f * cell_prev + i * g
    for name, ours, expected in (("gates", gates, np.concatenate([i, f, g, o])), ("cell", cell, expected_cell),
                                 ("h", h, o * np.tanh(expected_cell))):
        np.testing.assert_allclose(ours, expected, **TOLERANCES[dtype], err_msg=name)


@settings(max_examples=15)
@given(config=lstm_configs(), input_scale=st.sampled_from([30.0, 1e4]))
def test_cpu_matches_reference_when_saturated(config, input_scale):
    """Large inputs drive the first layer's gates into saturation (pre-activations up to ~1e4):
    the float32 tanh must stay in [-1, 1] and nothing may overflow.

    grad_weight_ih = dZ x^T carries x's scale: there, float32 rounding in a saturated gate's
    derivative (1 - g^2 is rounding noise in *both* implementations) is magnified by |x|, so its
    atol scales with the input (the same check as on the gradient of W_ih * input_scale).
    """
    arrays = lstm_arrays(config, np.float32, input_scale=input_scale)
    for (name, ours), (_, expected) in zip(run_stack(cpu, *arrays), run_stack(reference, *arrays)):
        assert np.all(np.isfinite(ours)), name
        atol = 1e-5 * (input_scale if name == "grad_weight_ih" else 1)
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=atol, err_msg=name)


@settings(max_examples=20)
@given(config=lstm_configs())
def test_reference_matches_torch(config):
    torch = require_torch()
    config = dict(config, layers=1)
    x, [layer], grad_y, [(grad_h_n, grad_c_n)] = lstm_arrays(config, np.float64)
    h0, c0, weight_ih, weight_hh, bias = layer
    lstm = torch.nn.LSTM(config["inputs"], config["hidden"]).double()
    with torch.no_grad():
        lstm.weight_ih_l0.copy_(torch.tensor(weight_ih))
        lstm.weight_hh_l0.copy_(torch.tensor(weight_hh))
        lstm.bias_ih_l0.copy_(torch.tensor(bias))
        lstm.bias_hh_l0.zero_()
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0[None], c0[None]))
    ty, (th_n, tc_n) = lstm(tx, (th0, tc0))
    torch.autograd.backward([ty, th_n, tc_n],
                            [torch.tensor(g) for g in (grad_y, grad_h_n[None], grad_c_n[None])])
    y, h_n, c_n, saved = reference.lstm_forward(x, h0, c0, weight_ih, weight_hh, bias)
    grads = reference.lstm_backward(grad_y, grad_h_n, grad_c_n, x, h0, weight_ih, weight_hh, y, saved)
    expected = (ty, th_n[0], tc_n[0], tx.grad, th0.grad[0], tc0.grad[0], lstm.weight_ih_l0.grad,
                lstm.weight_hh_l0.grad, lstm.bias_ih_l0.grad)
    for ours, theirs in zip((y, h_n, c_n) + grads, expected):
        np.testing.assert_allclose(ours, theirs.detach().numpy(), **TOLERANCES[np.float64])


@njit(cache=True)
def _activations_of(values, tanh_out, sigmoid_out):
    for j in range(values.size):
        tanh_out[j], sigmoid_out[j] = activations.tanh(values[j]), activations.sigmoid(values[j])


def test_float32_activations_are_accurate_bounded_and_keep_nan():
    special = [0.0, 1e-30, 1e-8, np.nan, np.inf, -np.inf]
    values = np.concatenate([np.linspace(-80, 80, 400_001), special]).astype(np.float32)
    tanh, sigmoid = np.empty_like(values), np.empty_like(values)
    _activations_of(values, tanh, sigmoid)
    finite = np.isfinite(values)
    exact = values[finite].astype(np.float64)
    exact_tanh, exact_sigmoid = np.tanh(exact), np.exp(-np.logaddexp(0, -exact))
    # NumPy's own float32 tanh is within 1 ulp; ours within 6 ulp of 1, and relative near 0
    assert np.max(np.abs(tanh[finite] - exact_tanh)) < 5e-7
    assert np.max(np.abs(tanh[finite] - exact_tanh) / np.maximum(np.abs(exact_tanh), 1e-30)) < 1e-6
    # the sigmoid keeps its relative precision in the tails (a saturated gate's gradient uses it)
    assert np.max(np.abs(sigmoid[finite] - exact_sigmoid) / exact_sigmoid) < 5e-7
    assert np.all(np.abs(tanh[~np.isnan(values)]) <= 1)
    assert np.isnan(tanh[-3]) and np.isnan(sigmoid[-3])  # a diverged run must not look healthy
    assert (tanh[-2], tanh[-1], sigmoid[-2]) == (1, -1, 1) and 0 <= sigmoid[-1] < 1e-38  # exp(-z) clamped


def test_long_sequence_runs_and_stays_finite():
    """1,000 steps forward and back: no recursion, no blow-up of the saved state."""
    config = dict(steps=1000, batch=2, inputs=3, hidden=5, layers=1, initial_state=True, seed=0)
    for name, value in run_stack(cpu, *lstm_arrays(config, np.float32)):
        assert np.all(np.isfinite(value)), name


def test_saved_state_is_interchangeable():
    """Every implementation writes ``saved`` in one layout, so any backward reads any forward's."""
    config = dict(steps=4, batch=3, inputs=2, hidden=5, layers=1, initial_state=True, seed=1)
    x, [layer], grad_y, [(grad_h_n, grad_c_n)] = lstm_arrays(config, np.float64)
    h0, c0, weight_ih, weight_hh, bias = layer
    y, _, _, saved = reference.lstm_forward(x, h0, c0, weight_ih, weight_hh, bias)
    args = (grad_y, grad_h_n, grad_c_n, x, h0, weight_ih, weight_hh, y, saved)
    for ours, expected in zip(cpu.lstm_backward(*args), reference.lstm_backward(*args)):
        np.testing.assert_allclose(ours, expected, **TOLERANCES[np.float64])


@pytest.mark.parametrize("kernels", [reference, cpu], ids=["reference", "cpu"])
def test_boundary_checks_say_what_they_got(kernels):
    config = dict(steps=2, batch=3, inputs=4, hidden=5, layers=1, initial_state=True, seed=2)
    x, [(h0, c0, weight_ih, weight_hh, bias)], _, _ = lstm_arrays(config, np.float32)
    with pytest.raises(TypeError, match="lstm_forward: expected all inputs of one dtype"):
        kernels.lstm_forward(x, h0, c0, weight_ih.astype(np.float64), weight_hh, bias)
    with pytest.raises(ValueError, match="lstm_forward: expected x to be C-contiguous"):
        kernels.lstm_forward(np.asfortranarray(x), h0, c0, weight_ih, weight_hh, bias)
    with pytest.raises(ValueError, match=r"lstm_forward: expected weight_ih of shape \(20, 4\), got \(20, 3"):
        kernels.lstm_forward(x, h0, c0, weight_ih[:, :3].copy(), weight_hh, bias)
    with pytest.raises(ValueError, match=r"lstm_forward: expected h0 of shape \(3, 5\), got \(1, 3, 5\)"):
        kernels.lstm_forward(x, h0[None], c0, weight_ih, weight_hh, bias)
    with pytest.raises(ValueError, match="lstm_forward: expected x with at least one time step"):
        kernels.lstm_forward(x[:0], h0, c0, weight_ih, weight_hh, bias)
    y, h_n, c_n, saved = kernels.lstm_forward(x, h0, c0, weight_ih, weight_hh, bias)
    with pytest.raises(ValueError, match=r"lstm_backward: expected grad_y of shape \(2, 3, 5\), got \(1, "):
        kernels.lstm_backward(y[:1], h_n, c_n, x, h0, weight_ih, weight_hh, y, saved)
