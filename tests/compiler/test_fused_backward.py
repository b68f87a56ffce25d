"""Ops whose backward is a raw kernel (flash attention, the fused LSTM): the program keeps their node
from the forward and calls its backward; gradients equal eager ones, bit for bit."""
import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn


def _attention_step(q_weight):
    def step(x):
        q = (x @ q_weight).reshape(2, 2, 5, 4)
        out = F.scaled_dot_product_attention(q, q * 0.5, q, is_causal=True)
        loss = (out * out).sum()
        loss.backward()
        return loss, q_weight.grad
    return step


def _lstm_step(lstm):
    def step(x):
        y, _ = lstm(x)
        loss = (y * y).sum()
        loss.backward()
        return loss, lstm.weight_ih_l0.grad
    return step


@pytest.mark.parametrize("kind", ["attention", "lstm"])
def test_a_raw_backward_kernel_replays(kind):
    sg.manual_seed(0)
    if kind == "attention":
        weight = sg.randn(4, 4, requires_grad=True)
        make, parameters, shape = (lambda: _attention_step(weight)), [weight], (4, 5, 4)
    else:
        lstm = nn.LSTM(3, 4)
        make, parameters, shape = (lambda: _lstm_step(lstm)), list(lstm.parameters()), (5, 2, 3)
    compiled, eager = sg.compile(make(), poisoning=True), make()
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = sg.tensor(rng.standard_normal(shape).astype(np.float32))
        for p in parameters:
            p.grad = None
        ours = compiled(x)
        for p in parameters:
            p.grad = None
        theirs = eager(x)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a.data, b.data)
    assert compiled.replays == 2
    assert any(op.kind == "backward" for entry in compiled.cache.values() for op in entry.program.ops)


def _layer_step(weight, bias):
    """A float64 layer whose forward and backward both fuse in ``fast`` mode (bias epilogue, tanh,
    exp, sigmoid; their derivatives' products)."""
    def step(x):
        hidden = (x @ weight + bias).tanh()
        loss = ((hidden * 0.5).exp() * hidden.sigmoid()).sum()
        loss.backward()
        return loss, x.grad
    return step


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_generated_backward_kernels_pass_a_gradcheck(mode):
    """Central differences of the compiled loss (itself a replay) against the compiled gradient, in
    float64, along random directions."""
    rng = np.random.default_rng(2)
    weight, bias = (sg.tensor(rng.standard_normal(shape)) for shape in ((4, 5), (5,)))
    compiled = sg.compile(_layer_step(weight, bias), fuse=mode)
    x = rng.standard_normal((3, 4))
    for _ in range(3):
        _, grad = compiled(sg.tensor(x, requires_grad=True))
    program = next(iter(compiled.cache.values())).program
    groups = [op.name for op in program.ops if op.kind == "fused"]
    assert any("MatMul+Add" in name for name in groups), groups
    assert any(op.kind == "fused" and "loss.backward()" in op.line for op in program.ops), groups
    if mode == "fast":
        assert any("Exp" in name or "TanhOp" in name for name in groups), groups
    step = 1e-6
    for _ in range(3):
        direction = rng.standard_normal(x.shape)
        up, _ = compiled(sg.tensor(x + step * direction, requires_grad=True))
        down, _ = compiled(sg.tensor(x - step * direction, requires_grad=True))
        numeric = (up.data - down.data) / (2 * step)
        np.testing.assert_allclose(numeric, np.sum(grad.data * direction), rtol=1e-6, atol=1e-9)
    assert compiled.replays >= 7
