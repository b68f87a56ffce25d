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
        "one-cycle": lambda: module.OneCycleLR(optimizer, max_lr=[0.5, 0.2], total_steps=RUN_LENGTH + 1),
        "one-cycle-linear-three-phase": lambda: module.OneCycleLR(
            optimizer, max_lr=0.4, epochs=2, steps_per_epoch=23, anneal_strategy="linear", three_phase=True,
            pct_start=0.25),
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
         "three-phases", "one-cycle", "one-cycle-linear-three-phase"]


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


def _one_cycle_momenta(library, make_optimizer):
    optimizer = make_optimizer()
    scheduler = library.OneCycleLR(optimizer, max_lr=0.3, total_steps=20, base_momentum=0.8, max_momentum=0.9)
    momenta = []
    for _ in range(19):
        optimizer.step()
        scheduler.step()
        momenta.append([(g.get("momentum"), tuple(g.get("betas", ()))) for g in optimizer.param_groups])
    return momenta


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_one_cycle_moves_momentum_or_beta1_as_pytorch(optimizer):
    torch = require_torch()
    options = {"lr": 0.1, "momentum": 0.9} if optimizer == "SGD" else {"lr": 0.1}
    ours = _one_cycle_momenta(lr_scheduler, lambda: getattr(sg.optim, optimizer)(
        [sg.nn.Parameter(sg.zeros(1))], **options))
    theirs = _one_cycle_momenta(torch.optim.lr_scheduler, lambda: getattr(torch.optim, optimizer)(
        [torch.nn.Parameter(torch.zeros(1))], **options))
    assert ours == theirs


METRICS = [1.0, 0.9, 0.95, 0.95, 0.91, 0.89, 0.9, 0.9, 0.9, 0.9, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76,
           0.8, 0.69, 0.7, 0.71, 0.72, 0.73]


@pytest.mark.parametrize("options", [
    {},
    {"patience": 2, "factor": 0.5},
    {"patience": 1, "cooldown": 2, "factor": 0.3, "min_lr": [0.02, 0.001]},
    {"mode": "max", "patience": 1, "threshold_mode": "abs", "threshold": 0.01},
    {"mode": "max", "patience": 0, "factor": 0.9},
    {"patience": 0, "threshold": 0.05, "threshold_mode": "rel", "eps": 0.01},
], ids=str)
def test_reduce_on_plateau_equals_pytorch(options):
    torch = require_torch()
    histories = []
    for library, parameter in ((sg, lambda: sg.nn.Parameter(sg.zeros(1))),
                               (torch, lambda: torch.nn.Parameter(torch.zeros(1)))):
        optimizer = library.optim.SGD(_groups(parameter), lr=1.0)
        scheduler = library.optim.lr_scheduler.ReduceLROnPlateau(optimizer, **options)
        history = []
        for metric in METRICS:
            optimizer.step()
            scheduler.step(metric)
            history.append(scheduler.get_last_lr())
        histories.append(history)
    assert histories[0] == histories[1]
    if options.get("patience", 10) < 3:  # the metrics stall long enough: the sweep saw a cut
        assert histories[0][-1] != histories[0][0]


def test_new_schedule_argument_errors():
    optimizer = sg.optim.SGD([sg.nn.Parameter(sg.zeros(1))], lr=0.1)
    with pytest.raises(ValueError, match="factor < 1.0"):
        lr_scheduler.ReduceLROnPlateau(optimizer, factor=2)
    with pytest.raises(ValueError, match="total_steps, or epochs and steps_per_epoch"):
        lr_scheduler.OneCycleLR(optimizer, max_lr=1.0)
    schedule = lr_scheduler.OneCycleLR(optimizer, max_lr=1.0, total_steps=2)
    schedule.step()
    schedule.step()
    with pytest.raises(ValueError, match="total_steps is 2"):
        schedule.step()
