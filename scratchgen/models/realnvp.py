"""``scratchgen train realnvp``: a RealNVP normalizing flow (Dinh et al. 2017) on the digits.

A flow is an invertible map f from images to noise z = f(x) ~ N(0, I), and the change of
variables gives the exact density:   log p(x) = log N(f(x); 0, I) + log |det df/dx|.
Every layer is invertible with a log-determinant that is cheap to compute:

    logit        x = logit(a + (1 - 2a) y), y in [0, 1]: unbounded inputs for the couplings;
                 log|det| = sum D log(1 - 2a) - log p - log(1 - p),  p = a + (1 - 2a) y,  a = 0.05
    coupling     with a fixed binary mask b (1: kept), and s, t = (1 - b) * net(b * x), zero where kept:
                 out = x * exp(s) + t  (= x where b = 1),           log|det| = sum s
                 inverse: x = (out - t) * exp(-s)        (b * out = b * x, so net sees the same input)
                 s = scale * tanh(raw s): bounded, so one step cannot blow a layer up
    actnorm      out = (x + bias) * exp(log_scale) per channel,   log|det| = H W sum log_scale
    squeeze      (C, H, W) -> (4C, H/2, W/2): every 2 x 2 patch into channels; log|det| = 0

The masks: a checkerboard (b = 1 where row + col is even, or odd: alternating) on the 8 x 8
image, then, after a squeeze, channel masks (the first half of the channels, or the second):

    y (1, 8, 8) -> logit -> [checkerboard coupling, actnorm] x ``checkerboard``
                -> squeeze (4, 4, 4) -> [channel coupling, actnorm] x ``channelwise`` -> z

Each coupling's net: conv 3x3 (C) -> ``blocks`` x (h + conv 3x3(relu(conv 3x3(relu(h))))) ->
relu -> conv 3x3 -> (s, t); the last conv starts at zero, so the flow starts as the identity.

The data are integer levels: training and the test figure use dequantised images y = (level + u)
/ 17, u ~ U[0, 1), and report E_u[-log p(y)] + 64 log 17 nats in bits per pixel
(``scratchgen.eval.likelihood``). Samples invert the flow from z ~ N(0, I) and read the level
of each pixel off y: floor(17 y).
"""
import dataclasses
import math

import numpy as np

from .. import functional as F
from .. import init, nn
from ..autograd import no_grad
from ..eval.likelihood import LEVELS, bits_per_dim, dequantised_bits_per_dim, to_levels
from ..tensor import rand, randn, tensor
from .base import TrainConfig, option, register
from .levels import LevelsRecipe

LOG_2PI = math.log(2 * math.pi)
ALPHA = 0.05  # the logit's margin: y in [0, 1] maps into logit([0.05, 0.95])


@dataclasses.dataclass
class RealNVPConfig(TrainConfig):
    epochs: int = option(40, "43 steps each on the 1,347 training digits")
    batch_size: int = option(32, "images per step")
    lr: float = option(1e-3, "Adam's learning rate")
    channels: int = option(32, "C: feature channels of every coupling's net")
    blocks: int = option(1, "residual blocks in each coupling's net")
    checkerboard: int = option(4, "checkerboard couplings on the (1, 8, 8) image")
    channelwise: int = option(4, "channel couplings after the squeeze (0: no squeeze)")
    test_draws: int = option(4, "draws of the dequantisation noise u per test image")

    def __post_init__(self):
        sizes, counts = (self.channels, self.checkerboard, self.test_draws), (self.blocks, self.channelwise)
        if min(sizes) < 1 or min(counts) < 0:
            raise ValueError(f"realnvp: expected channels, checkerboard and test_draws >= 1, blocks and "
                             f"channelwise >= 0, got {self.channels}, {self.checkerboard}, "
                             f"{self.test_draws}, {self.blocks}, {self.channelwise}")


# ---- the invertible layers: forward(x) -> (out, log|det| per image (N,)), inverse(out) -> x ------
def checkerboard_mask(shape, parity):
    """(C, H, W) float32: 1 where row + col has the given parity (0 or 1), on every channel."""
    channels, height, width = shape
    rows, cols = np.indices((height, width))
    return np.broadcast_to(((rows + cols) % 2 == parity), shape).astype(np.float32)


