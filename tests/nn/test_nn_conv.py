"""Convolution layers against PyTorch: parameter names and layouts (a state_dict moves both ways and
gives the same outputs and gradients), default initialisation bounds, ConvTranspose2d's
``output_size``, and the pooling / upsampling layers."""
import math

import numpy as np
import pytest

import scratchgen as sg
from conftest import require_torch
from scratchgen import nn

LAYERS = {  # name: (constructor arguments, input shape)
    "Conv2d": ((4, 6, 3), dict(stride=2, padding=1, groups=2), (2, 4, 7, 9)),
    "Conv2d-same-no-bias": ((3, 5, (2, 3)), dict(padding="same", dilation=(1, 2), bias=False), (1, 3, 6, 5)),
    "ConvTranspose2d": ((4, 6, 4), dict(stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 3)),
}


# PyTorch warns that it pads a copy of the input for an even 'same' kernel: its business, not ours
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths:UserWarning")
@pytest.mark.parametrize("name", LAYERS)
def test_conv_layers_match_torch_through_state_dict(name):
    torch = require_torch()
    args, kwargs, input_shape = LAYERS[name]
    kind = name.split("-")[0]
    ours, theirs = getattr(nn, kind)(*args, **kwargs), getattr(torch.nn, kind)(*args, **kwargs)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
           {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal(input_shape).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    y, ty = ours(sg.Tensor(x)), theirs(tx)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-4, atol=1e-5)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    for key, parameter in ours.named_parameters():
        np.testing.assert_allclose(parameter.grad.data, dict(theirs.named_parameters())[key].grad.numpy(),
                                   rtol=1e-4, atol=1e-4, err_msg=key)


@pytest.mark.parametrize("kind, weight_shape", [("Conv2d", (8, 2, 3, 5)), ("ConvTranspose2d", (4, 4, 3, 5))])
def test_default_initialisation_is_pytorchs(kind, weight_shape):
    """kaiming_uniform(a=sqrt(5)) and the bias both give U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    fan_in = weight.shape[1] * kh * kw; the draws must fill that range, not just stay inside it."""
    layer = getattr(nn, kind)(4, 8, (3, 5), groups=2)
    assert layer.weight.shape == weight_shape and layer.bias.shape == (8,)
    bound = 1 / math.sqrt(weight_shape[1] * 15)
    for values in (layer.weight.data, layer.bias.data):
        assert values.dtype == np.float32
        assert np.abs(values).max() <= bound and np.abs(values).max() > 0.6 * bound


def test_conv_transpose2d_output_size_picks_the_output_padding():
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    x = sg.Tensor(np.zeros((1, 2, 4, 4), np.float32))
    assert layer(x).shape == (1, 3, 7, 7)
    assert layer(x, output_size=(8, 7)).shape == (1, 3, 8, 7)
    with pytest.raises(ValueError, match="ConvTranspose2d: requested output size"):
        layer(x, output_size=(9, 9))


@pytest.mark.parametrize("kind, args", [("AvgPool2d", (3, 2, 1)), ("MaxPool2d", (2,)),
                                        ("Upsample", (None, 2.0, "bilinear")), ("Upsample", ((5, 7),))])
def test_pooling_and_upsampling_layers_match_torch(kind, args):
    torch = require_torch()
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 5)).astype(np.float32)
    expected = getattr(torch.nn, kind)(*args)(torch.tensor(x)).numpy()
    np.testing.assert_allclose(getattr(nn, kind)(*args)(sg.Tensor(x)).data, expected, rtol=1e-5, atol=1e-6)


def test_layers_reject_what_they_do_not_support():
    with pytest.raises(ValueError, match="Conv2d: expected in_channels and out_channels divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(NotImplementedError, match="Conv2d: padding_mode 'reflect'"):
        nn.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(NotImplementedError, match="max_pool2d: ceil_mode=True"):
        nn.MaxPool2d(2, ceil_mode=True)(sg.Tensor(np.zeros((1, 1, 4, 4), np.float32)))
