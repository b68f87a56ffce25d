"""Module forward hooks fire in order and can replace values; tensor hooks run during backward;
module_scopes tags ops with their module; GradientFlow records and plots gradient norms."""
import numpy as np
import pytest

import scratchgen as sg
from scratchgen import nn, viz


def test_module_hooks_fire_outside_in_around_each_forward():
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    calls = []
    for name, module in model.named_modules():
        module.register_forward_pre_hook(lambda m, args, name=name: calls.append(f"pre {name or 'root'}"))
        module.register_forward_hook(lambda m, args, out, name=name: calls.append(f"post {name or 'root'}"))
    out = model(sg.randn(3, 2))
    out.register_hook(lambda grad: calls.append("grad out"))
    model[0].weight.register_hook(lambda grad: calls.append("grad 0.weight"))
    out.sum().backward()
    assert calls == ["pre root", "pre 0", "post 0", "pre 1", "post 1", "post root",   # forward, outside in
                     "grad out", "grad 0.weight"]                                     # backward, output first


def test_hooks_can_replace_arguments_and_outputs_and_be_removed():
    layer = nn.Tanh()
    handle_pre = layer.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    handle_post = layer.register_forward_hook(lambda m, args, out: out + 1)
    assert layer(sg.tensor([5.0])).item() == 1.0    # tanh(0) + 1
    handle_pre.remove()
    handle_post.remove()
    assert layer(sg.tensor([0.5])).item() == pytest.approx(np.tanh(0.5))


def test_module_scopes_tag_each_op_with_its_module_stack():
    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
    with viz.module_scopes(model):
        out = model(sg.randn(1, 2))
    assert out.creator.name == "TanhOp"
    assert out.creator.module_scope == (("", "Sequential", 1), ("1", "Tanh", 1))
    assert model[0]._forward_hooks == {}  # the hooks left with the block


def test_gradient_flow_records_each_backward_and_plots(tmp_path):
    sg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    with viz.GradientFlow(model) as flow:
        for _ in range(3):
            model.zero_grad()
            model(sg.randn(8, 3)).pow(2).mean().backward()
        assert flow.plot(tmp_path / "flow.png") == tmp_path / "flow.png"
    assert list(flow.norms) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(len(values) == 3 for values in flow.norms.values())
    last_gradient = model[2].weight.grad.numpy()  # zero_grad before each step: the last backward's gradient
    assert flow.norms["2.weight"][-1] == pytest.approx(float(np.linalg.norm(last_gradient)), rel=1e-5)
    assert (tmp_path / "flow.png").read_bytes()[:4] == b"\x89PNG"
    model(sg.randn(8, 3)).sum().backward()  # after the block: nothing more is recorded
    assert len(flow.norms["0.weight"]) == 3
