"""Guards: a change to anything the program assumes captures again; nothing else does."""
import numpy as np
import pytest

import scratchgen as sg
from scratchgen import nn

from .helpers import assert_same_parameters, batches, classifier, training_step


def _settled(step, *args):
    """Call until the signature's program is trusted (two agreeing captures); the capture count then."""
    for _ in range(3):
        step(*args)
    return step.captures


def _linear_step():
    layer = nn.Linear(3, 2)
    return layer, sg.compile(lambda x: layer(x).sum() * 1.5)


@pytest.mark.parametrize("change", ["shape", "dtype", "requires_grad", "strides"])
def test_an_input_change_captures_again(change):
    layer, step = _linear_step()
    x = sg.randn(4, 3)
    captures = _settled(step, x)
    changed = {"shape": lambda: sg.randn(5, 3), "dtype": lambda: sg.randn(4, 3, dtype=sg.float64),
               "requires_grad": lambda: sg.randn(4, 3, requires_grad=True),
               "strides": lambda: sg.randn(3, 4).transpose(0, 1)}[change]()
    if change == "dtype":
        layer.double()
    result = step(changed)
    assert step.captures == captures + 1
    np.testing.assert_allclose(result.data, (layer(changed).sum() * 1.5).data)
    step(x if change != "dtype" else x.double())
    assert step.captures >= captures + 1


def test_the_same_signature_replays_without_capturing():
    _, step = _linear_step()
    captures = _settled(step, sg.randn(4, 3))
    for _ in range(3):
        step(sg.randn(4, 3))
    assert step.captures == captures and step.replays >= 3


def test_grad_mode_kernel_choice_and_training_flag_are_guarded():
    model, optimizer = classifier(dropout=0.5)
    step = sg.compile(lambda x: model(x).sum())
    x = sg.randn(6, 8)
    captures = _settled(step, x)
    with sg.no_grad():
        step(x)
    assert step.captures == captures + 1, "grad mode"
    with sg.use_kernels("reference"):
        step(x)
    assert step.captures == captures + 2, "kernel choice"
    model.eval()
    sg.manual_seed(3)
    evaluated = step(x)
    assert step.captures == captures + 3, "module.training"
    np.testing.assert_array_equal(evaluated.data, model(x).sum().data)   # no dropout in eval


def test_a_rebound_parameter_captures_again_and_is_used():
    layer, step = _linear_step()
    x = sg.randn(4, 3)
    captures = _settled(step, x)
    layer.weight.data = layer.weight.data * 0 + 1    # a new array: the program's constant is stale
    np.testing.assert_allclose(step(x).data, (layer(x).sum() * 1.5).data)
    assert step.captures == captures + 1


def test_the_cache_keeps_a_few_signatures():
    layer = nn.Linear(3, 2)
    step = sg.compile(lambda x: layer(x).sum(), cache_size=2)
    for rows in (1, 2, 3):
        _settled(step, sg.randn(rows, 3))
    assert len(step.cache) == 2
    before = step.captures
    step(sg.randn(1, 3))    # evicted: captured again
    assert step.captures == before + 1


def test_a_fused_optimizer_rebinding_parameters_settles_on_its_flat_buffers():
    eager_model, eager_optimizer = classifier(fused=True)
    model, optimizer = classifier(fused=True)
    eager, step = training_step(eager_model, eager_optimizer), sg.compile(training_step(model, optimizer))
    for x, y in batches(6):
        assert step(x, y) == eager(x, y)
    assert_same_parameters(eager_model, model)
    assert step.replays >= 2
