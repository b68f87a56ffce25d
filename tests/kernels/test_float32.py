"""``kernels/_float32.py``: exp, tanh, sigmoid and erf in float32 against float64 over their whole
range — a dense grid where each function changes, every binade of the float32 magnitudes out to
the largest finite value, and the special values (±0, ±inf, NaN). erf, whose coefficients were fitted
for it, is held to a bound in float32 ulps, also on every float32 near its branch points and on drawn
values."""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numba import njit

from scratchgen.kernels import _float32, special


def elementwise(function):
    """A compiled loop applying one of the module's scalar functions to a float32 array."""
    @njit
    def apply(xs, out):
        for i in range(xs.size):
            out[i] = function(xs[i])
    return apply


def whole_range(dense_limit):
    """A dense grid on [-dense_limit, dense_limit] and 64 points in every float32 binade, both signs."""
    dense = np.linspace(-dense_limit, dense_limit, 400_001)
    exponents = np.arange(-149, 128)
    binades = (2.0 ** exponents[:, None] * np.linspace(1, 2, 64, endpoint=False)[None, :]).ravel()
    finite = np.concatenate([dense, binades, -binades, [0.0, np.finfo(np.float32).max]])
    return finite.astype(np.float32)


def run(apply, values):
    out = np.empty_like(values)
    apply(values, out)
    return out


EXACT = {"exp": np.exp, "tanh": np.tanh, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
         "erf": np.vectorize(math.erf)}
APPLY = {name: elementwise(getattr(_float32, name)) for name in EXACT}


def errors(name, values):
    with np.errstate(over="ignore"):
        exact = EXACT[name](values.astype(np.float64))
    return run(APPLY[name], values).astype(np.float64), exact


def test_exp_is_relatively_accurate_on_its_range_and_ieee_beyond():
    values = whole_range(100.0)
    got, exact = errors("exp", values)
    inside = (values >= -87) & (values <= 88)
    assert np.max(np.abs(got[inside] - exact[inside]) / exact[inside]) < 3e-7
    assert np.all(got[values > 88] == np.inf)   # what IEEE exp gives (exp(88.8) overflows float32)
    assert np.all(got[values < -87] == 0)       # exactly 0: attention's masked (-inf) scores need it


def test_tanh_is_absolutely_accurate_everywhere():
    got, exact = errors("tanh", whole_range(12.0))
    assert np.max(np.abs(got - exact)) < 3.5e-7
    assert np.all(np.abs(got) <= 1)


def ulps(got, exact):
    """|got - exact| in units of the spacing of float32 numbers at ``exact`` (2^-149 near 0)."""
    spacing = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / spacing


def neighbours(points, count):
    """The ``count`` float32 numbers on each side of each of ``points``, and the points."""
    bits = np.array(points, dtype=np.float32).view(np.int32)[:, None] + np.arange(-count, count + 1)
    return bits.astype(np.int32).view(np.float32).ravel()


# erf compiled two ways: the module's function in a plain loop, and the kernel the GELU family's loops
# are, compiled with fused multiply-adds (``special.LOOP_OPTIONS``); they differ in the last bit. The
# bounds are in float32 ulps of the correctly rounded value: over every float32 in [0, 10] (erf is odd,
# and 1 beyond) the worst errors were 1.26 and 1.09 ulp. With any one of the coefficients F1-F3 or
# N0-N3 off by a relative 1e-6, the fused kernel's worst error on this grid is 1.28 to 7.5 ulp.
ERF_LOOPS = {"plain": lambda values: run(APPLY["erf"], values), "fused": special.erf_float32}
ERF_ULPS = {"plain": 1.3, "fused": 1.15}
ERF_BRANCH_POINTS = (1.0, -1.0, 4.0, -4.0)
erf_values = st.one_of(st.floats(width=32, allow_nan=False), st.floats(-5, 5, width=32),
                       *(st.floats(point - 1 / 64, point + 1 / 64, width=32) for point in ERF_BRANCH_POINTS))


@pytest.mark.parametrize("loop", sorted(ERF_LOOPS))
def test_erf_is_within_an_ulp_or_so_of_the_rounded_float64_on_a_grid(loop):
    values = np.concatenate([whole_range(12.0), neighbours(ERF_BRANCH_POINTS, 2 ** 14)])
    got = ERF_LOOPS[loop](values)
    assert np.max(ulps(got, EXACT["erf"](values.astype(np.float64)))) <= ERF_ULPS[loop]
    assert np.all(np.abs(got) <= 1)


@pytest.mark.parametrize("loop", sorted(ERF_LOOPS))
@given(values=hnp.arrays(np.float32, st.integers(1, 64), elements=erf_values))
def test_erf_is_within_an_ulp_or_so_on_drawn_values(loop, values):
    assert np.max(ulps(ERF_LOOPS[loop](values), EXACT["erf"](values.astype(np.float64)))) <= ERF_ULPS[loop]


def test_sigmoid_keeps_its_relative_accuracy_down_to_the_tails():
    values = whole_range(100.0)
    got, exact = errors("sigmoid", values)
    above = values > -80
    assert np.max(np.abs(got[above] - exact[above]) / exact[above]) < 3e-7
    assert np.all((got >= 0) & (got <= 1))


@pytest.mark.parametrize("name", sorted(APPLY))
def test_special_values(name):
    values = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=np.float32)
    got = run(APPLY[name], values)
    assert np.isnan(got[4]), f"{name}(NaN) must stay NaN"
    expected = {"exp": [1, 1, np.inf, 0], "tanh": [0, 0, 1, -1], "sigmoid": [0.5, 0.5, 1, 0],
                "erf": [0, 0, 1, -1]}[name]
    for value, want in zip(got[:4], expected):
        assert value == np.float32(want), (name, got)
