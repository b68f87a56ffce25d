"""Normalisation: the statistics of LayerNorm, GroupNorm and BatchNorm, the normalisation, its backward.

Three modules implement one contract:

    reference   plain array code (NumPy or CuPy): the definition and the test oracle
    cpu         Numba loops: two passes over x for the statistics, one to write y; two passes over
                (dy, y) for the gradient; every sum accumulated in float64
    gpu         the reference's array code on CuPy arrays (CuPy's own reductions)

Contract (the same names and argument order in every implementation)::

    moments(x, eps) -> (mean, variance, inverse_std)
    normalize(x, mean, inverse_std) -> y
    normalize_backward(grad_y, y, inverse_std) -> grad_x
    affine_normalize(x, mean, inverse_std, weight, bias) -> y                (GroupNorm with its affine)
    affine_normalize_backward(grad_y, x, mean, inverse_std, weight) -> (grad_x, grad_weight, grad_bias)

Layout: every norm is a reduction of a C-contiguous (A, C, B) array over its first and last axes,
one statistic per middle index c (the caller reshapes, nothing is copied for these)::

    LayerNorm  (rows, D)           as (1, rows, D)
    GroupNorm  (N, C, H, W)        as (1, N * G, C / G * H * W)
    BatchNorm  (N, C, H, W)        as (N, C, H * W)       (BatchNorm1d on (N, C): (N, C, 1))

The affine pair takes GroupNorm's x (N, C, H, W) as (N, G, K = C / G, H * W), the statistics of
``moments`` on (1, N * G, K * H * W) and weight, bias (C,) = (G * K,) of x's dtype, and fuses the affine
map into the normalisation's passes (y = xhat * weight + bias, xhat = (x - mean) * inverse_std):
the gradient then reads (grad_y, x) twice and writes grad_x once; grad_weight = sum grad_y * xhat and
grad_bias = sum grad_y (over n and positions) come from the same first pass.

x, y, grad_y and grad_x share one float dtype (float32 or float64); the statistics are (C,) float64
arrays whatever that dtype, so a float32 input keeps its digits (see below). M = A * B values per c.

The math, per c (means over the M values of x[:, c, :])::

    mean         = mean(x)
    variance     = mean((x - mean)^2)                            (biased, what the norms use)
    inverse_std  = 1 / sqrt(variance + eps)
    y            = (x - mean) * inverse_std
    grad_x       = inverse_std * (dy - mean(dy) - y * mean(dy * y))

Numerics (all implementations):

- *float64 accumulation.* Every sum runs in float64, also for float32 inputs: the statistics and y
  of a float32 input are those of the exact computation rounded once (tests/kernels/
  test_normalization.py states the bound), and no square of a float32 value can overflow.
- *The corrected two-pass variance* (Chan, Golub & LeVeque 1983): with m the first pass's mean and
  d = x - m, variance = mean(d^2) - mean(d)^2 and mean = m + mean(d). mean(d) is the first mean's
  rounding error; a spread much smaller than the values' size (1000 +- 1e-3) keeps its digits, which
  the textbook one-pass formula mean(x^2) - mean(x)^2 would lose entirely.
- *Overflow.* A float64 square overflows beyond ~1.3e154; there the sums run over d / s with s the
  power of two just above max |x| (an exact scaling, so nothing else rounds differently), and
  inverse_std = (1 / s) / sqrt(mean((d / s)^2) + eps / s^2). ``variance`` itself may then be inf
  (only BatchNorm's running average reads it); y and inverse_std stay finite. ``reference`` always
  scales (one code path to read); ``cpu`` scales only a c whose plain sum of squares overflowed.
- A constant row has variance 0 up to the float64 rounding of its mean (1e-30 of its size squared
  at worst) and y = 0 to the same precision, never NaN; NaN or inf in x gives NaN statistics for
  its c, as in NumPy.
"""
