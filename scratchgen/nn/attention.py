"""``MultiheadAttention``: PyTorch's layer — parameter names, layouts, initialisation and mask
conventions — over the fused attention kernel.

    q, k, v  = query W_q^T + b_q, key W_k^T + b_k, value W_v^T + b_v       (N, L|S, E)
    head h   = attention(q_h, k_h, v_h) on E / num_heads features each      (N, H, L, E/H)
    output   = concat(heads) W_o^T + b_o                                    (N, L, E)

``need_weights=False`` runs the fused kernel (flash attention on the CPU, memory linear in the
length); ``need_weights=True`` (PyTorch's default) must materialise the weights, so it runs the
composed path, as does attention dropout while training.
"""
import math

from .. import init
from ..ops.attention import additive_mask, attention
from ..ops.shape import reshape, transpose
from .layers import Linear
from .module import Module, new_parameter


class MultiheadAttention(Module):
    """``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False) -> (attn_output, attn_weights or None)``.

    query (L, N, E), key (S, N, kdim), value (S, N, vdim) — (N, L, E) etc. with ``batch_first``,
    or unbatched (L, E). Masks as in PyTorch: ``key_padding_mask`` (N, S) and ``attn_mask``
    (L, S) or (N * num_heads, L, S), boolean with True = *not* attended (the opposite of
    ``F.scaled_dot_product_attention``) or float (added to the scores). ``is_causal=True`` is a
    hint that ``attn_mask`` is the causal mask: it must be given, and the kernel's causal mode
    (which skips the tiles above the diagonal) is used instead of it.

    Parameters: ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E,), or ``q_proj_weight``,
    ``k_proj_weight``, ``v_proj_weight`` when kdim or vdim differ from E; ``out_proj`` a Linear.
    Init as PyTorch: Xavier-uniform projections, zero biases, ``out_proj.weight`` as Linear's.
    ``add_bias_kv`` and ``add_zero_attn`` are not implemented.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError("MultiheadAttention: add_bias_kv and add_zero_attn are not implemented")
        if num_heads < 1 or embed_dim % num_heads:
            raise ValueError(f"MultiheadAttention: expected embed_dim divisible by num_heads, got embed_dim "
                             f"{embed_dim} and num_heads {num_heads}")
        if not 0 <= dropout <= 1:
            raise ValueError(f"MultiheadAttention: expected dropout in [0, 1], got {dropout}")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        self.dropout, self.batch_first = dropout, batch_first
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        factory = dict(device=device, dtype=dtype)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = new_parameter(3 * embed_dim, embed_dim, **factory)
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = new_parameter(embed_dim, embed_dim, **factory)
            self.k_proj_weight = new_parameter(embed_dim, self.kdim, **factory)
            self.v_proj_weight = new_parameter(embed_dim, self.vdim, **factory)
        self.register_parameter("in_proj_bias", new_parameter(3 * embed_dim, **factory) if bias else None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, **factory)
        self.reset_parameters()

    def reset_parameters(self):
        for weight in (self.in_proj_weight, self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
            if weight is not None:
                init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        batched = self._check_inputs(query, key, value)
        query, key, value = (self._batch_first(x, batched) for x in (query, key, value))
        batch, queries, keys = query.shape[0], query.shape[1], key.shape[1]
        if is_causal and attn_mask is None:
            raise ValueError("MultiheadAttention: is_causal=True is a hint that attn_mask is the causal "
                             "mask; expected attn_mask too (as PyTorch)")
        mask = self._additive_mask(query, None if is_causal else attn_mask, key_padding_mask, batched,
                                   queries, keys)
        q, k, v = (self._split_heads(x) for x in self._projections(query, key, value))
        out, weights = attention(q, k, v, mask, is_causal, 1 / math.sqrt(self.head_dim),
                                 dropout_p=self.dropout if self.training else 0.0, need_weights=need_weights)
        out = self.out_proj(reshape(transpose(out, 1, 2), (batch, queries, self.embed_dim)))  # (N, L, E)
        out = out if self.batch_first or not batched else transpose(out, 0, 1)
        if weights is not None:
            weights = weights.mean(dim=1) if average_attn_weights else weights
            weights = weights if batched else reshape(weights, weights.shape[1:])
        return (out if batched else reshape(out, out.shape[1:])), weights

    # ---- pieces of forward --------------------------------------------------------------------
    def _check_inputs(self, query, key, value):
        """True for batched inputs; checks ranks and feature sizes."""
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"MultiheadAttention: expected query, key, value all 3-D (batched) or 2-D "
                             f"(unbatched), got shapes {query.shape}, {key.shape}, {value.shape}")
        for name, x, features in (("query", query, self.embed_dim), ("key", key, self.kdim),
                                  ("value", value, self.vdim)):
            if x.shape[-1] != features:
                raise ValueError(f"MultiheadAttention: expected {name} with {features} features, "
                                 f"got shape {x.shape}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"MultiheadAttention: expected key and value of one length and batch, "
                             f"got shapes {key.shape} and {value.shape}")
        return query.ndim == 3

    def _batch_first(self, x, batched):
        """(N, n, features) whatever the layout: unbatched inputs get a batch of one."""
        if not batched:
            return reshape(x, (1,) + x.shape)
        return x if self.batch_first else transpose(x, 0, 1)

    def _projections(self, query, key, value):
        from .. import functional as F
        E = self.embed_dim
        biases = [None] * 3 if self.in_proj_bias is None else \
            [self.in_proj_bias[i * E:(i + 1) * E] for i in range(3)]
        if self._qkv_same_embed_dim:
            weights = [self.in_proj_weight[i * E:(i + 1) * E] for i in range(3)]
        else:
            weights = [self.q_proj_weight, self.k_proj_weight, self.v_proj_weight]
        return [F.linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases)]

    def _split_heads(self, x):
        """(N, n, E) -> (N, H, n, E / H)."""
        return transpose(reshape(x, (x.shape[0], x.shape[1], self.num_heads, self.head_dim)), 1, 2)

    def _additive_mask(self, like, attn_mask, key_padding_mask, batched, queries, keys):
        """attn_mask and key_padding_mask merged into one additive (N|1, H|1, L, S) array, or None."""
        op, mask, batch = "MultiheadAttention", None, like.shape[0]
        if attn_mask is not None:
            shapes = {2: (queries, keys), 3: (batch * self.num_heads, queries, keys)}
            if tuple(attn_mask.shape) != shapes.get(attn_mask.ndim):
                raise ValueError(f"{op}: expected attn_mask of shape (L, S) = {shapes[2]} or "
                                 f"(N * num_heads, L, S) = {shapes[3]}, got {tuple(attn_mask.shape)}")
            mask = additive_mask(op, attn_mask, like, attn_mask.shape, true_means_attend=False)
            heads = (batch, self.num_heads) if attn_mask.ndim == 3 else (1, 1)
            mask = mask.reshape(heads + (queries, keys))
        if key_padding_mask is not None:
            expected = (batch, keys) if batched else (keys,)
            if tuple(key_padding_mask.shape) != expected:
                raise ValueError(f"{op}: expected key_padding_mask of shape {expected}, got "
                                 f"{tuple(key_padding_mask.shape)}")
            padding = additive_mask(op, key_padding_mask, like, expected, true_means_attend=False)
            padding = padding.reshape(batch, 1, 1, keys)
            mask = padding if mask is None else mask + padding
        return mask

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, batch_first={self.batch_first}"
