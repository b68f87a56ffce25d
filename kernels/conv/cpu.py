"""Convolution on the CPU: Numba im2col / col2im around OpenBLAS sgemm (through ``np.matmul``).

Why this shape (measured on the benchmark workloads, 1 thread, float32; see benchmarks/conv.py):
    * The arithmetic is all in matrix products, and OpenBLAS sgemm reaches 80-95 GFLOP/s on the
      per-sample shapes (e.g. 64 x 288 x 256); a Numba loop nest reaches a fraction of that, so
      the loops here only move data: ``im2col`` gathers windows into columns, ``col2im`` scatters
      column gradients back. With the data movement tuned, the cpu kernels run within a few
      percent of their sgemm calls alone (the ``gemm`` row of the benchmark).
    * Forward and data gradient make one product per sample and group (``np.matmul`` over a stack
      of matrices calls sgemm once per matrix), which writes straight in NCHW order. On small maps
      (8x8 and below) those products are too narrow for sgemm's peak, so the "channels-last" path
      (dispatch table below) makes one tall product per chunk of samples instead, with columns that
      have one row per output position; the transposed copies in and out then cost less than they
      save (they did not on 16x16 maps, measured).
    * The weight gradient contracts over samples too, so it is one product per group over all the
      chunk's positions, with im2col writing the columns directly in ``(C*kh*kw, n, OH*OW)`` order
      (no transposed copy of the columns; only the smaller ``grad_y`` chunk is transposed).
    * Samples go in chunks whose columns fill about half of L2, so sgemm reads the columns that
      im2col has just written (and col2im reads sgemm's output) from cache: 5-10% faster than
      one pass over the whole batch.

Pooling is the reference's: memory-bound reductions that NumPy already runs at memory speed (issue 4
asks reference quality for them). Interpolation is the reference's two small products per (n, c)
plane, ``A_h @ x @ A_w^T``, except on small maps, where NumPy's loop over thousands of tiny
matrices cost more than the arithmetic: there it is one product with the Kronecker matrix.
"""
import math

import numpy as np
from numba import njit

from . import reference
from ._geometry import check_conv2d_backward, check_conv2d_forward
from .reference import (avg_pool2d_backward, avg_pool2d_forward, interpolation_matrices,  # noqa: F401
                        max_pool2d_backward, max_pool2d_forward, max_pool2d_gather)


# ---- data movement: the gather and its adjoint ---------------------------------------------------
@njit(cache=True)
def im2col(x, geometry, cols, sample_stride, row_stride):
    """Gather windows of ``x (N, C, H, W)`` into the flat buffer ``cols``.

    ``cols[n*sample_stride + k*row_stride + oh*OW + ow] = x_padded[n, c, oh*sh + i*dh, ow*sw + j*dw]``
    with ``k = (c*kh + i)*kw + j``; the two strides choose the layout, ``(N, K, P)`` or ``(K, N, P)``.
    Each (n, c) plane is first copied into a zero-padded scratch plane that stays in L1, so every
    row of columns is a copy of exactly OW elements with no border tests (2-3x faster than
    clipping each row against the border, measured).
    """
    # Intended twin of col2im (its adjoint): the same loops, walked the other way; keep them in step.
    n_samples, channels, height, width = x.shape
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    padded = np.zeros((height + 2 * ph, width + 2 * pw), dtype=x.dtype)
    flat_padded, flat_x = padded.reshape(-1), x.reshape(-1)
    for n in range(n_samples):
        for c in range(channels):
            plane = (n * channels + c) * height * width
            for row in range(height):  # 30% faster than the equivalent slice assignment
                inside = (row + ph) * padded.shape[1] + pw
                copy_row(flat_x, plane + row * width, 1, flat_padded, inside, width)
            for i in range(kh):
                for j in range(kw):
                    tile = n * sample_stride + ((c * kh + i) * kw + j) * row_stride
                    for oh in range(out_h):
                        source = (oh * sh + i * dh) * padded.shape[1] + j * dw
                        copy_row(flat_padded, source, sw, cols, tile + oh * out_w, out_w)