def channel_mask(shape, half):
    """(C, H, W) float32: 1 on the first half of the channels (half 0) or the second (half 1)."""
    mask = np.zeros(shape, np.float32)
    split = shape[0] // 2
    mask[slice(0, split) if half == 0 else slice(split, None)] = 1
    return mask


class CouplingNet(nn.Module):
    """(N, C_in, H, W) masked input -> (N, 2 C_in, H, W): raw log-scales and shifts."""

    def __init__(self, in_channels, channels, blocks):
        super().__init__()
        self.first = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1),
                                                  nn.ReLU(), nn.Conv2d(channels, channels, 3, padding=1))
                                    for _ in range(blocks))
        self.last = nn.Conv2d(channels, 2 * in_channels, 3, padding=1)
        init.zeros_(self.last.weight)  # s = t = 0: every coupling starts as the identity
        init.zeros_(self.last.bias)

    def forward(self, x):
        h = self.first(x)
        for block in self.blocks:
            h = h + block(h)
        return self.last(F.relu(h))


class AffineCoupling(nn.Module):
    """The affine coupling of the module docstring, with a fixed mask b (C, H, W)."""

    def __init__(self, mask, channels, blocks):
        super().__init__()
        self.register_buffer("mask", tensor(mask), persistent=False)
        self.register_buffer("free", tensor(1 - mask), persistent=False)   # 1 where the layer acts
        self.net = CouplingNet(mask.shape[0], channels, blocks)
        self.scale = nn.Parameter(np.ones((mask.shape[0], 1, 1), np.float32))  # s = scale * tanh(raw s)

    def scale_and_shift(self, kept):
        """s and t from the kept pixels, zero on them (those pass through unchanged)."""
        raw_scale, shift = self.net(kept).chunk(2, dim=1)
        return self.scale * raw_scale.tanh() * self.free, shift * self.free

    def forward(self, x):
        log_scale, shift = self.scale_and_shift(x * self.mask)
        return x * log_scale.exp() + shift, log_scale.sum(dim=(1, 2, 3))

    def inverse(self, out):
        log_scale, shift = self.scale_and_shift(out * self.mask)
        return (out - shift) * (-log_scale).exp()


class ActNorm(nn.Module):
    """out = (x + bias) * exp(log_scale), one learned pair per channel, starting as the identity."""

    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(np.zeros((channels, 1, 1), np.float32))
        self.log_scale = nn.Parameter(np.zeros((channels, 1, 1), np.float32))

    def forward(self, x):
        pixels = x.shape[2] * x.shape[3]
        return (x + self.bias) * self.log_scale.exp(), self.log_scale.sum() * pixels  # alike for every image

    def inverse(self, out):
        return out * (-self.log_scale).exp() - self.bias


