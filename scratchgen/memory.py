"""Keep freed memory for the next training step: glibc malloc settings for array-heavy processes.

A training step allocates the same multi-megabyte arrays (activations, gradients) step after
step. glibc's malloc hands blocks above its mmap threshold straight from the operating system and
returns them on ``free``, and it trims the top of its heap once more than 128 KiB lies free there,
so every step the kernel maps fresh pages and the first write to each one faults (measured here:
about 7% of the tiny GPT's step and of the diffusion U-Net's). PyTorch avoids this with a caching
allocator for its own tensors; for NumPy arrays the same effect comes from three ``mallopt``
settings (``man mallopt``): blocks up to 32 MiB (larger than any one array of the default
models) come from the heap, up to 1 GiB of free heap is kept rather than trimmed, and the heap grows in
64 MiB steps.

``keep_freed_memory()`` is called by the command line (``scratchgen ...``) and by the benchmark
suite's worker processes, where it serves scratchgen and PyTorch alike; importing scratchgen
changes nothing. On a C library without ``mallopt`` (not glibc) it does nothing and says so.
"""
import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3  # glibc's <malloc.h>
SETTINGS = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: 1 << 30, M_TOP_PAD: 64 << 20}


def keep_freed_memory():
    """Apply ``SETTINGS`` to this process's malloc; True when the C library took all of them."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    return all(mallopt(parameter, value) == 1 for parameter, value in SETTINGS.items())
