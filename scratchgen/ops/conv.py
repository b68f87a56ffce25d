"""Convolution, pooling and interpolation as autograd ops over ``scratchgen.kernels.conv``.

Convolution is three Functions, each made of the kernels, whose backwards are each other:

    Conv2dOp            y  = conv(x, w) + b
    ConvTranspose2dOp   y  = conv^T(x, w) + b            (conv2d's data gradient, as an op)
    Conv2dWeightGrad    gw = dw <conv(x, w), g>          (conv2d's weight gradient, as an op)

    Conv2dOp.backward(g)            dx = ConvTranspose2dOp(g, w)   dw = Conv2dWeightGrad(g, x)   db = sum g
    ConvTranspose2dOp.backward(g)   dx = Conv2dOp(g, w)            dw = Conv2dWeightGrad(x, g)   db = sum g
    Conv2dWeightGrad.backward(h)    dg = Conv2dOp(x, h)            dx = ConvTranspose2dOp(g, h)

(An op class whose plain name would be an ``nn`` layer's takes the suffix ``Op``: a graph or a
profile then never shows one name for both the ``nn.Conv2d`` layer and the op it runs.)

Each map is bilinear, so its derivative in one argument is the same kind of map with the other
argument fixed. Backwards are built from Functions, so gradients of any order follow (a WGAN-GP
critic differentiates its convolutions twice). Pooling and interpolation are linear in x (max
pooling once its taps are fixed), so each is a pair of Functions that are each other's adjoint.
"""
import numbers

from .. import backend
from ..autograd import Function
from ..kernels import implementation
from .shape import pad, reshape


def _kernels(array):
    return implementation("conv", array)


def _contiguous(*arrays):
    """Kernels take C-contiguous arrays; None (a missing bias) passes through."""
    return tuple(None if a is None else backend.get_array_module(a).ascontiguousarray(a) for a in arrays)


def _with_bias(y, bias):
    if bias is not None:
        y += bias[:, None, None]
    return y


# ---- convolution: three Functions, each other's derivatives --------------------------------------
class Conv2dOp(Function):
    """y[n, o] = b[o] + sum_{c, i, j} w[o, c, i, j] x_pad[n, g C_g + c, oh s + i d, ow s + j d]."""

    def forward(self, x, weight, bias, *, stride, padding, dilation, groups):
        self.window = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        self.save_for_backward(x, weight)
        return _kernels(x).conv2d_forward(*_contiguous(x, weight, bias), stride, padding, dilation, groups)

    def backward(self, grad):
        (x, weight), window = self.saved_tensors, self.window
        need_x, need_weight, need_bias = self.needs_input_grad
        dx = ConvTranspose2dOp.apply(grad, weight, None, output_hw=x.shape[2:], **window) if need_x else None
        dw = Conv2dWeightGrad.apply(grad, x, kernel_hw=weight.shape[2:], **window) if need_weight else None
        return dx, dw, (grad.sum(dim=(0, 2, 3)) if need_bias else None)


class ConvTranspose2dOp(Function):
    """y = conv^T(x, w) + b: conv2d's data gradient, with ``w`` read as a conv2d weight
    (C_in, C_out / groups, kh, kw) whose "outputs" are this op's inputs."""

    def forward(self, x, weight, bias, *, output_hw, stride, padding, dilation, groups):
        self.window = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        self.save_for_backward(x, weight)
        x, weight, bias = _contiguous(x, weight, bias)
        y = _kernels(x).conv2d_backward_data(x, weight, tuple(output_hw), stride, padding, dilation, groups)
        return _with_bias(y, bias)

    def backward(self, grad):
        (x, weight), window = self.saved_tensors, self.window
        need_x, need_weight, need_bias = self.needs_input_grad
        dx = Conv2dOp.apply(grad, weight, None, **window) if need_x else None
        dw = Conv2dWeightGrad.apply(x, grad, kernel_hw=weight.shape[2:], **window) if need_weight else None
        return dx, dw, (grad.sum(dim=(0, 2, 3)) if need_bias else None)


