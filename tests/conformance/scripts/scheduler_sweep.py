"""Every learning-rate schedule stepped through a run, the rates (and OneCycle's momentum) recorded
(PyTorch code)."""
import math

import torch
import torch.nn as nn
import numpy as np

STEPS = 30


def build():
    return None


def make_optimizer():
    return torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1, momentum=0.9)


def sweep(make_scheduler, metric=None):
    optimizer = make_optimizer()
    scheduler = make_scheduler(optimizer)
    rates, momenta = [], []
    for step in range(STEPS):
        optimizer.step()
        if metric is None:
            scheduler.step()
        else:
            scheduler.step(metric(step))
        rates.append(scheduler.get_last_lr()[0])
        momenta.append(optimizer.param_groups[0]["momentum"])
    return np.array(rates), np.array(momenta)


def run(model):
    lr = torch.optim.lr_scheduler
    schedules = {
        "step": lambda o: lr.StepLR(o, step_size=7, gamma=0.5),
        "cosine": lambda o: lr.CosineAnnealingLR(o, T_max=STEPS, eta_min=1e-3),
        "linear": lambda o: lr.LinearLR(o, start_factor=0.2, total_iters=10),
        "lambda": lambda o: lr.LambdaLR(o, lambda epoch: 1.0 / (1.0 + 0.1 * epoch)),
        "warmup_then_cosine": lambda o: lr.SequentialLR(
            o, [lr.LinearLR(o, start_factor=0.1, total_iters=5), lr.CosineAnnealingLR(o, T_max=STEPS - 5)],
            milestones=[5]),
        "one_cycle": lambda o: lr.OneCycleLR(o, max_lr=0.5, total_steps=STEPS + 1),
    }
    outputs = {}
    for name, make in schedules.items():
        outputs[name], momenta = sweep(make)
        if name == "one_cycle":
            outputs["one_cycle_momentum"] = momenta
    outputs["plateau"], _ = sweep(lambda o: lr.ReduceLROnPlateau(o, patience=2, factor=0.5),
                                  metric=lambda step: 1.0 / (1 + min(step, 8)) + 0.01 * math.sin(step))
    return outputs
