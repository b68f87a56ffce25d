"""``scratchgen train pixelrnn``: a raster-order LSTM over the pixels (after van den Oord et al.
2016's PixelRNN) on the 17-level digits.

The H x W pixels in raster order are a sequence of T = H W grey levels, and one LSTM reads it,
each step predicting the next pixel's 17-way distribution from every earlier pixel:

    input_t   = embed(x_{t-1}) + position_t  (+ class_y)      x_0 is a start token (level 17)   (E)
    h_t, c_t  = LSTM(input_t, h_{t-1}, c_{t-1})              the fused LSTM op, all T steps at once (H)
    P(x_t | x_<t) = softmax(W dropout(h_t) + b)               17 levels (dropout only in training)

The position embedding tells the LSTM which column it is at, which the grey levels alone only
imply by counting; the class embedding (``--conditional``) is added at every step. (The paper's
Row LSTM and Diagonal BiLSTM, which read whole rows at once, are not built here.) Training
teaches every step at once (teacher forcing); sampling runs the LSTM one step per pixel,
carrying its state, so the T pixels of a batch cost T single steps.
"""
import dataclasses

from .. import functional as F
from .. import nn
from ..eval.likelihood import LEVELS
from ..ops.shape import cat
from ..tensor import arange, full, tensor
from .autoregressive import CLASSES, PixelConfig, PixelRecipe
from .base import option, register

START = LEVELS  # the start token's index in the input embedding (the levels are 0..16)


@dataclasses.dataclass
class PixelRNNConfig(PixelConfig):
    epochs: int = option(15, "43 steps each on the 1,347 training digits (more overfit: see docs)")
    batch_size: int = option(32, "images per step")
    lr: float = option(3e-3, "Adam's initial learning rate")
    final_lr_fraction: float = option(0.05, "the learning rate falls linearly to lr x this by the last step")
    embedding_dim: int = option(32, "E: size of the level, position and class embeddings")
    hidden: int = option(256, "H: the LSTM's state size")
    dropout: float = option(0.3, "on the LSTM's outputs while training (1,347 images overfit fast)")
    clip_norm: float = option(1.0, "gradient norm clipping (0: none)")

    def __post_init__(self):
        super().__post_init__()
        if self.embedding_dim < 1 or self.hidden < 1 or not 0 <= self.dropout < 1:
            raise ValueError(f"pixelrnn: expected embedding_dim >= 1, hidden >= 1 and dropout in [0, 1), got "
                             f"{self.embedding_dim}, {self.hidden}, {self.dropout}")


class PixelRNN(nn.Module):
    def __init__(self, pixels, embedding_dim=32, hidden=256, conditional=False, dropout=0.0):
        super().__init__()
        self.dropout = dropout
        self.level_embedding = nn.Embedding(LEVELS + 1, embedding_dim)        # 17 levels + the start token
        self.position_embedding = nn.Embedding(pixels, embedding_dim)
        self.class_embedding = nn.Embedding(CLASSES, embedding_dim) if conditional else None
        self.lstm = nn.LSTM(embedding_dim, hidden)
        self.head = nn.Linear(hidden, LEVELS)

    @classmethod
    def from_config(cls, config, image_shape):
        return cls(image_shape[0] * image_shape[1], config.embedding_dim, config.hidden, config.conditional,
                   config.dropout)

    def inputs(self, previous, positions, labels):
        """(T, N) previous levels (or START) at (T,) raster positions -> (T, N, E) LSTM inputs."""
        x = self.level_embedding(previous) + self.position_embedding(positions).unsqueeze(1)
        return x if self.class_embedding is None else x + self.class_embedding(labels)

    def logits(self, levels, labels=None):
        """(N, H, W) int levels -> (N, 17, H, W) logits, all T = H W steps at once."""
        count, height, width = levels.shape
        sequence = levels.reshape(count, height * width).transpose(0, 1)             # (T, N)
        start = full((1, count), START, dtype=sequence.dtype, device=sequence.device)
        previous = cat([start, sequence[:-1]])                                       # x_{t-1}, (T, N)
        positions = arange(height * width, device=levels.device)
        hidden, _ = self.lstm(self.inputs(previous, positions, labels))               # (T, N, H)
        logits = self.head(F.dropout(hidden, self.dropout, self.training))            # (T, N, 17)
        return logits.permute(1, 2, 0).reshape(count, LEVELS, height, width)

    def next_pixel(self, count, labels=None):
        """Sampling: one LSTM step per pixel, fed the pixel drawn before it; the state is carried."""
        device = next(self.parameters()).device
        state = None

        def next_logits(canvas, row, col):
            nonlocal state
            position = row * canvas.shape[2] + col
            previous = canvas.reshape(count, -1)[:, position - 1] if position else [START] * count
            x = self.inputs(tensor([previous], device=device), tensor([position], device=device), labels)
            hidden, state = self.lstm(x, state)                                       # (1, N, H)
            return self.head(hidden[0]).cpu().numpy()
        return next_logits


@register
class PixelRNNRecipe(PixelRecipe):
    name = "pixelrnn"
    Config = PixelRNNConfig

    def build_model(self, config, image_shape):
        return PixelRNN.from_config(config, image_shape)