@njit(cache=True)
def col2im(cols, sample_stride, row_stride, geometry, grad_x):
    """Scatter-add the flat column buffer back into ``grad_x (N, C, H, W)`` (the adjoint of ``im2col``),
    through a padded scratch plane whose border is dropped at the end."""
    # Intended twin of im2col (this is its adjoint): the same loops, walked the other way.
    n_samples, channels, height, width = grad_x.shape
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    padded = np.empty((height + 2 * ph, width + 2 * pw), dtype=grad_x.dtype)
    flat_padded, flat_grad = padded.reshape(-1), grad_x.reshape(-1)
    for n in range(n_samples):
        for c in range(channels):
            padded[:] = 0
            for i in range(kh):
                for j in range(kw):
                    tile = n * sample_stride + ((c * kh + i) * kw + j) * row_stride
                    for oh in range(out_h):
                        target = (oh * sh + i * dh) * padded.shape[1] + j * dw
                        add_row(cols, tile + oh * out_w, flat_padded, target, sw, out_w)
            plane = (n * channels + c) * height * width
            for row in range(height):
                inside = (row + ph) * padded.shape[1] + pw
                copy_row(flat_padded, inside, 1, flat_grad, plane + row * width, width)


# ---- channels-last columns: one product over a chunk's samples, positions as rows --------------
@njit(cache=True)
def im2col_channels_last(x_padded, geometry, groups, cols):
    """Gather windows of the zero-padded, channels-last ``x_padded (N, Hp, Wp, C)`` into ``cols``
    (groups, N*OH*OW, Cg*kh*kw): per group, one row per output position, ordered (i, j, channel):

        ``cols[g, (n*OH + oh)*OW + ow, (i*kw + j)*Cg + c]``
        ``    = x_padded[n, oh*sh + i*dh, ow*sw + j*dw, g*Cg + c]``

    Every inner copy is a run of Cg contiguous channels, however small the map (the NCHW im2col
    copies runs of OW, 4 values on a 4x4 map).
    """
    # Intended twin of col2im_channels_last (its adjoint): the same loops, walked the other way.
    n_samples, padded_h, padded_w, channels = x_padded.shape
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    group_channels = channels // groups
    flat_x, flat_cols = x_padded.reshape(-1), cols.reshape(-1)
    row_length, group_size = kh * kw * group_channels, cols.shape[1] * cols.shape[2]
    for n in range(n_samples):
        for oh in range(out_h):
            for ow in range(out_w):
                row = (n * out_h + oh) * out_w + ow
                for g in range(groups):
                    target = g * group_size + row * row_length
                    for i in range(kh):
                        for j in range(kw):
                            pixel = (n * padded_h + oh * sh + i * dh) * padded_w + ow * sw + j * dw
                            copy_row(flat_x, pixel * channels + g * group_channels, 1, flat_cols,
                                     target + (i * kw + j) * group_channels, group_channels)


@njit(cache=True)
def col2im_channels_last(cols, geometry, groups, grad_padded):
    """Scatter-add ``cols`` back into the channels-last ``grad_padded (N, Hp, Wp, C)`` (zeroed by the
    caller): the adjoint of ``im2col_channels_last``."""
    # Intended twin of im2col_channels_last (this is its adjoint): the same loops, walked the other way.
    n_samples, padded_h, padded_w, channels = grad_padded.shape
    kh, kw, sh, sw, ph, pw, dh, dw, out_h, out_w = geometry
    group_channels = channels // groups
    flat_grad, flat_cols = grad_padded.reshape(-1), cols.reshape(-1)
    row_length, group_size = kh * kw * group_channels, cols.shape[1] * cols.shape[2]
    for n in range(n_samples):
        for oh in range(out_h):
            for ow in range(out_w):
                row = (n * out_h + oh) * out_w + ow
                for g in range(groups):
                    source = g * group_size + row * row_length
                    for i in range(kh):
                        for j in range(kw):
                            pixel = (n * padded_h + oh * sh + i * dh) * padded_w + ow * sw + j * dw
                            add_row(flat_cols, source + (i * kw + j) * group_channels, flat_grad,
                                    pixel * channels + g * group_channels, 1, group_channels)


