"""The PyTorch twin of ``scratchgen.models.charlstm``: embedding -> ``nn.LSTM`` -> linear, trained
with truncated BPTT (state carried and detached between windows), gradient clipping and Adam,
with the same parameter names (``embedding.weight``, ``lstm.weight_ih_l0``, ``head.bias``, ...).

    twin = TorchCharLSTM.from_config(config, vocabulary_size=101)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_model.state_dict().items()})
    loss, state = training_loss(twin, inputs, targets, state)   # = the scratchgen step's loss
    step = make_training_step(config, 101, windows)       # one Adam step per call (the benchmark suite)
"""
import torch
from torch import nn
from torch.nn import functional as F


class TorchCharLSTM(nn.Module):
    def __init__(self, vocabulary_size, embedding_dim=64, hidden=256, num_layers=1, dropout=0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden, num_layers, dropout=dropout)
        self.head = nn.Linear(hidden, vocabulary_size)

    @classmethod
    def from_config(cls, config, vocabulary_size):
        return cls(vocabulary_size, config.embedding_dim, config.hidden, config.num_layers, config.dropout)

    def forward(self, ids, state=None):
        """ids (T, B) -> logits (T, B, V) and the final (h, c), each (layers, B, H)."""
        output, state = self.lstm(self.embedding(ids), state)
        return self.head(output), state


def training_loss(model, inputs, targets, state=None):
    """Mean cross-entropy (nats per character) of one window (T, B) from ``state``, and the state
    it ends in (not detached)."""
    logits, state = model(inputs, state)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)), state


def make_training_step(config, vocabulary_size, windows, state_dict=None):
    """A zero-argument callable: one training step of the twin (Adam at ``config.lr``, gradient norm
    clipped at ``config.clip_norm``) on the next of ``windows`` (W, B, T + 1) int64, cycling, with
    the state carried over as in training; returns the loss."""
    model = TorchCharLSTM.from_config(config, vocabulary_size)
    if state_dict is not None:
        model.load_state_dict({name: torch.as_tensor(value) for name, value in state_dict.items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    windows = torch.as_tensor(windows).transpose(1, 2)                  # (W, T + 1, B): time-major
    carried = {"state": None, "step": 0}

    def step():
        window = windows[carried["step"] % len(windows)]
        optimizer.zero_grad()
        loss, state = training_loss(model, window[:-1], window[1:], carried["state"])
        loss.backward()
        if config.clip_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        carried["state"] = tuple(part.detach() for part in state)
        carried["step"] += 1
        return loss.item()

    return step


def twin_training_step(recipe, batch):
    """The benchmark suite's twin step (see ``peers/__init__.py``): ``make_training_step`` with the
    recipe's config and weights on ``batch = (inputs, targets)``, each (T, B), as one window."""
    inputs, targets = batch
    window = torch.cat([torch.as_tensor(inputs), torch.as_tensor(targets[-1:])]).T[None]   # (1, B, T + 1)
    state = recipe.model.state_dict()
    return make_training_step(recipe.config, len(state["embedding.weight"]), window, state_dict=state)
