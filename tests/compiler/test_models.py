"""Every registered model's training step through ``scratchgen.compile``: the same metrics and parameters
as eager, bit for bit (nothing is fused), or an ``UncapturableError`` that names why it cannot be."""
import numpy as np
import pytest

import scratchgen as sg
from scratchgen import study
from scratchgen.compiler import UncapturableError
from scratchgen.models import recipe_names
from scratchgen.models.base import Clock

# Why each of the other models' steps cannot be captured (a fragment of the message): Python that a
# replay would not run again.
UNCAPTURABLE = {
    "ngram": r"numpy\(\) reads a traced tensor",    # counting n-grams is Python
}
# Six steps on a clock of three batches an epoch: two captures, then replays that start a new epoch
# (the char-LSTM's carried state is zeroed) and, with these options, see every schedule move
# (``before_step`` sets it between calls; the replay must read the new value, not the captured one).
CLOCKS = [Clock(k, k // 3, k % 3, 3) for k in range(6)]
SCHEDULE_OPTIONS = {"gan": {"epochs": 2, "decay_from": 0.5}, "vaegan": {"epochs": 2, "decay_from": 0.5},
                    "rbm": {"momentum_warmup": 1}, "seq2seq": {"epochs": 2}}
SCHEDULED = ("charlstm", "gan", "gpt", "rbm", "seq2seq", "vae", "vaegan")   # their schedules change in CLOCKS


def _twins(name):
    recipes = []
    for _ in range(2):
        sg.manual_seed(0)
        recipes.append(study.prepare(name, SCHEDULE_OPTIONS.get(name, {}), dry_run=True))
    return recipes


def _schedule(recipe):
    """What a schedule sets before a step: every group's hyperparameters, the VAE's KL weight, the
    seq2seq's teacher-forcing ratio."""
    groups = [{k: v for k, v in group.items() if k != "params"}
              for optimizer in recipe.optimizers.values() for group in optimizer.param_groups]
    read = [getattr(recipe, name, None) for name in ("beta", "teacher_forcing_ratio")]
    return groups, [None if value is None else value.item() for value in read]


@pytest.mark.parametrize("name", [n for n in recipe_names() if n not in UNCAPTURABLE])
def test_compiled_step_equals_eager(name):
    (eager, eager_batches), (compiled, batches) = _twins(name)
    step = sg.compile(compiled.train_step, poisoning=True)
    schedules = []
    for k, clock in enumerate(CLOCKS):
        (batch, _), (same_batch, _) = next(eager_batches), next(batches)
        eager.before_step(clock)
        compiled.before_step(clock)
        schedules.append(_schedule(compiled))
        sg.manual_seed(100 + k)
        expected = eager.train_step(batch, clock)
        sg.manual_seed(100 + k)
        assert step(same_batch, clock) == expected, f"metrics at step {k}"
    assert step.replays == len(CLOCKS) - 2, "two captures, then replays"
    if name in SCHEDULED:
        assert schedules[-1] != schedules[1], "the schedule moved after the captures"
    for (param_name, ours), theirs in zip(compiled.model.named_parameters(), eager.model.parameters()):
        np.testing.assert_array_equal(ours.data, theirs.data, err_msg=f"{param_name} after {len(CLOCKS)} steps")
    for (buffer_name, ours), theirs in zip(compiled.model.named_buffers(), eager.model.buffers()):
        np.testing.assert_array_equal(ours.data, theirs.data, err_msg=f"buffer {buffer_name}")


@pytest.mark.parametrize("name", sorted(UNCAPTURABLE))
def test_an_uncapturable_step_says_why(name):
    (recipe, batches), = _twins(name)[:1]
    step = sg.compile(recipe.train_step)
    with pytest.raises(UncapturableError, match=UNCAPTURABLE[name]):
        for batch, clock in [next(batches) for _ in range(3)]:
            step(batch, clock)
