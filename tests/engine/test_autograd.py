"""The backward engine itself: graph traversal, accumulation, modes, higher order, errors."""
import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.autograd import Function
from scratchgen.testing import gradcheck


def leaf(*shape, dtype=sg.float64):
    return sg.randn(*shape, dtype=dtype, requires_grad=True)


def test_value_used_twice_accumulates_both_contributions():
    x = leaf(3)
    (x * x + x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data + 1)


def test_grads_accumulate_across_backward_calls_until_cleared():
    x = leaf(2)
    (3 * x).sum().backward()
    (3 * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [6.0, 6.0])


def test_broadcast_gradient_is_summed_back_to_the_input_shape():
    a, b = leaf(4, 3), leaf(3)
    (a * b).sum().backward()
    assert b.grad.shape == (3,)
    np.testing.assert_allclose(b.grad.data, a.data.sum(axis=0))


def test_mixed_precision_gradient_keeps_each_inputs_dtype():
    a, b = leaf(3, dtype=sg.float32), leaf(3, dtype=sg.float64)
    out = a * b
    assert out.dtype == np.float64
    out.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_python_scalar_keeps_the_tensor_dtype():
    x = sg.ones(2)
    assert (x * 2.5).dtype == np.float32 and (2 + x).dtype == np.float32
    assert (sg.arange(3) * 1.5).dtype == np.float32  # int tensor and float scalar: default float
    assert (sg.arange(3) + 1).dtype == np.int64


def test_chain_of_5000_ops_does_not_hit_the_recursion_limit():
    x = leaf(1)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, [1.0001 ** 5000])


def test_second_backward_through_a_freed_graph_raises_clearly():
    x = leaf(3)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = leaf(3)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * np.exp(x.data))


def test_saved_arrays_are_freed_after_backward():
    x = leaf(3)
    y = x.exp()
    y.sum().backward()
    assert y.creator.released and y.creator._saved == ()


def test_no_grad_records_nothing_and_enable_grad_restores():
    x = leaf(2)
    with sg.no_grad():
        y = x * 2
        with sg.enable_grad():
            z = x * 2
    assert y.creator is None and not y.requires_grad
    assert z.requires_grad
    assert sg.is_grad_enabled()


def test_no_grad_as_decorator():
    @sg.no_grad()
    def double(t):
        return t * 2

    assert not double(leaf(2)).requires_grad


def test_backward_of_a_non_scalar_needs_a_gradient():
    x = leaf(3)
    y = x * 2
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    y.backward(sg.tensor([1.0, 0.0, 2.0], dtype=sg.float64))
    np.testing.assert_allclose(x.grad.data, [2.0, 0.0, 4.0])


def test_backward_gradient_of_the_wrong_shape_is_rejected():
    y = leaf(3) * 2
    with pytest.raises(RuntimeError, match=r"expected a gradient of shape \(3,\)"):
        y.backward(sg.ones(4, dtype=sg.float64))


def test_grad_returns_without_touching_leaf_grads():
    x = leaf(3)
    (g,) = sg.grad((x ** 3).sum(), x)
    np.testing.assert_allclose(g.data, 3 * x.data ** 2)
    assert x.grad is None


def test_grad_of_a_non_leaf_input():
    x = leaf(3)
    h = x * 2
    (g,) = sg.grad((h * h).sum(), h)
    np.testing.assert_allclose(g.data, 2 * h.data)


def test_grad_unused_input_raises_unless_allowed():
    x, unused = leaf(2), leaf(2)
    with pytest.raises(RuntimeError, match="not used"):
        sg.grad(x.sum(), [x, unused])
    assert sg.grad(x.sum(), [x, unused], allow_unused=True)[1] is None


def test_hessian_vector_product_through_create_graph():
    x, v = leaf(4), sg.randn(4, dtype=sg.float64)
    (g,) = sg.grad((x ** 3).sum(), x, create_graph=True)
    (hv,) = sg.grad((g * v).sum(), x)
    np.testing.assert_allclose(hv.data, 6 * x.data * v.data)


def test_third_derivative():
    x = leaf(3)
    (g1,) = sg.grad(x.tanh().sum(), x, create_graph=True)
    (g2,) = sg.grad(g1.sum(), x, create_graph=True)
    (g3,) = sg.grad(g2.sum(), x)
    t = np.tanh(x.data)
    np.testing.assert_allclose(g3.data, -2 * (1 - t ** 2) ** 2 + 4 * t ** 2 * (1 - t ** 2))


def test_gradient_penalty_style_double_backward_reaches_weights():
    w = leaf(3, 2)
    x = leaf(5, 3)
    critic = (x @ w).tanh().sum()
    (grad_x,) = sg.grad(critic, x, create_graph=True)
    penalty = ((grad_x * grad_x).sum(dim=1).sqrt() - 1) ** 2
    penalty.mean().backward()
    assert w.grad is not None and np.all(np.isfinite(w.grad.data)) and np.any(w.grad.data)


class _FusedDouble(Function):
    """y = 2x with a raw-array backward: a stand-in for a fused kernel."""

    once_differentiable = True

    def forward(self, x):
        return 2 * x

    def backward(self, grad):
        return sg.Tensor(2 * grad.data)


