"""What the two autoregressive pixel models (``pixelcnn``, ``pixelrnn``) share: the 17-way
likelihood, raster-order sampling, and the recipe around them.

An image x of H x W pixels, each a grey level 0..16, is a sequence in raster order (row by row,
left to right), and its probability is the product of one 17-way softmax per pixel:

    P(x) = prod_i P(x_i | x_1 .. x_{i-1}),        -log P(x) = sum_i cross_entropy(logits_i, x_i)

A model is an ``nn.Module`` with two methods:

    logits(levels, labels)      (N, H, W) int levels -> (N, 17, H, W) logits, where the logits at
                                pixel i read only the pixels before i (teacher forcing: all pixels
                                at once in training)
    next_pixel(count, labels)   -> a function ``next_logits(canvas, row, col)`` giving the (count, 17)
                                logits of pixel (row, col) from a canvas whose earlier pixels are
                                drawn: what sampling calls H x W times (a PixelCNN reruns the whole
                                canvas; an RNN takes one step and keeps its state)

``labels`` is None, or the (N,) digit classes of a class-conditional model (``--conditional``).
The loss is the mean NLL per pixel in nats; ``bits_per_dim`` is that over ln 2, and
``test_bits_per_dim`` is the same figure on the test split (``scratchgen.eval.likelihood``).
"""
import dataclasses

import numpy as np

from .. import functional as F
from .. import nn
from ..autograd import no_grad
from ..eval.likelihood import LEVELS, bits_per_dim, to_levels
from ..random import generator
from ..tensor import tensor
from .base import TrainConfig, option, set_hyperparameters
from .levels import LevelsRecipe

CLASSES = 10  # digit classes of the class-conditional models


@dataclasses.dataclass
class PixelConfig(TrainConfig):
    conditional: bool = option(False, "condition on the digit class (samples then cover the classes in turn)")
    clip_norm: float = option(0.0, "gradient norm clipping (0: none)")
    final_lr_fraction: float = option(1.0, "the learning rate falls linearly to lr x this by the last step")

    def __post_init__(self):
        if self.clip_norm < 0 or not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"expected clip_norm >= 0 and final_lr_fraction in [0, 1], got {self.clip_norm} "
                             f"and {self.final_lr_fraction}")


def draw_categorical(logits, rng):
    """One draw per row of (N, K) logits (NumPy), by the inverse CDF of softmax(logits) in float64."""
    logits = np.asarray(logits, dtype=np.float64)
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    cumulative = np.cumsum(probabilities, axis=1)
    uniform = rng.random((len(logits), 1)) * cumulative[:, -1:]
    return np.minimum((cumulative <= uniform).sum(axis=1), logits.shape[1] - 1)


def sample_raster(next_logits, count, shape):
    """(count, H, W) int64 levels drawn pixel by pixel in raster order: pixel (row, col) from the
    logits ``next_logits(canvas, row, col)`` of the canvas drawn so far (later pixels are 0)."""
    rng = generator()
    canvas = np.zeros((count, *shape), np.int64)
    for row in range(shape[0]):
        for col in range(shape[1]):
            canvas[:, row, col] = draw_categorical(next_logits(canvas, row, col), rng)
    return canvas


def negative_log_likelihood(model, levels, labels=None):
    """-log P(x) per image, (N,) nats: the 17-way cross-entropy summed over the pixels."""
    nll = F.cross_entropy(model.logits(levels, labels), levels, reduction="none")    # (N, H, W)
    return nll.sum(dim=(1, 2))


class PixelRecipe(LevelsRecipe):
    """The recipe of an autoregressive pixel model; a subclass sets ``name``, ``Config`` and
    ``build_model(config, image_shape)``."""

    def _labels(self, labels):
        return labels if self.config.conditional else None

    def learning_rate(self, clock):
        """lr, falling linearly to lr * final_lr_fraction at the end (read off the clock: no state)."""
        done = clock.epochs_done / self.config.epochs
        return self.config.lr * (1 - (1 - self.config.final_lr_fraction) * done)

    def before_step(self, clock):
        set_hyperparameters(self.optimizers["model"], lr=self.learning_rate(clock))

    def train_step(self, batch, clock):
        images, labels = batch
        levels = self.batch_levels(images)
        logits = self.model.logits(levels, self._labels(labels))
        loss = F.cross_entropy(logits, levels)                  # nats per pixel
        optimizer = self.optimizers["model"]
        optimizer.zero_grad()
        loss.backward()
        if self.config.clip_norm > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.clip_norm)
        optimizer.step()
        return {"loss": loss.item(), "bits_per_dim": loss.item() / np.log(2)}

    def validate(self, data):
        """``test_bits_per_dim``: -log2 P(x) / pixels on the test split (given its labels if conditional)."""
        def nll(levels, rows):
            labels = tensor(data.test_labels[rows], device=self.device) if self.config.conditional else None
            with no_grad():
                return negative_log_likelihood(self.model, tensor(levels, device=self.device),
                                               labels).cpu().numpy()
        return {"test_bits_per_dim": bits_per_dim(nll, to_levels(data.test_images, op=self.name))}

    def sample(self, n):
        """``n`` images (n, H, W) in [0, 1], level / 16; a conditional model draws the classes in turn."""
        labels = tensor(np.arange(n) % CLASSES, device=self.device) if self.config.conditional else None
        with no_grad():
            levels = sample_raster(self.model.next_pixel(n, labels), n, self.image_shape)
        return (levels / (LEVELS - 1)).astype(np.float32)
