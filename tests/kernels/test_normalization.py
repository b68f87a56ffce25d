"""The normalisation kernels: ``cpu`` equals ``reference`` on drawn (A, C, B) arrays (odd sizes,
one-value rows, constant rows, rows far from zero), both are as accurate as float64 allows, and the
op layer maps every norm's axes onto them.

Accuracy (float64 sums in both implementations): for a float32 input the statistics agree with a
float64 two-pass computation on the same values to 1e-12 relative (the variance of a constant row,
0, to 1e-30 absolute: the float64 rounding of its mean), and y is within one float32 ulp of the
float64 result (it is that result rounded once) or 1e-10 of a zero.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen as sg
from scratchgen import kernels
from scratchgen.kernels.normalization import cpu, reference
from scratchgen.ops.reduction import standardize

EPS = 1e-5


@st.composite
def inputs(draw, dtype=st.sampled_from([np.float32, np.float64])):
    """x (A, C, B) whose rows are one of: plain normal values, a constant, a tiny spread around a
    large offset (1000 +- 1e-3: the corrected two-pass case), or values near 1e19."""
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.sampled_from([1, 2, 3, 7, 16, 33])))
    kind = draw(st.sampled_from(["normal", "constant", "offset", "huge"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    noise = rng.standard_normal(shape)
    x = {"normal": noise, "constant": np.full(shape, 0.1), "offset": 1000 + 1e-3 * noise,
         "huge": 1e19 * noise}[kind]
    return x.astype(draw(dtype)), rng.standard_normal(shape).astype(draw(dtype))


def float64_definition(x, eps=EPS):
    """mean, variance, y of x's values in float64: the plain two-pass formulas."""
    x = x.astype(np.float64)
    mean = x.mean(axis=(0, 2), keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=(0, 2), keepdims=True)
    return mean.ravel(), variance.ravel(), (x - mean) / np.sqrt(variance + eps)


def run(implementation, x, grad_y):
    mean, variance, inverse_std = implementation.moments(x, EPS)
    y = implementation.normalize(x, mean, inverse_std)
    grad_x = implementation.normalize_backward(grad_y.astype(x.dtype), y, inverse_std)
    return mean, variance, inverse_std, y, grad_x


@settings(deadline=None, max_examples=60)
@given(inputs())
def test_cpu_equals_the_reference(drawn):
    x, grad_y = drawn
    tolerance = dict(rtol=1e-5, atol=1e-6) if x.dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for name, got, expected in zip(("mean", "variance", "inverse_std", "y", "grad_x"),
                                   run(cpu, x, grad_y), run(reference, x, grad_y)):
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, err_msg=name, **tolerance)


@st.composite
def grouped_inputs(draw):
    """GroupNorm's x (N, G, K, P) and grad_y drawn as ``inputs`` (N, G, K * P), weight and bias (G * K,)."""
    x, grad_y = draw(inputs())
    per_group = draw(st.sampled_from([k for k in (1, 2, 3) if x.shape[2] % k == 0]))
    shape = (x.shape[0], x.shape[1], per_group, x.shape[2] // per_group)
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    weight, bias = rng.standard_normal((2, shape[1] * per_group)).astype(x.dtype)
    return x.reshape(shape), grad_y.astype(x.dtype).reshape(shape), weight, bias


def run_affine(implementation, x, grad_y, weight, bias):
    mean, _, inverse_std = implementation.moments(x.reshape(1, x.shape[0] * x.shape[1], -1), EPS)
    return (implementation.affine_normalize(x, mean, inverse_std, weight, bias),
            *implementation.affine_normalize_backward(grad_y, x, mean, inverse_std, weight))


@settings(deadline=None, max_examples=60)
@given(grouped_inputs())
def test_affine_cpu_equals_the_reference(drawn):
    tolerance = dict(rtol=1e-5, atol=1e-5) if drawn[0].dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    for name, got, expected in zip(("y", "grad_x", "grad_weight", "grad_bias"), run_affine(cpu, *drawn),
                                   run_affine(reference, *drawn)):
        assert got.dtype == expected.dtype and got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, err_msg=name, **tolerance)


@settings(deadline=None, max_examples=30)
@given(grouped_inputs())
def test_affine_reference_is_normalize_then_the_affine_map(drawn):
    """The fused pair against the unfused one in float64: normalize, then * weight + bias, and back."""
    x, grad_y, weight, bias = (a.astype(np.float64) for a in drawn)
    flat = x.reshape(1, x.shape[0] * x.shape[1], -1)
    mean, _, inverse_std = reference.moments(flat, EPS)
    normalized = reference.normalize(flat, mean, inverse_std).reshape(x.shape)
    per_channel = weight.reshape(1, x.shape[1], x.shape[2], 1)
    grad_x = reference.normalize_backward((grad_y * per_channel).reshape(flat.shape),
                                          normalized.reshape(flat.shape), inverse_std).reshape(x.shape)
    expected = (normalized * per_channel + bias.reshape(per_channel.shape), grad_x,
                (grad_y * normalized).sum(axis=(0, 3)).ravel(), grad_y.sum(axis=(0, 3)).ravel())
    for name, got, want in zip(("y", "grad_x", "grad_weight", "grad_bias"),
                               run_affine(reference, x, grad_y, weight, bias), expected):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, err_msg=name)


