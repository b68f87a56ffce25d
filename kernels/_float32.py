"""exp, tanh, sigmoid and erf for the Numba kernels: libm in float64, vectorisable code in float32.

One module for every CPU kernel family's float32 transcendentals (the LSTM's gates, erf for the
exact GELU, attention's softmax exp), each tested against float64 over its whole range
in ``tests/kernels/test_float32.py``.

Why not ``math.tanh`` / ``math.exp`` everywhere: this Numba build has no SVML, so inside a loop
they are scalar libm calls, and one such call stops LLVM from vectorising the whole loop (a
fused LSTM step with libm tanh ran 3x slower than the same step done with NumPy's ufuncs).
The float32 versions below are only multiplies, adds, compares, one divide and a bit cast, so
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
    erf(x)     = Numerical Recipes' Chebyshev fit of erfc for |x| >= 1 (Press et al., 2nd ed.,
                 section 6.2: erfc(z) = t exp(-z^2 + P(t)), t = 1 / (1 + z / 2)), erf = sign(x)(1 - erfc);
                 for |x| < 1 the Maclaurin series to x^19, which keeps erf's relative accuracy near 0
                 (absolute error below 2.5e-7 everywhere)

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


# erfc's Chebyshev fit P(t), constant term first (Numerical Recipes' erfcc), and the series'
# coefficients 2/sqrt(pi) (-1)^n / (n! (2n+1)), n = 0..9.
C0, C1, C2, C3, C4, C5, C6, C7, C8, C9 = (np.float32(c) for c in (
    -1.26551223, 1.00002368, 0.37409196, 0.09678418, -0.18628806,
    0.27886807, -1.13520398, 1.48851587, -0.82215223, 0.17087277))
S0, S1, S2, S3, S4, S5, S6, S7, S8, S9 = (np.float32(2 / math.sqrt(math.pi) * (-1) ** n
                                                     / (math.factorial(n) * (2 * n + 1))) for n in range(10))


def erf_float32(x):
    z = abs(x)
    t = ONE / (ONE + HALF * z)
    p = C5 + t * (C6 + t * (C7 + t * (C8 + t * C9)))  # Horner's rule, in two halves
    p = C0 + t * (C1 + t * (C2 + t * (C3 + t * (C4 + t * p))))
    complement = t * exp(p - z * z)
    far = ONE - complement if x >= 0 else complement - ONE  # NaN: the else branch keeps it
    u = x * x
    series = S5 + u * (S6 + u * (S7 + u * (S8 + u * S9)))
    near = x * (S0 + u * (S1 + u * (S2 + u * (S3 + u * (S4 + u * series)))))
    return near if z < ONE else far


@intrinsic
def float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bits are the int32 ``bits`` (an LLVM bitcast: free, vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen
