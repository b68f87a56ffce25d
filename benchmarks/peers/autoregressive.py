"""What the PyTorch twins of the two autoregressive pixel models (``peers/pixelcnn.py``,
``peers/pixelrnn.py``) share, as ``scratchgen.models.autoregressive`` is shared on our side: the
17-way likelihood, the training step and raster-order sampling. A twin module defines
``logits(levels, labels)`` -> (N, 17, H, W) and ``next_pixel(count, labels)`` -> ``next_logits(canvas,
row, col)``, like ours, and ``from_recipe(recipe)``: the twin of a scratchgen recipe's model.
"""
import numpy as np
import torch
from torch.nn import functional as F

LEVELS, CLASSES = 17, 10


def training_loss(model, levels, labels=None):
    """Mean 17-way cross-entropy per pixel, in nats: the loss of one training step."""
    return F.cross_entropy(model.logits(levels, labels), levels)


def load_weights(twin, recipe):
    """``twin`` with the weights of ``recipe.model`` (a scratchgen model of the same names)."""
    twin.load_state_dict({name: torch.as_tensor(value) for name, value in recipe.model.state_dict().items()})
    return twin


def twin_training_step(twin, recipe, batch):
    """One Adam step of ``twin`` (started from the recipe's weights) as ``PixelRecipe.train_step``
    takes it on ``batch = (images, labels)`` (NumPy), gradient clipping included."""
    config = recipe.config
    optimizer = torch.optim.Adam(twin.parameters(), lr=config.lr)
    levels = torch.as_tensor(np.rint(batch[0] * (LEVELS - 1)).astype(np.int64))
    labels = torch.as_tensor(batch[1]) if config.conditional else None

    def step():
        loss = training_loss(twin, levels, labels)
        optimizer.zero_grad()
        loss.backward()
        if config.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(twin.parameters(), config.clip_norm)
        optimizer.step()
        return loss.item()
    return step


def twin_sampler(twin, recipe, n):
    """Draw ``n`` images pixel by pixel in raster order, as ``PixelRecipe.sample`` does."""
    height, width = recipe.image_shape
    labels = torch.arange(n) % CLASSES if recipe.config.conditional else None

    @torch.no_grad()
    def draw():
        canvas = torch.zeros(n, height, width, dtype=torch.int64)
        next_logits = twin.next_pixel(n, labels)
        for row in range(height):
            for col in range(width):
                probabilities = next_logits(canvas, row, col).softmax(dim=1)
                canvas[:, row, col] = torch.multinomial(probabilities, 1)[:, 0]
        return canvas.float() / (LEVELS - 1)
    return draw
