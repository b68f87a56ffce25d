"""Proof that the property tests can fail: the same gradcheck run on a deliberately wrong
derivative (a copy of ``TanhOp`` with one sign flipped) must be caught, and reported by name."""
import numpy as np
import pytest
from gradcases.core import one
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen as sg
from scratchgen.ops.elementwise import TanhOp
from scratchgen.testing import GradcheckError, gradcheck, gradgradcheck


class TanhWithSignFlipped(TanhOp):
    """tanh whose backward says dy * (y^2 - 1) instead of dy * (1 - y^2)."""

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * (y * y - 1)


def property_test(function_class):
    @settings(max_examples=20, deadline=None, derandomize=True)
    @given(data=st.data())
    def check(data):
        (array,), _ = data.draw(one())
        assert gradcheck(function_class.apply, [sg.Tensor(array, requires_grad=True)])
    return check


def test_the_property_test_passes_on_the_real_tanh():
    property_test(TanhOp)()


def test_the_property_test_catches_a_flipped_sign():
    with pytest.raises(GradcheckError, match=r"gradient of input 0 .* analytic .* numeric"):
        property_test(TanhWithSignFlipped)()


# ---- gradcheck must never say yes wrongly: each planted bug below passed before it was caught ----
class TanhWithNanBackward(TanhOp):
    """tanh whose backward returns NaN everywhere (NaN compares False with every tolerance)."""

    def backward(self, grad):
        return grad * float("nan")


class TanhWithInfBackward(TanhOp):
    """tanh whose backward returns +Inf everywhere."""

    def backward(self, grad):
        return grad * 0 + float("inf")


