"""Convolution family: conv2d (forward, data and weight gradients), pooling and interpolation.

Three modules implement one contract: ``reference`` (plain array code, the definition and the
test oracle), ``cpu`` (Numba) and ``gpu`` (``numba.cuda`` kernels and cuBLAS on CuPy arrays).

Contract (``reference``, ``cpu`` and ``gpu`` expose the same functions; all arrays NCHW, C-contiguous,
float32 or float64, one dtype per call; ``stride``, ``padding``, ``dilation`` and ``kernel_hw``
are ``(h, w)`` pairs of ints; ``input_hw`` / ``output_hw`` are ``(H, W)`` pairs)::

    conv2d_forward(x, weight, bias, stride, padding, dilation, groups) -> y
        x (N, C_in, H, W), weight (C_out, C_in/groups, kh, kw), bias (C_out,) or None
        y[n, o, oh, ow] = bias[o] + sum_{c, i, j} weight[o, c, i, j]
                                   * x_padded[n, g*C_in/groups + c, oh*sh + i*dh, ow*sw + j*dw]
        where g = o // (C_out/groups), x_padded has ``padding`` zeros on each side, and
        OH = (H + 2 ph - dh (kh - 1) - 1) // sh + 1 (likewise OW).
    conv2d_backward_data(grad_y, weight, input_hw, stride, padding, dilation, groups) -> grad_x
        grad_x = d<y, grad_y>/dx, shape (N, C_in, *input_hw). ``input_hw`` is needed because
        several input sizes give the same output size when stride > 1.
    conv2d_backward_weight(grad_y, x, kernel_hw, stride, padding, dilation, groups) -> grad_weight
        grad_weight = d<y, grad_y>/dweight, shape (C_out, C_in/groups, kh, kw).
    The bias gradient is ``grad_y.sum((0, 2, 3))``, left to the autograd layer.

conv_transpose2d has no kernel of its own, it is conv2d's adjoint (weight (C_in, C_out/groups, kh, kw)
read as a conv2d weight whose "output" channels are the transposed op's inputs):

    conv_transpose2d(x, w)            = conv2d_backward_data(x, w, output_hw, ...)
    its data gradient                 = conv2d_forward(grad_y, w, None, ...)
    its weight gradient               = conv2d_backward_weight(x, grad_y, kernel_hw, ...)
    with output_hw = (H - 1) s - 2 p + d (k - 1) + output_padding + 1 per axis.

Pooling and interpolation (reference quality; ``cpu`` re-exports pooling and, on large maps, interpolation)::

    avg_pool2d_forward(x, kernel_hw, stride, padding, count_include_pad) -> y
    avg_pool2d_backward(grad_y, input_hw, kernel_hw, stride, padding, count_include_pad) -> grad_x
    max_pool2d_forward(x, kernel_hw, stride, padding, dilation) -> (y, taps)
        taps (N, C, OH, OW) int64: the flat tap i*kw + j where each window's maximum was found
    max_pool2d_backward(grad_y, taps, input_hw, kernel_hw, stride, padding, dilation) -> grad_x
    max_pool2d_gather(x, taps, kernel_hw, stride, padding, dilation) -> y
        x read at the given taps: the adjoint of max_pool2d_backward (for double backward)
    interpolate_forward(x, output_hw, mode, align_corners, scale_factor) -> y
    interpolate_backward(grad_y, input_hw, mode, align_corners, scale_factor) -> grad_x
        mode "nearest" or "bilinear"; scale_factor None or an (h, w) pair of floats (PyTorch uses
        1/scale_factor rather than in/out to place source pixels when it is given).

Pooling padding may be at most half the kernel, as in PyTorch; ceil_mode is not supported.
"""
