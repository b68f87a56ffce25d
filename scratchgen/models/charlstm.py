"""``scratchgen train charlstm``: a character-level LSTM language model (char-rnn), trained the
way pytorch/examples' word_language_model trains: contiguous streams and truncated
backpropagation through time with the state carried from window to window.

The model
    e_t       = embedding(x_t)                                        (E)
    h_t, c_t  = LSTM layers (the fused op) over e_1..e_t               (H per layer)
    p(x_{t+1} | x_1..x_t) = softmax(W h_t + b)                        (V)
    loss      = mean over the window of -ln p(x_{t+1} | x_1..x_t)       nats per character (bpc = loss / ln 2)

Training order: the training text is cut into ``batch_size`` streams B (stream b is the b-th
contiguous B-th of the text) and read ``bptt`` characters T at a time; step s reads characters
sT..sT+T of every stream. The state the LSTM ends a window in is the state it starts the next
one in, so the model keeps context far beyond T; it is detached in between, so backpropagation
stops at the window's start (truncated BPTT, and constant memory). Every epoch starts from the
zero state. The gradient's norm is clipped before each Adam step; the learning rate decays
linearly to ``lr * final_lr_fraction``.

Validation reads the validation text as 16 streams in windows of 256 characters, the state
carried likewise: every character after a stream's first is predicted from its whole stream so far.
"""
import dataclasses

import numpy as np

from .. import functional as F
from .. import nn, optim
from ..backend import to_device
from ..data import DataLoader, TensorDataset
from ..tensor import tensor, zeros
from .base import option, overwrite, register
from .language import TextConfig, TextRecipe

EVALUATION_STREAMS, EVALUATION_WINDOW = 16, 256
IGNORE = -1   # target of the padding after the validation text's end


@dataclasses.dataclass
class CharLSTMConfig(TextConfig):
    epochs: int = option(6, "passes over the training text (467 steps of 32 x 64 characters each)")
    batch_size: int = option(32, "parallel streams of text")
    lr: float = option(3e-3, "Adam's initial learning rate")
    final_lr_fraction: float = option(0.1,
                                      "the learning rate falls linearly to lr times this by the last step")
    bptt: int = option(64, "characters per window (truncated backpropagation through time)")
    embedding_dim: int = option(64, "character embedding size E")
    hidden: int = option(256, "LSTM state size H")
    num_layers: int = option(1, "stacked LSTM layers")
    dropout: float = option(0.0, "between stacked layers while training")
    clip_norm: float = option(1.0, "gradient norm clipping (0: none)")


class CharLSTM(nn.Module):
    def __init__(self, vocabulary_size, embedding_dim=64, hidden=256, num_layers=1, dropout=0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden, num_layers, dropout=dropout)
        self.head = nn.Linear(hidden, vocabulary_size)

    @classmethod
    def from_config(cls, config, vocabulary_size):
        return cls(vocabulary_size, config.embedding_dim, config.hidden, config.num_layers, config.dropout)

    def forward(self, ids, state=None):
        """ids (T, B) -> logits (T, B, V) and the final state (h, c), each (layers, B, H);
        ``state`` is where to start (zeros when None)."""
        x = self.embedding(ids)                    # (T, B, E)
        y, state = self.lstm(x, state)             # (T, B, H)
        return self.head(y), state                 # (T, B, V)


def stream_windows(windows, streams):
    """(W, B, T + 1) from consecutive windows (n, T + 1): step s holds window s of each of B
    contiguous streams (stream b = windows b W .. b W + W - 1; the n mod B last ones are dropped)."""
    per_stream = len(windows) // streams
    if per_stream == 0:
        raise ValueError(f"charlstm: expected at least {streams} training windows (one per stream), got "
                         f"{len(windows)}")
    return windows[:per_stream * streams].reshape(streams, per_stream, -1).transpose(1, 0, 2)


