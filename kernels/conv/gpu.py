"""Convolution on the GPU: ``numba.cuda`` im2col / col2im kernels around cuBLAS matrix products.

The same plan as ``cpu`` (see its docstring for why): the arithmetic is all in GEMMs, here
``xp.matmul`` (cuBLAS' batched GEMM on CuPy arrays), and the kernels only move data:

    im2col   one thread per column entry (n, c, i, j, oh, ow):
             cols[n*sample_stride + ((c*kh + i)*kw + j)*row_stride + oh*OW + ow]
                 = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]     (0 in the padding)
    col2im   one thread per input position (n, c, h, w), its adjoint as a *gather*:
             grad_x[n, c, h, w] = sum over taps (i, j) whose window covers (h, w) of the matching cols entry,
             i.e. oh = (h + ph - i*dh) / sh and ow = (w + pw - j*dw) / sw where both divide exactly
             and lie inside the output.

Gathering instead of scattering (every thread writes only its own element) needs no atomics, so the
result does not depend on the order threads run in: the same input gives the same bits, every run.
Consecutive threads take consecutive ``ow`` / ``w``, so global reads and writes coalesce.

Pooling and interpolation are the reference ones, which run on CuPy arrays through ``xp``.
"""
from .._checks import array_module
from .._cuda import cuda, launch_over
from ._geometry import check_conv2d_backward, check_conv2d_forward
from .cpu import geometry_of
from .reference import (avg_pool2d_backward, avg_pool2d_forward, interpolate_backward,  # noqa: F401
                        interpolate_forward, max_pool2d_backward, max_pool2d_forward, max_pool2d_gather)


# ---- the kernels: gather and adjoint gather ------------------------------------------------------
@cuda.jit
def im2col_kernel(x, geometry, cols, sample_stride, row_stride):
    """Fill the flat ``cols`` with the windows of ``x (N, C, H, W)`` (see the module docstring)."""
    n_samples, channels, height, width = x.shape
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    total = n_samples * channels * kh * kw * out_h * out_w
    for entry in range(cuda.grid(1), total, cuda.gridsize(1)):
        ow, rest = entry % out_w, entry // out_w
        oh, rest = rest % out_h, rest // out_h
        j, rest = rest % kw, rest // kw
        i, rest = rest % kh, rest // kh
        c, n = rest % channels, rest // channels
        h, w = oh * sh - ph + i * dh, ow * sw - pw + j * dw
        target = n * sample_stride + ((c * kh + i) * kw + j) * row_stride + oh * out_w + ow
        if 0 <= h < height and 0 <= w < width:
            cols[target] = x[n, c, h, w]
        else:
            cols[target] = 0


