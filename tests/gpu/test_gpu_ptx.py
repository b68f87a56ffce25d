"""Every GPU kernel compiles to PTX, for float32 and float64, as the real CUDA compiler sees it.

Numba's CUDA simulator runs kernels as Python, so it accepts code that NVVM would reject (a
type that does not unify, an unsupported call). This test compiles each kernel with explicit
argument types — those its host code launches it with on CuPy arrays — for compute capability
7.5, in a process *without* the simulator. PTX generation needs NVVM and libdevice but no GPU
and no driver. It runs as its own CI step::

    SCRATCHGEN_CHECK_PTX=1 python -m pytest tests/gpu/test_gpu_ptx.py

Elsewhere it skips; with ``CI=true`` a missing CUDA compiler is a failure, not a skip.
"""
import importlib.util
import os
import re

import pytest

if os.environ.get("SCRATCHGEN_CHECK_PTX") != "1":
    pytest.skip("PTX compilation runs in its own process: SCRATCHGEN_CHECK_PTX=1 python -m pytest "
                "tests/gpu/test_gpu_ptx.py", allow_module_level=True)
if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
    pytest.skip("PTX compilation needs the real CUDA target, not the simulator", allow_module_level=True)

from numba import cuda, types  # noqa: E402

COMPUTE_CAPABILITY = (7, 5)  # Turing: the oldest architecture current CUDA toolkits still fully support
FAMILIES = ("conv", "attention", "recurrence", "optim")


def array(dtype, ndim, layout="C"):
    return types.Array(dtype, ndim, layout)


def signatures(dtype):
    """Kernel name -> argument types, as the ``gpu`` modules launch them (see their host code)."""
    c1, c2, c3, c4 = (array(dtype, n) for n in (1, 2, 3, 4))
    geometry, index, flag = types.UniTuple(types.int64, 10), types.int64, types.boolean
    mask = array(dtype, 4, "A")  # a broadcast view with zero strides
    attention_inputs = (c4, c4, c4, c4, c3, c3, mask, flag, flag, dtype)  # grad_out, q, k, v, shift, ...
    return {
        "im2col_kernel": (c4, geometry, c1, index, index),
        "col2im_kernel": (c1, index, index, geometry, c4),
        "attention_forward_kernel": (c4, c4, c4, mask, flag, flag, dtype, c4, c3),
        "attention_backward_keys_kernel": attention_inputs + (c4, c4),
        "attention_backward_queries_kernel": attention_inputs + (c4,),
        "lstm_forward_step_kernel": (index, c2, c2, c1, c3, c3, c3),
        "lstm_backward_step_kernel": (index, c3, c3, c3, c2, c2, c2),
        "sgd_kernel": (c1, c1, c1) + (dtype,) * 4 + (flag,) * 3,
        "adam_kernel": (c1,) * 5 + (dtype,) * 8 + (flag,),
        "rmsprop_kernel": (c1,) * 5 + (dtype,) * 6 + (flag,) * 2,
        "ema_kernel": (c1, c1, dtype),
    }


def kernels_of(family):
    """The ``@cuda.jit`` kernels (not device functions) defined in ``scratchgen.kernels.<family>.gpu``."""
    module = importlib.import_module(f"scratchgen.kernels.{family}.gpu")
    return {name: obj for name, obj in vars(module).items()
            if isinstance(obj, cuda.dispatcher.CUDADispatcher) and not obj.targetoptions.get("device")}


ALL_KERNELS = {name: kernel for family in FAMILIES for name, kernel in kernels_of(family).items()}


def compile_or_explain(kernel, argument_types):
    """PTX of ``kernel``; a missing CUDA compiler skips here and fails in CI, naming the fix."""
    if importlib.util.find_spec("numba_cuda") is None:
        missing("numba's built-in CUDA target asks the driver for a device when it compiles device "
                "functions; numba-cuda does not")
    try:
        return cuda.compile_ptx(kernel.py_func, argument_types, cc=COMPUTE_CAPABILITY)[0]
    except Exception as error:
        if any(word in str(error).lower() for word in ("nvvm", "libdevice", "nvrtc")):
            missing(f"{type(error).__name__}: {str(error)[:300]}")
        raise


def missing(reason):
    message = f"no CUDA compiler for Numba ({reason}); install it with: pip install 'numba-cuda[cu12]'"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def test_every_kernel_has_a_signature():
    """A kernel added to a gpu module without a signature here would silently escape this check."""
    assert set(ALL_KERNELS) == set(signatures(types.float32))


@pytest.mark.parametrize("dtype", [types.float32, types.float64], ids=str)
@pytest.mark.parametrize("name", sorted(ALL_KERNELS))
def test_kernel_compiles_to_ptx(name, dtype):
    ptx = compile_or_explain(ALL_KERNELS[name], signatures(dtype)[name])
    assert f".target sm_{COMPUTE_CAPABILITY[0]}{COMPUTE_CAPABILITY[1]}" in ptx
    assert ".entry" in ptx
    if dtype == types.float32:  # a float64 constant in float32 code turns its math into float64 (slow)
        float64_lines = [line.strip() for line in ptx.splitlines() if re.search(r"\.f64\b", line)]
        assert not float64_lines, f"{name}: the float32 kernel computes in float64: {float64_lines[:5]}"


# ---- the kernels scratchgen.compile generates for fusion groups (scratchgen/compiler/cuda.py) ----------
def generated_fused_kernels(numpy_dtype):
    """The fused ops of a compiled chain of arithmetic (on numbers, single elements and full arrays),
    generated as CUDA kernels as for a program on the GPU, with their argument types as launched."""
    import numpy as np

    import scratchgen as sg
    from scratchgen.compiler import cuda as compiler_cuda

    def chain(x, y, single):
        return ((x * y + single) * 0.5 - x) / (y * y + 2.0) - single * x

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compiler_cuda, "wanted", lambda out: True)   # as if the arrays were CuPy arrays
        compiled = sg.compile(chain)
        for _ in range(2):   # two captures; the second fuses
            compiled(*[sg.tensor(np.ones(shape, numpy_dtype)) for shape in ((3, 4), (3, 4), (1,))])
    program = next(iter(compiled.cache.values())).program
    element = {"float32": types.float32, "float64": types.float64}[numpy_dtype]
    return [(op, [array(element, 1) if program.buffers[i].is_array else element for i in op.reads]
             + [array(element, 1)]) for op in program.ops if op.kind == "fused"]


@pytest.mark.parametrize("numpy_dtype", ["float32", "float64"])
def test_generated_fused_kernels_compile_to_ptx_without_fused_multiply_adds(numpy_dtype, tmp_path,
                                                                            monkeypatch):
    """Sums and products are libdevice's ``_rn`` functions, so NVVM cannot contract them into an FMA
    (one rounding instead of two: not eager's bits); a float32 kernel computes in float32."""
    monkeypatch.setenv("SCRATCHGEN_CACHE", str(tmp_path))
    kernels = generated_fused_kernels(numpy_dtype)
    assert kernels, "the chain was expected to fuse"
    for op, argument_types in kernels:
        assert op.name.startswith("fused_cuda_"), op.name
        ptx = compile_or_explain(op.kernel, tuple(argument_types))
        assert ".entry" in ptx
        assert not re.search(r"\bfma\.", ptx), f"{op.name}: an FMA in the fused kernel"
        if numpy_dtype == "float32":
            assert not re.search(r"\.f64\b", ptx), f"{op.name}: the float32 kernel computes in float64"
