"""The GPU optimizer kernels against the NumPy reference, on drawn buffers, options and dtypes.

Runs in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) or on a real GPU (see gpu_target.py).
Equal within the dtype's tolerance (a GPU's sqrt and division are correctly rounded too, but the
test does not rely on it); buffers longer than one block of threads exercise the grid-stride loop.
"""
import numpy as np
from gpu_target import array_module_or_skip, assert_close
from hypothesis import given, settings
from optimizer_kernel_cases import drawn_updates, run

xp = array_module_or_skip()

from scratchgen.kernels import _cuda  # noqa: E402
from scratchgen.kernels.optim import gpu, reference  # noqa: E402


@settings(max_examples=12)  # the simulator runs every thread in Python
@given(drawn_updates())
def test_gpu_matches_reference(drawn):
    for i, (got, expected) in enumerate(zip(run(gpu, drawn, xp.asarray), run(reference, drawn))):
        assert_close(got, expected, f"array {i}")


def test_grid_stride_loop_covers_more_elements_than_threads(monkeypatch):
    monkeypatch.setattr(_cuda, "MAX_BLOCKS", 1)
    shadow, weights = xp.zeros(3 * _cuda.THREADS_PER_BLOCK + 5), xp.ones(3 * _cuda.THREADS_PER_BLOCK + 5)
    gpu.ema_step(shadow, weights, 0.75)
    assert_close(shadow, np.full(shadow.shape, 0.25), "shadow")