class Conv2dWeightGrad(Function):
    """gw = d<conv(x, w), g>/dw, shape (C_out, C_in / groups, kh, kw): bilinear in (g, x)."""

    def forward(self, grad_y, x, *, kernel_hw, stride, padding, dilation, groups):
        self.window = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        self.save_for_backward(grad_y, x)
        grad_y, x = _contiguous(grad_y, x)
        return _kernels(x).conv2d_backward_weight(grad_y, x, tuple(kernel_hw), stride, padding, dilation,
                                                  groups)

    def backward(self, grad):
        (grad_y, x), window = self.saved_tensors, self.window
        need_grad_y, need_x = self.needs_input_grad
        d_grad_y = Conv2dOp.apply(x, grad, None, **window) if need_grad_y else None
        dx = ConvTranspose2dOp.apply(grad_y, grad, None, output_hw=x.shape[2:], **window) if need_x else None
        return d_grad_y, dx


# ---- pooling and interpolation: pairs of adjoint linear maps -------------------------------------
class AvgPool2dOp(Function):
    """y = the mean of each window (over kh*kw, or over its non-padding inputs)."""

    def forward(self, x, *, kernel_hw, stride, padding, count_include_pad):
        self.window = dict(kernel_hw=kernel_hw, stride=stride, padding=padding,
                           count_include_pad=count_include_pad)
        self.input_hw = x.shape[2:]
        return _kernels(x).avg_pool2d_forward(*_contiguous(x), kernel_hw, stride, padding, count_include_pad)

    def backward(self, grad):
        return AvgPool2dBackward.apply(grad, input_hw=self.input_hw, **self.window)


class AvgPool2dBackward(Function):
    """dx = every window's share of dy spread back over it: AvgPool2dOp's adjoint."""

    def forward(self, grad_y, *, input_hw, kernel_hw, stride, padding, count_include_pad):
        self.window = dict(kernel_hw=kernel_hw, stride=stride, padding=padding,
                           count_include_pad=count_include_pad)
        return _kernels(grad_y).avg_pool2d_backward(*_contiguous(grad_y), input_hw, kernel_hw, stride,
                                                    padding, count_include_pad)

    def backward(self, grad):
        return AvgPool2dOp.apply(grad, **self.window)


class MaxPool2dOp(Function):
    """y = the maximum of each window; the kernel also returns which tap held it (the taps)."""

    def forward(self, x, *, kernel_hw, stride, padding, dilation):
        self.window = dict(kernel_hw=kernel_hw, stride=stride, padding=padding, dilation=dilation)
        self.input_hw = x.shape[2:]
        y, taps = _kernels(x).max_pool2d_forward(*_contiguous(x), kernel_hw, stride, padding, dilation)
        self.save_for_backward(taps)
        return y

    def backward(self, grad):
        (taps,) = self.saved_tensors
        return MaxPool2dBackward.apply(grad, taps=taps.data, input_hw=self.input_hw, **self.window)


class MaxPool2dBackward(Function):
    """dx = each dy added where its window's maximum was (taps fixed): linear in dy."""

    def forward(self, grad_y, *, taps, input_hw, kernel_hw, stride, padding, dilation):
        self.taps = taps
        self.window = dict(kernel_hw=kernel_hw, stride=stride, padding=padding, dilation=dilation)
        return _kernels(grad_y).max_pool2d_backward(*_contiguous(grad_y), taps, input_hw, kernel_hw, stride,
                                                    padding, dilation)

    def backward(self, grad):
        return MaxPool2dGather.apply(grad, taps=self.taps, **self.window)


class MaxPool2dGather(Function):
    """out = x read at fixed window taps: MaxPool2dBackward's adjoint (its second derivative)."""

    def forward(self, x, *, taps, kernel_hw, stride, padding, dilation):
        self.taps = taps
        self.window = dict(kernel_hw=kernel_hw, stride=stride, padding=padding, dilation=dilation)
        self.input_hw = x.shape[2:]
        return _kernels(x).max_pool2d_gather(*_contiguous(x), taps, kernel_hw, stride, padding, dilation)

    def backward(self, grad):
        return MaxPool2dBackward.apply(grad, taps=self.taps, input_hw=self.input_hw, **self.window)


