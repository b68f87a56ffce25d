"""The normalisation on the GPU: the ``reference`` array code on CuPy arrays.

Each line there is one CuPy kernel (a reduction or an element-wise map) over the (A, C, B) array;
the float64 accumulation and the scaling against overflow are the same as on the CPU. A fused
``numba.cuda`` version (one block per c) would save the temporaries, as ``cpu`` does.
"""
from .reference import (affine_normalize, affine_normalize_backward, moments, normalize,  # noqa: F401
                        normalize_backward)  # (the contract's names)
