"""The arithmetic the generated CUDA kernels import (cuda.py): sums and products rounded once each.

On the GPU these are libdevice's correctly rounded functions (``__nv_fadd_rn`` ...), which NVVM never
contracts into a fused multiply-add, so a fused kernel gives the bits of the unfused ops. In Numba's
CUDA simulator kernels run as Python on NumPy scalars, where ``+`` and ``*`` already round each
result, and libdevice's functions are empty stubs: there they are the plain operators.
"""
import operator

from ..kernels import simulating_gpu

if simulating_gpu():
    fadd_rn = dadd_rn = operator.add
    fmul_rn = dmul_rn = operator.mul
else:
    from numba.cuda.libdevice import dadd_rn, dmul_rn, fadd_rn, fmul_rn  # noqa: F401 (imported by kernels)
