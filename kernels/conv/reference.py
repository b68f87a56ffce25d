"""Convolution, pooling and interpolation, the definition: plain NumPy (or CuPy), the test oracle.

Everything is built from one pair of adjoint gathers (see the package docstring for the math):

    windows(x)         cols[n, c, i, j, oh, ow] = x_padded[n, c, oh*sh + i*dh, ow*sw + j*dw]
    scatter_windows    its adjoint: every cols entry is added back where ``windows`` read it

A convolution is a matrix product of the weight with ``windows(x)``, one per group; its data
gradient is the transposed product scattered back; its weight gradient is the product of the output
gradient with ``windows(x)``. Pooling reduces over the window taps instead of multiplying by a
weight; interpolation is a matrix product along each spatial axis. Written against
``xp = array_module(x)``, so the same code runs on CuPy arrays.
"""
import math

from .._checks import array_module, check_float_arrays, check_ndim
from ._geometry import check_conv2d_backward, check_conv2d_forward, check_window, window_output_hw


# ---- the gather and its adjoint ------------------------------------------------------------------
def window_slices(kernel_hw, stride, output_hw, dilation):
    """For each tap (i, j): the strided slices of the padded input that tap reads, for all outputs."""
    (kh, kw), (sh, sw), (oh, ow), (dh, dw) = kernel_hw, stride, output_hw, dilation
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + sh * (oh - 1) + 1, sh)
            columns = slice(j * dw, j * dw + sw * (ow - 1) + 1, sw)
            yield i, j, rows, columns


def windows(x, kernel_hw, stride, padding, dilation, pad_value=0.0):
    """im2col: ``(N, C, H, W) -> (N, C, kh, kw, OH, OW)``, padding with ``pad_value``."""
    xp = array_module(x)
    n, c = x.shape[:2]
    (ph, pw), hw = padding, window_output_hw("windows", x.shape[2:], kernel_hw, stride, padding, dilation)
    padded = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    cols = xp.empty((n, c) + tuple(kernel_hw) + hw, dtype=x.dtype)
    for i, j, rows, columns in window_slices(kernel_hw, stride, hw, dilation):
        cols[:, :, i, j] = padded[:, :, rows, columns]
    return cols


def scatter_windows(cols, input_hw, stride, padding, dilation):
    """col2im, the adjoint of ``windows``: ``(N, C, kh, kw, OH, OW) -> (N, C, H, W)``, summing overlaps."""
    xp = array_module(cols)
    n, c, kh, kw, oh, ow = cols.shape
    (h, w), (ph, pw) = input_hw, padding
    padded = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=cols.dtype)
    for i, j, rows, columns in window_slices((kh, kw), stride, (oh, ow), dilation):
        padded[:, :, rows, columns] += cols[:, :, i, j]  # one tap never hits a position twice
    return xp.ascontiguousarray(padded[:, :, ph:ph + h, pw:pw + w])


def grouped(array, groups):
    """View ``(N, C, ..., OH, OW)`` as ``(N, groups, C/groups * ..., OH*OW)``: a matrix per sample
    and group."""
    rows = array.shape[1] // groups * math.prod(array.shape[2:-2])  # explicit: -1 fails for N = 0
    return array.reshape(array.shape[0], groups, rows, array.shape[-2] * array.shape[-1])


