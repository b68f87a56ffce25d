"""erf and the logistic sigmoid of float32 NumPy arrays, each in one vectorised Numba loop: the
exact GELU's and the sigmoid's hot spots.

SciPy's ``erf`` costs about 15 ns per float32 element on this machine (it goes through double
precision and libm); in the tiny GPT, with GELU in every block, that was 14% of a training step.
The loop calls ``kernels/_float32.py``'s erf, two polynomials fitted for it by least squares (that
module has how) and no divide:

    erf(x)  = sign(x) (1 - exp(F(min(|x|, 4))))   for |x| >= 1,   F a degree-8 fit of log erfc on [1, 4]
    erf(x)  = x + x N(x^2)                          for |x| < 1,    N a degree-6 fit of erf(x) / x - 1

The second keeps erf's *relative* accuracy near 0 (1 - erfc would round erf(1e-30) to 0); beyond
|x| = 4, erfc is below half an ulp of 1 and erf rounds to +-1.

Its exponential is that module's float32 ``exp``, written without calls so that LLVM vectorises
the loop. Measured against float64 SciPy over every float32 in [0, 10]: within 1.1 ulp of the
correctly rounded value (``tests/kernels/test_float32.py``, ``tests/kernels/test_special.py``).
float64 keeps SciPy: it is for gradient checks, where accuracy matters more than speed.

The sigmoid is that module's ``sigmoid``, 1 / (1 + exp(-z)) with the same float32 exp (relative
error 1.5e-7 down to the tails). SciPy's float32 ``expit`` goes through libm one element at a time;
in the RBM, whose Gibbs chain draws every unit through a sigmoid, it was the largest single op.

SiLU and GELU, forward and backward, are one loop each over the same helpers, where the ops they
are made of took five to ten memory passes with a temporary array each (docs/kernels.md,
"Activations in one loop"); ``ops/elementwise.py`` has their derivations and the NumPy formulas
they are tested against:

    silu(x) = x s,  s = sigmoid(x)                 silu'(x) = s (1 + x (1 - s))
    gelu(x) = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2
                                                   gelu'(x) = Phi(x) + x phi(x),
                                                   phi(x) = exp(-x^2/2) / sqrt(2 pi)
    gelu_tanh(x) = x (1 + t) / 2,  t = tanh(u),  u = sqrt(2/pi) (x + 0.044715 x^3)
                                                   gelu_tanh'(x) = (1 + t) / 2 + x (1 - t^2) u'(x) / 2,
                                                   u'(x) = sqrt(2/pi) (1 + 3 * 0.044715 x^2)

A gradient kernel takes (x, dy) and writes dy * f'(x): the chain rule's product is in the loop too.
"""
import math

import numpy as np
from numba import njit

from ._float32 import HALF, KERNEL_OPTIONS, ONE, erf, exp, sigmoid, tanh

# fastmath "contract" lets LLVM fuse each multiply-add of the inlined polynomials into one FMA
# instruction (rounded once, so no less accurate): erf and its exp have some two dozen of them per
# element, and without the flag LLVM keeps them separate (IEEE strictness); no other fast-math flag (NaN
# and inf keep their meaning). docs/kernels.md ("Activations in one loop") has what it saves.
LOOP_OPTIONS = {**KERNEL_OPTIONS, "fastmath": {"contract"}}

SQRT_HALF = np.float32(math.sqrt(0.5))                      # erf(x / sqrt 2) as erf(x * SQRT_HALF)
INV_SQRT_2PI = np.float32(1 / math.sqrt(2 * math.pi))       # the normal density's factor
SQRT_2_OVER_PI = np.float32(math.sqrt(2 / math.pi))         # the tanh form's scale...
GELU_CUBIC = np.float32(0.044715)                           # ...and its cubic coefficient
GELU_CUBIC_SLOPE = np.float32(3 * 0.044715)                 # d/dx of GELU_CUBIC x^3, over x^2


@njit(**LOOP_OPTIONS)
def _erf_flat(x, out):
    for i in range(x.size):
        out[i] = erf(x[i])


@njit(**LOOP_OPTIONS)
def _sigmoid_flat(x, out):
    for i in range(x.size):
        out[i] = sigmoid(x[i])


