"""Convolution, pooling and upsampling layers: ``Conv2d``, ``ConvTranspose2d``, ``AvgPool2d``,
``MaxPool2d``, ``Upsample``.

Parameter names, layouts and default initialisations are PyTorch's: Conv2d's weight is
(C_out, C_in / groups, kh, kw), ConvTranspose2d's is (C_in, C_out / groups, kh, kw); both start
with kaiming_uniform_(a=sqrt(5)) and a bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in being
weight.shape[1] * kh * kw (so for ConvTranspose2d it counts output channels, as in PyTorch).
"""
import math

from .. import functional as F
from .. import init
from ..ops.conv import as_pair
from .module import Module, new_parameter


class _Convolution(Module):
    """What Conv2d and ConvTranspose2d share: hyper-parameters, parameters and their initialisation."""

    def __init__(self, op, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, weight_channels, device, dtype):
        super().__init__()
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{op}: expected in_channels and out_channels divisible by groups, got "
                             f"{in_channels}, {out_channels} and groups={groups}")
        if padding_mode != "zeros":
            raise NotImplementedError(f"{op}: padding_mode {padding_mode!r} is not supported; "
                                      "expected 'zeros'")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = as_pair(op, "kernel_size", kernel_size)
        self.stride, self.dilation = as_pair(op, "stride", stride), as_pair(op, "dilation", dilation)
        self.padding = padding if isinstance(padding, str) else as_pair(op, "padding", padding)
        self.padding_mode = padding_mode
        self.weight = new_parameter(*weight_channels, *self.kernel_size, device=device, dtype=dtype)
        bias = new_parameter(out_channels, device=device, dtype=dtype) if bias else None
        self.register_parameter("bias", bias)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
        if self.bias is not None and fan_in > 0:
            bound = 1 / math.sqrt(fan_in)
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        for name, default in (("padding", (0, 0)), ("dilation", (1, 1)), ("output_padding", (0, 0)),
                              ("groups", 1)):
            if getattr(self, name, default) != default:
                text += f", {name}={getattr(self, name)}"
        return text + ("" if self.bias is not None else ", bias=False")


class Conv2d(_Convolution):
    """``F.conv2d`` with a learned weight (C_out, C_in / groups, kh, kw) and bias (C_out,)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__("Conv2d", in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                         bias, padding_mode, (out_channels, in_channels // groups), device, dtype)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_Convolution):
    """``F.conv_transpose2d`` with a learned weight (C_in, C_out / groups, kh, kw) and bias (C_out,).

    ``forward(x, output_size=None)``: an ``output_size`` (H, W) or (N, C, H, W) picks the output
    padding that gives it, as in PyTorch (several output sizes share one input size when stride > 1).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 groups=1, bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None):
        super().__init__("ConvTranspose2d", in_channels, out_channels, kernel_size, stride, padding, dilation,
                         groups, bias, padding_mode, (in_channels, out_channels // groups), device, dtype)
        self.output_padding = as_pair("ConvTranspose2d", "output_padding", output_padding)

    def forward(self, x, output_size=None):
        output_padding = self.output_padding if output_size is None else self._output_padding(x, output_size)
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding, output_padding,
                                  self.groups, self.dilation)

    def _output_padding(self, x, output_size):
        """The output padding that turns the smallest output size into ``output_size``."""
        wanted = tuple(output_size)[-2:]
        smallest = [(n - 1) * s - 2 * p + d * (k - 1) + 1 for n, s, p, d, k
                    in zip(x.shape[-2:], self.stride, self.padding, self.dilation, self.kernel_size)]
        extra = tuple(w - m for w, m in zip(wanted, smallest))
        if any(e < 0 or e >= s for e, s in zip(extra, self.stride)):
            raise ValueError(f"ConvTranspose2d: requested output size {wanted} is not reachable from input "
                             f"{tuple(x.shape)}; sizes from {tuple(smallest)} to "
                             f"{tuple(m + s - 1 for m, s in zip(smallest, self.stride))} are")
        return extra


class AvgPool2d(Module):
    """``F.avg_pool2d`` as a layer (stride defaults to the kernel size)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool2d(Module):
    """``F.max_pool2d`` as a layer (stride defaults to the kernel size)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.dilation, self.return_indices, self.ceil_mode = dilation, return_indices, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class Upsample(Module):
    """``F.interpolate`` as a layer: nearest or bilinear, to a ``size`` or by a ``scale_factor``."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self):
        resize = f"size={self.size}" if self.size is not None else f"scale_factor={self.scale_factor}"
        return f"{resize}, mode={self.mode!r}"
