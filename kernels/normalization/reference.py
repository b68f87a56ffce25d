"""The normalisation in array code (NumPy or CuPy): the definition and the test oracle.

Each line is one array operation over (A, C, B) with the statistics broadcast as (1, C, 1); see the
package docstring for the math and the numerics.
"""
import numpy as np

from .._checks import array_module
from ._shapes import check_gradient_inputs, check_moments_input, check_statistics

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
