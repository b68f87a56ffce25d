"""The float32 erf kernel (``kernels/special.py``) against SciPy's float64 erf: absolute error on any
shape and memory layout, special values (its accuracy in ulps, near 0 and at its branch points, is
tested with its scalar function in test_float32.py); and ``sg.erf``
using it for float32 CPU tensors only. The same for the float32 sigmoid kernel against float64 expit
(relative error, as the sigmoid's tails matter; its scalar function is tested over its whole range
in test_float32.py)."""
import numpy as np
import pytest
import scipy.special
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchgen as sg
from scratchgen.kernels.special import erf_float32, sigmoid_float32

ABSOLUTE_ERROR = 1.2e-7   # 2 float32 ulps of erf's values in [0.5, 1)
RELATIVE_ERROR = 1.2e-7   # 1 to 2 float32 ulps of any value

finite_float32 = st.floats(-12, 12, width=32, allow_subnormal=False)


def exact_erf(x):
    return scipy.special.erf(x.astype(np.float64))


@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=7), elements=finite_float32))
def test_erf_float32_matches_float64_scipy(x):
    result = erf_float32(x)
    assert result.dtype == np.float32 and result.shape == x.shape
    np.testing.assert_allclose(result, exact_erf(x), rtol=0, atol=ABSOLUTE_ERROR)


def test_special_values_and_layouts():
    x = np.array([np.inf, -np.inf, np.nan, 0.0, -0.0, 1e-30, 1.0, -1.0, 40.0, 3e38], dtype=np.float32)
    result = erf_float32(x)
    np.testing.assert_array_equal(result[[0, 1, 3, 4, 8, 9]], [1, -1, 0, 0, 1, 1])
    assert np.isnan(result[2])
    np.testing.assert_allclose(result[5:8], exact_erf(x[5:8]), rtol=RELATIVE_ERROR)
    strided = np.linspace(-3, 3, 60, dtype=np.float32).reshape(6, 10).T[::2]  # not contiguous
    np.testing.assert_allclose(erf_float32(strided), exact_erf(strided), atol=ABSOLUTE_ERROR)


def test_erf_float32_refuses_other_dtypes():
    with pytest.raises(TypeError, match="expected a float32 array, got float64"):
        erf_float32(np.zeros(3))


@pytest.mark.parametrize("method, kernel, scipy_function, bound", [
    ("erf", erf_float32, scipy.special.erf, 4), ("sigmoid", sigmoid_float32, scipy.special.expit, 30)])
def test_tensor_op_uses_the_kernel_for_float32_and_scipy_for_float64(method, kernel, scipy_function, bound):
    values = np.linspace(-bound, bound, 101)
    np.testing.assert_array_equal(getattr(sg.tensor(values.astype(np.float32)), method)().numpy(),
                                  kernel(values.astype(np.float32)))
    np.testing.assert_array_equal(getattr(sg.tensor(values), method)().numpy(), scipy_function(values))


SIGMOID_RELATIVE_ERROR = 3e-7   # kernels/_float32.py's sigmoid, down to its tails
float32_values = st.floats(-80, 80, width=32, allow_subnormal=False)


@given(hnp.arrays(np.float32, hnp.array_shapes(max_dims=3, max_side=7), elements=float32_values),
       st.booleans())
def test_sigmoid_float32_matches_float64_expit_on_any_shape_and_layout(x, transposed):
    x = x.T if transposed else x   # not contiguous when it has two dims or more
    result = sigmoid_float32(x)
    assert result.dtype == np.float32 and result.shape == x.shape
    np.testing.assert_allclose(result, scipy.special.expit(x.astype(np.float64)), rtol=SIGMOID_RELATIVE_ERROR, atol=0)


def test_sigmoid_float32_special_values_and_refusal():
    result = sigmoid_float32(np.array([0.0, np.inf, -np.inf, np.nan, 200.0, -200.0], dtype=np.float32))
    np.testing.assert_array_equal(result[[0, 1, 2, 4, 5]], [0.5, 1, 0, 1, 0])
    assert np.isnan(result[3])
    with pytest.raises(TypeError, match="sigmoid_float32: expected a float32 array, got float64"):
        sigmoid_float32(np.zeros(3))

