"""Issue 21's missing names, against PyTorch where it says what is right: the in-place methods and
their version counter, inference_mode, the ctx-style custom Function, einsum's errors, scatter_add
with a larger src, and the nn.functional module path. (Gradients: tests/gradcases/pytorch_names.py.)"""
import numpy as np
import pytest

import scratchgen as sg
from conftest import require_torch
from scratchgen.testing import gradcheck, gradgradcheck

IN_PLACE = [("zero_", ()), ("fill_", (2.5,)), ("add_", (1.5,)), ("sub_", (0.5,)), ("mul_", (3.0,)),
            ("div_", (4.0,)), ("clamp_", (-0.5, 0.5)), ("copy_", ("other",))]


@pytest.mark.torch
@pytest.mark.parametrize("method, args", IN_PLACE, ids=[m for m, _ in IN_PLACE])
def test_in_place_methods_write_what_pytorch_writes_and_return_self(method, args):
    torch = require_torch()
    values, other = np.random.default_rng(0).standard_normal((2, 2, 3)).astype(np.float32)
    ours, theirs = sg.tensor(values), torch.tensor(values)
    ours_args = [sg.tensor(other) if a == "other" else a for a in args]
    their_args = [torch.tensor(other) if a == "other" else a for a in args]
    assert getattr(ours, method)(*ours_args) is ours
    getattr(theirs, method)(*their_args)
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)
    assert ours._version == 1


def test_add_with_alpha_and_a_broadcast_tensor():
    x = sg.zeros(2, 3)
    x.add_(sg.tensor([1.0, 2.0, 3.0]), alpha=2)
    np.testing.assert_array_equal(x.data, [[2, 4, 6], [2, 4, 6]])


@pytest.mark.parametrize("method, args", IN_PLACE, ids=[m for m, _ in IN_PLACE])
def test_a_saved_tensor_written_in_place_raises_at_backward(method, args):
    x = sg.randn(3, requires_grad=True)
    scale = sg.randn(3)
    loss = (x * scale).sum()  # Mul saves scale
    getattr(scale, method)(*[sg.ones(3) if a == "other" else a for a in args])
    with pytest.raises(RuntimeError, match=r"Mul\.backward: .*modified in place"):
        loss.backward()


def test_in_place_on_a_tensor_requiring_grad_is_refused_unless_under_no_grad():
    weight = sg.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="add_: in-place write into a tensor that requires grad"):
        weight.add_(1)
    with pytest.raises(RuntimeError, match=r"computed by Mul"):
        (weight * 2).zero_()
    with sg.no_grad():
        weight.sub_(sg.full((3,), 0.25))  # a hand-written parameter update, as in PyTorch
    np.testing.assert_array_equal(weight.data, [0.75] * 3)


def test_inference_mode_records_nothing_and_false_changes_nothing():
    x = sg.ones(2, requires_grad=True)
    with sg.inference_mode():
        assert not (x * 2).requires_grad
    with sg.inference_mode(False):
        assert (x * 2).requires_grad
    with sg.no_grad(), sg.inference_mode(False):
        assert not (x * 2).requires_grad

    @sg.inference_mode()
    def predict(v):
        return v * 3
    assert not predict(x).requires_grad


class ScaledExp(sg.autograd.Function):
    """PyTorch's ctx style, as a PyTorch user writes it."""

    @staticmethod
    def forward(ctx, x, scale):
        y = x.exp() * scale
        ctx.save_for_backward(x, y)
        ctx.scale = scale
        return y

    @staticmethod
    def backward(ctx, grad):
        x, y = ctx.saved_tensors
        return grad * y, None


def test_a_ctx_style_function_is_differentiable_to_second_order():
    x = sg.randn(4, dtype=sg.float64, requires_grad=True)
    assert gradcheck(lambda a: ScaledExp.apply(a, 2.0), [x])
    assert gradgradcheck(lambda a: ScaledExp.apply(a, 2.0), [x])  # saved_tensors stay attached


def test_a_ctx_style_function_sees_in_place_writes_of_what_it_saved():
    leaf = sg.randn(3, requires_grad=True)
    out = ScaledExp.apply(leaf, 1.0).sum()
    with sg.no_grad():
        leaf.mul_(2)
    with pytest.raises(RuntimeError, match="ScaledExp.backward: .*modified in place"):
        out.backward()


@pytest.mark.torch
def test_a_ctx_style_function_matches_the_same_class_in_pytorch():
    torch = require_torch()

    class TorchScaledExp(torch.autograd.Function):
        forward = ScaledExp.__dict__["_ctx_forward"]
        backward = ScaledExp.__dict__["_ctx_backward"]

    values = np.random.default_rng(1).standard_normal(5)
    ours, theirs = sg.tensor(values, requires_grad=True), torch.tensor(values, requires_grad=True)
    out, expected = ScaledExp.apply(ours, 3.0), TorchScaledExp.apply(theirs, 3.0)
    (out * out).sum().backward()
    (expected * expected).sum().backward()
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("equation, shapes, message", [
    ("ii->i", [(3, 3)], "diagonal or trace"),
    ("ij,jk->ik", [(2, 3), (4, 5)], "letter 'j'"),
    ("ij,jk", [(2, 3)], "names 2 operands"),
    ("ij->k", [(2, 3)], "names one no operand has"),
    ("ijk", [(2, 3)], "does not fit"),
])
def test_einsum_errors_name_the_problem(equation, shapes, message):
    with pytest.raises((ValueError, NotImplementedError), match=message):
        sg.einsum(equation, *[sg.ones(*s) for s in shapes])


@pytest.mark.torch
def test_scatter_add_with_a_src_larger_than_the_index_reads_its_leading_block():
    torch = require_torch()
    rng = np.random.default_rng(2)
    x, src = rng.standard_normal((3, 4)), rng.standard_normal((4, 5))
    index = rng.integers(0, 3, size=(2, 4))
    ours = sg.tensor(x).scatter_add(0, sg.tensor(index), sg.tensor(src))
    theirs = torch.tensor(x).scatter_add(0, torch.tensor(index), torch.tensor(src))
    np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-12)


def test_nn_functional_is_the_module_path_of_f():
    import scratchgen.functional
    import scratchgen.nn.functional as F
    assert F is scratchgen.functional is sg.nn.functional
    from scratchgen.nn.functional import cross_entropy, relu  # noqa: F401


def test_contiguous_returns_itself_when_it_already_is():
    x = sg.ones(2, 3)
    assert x.contiguous() is x
    assert x.T.contiguous().data.flags.c_contiguous
