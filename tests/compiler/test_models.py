"""Every registered model's training step through ``scratchgen.compile``: the same metrics and parameters
as eager, bit for bit (nothing is fused), or an ``UncapturableError`` that names why it cannot be."""
import numpy as np
import pytest

import scratchgen as sg
from scratchgen import study
from scratchgen.compiler import UncapturableError
from scratchgen.models import recipe_names

# Why each of the other models' steps cannot be captured (a fragment of the message): Python that a
# replay would not run again.
UNCAPTURABLE = {
    "charlstm": "optimizer.s hyperparameters",   # the learning-rate schedule inside the step
    "gpt": "optimizer's hyperparameters",        # the learning-rate warm-up inside the step
    "ngram": r"numpy\(\) reads a traced tensor",    # counting n-grams is Python
    "rbm": "optimizer's hyperparameters",        # the step sets its own learning rate and momentum
    "vae": "changed between calls",              # the KL weight's warm-up, a Python float per step
}
# Schedules these steps read off the clock in Python (a learning-rate warm-up or decay, seq2seq's
# teacher-forcing ratio) would keep their captured values on a replay: held constant here.
CONSTANT_SCHEDULES = {
    "diffusion": {"warmup_steps": 1},
    "pixelcnn": {"final_lr_fraction": 1.0},
    "pixelrnn": {"final_lr_fraction": 1.0},
    "seq2seq": {"teacher_forcing_start": 0.5, "teacher_forcing_end": 0.5},   # a mix of gold and greedy
}
STEPS = 4


def _twins(name):
    recipes = []
    for _ in range(2):
        sg.manual_seed(0)
        recipes.append(study.prepare(name, CONSTANT_SCHEDULES.get(name, {}), dry_run=True))
    return recipes


@pytest.mark.parametrize("name", [n for n in recipe_names() if n not in UNCAPTURABLE])
def test_compiled_step_equals_eager(name):
    (eager, eager_batches), (compiled, batches) = _twins(name)
    step = sg.compile(compiled.train_step, poisoning=True)
    for k in range(STEPS):
        (batch, clock), (same_batch, same_clock) = next(eager_batches), next(batches)
        sg.manual_seed(100 + k)
        expected = eager.train_step(batch, clock)
        sg.manual_seed(100 + k)
        assert step(same_batch, same_clock) == expected, f"metrics at step {k}"
    assert step.replays == STEPS - 2, "two captures, then replays"
    for (param_name, ours), theirs in zip(compiled.model.named_parameters(), eager.model.parameters()):
        np.testing.assert_array_equal(ours.data, theirs.data, err_msg=f"{param_name} after {STEPS} steps")
    for (buffer_name, ours), theirs in zip(compiled.model.named_buffers(), eager.model.buffers()):
        np.testing.assert_array_equal(ours.data, theirs.data, err_msg=f"buffer {buffer_name}")


@pytest.mark.parametrize("name", sorted(UNCAPTURABLE))
def test_an_uncapturable_step_says_why(name):
    (recipe, batches), = _twins(name)[:1]
    step = sg.compile(recipe.train_step)
    with pytest.raises(UncapturableError, match=UNCAPTURABLE[name]):
        for batch, clock in [next(batches) for _ in range(3)]:
            step(batch, clock)
