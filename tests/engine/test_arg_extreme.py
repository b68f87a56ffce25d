"""argmax and argmin are an op (``ArgExtreme``, no gradient): NumPy's indices on drawn shapes, and
a compiled function that feeds them on (seq2seq's greedy choices) gets each call's own indices."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import scratchgen as sg

ARRAYS = hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=5),
                    elements=st.floats(-4, 4, width=32))


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@given(array=ARRAYS, data=st.data())
def test_the_indices_are_numpys(name, array, data):
    dim = data.draw(st.none() | st.integers(-array.ndim, array.ndim - 1), label="dim")
    keepdim = data.draw(st.booleans(), label="keepdim")
    x = sg.tensor(array, requires_grad=True)
    result = getattr(x, name)(dim, keepdim=keepdim)
    expected = getattr(np, name)(array, axis=dim, keepdims=keepdim if dim is not None else False)
    assert result.dtype == np.int64 and not result.requires_grad
    np.testing.assert_array_equal(result.data, expected)


def test_a_compiled_function_replays_the_choice():
    weight = sg.randn(4, 3)
    step = sg.compile(lambda x: sg.tensor(np.arange(3))[(x @ weight).argmax(dim=1)] * 2)
    rng = np.random.default_rng(0)
    for _ in range(4):   # two captures, then replays on new data
        x = sg.tensor(rng.standard_normal((5, 4)).astype(np.float32))
        np.testing.assert_array_equal(step(x).data, (x.data @ weight.data).argmax(axis=1) * 2)
    assert step.replays == 2


def test_a_bad_dim_is_refused():
    with pytest.raises(IndexError, match="argmax: dim 2 is out of range"):
        sg.randn(2, 3).argmax(dim=2)
