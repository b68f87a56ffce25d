"""``scratchgen train gpt``: a tiny GPT over characters, written as nanoGPT writes it.

The model (Radford et al. 2018, 2019; nanoGPT's layout and parameter names)
    x_0   = wte[ids] + wpe[0..T-1]                                   token and position embeddings (B, T, C)
    x     = x + attn(ln_1(x))       for each of n_layer blocks         pre-norm residual blocks
    x     = x + mlp(ln_2(x))
    attn  = c_proj(all heads of softmax(q k^T / sqrt(C / n_head) + causal mask) v),  q, k, v = c_attn(x)
    mlp   = c_proj(gelu(c_fc(x)))                                     C -> 4C -> C
    p(x_{t+1} | x_1..x_t) = softmax(ln_f(x) wte^T)                    the head shares the token embedding
    loss  = mean over B T positions of -ln p(next character)           nats per character (bpc = loss / ln 2)

Attention is the fused kernel ``F.scaled_dot_product_attention(q, k, v, is_causal=True)``
(flash attention on the CPU: the (T, T) weights are never stored); ``causal_attention_reference``
beside it is the same thing written out. Initialisation is GPT-2's: weights N(0, 0.02), biases 0,
and the projections that write into the residual stream (``attn.c_proj``, ``mlp.c_proj``)
N(0, 0.02 / sqrt(2 n_layer)), so the residual stream's variance does not grow with depth. AdamW
decays only the matrices (linear weights and embeddings), not biases or LayerNorm gains; the
learning rate warms up linearly, then follows a cosine down to ``lr * final_lr_fraction``.

Training reads windows of ``block_size`` + 1 consecutive characters, shuffled. Validation slides
a window of ``block_size`` over the validation text by half a block at a time and scores each
character once, from at least half a block of the characters before it.
"""
import dataclasses
import math

import numpy as np

from .. import functional as F
from .. import nn, optim
from ..ops.reduction import softmax
from ..tensor import arange, tensor
from .base import option, register
from .language import TextConfig, TextRecipe

EVALUATION_BATCH = 32   # validation windows per forward pass


@dataclasses.dataclass
class GPTConfig(TextConfig):
    epochs: int = option(4, "passes over the training windows (312 steps of 48 x 64 characters each)")
    batch_size: int = option(48, "windows per step")
    lr: float = option(6e-3, "AdamW's peak learning rate")
    final_lr_fraction: float = option(0.1, "the cosine ends at lr times this")
    warmup_steps: int = option(50, "linear warm-up from 0")
    weight_decay: float = option(0.1, "AdamW's decoupled decay, on matrices only")
    block_size: int = option(64, "context length T")
    n_layer: int = option(4, "transformer blocks")
    n_head: int = option(4, "attention heads per block")
    n_embd: int = option(96, "width C of the residual stream")
    dropout: float = option(0.0, "on attention outputs, MLP outputs and embeddings while training")
    clip_norm: float = option(1.0, "gradient norm clipping (0: none)")

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"gpt: expected n_embd divisible by n_head, got {self.n_embd} and {self.n_head}")


def causal_attention_reference(q, k, v):
    """What the fused kernel computes, written out (memory O(T^2)): q, k, v (B, nh, T, hs)."""
    T = q.shape[-2]
    scores = (q @ k.mT) * (1.0 / math.sqrt(k.shape[-1]))                        # (B, nh, T, T)
    visible = np.tril(np.ones((T, T), dtype=bool))
    scores = F.where(tensor(visible, device=q.device), scores, -math.inf)       # key j <= query i only
    return softmax(scores, dim=-1) @ v                                          # (B, nh, T, hs)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_embd, self.dropout = config.n_head, config.n_embd, config.dropout
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)   # q, k, v for all heads at once
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)                      # (B, T, C) each
        q, k, v = (part.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
                   for part in (q, k, v))                                       # (B, nh, T, hs)
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                           is_causal=True)                      # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)                                  # heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))                  # (B, T, C)


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config, vocabulary_size):
        super().__init__()
        self.block_size = config.block_size
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(vocabulary_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),
        ))
        self.lm_head = nn.Linear(config.n_embd, vocabulary_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight   # weight tying: one (V, C) matrix, two uses
        self.apply(self._init_weights)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):              # writes into the residual stream
                nn.init.normal_(parameter, 0.0, 0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, 0.0, 0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, ids):
        """ids (B, T) with T <= block_size -> logits (B, T, V)."""
        B, T = ids.shape
        if T > self.block_size:
            raise ValueError(f"gpt: expected at most block_size = {self.block_size} characters, got {T}")
        positions = arange(T, device=ids.device)                                # (T,)
        x = self.transformer.drop(self.transformer.wte(ids) + self.transformer.wpe(positions))   # (B, T, C)
        for block in self.transformer.h:
            x = block(x)                                                        # (B, T, C)
        return self.lm_head(self.transformer.ln_f(x))                           # (B, T, V)


