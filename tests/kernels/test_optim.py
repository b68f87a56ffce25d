"""Optimizer kernels: ``cpu`` equals ``reference`` bit for bit on drawn buffers, options and dtypes
(they share one rounding order), and the boundary checks name what they got."""
import numpy as np
import pytest
from hypothesis import given
from optimizer_kernel_cases import drawn_updates, run

from scratchgen.kernels.optim import cpu, reference


@given(drawn_updates())
def test_cpu_equals_reference_bit_for_bit(drawn):
    for got, expected in zip(run(cpu, drawn), run(reference, drawn)):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_amsgrad_keeps_a_nan_like_numpy_maximum():
    arrays = lambda: [np.array([1.0, np.nan]), np.array([1.0, 1.0]), np.zeros(2), np.zeros(2),  # noqa: E731
                      np.array([np.nan, 0.0])]
    ours, theirs = arrays(), arrays()
    options = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False, step=1)
    cpu.adam_step(*ours, **options)
    reference.adam_step(*theirs, **options)
    for got, expected in zip(ours, theirs):
        np.testing.assert_array_equal(got, expected)


def test_checks_name_the_problem():
    param = np.zeros(4, np.float32)
    with pytest.raises(TypeError, match="expected all inputs of one dtype"):
        cpu.ema_step(param, np.zeros(4), 0.9)
    with pytest.raises(ValueError, match="expected 1-D arrays of one length.*shape \\(3,\\)"):
        cpu.ema_step(param, np.zeros(3, np.float32), 0.9)
    with pytest.raises(ValueError, match="C-contiguous"):
        cpu.sgd_step(param, np.zeros(8, np.float32)[::2], None, 0.1, 0.0, 0.0, 0.0, False, True)
