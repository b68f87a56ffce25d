"""Scatter-add of rows, ``out[index[k]] += values[k]``, in one Numba loop: an embedding's gradient.

``np.add.at(out, index, values)`` is NumPy's definition (repeated indices sum) and this module's
oracle; for an integer index array into the first axis it handles one element at a time through
its generic ufunc machinery: in the tiny GPT the token embedding's gradient (3,072 rows of 96
floats into 65) cost milliseconds, several percent of a training step. The loop below adds whole
rows in the same order as ``np.add.at`` (k = 0, 1, ...), so every sum is rounded exactly as there:
the results are bit-identical (``tests/kernels/test_scatter.py``).
"""
import numpy as np
from numba import njit

from ._float32 import KERNEL_OPTIONS


@njit(**KERNEL_OPTIONS)
def _add_rows(out, index, values):
    for k in range(index.size):
        row = index[k]
        for j in range(values.shape[1]):
            out[row, j] += values[k, j]


def add_rows(out, index, values):
    """``np.add.at(out, index, values)`` for an integer ``index`` array (any shape) into ``out``'s
    first axis, with ``values`` of shape ``index.shape + out.shape[1:]``, in place. Negative indices
    count from the end, as in NumPy; one out of range raises IndexError."""
    if index.dtype.kind not in "iu":
        raise TypeError(f"add_rows: expected an integer index array, got dtype {index.dtype}")
    if values.shape != index.shape + out.shape[1:] or values.dtype != out.dtype:
        raise ValueError(f"add_rows: expected values of shape {index.shape + out.shape[1:]} and dtype "
                         f"{out.dtype}, got {values.shape} and {values.dtype}")
    rows = out.shape[0]
    flat_index = index.reshape(-1).astype(np.int64)
    if flat_index.size and (flat_index.min() < -rows or flat_index.max() >= rows):
        raise IndexError(f"add_rows: index out of range for an axis of size {rows}: "
                         f"{flat_index.min()}..{flat_index.max()}")
    if values.size == 0:
        return  # nothing to add (and a size-0 array has no row length to reshape by)
    flat_index = np.where(flat_index < 0, flat_index + rows, flat_index)
    flat_out = out.reshape(rows, -1)  # a view when ``out`` is contiguous (checked: written in place)
    if not np.shares_memory(flat_out, out):
        raise ValueError("add_rows: expected a C-contiguous out array")
    _add_rows(flat_out, flat_index, np.ascontiguousarray(values).reshape(flat_index.size, -1))
