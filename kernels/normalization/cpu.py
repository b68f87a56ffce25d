"""The normalisation on the CPU: Numba loops that read x twice for the statistics and once for y.

The NumPy way (``reference``) makes about ten passes over memory with as many temporaries of x's
size; the norms of a small convolutional model then cost a fifth of its training step. Here, per c
(the rows x[a, c, :] are contiguous; every sum is float64, see the package docstring)::

    pass 1   total = sum x                                  -> m = total / M
    pass 2   drift = sum (x - m),  squares = sum (x - m)^2  -> mean, variance, inverse_std
             (only if squares overflowed, float64 values beyond ~1e154: pass 2 again over (x - m) / s)
    pass 3   y = (x - mean) * inverse_std                   (normalize)

and for the gradient::

    pass 1   sum dy,  sum dy * y
    pass 2   dx = inverse_std * (dy - mean(dy) - y * mean(dy * y))

Why two passes for the statistics and not Welford's one: Welford divides once per element, which
costs more than reading x again from cache, and the corrected two-pass is the more accurate of the
two. The sums vectorise because fast-math may reassociate them ("reassoc"; no "nnan"/"ninf": NaN
and inf flow through as in NumPy).
"""
import math

import numpy as np
from numba import njit

from ._shapes import check_affine_inputs, check_gradient_inputs, check_moments_input, check_statistics

LARGEST_EXPONENT = 1023
LOOP_OPTIONS = dict(cache=True, error_model="numpy", fastmath={"reassoc", "contract", "nsz", "arcp"})


def moments(x, eps):
    check_moments_input("moments", x)
    mean, variance, inverse_std = (np.empty(x.shape[1]) for _ in range(3))
    _moments_loop(x, float(eps), mean, variance, inverse_std)
    return mean, variance, inverse_std


def normalize(x, mean, inverse_std):
    check_statistics("normalize", x, mean=mean, inverse_std=inverse_std)
    y = np.empty_like(x)
    _normalize_loop(x, mean, inverse_std, y)
    return y


def normalize_backward(grad_y, y, inverse_std):
    check_gradient_inputs("normalize_backward", grad_y, y, inverse_std)
    grad_x = np.empty_like(grad_y)
    _normalize_backward_loop(grad_y, y, inverse_std, grad_x)
    return grad_x


def affine_normalize(x, mean, inverse_std, weight, bias):
    check_affine_inputs("affine_normalize", x, mean, inverse_std, weight, bias)
    y = np.empty_like(x)
    _affine_normalize_loop(x, mean, inverse_std, weight, bias, y)
    return y


def affine_normalize_backward(grad_y, x, mean, inverse_std, weight):
    check_affine_inputs("affine_normalize_backward", x, mean, inverse_std, weight, None, grad_y=grad_y)
    grad_x = np.empty_like(x)
    grad_weight, grad_bias = np.zeros(weight.shape[0]), np.zeros(weight.shape[0])
    _affine_normalize_backward_loop(grad_y, x, mean, inverse_std, weight, grad_x, grad_weight, grad_bias)
    return grad_x, grad_weight.astype(x.dtype), grad_bias.astype(x.dtype)


@njit(**LOOP_OPTIONS)
def _moments_loop(x, eps, mean, variance, inverse_std):
    outer, channels, inner = x.shape
    count = outer * inner
    for c in range(channels):
        total = 0.0
        for a in range(outer):
            for b in range(inner):
                total += np.float64(x[a, c, b])
        first_mean = total / count
        drift, squares = _centred_sums(x, c, first_mean, 1.0)
        scale = 1.0
        if math.isinf(squares) and math.isfinite(drift):   # overflowed: sum (d / s)^2 instead
            scale = _overflow_scale(x, c)
            drift, squares = _centred_sums(x, c, first_mean, 1.0 / scale)
            drift *= scale
        drift /= count
        scaled_variance = max(squares / count - (drift / scale) ** 2, 0.0)
        mean[c] = first_mean + drift
        variance[c] = scaled_variance * scale * scale
        inverse_std[c] = 1.0 / scale / math.sqrt(scaled_variance + eps / scale / scale)


