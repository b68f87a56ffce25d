"""Convolution kernels: ``cpu`` against ``reference`` on drawn configurations (odd sizes, stride
larger than the kernel, dilation, groups, batch 1), ``reference`` against PyTorch, the adjoint
identities that define the backward kernels, pooling and interpolation against PyTorch, and the
boundary checks."""
from unittest import mock

import numpy as np
import pytest
from conftest import require_torch
from gradcases.conv import conv_configs, pool_inputs
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from scratchgen.kernels.conv import cpu, reference
from scratchgen.kernels.conv._geometry import output_size

TOLERANCES = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
pairs = st.tuples


@st.composite
def kernel_configs(draw):
    """A drawn convolution (see ``gradcases.conv.conv_configs``), with or without bias, and a seed."""
    return draw(conv_configs()) | dict(bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


def conv_arrays(config, dtype):
    """x, weight, bias and an output gradient for ``config``, drawn from its seed."""
    rng = np.random.default_rng(config["seed"])
    x = rng.standard_normal((config["batch"], config["in_channels"]) + config["input_hw"]).astype(dtype)
    weight = rng.standard_normal((config["out_channels"], config["in_channels"] // config["groups"])
                                 + config["kernel"]).astype(dtype)
    bias = rng.standard_normal(config["out_channels"]).astype(dtype) if config["bias"] else None
    y = reference.conv2d_forward(x, weight, bias, *geometry(config))
    return x, weight, bias, rng.standard_normal(y.shape).astype(dtype)


def geometry(config):
    return config["stride"], config["padding"], config["dilation"], config["groups"]


def all_three(kernels, x, weight, bias, grad_y, config):
    """Forward, data gradient and weight gradient from one implementation."""
    return (kernels.conv2d_forward(x, weight, bias, *geometry(config)),
            kernels.conv2d_backward_data(grad_y, weight, config["input_hw"], *geometry(config)),
            kernels.conv2d_backward_weight(grad_y, x, config["kernel"], *geometry(config)))


@settings(max_examples=40)
@given(config=kernel_configs(), dtype=st.sampled_from([np.float32, np.float64]))
def test_cpu_matches_reference(config, dtype):
    arrays = conv_arrays(config, dtype)
    for name, ours, expected in zip(("forward", "backward_data", "backward_weight"),
                                    all_three(cpu, *arrays, config), all_three(reference, *arrays, config)):
        assert ours.dtype == dtype and ours.shape == expected.shape, name
        np.testing.assert_allclose(ours, expected, **TOLERANCES[dtype], err_msg=name)


# Each cpu path on drawn shapes, whatever the dispatch table would choose: "pointwise" on the drawn
# shape made 1x1 / stride 1 / unpadded; a chunk budget of a few bytes makes one chunk per sample.
PATH_CONFIGS = {"per-sample": {}, "channels-last": {},
                "pointwise": dict(kernel=(1, 1), stride=(1, 1), padding=(0, 0))}


@settings(max_examples=60)
@given(config=kernel_configs(), dtype=st.sampled_from([np.float32, np.float64]),
       path=st.sampled_from(sorted(PATH_CONFIGS)), tiny_chunks=st.booleans())
def test_every_cpu_path_matches_reference(config, dtype, path, tiny_chunks):
    config = config | PATH_CONFIGS[path]
    x, weight, bias, grad_y = conv_arrays(config, dtype)
    with mock.patch.object(cpu, "CHUNK_BYTES", 8 if tiny_chunks else cpu.CHUNK_BYTES):
        ours = (cpu.conv2d_forward(x, weight, bias, *geometry(config), path=path),
                cpu.conv2d_backward_data(grad_y, weight, config["input_hw"], *geometry(config), path=path),
                cpu.conv2d_backward_weight(grad_y, x, config["kernel"], *geometry(config), path=path))
    for name, got, expected in zip(("forward", "backward_data", "backward_weight"), ours,
                                   all_three(reference, x, weight, bias, grad_y, config)):
        assert got.dtype == dtype and got.shape == expected.shape, name
        np.testing.assert_allclose(got, expected, **TOLERANCES[dtype], err_msg=name)


@settings(max_examples=40)
@given(config=kernel_configs(), dtype=st.sampled_from([np.float32, np.float64]), tiny_chunks=st.booleans())
def test_flipped_data_gradient_matches_reference(config, dtype, tiny_chunks):
    """The data gradient as a forward convolution of grad_y (stride 1, padding at most the dilated
    kernel's reach), on drawn shapes made to fit, whatever path that forward takes."""
    padding = tuple(min(p, d * (k - 1))
                    for p, d, k in zip(config["padding"], config["dilation"], config["kernel"]))
    config = config | dict(stride=(1, 1), padding=padding)
    assume(min(output_size(*axis) for axis in zip(config["input_hw"], config["kernel"], (1, 1), padding,
                                                  config["dilation"])) >= 1)
    x, weight, bias, grad_y = conv_arrays(config, dtype)
    with mock.patch.object(cpu, "CHUNK_BYTES", 8 if tiny_chunks else cpu.CHUNK_BYTES):
        got = cpu.conv2d_backward_data(grad_y, weight, config["input_hw"], *geometry(config), path="flipped")
    expected = reference.conv2d_backward_data(grad_y, weight, config["input_hw"], *geometry(config))
    assert got.dtype == dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, **TOLERANCES[dtype])


def test_flipped_data_gradient_refuses_what_it_cannot_compute():
    grad_y, weight = np.zeros((1, 2, 2, 2)), np.zeros((2, 3, 3, 3))
    with pytest.raises(ValueError, match="'flipped' path needs stride 1"):
        cpu.conv2d_backward_data(grad_y, weight, (4, 4), (2, 2), (1, 1), (1, 1), 1, path="flipped")
    with pytest.raises(ValueError, match="'flipped' path needs stride 1"):  # padding 3 > d (k - 1) = 2
        cpu.conv2d_backward_data(np.zeros((1, 2, 6, 6)), weight, (2, 2), (1, 1), (3, 3), (1, 1), 1,
                                 path="flipped")


def test_conv2d_gradients_through_the_flipped_path():
    """F.conv2d on a narrowing stride-1 convolution (its data gradient takes "flipped"), gradchecked
    in float64 to first and second order (double backward runs the data gradient again)."""
    import scratchgen as sg
    import scratchgen.functional as F
    from scratchgen.testing import gradcheck, gradgradcheck
    assert cpu.data_gradient_path((2, 6, 3, 3), 2, (1, 1), (1, 2), (1, 1), (4, 5)) == "flipped"
    rng = np.random.default_rng(0)
    x, weight = (sg.tensor(rng.standard_normal(shape), requires_grad=True)
                 for shape in ((2, 6, 4, 3), (2, 3, 3, 3)))
    flipped = mock.patch.object(cpu, "_backward_data_flipped", wraps=cpu._backward_data_flipped)
    with sg.use_kernels("cpu"), flipped as spy:
        for check in (gradcheck, gradgradcheck):
            assert check(lambda x, w: F.conv2d(x, w, padding=(1, 2), groups=2), (x, weight))
    assert spy.called


def test_the_data_gradient_takes_the_flipped_path_where_channels_narrow():
    unet_3x3 = dict(stride=(1, 1), padding=(1, 1), dilation=(1, 1), output_hw=(8, 8))
    assert cpu.data_gradient_path((1, 32, 3, 3), 1, **unet_3x3) == "flipped"        # the U-Net's output conv
    assert cpu.data_gradient_path((32, 96, 3, 3), 1, **unet_3x3) == "flipped"
    assert cpu.data_gradient_path((32, 32, 3, 3), 1, **unet_3x3) == "channels-last"
    assert cpu.data_gradient_path((64, 32, 3, 3), 1, **unet_3x3) == "channels-last"
    assert cpu.data_gradient_path((32, 96, 1, 1), 1, **unet_3x3 | dict(padding=(0, 0))) == "pointwise"
    assert cpu.data_gradient_path((32, 96, 3, 3), 1, **unet_3x3 | dict(stride=(2, 2))) == "channels-last"


def test_the_dispatch_table_picks_by_map_size_and_kernel():
    unet_3x3 = dict(kernel_hw=(3, 3), stride=(1, 1), padding=(1, 1))
    assert cpu.conv_path(**unet_3x3, output_hw=(4, 4), rows_per_group=64 * 9) == "channels-last"
    assert cpu.conv_path(**unet_3x3, output_hw=(8, 8), rows_per_group=32 * 9) == "channels-last"
    assert cpu.conv_path(**unet_3x3, output_hw=(16, 16), rows_per_group=32 * 9) == "per-sample"
    assert cpu.conv_path(**unet_3x3, output_hw=(8, 8), rows_per_group=1 * 9) == "per-sample"
    assert cpu.conv_path((4, 4), (2, 2), (1, 1), (2, 2), 32 * 16) == "channels-last"   # DCGAN's 4x4 -> 2x2
    assert cpu.conv_path((1, 1), (1, 1), (0, 0), (4, 4), 192) == "pointwise"
    assert cpu.conv_path((1, 1), (2, 2), (0, 0), (4, 4), 192) == "channels-last"
    assert set(cpu.FORWARD_PATHS) == set(cpu.BACKWARD_DATA_PATHS) == set(PATH_CONFIGS)


@settings(max_examples=25)
@given(config=kernel_configs())
def test_reference_matches_torch(config):
    torch = require_torch()
    x, weight, bias, grad_y = conv_arrays(config, np.float64)
    tx, tweight = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    tbias = None if bias is None else torch.tensor(bias)
    ty = torch.nn.functional.conv2d(tx, tweight, tbias, *geometry(config))
    ty.backward(torch.tensor(grad_y))
    for ours, theirs in zip(all_three(reference, x, weight, bias, grad_y, config),
                            (ty.detach(), tx.grad, tweight.grad)):
        np.testing.assert_allclose(ours, theirs.numpy(), **TOLERANCES[np.float64])


@settings(max_examples=25)
@given(config=kernel_configs())
def test_backward_kernels_are_adjoints(config):
    """<conv(x, w), g> = <x, backward_data(g, w)> = <w, backward_weight(g, x)>: the definition."""
    x, weight, _, grad_y = conv_arrays(config | {"bias": False}, np.float64)
    y, grad_x, grad_weight = all_three(reference, x, weight, None, grad_y, config)
    pairing = np.vdot(y, grad_y)
    np.testing.assert_allclose([np.vdot(x, grad_x), np.vdot(weight, grad_weight)], [pairing, pairing],
                               rtol=1e-10, atol=1e-10)


def test_benchmark_shapes_match_reference():
    """The benchmark workloads (8x8 -> 16x16 transposed, 3x3 same) once, in float32."""
    rng = np.random.default_rng(0)
    for x_shape, w_shape, stride, padding in (((4, 32, 16, 16), (64, 32, 3, 3), 1, 1),
                                              ((4, 32, 16, 16), (64, 32, 4, 4), 2, 1)):
        x, weight = (rng.standard_normal(shape, dtype=np.float32) for shape in (x_shape, w_shape))
        y = cpu.conv2d_forward(x, weight, None, (stride,) * 2, (padding,) * 2, (1, 1), 1)
        grad_y = rng.standard_normal(y.shape, dtype=np.float32)
        config = dict(input_hw=x_shape[2:], kernel=w_shape[2:], stride=(stride,) * 2, padding=(padding,) * 2,
                      dilation=(1, 1), groups=1)
        for ours, expected in zip(all_three(cpu, x, weight, None, grad_y, config),
                                  all_three(reference, x, weight, None, grad_y, config)):
            np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4)  # sums of 288-512 terms


