"""Gradient clipping against PyTorch (norms 1, 2, 3, inf; clipping or not), and the exponential
moving average of weights (update rule, swapping in and out, state_dict)."""
import math

import numpy as np
import pytest

import scratchgen as sg
from conftest import require_torch
from scratchgen import nn
from scratchgen.nn.utils import clip_grad_norm_, clip_grad_value_
from scratchgen.optim import ExponentialMovingAverage


def _gradients(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) * 3 for shape in [(3, 4), (5,), (2, 2)]]


def _with_grads(parameter, tensor, grads):
    """Parameters (made by ``parameter``) whose ``.grad`` holds ``grads`` (made by ``tensor``)."""
    params = [parameter(tensor(np.zeros_like(g))) for g in grads]
    for param, grad in zip(params, grads):
        param.grad = tensor(grad.copy())
    return params


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_pytorch(norm_type, max_norm):
    torch = require_torch()
    grads = _gradients()
    ours = _with_grads(nn.Parameter, sg.tensor, grads)
    theirs = _with_grads(torch.nn.Parameter, torch.tensor, grads)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    total_torch = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, sg.Tensor) and total.ndim == 0
    np.testing.assert_allclose(total.item(), total_torch.item(), rtol=1e-12)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-12)
    clipped_norm = clip_grad_norm_(ours, max_norm, norm_type=norm_type).item()
    assert clipped_norm <= max_norm * (1 + 1e-6)


def test_clip_grad_norm_nonfinite_and_empty():
    param = nn.Parameter(sg.zeros(2))
    param.grad = sg.tensor([np.inf, 1.0])
    with pytest.raises(RuntimeError, match="error_if_nonfinite"):
        clip_grad_norm_([param], 1.0, error_if_nonfinite=True)
    assert clip_grad_norm_([nn.Parameter(sg.zeros(2))], 1.0).item() == 0.0  # no gradients at all


def test_clip_grad_value():
    param = nn.Parameter(sg.zeros(4))
    param.grad = sg.tensor([-3.0, -0.5, 0.2, 9.0])
    clip_grad_value_(param, 1.0)
    np.testing.assert_array_equal(param.grad.numpy(), np.float32([-1.0, -0.5, 0.2, 1.0]))


def _model():
    sg.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))


def test_ema_update_rule_and_buffers_copied():
    model = _model()
    ema = ExponentialMovingAverage(model, decay=0.9)
    start = {name: value.copy() for name, value in model.state_dict().items()}
    model(sg.randn(5, 3))  # training mode: running statistics move
    for param in model.parameters():
        param.data += 1.0
    ema.update()
    shadow = ema.state_dict()
    np.testing.assert_allclose(shadow["0.weight"], start["0.weight"] + 0.1, rtol=1e-6)
    np.testing.assert_array_equal(shadow["1.running_mean"], model.state_dict()["1.running_mean"])
    assert shadow["1.num_batches_tracked"] == 1


def test_ema_swaps_weights_in_and_out():
    model = _model()
    ema = ExponentialMovingAverage(model, decay=0.5)
    for param in model.parameters():
        param.data *= 3
    ema.update()
    trained = {name: value.copy() for name, value in model.state_dict().items()}
    with ema.average_parameters() as swapped:
        assert swapped is model
        for name, value in model.state_dict().items():
            np.testing.assert_array_equal(value, ema.state_dict()[name])
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, trained[name])
    other = _model()
    ema.copy_to(other)
    np.testing.assert_array_equal(other.state_dict()["2.bias"], ema.state_dict()["2.bias"])
    with pytest.raises(RuntimeError, match="store"):
        ema.restore()


def test_ema_state_dict_round_trip():
    model = _model()
    ema = ExponentialMovingAverage(model, decay=0.99)
    for param in model.parameters():
        param.data -= 0.3
    ema.update()
    fresh = ExponentialMovingAverage(_model(), decay=0.99)
    fresh.load_state_dict(ema.state_dict())
    for name, value in ema.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[name], value)
    with pytest.raises(KeyError, match="missing"):
        fresh.load_state_dict({"0.weight": ema.state_dict()["0.weight"]})
