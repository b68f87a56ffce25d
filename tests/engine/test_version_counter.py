"""In-place writes into a tensor saved for backward are caught at backward (PyTorch's version
counter), whichever way the write comes: setitem, nn.init, an optimizer step, load_state_dict."""
import numpy as np
import pytest

import scratchgen as sg
from scratchgen import nn, optim


def test_setitem_bumps_the_version_and_backward_names_the_op_and_tensor():
    x = sg.randn(3, requires_grad=True)
    c = sg.ones(3)
    c.name = "scale"
    assert c._version == 0
    y = (x * c).sum()
    c[...] = 5
    assert c._version == 1
    with pytest.raises(RuntimeError, match=r"Mul\.backward: a tensor 'scale' of shape \(3,\).*modified in place"):
        y.backward()


def test_a_write_before_the_forward_pass_is_fine():
    x = sg.randn(3, requires_grad=True)
    c = sg.ones(3)
    c[0] = 2
    (x * c).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2, 1, 1])


@pytest.mark.parametrize("write", ["init", "optimizer", "load_state_dict"])
def test_every_in_place_write_of_a_parameter_is_seen(write):
    layer = nn.Linear(3, 2)
    loss = layer(sg.randn(4, 3)).sum()
    if write == "init":
        nn.init.normal_(layer.weight)
    elif write == "optimizer":
        (layer(sg.randn(4, 3)) ** 2).sum().backward()
        optim.SGD(layer.parameters(), lr=0.1).step()
    else:
        layer.load_state_dict({name: np.zeros_like(a) for name, a in layer.state_dict().items()})
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()
