"""Schedules equal PyTorch's exactly (==, not approximately) over whole runs, alone and composed
with SequentialLR, with two parameter groups; a state_dict resumes a schedule where it stopped."""
import math
import warnings

import pytest

import scratchgen as sg
from conftest import require_torch
from scratchgen.optim import lr_scheduler

RUN_LENGTH = 45


def _schedule(module, optimizer, name):
    """The same schedule built from ``module`` (scratchgen's or PyTorch's lr_scheduler)."""
    builders = {
        "step": lambda: module.StepLR(optimizer, step_size=4, gamma=0.5),
        "cosine": lambda: module.CosineAnnealingLR(optimizer, T_max=12, eta_min=1e-3),  # runs past T_max
        "linear-warmup": lambda: module.LinearLR(optimizer, start_factor=0.1, total_iters=7),
        "linear-decay": lambda: module.LinearLR(optimizer, start_factor=1.0, end_factor=0.05, total_iters=30),
        "lambda": lambda: module.LambdaLR(optimizer, lambda epoch: 0.97 ** epoch / (1 + epoch % 3)),
        "lambda-per-group": lambda: module.LambdaLR(optimizer, [lambda e: 1 / (e + 1),
                                                                lambda e: math.cos(e / 9)]),
        "warmup-cosine": lambda: module.SequentialLR(optimizer, [
            module.LinearLR(optimizer, start_factor=0.01, total_iters=5),
            module.CosineAnnealingLR(optimizer, T_max=RUN_LENGTH - 5)], milestones=[5]),
        "three-phases": lambda: module.SequentialLR(optimizer, [
            module.LambdaLR(optimizer, lambda e: (e + 1) / 4), module.StepLR(optimizer, 3, gamma=0.7),
            module.CosineAnnealingLR(optimizer, T_max=10, eta_min=0.01)], milestones=[4, 20]),
    }
    return builders[name]()


def _groups(make_parameter):
    return [{"params": [make_parameter()], "lr": 0.1}, {"params": [make_parameter()], "lr": 0.03}]


def _our_run(name, steps=RUN_LENGTH):
    optimizer = sg.optim.SGD(_groups(lambda: sg.nn.Parameter(sg.zeros(1))), lr=1.0)
    scheduler = _schedule(lr_scheduler, optimizer, name)
    history = [scheduler.get_last_lr()]
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
        history.append(scheduler.get_last_lr())
        assert [g["lr"] for g in optimizer.param_groups] == history[-1]
    return history


def _torch_run(torch, name):
    optimizer = torch.optim.SGD(_groups(lambda: torch.nn.Parameter(torch.zeros(1))), lr=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SequentialLR's constructor warns about step order
        scheduler = _schedule(torch.optim.lr_scheduler, optimizer, name)
        history = [scheduler.get_last_lr()]
        for _ in range(RUN_LENGTH):
            optimizer.step()
            scheduler.step()
            history.append(scheduler.get_last_lr())
    return history


NAMES = ["step", "cosine", "linear-warmup", "linear-decay", "lambda", "lambda-per-group", "warmup-cosine",
         "three-phases"]


@pytest.mark.parametrize("name", NAMES)
def test_equals_pytorch_over_a_whole_run(name):
    torch = require_torch()
    ours, theirs = _our_run(name), _torch_run(torch, name)
    for step, (mine, reference) in enumerate(zip(ours, theirs)):
        assert mine == reference, f"step {step}: {mine} != {reference}"


@pytest.mark.parametrize("name", ["cosine", "warmup-cosine", "three-phases", "lambda"])
def test_state_dict_resumes_the_schedule(name):
    straight = _our_run(name)
    optimizer = sg.optim.SGD(_groups(lambda: sg.nn.Parameter(sg.zeros(1))), lr=1.0)
    scheduler = _schedule(lr_scheduler, optimizer, name)
    for _ in range(17):
        scheduler.step()
    saved_scheduler, saved_optimizer = scheduler.state_dict(), optimizer.state_dict()
    assert "optimizer" not in saved_scheduler

    optimizer = sg.optim.SGD(_groups(lambda: sg.nn.Parameter(sg.zeros(1))), lr=1.0)
    resumed = _schedule(lr_scheduler, optimizer, name)
    optimizer.load_state_dict(saved_optimizer)
    resumed.load_state_dict(saved_scheduler)
    history = [resumed.get_last_lr()]
    for _ in range(RUN_LENGTH - 17):
        resumed.step()
        history.append(resumed.get_last_lr())
    assert history == straight[17:]


def test_argument_errors():
    optimizer = sg.optim.SGD([sg.nn.Parameter(sg.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="start_factor"):
        lr_scheduler.LinearLR(optimizer, start_factor=0)
    with pytest.raises(ValueError, match="milestones"):
        lr_scheduler.SequentialLR(optimizer, [lr_scheduler.StepLR(optimizer, 2)], milestones=[3])
    fresh = sg.optim.SGD([sg.nn.Parameter(sg.zeros(1))], lr=0.1)
    with pytest.raises(KeyError, match="initial_lr"):
        lr_scheduler.StepLR(fresh, 2, last_epoch=5)
