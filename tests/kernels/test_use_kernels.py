"""``use_kernels`` in its three forms: plain call (switches until the next call, as DESIGN
promises), context manager (restores on exit) and decorator (switches only while the function
runs; defining the function changes nothing)."""
import pytest

import scratchgen as sg
from scratchgen.kernels import current_choice


@pytest.fixture(autouse=True)
def _choose_by_device_around_each_test():
    sg.use_kernels(None)
    yield
    sg.use_kernels(None)


def test_a_plain_call_switches_globally_until_the_next():
    sg.use_kernels("reference")
    assert current_choice() == "reference"
    sg.use_kernels("cpu")
    assert current_choice() == "cpu"
    sg.use_kernels(None)
    assert current_choice() is None


def test_the_context_manager_restores_the_previous_choice():
    sg.use_kernels("cpu")
    with sg.use_kernels("reference"):
        assert current_choice() == "reference"
    assert current_choice() == "cpu"


def test_the_context_manager_restores_after_an_exception():
    with pytest.raises(KeyError), sg.use_kernels("reference"):
        raise KeyError("inside")
    assert current_choice() is None


def test_decorating_does_not_switch_and_each_call_switches_only_while_it_runs():
    seen = []

    @sg.use_kernels("reference")
    def study(x):
        """A function studied with the reference kernels."""
        seen.append(current_choice())
        return x + 1

    assert current_choice() is None  # defining it changed nothing
    assert study(1) == 2 and seen == ["reference"]
    assert current_choice() is None
    sg.use_kernels("cpu")
    study(1)
    assert seen == ["reference", "reference"] and current_choice() == "cpu"  # restored to what was current
    assert study.__name__ == "study" and "reference kernels" in study.__doc__


def test_a_decorated_function_restores_after_an_exception_and_nests():
    @sg.use_kernels("reference")
    def fails():
        raise ValueError("inside")

    @sg.use_kernels("cpu")
    def outer():
        inner_choice = inner()
        return inner_choice, current_choice()

    @sg.use_kernels("reference")
    def inner():
        return current_choice()

    with pytest.raises(ValueError):
        fails()
    assert current_choice() is None
    assert outer() == ("reference", "cpu")
    assert current_choice() is None


def test_a_wrong_name_is_refused_in_every_form():
    with pytest.raises(ValueError, match="expected one of .* got 'fast'"):
        sg.use_kernels("fast")