# ---- pooling and interpolation (cpu: the reference's pooling; interpolation its own on small maps) ------
def pool_window(drawn):
    """A drawn pooling (see ``gradcases.conv.pool_inputs``) as a contiguous x and the window pairs."""
    x, params = drawn
    return np.ascontiguousarray(x), dict(kernel=params["kernel_size"], stride=params["stride"],
                                         padding=params["padding"], dilation=params.get("dilation", (1, 1)))


@settings(max_examples=30)
@given(drawn=pool_inputs(dilated=False), count_include_pad=st.booleans())
def test_avg_pool2d_matches_torch(drawn, count_include_pad):
    torch = require_torch()
    x, c = pool_window(drawn)
    args = (c["kernel"], c["stride"], c["padding"], count_include_pad)
    y = cpu.avg_pool2d_forward(x, *args)
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.avg_pool2d(tx, c["kernel"], c["stride"], c["padding"],
                                        count_include_pad=count_include_pad)
    grad_y = np.cos(np.arange(y.size)).reshape(y.shape)
    ty.backward(torch.tensor(grad_y))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(cpu.avg_pool2d_backward(grad_y, x.shape[2:], *args), tx.grad.numpy(),
                               rtol=1e-12, atol=1e-12)


@settings(max_examples=30)
@given(drawn=pool_inputs(dilated=True))
def test_max_pool2d_matches_torch_and_its_gather_is_adjoint(drawn):
    torch = require_torch()
    x, c = pool_window(drawn)
    window = (c["kernel"], c["stride"], c["padding"], c["dilation"])
    y, taps = cpu.max_pool2d_forward(x, *window)
    assume(np.isfinite(y).all())  # a dilated window may hold only padding; PyTorch's gradient is then garbage
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, *window)
    grad_y = np.cos(np.arange(y.size)).reshape(y.shape)
    ty.backward(torch.tensor(grad_y))
    grad_x = cpu.max_pool2d_backward(grad_y, taps, x.shape[2:], *window)
    np.testing.assert_array_equal(y, ty.detach().numpy())
    np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(cpu.max_pool2d_gather(x, taps, *window), y)
    probe = np.sin(np.arange(x.size)).reshape(x.shape)  # <gather(v), g> = <v, backward(g)>
    gathered = cpu.max_pool2d_gather(probe, taps, *window)
    np.testing.assert_allclose(np.vdot(gathered, grad_y), np.vdot(probe, grad_x), rtol=1e-12, atol=1e-12)


