"""The twin check both autoregressive pixel models end with (``test_pixelcnn``, ``test_pixelrnn``)."""
import numpy as np
import pytest

import scratchgen as sg
from scratchgen.models import Clock
from twin_checks import assert_parameters_equal_the_twins

START = Clock(step=0, epoch=0, batch=0, batches_per_epoch=10)


def assert_training_step_equals_the_twins(recipe, twin, images, labels, torch):
    """One ``recipe.train_step`` in float64 against the twin's step as the benchmark suite takes it
    (``peers/autoregressive.py``): the loss, every gradient and every updated weight."""
    from scratchgen.benchmarks.peers import autoregressive
    model = recipe.model.double()   # in place: the optimizer still holds these parameters
    twin.double().load_state_dict({key: torch.from_numpy(value) for key, value in model.state_dict().items()})
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in twin.parameters())
    losses = recipe.train_step((sg.tensor(images), sg.tensor(labels)), START)
    expected = autoregressive.twin_training_step(twin, recipe, (images, labels))()
    assert losses["loss"] == pytest.approx(expected, rel=1e-12)
    assert losses["bits_per_dim"] == pytest.approx(expected / np.log(2), rel=1e-12)
    assert_parameters_equal_the_twins(model, twin)
