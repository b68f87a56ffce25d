"""Proof that the property tests can fail: the same gradcheck run on a deliberately wrong
derivative (a copy of ``TanhOp`` with one sign flipped) must be caught, and reported by name."""
import pytest
from gradcases.core import one
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen as sg
from scratchgen.ops.elementwise import TanhOp
from scratchgen.testing import GradcheckError, gradcheck


class TanhWithSignFlipped(TanhOp):
    """tanh whose backward says dy * (y^2 - 1) instead of dy * (1 - y^2)."""

    check_gradients = False  # the mutant is not an op of the library

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