@settings(max_examples=40)
@given(input_hw=pairs(st.integers(1, 6), st.integers(1, 6)), mode=st.sampled_from(["nearest", "bilinear"]),
       align_corners=st.booleans(), by_factor=st.booleans(),
       factor=pairs(st.sampled_from([0.5, 0.7, 1.0, 1.5, 2.0, 2.5, 3.0]),
                    st.sampled_from([0.6, 1.0, 2.0, 1.3])),
       size=pairs(st.integers(1, 9), st.integers(1, 9)), kronecker=st.booleans())
def test_interpolate_matches_torch(input_hw, mode, align_corners, by_factor, factor, size, kronecker):
    """cpu's interpolation both ways: one product with the Kronecker matrix (small maps) or two per plane."""
    torch = require_torch()
    assume(not by_factor or min(int(n * f) for n, f in zip(input_hw, factor)) >= 1)
    align_corners = align_corners if mode == "bilinear" else None
    x = np.random.default_rng(sum(input_hw)).standard_normal((2, 3) + input_hw)
    tx = torch.tensor(x, requires_grad=True)
    resize = dict(scale_factor=factor) if by_factor else dict(size=size)
    ty = torch.nn.functional.interpolate(tx, mode=mode, align_corners=align_corners, **resize)
    grad_y = np.cos(np.arange(ty.numel())).reshape(ty.shape)
    ty.backward(torch.tensor(grad_y))
    args = (mode, bool(align_corners), factor if by_factor else None)
    with mock.patch.object(cpu, "KRONECKER_MAX_ENTRIES", cpu.KRONECKER_MAX_ENTRIES if kronecker else 0):
        y, grad_x = cpu.interpolate_forward(x, tuple(ty.shape[2:]), *args), \
            cpu.interpolate_backward(grad_y, input_hw, *args)
    # PyTorch places bilinear sources in float32 math too
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(grad_x, tx.grad.numpy(), rtol=1e-6, atol=1e-6)


