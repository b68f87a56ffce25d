"""Boundary checks shared by every kernel: say what was expected and what was got."""
import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def array_module(array):
    """``numpy`` or ``cupy``, whichever owns ``array`` (kernels import no Tensor code)."""
    if type(array).__module__.startswith("cupy"):
        import cupy
        return cupy
    return np


def array_device(array):
    """``"cpu"`` for NumPy arrays, ``"cuda:N"`` for CuPy arrays on GPU N."""
    return f"cuda:{array.device.id}" if type(array).__module__.startswith("cupy") else "cpu"


def check_float_arrays(op, contiguous=True, **arrays):
    """Check that the named arrays share one device and one float dtype (and C-contiguity if asked).

    ``None`` values are skipped (optional inputs such as a bias). Returns the common dtype.
    """
    dtype = device = None
    for name, array in arrays.items():
        if array is None:
            continue
        if device is None:
            first, device = name, array_device(array)
        elif array_device(array) != device:
            raise ValueError(f"{op}: expected all arrays on one device, got {first} on {device} and {name} "
                             f"on {array_device(array)}; move them with .to(device) first")
        if array.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{op}: expected {name} of dtype float32 or float64, got {array.dtype}")
        if dtype is None:
            dtype = array.dtype
        elif array.dtype != dtype:
            raise TypeError(f"{op}: expected all inputs of one dtype ({dtype}), got {name} of {array.dtype}")
        if contiguous and not array.flags.c_contiguous:
            raise ValueError(f"{op}: expected {name} to be C-contiguous, got strides {array.strides} "
                             f"for shape {array.shape} (call ascontiguousarray first)")
    return dtype


def check_ndim(op, name, array, ndim, layout):
    """Check ``array.ndim == ndim``; ``layout`` names the axes, e.g. ``"(N, C, H, W)"``."""
    if array.ndim != ndim:
        raise ValueError(f"{op}: expected {name} of shape {layout}, got shape {tuple(array.shape)}")