class Interpolate(Function):
    """y[n, c] = A_h x[n, c] A_w^T (nearest or bilinear weights)."""

    def forward(self, x, *, output_hw, mode, align_corners, scale_factor):
        self.resize = dict(mode=mode, align_corners=align_corners, scale_factor=scale_factor)
        self.input_hw = x.shape[2:]
        return _kernels(x).interpolate_forward(*_contiguous(x), output_hw, mode, align_corners, scale_factor)

    def backward(self, grad):
        return InterpolateBackward.apply(grad, input_hw=self.input_hw, **self.resize)


class InterpolateBackward(Function):
    """dx[n, c] = A_h^T dy[n, c] A_w: Interpolate's adjoint."""

    def forward(self, grad_y, *, input_hw, mode, align_corners, scale_factor):
        self.resize = dict(mode=mode, align_corners=align_corners, scale_factor=scale_factor)
        self.output_hw = grad_y.shape[2:]
        return _kernels(grad_y).interpolate_backward(*_contiguous(grad_y), input_hw, mode, align_corners,
                                                     scale_factor)

    def backward(self, grad):
        return Interpolate.apply(grad, output_hw=self.output_hw, **self.resize)


# ---- torch.nn.functional's signatures ------------------------------------------------------------
def as_pair(op, name, value):
    """``3 -> (3, 3)``; a pair stays a pair (as plain ints, so the kernels see one signature)."""
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    if not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(isinstance(v, numbers.Integral)
                                                                         for v in pair):
        raise ValueError(f"{op}: expected {name} as an int or a pair of ints, got {value!r}")
    return tuple(int(v) for v in pair)