@njit(inline="always", error_model="numpy", fastmath=LOOP_OPTIONS["fastmath"])
def _centred_sums(x, c, first_mean, inverse_scale):
    """(sum d, sum (d * inverse_scale)^2) over x[:, c, :], d = x - first_mean (the first
    sum is of the unscaled d only when inverse_scale is 1; the caller rescales it)."""
    drift = squares = 0.0
    for a in range(x.shape[0]):
        for b in range(x.shape[2]):
            scaled = (np.float64(x[a, c, b]) - first_mean) * inverse_scale
            drift += scaled
            squares += scaled * scaled
    return drift, squares


@njit(inline="always", error_model="numpy")
def _overflow_scale(x, c):
    """The power of two just above max |x[:, c, :]| (reference.overflow_scale, for one c)."""
    peak = 0.0
    for a in range(x.shape[0]):
        for b in range(x.shape[2]):
            peak = max(peak, abs(np.float64(x[a, c, b])))
    exponent = min(max(math.frexp(peak)[1], 0), LARGEST_EXPONENT)
    return math.ldexp(1.0, exponent)


@njit(**LOOP_OPTIONS)
def _normalize_loop(x, mean, inverse_std, y):
    for a in range(x.shape[0]):
        for c in range(x.shape[1]):
            shift, factor = mean[c], inverse_std[c]
            for b in range(x.shape[2]):
                y[a, c, b] = (np.float64(x[a, c, b]) - shift) * factor


@njit(**LOOP_OPTIONS)
def _normalize_backward_loop(grad_y, y, inverse_std, grad_x):
    outer, channels, inner = y.shape
    count = outer * inner
    for c in range(channels):
        total = total_times_y = 0.0
        for a in range(outer):
            for b in range(inner):
                grad = np.float64(grad_y[a, c, b])
                total += grad
                total_times_y += grad * np.float64(y[a, c, b])
        average_grad, average_grad_y, factor = total / count, total_times_y / count, inverse_std[c]
        for a in range(outer):
            for b in range(inner):
                grad_x[a, c, b] = factor * (np.float64(grad_y[a, c, b]) - average_grad
                                            - np.float64(y[a, c, b]) * average_grad_y)


@njit(**LOOP_OPTIONS)
def _affine_normalize_loop(x, mean, inverse_std, weight, bias, y):
    batch, groups, per_group, positions = x.shape
    for n in range(batch):
        for g in range(groups):
            shift, factor = mean[n * groups + g], inverse_std[n * groups + g]
            for k in range(per_group):
                c = g * per_group + k
                scale, offset = factor * np.float64(weight[c]), np.float64(bias[c])
                for p in range(positions):
                    y[n, g, k, p] = (np.float64(x[n, g, k, p]) - shift) * scale + offset


@njit(**LOOP_OPTIONS)
def _affine_normalize_backward_loop(grad_y, x, mean, inverse_std, weight, grad_x, grad_weight, grad_bias):
    """Per (n, g) two passes over (grad_y, x): the sums, then grad_x. With g = grad_y w[c] the group's
    sums are sum g = sum_c w[c] sum grad_y and sum g xhat = sum_c w[c] sum grad_y xhat, the per-channel
    sums that grad_bias and grad_weight (float64, zeroed by the caller) accumulate over n anyway."""
    batch, groups, per_group, positions = x.shape
    count = per_group * positions
    for n in range(batch):
        for g in range(groups):
            shift, factor = mean[n * groups + g], inverse_std[n * groups + g]
            total = total_times_normalized = 0.0
            for k in range(per_group):
                c = g * per_group + k
                plain = times_normalized = 0.0
                for p in range(positions):
                    grad = np.float64(grad_y[n, g, k, p])
                    plain += grad
                    times_normalized += grad * ((np.float64(x[n, g, k, p]) - shift) * factor)
                grad_bias[c] += plain
                grad_weight[c] += times_normalized
                total += np.float64(weight[c]) * plain
                total_times_normalized += np.float64(weight[c]) * times_normalized
            average, average_times_normalized = total / count, total_times_normalized / count
            for k in range(per_group):
                w = np.float64(weight[g * per_group + k])
                for p in range(positions):
                    normalized = (np.float64(x[n, g, k, p]) - shift) * factor
                    grad_x[n, g, k, p] = factor * (np.float64(grad_y[n, g, k, p]) * w - average
                                                   - normalized * average_times_normalized)
