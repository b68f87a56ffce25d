"""A two-layer MLP classifier trained for a few SGD steps with momentum (PyTorch code)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
import numpy as np


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(6, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x)))


def build():
    return MLP()


def run(model):
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.standard_normal((32, 6)).astype(np.float32))
    y = torch.tensor(rng.integers(0, 3, size=32))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    # each script is a whole PyTorch program on its own (the convention): the training loop is
    # written out in every one that trains, as a PyTorch user writes it
    for _ in range(5):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        logits = model(x)
    return {"losses": np.array(losses), "logits": logits.numpy(),
            "hidden.weight": model.hidden.weight.detach().numpy(),
            "out.bias.grad": model.out.bias.grad.numpy()}
