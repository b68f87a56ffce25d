"""Where this process runs the GPU kernels, for the tests in ``tests/gpu``.

* ``NUMBA_ENABLE_CUDASIM=1`` (set before Numba is imported, so a process of its own): Numba's CUDA
  simulator runs the kernels in Python on NumPy arrays — how CI checks them without a GPU;
* otherwise CuPy with a visible CUDA GPU: the kernels run for real on CuPy arrays;
* neither: the kernel tests skip, saying how to run them.

Either way the oracle is the NumPy ``reference`` implementation, run on the host.
"""
import os

import numpy as np
import pytest

import scratchgen
from scratchgen.backend import cupy_or_none

TOLERANCES = {np.dtype(np.float32): dict(rtol=1e-4, atol=1e-5),
              np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12)}

HOW_TO_RUN = ("GPU kernels run in Numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/gpu) "
              "or on a CUDA GPU with CuPy installed (python -m pytest tests/gpu)")


def simulating():
    return os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def cupy_with_gpu():
    """``cupy`` when it is installed and sees a GPU, else None."""
    return cupy_or_none() if scratchgen.cuda.is_available() else None


def array_module_or_skip():
    """The array module the kernels run on here (see the module docstring); skips the calling
    test module when there is none. Call it before importing any ``gpu`` kernel module."""
    if simulating():
        return np
    cupy = cupy_with_gpu()
    if cupy is None:
        pytest.skip(HOW_TO_RUN, allow_module_level=True)
    return cupy


def on_device(xp, *arrays):
    """The host arrays as arrays of ``xp`` (no copy in the simulator)."""
    moved = tuple(None if a is None else xp.asarray(a) for a in arrays)
    return moved if len(moved) > 1 else moved[0]


def to_host(array):
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


def assert_close(actual, expected, name=""):
    """``actual`` (device or host) matches the host ``expected`` within the dtype's tolerance,
    with infinities (a fully masked row's logsumexp) in the same places."""
    actual = to_host(actual)
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype}, expected {expected.dtype}"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape}, expected {expected.shape}"
    np.testing.assert_allclose(actual, expected, err_msg=name, **TOLERANCES[expected.dtype])