class Squeeze(nn.Module):
    """(N, C, H, W) -> (N, 4C, H/2, W/2), channel c * 4 + 2 di + dj holding pixel (2i + di, 2j + dj)."""

    def forward(self, x):
        count, channels, height, width = x.shape
        patches = x.reshape(count, channels, height // 2, 2, width // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return patches.reshape(count, channels * 4, height // 2, width // 2), 0.0

    def inverse(self, out):
        count, channels, height, width = out.shape
        patches = out.reshape(count, channels // 4, 2, 2, height, width).permute(0, 1, 4, 2, 5, 3)
        return patches.reshape(count, channels // 4, height * 2, width * 2)


def logit_transform(y):
    """x = logit(p), p = a + (1 - 2a) y; returns x and log|dx/dy| per image (N,)."""
    p = ALPHA + (1 - 2 * ALPHA) * y
    log_det = (math.log(1 - 2 * ALPHA) - p.log() - (1 - p).log()).sum(dim=(1, 2, 3))
    return p.log() - (1 - p).log(), log_det


def inverse_logit_transform(x):
    return (x.sigmoid() - ALPHA) / (1 - 2 * ALPHA)


# ---- the flow --------------------------------------------------------------------------------------
def coupling_and_actnorm(mask, channels, blocks):
    """One step of the flow: an affine coupling with ``mask``, then an actnorm."""
    return [AffineCoupling(mask, channels, blocks), ActNorm(mask.shape[0])]


class RealNVP(nn.Module):
    def __init__(self, shape=(1, 8, 8), channels=32, blocks=1, checkerboard=4, channelwise=4):
        super().__init__()
        layers = []
        for index in range(checkerboard):
            layers += coupling_and_actnorm(checkerboard_mask(shape, index % 2), channels, blocks)
        if channelwise:
            if shape[1] % 2 or shape[2] % 2:
                raise ValueError(f"realnvp: expected an even image side to squeeze, got {shape[1:]}")
            shape = (shape[0] * 4, shape[1] // 2, shape[2] // 2)
            layers.append(Squeeze())
            for index in range(channelwise):
                layers += coupling_and_actnorm(channel_mask(shape, index % 2), channels, blocks)
        self.layers = nn.ModuleList(layers)
        self.latent_shape = shape   # z's shape, (C, H, W)

    @classmethod
    def from_config(cls, config, image_shape):
        return cls((1, *image_shape), config.channels, config.blocks, config.checkerboard, config.channelwise)

    def flow(self, x):
        """(N, C, H, W) -> z of the last layer's shape and the summed log|det| per image (N,)."""
        total = 0
        for layer in self.layers:
            x, log_det = layer(x)
            total = total + log_det
        return x, total

    def flow_inverse(self, z):
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def flow_log_density(self, x):
        """log p(x) per image on R^D: log N(f(x); 0, I) + log|det df/dx|."""
        z, log_det = self.flow(x)
        return -0.5 * (z * z + LOG_2PI).sum(dim=(1, 2, 3)) + log_det

    def log_density(self, images):
        """log p(y) per image for (N, 1, H, W) y in (0, 1): the logit's Jacobian and the flow's."""
        x, log_det = logit_transform(images)
        return self.flow_log_density(x) + log_det

    def sample(self, count):
        """(count, 1, H, W) values y in [0, 1] from z ~ N(0, I), by exact inversion."""
        z = randn(count, *self.latent_shape, device=next(self.parameters()).device)
        return inverse_logit_transform(self.flow_inverse(z)).clamp(0.0, 1.0)


# ---- training, sampling, evaluation --------------------------------------------------------------
@register
class RealNVPRecipe(LevelsRecipe):
    name = "realnvp"
    Config = RealNVPConfig

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.dims = int(np.prod(data.image_shape))

    def build_model(self, config, image_shape):
        return RealNVP.from_config(config, image_shape)

    def negative_log_density(self, dequantised):
        """-log p(y) per image (N,) for (N, H, W) dequantised images y (a Tensor)."""
        return -self.model.log_density(dequantised.unsqueeze(1))

    def dequantise(self, levels):
        """y = (level + u) / 17, u ~ U[0, 1) drawn in float64, as float32: ``likelihood.dequantise``
        in engine ops, so that a compiled step draws fresh noise on every replay."""
        uniform = rand(*levels.shape, dtype=np.float64, device=levels.device)
        return ((levels + uniform) / LEVELS).to(np.float32)

    def train_step(self, batch, clock):
        levels = self.batch_levels(batch[0])
        nll = self.negative_log_density(self.dequantise(levels)).mean()
        loss = nll / self.dims                                  # nats per pixel of the density
        optimizer = self.optimizers["model"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "bits_per_dim": dequantised_bits_per_dim(nll.item(), self.dims)}

    def validate(self, data):
        """``test_bits_per_dim``: (E_u[-log p(y)] + 64 log 17) / (64 ln 2) on the test split,
        ``test_draws`` draws of u per image."""
        def nll(dequantised, rows):
            with no_grad():
                return self.negative_log_density(tensor(dequantised, device=self.device)).cpu().numpy()
        levels = to_levels(data.test_images, op=self.name)
        return {"test_bits_per_dim": bits_per_dim(nll, levels, continuous=True, draws=self.config.test_draws,
                                                  seed=self.config.seed)}

    def sample(self, n):
        """``n`` images (n, H, W) in [0, 1]: the level floor(17 y) of each sampled y, over 16."""
        with no_grad():
            values = self.model.sample(n).cpu().numpy()[:, 0]
        levels = np.minimum(np.floor(values * LEVELS), LEVELS - 1)
        return (levels / (LEVELS - 1)).astype(np.float32)
