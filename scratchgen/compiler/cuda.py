"""Fused kernels for the GPU: the same fusion groups (fusion.py), generated as ``numba.cuda`` kernels.

A program whose arrays are CuPy arrays replays on the GPU: every recorded op calls the same
``Function.forward`` it called eagerly, which computes with CuPy (``xp``), and each fusion group
becomes one ``@cuda.jit`` kernel instead of an ``@njit`` loop. The loop body is written by the code
that writes the CPU kernel's (``fusion.kernel_body``), from this target's formulas; around it:

    # fused by scratchgen.compile for numba.cuda (exact): Mul, Sub, Mul
    from numba import cuda
    from scratchgen.compiler.cuda_arithmetic import fadd_rn, fmul_rn


    @cuda.jit
    def fused_cuda_5dda4d6208(in0, in1, in2, out):
        for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
            v43 = fmul_rn(in0[i], in0[i])
            v45 = fadd_rn(in1[0], -v43)
            out[i] = fmul_rn(in2[i], v45)

(tanh's backward, grad · (1 - y²), in tests/gpu/test_gpu_compile_sim.py's classifier)

- a grid-stride loop: thread ``t`` of the grid takes elements t, t + gridsize, ..., so any launch
  size covers any array (``kernels._cuda.launch_over`` picks the grid);
- sums and products are libdevice's correctly rounded ``_rn`` functions rather than ``+`` and
  ``*``: NVVM would otherwise contract ``a * b + c`` into one fused multiply-add (rounded once, not
  twice), and the fused program would no longer give the bits of the unfused one (each CuPy
  elementwise op rounds its own result). A difference is a sum with the negated operand (IEEE
  defines it so); a quotient is ``/`` (Numba keeps it correctly rounded without fastmath);
- the kernel is compiled by Numba on its first launch (no disk cache; its source is still written to
  the cache folder, and ``explain()`` prints it).

When: the group's arrays are CuPy arrays (a CUDA device), or ``use_kernels("gpu")`` is in force
inside Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``), where the kernels run as Python on NumPy
arrays — how the tests check them on a machine without a GPU. Both are in the program's guards (the
arguments' devices, the kernel choice), so a change re-captures. Verified in the simulator and as PTX
only (docs/gpu.md): nothing here has run on GPU hardware yet.
"""
import hashlib

import numpy as np

from .. import backend, kernels

ARITHMETIC_MODULE = "scratchgen.compiler.cuda_arithmetic"
ROUNDED = {np.dtype(np.float32): {"add": "fadd_rn", "mul": "fmul_rn"},
           np.dtype(np.float64): {"add": "dadd_rn", "mul": "dmul_rn"}}


def wanted(out):
    """Whether the fusion group making buffer ``out`` should be a CUDA kernel: ``out`` is a CuPy
    array (the group's inputs are on its device: the engine refuses ops across devices), or the GPU
    kernels are forced inside the simulator (see the module docstring)."""
    return out.on_gpu or (kernels.current_choice() == "gpu" and kernels.simulating_gpu())


class CudaKernels:
    """The ``numba.cuda`` kernel of a fusion group (the CPU twin is ``fusion.CpuKernels``)."""

    broadcasts = False   # no ``[i % n]`` bias reads yet: not checked in the simulator or as PTX

    def header(self, mode, names):
        return f"# fused by scratchgen.compile for numba.cuda ({mode}): {names}\n"

    def formulas(self, mode, dtype):
        """The same in both modes: only the correctly rounded arithmetic (squaring is a product). Not
        yet here, so never fused into a GPU group: ``Where``, ``Sqrt`` and the fast mode's libm calls."""
        rounded = ROUNDED[np.dtype(dtype)]
        return {"Add": f"{rounded['add']}({{0}}, {{1}})", "Sub": f"{rounded['add']}({{0}}, -{{1}})",
                "Mul": f"{rounded['mul']}({{0}}, {{1}})", "Div": "{0} / {1}", "Neg": "-{0}"}

    def source(self, header, arguments, body, dtype):
        """``(name, module text)``: the name is the hash of the text (the dtype's functions included)."""
        imports = f"from numba import cuda\nfrom {ARITHMETIC_MODULE} import " \
                  f"{', '.join(sorted(ROUNDED[np.dtype(dtype)].values()))}\n"
        name = f"fused_cuda_{hashlib.sha1((header + imports + body).encode()).hexdigest()[:10]}"
        return name, (f"{header}{imports}\n\n@cuda.jit\ndef {name}({arguments}):\n"
                      f"    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):\n{body}\n")

    def calls(self, kernel, out, scalar):
        """``(call, None)``: no ``out_call``, since the arena holds NumPy arrays only."""
        return fused_cuda_call(kernel, out.shape, out.dtype, scalar, out.is_scalar), None


def fused_cuda_call(kernel, shape, dtype, scalar, returns_scalar):
    """Flatten the inputs (numbers to ``dtype``), launch ``kernel`` into a fresh output on the inputs'
    device. On the GPU a number is passed as a NumPy scalar of ``dtype`` (so a float32 kernel is
    compiled for a float32 argument, not a float64 one); the simulator gets the same value as a
    Python float (it would wrap a NumPy scalar into an array)."""
    from ..kernels._cuda import launch_over   # numba.cuda: imported when a GPU program first runs
    number = np.dtype(dtype).type
    plain_numbers = kernels.simulating_gpu()

    def call(*values):
        xp = backend.get_array_module(*[v for v, is_number in zip(values, scalar) if not is_number])
        out = xp.empty(shape, dtype)
        flat = [_number(v, number, plain_numbers) if is_number else xp.ascontiguousarray(v).reshape(-1)
                for v, is_number in zip(values, scalar)]
        launch_over(out.size, kernel, *flat, out.reshape(-1))
        return out[()] if returns_scalar else out   # a NumPy scalar where eager made one (fusion.fused_calls)
    return call


def _number(value, number, plain):
    cast = number(value)
    return cast.item() if plain else cast