class AbsAsSqrtWithSignFlipped(sg.autograd.Function):
    """|x| = sqrt(x x) with dx = -dy x / sqrt(x x): wrong everywhere, and 0/0 = NaN at x = 0,
    which used to hide the wrong sign at every other element."""

    def forward(self, x):
        self.save_for_backward(x)
        return np.sqrt(x * x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return -grad * x / (x * x).sqrt()


def _leaf(values):
    return sg.Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


@pytest.mark.parametrize("mutant, value", [(TanhWithNanBackward, "nan"), (TanhWithInfBackward, "inf")])
def test_a_non_finite_backward_fails_naming_the_side_input_and_element(mutant, value):
    x = _leaf([[0.5, -1.0], [2.0, 0.1]])
    with pytest.raises(GradcheckError, match=rf"gradient of input 0 .*: the analytic side \(backward\) is {value} at "
                                            r"element \(0, 0\)"):
        gradcheck(mutant.apply, [x])
    assert gradcheck(mutant.apply, [x], raise_exception=False) is False


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # the planted 0/0
def test_a_kink_at_an_exact_zero_no_longer_hides_a_wrong_sign():
    x = _leaf([0.7, 0.0, -1.3])
    with pytest.raises(GradcheckError, match=r"(?s)is nan at element \(1,\).*numeric 0 .*hint: .*kink"):
        gradcheck(AbsAsSqrtWithSignFlipped.apply, [x])
    # away from 0 the wrong sign itself is reported
    with pytest.raises(GradcheckError, match=r"is wrong at element \(0,\): analytic -1, numeric 1"):
        gradcheck(AbsAsSqrtWithSignFlipped.apply, [_leaf([0.7, -1.3])])


class LogWithFiniteBackward(sg.autograd.Function):
    """log x whose backward says dy (finite everywhere); forward is NaN for x < 0."""

    def forward(self, x):
        return np.log(x)

    def backward(self, grad):
        return grad


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # log of 0 and of a negative step, on purpose
def test_a_non_finite_numeric_side_fails_too():
    x = _leaf([0.0, 1.0])
    with pytest.raises(GradcheckError, match=r"the numeric side .* is nan at element \(0,\): analytic 1,"):
        gradcheck(LogWithFiniteBackward.apply, [x])


def test_nothing_requiring_grad_is_a_failure_not_a_pass():
    x = sg.Tensor(np.array([1.0, 2.0]))
    with pytest.raises(GradcheckError, match="no input requires grad, so there is nothing to check"):
        gradcheck(sg.tanh, [x])
    assert gradcheck(sg.tanh, [x], raise_exception=False) is False
    with pytest.raises(GradcheckError, match="gradgradcheck: no input of fn requires grad"):
        gradgradcheck(sg.tanh, [x])


class TanhWithConstantSlope(TanhOp):
    """tanh whose backward saves 1 - y^2 as a plain array: right first derivative, but the
    second derivative through it is zero (the saved array is a constant to the graph)."""

    def forward(self, x):
        y = np.tanh(x)
        self.slope = sg.Tensor(1 - y * y)
        return y

    def backward(self, grad):
        return grad * self.slope


def test_gradgradcheck_says_second_derivative_and_names_fn_inputs_and_cotangents():
    x = _leaf([[0.5, -1.0], [2.0, 0.1]])
    assert gradcheck(TanhWithConstantSlope.apply, [x])
    with pytest.raises(GradcheckError, match=r"gradgradcheck: second derivative .* of input 0 \(an input of fn\)"):
        gradgradcheck(TanhWithConstantSlope.apply, [x])


def test_gradgradcheck_names_a_cotangent_input():
    """A backward that reads the incoming gradient as a constant array: its first derivative is
    right, and so is its derivative in x, but the graph no longer sees it depend on v."""

    class IgnoresCotangent(TanhOp):
        def backward(self, grad):
            (y,) = self.saved_tensors
            return sg.Tensor(grad.data) * (1 - y * y)

    x = _leaf([0.5, -1.0])
    with pytest.raises(GradcheckError, match=r"input 1 \(cotangent v0, the seed for output 0 of fn\)"):
        gradgradcheck(IgnoresCotangent.apply, [x], atol=1e-6, rtol=1e-4)


def test_a_failure_on_a_non_contiguous_input_says_so():
    values = np.zeros((2, 6))
    values[:, ::2] = [[0.5, -1.0, 2.0], [0.1, 0.3, -0.4]]
    x = sg.Tensor(values[:, ::2], requires_grad=True)
    with pytest.raises(GradcheckError, match=r"(?s)non-contiguous: strides \(48, 16\).*hint: .*non-contiguous view"):
        gradcheck(TanhWithSignFlipped.apply, [x])


def test_a_float32_computation_inside_fn_gets_a_hint():
    x = _leaf([0.5, -1.0, 2.0])
    with pytest.raises(GradcheckError, match="hint: .*float32 cast inside fn") as caught:
        gradcheck(lambda t: (t.float() * 3.3).exp().double(), [x])
    assert "kink" not in str(caught.value)  # float32 noise makes the one-sided slopes differ too
    # a genuine float64 bug carries no float32 hint
    with pytest.raises(GradcheckError) as caught:
        gradcheck(TanhWithSignFlipped.apply, [x])
    assert "float32" not in str(caught.value)


class TanhThatAssumesCOrder(TanhOp):
    """tanh whose backward reads the saved output's memory as if it were C-ordered: right on
    contiguous inputs, wrong on strided views (where the buffer holds other values)."""

    def forward(self, x):
        self.memory = np.lib.stride_tricks.as_strided(x, shape=x.shape, strides=_c_strides(x)).copy()
        return np.tanh(x)

    def backward(self, grad):
        return grad * (1 - np.tanh(self.memory) ** 2)


def _c_strides(x):
    return tuple(int(np.prod(x.shape[i + 1:])) * x.itemsize for i in range(x.ndim))


def test_the_falsifying_example_shows_a_non_contiguous_layout():
    from scratchgen.testing.strategies import arrays, shapes

    @settings(max_examples=50, deadline=None, derandomize=True, database=None)
    @given(data=st.data())
    def check(data):
        array = data.draw(shapes(min_dims=1, max_dims=2, min_side=2).flatmap(arrays))
        assert gradcheck(TanhThatAssumesCOrder.apply, [sg.Tensor(array, requires_grad=True)])

    with pytest.raises(GradcheckError, match="non-contiguous") as caught:
        check()
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert "NON-contiguous, strides" in notes and "strided_view" in notes