# Indices below are unsigned (np.uint64): for a signed index Numba emits a negative-index
# wrap-around test that blocks LLVM's vectoriser (measured 3x slower copies). Never mix uint64
# with int64 in one expression: Numba would promote the result to float64.
@njit(cache=True, inline="always")
def copy_row(source, start, stride, target, target_start, count):
    """``target[target_start + q] = source[start + q*stride]`` for ``q < count``."""
    start, target_start, step = np.uint64(start), np.uint64(target_start), np.uint64(stride)
    if stride == 1:  # the common case gets a loop LLVM can vectorise
        for q in range(np.uint64(count)):
            target[target_start + q] = source[start + q]
    else:
        for q in range(np.uint64(count)):
            target[target_start + q] = source[start + q * step]


@njit(cache=True, inline="always")
def add_row(source, start, target, target_start, stride, count):
    """``target[target_start + q*stride] += source[start + q]`` for ``q < count``."""
    start, target_start, step = np.uint64(start), np.uint64(target_start), np.uint64(stride)
    if stride == 1:
        for q in range(np.uint64(count)):
            target[target_start + q] += source[start + q]
    else:
        for q in range(np.uint64(count)):
            target[target_start + q * step] += source[start + q]


def geometry_of(kernel_hw, stride, padding, dilation, output_hw):
    """The ten ints the loops need, as one tuple of Python ints (one Numba signature for all)."""
    return tuple(int(v) for v in (*kernel_hw, *stride, *padding, *dilation, *output_hw))


CHUNK_BYTES = 1 << 20