def test_once_differentiable_op_refuses_a_second_derivative_by_name():
    x = leaf(3)
    (g,) = sg.grad(_FusedDouble.apply(x * x).sum(), x, create_graph=True)
    np.testing.assert_allclose(g.data, 4 * x.data)
    with pytest.raises(RuntimeError, match="_FusedDouble is differentiable only once"):
        sg.grad(g.sum(), x)


def test_requires_grad_only_for_floating_point():
    with pytest.raises(RuntimeError, match="floating-point"):
        sg.tensor([1, 2], requires_grad=True)


def test_detach_cuts_the_graph():
    x = leaf(2)
    y = (x * 2).detach()
    assert not y.requires_grad and y.creator is None


@pytest.mark.parametrize("make, message", [
    (lambda: sg.ones(2, 3) + sg.ones(4), r"add: shapes \(2, 3\) and \(4,\) are not broadcastable"),
    (lambda: sg.ones(2, 3) @ sg.ones(2, 3), r"matmul: inner dimensions differ"),
    (lambda: sg.ones(3)[5], r"getitem: index 5 is out of bounds"),
    (lambda: sg.ones(2, 3).reshape(4, 2), r"reshape: shape \(4, 2\) is invalid"),
    (lambda: sg.ones(2).sum(dim=3), r"sum: dim 3 is out of range"),
    (lambda: sg.cat([sg.ones(2, 3), sg.ones(2, 4)], 0), r"cat: tensor 1 has shape \(2, 4\)"),
    (lambda: F.cross_entropy(sg.ones(2, 3), sg.tensor([0, 3])), r"target values must lie in \[0, 3\)"),
    (lambda: F.embedding(sg.tensor([5]), sg.ones(3, 2)), r"embedding: indices must lie in \[0, 3\)"),
    (lambda: F.mse_loss(sg.ones(2), sg.ones(3)), r"mse_loss: expected target of the input's shape"),
    (lambda: sg.tensor([1.0]).to("gpu"), r"device: expected 'cpu', 'cuda' or 'cuda:N'"),
])
def test_errors_name_the_op_and_what_was_expected(make, message):
    with pytest.raises(Exception, match=message):
        make()


def test_gradcheck_rejects_float32_inputs():
    with pytest.raises(TypeError, match="float64"):
        gradcheck(lambda a: a * 2, [leaf(2, dtype=sg.float32)])


def test_manual_seed_repeats_random_draws():
    sg.manual_seed(3)
    first = sg.randn(4).data.copy()
    sg.manual_seed(3)
    np.testing.assert_array_equal(first, sg.randn(4).data)


def test_creation_functions_follow_pytorch_defaults():
    assert sg.tensor([1.0, 2.0]).dtype == np.float32
    assert sg.tensor([1, 2]).dtype == np.int64
    assert sg.tensor(np.zeros(2)).dtype == np.float64
    assert sg.zeros(2, 3).shape == (2, 3) and sg.ones((2, 3)).shape == (2, 3)
    assert sg.arange(5).dtype == np.int64 and sg.arange(0.0, 1.0, 0.5).dtype == np.float32
    assert sg.full((2,), 7).dtype == np.int64
    assert sg.zeros_like(sg.ones(2, dtype=sg.float64)).dtype == np.float64


def test_leaf_hook_sees_the_total_gradient_once_and_can_replace_it():
    x = leaf(2)
    seen = []
    x.register_hook(lambda g: seen.append(g.data.copy()) or g * 10)
    (x * 2 + x * 3).sum().backward()
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0], [5.0, 5.0])
    np.testing.assert_allclose(x.grad.data, [50.0, 50.0])


def test_hooks_fire_from_the_output_back_to_the_leaves_and_can_be_removed():
    x = leaf(2)
    h = x * 2
    order = []
    handle = h.register_hook(lambda g: order.append("h"))
    x.register_hook(lambda g: order.append("x"))
    h.sum().backward(retain_graph=True)
    handle.remove()
    h.sum().backward()
    assert order == ["h", "x", "x"]


def test_retain_grad_keeps_a_non_leaf_gradient():
    x = leaf(3)
    h = x * 2
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.data, 2 * h.data)


def test_observers_see_every_forward_and_backward():
    from scratchgen.autograd import observe

    class Recorder:
        def __init__(self):
            self.calls = []

        def on_forward(self, node, inputs, outputs, seconds):
            self.calls.append(("forward", node.name))

        def on_backward(self, node, grads_out, grads_in, seconds):
            self.calls.append(("backward", node.name))

    x = leaf(2)
    with observe(Recorder()) as recorder:
        (x.exp() * 2).sum().backward()
    (x * 2).sum()  # outside the block: not recorded
    assert recorder.calls[:3] == [("forward", "Exp"), ("forward", "Mul"), ("forward", "Sum")]
    # backward formulas are ops too (Sum's backward reshapes and expands): they are observed as well
    assert [c for c in recorder.calls if c[0] == "backward"] == [("backward", "Sum"), ("backward", "Mul"),
                                                                  ("backward", "Exp")]
