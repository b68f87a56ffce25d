"""``scratchgen.cuda``: whether a CUDA GPU can be used here, in PyTorch's words.

    device = "cuda" if scratchgen.cuda.is_available() else "cpu"

CUDA tensors are CuPy arrays, so "available" means: CuPy is installed and sees at least one GPU.
Asking for ``"cuda"`` when it is not raises an error that says which of the two is missing
(``scratchgen.backend.require_cupy``).
"""
from .backend import cupy_or_none


def device_count():
    """How many CUDA GPUs CuPy sees: 0 without CuPy, without a driver or without a GPU."""
    cupy = cupy_or_none()
    if cupy is None:
        return 0
    try:
        return cupy.cuda.runtime.getDeviceCount()
    except Exception:  # CuPy's CUDARuntimeError when there is no driver
        return 0


def is_available():
    return device_count() > 0
