"""The boundary checks every normalisation implementation shares."""
import numpy as np

from .._checks import check_float_arrays, check_ndim


def check_moments_input(op, x):
    """Check x (A, C, B); returns its dtype."""
    dtype = check_float_arrays(op, x=x)
    check_ndim(op, "x", x, 3, "(A, C, B): statistics over A and B for each c")
    if x.shape[0] * x.shape[2] == 0 and x.shape[1] > 0:
        raise ValueError(f"{op}: expected at least one value per statistic (A * B >= 1), got x of shape "
                         f"{tuple(x.shape)}")
    return dtype


def check_statistics(op, x, **statistics):
    """Check x (A, C, B) and the per-c statistics: (C,) float64, C-contiguous."""
    check_moments_input(op, x)
    _check_vectors(op, x.shape[1], statistics)


def _check_vectors(op, length, statistics):
    for name, array in statistics.items():
        if array.dtype != np.float64 or array.shape != (length,) or not array.flags.c_contiguous:
            raise ValueError(f"{op}: expected {name} as a C-contiguous float64 array of shape "
                             f"({length},), got {array.dtype} of shape {tuple(array.shape)}")


def check_gradient_inputs(op, grad_y, y, inverse_std):
    check_float_arrays(op, grad_y=grad_y, y=y)
    if grad_y.shape != y.shape:
        raise ValueError(f"{op}: expected grad_y of y's shape {tuple(y.shape)}, got {tuple(grad_y.shape)}")
    check_statistics(op, y, inverse_std=inverse_std)


def check_affine_inputs(op, x, mean, inverse_std, weight, bias, **grads):
    """Check x (N, G, K, P) (and a gradient of its shape), the (N * G,) float64 statistics and the
    (G * K,) weight and bias of x's dtype (bias may be None)."""
    check_float_arrays(op, x=x, weight=weight, bias=bias, **grads)
    check_ndim(op, "x", x, 4, "(N, G, K, P): statistics per (n, g), weight and bias per (g, k)")
    for name, grad in grads.items():
        if grad.shape != x.shape:
            raise ValueError(f"{op}: expected {name} of x's shape {tuple(x.shape)}, got {tuple(grad.shape)}")
    if x.shape[2] * x.shape[3] == 0 and x.shape[0] * x.shape[1] > 0:
        raise ValueError(f"{op}: expected at least one value per statistic (K * P >= 1), got x of shape "
                         f"{tuple(x.shape)}")
    _check_vectors(op, x.shape[0] * x.shape[1], dict(mean=mean, inverse_std=inverse_std))
    for name, parameter in (("weight", weight), ("bias", bias)):
        if parameter is not None and parameter.shape != (x.shape[1] * x.shape[2],):
            raise ValueError(f"{op}: expected {name} of shape ({x.shape[1] * x.shape[2]},) (G * K), got "
                             f"{tuple(parameter.shape)}")
