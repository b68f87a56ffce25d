"""The PyTorch twin of ``scratchgen.models.gpt``: nanoGPT's modules — pre-norm blocks, causal
``F.scaled_dot_product_attention``, GELU MLP, the head tied to the token embedding — with the same
parameter names (``transformer.h.0.attn.c_attn.weight``, ``lm_head.weight``, ...), trained with
AdamW that decays only the matrices, and gradient clipping.

    twin = TorchGPT.from_config(config, vocabulary_size=101)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_model.state_dict().items()})
    loss = training_loss(twin, windows)                 # = the scratchgen step's loss
    step = make_training_step(config, 101, windows)     # one AdamW step per call, for the benchmark suite
"""
import torch
from torch import nn
from torch.nn import functional as F


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.n_head, self.dropout = n_head, dropout
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (part.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for part in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class MLP(nn.Module):
    def __init__(self, n_embd, dropout):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, n_embd, n_head, dropout):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd, dropout)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class TorchGPT(nn.Module):
    def __init__(self, vocabulary_size, block_size=64, n_layer=4, n_head=4, n_embd=96, dropout=0.0):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocabulary_size, n_embd),
            wpe=nn.Embedding(block_size, n_embd),
            drop=nn.Dropout(dropout),
            h=nn.ModuleList([Block(n_embd, n_head, dropout) for _ in range(n_layer)]),
            ln_f=nn.LayerNorm(n_embd),
        ))
        self.lm_head = nn.Linear(n_embd, vocabulary_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight

    @classmethod
    def from_config(cls, config, vocabulary_size):
        return cls(vocabulary_size, config.block_size, config.n_layer, config.n_head, config.n_embd,
                   config.dropout)

    def forward(self, ids):
        positions = torch.arange(ids.shape[1], device=ids.device)
        x = self.transformer.drop(self.transformer.wte(ids) + self.transformer.wpe(positions))
        for block in self.transformer.h:
            x = block(x)
        return self.lm_head(self.transformer.ln_f(x))


def training_loss(model, windows):
    """Mean cross-entropy (nats per character) of predicting windows[:, 1:] from windows[:, :-1]."""
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), windows[:, 1:].reshape(-1))


def make_optimizer(model, config, lr=None):
    """AdamW decaying the matrices (2-D weights) only, as the scratchgen recipe builds it."""
    parameters = list(model.parameters())
    groups = [{"params": [p for p in parameters if p.dim() >= 2], "weight_decay": config.weight_decay},
              {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr if lr is None else lr, betas=(0.9, 0.99))


def make_training_step(config, vocabulary_size, windows, state_dict=None):
    """A zero-argument callable: one training step of the twin (AdamW at ``config.lr``, gradient
    norm clipped at ``config.clip_norm``) on ``windows`` (B, T + 1) int64; returns the loss."""
    model = TorchGPT.from_config(config, vocabulary_size)
    if state_dict is not None:
        model.load_state_dict({name: torch.as_tensor(value) for name, value in state_dict.items()})
    optimizer = make_optimizer(model, config)
    windows = torch.as_tensor(windows)

    def step():
        optimizer.zero_grad()
        loss = training_loss(model, windows)
        loss.backward()
        if config.clip_norm > 0:
            nn.utils.clip_grad_norm_(model.parameters(), config.clip_norm)
        optimizer.step()
        return loss.item()

    return step


def twin_training_step(recipe, batch):
    """The benchmark suite's twin step (see ``peers/__init__.py``): ``make_training_step`` with the
    recipe's config and weights on ``batch = (windows,)``, (B, T + 1)."""
    state = recipe.model.state_dict()
    return make_training_step(recipe.config, len(state["lm_head.weight"]), batch[0], state_dict=state)