@njit(**LOOP_OPTIONS)
def normal_density(x):
    """exp(-x^2 / 2) / sqrt(2 pi). A function of its own: Numba inlines exp into it once, where a second
    inlined exp in the loop that also calls erf (which has one) trips Numba's IR naming check; LLVM
    still inlines this function into the loop."""
    return INV_SQRT_2PI * exp(-HALF * x * x)


@njit(**LOOP_OPTIONS)
def _silu_flat(x, out):
    for i in range(x.size):
        out[i] = x[i] * sigmoid(x[i])


@njit(**LOOP_OPTIONS)
def _silu_grad_flat(x, grad, out):
    for i in range(x.size):
        s = sigmoid(x[i])
        out[i] = grad[i] * (s * (ONE + x[i] * (ONE - s)))


@njit(**LOOP_OPTIONS)
def _gelu_flat(x, out):
    for i in range(x.size):
        out[i] = HALF * x[i] * (ONE + erf(x[i] * SQRT_HALF))


@njit(**LOOP_OPTIONS)
def _gelu_grad_flat(x, grad, out):
    for i in range(x.size):
        v = x[i]
        cdf = HALF * (ONE + erf(v * SQRT_HALF))
        out[i] = grad[i] * (cdf + v * normal_density(v))


@njit(**LOOP_OPTIONS)
def _gelu_tanh_flat(x, out):
    for i in range(x.size):
        v = x[i]
        out[i] = HALF * v * (ONE + tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v)))


@njit(**LOOP_OPTIONS)
def _gelu_tanh_grad_flat(x, grad, out):
    for i in range(x.size):
        v = x[i]
        t = tanh(SQRT_2_OVER_PI * (v + GELU_CUBIC * v * v * v))
        inner_slope = SQRT_2_OVER_PI * (ONE + GELU_CUBIC_SLOPE * v * v)
        out[i] = grad[i] * (HALF * (ONE + t) + HALF * v * (ONE - t * t) * inner_slope)


def erf_float32(x):
    """erf of a float32 NumPy array (any shape), as a new float32 array."""
    return _map_float32("erf_float32", _erf_flat, x)


def sigmoid_float32(x):
    """1 / (1 + exp(-x)) of a float32 NumPy array (any shape), as a new float32 array."""
    return _map_float32("sigmoid_float32", _sigmoid_flat, x)


def silu_float32(x):
    """x * sigmoid(x) of a float32 NumPy array, as a new float32 array."""
    return _map_float32("silu_float32", _silu_flat, x)


def silu_grad_float32(x, grad):
    """grad * silu'(x) of two float32 arrays of one shape, as a new float32 array."""
    return _map_float32("silu_grad_float32", _silu_grad_flat, x, grad)


def gelu_float32(x):
    """x * Phi(x) (the exact GELU) of a float32 NumPy array, as a new float32 array."""
    return _map_float32("gelu_float32", _gelu_flat, x)


def gelu_grad_float32(x, grad):
    """grad * gelu'(x) of two float32 arrays of one shape, as a new float32 array."""
    return _map_float32("gelu_grad_float32", _gelu_grad_flat, x, grad)


def gelu_tanh_float32(x):
    """The tanh-approximate GELU of a float32 NumPy array, as a new float32 array."""
    return _map_float32("gelu_tanh_float32", _gelu_tanh_flat, x)


def gelu_tanh_grad_float32(x, grad):
    """grad * (the tanh-approximate GELU)'(x) of two float32 arrays of one shape, as a new float32 array."""
    return _map_float32("gelu_tanh_grad_float32", _gelu_tanh_grad_flat, x, grad)


def _map_float32(name, flat_kernel, x, *more):
    """``flat_kernel`` over the elements of float32 ``x`` (and of the arrays in ``more``, of x's shape)
    in C order, into a new array of x's shape."""
    for array in (x,) + more:
        if array.dtype != np.float32:
            raise TypeError(f"{name}: expected a float32 array, got {array.dtype}")
        if array.shape != x.shape:
            raise ValueError(f"{name}: expected arrays of one shape, got {x.shape} and {array.shape}")
    flats = [np.ascontiguousarray(array).reshape(-1) for array in (x,) + more]
    out = np.empty_like(flats[0])
    flat_kernel(*flats, out)
    return out.reshape(x.shape)
