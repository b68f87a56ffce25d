"""``stack``'s checks and promotion around its fast path (host arrays of one dtype pass straight through)."""
import numpy as np
import pytest

import scratchgen as sg


def test_one_dtype_stacks_as_is_and_mixed_dtypes_promote_as_in_pytorch():
    a = sg.tensor(np.arange(3, dtype=np.float32), requires_grad=True)
    b = sg.tensor(np.arange(3, dtype=np.float64) + 0.5, requires_grad=True)
    same = sg.stack([a, a * 2.0])
    assert same.dtype == np.float32
    np.testing.assert_array_equal(same.data, [[0, 1, 2], [0, 2, 4]])
    mixed = sg.stack([a, b], dim=1)
    assert mixed.dtype == np.float64 and mixed.shape == (3, 2)
    mixed.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64   # each cast back to its input's
    integers = sg.stack([sg.tensor(np.arange(2)), sg.tensor(np.arange(2, dtype=np.int32))])
    assert integers.dtype == np.int64


def test_tensors_of_different_shapes_are_refused_by_position():
    a, b = sg.tensor(np.zeros(3, np.float32)), sg.tensor(np.zeros(4, np.float32))
    message = r"stack: expected every tensor of shape \(3,\), got \(4,\) at position 1"
    with pytest.raises(ValueError, match=message):
        sg.stack([a, b, a])
