"""The PyTorch twin of ``scratchgen.models.rbm``: the same Bernoulli–Bernoulli RBM, free energy,
contrastive-divergence step and SGD (momentum, weight decay on W only), written as one would in
PyTorch, with the same parameter names (``weight`` (H, V), ``visible_bias``, ``hidden_bias``, and
the persistent chains as the buffer ``chains``).

    twin = TorchRBM(visible=64, hidden=256, persistent_chains=20)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_rbm.state_dict().items()})
    loss, negative = contrastive_divergence(twin, data, start, steps, uniforms)   # = scratchgen's

``twin_training_step`` and ``twin_sampler`` are the benchmark suite's entry points (see
``peers/__init__.py``).
"""
import torch
from torch import nn
from torch.nn import functional as F


class TorchRBM(nn.Module):
    def __init__(self, visible, hidden, persistent_chains=0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(hidden, visible) * 0.01)
        self.visible_bias = nn.Parameter(torch.zeros(visible))
        self.hidden_bias = nn.Parameter(torch.zeros(hidden))
        if persistent_chains:
            self.register_buffer("chains", torch.zeros(persistent_chains, visible))

    def forward(self, v):
        """The hidden units' logits c + W v."""
        return F.linear(v, self.weight, self.hidden_bias)

    def free_energy(self, v):
        """F(v) = -b^T v - sum_j softplus(c_j + W_j v)."""
        return -v @ self.visible_bias - F.softplus(self(v)).sum(dim=1)

    def gibbs_step(self, v, uniforms=None):
        hidden_uniform, visible_uniform = uniforms or (torch.rand(len(v), self.weight.shape[0], dtype=v.dtype),
                                                       torch.rand(len(v), self.weight.shape[1], dtype=v.dtype))
        h = (hidden_uniform < torch.sigmoid(self(v))).to(v.dtype)
        return h, (visible_uniform < torch.sigmoid(h @ self.weight + self.visible_bias)).to(v.dtype)


def contrastive_divergence(model, data, start, steps, uniforms=None):
    """(mean F(data) - mean F(v~), v~): v~ after ``steps`` Gibbs steps from ``start``, held constant."""
    with torch.no_grad():
        negative = start
        for step in range(steps):
            negative = model.gibbs_step(negative, uniforms[step] if uniforms else None)[1]
    return model.free_energy(data).mean() - model.free_energy(negative).mean(), negative


def build(config, visible):
    """The twin of an ``RBMConfig`` and its SGD (weight decay on W only)."""
    twin = TorchRBM(visible, config.hidden, config.batch_size if config.method == "pcd" else 0)
    optimizer = torch.optim.SGD([{"params": [twin.weight], "weight_decay": config.weight_decay},
                                 {"params": [twin.visible_bias, twin.hidden_bias], "weight_decay": 0.0}],
                                lr=config.lr, momentum=config.momentum)
    return twin, optimizer


def training_step(twin, optimizer, data, steps, persistent, uniforms=None):
    """One CD-k (or PCD-k) step on binary ``data`` (N, V); returns the loss as a float."""
    start = twin.chains if persistent else data
    loss, negative = contrastive_divergence(twin, data, start, steps, uniforms)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if persistent:
        twin.chains.copy_(negative)
    return loss.item()


def _twin_of(recipe):
    twin, optimizer = build(recipe.config, recipe.model.visible)
    twin.load_state_dict({name: torch.as_tensor(value) for name, value in recipe.model.state_dict().items()})
    return twin, optimizer


def twin_training_step(recipe, batch):
    """``step()``: what ``RBMRecipe.train_step`` does on ``batch[0]`` (N, S, S) grey images: binarise
    afresh, one CD/PCD step, the optimizer update, the reconstruction monitor."""
    config = recipe.config
    twin, optimizer = _twin_of(recipe)
    images = torch.as_tensor(batch[0]).reshape(len(batch[0]), -1)

    def step():
        data = (torch.rand_like(images) < images).to(images.dtype)
        loss = training_step(twin, optimizer, data, config.gibbs_steps, config.method == "pcd")
        with torch.no_grad():  # the recipe's monitor: squared error of the one-step reconstruction
            h = twin.gibbs_step(data)[0]
            reconstruction = (torch.sigmoid(h @ twin.weight + twin.visible_bias) - data).pow(2).sum(dim=1).mean()
        return loss, reconstruction.item()
    return step


def twin_sampler(recipe, n, chains=100, burn_in=1000, thin=100):
    """``draw()``: ``n`` visible-mean images from Gibbs chains, as ``RBMRecipe.sample`` draws them."""
    twin, _ = _twin_of(recipe)
    side = recipe.side
    rate = torch.sigmoid(torch.as_tensor(recipe.base_visible_bias))

    @torch.no_grad()
    def draw():
        count = min(chains, n)
        per_chain = -(-n // count)
        v = (torch.rand(count, len(rate)) < rate).float()
        kept = []
        for sweep in range(1, burn_in + per_chain * thin + 1):
            h, v = twin.gibbs_step(v)
            if sweep > burn_in and (sweep - burn_in) % thin == 0:
                kept.append(torch.sigmoid(h @ twin.weight + twin.visible_bias))
        return torch.stack(kept, dim=1).reshape(-1, side, side)[:n]
    return draw
