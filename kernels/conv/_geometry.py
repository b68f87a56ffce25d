"""Shapes and argument checks shared by every convolution implementation.

One place computes output sizes and validates arguments, so ``reference`` and ``cpu`` reject the
same inputs with the same messages.
"""
from .._checks import check_float_arrays, check_ndim


def output_size(size, kernel, stride, padding, dilation):
    """Number of window positions along one axis: ``(size + 2p - d(k-1) - 1) // s + 1``."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def window_output_hw(op, input_hw, kernel_hw, stride, padding, dilation):
    """``(OH, OW)`` of a sliding window over ``input_hw``; raises when no window fits."""
    if min(input_hw) < 1:
        raise ValueError(f"{op}: expected an input size of at least 1 x 1, got {tuple(input_hw)}")
    hw = tuple(output_size(*axis) for axis in zip(input_hw, kernel_hw, stride, padding, dilation))
    if min(hw) < 1:
        raise ValueError(f"{op}: expected the (dilated) kernel {tuple(kernel_hw)} to fit the padded input "
                         f"{tuple(input_hw)} (padding {tuple(padding)}, dilation {tuple(dilation)}), "
                         f"got output size {hw}")
    return hw


def check_window(op, kernel_hw, stride, padding, dilation):
    """Kernel, stride and dilation are positive (h, w) pairs; padding is a non-negative pair."""
    for name, pair, low in (("kernel size", kernel_hw, 1), ("stride", stride, 1),
                            ("padding", padding, 0), ("dilation", dilation, 1)):
        if len(pair) != 2 or min(pair) < low:
            raise ValueError(f"{op}: expected {name} as an (h, w) pair of ints >= {low}, got {tuple(pair)}")


def check_groups(op, in_channels, weight_in_channels, out_channels, groups):
    """``in_channels = groups * weight_in_channels`` and ``groups`` divides ``out_channels``."""
    if groups < 1 or out_channels % groups or in_channels != groups * weight_in_channels:
        raise ValueError(f"{op}: expected in_channels = groups * weight.shape[1] and out_channels divisible "
                         f"by groups, got in_channels {in_channels}, weight.shape[1] {weight_in_channels}, "
                         f"out_channels {out_channels}, groups {groups}")


def check_conv2d_forward(op, x, weight, bias, stride, padding, dilation, groups):
    """Validate ``conv2d_forward``'s arguments; returns the output's ``(OH, OW)``."""
    check_float_arrays(op, x=x, weight=weight, bias=bias)
    check_ndim(op, "x", x, 4, "(N, C_in, H, W)")
    check_ndim(op, "weight", weight, 4, "(C_out, C_in / groups, kh, kw)")
    check_groups(op, x.shape[1], weight.shape[1], weight.shape[0], groups)
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{op}: expected bias of shape ({weight.shape[0]},), got {tuple(bias.shape)}")
    check_window(op, weight.shape[2:], stride, padding, dilation)
    return window_output_hw(op, x.shape[2:], weight.shape[2:], stride, padding, dilation)


def check_conv2d_backward(op, grad_y, other, other_name, weight_shape, input_hw, stride, padding, dilation,
                          groups):
    """Validate a conv2d backward: ``grad_y`` must have the forward output's shape.

    ``other`` is the weight (backward-data) or the input ``x`` (backward-weight); ``weight_shape``
    and ``input_hw`` describe the forward convolution whose gradient is asked for.
    """
    check_float_arrays(op, grad_y=grad_y, **{other_name: other})
    check_ndim(op, "grad_y", grad_y, 4, "(N, C_out, OH, OW)")
    check_ndim(op, other_name, other, 4, "(N, C_in, H, W)" if other_name == "x" else
               "(C_out, C_in / groups, kh, kw)")
    out_channels, weight_in_channels = weight_shape[:2]
    in_channels = other.shape[1] if other_name == "x" else weight_in_channels * groups
    check_groups(op, in_channels, weight_in_channels, out_channels, groups)
    check_window(op, weight_shape[2:], stride, padding, dilation)
    batch = other.shape[0] if other_name == "x" else grad_y.shape[0]
    expected = (batch, out_channels) + window_output_hw(op, input_hw, weight_shape[2:], stride, padding,
                                                        dilation)
    if tuple(grad_y.shape) != expected:
        raise ValueError(f"{op}: expected grad_y of shape {expected} (the forward output), "
                         f"got {tuple(grad_y.shape)}")
    return expected[2:]
