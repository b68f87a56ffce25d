"""The PyTorch twin of ``scratchgen.models.pixelcnn``: masked convolutions (``conv2d(x, weight *
mask)``, type A then type B), residual blocks and a 17-way softmax per pixel, with the same
parameter names (``first.weight``, ``blocks.0.masked.weight``, ``head.3.bias``, ...).

It mirrors our model line for line on purpose: a twin is an independent implementation in
PyTorch, so the ``duplicates`` tool's pairing of the two is expected.

    twin = TorchPixelCNN.from_config(config)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_model.state_dict().items()})
    loss = training_loss(twin, levels)              # = the scratchgen step's loss (peers/autoregressive.py)
"""
import torch
from torch import nn
from torch.nn import functional as F

from . import autoregressive
from .autoregressive import CLASSES, LEVELS, training_loss  # noqa: F401  (the twin's loss, by its usual name)


def raster_mask(kernel_size, mask_type):
    """1 on the taps above the centre row and left of the centre (type A) or up to it (type B)."""
    centre = kernel_size // 2
    mask = torch.zeros(kernel_size, kernel_size)
    mask[:centre] = 1
    mask[centre, :centre + (mask_type == "B")] = 1
    return mask


class MaskedConv2d(nn.Conv2d):
    def __init__(self, in_channels, out_channels, kernel_size, mask_type):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.register_buffer("mask", raster_mask(kernel_size, mask_type), persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.masked = MaskedConv2d(channels, channels, 3, "B")
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(self, h):
        return h + self.mix(F.relu(self.masked(F.relu(h))))


class TorchPixelCNN(nn.Module):
    def __init__(self, channels=64, blocks=4, first_kernel=5, conditional=False):
        super().__init__()
        self.first = MaskedConv2d(1, channels, first_kernel, "A")
        self.class_embedding = nn.Embedding(CLASSES, channels) if conditional else None
        self.blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(blocks)))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 1), nn.ReLU(),
                                  nn.Conv2d(channels, LEVELS, 1))

    @classmethod
    def from_config(cls, config):
        return cls(config.channels, config.blocks, config.first_kernel, config.conditional)

    def logits(self, levels, labels=None):
        """(N, H, W) int64 levels -> (N, 17, H, W) logits."""
        h = self.first(levels.unsqueeze(1).to(self.first.weight.dtype) / (LEVELS - 1))
        if self.class_embedding is not None:
            h = h + self.class_embedding(labels)[:, :, None, None]
        return self.head(self.blocks(h))

    def next_pixel(self, count, labels=None):
        return lambda canvas, row, col: self.logits(canvas, labels)[:, :, row, col]


def _twin_of(recipe):
    return autoregressive.load_weights(TorchPixelCNN.from_config(recipe.config), recipe)


def twin_training_step(recipe, batch):
    """The benchmark suite's twin step (see ``peers/__init__.py``)."""
    return autoregressive.twin_training_step(_twin_of(recipe), recipe, batch)


def twin_sampler(recipe, n):
    """The benchmark suite's twin sampler: 64 passes over the canvas, one pixel drawn per pass."""
    return autoregressive.twin_sampler(_twin_of(recipe), recipe, n)
