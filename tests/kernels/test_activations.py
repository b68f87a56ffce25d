"""The float32 SiLU and GELU kernels (``kernels/special.py``), forward and gradient, against their ops'
NumPy formulas (``SiLU.reference``... in ``ops/elementwise.py``) evaluated in float64: on drawn shapes,
values and layouts, on every float32 binade out to the largest finite value, and at the special values,
where they must give NaN and inf exactly where the formula does in float32. And the ops: the kernels
for float32 CPU tensors, the formulas for float64, one node each way.

Accuracy measured on the whole-range grid below (|kernel - float64| over the scale named):
    silu        forward 2.0e-7 of max(|y|, |x|)     gradient 1.0e-6 of max(|dx|, |dy|)
    gelu        forward 1.1e-7 of max(|y|, |x|)     gradient 1.6e-7 of max(|dx|, |dy|)
    gelu_tanh   forward 2.1e-7 of max(|y|, |x|)     gradient 3.9e-6 of max(|dx|, |dy|)
NumPy's own float32 evaluation of the same formulas is about as far off (the gradients' x (1 - s) and
x (1 - t^2) u' terms amplify the rounding of s and t); the tanh form's gradient inherits
``_float32.tanh``'s absolute error (3.5e-7) times x u'(x) / 2 (about 9 at x = 4). Its gradient is
NaN for |x| > 1.8e19 in float32, kernel and formula alike: x^2 overflows and (1 - t^2) x^2 is 0 * inf.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn
from scratchgen.kernels import special
from scratchgen.ops import elementwise
from scratchgen.testing import functions_in_graph

# name: (op, forward bound, gradient bound), the bounds about 1.25x the measured errors above
ACTIVATIONS = {"silu": (elementwise.SiLU, 2.5e-7, 1.3e-6), "gelu": (elementwise.GELU, 1.4e-7, 2e-7),
               "gelu_tanh": (elementwise.GELUTanh, 2.7e-7, 5e-6)}


def kernels(name):
    return getattr(special, f"{name}_float32"), getattr(special, f"{name}_grad_float32")


def relative_errors(got, exact, *scales):
    """|got - exact| / max(|exact|, |scale|..., the smallest normal float32): subnormal results, which
    float32 cannot hold to relative accuracy, count by their absolute error."""
    scale = np.maximum.reduce([np.abs(exact), np.full(exact.shape, np.finfo(np.float32).tiny)]
                              + [np.abs(s).astype(np.float64) for s in scales])
    return np.abs(got.astype(np.float64) - exact) / scale


def check_against_float64(name, x, grad):
    op, forward_bound, gradient_bound = ACTIVATIONS[name]
    forward, gradient = kernels(name)
    y, dx = forward(x), gradient(x, grad)
    assert y.dtype == dx.dtype == np.float32 and y.shape == dx.shape == x.shape
    x64, grad64 = x.astype(np.float64), grad.astype(np.float64)
    assert relative_errors(y, op.reference(x64), x).max(initial=0) <= forward_bound
    with np.errstate(over="ignore", invalid="ignore"):
        exact = op.gradient.reference(x64, grad64)
    assert relative_errors(dx, exact, grad).max(initial=0) <= gradient_bound


values = st.floats(-30, 30, width=32, allow_subnormal=False)


@pytest.mark.parametrize("name", ACTIVATIONS)
@given(data=st.data())
def test_kernels_match_the_float64_formula_on_drawn_shapes_and_layouts(name, data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, max_side=7))
    x = data.draw(hnp.arrays(np.float32, shape, elements=values))
    grad = data.draw(hnp.arrays(np.float32, shape, elements=st.floats(-4, 4, width=32)))
    if data.draw(st.booleans()):   # not contiguous when it has two dims or more
        x, grad = x.T, grad.T
    check_against_float64(name, x, grad)


def whole_range():
    """A dense grid on [-20, 20] and 64 points in every float32 binade, both signs, and 0."""
    binades = (2.0 ** np.arange(-149, 128)[:, None] * np.linspace(1, 2, 64, endpoint=False)).ravel()
    return np.concatenate([np.linspace(-20, 20, 100_001), binades, -binades, [0.0]]).astype(np.float32)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_kernels_match_the_float64_formula_on_every_binade(name):
    x = whole_range()
    grad = np.random.default_rng(0).uniform(-2, 2, x.shape).astype(np.float32)
    if name == "gelu_tanh":   # NaN beyond 1.8e19 (module docstring): checked with the special values
        keep = np.abs(x) < 1e19
        x, grad = x[keep], grad[keep]
    check_against_float64(name, x, grad)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_special_values_give_what_the_float32_formula_gives(name):
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-30, -1e-30, 1e-45, 3e38, -3e38, 2e19, -90.0, 90.0],
                 dtype=np.float32)
    grad = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, np.inf, np.nan], dtype=np.float32)
    op = ACTIVATIONS[name][0]
    forward, gradient = kernels(name)
    with np.errstate(all="ignore"):
        expected = op.reference(x), op.gradient.reference(x, grad)
    for got, want in zip((forward(x), gradient(x, grad)), expected):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        infinite = np.isinf(want)
        np.testing.assert_array_equal(got[infinite], want[infinite])
        assert np.all(np.isfinite(got[~infinite & ~np.isnan(want)]))


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_kernels_refuse_other_dtypes_and_mismatched_shapes(name):
    forward, gradient = kernels(name)
    with pytest.raises(TypeError, match=f"{name}_float32: expected a float32 array, got float64"):
        forward(np.zeros(3))
    message = rf"{name}_grad_float32: expected arrays of one shape, got \(3,\) and \(2,\)"
    with pytest.raises(ValueError, match=message):
        gradient(np.zeros(3, np.float32), np.zeros(2, np.float32))


CALLS = {"silu": (F.silu, nn.SiLU()), "gelu": (F.gelu, nn.GELU()),
         "gelu_tanh": (lambda x: F.gelu(x, approximate="tanh"), nn.GELU(approximate="tanh"))}


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_functional_and_module_are_one_op_each_way_kernel_for_float32_formula_for_float64(name):
    op = ACTIVATIONS[name][0]
    forward, gradient = kernels(name)
    values = np.linspace(-6, 6, 61)
    seed = np.cos(values)
    for call in CALLS[name]:
        for dtype in (np.float32, np.float64):
            x = sg.tensor(values.astype(dtype), requires_grad=True)
            y = call(x)
            assert functions_in_graph(y) == {op}
            y.backward(sg.tensor(seed.astype(dtype)))
            if dtype == np.float32:
                want = forward(x.data), gradient(x.data, seed.astype(dtype))
            else:
                want = op.reference(values), op.gradient.reference(values, seed)
            np.testing.assert_array_equal(y.data, want[0])
            np.testing.assert_array_equal(x.grad.data, want[1])
