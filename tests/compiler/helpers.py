"""Twin setups for the compiler tests: the same model and optimizer built twice from one seed."""
import numpy as np

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import nn, optim


def classifier(seed=0, dropout=0.0, fused=False):
    """A small MLP classifier and its Adam optimizer, made from ``seed``."""
    sg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))
    return model, optim.Adam(model.parameters(), lr=1e-2, fused=fused)


def training_step(model, optimizer):
    """One optimizer step; returns the loss read with .item() and a derived metric."""
    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "half_loss": loss.item() / 2}
    return step


def batches(count, seed=1, rows=6):
    rng = np.random.default_rng(seed)
    return [(sg.tensor(rng.standard_normal((rows, 8)).astype(np.float32)),
             sg.tensor(rng.integers(0, 3, rows))) for _ in range(count)]


def assert_same_parameters(a, b):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data, err_msg=f"parameter {name}")
        np.testing.assert_array_equal(p.grad.data, q.grad.data, err_msg=f"gradient of {name}")
