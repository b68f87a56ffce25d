"""erf and the logistic sigmoid of float32 NumPy arrays, each in one vectorised Numba loop: the
exact GELU's and the sigmoid's hot spots.

SciPy's ``erf`` costs about 15 ns per float32 element on this machine (it goes through double
precision and libm); in the tiny GPT, with GELU in every block, that was 14% of a training step.
The loop calls ``kernels/_float32.py``'s erf, which uses Numerical Recipes' Chebyshev fit of erfc
(Press et al., *Numerical Recipes in C*, 2nd ed., section 6.2, ``erfcc``: fractional error below
1.2e-7 for every z >= 0):

    erfc(z) = t exp(-z^2 + P(t)),   t = 1 / (1 + z / 2),   P a degree-9 polynomial
    erf(x)  = sign(x) (1 - erfc(|x|))                                 for |x| >= 1
    erf(x)  = 2/sqrt(pi) sum_n (-1)^n x^(2n+1) / (n! (2n+1)), n <= 9   for |x| < 1

The series near 0 keeps erf's *relative* accuracy there (1 - erfc would round erf(1e-30) to 0);
its first omitted term is below 2e-8 at |x| = 1.

Its exponential is that module's float32 ``exp``, written without calls so that LLVM vectorises
the loop. Measured against float64 SciPy: absolute error below 2.5e-7 (``tests/kernels/test_special.py``).
float64 keeps SciPy: it is for gradient checks, where accuracy matters more than speed.

The sigmoid is that module's ``sigmoid``, 1 / (1 + exp(-z)) with the same float32 exp (relative
error 1.5e-7 down to the tails). SciPy's float32 ``expit`` goes through libm one element at a time;
in the RBM, whose Gibbs chain draws every unit through a sigmoid, it was the largest single op.
"""
import numpy as np
from numba import njit

from ._float32 import KERNEL_OPTIONS, erf, sigmoid


@njit(**KERNEL_OPTIONS)
def _erf_flat(x, out):
    for i in range(x.size):
        out[i] = erf(x[i])


@njit(**KERNEL_OPTIONS)
def _sigmoid_flat(x, out):
    for i in range(x.size):
        out[i] = sigmoid(x[i])


def erf_float32(x):
    """erf of a float32 NumPy array (any shape), as a new float32 array."""
    return _map_float32("erf_float32", _erf_flat, x)


def sigmoid_float32(x):
    """1 / (1 + exp(-x)) of a float32 NumPy array (any shape), as a new float32 array."""
    return _map_float32("sigmoid_float32", _sigmoid_flat, x)


def _map_float32(name, flat_kernel, x):
    """``flat_kernel`` over the elements of float32 ``x`` in memory order, into a new array of x's shape."""
    if x.dtype != np.float32:
        raise TypeError(f"{name}: expected a float32 array, got {x.dtype}")
    flat = np.ascontiguousarray(x).reshape(-1)
    out = np.empty_like(flat)
    flat_kernel(flat, out)
    return out.reshape(x.shape)
