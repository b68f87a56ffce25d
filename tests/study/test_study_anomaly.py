"""Anomaly mode names the op, its input shapes and the user's line that created it."""
import inspect
import os

import numpy as np
import pytest

import scratchgen as sg

HERE = os.path.basename(__file__)


def planted_log_of_zero(x):
    return (x.log() * 2).sum()  # the planted line


PLANTED_LINE = inspect.getsourcelines(planted_log_of_zero)[1] + 1


def test_a_log_of_zero_is_caught_in_the_forward_with_its_line():
    x = sg.tensor([[1.0, 0.0, 2.0]], requires_grad=True)
    with sg.detect_anomaly(), pytest.raises(sg.AnomalyError) as error:
        planted_log_of_zero(x)
    message = str(error.value)
    assert message.startswith("Log produced inf in output 0 from inputs of shapes ((1, 3))")
    assert f"{HERE}:{PLANTED_LINE} in planted_log_of_zero" in message
    assert "the planted line" in message  # the source line itself is shown


def test_checking_only_gradients_catches_it_in_the_backward_of_log():
    x = sg.tensor([1.0, 0.0], requires_grad=True)
    with sg.detect_anomaly(check_forward=False), pytest.raises(sg.AnomalyError) as error:
        planted_log_of_zero(x).backward()
    message = str(error.value)
    assert message.startswith("Log.backward produced inf in gradient 0; the op's inputs had shapes ((2,))")
    assert f"{HERE}:{PLANTED_LINE}" in message


def test_an_op_failing_inside_a_backward_is_blamed_on_the_op_being_differentiated():
    x = sg.tensor([0.0, 4.0], requires_grad=True)
    with sg.detect_anomaly(), pytest.raises(sg.AnomalyError) as error:
        y = x.sqrt().sum()  # d sqrt(x) = 1 / (2 sqrt x): infinite at 0
        y.backward()
    message = str(error.value)
    assert "inside the backward of Sqrt" in message and "y = x.sqrt().sum()" in message


def test_nan_is_always_an_anomaly_and_passing_an_infinity_along_is_not():
    scores = sg.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    mask = sg.tensor([[True, True, False]])
    with sg.detect_anomaly():
        masked = sg.where(mask, scores, sg.tensor(-np.inf))  # a mask, not a bug
        masked.softmax(-1).sum().backward()
        with pytest.raises(sg.AnomalyError, match="NaN in output 0"):
            sg.tensor([-1.0]).sqrt()


def test_nothing_is_checked_outside_the_mode():
    with np.errstate(divide="ignore"):
        assert sg.tensor([0.0]).log().item() == -np.inf


def test_an_op_made_inside_a_layer_names_the_users_line_first():
    layer = sg.nn.Linear(2, 1)
    layer.weight.data[...] = np.nan
    with pytest.raises(sg.AnomalyError) as caught, sg.detect_anomaly():
        layer(sg.tensor([[1.0, 2.0]]))  # the user's line
    message = str(caught.value)
    first = message.splitlines()[1]  # "<Op> was created at <the user's file>:<line> ...", not nn/layers.py
    assert " was created at " in first and f"{HERE}:" in first and "the user's line" in first
    assert "through scratchgen code at" in message and os.path.join("scratchgen", "nn") in message
