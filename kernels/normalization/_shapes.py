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
    for name, array in statistics.items():
        if array.dtype != np.float64 or array.shape != (x.shape[1],) or not array.flags.c_contiguous:
            raise ValueError(f"{op}: expected {name} as a C-contiguous float64 array of shape "
                             f"({x.shape[1]},), got {array.dtype} of shape {tuple(array.shape)}")


def check_gradient_inputs(op, grad_y, y, inverse_std):
    check_float_arrays(op, grad_y=grad_y, y=y)
    if grad_y.shape != y.shape:
        raise ValueError(f"{op}: expected grad_y of y's shape {tuple(y.shape)}, got {tuple(grad_y.shape)}")
    check_statistics(op, y, inverse_std=inverse_std)