def evaluation_windows(length, block_size):
    """Where the windows that score a text of ``length`` ids start, and how many of each one's
    last targets are new: (starts (n,), fresh (n,)). A window starts every block_size / 2 (the
    last one ends at the text's end); it scores only the targets the windows before it did not,
    so every id after the first is scored once, from at least block_size / 2 ids before it
    (or all there are, near the start)."""
    last = length - 1 - block_size                          # the window that ends with the text
    starts = np.array(sorted(set(range(0, last + 1, max(block_size // 2, 1))) | {last}))
    return starts, np.diff(starts, prepend=starts[0] - block_size)


def parameter_groups(model, weight_decay):
    """AdamW's groups: matrices (linear weights, embeddings) decay; biases and LayerNorm gains do not."""
    parameters = list(model.parameters())
    return [{"params": [p for p in parameters if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in parameters if p.ndim < 2], "weight_decay": 0.0}]


@register
class GPTRecipe(TextRecipe):
    name = "gpt"
    Config = GPTConfig

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.model = GPT(config, len(data.vocabulary)).to(self.device)
        groups = parameter_groups(self.model, config.weight_decay)
        self.optimizers = {"model": optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.99), fused=True)}

    @classmethod
    def context_length(cls, config):
        return config.block_size

    def learning_rate(self, clock):
        """Linear warm-up over ``warmup_steps``, then a cosine from lr to lr * final_lr_fraction."""
        config = self.config
        if clock.step < config.warmup_steps:
            return config.lr * (clock.step + 1) / config.warmup_steps
        total = config.epochs * clock.batches_per_epoch
        progress = min((clock.step - config.warmup_steps) / max(total - config.warmup_steps, 1), 1.0)
        floor = config.lr * config.final_lr_fraction
        return floor + 0.5 * (config.lr - floor) * (1 + math.cos(math.pi * progress))

    def train_step(self, batch, clock):
        (window,) = batch                                                       # (B, T + 1)
        inputs, targets = window[:, :-1], window[:, 1:]                         # (B, T) each
        logits = self.model(inputs)                                             # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return self.optimize(loss)

    # ---- scoring and sampling --------------------------------------------------------------------------
    def total_nats(self, ids):
        """Sliding windows of block_size inputs (``evaluation_windows``), EVALUATION_BATCH at a time."""
        T = min(self.config.block_size, len(ids) - 1)
        starts, fresh = evaluation_windows(len(ids), T)
        total = 0.0
        for first in range(0, len(starts), EVALUATION_BATCH):
            batch = slice(first, first + EVALUATION_BATCH)
            window = ids[starts[batch, None] + np.arange(T + 1)]                  # (b, T + 1)
            logits = self.model(tensor(window[:, :-1], device=self.device))      # (b, T, V)
            targets = tensor(window[:, 1:].reshape(-1), device=self.device)
            nats = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets, reduction="none")
            scored = np.arange(T) >= T - fresh[batch, None]                      # (b, T): the new targets
            total += float((nats.numpy().reshape(scored.shape) * scored).sum())
        return total

    def start(self, ids):
        return self.advance(list(ids[:-1]), int(ids[-1]))

    def advance(self, state, next_id):
        """No cache of keys and values: each character reruns the last block_size (as nanoGPT does)."""
        ids = (state + [next_id])[-self.config.block_size:]
        logits = self.model(tensor(np.array([ids]), device=self.device))         # (1, t, V)
        return ids, logits[0, -1].log_softmax(dim=-1).numpy()
