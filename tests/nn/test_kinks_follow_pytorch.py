"""Every op with a kink or a tie takes PyTorch's derivative there: relu, elu, leaky_relu and
hardtanh at their corners, clamp at its bounds, abs at 0, max/min/amax/amin/maximum/minimum at
ties, max pooling with tied windows. Inputs sit exactly on the kinks (and beside them)."""
import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F

KINKS = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 0.0, -1.0, 1.0], dtype=np.float64)

CASES = {
    "relu": (lambda x: F.relu(x), lambda t, x: t.nn.functional.relu(x)),
    "elu": (lambda x: F.elu(x), lambda t, x: t.nn.functional.elu(x)),
    "elu alpha 0.5": (lambda x: F.elu(x, 0.5), lambda t, x: t.nn.functional.elu(x, 0.5)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), lambda t, x: t.nn.functional.leaky_relu(x, 0.1)),
    "hardtanh": (lambda x: F.hardtanh(x), lambda t, x: t.nn.functional.hardtanh(x)),
    "hardtanh -0.5..1": (lambda x: F.hardtanh(x, -0.5, 1.0), lambda t, x: t.nn.functional.hardtanh(x, -0.5, 1.0)),
    "clamp": (lambda x: x.clamp(-1.0, 1.0), lambda t, x: x.clamp(-1.0, 1.0)),
    "clamp min": (lambda x: x.clamp(min=0.0), lambda t, x: x.clamp(min=0.0)),
    "abs": (lambda x: x.abs(), lambda t, x: x.abs()),
    "max": (lambda x: x.max(), lambda t, x: x.max()),
    "min": (lambda x: x.min(), lambda t, x: x.min()),
    "amax": (lambda x: x.reshape(2, 5).amax(1), lambda t, x: x.reshape(2, 5).amax(1)),
    "amin": (lambda x: x.reshape(5, 2).amin(0), lambda t, x: x.reshape(5, 2).amin(0)),
    "max dim": (lambda x: x.reshape(5, 2).max(1)[0], lambda t, x: x.reshape(5, 2).max(1)[0]),
    "maximum": (lambda x: sg.maximum(x, x.flip(0) if hasattr(x, "flip") else x[::-1]),
                lambda t, x: t.maximum(x, x.flip(0))),
    "minimum": (lambda x: sg.minimum(x, x * 0), lambda t, x: t.minimum(x, x * 0)),
}


@pytest.mark.torch
@pytest.mark.parametrize("name", list(CASES))
def test_derivative_at_kinks_and_ties_matches_pytorch(name, torch):
    ours, theirs = CASES[name]
    x = sg.tensor(KINKS, requires_grad=True)
    out = ours(x)
    weights = np.arange(1, out.numel() + 1, dtype=np.float64).reshape(out.shape)
    (out * sg.tensor(weights)).sum().backward()
    xt = torch.tensor(KINKS, requires_grad=True)
    (theirs(torch, xt) * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(out.numpy(), theirs(torch, torch.tensor(KINKS)).numpy(), err_msg=name)
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy(), err_msg=f"{name}: gradient at the kinks")


@pytest.mark.torch
@pytest.mark.parametrize("stride", [1, 2])
def test_max_pool_ties_route_the_gradient_as_pytorch(stride, torch):
    image = np.array([[1, 1, 0, 2], [1, 1, 2, 2], [0, 3, 3, 0], [3, 3, 0, 0]], dtype=np.float64)[None, None]
    x = sg.tensor(image, requires_grad=True)
    out = F.max_pool2d(x, 2, stride)
    weights = np.arange(1, out.numel() + 1, dtype=np.float64).reshape(out.shape)
    (out * sg.tensor(weights)).sum().backward()
    xt = torch.tensor(image, requires_grad=True)
    (torch.nn.functional.max_pool2d(xt, 2, stride) * torch.tensor(weights)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), xt.grad.numpy())