def sample_chunks(n_samples, bytes_per_sample):
    """``(start, stop)`` runs of samples whose columns fill about ``CHUNK_BYTES`` (half of a 2 MiB L2):
    sgemm then reads the columns im2col has just written (or col2im reads sgemm's) from cache.
    Returns the runs and the longest run's length (the buffer size; 0 for an empty batch)."""
    step = max(1, CHUNK_BYTES // bytes_per_sample)
    runs = [(start, min(start + step, n_samples)) for start in range(0, n_samples, step)]
    return runs, min(step, n_samples)


# ---- which path: a small dispatch table, chosen by measurement -----------------------------------
# Every pass (forward, data gradient, and so the transposed convolution, and weight gradient) takes
# one of three paths:
#
#   "pointwise"      1x1 kernel, stride 1, no padding: the input already is the column matrix, so the
#                    products run on it directly (no im2col copy, no col2im scatter). Its weight
#                    gradient takes the per-sample columns.
#   "channels-last"  small maps (OH*OW <= 64: the U-Net's 8x8 and 4x4 maps, DCGAN's 8x8, 4x4 and 2x2
#                    outputs) with columns of at least 64 rows per group: x copied once into a padded
#                    (N, H, W, C) layout, columns with one *row per output position* (N*P rows of
#                    (i, j, c)), so im2col copies runs of C channels and each chunk of samples makes one
#                    tall product (n*P x K) @ (K x C_out); one transposed copy back to NCHW. Per sample,
#                    sgemm would see P <= 64 columns and im2col would copy runs of OW <= 8 values.
#   "per-sample"     everything else: im2col in NCHW order, one product per sample and group straight
#                    into NCHW order (the weight gradient: one product per chunk over all positions).
#
# The data gradient has a fourth path, chosen by ``data_gradient_path`` before the table above:
#
#   "flipped"        stride 1, padding at most d*(k-1), and C_in > C_out (a convolution that narrows the
#                    channels, as the U-Net's up-path and output convolutions do): a forward convolution of
#                    grad_y with the flipped, transposed kernel (a gather, no col2im scatter), which then
#                    takes the table's path for its own shape. Its product is C_in wide where col2im's is
#                    C_out wide: the U-Net's output convolution (C_out = 1) went from 1.86 to 0.11 ms, its
#                    (64, 96, 8, 8) -> 32 one from 3.0 to 2.6 ms; with C_in <= C_out it measured no gain.
#
# Measured with ``python -m benchmarks.ab conv`` (interleaved A/B against "per-sample" in thread CPU
# time, medians; loaded 2-core machine, December 3): see docs/kernels.md for the table per shape.
# On 16x16 outputs channels-last measured 0.93-1.11x of per-sample (no gain: the per-sample products
# are already wide), and with 9 rows per group (one input channel) 1.5-2x slower, hence its bounds.
CHANNELS_LAST_MAX_POSITIONS = 64
CHANNELS_LAST_MIN_ROWS = 64


def conv_path(kernel_hw, stride, padding, output_hw, rows_per_group):
    """The path (see the table above) for a convolution of this geometry."""
    if tuple(kernel_hw) == (1, 1) and tuple(stride) == (1, 1) and tuple(padding) == (0, 0):
        return "pointwise"
    small_map = output_hw[0] * output_hw[1] <= CHANNELS_LAST_MAX_POSITIONS
    if small_map and rows_per_group >= CHANNELS_LAST_MIN_ROWS:
        return "channels-last"
    return "per-sample"


# ---- convolution ---------------------------------------------------------------------------------
def conv2d_forward(x, weight, bias, stride, padding, dilation, groups, path=None):
    """``y_g[n] = W_g @ im2col(x)_g[n] (+ bias)`` along ``path`` (default: ``conv_path``'s choice;
    the argument lets the tests run every path)."""
    out_hw = check_conv2d_forward("conv2d_forward", x, weight, bias, stride, padding, dilation, groups)
    path = path or conv_path(weight.shape[2:], stride, padding, out_hw, weight[0].size)
    y = np.empty((x.shape[0], weight.shape[0]) + out_hw, dtype=x.dtype)
    geometry = geometry_of(weight.shape[2:], stride, padding, dilation, out_hw)
    FORWARD_PATHS[path](x, weight.reshape(groups, weight.shape[0] // groups, -1), geometry, y)
    if bias is not None:
        y += bias[:, None, None]
    return y


def _forward_per_sample(x, weight_matrices, geometry, y):
    """Per chunk of samples, im2col, then an sgemm per sample and group."""
    n_samples, groups = x.shape[0], weight_matrices.shape[0]
    rows, positions = weight_matrices.shape[2] * groups, y.shape[2] * y.shape[3]
    chunks, longest = sample_chunks(n_samples, rows * positions * x.itemsize)
    cols = np.empty((longest, rows, positions), dtype=x.dtype)
    for start, stop in chunks:
        block = cols[:stop - start]
        im2col(x[start:stop], geometry, block.reshape(-1), rows * positions, positions)
        np.matmul(weight_matrices, block.reshape(stop - start, groups, -1, positions),
                  out=y[start:stop].reshape(stop - start, groups, -1, positions))


def _forward_pointwise(x, weight_matrices, geometry, y):
    """A 1x1 kernel at stride 1 without padding: y_g[n] = W_g @ x_g[n], no columns at all."""
    n_samples, groups = x.shape[0], weight_matrices.shape[0]
    np.matmul(weight_matrices, x.reshape(n_samples, groups, -1, y.shape[2] * y.shape[3]),
              out=y.reshape(n_samples, groups, -1, y.shape[2] * y.shape[3]))


# ---- the channels-last layout: positions as rows, so a tiny map still makes one tall product -------
def padded_channels_last(x, geometry):
    """``x (N, C, H, W)`` as a zero-padded channels-last copy ``(N, H + 2ph, W + 2pw, C)``."""
    ph, pw = geometry[4:6]
    n_samples, channels, height, width = x.shape
    x_padded = np.zeros((n_samples, height + 2 * ph, width + 2 * pw, channels), dtype=x.dtype)
    x_padded[:, ph:ph + height, pw:pw + width, :] = x.transpose(0, 2, 3, 1)
    return x_padded


def channels_last_weight(weight_matrices, geometry):
    """``(groups, C_out/g, Cg*kh*kw)`` with each row in (c, i, j) order, reordered to (i, j, c): the
    order of ``im2col_channels_last``'s rows."""
    groups, group_out = weight_matrices.shape[:2]
    kh, kw = geometry[:2]
    return np.ascontiguousarray(weight_matrices.reshape(groups, group_out, -1, kh, kw)
                                .transpose(0, 1, 3, 4, 2).reshape(groups, group_out, -1))


def channels_last_buffers(n_samples, groups, rows, out_channels, positions, dtype):
    """Chunks of samples (``sample_chunks``) and the buffers of the longest one: columns
    ``(G, n*P, K/G)`` and products ``(G, n*P, C_out/G)``."""
    chunks, longest = sample_chunks(n_samples, (rows + out_channels) * positions * dtype.itemsize)
    cols = np.empty((groups, longest * positions, rows // groups), dtype=dtype)
    products = np.empty((groups, longest * positions, out_channels // groups), dtype=dtype)
    return chunks, cols, products


def gather_by_position(grad_y, groups, by_position):
    """``grad_y (n, C_out, OH, OW)`` copied into ``by_position (G, n*P, C_out/G)``: positions as rows."""
    count, positions = grad_y.shape[0], grad_y.shape[2] * grad_y.shape[3]
    by_position.reshape(groups, count, positions, -1)[...] = \
        grad_y.reshape(count, groups, -1, positions).transpose(1, 0, 3, 2)


def _forward_channels_last(x, weight_matrices, geometry, y):
    """Per chunk of n samples: ``im2col_channels_last`` into (G, n*P, K/G), one product per group
    ``cols_g @ W_g^T`` giving (n*P, C_out/G) (positions as rows), then one transposed copy into NCHW."""
    n_samples, out_channels = y.shape[:2]
    groups, positions = weight_matrices.shape[0], y.shape[2] * y.shape[3]
    x_padded = padded_channels_last(x, geometry)
    # (G, K/G, C_out/G) contiguous: OpenBLAS runs cols @ W^T 3-10% faster with W^T laid out as its
    # own matrix than as a transposed view (measured on the U-Net's shapes)
    weight_columns = np.ascontiguousarray(channels_last_weight(weight_matrices, geometry).transpose(0, 2, 1))
    chunks, cols, products = channels_last_buffers(n_samples, groups, weight_columns.shape[1] * groups,
                                                   out_channels, positions, x.dtype)
    for start, stop in chunks:
        rows = (stop - start) * positions
        block, product = cols[:, :rows], products[:, :rows]
        im2col_channels_last(x_padded[start:stop], geometry, groups, block)
        np.matmul(block, weight_columns, out=product)
        y[start:stop].reshape(stop - start, groups, -1, positions)[...] = \
            product.reshape(groups, stop - start, positions, -1).transpose(1, 0, 3, 2)


FORWARD_PATHS = {"per-sample": _forward_per_sample, "pointwise": _forward_pointwise,
                 "channels-last": _forward_channels_last}


def conv2d_backward_data(grad_y, weight, input_hw, stride, padding, dilation, groups, path=None):
    """``grad_x = col2im(W_g^T @ grad_y_g[n])`` along ``path`` (as ``conv2d_forward``; default:
    ``data_gradient_path``'s choice), or along "flipped" a forward convolution of ``grad_y``."""
    out_hw = check_conv2d_backward("conv2d_backward_data", grad_y, weight, "weight", weight.shape, input_hw,
                                   stride, padding, dilation, groups)
    path = path or data_gradient_path(weight.shape, groups, stride, padding, dilation, out_hw)
    if path == "flipped":
        return _backward_data_flipped(grad_y, weight, stride, padding, dilation, groups)
    grad_x = np.empty((grad_y.shape[0], weight.shape[1] * groups) + tuple(input_hw), dtype=grad_y.dtype)
    geometry = geometry_of(weight.shape[2:], stride, padding, dilation, out_hw)
    weight_transposed = weight.reshape(groups, weight.shape[0] // groups, -1).transpose(0, 2, 1)
    BACKWARD_DATA_PATHS[path](grad_y, weight_transposed, geometry, grad_x)
    return grad_x


def _backward_data_per_sample(grad_y, weight_transposed, geometry, grad_x):
    """Per chunk of samples, an sgemm per sample and group, then the scatter: the adjoint of
    ``_forward_per_sample`` step by step (an intended adjoint pair; their set-up lines match)."""
    n_samples, groups = grad_y.shape[0], weight_transposed.shape[0]
    rows, positions = weight_transposed.shape[1] * groups, grad_y.shape[2] * grad_y.shape[3]
    chunks, longest = sample_chunks(n_samples, rows * positions * grad_y.itemsize)
    grad_cols = np.empty((longest, rows, positions), dtype=grad_y.dtype)
    for start, stop in chunks:
        block = grad_cols[:stop - start]
        np.matmul(weight_transposed, grad_y[start:stop].reshape(stop - start, groups, -1, positions),
                  out=block.reshape(stop - start, groups, -1, positions))
        col2im(block.reshape(-1), rows * positions, positions, geometry, grad_x[start:stop])


def _backward_data_pointwise(grad_y, weight_transposed, geometry, grad_x):
    """A 1x1 kernel at stride 1 without padding: grad_x_g[n] = W_g^T @ grad_y_g[n], no scatter."""
    n_samples, groups = grad_y.shape[0], weight_transposed.shape[0]
    positions = grad_y.shape[2] * grad_y.shape[3]
    np.matmul(weight_transposed, grad_y.reshape(n_samples, groups, -1, positions),
              out=grad_x.reshape(n_samples, groups, -1, positions))


def _backward_data_channels_last(grad_y, weight_transposed, geometry, grad_x):
    """Per chunk of n samples: grad_y copied into (G, n*P, C_out/G) (positions as rows), one product
    per group giving the columns in (G, n*P, K/G) order, the channels-last scatter, then one copy of
    the unpadded interior back into NCHW: the adjoint of ``_forward_channels_last``."""
    n_samples, out_channels = grad_y.shape[:2]
    groups, positions = weight_transposed.shape[0], grad_y.shape[2] * grad_y.shape[3]
    (height, width), (ph, pw) = grad_x.shape[2:], geometry[4:6]
    weight_rows = channels_last_weight(weight_transposed.transpose(0, 2, 1), geometry)
    chunks, grad_cols, gathered = channels_last_buffers(n_samples, groups, weight_rows.shape[2] * groups,
                                                        out_channels, positions, grad_y.dtype)
    for start, stop in chunks:
        count, rows = stop - start, (stop - start) * positions
        by_position, block = gathered[:, :rows], grad_cols[:, :rows]
        gather_by_position(grad_y[start:stop], groups, by_position)
        np.matmul(by_position, weight_rows, out=block)
        grad_padded = np.zeros((count, height + 2 * ph, width + 2 * pw, grad_x.shape[1]), dtype=grad_y.dtype)
        col2im_channels_last(block, geometry, groups, grad_padded)
        grad_x[start:stop] = grad_padded[:, ph:ph + height, pw:pw + width, :].transpose(0, 3, 1, 2)


def flipped_padding(kernel_hw, stride, padding, dilation):
    """The padding ``d (k - 1) - p`` per axis under which a stride-1 convolution's data gradient is a
    forward convolution (``_backward_data_flipped``), or None where that does not hold (a stride
    above 1, or more padding than the dilated kernel's reach)."""
    flipped = tuple(d * (k - 1) - p for k, p, d in zip(kernel_hw, padding, dilation))
    return flipped if tuple(stride) == (1, 1) and min(flipped) >= 0 else None


def flipped_weight(weight, groups):
    """``(C_out, C_in/g, kh, kw)`` -> ``(C_in, C_out/g, kh, kw)``: per group, input and output
    channels swapped and both kernel axes reversed, ``W'[g, c, o, i, j] = W[g, o, c, kh-1-i, kw-1-j]``."""
    out_channels, group_in, kh, kw = weight.shape
    swapped = weight.reshape(groups, out_channels // groups, group_in, kh, kw).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(swapped[..., ::-1, ::-1]).reshape(groups * group_in, -1, kh, kw)


def _backward_data_flipped(grad_y, weight, stride, padding, dilation, groups):
    """A stride-1 data gradient as a forward convolution (a gather; no col2im scatter):

        grad_x[n, c, h, w] = sum_{o, i, j} W[o, c, i, j] grad_y[n, o, h + p - i d, w + p - j d]
                           = conv2d(grad_y, W', padding d (k-1) - p)[n, c, h, w]

    with ``W' = flipped_weight(W)`` (i' = k-1-i). The forward then takes its own path for the
    transposed problem, whose product is C_in wide where the col2im paths' is C_out wide."""
    padding_flipped = flipped_padding(weight.shape[2:], stride, padding, dilation)
    if padding_flipped is None:
        raise ValueError(f"conv2d_backward_data: the 'flipped' path needs stride 1 and padding at most "
                         f"dilation * (kernel - 1), got stride {tuple(stride)}, padding {tuple(padding)}, "
                         f"kernel {tuple(weight.shape[2:])}, dilation {tuple(dilation)}")
    return conv2d_forward(grad_y, flipped_weight(weight, groups), None, (1, 1), padding_flipped, dilation,
                          groups)


def data_gradient_path(weight_shape, groups, stride, padding, dilation, output_hw):
    """The data gradient's path: "flipped" for a stride-1 convolution that narrows the channels
    (C_in > C_out: the transposed problem's product is wider), otherwise ``conv_path``'s choice."""
    path = conv_path(weight_shape[2:], stride, padding, output_hw, int(np.prod(weight_shape[1:])))
    narrowing = weight_shape[1] * groups > weight_shape[0]
    if path != "pointwise" and narrowing and flipped_padding(weight_shape[2:], stride, padding,
                                                             dilation) is not None:
        return "flipped"
    return path


BACKWARD_DATA_PATHS = {"per-sample": _backward_data_per_sample, "pointwise": _backward_data_pointwise,
                       "channels-last": _backward_data_channels_last}


def conv2d_backward_weight(grad_y, x, kernel_hw, stride, padding, dilation, groups, path=None):
    """``grad_W_g = sum over samples and positions of grad_y_g (C_out/g, n*P) @ im2col(x)_g^T`` along
    ``path`` (as ``conv2d_forward``; every path but "channels-last" takes the NCHW columns)."""
    n_samples, out_channels = grad_y.shape[:2]
    weight_shape = (out_channels, x.shape[1] // groups) + tuple(kernel_hw)
    out_hw = check_conv2d_backward("conv2d_backward_weight", grad_y, x, "x", weight_shape, x.shape[2:],
                                   stride, padding, dilation, groups)
    rows_per_group = weight_shape[1] * kernel_hw[0] * kernel_hw[1]
    path = path or conv_path(kernel_hw, stride, padding, out_hw, rows_per_group)
    geometry = geometry_of(kernel_hw, stride, padding, dilation, out_hw)
    backward_weight = _backward_weight_channels_last if path == "channels-last" else _backward_weight_columns
    return backward_weight(grad_y, x, geometry, groups).reshape(weight_shape)


def _backward_weight_columns(grad_y, x, geometry, groups):
    """``grad_W_g^T = sum over chunks of im2col(x)_g (K/g, n*P) @ grad_y_g^T (n*P, C_out/g)``, as
    (groups, C_out/g, K/g). The contraction runs over samples and positions together, so the columns
    are written in ``(K, n, P)`` order by im2col (no transposed copy) and only the chunk of ``grad_y``
    is transposed."""
    n_samples, out_channels = grad_y.shape[:2]
    rows, positions = x.shape[1] * geometry[0] * geometry[1], grad_y.shape[2] * grad_y.shape[3]
    group_channels = out_channels // groups
    grad_by_sample = grad_y.reshape(n_samples, groups, group_channels, positions)
    # accumulated transposed, (K/g, C_out/g): OpenBLAS runs (K, n*P) @ (n*P, C_out) ~15% faster than
    # (C_out, n*P) @ (n*P, K) on the benchmark shapes (measured)
    grad_weight_t = np.zeros((groups, rows // groups, group_channels), dtype=grad_y.dtype)
    for start, stop in sample_chunks(n_samples, rows * positions * x.itemsize)[0]:
        count = stop - start
        cols = np.empty((rows, count, positions), dtype=x.dtype)
        im2col(x[start:stop], geometry, cols.reshape(-1), positions, count * positions)
        grad_chunk = grad_by_sample[start:stop].transpose(1, 2, 0, 3).reshape(groups, group_channels, -1)
        grad_weight_t += cols.reshape(groups, rows // groups, -1) @ grad_chunk.transpose(0, 2, 1)
    return grad_weight_t.transpose(0, 2, 1)


def _backward_weight_channels_last(grad_y, x, geometry, groups):
    """``grad_W_g^T = sum over chunks of cols_g^T (K/g, n*P) @ grad_y_g (n*P, C_out/g)`` with the
    columns of ``im2col_channels_last`` (rows (i, j, c), reordered to (c, i, j) at the end), as
    (groups, C_out/g, K/g)."""
    n_samples, out_channels = grad_y.shape[:2]
    positions, kh, kw = grad_y.shape[2] * grad_y.shape[3], geometry[0], geometry[1]
    x_padded = padded_channels_last(x, geometry)
    chunks, cols, gathered = channels_last_buffers(n_samples, groups, x.shape[1] * kh * kw, out_channels,
                                                   positions, x.dtype)
    # accumulated transposed, (K/g, C_out/g): OpenBLAS runs cols^T @ grad_y 10-20% faster than
    # grad_y^T @ cols on the U-Net's shapes (measured), as in _backward_weight_columns
    grad_weight_t = np.zeros((groups, cols.shape[2], out_channels // groups), dtype=grad_y.dtype)
    for start, stop in chunks:
        rows = (stop - start) * positions
        by_position, block = gathered[:, :rows], cols[:, :rows]
        gather_by_position(grad_y[start:stop], groups, by_position)
        im2col_channels_last(x_padded[start:stop], geometry, groups, block)
        grad_weight_t += block.transpose(0, 2, 1) @ by_position
    group_out, group_channels = grad_weight_t.shape[2], x.shape[1] // groups
    return grad_weight_t.transpose(0, 2, 1).reshape(groups, group_out, kh, kw, group_channels) \
        .transpose(0, 1, 4, 2, 3)


# ---- interpolation: on small maps, one product with the Kronecker matrix --------------------------
# (A_h kron A_w) has (OH*OW) x (H*W) entries; up to this many it is one sgemm over all N*C planes: the
# U-Net's 4x4 -> 8x8 nearest upsampling went from 0.58 to 0.12 ms forward and 0.47 to 0.12 backward
# (thread CPU medians, float32, batch 64 x 64 channels), where np.matmul looped over 4096 4x4 planes.
KRONECKER_MAX_ENTRIES = 1 << 16


def _kronecker_pays(input_hw, output_hw):
    """Whether (A_h kron A_w), (OH*OW) x (H*W) entries, is small enough to be the one product."""
    return math.prod(input_hw) * math.prod(output_hw) <= KRONECKER_MAX_ENTRIES


def interpolate_forward(x, output_hw, mode, align_corners, scale_factor):
    """``y[n, c] = A_h @ x[n, c] @ A_w^T``; on small maps ``y_flat = x_flat @ (A_h kron A_w)^T``, since
    ``(A_h kron A_w)[(p, q), (i, j)] = A_h[p, i] A_w[q, j]``."""
    if not _kronecker_pays(x.shape[2:], output_hw):
        return reference.interpolate_forward(x, output_hw, mode, align_corners, scale_factor)
    rows, columns = interpolation_matrices("interpolate_forward", x, x.shape[2:], output_hw, mode,
                                           align_corners, scale_factor)
    planes = x.shape[0] * x.shape[1]
    return (x.reshape(planes, -1) @ np.kron(rows, columns).T).reshape(x.shape[:2] + tuple(output_hw))


def interpolate_backward(grad_y, input_hw, mode, align_corners, scale_factor):
    """``grad_x[n, c] = A_h^T @ grad_y[n, c] @ A_w``; on small maps ``grad_y_flat @ (A_h kron A_w)``."""
    if not _kronecker_pays(input_hw, grad_y.shape[2:]):
        return reference.interpolate_backward(grad_y, input_hw, mode, align_corners, scale_factor)
    rows, columns = interpolation_matrices("interpolate_backward", grad_y, input_hw, grad_y.shape[2:], mode,
                                           align_corners, scale_factor)
    planes = grad_y.shape[0] * grad_y.shape[1]
    return (grad_y.reshape(planes, -1) @ np.kron(rows, columns)).reshape(grad_y.shape[:2] + tuple(input_hw))
