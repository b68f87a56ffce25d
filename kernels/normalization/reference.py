"""The normalisation in array code (NumPy or CuPy): the definition and the test oracle.

Each line is one array operation over (A, C, B) with the statistics broadcast as (1, C, 1); see the
package docstring for the math and the numerics.
"""
import numpy as np

from .._checks import array_module
from ._shapes import check_affine_inputs, check_gradient_inputs, check_moments_input, check_statistics

AXES = (0, 2)             # the reduced axes of (A, C, B)
LARGEST_EXPONENT = 1023   # 2^1023 is the largest power of two a float64 holds


def _per_c(statistic):
    return statistic[None, :, None]


def overflow_scale(xp, peak):
    """The power of two just above ``peak`` = max |x| (1 when peak < 1: only large values need it).

    Dividing by it is exact, and |x - mean| / s < 2, so no square can overflow."""
    exponent = xp.clip(xp.frexp(peak)[1], 0, LARGEST_EXPONENT)
    return xp.ldexp(xp.ones_like(peak), exponent)


def moments(x, eps):
    """``(mean, variance, inverse_std)``, each (C,) float64: two passes (the mean, then the centred
    values' drift and squares), in float64, scaled against overflow."""
    check_moments_input("moments", x)
    # variance may overflow to inf (inverse_std does not), and inf in x makes NaN: both are results
    with np.errstate(over="ignore", invalid="ignore"):
        return _moments(array_module(x), x, eps)


def _moments(xp, x, eps):
    wide = x.astype(xp.float64)
    first_mean = wide.mean(axis=AXES)
    centred = wide - _per_c(first_mean)
    drift = centred.mean(axis=AXES)                   # the first mean's rounding error
    scale = overflow_scale(xp, xp.abs(wide).max(axis=AXES))
    scaled = centred / _per_c(scale)
    scaled_variance = xp.maximum((scaled * scaled).mean(axis=AXES) - (drift / scale) ** 2, 0)
    variance = scaled_variance * scale * scale
    inverse_std = 1 / scale / xp.sqrt(scaled_variance + eps / scale / scale)
    return first_mean + drift, variance, inverse_std


def normalize(x, mean, inverse_std):
    """y = (x - mean) * inverse_std, computed in float64 and rounded once to x's dtype."""
    check_statistics("normalize", x, mean=mean, inverse_std=inverse_std)
    return ((x - _per_c(mean)) * _per_c(inverse_std)).astype(x.dtype)


def normalize_backward(grad_y, y, inverse_std):
    """grad_x = inverse_std * (dy - mean(dy) - y * mean(dy * y)), means in float64."""
    check_gradient_inputs("normalize_backward", grad_y, y, inverse_std)
    xp = array_module(y)
    grad, wide_y = grad_y.astype(xp.float64), y.astype(xp.float64)
    average_grad = grad.mean(axis=AXES)
    average_grad_y = (grad * wide_y).mean(axis=AXES)
    grad_x = (grad - _per_c(average_grad) - wide_y * _per_c(average_grad_y)) * _per_c(inverse_std)
    return grad_x.astype(grad_y.dtype)


def _per_group_channel(statistic, shape):
    """A (N * G,) statistic broadcast over x (N, G, K, P)."""
    return statistic.reshape(shape[0], shape[1], 1, 1)


def _per_channel(parameter, shape):
    """A (G * K,) weight or bias broadcast over x (N, G, K, P)."""
    return parameter.reshape(1, shape[1], shape[2], 1)


def _normalized(x, mean, inverse_std):
    """xhat = (x - mean[n, g]) * inverse_std[n, g] in float64, x (N, G, K, P)."""
    wide = x.astype(array_module(x).float64)
    return (wide - _per_group_channel(mean, x.shape)) * _per_group_channel(inverse_std, x.shape)


def affine_normalize(x, mean, inverse_std, weight, bias):
    """y = (x - mean[n, g]) * inverse_std[n, g] * weight[g, k] + bias[g, k], in float64 and rounded once."""
    check_affine_inputs("affine_normalize", x, mean, inverse_std, weight, bias)
    normalized = _normalized(x, mean, inverse_std)
    return (normalized * _per_channel(weight, x.shape) + _per_channel(bias, x.shape)).astype(x.dtype)


def affine_normalize_backward(grad_y, x, mean, inverse_std, weight):
    """``(grad_x, grad_weight, grad_bias)`` of ``affine_normalize``, with xhat = (x - mean) * inverse_std
    and g = grad_y * weight, means over (k, p) and sums over (n, p), all in float64::

        grad_x = inverse_std * (g - mean(g) - xhat * mean(g * xhat))
        grad_weight = sum grad_y * xhat         grad_bias = sum grad_y
    """
    check_affine_inputs("affine_normalize_backward", x, mean, inverse_std, weight, None, grad_y=grad_y)
    xp = array_module(x)
    shape, within = x.shape, (2, 3)
    grad, normalized = grad_y.astype(xp.float64), _normalized(x, mean, inverse_std)
    scaled = grad * _per_channel(weight, shape)
    grad_x = (scaled - scaled.mean(axis=within, keepdims=True)
              - normalized * (scaled * normalized).mean(axis=within, keepdims=True))
    grad_x *= _per_group_channel(inverse_std, shape)
    grad_weight = (grad * normalized).sum(axis=(0, 3)).reshape(-1)
    grad_bias = grad.sum(axis=(0, 3)).reshape(-1)
    return grad_x.astype(x.dtype), grad_weight.astype(x.dtype), grad_bias.astype(x.dtype)
