"""What the three ``gpu`` modules share: the ``numba.cuda`` import, launch geometry, streams.

The GPU kernels are ``numba.cuda`` kernels (``@cuda.jit``). On a GPU they receive CuPy arrays
(both libraries speak the CUDA array interface, so nothing is copied) and run on the stream CuPy
is using, behind the cuBLAS products CuPy queued there. Without a GPU, Numba's CUDA simulator
(``NUMBA_ENABLE_CUDASIM=1`` set before Numba is imported) runs the very same kernels in Python on
NumPy arrays; the host code around them is written against ``xp``, so the simulator runs it too.
"""
try:
    from numba import cuda
except ImportError as error:  # numba without its CUDA target (numba-cuda replaces the built-in one)
    raise ImportError("scratchgen.kernels gpu: expected numba.cuda, got none; install the GPU extra: "
                      "pip install 'scratchgen[gpu]' (see docs/gpu.md)") from error

THREADS_PER_BLOCK = 256      # element-wise kernels: one thread per element, a grid-stride loop
MAX_BLOCKS = 65535           # enough blocks to fill any GPU; the loop covers the rest
SHARED_MEMORY_BYTES = 48 * 1024  # the static limit every CUDA GPU grants without an opt-in


def is_cupy(array):
    return type(array).__module__.startswith("cupy")


def blocks_for(count, threads=THREADS_PER_BLOCK):
    """Blocks for a grid-stride loop over ``count`` elements (at least one: a grid cannot be empty)."""
    return max(1, min(MAX_BLOCKS, -(-count // threads)))


def launch(kernel, grid, block, *args, shared_bytes=0):
    """``kernel[grid, block](*args)`` on the stream and device CuPy is using for the arrays.

    CuPy arrays are wrapped without Numba's per-launch stream synchronisation (``sync=False``):
    the kernel runs on CuPy's own current stream, so it is already ordered after the work that
    produced its inputs. NumPy arrays (the simulator) are passed as they are, read-only ones (a
    broadcast mask) as inputs only: the simulator copies every other array back after the launch.
    """
    device_arrays = [arg for arg in args if is_cupy(arg)]
    if not device_arrays:
        args = tuple(cuda.In(arg) if read_only(arg) else arg for arg in args)
        kernel[grid, block, 0, shared_bytes](*args)
        return
    import cupy
    args = tuple(cuda.as_cuda_array(arg, sync=False) if is_cupy(arg) else arg for arg in args)
    with cuda.gpus[device_arrays[0].device.id]:
        pointer = cupy.cuda.get_current_stream().ptr
        stream = cuda.external_stream(pointer) if pointer else 0  # 0: the legacy default stream, as CuPy's
        kernel[grid, block, stream, shared_bytes](*args)


def launch_over(count, kernel, *args):
    """Launch an element-wise kernel (a grid-stride loop over ``count`` elements)."""
    launch(kernel, blocks_for(count), THREADS_PER_BLOCK, *args)


def read_only(arg):
    return getattr(arg, "flags", None) is not None and not arg.flags.writeable
