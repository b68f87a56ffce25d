"""A small CNN with BatchNorm trained with Adam, then evaluated on its running statistics (PyTorch code)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import numpy as np


def build():
    # no bias before BatchNorm: it would cancel, and its float32-noise gradient, which Adam scales
    # up to a full step, would differ between any two libraries
    return nn.Sequential(
        nn.Conv2d(1, 4, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 5),
    )


def run(model):
    rng = np.random.default_rng(1)
    images = torch.tensor(rng.standard_normal((16, 1, 8, 8)).astype(np.float32))
    labels = torch.tensor(rng.integers(0, 5, size=16))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(3):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    with torch.no_grad():
        evaluated = model(images[:4])
    norm = model[1]
    return {"losses": np.array(losses), "eval_logits": evaluated.numpy(),
            "running_mean": norm.running_mean.numpy(), "running_var": norm.running_var.numpy(),
            "conv.weight.grad": model[0].weight.grad.numpy(),
            "num_batches_tracked": norm.num_batches_tracked.numpy()}
