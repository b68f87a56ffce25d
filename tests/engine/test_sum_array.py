"""``ops.shape.sum_array``, the reduction behind ``Sum`` and ``SumTo``: its matrix-vector path
(kept axes one block before reduced trailing axes) against NumPy's ``sum`` on drawn shapes and axes."""
import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scratchgen.ops.shape import sum_array


@given(shape=hnp.array_shapes(min_dims=1, max_dims=5, min_side=0, max_side=6), data=st.data(),
       dtype=st.sampled_from([np.float32, np.float64, np.int64]), keepdims=st.booleans())
def test_sum_array_matches_numpy(shape, data, dtype, keepdims):
    axes = tuple(sorted(data.draw(st.sets(st.integers(0, len(shape) - 1)), label="axes")))
    x = np.random.default_rng(len(shape)).standard_normal(shape).astype(dtype)
    x = x if data.draw(st.booleans(), label="contiguous") else x[..., ::-1]   # a view takes NumPy's path
    got, expected = sum_array(x, axes, keepdims), x.sum(axis=axes, keepdims=keepdims)
    assert np.shape(got) == expected.shape and got.dtype == expected.dtype
    tolerance = {np.float32: 1e-5, np.float64: 1e-12, np.int64: 0}[dtype]
    np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance * max(1, x.size))


def test_sum_array_on_channel_sums():
    """(N, C, H, W) summed over (0, 2, 3), as the conv bias and norm affine gradients are."""
    x = np.random.default_rng(0).standard_normal((8, 5, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(sum_array(x, (0, 2, 3), False), x.astype(np.float64).sum((0, 2, 3)), rtol=1e-5)
    np.testing.assert_allclose(sum_array(x, (2, 3), True), x.astype(np.float64).sum((2, 3), keepdims=True),
                               rtol=1e-5)
