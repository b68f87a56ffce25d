"""The GPU convolution kernels (im2col / col2im around the GEMMs) against the NumPy reference.

Runs in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) or on a real GPU (see gpu_target.py).
Shapes are tiny — the simulator runs every CUDA thread as a Python thread — but they cross block
edges (more than 256 column entries), and one test shrinks the grid to a single block so the
grid-stride loops wrap around.
"""
import numpy as np
import pytest
from gpu_target import array_module_or_skip, assert_close, on_device
from hypothesis import given, settings
from hypothesis import strategies as st

xp = array_module_or_skip()

from scratchgen.kernels import _cuda  # noqa: E402
from scratchgen.kernels.conv import gpu, reference  # noqa: E402

# (N, C_in, C_out, H, W, kernel, stride, padding, dilation, groups)
CASES = {
    "3x3 same": (2, 3, 4, 6, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    "strided dilated grouped": (2, 4, 6, 7, 9, (3, 2), (2, 1), (1, 2), (1, 2), 2),
    "depthwise stride 3": (1, 3, 3, 8, 7, (2, 3), (3, 2), (0, 1), (1, 1), 3),
    "1x1": (3, 2, 5, 4, 3, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    "kernel as large as the padded input": (1, 2, 2, 3, 4, (5, 4), (1, 1), (1, 0), (1, 1), 1),
}


def conv_arrays(case, dtype, seed=0):
    n, c_in, c_out, h, w, kernel_hw, stride, padding, dilation, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c_in, h, w)).astype(dtype)
    weight = rng.standard_normal((c_out, c_in // groups) + kernel_hw).astype(dtype)
    bias = rng.standard_normal(c_out).astype(dtype)
    geometry = (stride, padding, dilation, groups)
    grad_y = rng.standard_normal(reference.conv2d_forward(x, weight, bias, *geometry).shape).astype(dtype)
    return x, weight, bias, grad_y, geometry


def check_all_three(case, dtype, seed=0):
    """Forward, data gradient and weight gradient of the GPU kernels equal the reference's."""
    x, weight, bias, grad_y, geometry = conv_arrays(case, dtype, seed)
    x_d, weight_d, bias_d, grad_y_d = on_device(xp, x, weight, bias, grad_y)
    assert_close(gpu.conv2d_forward(x_d, weight_d, bias_d, *geometry),
                 reference.conv2d_forward(x, weight, bias, *geometry), "y")
    assert_close(gpu.conv2d_forward(x_d, weight_d, None, *geometry),
                 reference.conv2d_forward(x, weight, None, *geometry), "y without bias")
    assert_close(gpu.conv2d_backward_data(grad_y_d, weight_d, x.shape[2:], *geometry),
                 reference.conv2d_backward_data(grad_y, weight, x.shape[2:], *geometry), "grad_x")
    assert_close(gpu.conv2d_backward_weight(grad_y_d, x_d, weight.shape[2:], *geometry),
                 reference.conv2d_backward_weight(grad_y, x, weight.shape[2:], *geometry), "grad_weight")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_conv2d_matches_reference(case, dtype):
    check_all_three(case, dtype)


@st.composite
def conv_cases(draw):
    groups = draw(st.sampled_from([1, 2]))
    kernel_hw = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    padding = (draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    # the smallest input the (dilated) kernel fits once padded
    reach = [d * (k - 1) + 1 - 2 * p for k, d, p in zip(kernel_hw, dilation, padding)]
    h, w = (draw(st.integers(max(1, r), max(1, r) + 4)) for r in reach)
    return (draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2)), h, w,
            kernel_hw, stride, padding, dilation, groups)


@settings(max_examples=8)
@given(case=conv_cases(), seed=st.integers(0, 2**16))
def test_conv2d_matches_reference_on_drawn_geometry(case, seed):
    check_all_three(case, np.float32, seed)


def test_grid_stride_loops_cover_more_elements_than_threads(monkeypatch):
    """With one block of 256 threads for ~1,000 entries, each thread must loop over several."""
    monkeypatch.setattr(_cuda, "MAX_BLOCKS", 1)
    check_all_three(CASES["strided dilated grouped"], np.float32)


def test_pooling_and_interpolation_are_the_reference_ones():
    """They run on CuPy through ``xp``; the gpu module re-exports them unchanged."""
    for name in ("avg_pool2d_forward", "max_pool2d_forward", "max_pool2d_backward", "interpolate_forward"):
        assert getattr(gpu, name) is getattr(reference, name)


def test_boundary_checks_are_the_shared_ones():
    x, weight = on_device(xp, np.zeros((1, 2, 4, 4), np.float32), np.zeros((1, 2, 3, 3)))
    with pytest.raises(TypeError, match="conv2d_forward: expected all inputs of one dtype"):
        gpu.conv2d_forward(x, weight, None, (1, 1), (0, 0), (1, 1), 1)