def _batched(op, x, operator):
    """Run ``operator`` on a (N, C, H, W) view of ``x``; a (C, H, W) input is one unbatched sample."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected input of shape (N, C, H, W) or (C, H, W), got {x.shape}")
    if x.ndim == 4:
        return operator(x)
    y = operator(reshape(x, (1,) + x.shape))
    return reshape(y, y.shape[1:])


def _same_padding(op, x, kernel_hw, stride, dilation):
    """PyTorch's ``padding="same"``: d(k-1) in total per axis, the odd one extra at the end."""
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions, "
                         f"got stride {stride}")
    totals = [d * (k - 1) for k, d in zip(kernel_hw, dilation)]
    extra_h, extra_w = (t % 2 for t in totals)
    if extra_h or extra_w:
        x = pad(x, (0, extra_w, 0, extra_h))
    return x, tuple(t // 2 for t in totals)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """``torch.nn.functional.conv2d``: weight (C_out, C_in / groups, kh, kw); padding an int, a pair,
    ``"valid"`` or ``"same"``."""
    stride, dilation = as_pair("conv2d", "stride", stride), as_pair("conv2d", "dilation", dilation)

    def convolve(x):
        window = padding
        if padding == "same":
            x, window = _same_padding("conv2d", x, weight.shape[2:], stride, dilation)
        elif padding == "valid":
            window = 0
        return Conv2dOp.apply(x, weight, bias, stride=stride, padding=as_pair("conv2d", "padding", window),
                            dilation=dilation, groups=groups)
    return _batched("conv2d", input, convolve)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """``torch.nn.functional.conv_transpose2d``: weight (C_in, C_out / groups, kh, kw); the output is
    (H - 1) s - 2 p + d (k - 1) + output_padding + 1 per axis."""
    stride = as_pair("conv_transpose2d", "stride", stride)
    padding = as_pair("conv_transpose2d", "padding", padding)
    dilation = as_pair("conv_transpose2d", "dilation", dilation)
    output_padding = as_pair("conv_transpose2d", "output_padding", output_padding)
    if any(o >= s for o, s in zip(output_padding, stride)):
        # PyTorch also takes output_padding < dilation; then the output is wider than conv2d's
        # adjoint reaches (its conv2d has more outputs than x has), which this op does not model.
        raise ValueError(f"conv_transpose2d: expected output_padding smaller than stride, got "
                         f"output_padding {output_padding}, stride {stride}")

    def convolve(x):
        output_hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + o + 1 for n, s, p, d, k, o
                          in zip(x.shape[2:], stride, padding, dilation, weight.shape[2:], output_padding))
        if min(output_hw) < 1:
            raise ValueError(f"conv_transpose2d: expected a positive output size, got {output_hw} for input "
                             f"{x.shape}, kernel {weight.shape[2:]}, stride {stride}, padding {padding}")
        return ConvTranspose2dOp.apply(x, weight, bias, output_hw=output_hw, stride=stride, padding=padding,
                                     dilation=dilation, groups=groups)
    return _batched("conv_transpose2d", input, convolve)


def conv2d_weight(input, weight_size, grad_output, stride=1, padding=0, dilation=1, groups=1):
    """``torch.nn.grad.conv2d_weight``: the weight gradient of conv2d as a differentiable op."""
    return Conv2dWeightGrad.apply(grad_output, input, kernel_hw=tuple(weight_size[2:]),
                                  stride=as_pair("conv2d_weight", "stride", stride),
                                  padding=as_pair("conv2d_weight", "padding", padding),
                                  dilation=as_pair("conv2d_weight", "dilation", dilation), groups=groups)


def _pool_window(op, kernel_size, stride, padding, ceil_mode):
    if ceil_mode:
        raise NotImplementedError(f"{op}: ceil_mode=True is not supported")
    kernel_hw = as_pair(op, "kernel_size", kernel_size)
    stride = kernel_hw if stride is None or stride == [] else as_pair(op, "stride", stride)
    return kernel_hw, stride, as_pair(op, "padding", padding)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """``torch.nn.functional.avg_pool2d`` (stride defaults to the kernel size)."""
    if divisor_override is not None:
        raise NotImplementedError("avg_pool2d: divisor_override is not supported")
    kernel_hw, stride, padding = _pool_window("avg_pool2d", kernel_size, stride, padding, ceil_mode)
    return _batched("avg_pool2d", input, lambda x: AvgPool2dOp.apply(
        x, kernel_hw=kernel_hw, stride=stride, padding=padding, count_include_pad=bool(count_include_pad)))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """``torch.nn.functional.max_pool2d`` (stride defaults to the kernel size; NaN wins, as in PyTorch)."""
    if return_indices:
        raise NotImplementedError("max_pool2d: return_indices=True is not supported")
    kernel_hw, stride, padding = _pool_window("max_pool2d", kernel_size, stride, padding, ceil_mode)
    dilation = as_pair("max_pool2d", "dilation", dilation)
    return _batched("max_pool2d", input, lambda x: MaxPool2dOp.apply(
        x, kernel_hw=kernel_hw, stride=stride, padding=padding, dilation=dilation))


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None, antialias=False):
    """``torch.nn.functional.interpolate`` for 4-D inputs, modes ``"nearest"`` and ``"bilinear"``.

    With ``scale_factor`` the output is floor(in * factor) and, unless ``recompute_scale_factor``,
    source pixels are placed with 1/factor (PyTorch's rule), not with in/out.
    """
    if input.ndim != 4:
        raise ValueError(f"interpolate: expected input of shape (N, C, H, W), got {input.shape}")
    if antialias:
        raise NotImplementedError("interpolate: antialias=True is not supported")
    if align_corners is not None and mode != "bilinear":
        raise ValueError(f"interpolate: align_corners can only be set with mode 'bilinear', "
                         f"got mode {mode!r}")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: expected exactly one of size and scale_factor")
    if size is not None:
        output_hw, factors = as_pair("interpolate", "size", size), None
    else:
        factors = tuple(float(f) for f in ((scale_factor,) * 2 if isinstance(scale_factor, (int, float))
                                           else scale_factor))
        output_hw = tuple(int(n * f) for n, f in zip(input.shape[2:], factors))
        factors = None if recompute_scale_factor else factors
    return Interpolate.apply(input, output_hw=output_hw, mode=mode, align_corners=bool(align_corners),
                             scale_factor=factors)