@cuda.jit
def col2im_kernel(cols, sample_stride, row_stride, geometry, grad_x):
    """``grad_x[n, c, h, w]`` = the sum of the ``cols`` entries ``im2col`` read from (n, c, h, w)."""
    n_samples, channels, height, width = grad_x.shape
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    total = n_samples * channels * height * width
    for position in range(cuda.grid(1), total, cuda.gridsize(1)):
        w, rest = position % width, position // width
        h, rest = rest % height, rest // height
        c, n = rest % channels, rest // channels
        plane = n * sample_stride + c * kh * kw * row_stride
        accumulated = grad_x.dtype.type(0)
        for i in range(kh):
            row_offset = h + ph - i * dh  # = oh * sh for the output row that reads h through tap i
            if row_offset < 0 or row_offset % sh != 0 or row_offset // sh >= out_h:
                continue
            for j in range(kw):
                column_offset = w + pw - j * dw
                if column_offset < 0 or column_offset % sw != 0 or column_offset // sw >= out_w:
                    continue
                tap = plane + (i * kw + j) * row_stride
                accumulated += cols[tap + (row_offset // sh) * out_w + column_offset // sw]
        grad_x[n, c, h, w] = accumulated


def im2col(x, geometry, cols, sample_stride, row_stride):
    launch_over(cols.size, im2col_kernel, x, geometry, cols, sample_stride, row_stride)


def col2im(cols, sample_stride, row_stride, geometry, grad_x):
    launch_over(grad_x.size, col2im_kernel, cols, sample_stride, row_stride, geometry, grad_x)


# ---- convolution: the kernels around cuBLAS (shapes as in ``cpu``) ------------------------------
def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    """``y_g[n] = W_g @ im2col(x)_g[n] (+ bias)``: im2col, then one batched GEMM over samples and groups."""
    out_hw = check_conv2d_forward("conv2d_forward", x, weight, bias, stride, padding, dilation, groups)
    xp = array_module(x)
    n_samples, out_channels = x.shape[0], weight.shape[0]
    rows, positions = weight[0].size * groups, out_hw[0] * out_hw[1]
    cols = xp.empty((n_samples, rows, positions), dtype=x.dtype)
    im2col(x, geometry_of(weight.shape[2:], stride, padding, dilation, out_hw), cols.reshape(-1),
           rows * positions, positions)
    y = xp.matmul(weight.reshape(groups, out_channels // groups, -1),
                  cols.reshape(n_samples, groups, -1, positions)).reshape((n_samples, out_channels) + out_hw)
    return y if bias is None else y + bias[:, None, None]


def conv2d_backward_data(grad_y, weight, input_hw, stride, padding, dilation, groups):
    """``grad_x = col2im(W_g^T @ grad_y_g[n])``: one batched GEMM, then the gather."""
    out_hw = check_conv2d_backward("conv2d_backward_data", grad_y, weight, "weight", weight.shape, input_hw,
                                   stride, padding, dilation, groups)
    xp = array_module(grad_y)
    n_samples, out_channels = grad_y.shape[:2]
    rows, positions = weight[0].size * groups, out_hw[0] * out_hw[1]
    grad_cols = xp.matmul(weight.reshape(groups, out_channels // groups, -1).swapaxes(1, 2),
                          grad_y.reshape(n_samples, groups, -1, positions))   # (N, groups, K/groups, P)
    grad_x = xp.empty((n_samples, weight.shape[1] * groups) + tuple(input_hw), dtype=grad_y.dtype)
    col2im(xp.ascontiguousarray(grad_cols).reshape(-1), rows * positions, positions,
           geometry_of(weight.shape[2:], stride, padding, dilation, out_hw), grad_x)
    return grad_x


def conv2d_backward_weight(grad_y, x, kernel_hw, stride, padding, dilation, groups):
    """``grad_W_g = grad_y_g (C_out/g, N*P) @ im2col(x)_g^T (N*P, K/g)``: one GEMM per group.

    im2col writes the columns as ``(K, N, P)`` so the contraction over samples and positions is
    one contiguous axis; only ``grad_y`` (the smaller array) is transposed.
    """
    n_samples, out_channels = grad_y.shape[:2]
    weight_shape = (out_channels, x.shape[1] // groups) + tuple(kernel_hw)
    out_hw = check_conv2d_backward("conv2d_backward_weight", grad_y, x, "x", weight_shape, x.shape[2:],
                                   stride, padding, dilation, groups)
    xp = array_module(x)
    rows, positions = x.shape[1] * kernel_hw[0] * kernel_hw[1], out_hw[0] * out_hw[1]
    cols = xp.empty((rows, n_samples, positions), dtype=x.dtype)
    im2col(x, geometry_of(kernel_hw, stride, padding, dilation, out_hw), cols.reshape(-1), positions,
           n_samples * positions)
    grad_y_by_channel = xp.ascontiguousarray(grad_y.reshape(n_samples, out_channels, -1).transpose(1, 0, 2))
    grad_weight = xp.matmul(grad_y_by_channel.reshape(groups, out_channels // groups, -1),
                            cols.reshape(groups, rows // groups, -1).swapaxes(1, 2))
    return grad_weight.reshape(weight_shape)
