"""NaN and infinity flow through every fast kernel exactly as through its NumPy reference: each
input of each family gets a NaN, then a +inf, planted in one element, and the outputs' NaN and
inf positions (and the finite values) must agree."""
import numpy as np
import pytest

from scratchgen.kernels.attention import cpu as attention_cpu, reference as attention_reference
from scratchgen.kernels.conv import cpu as conv_cpu, reference as conv_reference
from scratchgen.kernels.recurrence import cpu as lstm_cpu, reference as lstm_reference

POISONS = {"nan": np.nan, "inf": np.inf}


def assert_same_non_finite(fast, expected, what):
    for got, want in zip(fast, expected):
        if want is None:
            continue
        got, want = np.asarray(got), np.asarray(want)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=f"{what}: NaN positions")
        np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=f"{what}: +inf positions")
        np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=f"{what}: -inf positions")
        finite = np.isfinite(want)
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-4, atol=1e-5, err_msg=what)


def planted(arrays, index, value, rng):
    """``arrays`` with ``value`` written at one random element of ``arrays[index]`` (a copy)."""
    arrays = list(arrays)
    poisoned = arrays[index].copy()
    poisoned[tuple(rng.integers(0, size) for size in poisoned.shape)] = value
    arrays[index] = poisoned
    return arrays


def attention_inputs(rng):
    q, k, v = (rng.standard_normal((1, 2, 5, 4)).astype(np.float32) for _ in range(3))
    return [q, k, v, rng.standard_normal((1, 2, 5, 4)).astype(np.float32)]


@pytest.mark.parametrize("poison", POISONS)
@pytest.mark.parametrize("index, name", list(enumerate(["q", "k", "v", "grad_out"])))
@pytest.mark.parametrize("causal", [False, True])
def test_attention(poison, index, name, causal):
    rng = np.random.default_rng(index)
    q, k, v, grad_out = planted(attention_inputs(rng), index, POISONS[poison], rng)
    results = {}
    for label, kernels in (("cpu", attention_cpu), ("reference", attention_reference)):
        with np.errstate(all="ignore"):
            out, logsumexp = kernels.attention_forward(q, k, v, None, causal, 0.5)
            grads = kernels.attention_backward(grad_out, q, k, v, out, logsumexp, None, causal, 0.5)
        results[label] = (out, logsumexp, *grads)
    assert_same_non_finite(results["cpu"], results["reference"], f"attention, {poison} in {name}")


def conv_inputs(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    weight = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(4).astype(np.float32)
    return [x, weight, bias, rng.standard_normal((2, 4, 4, 4)).astype(np.float32)]


@pytest.mark.parametrize("poison", POISONS)
@pytest.mark.parametrize("index, name", list(enumerate(["x", "weight", "bias", "grad_y"])))
def test_conv(poison, index, name):
    rng = np.random.default_rng(index)
    x, weight, bias, grad_y = planted(conv_inputs(rng), index, POISONS[poison], rng)
    geometry = ((1, 1), (0, 0), (1, 1), 1)
    results = {}
    for label, kernels in (("cpu", conv_cpu), ("reference", conv_reference)):
        with np.errstate(all="ignore"):
            results[label] = (kernels.conv2d_forward(x, weight, bias, *geometry),
                              kernels.conv2d_backward_data(grad_y, weight, (6, 6), *geometry),
                              kernels.conv2d_backward_weight(grad_y, x, (3, 3), *geometry))
    assert_same_non_finite(results["cpu"], results["reference"], f"conv, {poison} in {name}")


def lstm_inputs(rng, hidden=3, batch=2, steps=4, features=2):
    draw = lambda *shape: rng.uniform(-1, 1, shape).astype(np.float32)  # noqa: E731
    return [draw(steps, batch, features), draw(batch, hidden), draw(batch, hidden),
            draw(4 * hidden, features), draw(4 * hidden, hidden), draw(4 * hidden),
            draw(steps, batch, hidden), draw(batch, hidden), draw(batch, hidden)]


@pytest.mark.parametrize("poison", POISONS)
@pytest.mark.parametrize("index, name", list(enumerate(["x", "h0", "c0", "weight_ih", "weight_hh", "bias",
                                                        "grad_y", "grad_h_n", "grad_c_n"])))
def test_lstm(poison, index, name):
    rng = np.random.default_rng(index)
    x, h0, c0, weight_ih, weight_hh, bias, grad_y, grad_h, grad_c = planted(lstm_inputs(rng), index,
                                                                            POISONS[poison], rng)
    results = {}
    for label, kernels in (("cpu", lstm_cpu), ("reference", lstm_reference)):
        with np.errstate(all="ignore"):
            y, h_n, c_n, saved = kernels.lstm_forward(x, h0, c0, weight_ih, weight_hh, bias)
            grads = kernels.lstm_backward(grad_y, grad_h, grad_c, x, h0, weight_ih, weight_hh, y, saved)
        results[label] = (y, h_n, c_n, *grads)
    assert_same_non_finite(results["cpu"], results["reference"], f"lstm, {poison} in {name}")