@settings(deadline=None, max_examples=40)
@given(inputs(dtype=st.just(np.float32)))
def test_float32_is_the_float64_result_rounded_once(drawn):
    x = drawn[0]
    mean, variance, y = float64_definition(x)
    for implementation in (cpu, reference):
        got_mean, got_variance, inverse_std = implementation.moments(x, EPS)
        np.testing.assert_allclose(got_mean, mean, rtol=1e-12)
        np.testing.assert_allclose(got_variance, variance, rtol=1e-12, atol=1e-30)
        got_y = implementation.normalize(x, got_mean, inverse_std)
        assert got_y.dtype == np.float32
        one_ulp = np.spacing(np.abs(y).astype(np.float32))
        assert np.all(np.abs(got_y - y) <= one_ulp + 1e-10), implementation.__name__


def test_a_constant_row_gives_zero_and_no_nan():
    x = np.full((2, 3, 5), 0.1, dtype=np.float32)
    for implementation in (cpu, reference):
        mean, variance, inverse_std = implementation.moments(x, EPS)
        assert np.all(variance <= 1e-30) and np.allclose(inverse_std, EPS ** -0.5)
        assert np.all(np.abs(implementation.normalize(x, mean, inverse_std)) <= 1e-10)


@pytest.mark.parametrize("size", [1e200, 1e300])
def test_float64_squares_that_overflow_are_scaled(size):
    """sum (x - mean)^2 overflows float64 here; y and inverse_std stay finite (variance is inf)."""
    x = (size * np.random.default_rng(0).standard_normal((1, 2, 40)))
    mean, variance, y = float64_definition(x / size, eps=0)   # the same values scaled down; eps is negligible
    for implementation in (cpu, reference):
        got_mean, got_variance, inverse_std = implementation.moments(x, EPS)
        assert np.all(np.isinf(got_variance))
        np.testing.assert_allclose(got_mean, mean * size, rtol=1e-12)
        got_y = implementation.normalize(x, got_mean, inverse_std)
        np.testing.assert_allclose(got_y, y, rtol=1e-10, atol=1e-12)


def test_nan_and_inf_give_nan_statistics_for_their_row_only():
    x = np.random.default_rng(1).standard_normal((2, 3, 4))
    x[0, 1, 2], x[1, 2, 0] = np.nan, np.inf
    for implementation in (cpu, reference):
        mean, variance, inverse_std = implementation.moments(x, EPS)
        assert np.isfinite(mean[0]) and np.isnan(mean[1:]).all() and np.isnan(variance[1:]).all()


def test_checks_name_the_problem():
    x = np.zeros((2, 3, 4), np.float32)
    with pytest.raises(ValueError, match="expected x of shape \\(A, C, B\\)"):
        cpu.moments(np.zeros((3, 4), np.float32), EPS)
    with pytest.raises(TypeError, match="float32 or float64, got int64"):
        cpu.moments(np.zeros((2, 3, 4), np.int64), EPS)
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.moments(np.zeros((2, 3, 8), np.float32)[:, :, ::2], EPS)
    with pytest.raises(ValueError, match="at least one value per statistic"):
        cpu.moments(np.zeros((0, 3, 4), np.float32), EPS)
    with pytest.raises(ValueError, match="inverse_std as a C-contiguous float64 array of shape \\(3,\\)"):
        cpu.normalize(x, np.zeros(3), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="expected grad_y of y's shape"):
        cpu.normalize_backward(np.zeros((2, 3, 5), np.float32), x, np.zeros(3))
    grouped, weight = np.zeros((2, 3, 2, 4), np.float32), np.zeros(6, np.float32)
    with pytest.raises(ValueError, match="expected weight of shape \\(6,\\) \\(G \\* K\\)"):
        cpu.affine_normalize(grouped, np.zeros(6), np.zeros(6), np.zeros(3, np.float32), weight)
    with pytest.raises(ValueError, match="mean as a C-contiguous float64 array of shape \\(6,\\)"):
        cpu.affine_normalize_backward(grouped, grouped, np.zeros(3), np.zeros(6), weight)
    with pytest.raises(ValueError, match="expected grad_y of x's shape"):
        cpu.affine_normalize_backward(grouped[:1], grouped, np.zeros(6), np.zeros(6), weight)


@pytest.mark.parametrize("shape, axes", [((4, 6), (1,)), ((2, 3, 4, 5), (0, 2, 3)), ((2, 3, 5), (2,)),
                                         ((5,), (0,)), ((0, 4), (1,)), ((3, 4, 5), (1,)), ((2, 3, 4), (0, 2))])
def test_standardize_maps_any_axes_onto_the_kernels(shape, axes):
    """Trailing axes and all-but-one (reshapes), a middle axis and others (a transposed copy)."""
    x = np.random.default_rng(2).standard_normal(shape)
    picked = []
    kernels.implementation_listeners.append(lambda family, name: picked.append(f"{family}:{name}"))
    try:
        y, mean, variance = standardize(sg.tensor(x), axes)
    finally:
        kernels.implementation_listeners.pop()
    expected_mean = x.mean(axis=axes, keepdims=True)
    expected_variance = x.var(axis=axes, keepdims=True)
    assert set(picked) == {"normalization:cpu"}
    np.testing.assert_allclose(mean, expected_mean, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(variance, expected_variance, rtol=1e-12)
    np.testing.assert_allclose(y.numpy(), (x - expected_mean) / np.sqrt(expected_variance + EPS), rtol=1e-10,
                               atol=1e-12)