def weight_matrices(weight, groups):
    """View ``(C_out, C_in/groups, kh, kw)`` as ``(groups, C_out/groups, C_in/groups*kh*kw)``."""
    return weight.reshape(groups, weight.shape[0] // groups, -1)


# ---- convolution ---------------------------------------------------------------------------------
def conv2d_forward(x, weight, bias, stride, padding, dilation, groups):
    """``y[n, o] = bias[o] + sum_{c,i,j} weight[o, c, i, j] x_pad[n, g*C_g + c, oh*sh + i*dh, ow*sw + j*dw]``.

    As matrices, per sample and group g: ``y_g (C_out/g, OH*OW) = W_g (C_out/g, C_in/g*kh*kw) @ cols_g``.
    """
    hw = check_conv2d_forward("conv2d_forward", x, weight, bias, stride, padding, dilation, groups)
    cols = windows(x, weight.shape[2:], stride, padding, dilation)
    y = (weight_matrices(weight, groups) @ grouped(cols, groups)).reshape((x.shape[0], weight.shape[0]) + hw)
    return y if bias is None else y + bias[:, None, None]


def conv2d_backward_data(grad_y, weight, input_hw, stride, padding, dilation, groups):
    """``grad_x = scatter_windows(W_g^T @ grad_y_g)``: the transposed convolution of ``grad_y``."""
    check_conv2d_backward("conv2d_backward_data", grad_y, weight, "weight", weight.shape, input_hw, stride,
                          padding, dilation, groups)
    grad_cols = weight_matrices(weight, groups).swapaxes(1, 2) @ grouped(grad_y, groups)
    cols_shape = (grad_y.shape[0], weight.shape[1] * groups) + weight.shape[2:] + grad_y.shape[2:]
    grad_cols = grad_cols.reshape(cols_shape)
    return scatter_windows(grad_cols, input_hw, stride, padding, dilation)


def conv2d_backward_weight(grad_y, x, kernel_hw, stride, padding, dilation, groups):
    """``grad_W_g = sum_n grad_y_g[n] @ cols_g[n]^T``, reshaped to ``(C_out, C_in/groups, kh, kw)``."""
    weight_shape = (grad_y.shape[1], x.shape[1] // groups) + tuple(kernel_hw)
    check_conv2d_backward("conv2d_backward_weight", grad_y, x, "x", weight_shape, x.shape[2:], stride,
                          padding, dilation, groups)
    cols = grouped(windows(x, kernel_hw, stride, padding, dilation), groups)
    return (grouped(grad_y, groups) @ cols.swapaxes(2, 3)).sum(axis=0).reshape(weight_shape)


# ---- pooling -------------------------------------------------------------------------------------
def check_pool(op, x, kernel_hw, stride, padding, dilation=(1, 1)):
    """Validate a pooling's arguments (PyTorch's rule: padding at most half the kernel); returns (OH, OW).

    With dilation a window can still miss every real input: its maximum is -inf, as in PyTorch.
    """
    check_float_arrays(op, x=x)
    check_ndim(op, "x", x, 4, "(N, C, H, W)")
    check_window(op, kernel_hw, stride, padding, dilation)
    if any(2 * p > k for k, p in zip(kernel_hw, padding)):
        raise ValueError(f"{op}: expected padding at most half the kernel size {tuple(kernel_hw)}, "
                         f"got padding {tuple(padding)}")
    return window_output_hw(op, x.shape[2:], kernel_hw, stride, padding, dilation)


def pool_divisor(xp, input_hw, kernel_hw, stride, padding, count_include_pad, dtype):
    """How many inputs each average divides by: ``kh*kw``, or only the non-padding ones per window."""
    if count_include_pad:
        return kernel_hw[0] * kernel_hw[1]
    inside = windows(xp.ones((1, 1) + tuple(input_hw), dtype=dtype), kernel_hw, stride, padding, (1, 1))
    return inside.sum(axis=(2, 3))


def avg_pool2d_forward(x, kernel_hw, stride, padding, count_include_pad):
    """``y[n, c, oh, ow] = sum_{i, j} x_padded[n, c, oh*sh + i, ow*sw + j] / divisor``."""
    check_pool("avg_pool2d_forward", x, kernel_hw, stride, padding)
    divisor = pool_divisor(array_module(x), x.shape[2:], kernel_hw, stride, padding, count_include_pad,
                           x.dtype)
    return windows(x, kernel_hw, stride, padding, (1, 1)).sum(axis=(2, 3)) / divisor


def avg_pool2d_backward(grad_y, input_hw, kernel_hw, stride, padding, count_include_pad):
    """Every input of a window receives ``grad_y / divisor``: scatter_windows of the broadcast share."""
    check_float_arrays("avg_pool2d_backward", grad_y=grad_y)
    xp = array_module(grad_y)
    share = grad_y / pool_divisor(xp, input_hw, kernel_hw, stride, padding, count_include_pad, grad_y.dtype)
    cols_shape = grad_y.shape[:2] + tuple(kernel_hw) + grad_y.shape[2:]
    grad_cols = xp.broadcast_to(share[:, :, None, None], cols_shape)
    return scatter_windows(grad_cols, input_hw, stride, padding, (1, 1))


def tap_windows(x, kernel_hw, stride, padding, dilation, pad_value=0.0):
    """``windows`` with the taps on one axis: ``(N, C, kh*kw, OH, OW)``, tap ``i*kw + j``."""
    cols = windows(x, kernel_hw, stride, padding, dilation, pad_value)
    return cols.reshape(x.shape[:2] + (-1,) + cols.shape[4:])


def at_taps(cols, taps):
    """``cols[n, c, taps[n, c, oh, ow], oh, ow]``: one tap per window."""
    return array_module(cols).take_along_axis(cols, taps[:, :, None], axis=2)[:, :, 0]


def max_pool2d_forward(x, kernel_hw, stride, padding, dilation):
    """``y = max over the window``; also returns ``taps (N, C, OH, OW)``, the flat tap ``i*kw + j`` of
    each maximum (the first one on ties; NaN wins, as in PyTorch), which is what the backward needs."""
    check_pool("max_pool2d_forward", x, kernel_hw, stride, padding, dilation)
    cols = tap_windows(x, kernel_hw, stride, padding, dilation, pad_value=-float("inf"))
    taps = cols.argmax(axis=2)
    return at_taps(cols, taps), taps


def max_pool2d_gather(x, taps, kernel_hw, stride, padding, dilation):
    """``out[n, c, oh, ow] = window(x)[n, c, taps[n, c, oh, ow]]``: x read at saved tap positions.

    The forward value is ``max_pool2d_gather(x, argmax taps)``; it is also the derivative of
    ``max_pool2d_backward`` with respect to its ``grad_y`` (the two are adjoint).
    """
    out_hw = check_pool("max_pool2d_gather", x, kernel_hw, stride, padding, dilation)
    check_taps("max_pool2d_gather", taps, x.shape[:2] + out_hw)
    return at_taps(tap_windows(x, kernel_hw, stride, padding, dilation), taps)


def max_pool2d_backward(grad_y, taps, input_hw, kernel_hw, stride, padding, dilation):
    """Each ``grad_y`` goes to the input its window's maximum came from (the adjoint of the gather)."""
    check_float_arrays("max_pool2d_backward", grad_y=grad_y)
    check_taps("max_pool2d_backward", taps, grad_y.shape)
    xp = array_module(grad_y)
    tap_ids = xp.arange(kernel_hw[0] * kernel_hw[1]).reshape(1, 1, -1, 1, 1)
    grad_cols = xp.where(tap_ids == taps[:, :, None], grad_y[:, :, None], 0).astype(grad_y.dtype, copy=False)
    grad_cols = grad_cols.reshape(grad_y.shape[:2] + tuple(kernel_hw) + grad_y.shape[2:])
    return scatter_windows(grad_cols, input_hw, stride, padding, dilation)


def check_taps(op, taps, shape):
    if tuple(taps.shape) != tuple(shape) or taps.dtype.kind not in "iu":
        raise ValueError(f"{op}: expected integer taps of shape {tuple(shape)}, "
                         f"got {taps.dtype} of shape {tuple(taps.shape)}")


# ---- interpolation: y = A_h @ x @ A_w^T with one (out, in) matrix per axis -----------------------
def interpolation_matrix(xp, in_size, out_size, mode, align_corners, scale_factor, dtype):
    """Rows of weights so that ``y[o] = sum_i A[o, i] x[i]`` along one axis, as PyTorch computes them.

    nearest:  ``A[o, min(floor(o * scale), in - 1)] = 1`` with ``scale = in / out`` (or 1/scale_factor;
              PyTorch uses ``o`` itself when out = in and ``o // 2`` when out = 2 in).
    bilinear: source ``s = scale*(o + 0.5) - 0.5`` clamped at 0 (``s = o*(in-1)/(out-1)`` with
    align_corners), shared between ``floor(s)`` and the next input by ``1 - frac(s)`` and ``frac(s)``.
    """
    scale = in_size / out_size if scale_factor is None else 1.0 / scale_factor
    out = xp.arange(out_size)
    matrix = xp.zeros((out_size, in_size), dtype=dtype)
    if mode == "nearest":  # PyTorch computes this index in float32, with shortcuts for x1 and x2 sizes
        if out_size in (in_size, 2 * in_size):
            source = out * in_size // out_size
        else:
            source = xp.floor(out.astype(xp.float32) * xp.float32(scale)).astype(xp.int64)
        matrix[out, xp.minimum(source, in_size - 1)] = 1
        return matrix
    if align_corners:
        source = out * ((in_size - 1) / (out_size - 1) if out_size > 1 else 0.0)
    else:
        source = xp.maximum(scale * (out + 0.5) - 0.5, 0.0)
    low = source.astype(xp.int64)
    high = xp.minimum(low + 1, in_size - 1)
    fraction = (source - low).astype(dtype)
    matrix[out, low] += 1 - fraction
    matrix[out, high] += fraction
    return matrix


INTERPOLATION_MODES = ("nearest", "bilinear")


def interpolation_matrices(op, array, input_hw, output_hw, mode, align_corners, scale_factor):
    """The (A_h, A_w) pair after validating the mode; ``scale_factor`` is None or an (h, w) pair."""
    check_float_arrays(op, x=array)
    check_ndim(op, "x", array, 4, "(N, C, H, W)")
    if mode not in INTERPOLATION_MODES:
        raise ValueError(f"{op}: expected mode in {INTERPOLATION_MODES}, got {mode!r}")
    if min(output_hw) < 1:
        raise ValueError(f"{op}: expected an output size of at least 1 x 1, got {tuple(output_hw)}")
    factors = (None, None) if scale_factor is None else scale_factor
    # PyTorch copies an axis whose size does not change, whatever its scale factor says
    return tuple(interpolation_matrix(array_module(array), n_in, n_out, mode, align_corners,
                                      None if n_in == n_out else factor, array.dtype)
                 for n_in, n_out, factor in zip(input_hw, output_hw, factors))


def interpolate_forward(x, output_hw, mode, align_corners, scale_factor):
    """``y[n, c] = A_h @ x[n, c] @ A_w^T`` (nearest or bilinear resampling to ``output_hw``)."""
    rows, columns = interpolation_matrices("interpolate_forward", x, x.shape[2:], output_hw, mode,
                                           align_corners, scale_factor)
    return rows @ x @ columns.T


def interpolate_backward(grad_y, input_hw, mode, align_corners, scale_factor):
    """``grad_x[n, c] = A_h^T @ grad_y[n, c] @ A_w`` (the adjoint of the forward)."""
    rows, columns = interpolation_matrices("interpolate_backward", grad_y, input_hw, grad_y.shape[2:], mode,
                                           align_corners, scale_factor)
    return rows.T @ grad_y @ columns
