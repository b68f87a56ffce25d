"""Property-test cases for convolution, pooling and interpolation (``scratchgen.ops.conv``).

Convolutions are bilinear, so their cases carry ``second_order``: gradgradcheck walks through the
backward Functions (ConvTranspose2dOp, Conv2dWeightGrad) as a WGAN-GP critic would. The pooling and
interpolation backwards are Functions too; the ``*_backward`` cases put them in the graph by
returning the input gradient itself (made with ``create_graph=True``), and
``max_pool2d_double_backward`` reaches the gather that is the max-pool backward's own derivative.
Sizes stay tiny: every finite-difference coordinate is two runs of the op.
"""
import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.autograd import grad
from scratchgen.kernels.conv import reference
from scratchgen.kernels.conv._geometry import output_hw
from scratchgen.ops.conv import conv2d_weight
from scratchgen.testing.strategies import GradCase, arrays, has_ties

pairs = st.tuples


@st.composite
def conv_configs(draw, max_channels=3, max_out=5, max_batch=3):
    """A convolution with every knob drawn (stride above the kernel, dilation, groups, odd sizes)
    and the smallest input giving the drawn output size, plus up to stride - 1 unused rows."""
    groups = draw(st.integers(1, 3))
    kernel = draw(pairs(st.integers(1, 4), st.integers(1, 4)))
    stride = draw(pairs(st.integers(1, 5), st.integers(1, 5)))
    dilation = draw(pairs(st.integers(1, 3), st.integers(1, 3)))
    padding = draw(pairs(st.integers(0, 2), st.integers(0, 2)))
    out_hw = draw(pairs(st.integers(1, max_out), st.integers(1, max_out)))
    input_hw = tuple(max(1, (o - 1) * s + d * (k - 1) + 1 - 2 * p + draw(st.integers(0, s - 1)))
                     for o, s, d, k, p in zip(out_hw, stride, dilation, kernel, padding))
    channels = [groups * draw(st.integers(1, max_channels)) for _ in range(2)]
    return dict(batch=draw(st.integers(1, max_batch)), in_channels=channels[0], out_channels=channels[1],
                input_hw=input_hw, kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                groups=groups)


def window(config):
    return {name: config[name] for name in ("stride", "padding", "dilation", "groups")}


def output_shape(config):
    hw = output_hw("conv", config["input_hw"], config["kernel"], config["stride"], config["padding"],
                   config["dilation"])
    return (config["batch"], config["out_channels"]) + hw