# ---- boundary checks ---------------------------------------------------------------------------
@pytest.mark.parametrize("kernels", [reference, cpu], ids=["reference", "cpu"])
def test_conv_rejects_bad_inputs_naming_the_op(kernels):
    x, weight = np.zeros((1, 4, 5, 5), np.float32), np.zeros((6, 2, 3, 3), np.float32)
    window = ((1, 1), (0, 0), (1, 1))
    with pytest.raises(TypeError, match="conv2d_forward: expected all inputs of one dtype"):
        kernels.conv2d_forward(x, weight.astype(np.float64), None, *window, 2)
    with pytest.raises(ValueError, match="conv2d_forward: expected x to be C-contiguous"):
        kernels.conv2d_forward(x.transpose(0, 1, 3, 2), weight, None, *window, 2)
    with pytest.raises(ValueError, match="conv2d_forward: expected in_channels = groups"):
        kernels.conv2d_forward(x, weight, None, *window, 1)
    with pytest.raises(ValueError, match="conv2d_forward: expected the .* kernel .* to fit"):
        kernels.conv2d_forward(np.zeros((1, 4, 2, 5), np.float32), weight, None, *window, 2)
    with pytest.raises(ValueError, match=r"conv2d_forward: expected bias of shape \(6,\)"):
        kernels.conv2d_forward(x, weight, np.zeros(5, np.float32), *window, 2)
    with pytest.raises(ValueError, match=r"conv2d_backward_data: expected grad_y of shape \(1, 6, 3, 3\)"):
        kernels.conv2d_backward_data(np.zeros((1, 6, 4, 4), np.float32), weight, (5, 5), *window, 2)
    with pytest.raises(ValueError, match=r"conv2d_backward_weight: expected stride as an \(h, w\) pair"):
        kernels.conv2d_backward_weight(np.zeros((1, 6, 3, 3), np.float32), x, (3, 3), (0, 1), (0, 0), (1, 1),
                                       2)
