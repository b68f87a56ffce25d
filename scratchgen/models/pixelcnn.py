"""``scratchgen train pixelcnn``: a PixelCNN (van den Oord et al. 2016) on the 17-level digits.

Each pixel's 17-way distribution is computed by convolutions whose kernels are masked so that
pixel i sees only the pixels before it in raster order (the rows above, and the pixels to its
left in its own row). Two masks, drawn for a 5 x 5 kernel (1: kept, 0: zeroed):

    type A (first layer: the input          type B (every later layer: features at a
    pixel itself must stay unseen)          pixel already exclude that pixel's input)
        1 1 1 1 1                               1 1 1 1 1
        1 1 1 1 1                               1 1 1 1 1
        1 1 0 0 0                               1 1 1 0 0
        0 0 0 0 0                               0 0 0 0 0
        0 0 0 0 0                               0 0 0 0 0

A masked convolution is ``F.conv2d(x, weight * mask)``: the product is an ordinary differentiable
op, so the weight's gradient is masked too and the zeroed taps stay zero.

The network, C = ``channels``, on (N, 1, H, W) inputs level / 16:

    masked conv A, k x k (k = ``first_kernel``)                 -> (N, C, H, W)   (+ class embedding)
    ``blocks`` x residual block: h + conv1x1(relu(masked conv B 3x3(relu(h))))
    relu -> conv 1x1 (C) -> relu -> conv 1x1 (17)                -> (N, 17, H, W) logits

Training maximises the exact likelihood (``autoregressive``: cross-entropy per pixel); sampling
runs the network H x W times, drawing one pixel per pass.
"""
import dataclasses

import numpy as np

from .. import functional as F
from .. import nn
from ..eval.likelihood import LEVELS
from ..tensor import tensor
from .autoregressive import CLASSES, PixelConfig, PixelRecipe
from .base import option, register


@dataclasses.dataclass
class PixelCNNConfig(PixelConfig):
    epochs: int = option(30, "43 steps each on the 1,347 training digits")
    batch_size: int = option(32, "images per step")
    lr: float = option(2e-3, "Adam's initial learning rate")
    final_lr_fraction: float = option(0.05, "the learning rate falls linearly to lr x this by the last step")
    channels: int = option(64, "feature channels C of every layer")
    blocks: int = option(4, "residual blocks of masked 3 x 3 convolutions (type B)")
    first_kernel: int = option(5, "side of the first (type A) masked convolution")

    def __post_init__(self):
        super().__post_init__()
        if self.channels < 1 or self.blocks < 0 or self.first_kernel < 1 or self.first_kernel % 2 == 0:
            raise ValueError(f"pixelcnn: expected channels >= 1, blocks >= 0 and an odd first_kernel, got "
                             f"{self.channels}, {self.blocks}, {self.first_kernel}")


def raster_mask(kernel_size, mask_type):
    """(k, k) float32 mask of the taps a pixel may read: the rows above the centre, and in the
    centre row the taps left of it (type "A") or up to and including it (type "B")."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"raster_mask: expected mask type 'A' or 'B', got {mask_type!r}")
    centre = kernel_size // 2
    mask = np.zeros((kernel_size, kernel_size), np.float32)
    mask[:centre] = 1
    mask[centre, :centre + (mask_type == "B")] = 1
    return mask


class MaskedConv2d(nn.Conv2d):
    """A 'same'-padded convolution that reads only earlier pixels: ``conv2d(x, weight * mask)``."""

    def __init__(self, in_channels, out_channels, kernel_size, mask_type):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        self.mask_type = mask_type
        self.register_buffer("mask", tensor(raster_mask(kernel_size, mask_type)), persistent=False)

    def forward(self, x):
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)

    def extra_repr(self):
        return f"{super().extra_repr()}, mask_type={self.mask_type!r}"


class ResidualBlock(nn.Module):
    """h + conv1x1(relu(masked conv B 3 x 3 (relu(h)))): the skip keeps the raster order (h at a
    pixel already depends only on earlier pixels), and both convolutions preserve it."""

    def __init__(self, channels):
        super().__init__()
        self.masked = MaskedConv2d(channels, channels, 3, "B")
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(self, h):
        return h + self.mix(F.relu(self.masked(F.relu(h))))


class PixelCNN(nn.Module):
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

    def forward(self, images, labels=None):
        """(N, 1, H, W) float images (level / 16) -> (N, 17, H, W) logits."""
        h = self.first(images)                                            # (N, C, H, W)
        if self.class_embedding is not None:
            h = h + self.class_embedding(labels).unsqueeze(-1).unsqueeze(-1)
        return self.head(self.blocks(h))

    def logits(self, levels, labels=None):
        """(N, H, W) int levels -> (N, 17, H, W) logits (see ``autoregressive``)."""
        images = levels.unsqueeze(1).to(dtype=self.first.weight.dtype) / (LEVELS - 1)
        return self(images, labels)

    def next_pixel(self, count, labels=None):
        """Sampling: each pixel's logits from one pass over the whole canvas."""
        def next_logits(canvas, row, col):
            levels = tensor(canvas, device=next(self.parameters()).device)
            return self.logits(levels, labels)[:, :, row, col].cpu().numpy()
        return next_logits


@register
class PixelCNNRecipe(PixelRecipe):
    name = "pixelcnn"
    Config = PixelCNNConfig

    def build_model(self, config, image_shape):
        return PixelCNN.from_config(config)
