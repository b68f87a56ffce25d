"""``kernels/scatter.add_rows`` against its oracle ``np.add.at``: bit for bit on drawn shapes, dtypes
and indices (repeated and negative ones included), the errors it raises, and the embedding gradient
of ``Tensor.__getitem__`` going through it."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import scratchgen as sg
from scratchgen.kernels.scatter import add_rows


@st.composite
def scatters(draw):
    rows = draw(st.integers(1, 9))
    row_shape = tuple(draw(st.lists(st.integers(0, 5), max_size=2)))
    index_shape = tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=2)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    index = rng.integers(-rows, rows, index_shape)   # few rows: indices repeat
    out = rng.standard_normal((rows,) + row_shape).astype(dtype)
    values = rng.standard_normal(index_shape + row_shape).astype(dtype)
    return out, index, values


@given(scatters())
def test_add_rows_equals_numpy_add_at_bit_for_bit(case):
    out, index, values = case
    expected = out.copy()
    np.add.at(expected, index, values)
    add_rows(out, index, values)
    np.testing.assert_array_equal(out, expected)


def test_add_rows_refuses_bad_input():
    out = np.zeros((3, 2), np.float32)
    with pytest.raises(IndexError, match="index out of range for an axis of size 3"):
        add_rows(out, np.array([0, 3]), np.ones((2, 2), np.float32))
    with pytest.raises(TypeError, match="expected an integer index array, got dtype float64"):
        add_rows(out, np.array([0.0]), np.ones((1, 2), np.float32))
    with pytest.raises(ValueError, match=r"expected values of shape \(1, 2\) and dtype float32"):
        add_rows(out, np.array([0]), np.ones((1, 2), np.float64))


def test_embedding_gradient_goes_through_add_rows_and_equals_add_at():
    rng = np.random.default_rng(0)
    table = sg.tensor(rng.standard_normal((7, 4)).astype(np.float32), requires_grad=True)
    ids = rng.integers(0, 7, (5, 6))
    upstream = rng.standard_normal((5, 6, 4)).astype(np.float32)
    (table[sg.tensor(ids)] * sg.tensor(upstream)).sum().backward()
    expected = np.zeros((7, 4), np.float32)
    np.add.at(expected, ids, upstream)
    np.testing.assert_array_equal(table.grad.numpy(), expected)