@st.composite
def conv2d_inputs(draw):
    c = draw(conv_configs(max_channels=2, max_out=3, max_batch=2))
    x = draw(arrays((c["batch"], c["in_channels"]) + c["input_hw"]))
    weight = draw(arrays((c["out_channels"], c["in_channels"] // c["groups"]) + c["kernel"]))
    return (x, weight, draw(arrays((c["out_channels"],)))), window(c)


@st.composite
def conv_transpose2d_inputs(draw):
    """conv2d's configuration read backwards: its output is this op's input."""
    c = draw(conv_configs(max_channels=2, max_out=3, max_batch=2))
    x = draw(arrays(output_shape(c)))
    weight = draw(arrays((c["out_channels"], c["in_channels"] // c["groups"]) + c["kernel"]))
    output_padding = tuple(draw(st.integers(0, s - 1)) for s in c["stride"])
    assume(all((n - 1) * s - 2 * p + d * (k - 1) + 1 >= 1 for n, s, p, d, k
               in zip(x.shape[2:], c["stride"], c["padding"], c["dilation"], c["kernel"])))
    return (x, weight, draw(arrays((c["in_channels"],)))), dict(window(c), output_padding=output_padding)


@st.composite
def conv2d_weight_inputs(draw):
    c = draw(conv_configs(max_channels=2, max_out=3, max_batch=2))
    x, grad_y = draw(arrays((c["batch"], c["in_channels"]) + c["input_hw"])), draw(arrays(output_shape(c)))
    weight_size = (c["out_channels"], c["in_channels"] // c["groups"]) + c["kernel"]
    return (x, grad_y), dict(window(c), weight_size=weight_size)


@st.composite
def pool_inputs(draw, dilated):
    """x (N, C, H, W) and a pooling window; padding at most half the kernel (PyTorch's rule)."""
    kernel = draw(pairs(st.integers(1, 3), st.integers(1, 3)))
    dilation = draw(pairs(st.integers(1, 2), st.integers(1, 2))) if dilated else (1, 1)
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    stride = draw(pairs(st.integers(1, 3), st.integers(1, 3)))
    input_hw = tuple(max(1, d * (k - 1) + 1 - 2 * p) + draw(st.integers(0, 3))
                     for k, d, p in zip(kernel, dilation, padding))
    x = draw(arrays((draw(st.integers(1, 2)), draw(st.integers(1, 2))) + input_hw))
    params = dict(kernel_size=kernel, stride=stride, padding=padding)
    return x, params | (dict(dilation=dilation) if dilated else {})


def _with_gradient(inputs, op):
    """Output gradients v as the arrays under test, the op's input x moved into the parameters:
    the backward maps below are linear in v, and x only fixes shapes (and max pooling's taps)."""
    @st.composite
    def draw_with_gradient(draw):
        (x,), params = draw(inputs)
        return (draw(arrays(op(sg.Tensor(x), **params).shape)),), dict(params, x=x)
    return draw_with_gradient


def max_pool_is_kinked(x, kernel_size, stride, padding, dilation):
    """Reject near-ties inside a window (max is not smooth there) and all-padding windows."""
    cols = reference.windows(np.ascontiguousarray(x), kernel_size, stride, padding, dilation,
                             pad_value=-np.inf)
    cols = np.moveaxis(cols.reshape(cols.shape[:2] + (-1,) + cols.shape[4:]), 2, -1)
    return bool(np.isinf(cols.max(axis=-1)).any() or has_ties(np.where(np.isinf(cols), -1e9, cols), axis=-1))


@st.composite
def interpolate_inputs(draw):
    mode = draw(st.sampled_from(["nearest", "bilinear"]))
    x = draw(arrays((draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 4)),
                     draw(st.integers(1, 4)))))
    resize = draw(st.one_of(
        st.fixed_dictionaries({"size": pairs(st.integers(1, 5), st.integers(1, 5))}),
        st.fixed_dictionaries({"scale_factor": pairs(st.sampled_from([1.0, 1.5, 2.0]),
                                                     st.sampled_from([0.7, 1.0, 2.0, 2.5]))})))
    if "scale_factor" in resize and min(int(n * f) for n, f in zip(x.shape[2:], resize["scale_factor"])) < 1:
        resize = {"size": x.shape[2:]}
    corners = {"align_corners": draw(st.booleans())} if mode == "bilinear" else {}
    return (x,), dict(resize, mode=mode, **corners)


# ---- gradients as ops: the backward Functions in the forward graph -------------------------------
def input_gradient(op):
    """(v; x) -> d<op(x), v>/dx, kept differentiable: the op's backward becomes the op under test."""
    def gradient(v, x, **params):
        x = sg.Tensor(np.asarray(x, dtype=v.dtype), requires_grad=True)
        return grad(op(x, **params), x, grad_outputs=v, create_graph=True)[0]
    return gradient


def torch_input_gradient(name):
    def gradient(v, x, **params):
        import torch
        x = torch.tensor(x, dtype=v.dtype, requires_grad=True)
        y = getattr(torch.nn.functional, name)(x, **params)
        return torch.autograd.grad(y, x, grad_outputs=v, create_graph=True)[0]
    return gradient


def max_pool2d_double_backward(v, u, x, **params):
    """d< d<max_pool(x), v>/dx, u >/dv: u read back at the window maxima (MaxPool2dGather)."""
    first = input_gradient(F.max_pool2d)(v, x, **params)
    return grad(first, v, grad_outputs=u, create_graph=True)[0]


def torch_max_pool2d_double_backward(v, u, x, **params):
    import torch
    first = torch_input_gradient("max_pool2d")(v, x, **params)
    return torch.autograd.grad(first, v, grad_outputs=u, create_graph=True)[0]


@st.composite
def max_pool_double_inputs(draw):
    (v,), params = draw(_with_gradient(max_pool_inputs, F.max_pool2d)())
    return (v, draw(arrays(params["x"].shape))), params


def max_pool_gradient_is_kinked(*arrays, x, **params):
    return max_pool_is_kinked(x, **params)


def torch_functional(name):
    def call(*args, **params):
        import torch
        return getattr(torch.nn.functional, name)(*args, **params)
    return call


def torch_conv2d_weight(x, grad_y, **params):
    import torch
    return torch.nn.grad.conv2d_weight(x, params.pop("weight_size"), grad_y, **params)


avg_pool_inputs = pool_inputs(dilated=False).map(lambda d: ((d[0],), d[1]))
max_pool_inputs = pool_inputs(dilated=True).map(lambda d: ((d[0],), d[1]))

CASES = [
    GradCase("conv2d", F.conv2d, conv2d_inputs(), torch_functional("conv2d"), second_order=True),
    GradCase("conv_transpose2d", F.conv_transpose2d, conv_transpose2d_inputs(),
             torch_functional("conv_transpose2d"), second_order=True),
    GradCase("conv2d_weight", lambda x, grad_y, weight_size, **window: conv2d_weight(x, weight_size, grad_y,
                                                                                    **window),
             conv2d_weight_inputs(), torch_conv2d_weight, second_order=True),
    GradCase("avg_pool2d", F.avg_pool2d, avg_pool_inputs, torch_functional("avg_pool2d"), second_order=True),
    GradCase("avg_pool2d_backward", input_gradient(F.avg_pool2d),
             _with_gradient(avg_pool_inputs, F.avg_pool2d)(), torch_input_gradient("avg_pool2d"),
             second_order=True),
    GradCase("max_pool2d", F.max_pool2d, max_pool_inputs, torch_functional("max_pool2d"),
             reject=max_pool_is_kinked, second_order=True),
    GradCase("max_pool2d_backward", input_gradient(F.max_pool2d),
             _with_gradient(max_pool_inputs, F.max_pool2d)(), torch_input_gradient("max_pool2d"),
             reject=max_pool_gradient_is_kinked, second_order=True),
    GradCase("max_pool2d_double_backward", max_pool2d_double_backward, max_pool_double_inputs(),
             torch_max_pool2d_double_backward, reject=max_pool_gradient_is_kinked),
    GradCase("interpolate", F.interpolate, interpolate_inputs(), torch_functional("interpolate"),
             second_order=True),
    GradCase("interpolate_backward", input_gradient(F.interpolate),
             _with_gradient(interpolate_inputs(), F.interpolate)(), torch_input_gradient("interpolate"),
             second_order=True),
]
