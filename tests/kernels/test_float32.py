"""``kernels/_float32.py``: exp, tanh, sigmoid and erf in float32 against float64 over their whole
range — a dense grid where each function changes, every binade of the float32 magnitudes out to
the largest finite value, and the special values (±0, ±inf, NaN)."""
import math

import numpy as np
import pytest
from numba import njit

from scratchgen.kernels import _float32


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


@pytest.mark.parametrize("name, bound", [("tanh", 3.5e-7), ("erf", 2.5e-7)])
def test_bounded_functions_are_absolutely_accurate_everywhere(name, bound):
    values = whole_range(12.0)
    got, exact = errors(name, values)
    assert np.max(np.abs(got - exact)) < bound
    assert np.all(np.abs(got) <= 1)


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