def parallel_streams(ids, streams):
    """Inputs and targets (L, S) of ``ids`` cut into S contiguous streams: every id after the
    first is the target of the one before it exactly once; the end is padded (target ``IGNORE``)."""
    inputs, targets = ids[:-1], ids[1:]
    length = -(-len(inputs) // streams)
    padding = streams * length - len(inputs)
    inputs = np.concatenate([inputs, np.zeros(padding, dtype=inputs.dtype)])
    targets = np.concatenate([targets, np.full(padding, IGNORE, dtype=targets.dtype)])
    return inputs.reshape(streams, length).T.copy(), targets.reshape(streams, length).T.copy()


@register
class CharLSTMRecipe(TextRecipe):
    name = "charlstm"
    Config = CharLSTMConfig

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.model = CharLSTM.from_config(config, len(data.vocabulary)).to(self.device)
        self.optimizers = {"model": optim.Adam(self.model.parameters(), lr=config.lr, fused=True)}
        # (h, c) after the last training window, each (layers, B, H): two arrays for the whole run,
        # written in place (a compiled step reads them anew on every replay), zeroed at each epoch's start
        shape = (config.num_layers, config.batch_size, config.hidden)
        self.carried = (zeros(*shape, device=self.device), zeros(*shape, device=self.device))

    @classmethod
    def context_length(cls, config):
        return config.bptt

    def make_loader(self, data, seed):
        """One step's window of every stream at a time, in order (the state carries over). Under
        ``--distributed`` the streams of the global batch are dealt out: rank r carries streams
        r·B .. r·B + B - 1 of B·N, so N ranks together read what one process with B·N streams reads."""
        batch = self.config.batch_size
        windows = stream_windows(data.train_arrays[0], batch * self.world_size)
        return DataLoader(TensorDataset(windows[:, self.rank * batch:(self.rank + 1) * batch]), batch_size=1)

    def to_tensors(self, arrays):
        (window,) = arrays                                  # (1, B, T + 1)
        time_major = window[0].T                            # (T + 1, B)
        inputs, targets = np.ascontiguousarray(time_major[:-1]), np.ascontiguousarray(time_major[1:])
        return super().to_tensors((inputs, targets))

    def learning_rate(self, clock):
        progress = clock.epochs_done / self.config.epochs
        return self.config.lr * (1 - (1 - self.config.final_lr_fraction) * progress)

    def before_step(self, clock):
        super().before_step(clock)                                              # the learning rate
        if clock.batch == 0:                                                    # each epoch starts afresh
            dtype = self.model.head.weight.dtype
            if self.carried[0].dtype != dtype:   # the model was cast (Module.to): new arrays, new captures
                self.carried = tuple(zeros(*part.shape, dtype=dtype, device=self.device) for part in self.carried)
            for part in self.carried:
                part.data[...] = 0

    def train_step(self, batch, clock):
        inputs, targets = batch                                                 # (T, B) each
        logits, state = self.model(inputs, self.carried)                        # (T, B, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        metrics = self.optimize(loss)
        for kept, final in zip(self.carried, state):
            overwrite(kept, final)      # values only: the backward stops at the next window's start
        return metrics

    # ---- scoring and sampling --------------------------------------------------------------------------
    def total_nats(self, ids):
        inputs, targets = parallel_streams(ids, EVALUATION_STREAMS)           # (L, S) each
        total, state = 0.0, None
        for start in range(0, len(inputs), EVALUATION_WINDOW):
            window = slice(start, start + EVALUATION_WINDOW)
            logits, state = self.model(tensor(inputs[window], device=self.device), state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                     tensor(targets[window].reshape(-1), device=self.device),
                                     ignore_index=IGNORE, reduction="sum").item()
        return total

    def start(self, ids):
        return self._read(ids, None)

    def advance(self, state, next_id):
        return self._read(np.array([next_id]), state)

    def _read(self, ids, state):
        logits, state = self.model(tensor(ids.reshape(-1, 1), device=self.device), state)   # (T, 1, V)
        return state, logits[-1, 0].log_softmax(dim=-1).numpy()

    # ---- state: the carried LSTM state is part of where training stands ---------------------------------
    def state_dict(self):
        return {**super().state_dict(), "carried": {"h": self.carried[0].data, "c": self.carried[1].data}}

    def load_state_dict(self, state, weights_only=False):
        super().load_state_dict(state, weights_only)
        if not weights_only and "carried" in state:
            for part, name in zip(self.carried, ("h", "c")):   # in place: a compiled step holds these arrays
                part.data[...] = to_device(state["carried"][name], self.device)
