"""Capture and replay: a compiled step equals the eager one, bit for bit, step after step."""
import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.compiler import UncapturableError

from .helpers import assert_same_parameters, batches, classifier, training_step


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_a_compiled_training_step_equals_eager_for_six_steps(fused, dropout):
    eager_model, eager_optimizer = classifier(dropout=dropout, fused=fused)
    model, optimizer = classifier(dropout=dropout, fused=fused)
    eager = training_step(eager_model, eager_optimizer)
    step = sg.compile(training_step(model, optimizer), poisoning=True)
    for x, y in batches(6):
        sg.manual_seed(7)    # the same noise for both (dropout draws from the global generator)
        expected = eager(x, y)
        sg.manual_seed(7)
        assert step(x, y) == expected
        assert_same_parameters(eager_model, model)
    assert step.replays >= 3, "later calls replay the captured program"


def test_returned_tensors_are_fresh_arrays():
    weight = sg.randn(3, 3, requires_grad=True)
    step = sg.compile(lambda x: (x @ weight).tanh())
    x = sg.randn(2, 3)
    results = [step(x) for _ in range(4)]
    assert results[0].requires_grad is False
    arrays = [r.data for r in results]
    assert not any(np.shares_memory(a, b) for a in arrays for b in arrays if a is not b)
    results[2].data[...] = 0   # writing into a returned tensor changes nothing the program holds
    np.testing.assert_array_equal(step(x).data, results[0].data)


def test_a_decision_on_an_item_fails_with_the_line():
    weight = sg.randn(3, requires_grad=True)

    def step(x):
        loss = (x * weight).sum()
        if loss.item() > 0:   # the decision
            loss = loss * 2
        return loss

    with pytest.raises(UncapturableError, match=r"test_capture.py:\d+: if loss.item\(\) > 0"):
        sg.compile(step)(sg.randn(3))


def test_reading_values_into_numpy_fails_with_the_line():
    def step(x):
        return sg.tensor((x * 2).numpy() + 1)

    with pytest.raises(UncapturableError, match=r"numpy\(\) reads a traced tensor.*return sg.tensor"):
        sg.compile(step)(sg.randn(3))


def test_data_made_outside_the_ops_is_found_by_a_second_capture():
    def step(x):
        doubled = sg.tensor(x.data * 2)    # raw NumPy: no op records it
        return (doubled + 1).sum()

    step = sg.compile(step)
    with pytest.raises(UncapturableError, match="changed between calls"):
        for x in [sg.randn(3) for _ in range(3)]:
            step(x)


def test_loss_item_after_the_compiled_step_works():
    model, optimizer = classifier()

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    compiled = sg.compile(step)
    losses = [compiled(x, y).item() for x, y in batches(4)]
    assert all(isinstance(value, float) for value in losses) and losses[0] != losses[-1]


@pytest.mark.parametrize("write", ["item", "update"])
def test_a_hyperparameter_written_inside_the_step_fails_with_the_line(write):
    """Even the value it already holds: a schedule gives the same learning rate to both captures and
    another one later, when a replay no longer runs the line (a silently wrong training run)."""
    model, optimizer = classifier()
    training = training_step(model, optimizer)
    groups = list(optimizer.param_groups)

    def step(x, y):
        if write == "item":
            optimizer.param_groups[0]["lr"] = 1e-2   # the schedule
        else:
            optimizer.param_groups[0].update(lr=1e-2)   # the schedule
        return training(x, y)

    with pytest.raises(UncapturableError, match=r"hyperparameter 'lr' at .*test_capture.py:\d+: .*# the schedule"):
        sg.compile(step)(*batches(1)[0])
    assert all(a is b for a, b in zip(optimizer.param_groups, groups)), "the groups are restored"
    assert len(optimizer.param_groups) == len(groups) and type(groups[0]) is dict


def test_a_hyperparameter_set_between_calls_is_read_by_the_replay():
    (eager_model, eager_optimizer), (model, optimizer) = classifier(), classifier()
    eager, step = training_step(eager_model, eager_optimizer), sg.compile(training_step(model, optimizer))
    for k, (x, y) in enumerate(batches(5)):
        for opt in (eager_optimizer, optimizer):
            opt.param_groups[0]["lr"] = 1e-2 / (1 + k)   # a schedule outside the step
        assert step(x, y) == eager(x, y)
        assert_same_parameters(eager_model, model)
    assert step.replays == 3


def test_item_of_a_tensor_written_between_calls_reads_its_new_value():
    """A 0-d schedule tensor (the VAE's KL weight, the seq2seq's teacher forcing) is a constant read by
    reference: both the ops and ``item()`` of it see the value written before each call."""
    weight = sg.tensor(np.float32(0.0))
    step = sg.compile(lambda x: {"total": (x * weight).sum().item(), "weight": weight.item()})
    x = sg.ones(4)
    for value in range(1, 6):
        weight.data[...] = value
        assert step(x) == {"total": 4.0 * value, "weight": float(value)}
    assert step.replays == 3
