"""The PyTorch twin of ``scratchgen.models.pixelrnn``: the pixels in raster order through
``nn.LSTM``, each step fed the previous level's embedding plus a position (and class) embedding,
with the same parameter names (``level_embedding.weight``, ``lstm.weight_ih_l0``, ``head.bias``, ...).

It mirrors our model line for line on purpose: a twin is an independent implementation in
PyTorch, so the ``duplicates`` tool's pairing of the two is expected.

    twin = TorchPixelRNN.from_config(config, image_shape=(8, 8))
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_model.state_dict().items()})
    loss = training_loss(twin, levels)              # = the scratchgen step's loss (peers/autoregressive.py)
"""
import torch
from torch import nn

from . import autoregressive
from .autoregressive import CLASSES, LEVELS, training_loss  # noqa: F401  (the twin's loss, by its usual name)

START = LEVELS


class TorchPixelRNN(nn.Module):
    def __init__(self, pixels, embedding_dim=32, hidden=256, conditional=False, dropout=0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.level_embedding = nn.Embedding(LEVELS + 1, embedding_dim)
        self.position_embedding = nn.Embedding(pixels, embedding_dim)
        self.class_embedding = nn.Embedding(CLASSES, embedding_dim) if conditional else None
        self.lstm = nn.LSTM(embedding_dim, hidden)
        self.head = nn.Linear(hidden, LEVELS)

    @classmethod
    def from_config(cls, config, image_shape):
        return cls(image_shape[0] * image_shape[1], config.embedding_dim, config.hidden, config.conditional,
                   config.dropout)

    def inputs(self, previous, positions, labels):
        x = self.level_embedding(previous) + self.position_embedding(positions)[:, None]
        return x if self.class_embedding is None else x + self.class_embedding(labels)

    def logits(self, levels, labels=None):
        """(N, H, W) int64 levels -> (N, 17, H, W) logits."""
        count, height, width = levels.shape
        sequence = levels.reshape(count, -1).T                                        # (T, N)
        previous = torch.cat([torch.full((1, count), START), sequence[:-1]])
        hidden, _ = self.lstm(self.inputs(previous, torch.arange(height * width), labels))
        return self.head(self.dropout(hidden)).permute(1, 2, 0).reshape(count, LEVELS, height, width)

    def next_pixel(self, count, labels=None):
        carried = {"state": None}

        def next_logits(canvas, row, col):
            position = row * canvas.shape[2] + col
            previous = canvas.reshape(count, -1)[:, position - 1] if position else torch.full((count,), START)
            x = self.inputs(previous[None], torch.tensor([position]), labels)
            hidden, carried["state"] = self.lstm(x, carried["state"])
            return self.head(hidden[0])
        return next_logits


def _twin_of(recipe):
    return autoregressive.load_weights(TorchPixelRNN.from_config(recipe.config, recipe.image_shape), recipe)


def twin_training_step(recipe, batch):
    """The benchmark suite's twin step (see ``peers/__init__.py``)."""
    return autoregressive.twin_training_step(_twin_of(recipe), recipe, batch)


def twin_sampler(recipe, n):
    """The benchmark suite's twin sampler: one LSTM step per pixel, the state carried."""
    return autoregressive.twin_sampler(_twin_of(recipe), recipe, n)
