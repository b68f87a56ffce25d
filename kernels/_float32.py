"""exp, tanh, sigmoid and erf for the Numba kernels: libm in float64, vectorisable code in float32.

One module for every CPU kernel family's float32 transcendentals (the LSTM's gates, erf for the
exact GELU, attention's softmax exp), each tested against float64 over its whole range
in ``tests/kernels/test_float32.py``.

Why not ``math.tanh`` / ``math.exp`` everywhere: this Numba build has no SVML, so inside a loop
they are scalar libm calls, and one such call stops LLVM from vectorising the whole loop (a
fused LSTM step with libm tanh ran 3x slower than the same step done with NumPy's ufuncs).
The float32 versions below are only multiplies, adds, compares, at most one divide and a bit cast, so
the step kernels vectorise and cost a small fraction of the step's GEMM. float64 keeps libm: it
is for gradient checks, where accuracy matters and speed does not.

    tanh(x)    = x P(x^2) / Q(x^2) on |x| <= 9, clamped to [-1, 1]   (relative error near 0,
                 absolute 3.5e-7 = 6 ulp of 1 at worst; beyond 9, tanh rounds to +-1 anyway)
    sigmoid(z) = 1 / (1 + exp(-z))                                   (relative error 1.5e-7
                 everywhere above -80: the tiny tails keep their digits, which (1 + tanh(z/2)) / 2
                 would lose, and a gradient through a saturated gate would show it)
    exp(x)     = 2^t exp(r),  t = round(x / ln 2),  |r| <= ln(2) / 2, exp(r) by its Taylor series
                 to r^7 (truncation 5e-9); 2^t is built in the exponent bits of a float32;
                 arguments are clamped to [-87, 88] so 2^t stays a normal number, and beyond
                 the clamps the result is what IEEE exp gives: exactly 0 below -87 (so masked
                 -inf attention scores weigh nothing), inf above 88
    erf(x)     = sign(x) (1 - exp(F(|x|))) for |x| >= 1, F a degree-8 fit of log erfc on [1, 4] (|x| is
                 clamped to 4, beyond which erf rounds to +-1); x + x N(x^2) for |x| < 1, N a degree-6 fit
                 of erf(x) / x - 1, which keeps erf's relative accuracy near 0 (within 1.1 ulp of the
                 correctly rounded float32 everywhere, compiled with the kernels' FMA contraction;
                 1.3 ulp without)

NaN stays NaN throughout (clamps are compares, not min/max, which would swallow it).

The overloads are inlined into the caller at Numba's IR level (``inline="always"``): called as a
separate function per element, the shared exp kept attention's exp loop from vectorising as well as
attention's own private copy had; inlined, LLVM vectorises the caller's loop with the polynomial in it
(``docs/kernels.md``, "The shared float32 exp", has the measurement and its command).
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

# Exact in float32, so they keep float32 arithmetic float32 and cost float64 nothing.
HALF = np.float32(0.5)
ONE = np.float32(1.0)
ZERO, INF = np.float32(0.0), np.float32(np.inf)

# error_model="numpy": a Python-style zero-division check in a divide would stop vectorising.
KERNEL_OPTIONS = {"cache": True, "error_model": "numpy"}

# tanh's rational function. Coefficients fitted for this module by iteratively reweighted least
# squares on the relative error (a Lawson-style refinement of the linearised fit
# P(u) - tanh(x)/x Q(u) = 0, u = x^2): relative error 2e-8 in exact arithmetic.
TANH_CLAMP = np.float32(9.0)
P0, P1, P2, P3, P4 = (np.float32(c) for c in (1.0, 0.13381009, 0.0034955684, 2.0608757e-05, 1.3354223e-08))
Q0, Q1, Q2, Q3, Q4 = (np.float32(c) for c in (1.0, 0.46714324, 0.025876908, 0.00032856024, 7.776376e-07))

# exp's range reduction: ln 2 = LN2_HIGH + LN2_LOW with few bits in LN2_HIGH, so t * LN2_HIGH is
# exact for |t| < 2^15 (Cody and Waite's trick); the arguments are clamped so 2^t stays normal.
LOG2_E = np.float32(1 / math.log(2))
LN2_HIGH = np.float32(0.693359375)
LN2_LOW = np.float32(math.log(2) - 0.693359375)
EXP_MIN, EXP_MAX = np.float32(-87.0), np.float32(88.0)
E0, E1, E2, E3, E4, E5, E6, E7 = (np.float32(1 / math.factorial(k)) for k in range(8))


def tanh(x):
    """tanh inside the Numba kernels (this Python body is what float64 compiles to)."""
    return math.tanh(x)


def exp(x):
    """exp inside the Numba kernels (this Python body is what float64 compiles to)."""
    return math.exp(x)


def erf(x):
    """erf inside the Numba kernels (this Python body is what float64 compiles to)."""
    return math.erf(x)


@overload(tanh, inline="always", jit_options=KERNEL_OPTIONS)
def _tanh_by_dtype(x):
    return tanh_float32 if x == types.float32 else (lambda x: math.tanh(x))


@overload(exp, inline="always", jit_options=KERNEL_OPTIONS)
def _exp_by_dtype(x):
    return exp_float32 if x == types.float32 else (lambda x: math.exp(x))


@overload(erf, inline="always", jit_options=KERNEL_OPTIONS)
def _erf_by_dtype(x):
    return erf_float32 if x == types.float32 else (lambda x: math.erf(x))


@njit(**KERNEL_OPTIONS)
def sigmoid(z):
    """1 / (1 + exp(-z)): exp(-z) may be inf (float64) or huge, and 1 / inf is the right 0."""
    return ONE / (ONE + exp(-z))


# Plain functions: the overloads above compile them into the kernels that call them.
def tanh_float32(x):
    if x > TANH_CLAMP:
        x = TANH_CLAMP
    if x < -TANH_CLAMP:
        x = -TANH_CLAMP
    u = x * x
    numerator = (((P4 * u + P3) * u + P2) * u + P1) * u + P0
    value = x * numerator / ((((Q4 * u + Q3) * u + Q2) * u + Q1) * u + Q0)
    if value > ONE:  # the fit's rounding can overshoot 1 by 2e-7
        value = ONE
    if value < -ONE:
        value = -ONE
    return value


def exp_float32(x):
    clamped = x
    if clamped > EXP_MAX:
        clamped = EXP_MAX
    if clamped < EXP_MIN:
        clamped = EXP_MIN
    t = np.floor(clamped * LOG2_E + HALF)
    r = clamped - t * LN2_HIGH - t * LN2_LOW
    series = ((((((E7 * r + E6) * r + E5) * r + E4) * r + E3) * r + E2) * r + E1) * r + E0
    value = series * float32_from_bits((np.int32(t) + np.int32(127)) << 23)  # times 2^t
    # beyond the clamps, what IEEE exp gives (so sigmoid(-inf) is exactly 0, as the reference's)
    if x > EXP_MAX:
        value = INF
    if x < EXP_MIN:
        value = ZERO
    return value


# erf's two polynomials, without a divide (Numerical Recipes' erfc fit, used here before, divided once per
# element, and a vector divide costs as much as a dozen multiply-adds):
#   F: log erfc(z) on 1 <= z <= 4, degree 8 in z, plain least squares (its absolute error is erfc's
#      relative error: 1.3e-8 before rounding the coefficients)
#   N: erf(x) / x - 1 on 0 <= u = x^2 <= 1, degree 6 in u, least squares weighted by x / erf(x) (the
#      relative error of erf = x + x N(u): 1.2e-9 before rounding). The 1 is kept out of the
#      polynomial: x + x q rounds once where x (1 + q) would round 1 + q to float32 first (2.3 ulp
#      of erf near 0 that way, against 1 ulp)
# Each fitted with numpy.linalg.lstsq at the 4000 Chebyshev nodes of its interval (close to minimax), in
# the power basis of its variable (conditioned as t^k times Chebyshev polynomials of the interval), then
# rounded to float32 one coefficient at a time from the constant term up, refitting the higher ones
# after each rounding so they absorb it (with all rounded at once, erf's error grew from 1.0 to 1.2 ulp
# in F). tests/kernels/test_float32.py bounds the result's error in float32 ulps.
F0, F1, F2, F3, F4, F5, F6, F7, F8 = (np.float32(c) for c in (
    0.00030321296, -1.1301666, -0.6319372, -0.10997806, 0.026364557,
    -0.004740146, 0.0005927488, -4.558763e-05, 1.6138829e-06))
N0, N1, N2, N3, N4, N5, N6 = (np.float32(c) for c in (
    0.12837917, -0.37612626, 0.112835824, -0.026853643, 0.0051879627, -0.0008006793, 7.842288e-05))
ERF_ROUNDS_TO_ONE = np.float32(4.0)  # erfc(4) = 1.5e-8 < half an ulp of 1: 1 - erfc(z) is 1 beyond


def erf_float32(x):
    z = abs(x)
    if z > ERF_ROUNDS_TO_ONE:  # a compare, so NaN passes through
        z = ERF_ROUNDS_TO_ONE
    log_erfc = F4 + z * (F5 + z * (F6 + z * (F7 + z * F8)))  # Horner's rule, in two halves
    log_erfc = F0 + z * (F1 + z * (F2 + z * (F3 + z * log_erfc)))
    far = ONE - exp(log_erfc)
    if x < 0:
        far = -far
    u = x * x
    near = x + x * (N0 + u * (N1 + u * (N2 + u * (N3 + u * (N4 + u * (N5 + u * N6))))))
    return near if z < ONE else far


@intrinsic
def float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are the int32 ``bits`` (an LLVM bitcast: free, vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen
