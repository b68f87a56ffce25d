"""Interop without copies: NumPy's __array__ protocol (never an object array), DLPack both ways with
torch and NumPy, from_numpy and as_tensor sharing memory."""
import time

import numpy as np
import pytest

import scratchgen as sg
from conftest import require_torch


def test_np_asarray_is_the_tensors_own_array_and_fast():
    t = sg.randn(300, 300)
    started = time.perf_counter()
    array = np.asarray(t)
    assert array is t.data  # no copy, no object array (issue 21: it used to take 1.2 s)
    assert time.perf_counter() - started < 0.05  # an upper bound; the object-array path took seconds
    assert np.array(t).dtype == np.float32 and np.array(t) is not t.data  # np.array copies, as for arrays


def test_array_protocol_honours_dtype_and_copy():
    t = sg.arange(4.0)
    assert np.asarray(t, dtype=np.float64).dtype == np.float64
    copied = t.__array__(copy=True)
    copied[0] = 7
    assert t.data[0] == 0
    with pytest.raises(ValueError, match="copy=False"):
        t.__array__(dtype=np.float64, copy=False)


def test_ufuncs_refuse_tensors_and_arrays_defer_to_them():
    t = sg.ones(3)
    with pytest.raises(TypeError, match="ufunc"):
        np.exp(t)
    for result in (np.ones(3) + t, np.float32(2) * t, np.ones(3) - t):
        assert isinstance(result, sg.Tensor) and result.data.dtype != object
    np.testing.assert_array_equal((np.ones(3) - t * 2).data, [-1, -1, -1])
    assert np.stack([sg.ones(2), sg.zeros(2)]).dtype == np.float32  # a list of tensors: numbers, not objects


def test_from_numpy_shares_memory_and_as_tensor_copies_only_when_it_must():
    array = np.zeros(3, dtype=np.float32)
    t = sg.from_numpy(array)
    array[1] = 5
    assert t.data[1] == 5 and t.data is array
    assert sg.as_tensor(array).data is array
    assert sg.as_tensor(t) is t
    converted = sg.as_tensor(array, dtype=sg.float64)
    assert converted.dtype == np.float64 and not np.shares_memory(converted.data, array)
    assert sg.as_tensor([1, 2]).dtype == np.int64
    with pytest.raises(TypeError, match="expected a NumPy array"):
        sg.from_numpy([1.0, 2.0])


def test_dlpack_with_numpy_both_ways_without_copies():
    array = np.arange(6.0).reshape(2, 3)
    t = sg.from_dlpack(array)
    assert np.shares_memory(t.data, array)
    back = np.from_dlpack(t)
    assert np.shares_memory(back, array)
    assert t.__dlpack_device__() == (1, 0)  # kDLCPU, device 0
    with pytest.raises(TypeError, match="__dlpack__"):
        sg.from_dlpack([1, 2, 3])


@pytest.mark.torch
def test_dlpack_with_torch_both_ways_without_copies():
    torch = require_torch()
    t = sg.randn(4, 5)
    theirs = torch.from_dlpack(t)
    theirs[0, 0] = 42.0  # a write through torch is seen by scratchgen: one memory
    assert t.data[0, 0] == 42.0
    source = torch.arange(6, dtype=torch.float64).reshape(2, 3)
    ours = sg.from_dlpack(source)
    assert ours.dtype == np.float64 and ours.shape == (2, 3)
    ours.data[1, 2] = -1.0
    assert source[1, 2].item() == -1.0
    assert np.shares_memory(np.asarray(sg.as_tensor(source.numpy())), source.numpy())
