"""The PyTorch twin of ``scratchgen.models.realnvp``: the logit preprocessing, affine couplings
with checkerboard and channel masks (s = scale * tanh(raw s)), actnorm and a squeeze, with the
same parameter names (``layers.0.net.first.weight``, ``layers.1.log_scale``, ...).

It mirrors our model line for line on purpose: a twin is an independent implementation in
PyTorch, so the ``duplicates`` tool's pairing of the two is expected.

    twin = TorchRealNVP.from_config(config, image_shape=(8, 8))
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_model.state_dict().items()})
    loss = training_loss(twin, dequantised)        # = the scratchgen step's loss
"""
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ALPHA, LEVELS = 0.05, 17


def checkerboard_mask(shape, parity):
    rows, cols = torch.meshgrid(torch.arange(shape[1]), torch.arange(shape[2]), indexing="ij")
    return ((rows + cols) % 2 == parity).float().expand(shape).clone()


def channel_mask(shape, half):
    mask = torch.zeros(shape)
    split = shape[0] // 2
    mask[:split] = 1
    return mask if half == 0 else 1 - mask


class CouplingNet(nn.Module):
    def __init__(self, in_channels, channels, blocks):
        super().__init__()
        self.first = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                                  nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))
                                    for _ in range(blocks))
        self.last = nn.Conv2d(channels, 2 * in_channels, 3, padding=1)
        nn.init.zeros_(self.last.weight)
        nn.init.zeros_(self.last.bias)

    def forward(self, x):
        h = self.first(x)
        for block in self.blocks:
            h = h + block(h)
        return self.last(F.relu(h))


class AffineCoupling(nn.Module):
    def __init__(self, mask, channels, blocks):
        super().__init__()
        self.register_buffer("mask", mask, persistent=False)
        self.register_buffer("free", 1 - mask, persistent=False)
        self.net = CouplingNet(mask.shape[0], channels, blocks)
        self.scale = nn.Parameter(torch.ones(mask.shape[0], 1, 1))

    def scale_and_shift(self, kept):
        raw_scale, shift = self.net(kept).chunk(2, dim=1)
        return self.scale * torch.tanh(raw_scale) * self.free, shift * self.free

    def forward(self, x):
        log_scale, shift = self.scale_and_shift(x * self.mask)
        return x * log_scale.exp() + shift, log_scale.sum(dim=(1, 2, 3))

    def inverse(self, out):
        log_scale, shift = self.scale_and_shift(out * self.mask)
        return (out - shift) * (-log_scale).exp()


class ActNorm(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(channels, 1, 1))

    def forward(self, x):
        return (x + self.bias) * self.log_scale.exp(), self.log_scale.sum() * x.shape[2] * x.shape[3]

    def inverse(self, out):
        return out * (-self.log_scale).exp() - self.bias


class Squeeze(nn.Module):
    def forward(self, x):
        return F.pixel_unshuffle(x, 2), 0.0

    def inverse(self, out):
        return F.pixel_shuffle(out, 2)


def coupling_and_actnorm(mask, channels, blocks):
    return [AffineCoupling(mask, channels, blocks), ActNorm(mask.shape[0])]


class TorchRealNVP(nn.Module):
    def __init__(self, shape=(1, 8, 8), channels=32, blocks=1, checkerboard=4, channelwise=4):
        super().__init__()
        layers = []
        for index in range(checkerboard):
            layers += coupling_and_actnorm(checkerboard_mask(shape, index % 2), channels, blocks)
        if channelwise:
            shape = (shape[0] * 4, shape[1] // 2, shape[2] // 2)
            layers.append(Squeeze())
            for index in range(channelwise):
                layers += coupling_and_actnorm(channel_mask(shape, index % 2), channels, blocks)
        self.layers = nn.ModuleList(layers)
        self.latent_shape = shape

    @classmethod
    def from_config(cls, config, image_shape):
        return cls((1, *image_shape), config.channels, config.blocks, config.checkerboard, config.channelwise)

    def log_density(self, images):
        """log p(y) per image, (N, 1, H, W) y in [0, 1): logit, flow, standard normal."""
        p = ALPHA + (1 - 2 * ALPHA) * images
        total = (math.log(1 - 2 * ALPHA) - p.log() - (1 - p).log()).sum(dim=(1, 2, 3))
        x = torch.logit(p)
        for layer in self.layers:
            x, log_det = layer(x)
            total = total + log_det
        return torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(dim=(1, 2, 3)) + total

    def sample(self, count):
        z = torch.randn(count, *self.latent_shape)
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return ((torch.sigmoid(z) - ALPHA) / (1 - 2 * ALPHA)).clamp(0.0, 1.0)


def training_loss(model, dequantised):
    """Mean -log p(y) per pixel, in nats, of (N, H, W) dequantised images."""
    return -model.log_density(dequantised.unsqueeze(1)).mean() / dequantised[0].numel()


def _twin_of(recipe):
    twin = TorchRealNVP.from_config(recipe.config, recipe.image_shape)
    twin.load_state_dict({name: torch.as_tensor(value) for name, value in recipe.model.state_dict().items()})
    return twin


def twin_training_step(recipe, batch):
    """The benchmark suite's twin step (see ``peers/__init__.py``): one Adam step on freshly
    dequantised ``batch[0]``."""
    twin = _twin_of(recipe)
    optimizer = torch.optim.Adam(twin.parameters(), lr=recipe.config.lr)
    levels = torch.as_tensor(np.rint(batch[0] * (LEVELS - 1)))

    def step():
        loss = training_loss(twin, (levels + torch.rand(levels.shape)) / LEVELS)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def twin_sampler(recipe, n):
    """The benchmark suite's twin sampler: invert the flow from z ~ N(0, I), read off the levels."""
    twin = _twin_of(recipe)

    @torch.no_grad()
    def draw():
        values = twin.sample(n)[:, 0]
        return torch.clamp(torch.floor(values * LEVELS), max=LEVELS - 1) / (LEVELS - 1)
    return draw
