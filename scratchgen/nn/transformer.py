"""Transformer layers with PyTorch's names, signatures and submodules (so a ``state_dict`` moves
between the two): ``TransformerEncoderLayer``, ``TransformerEncoder``, ``TransformerDecoderLayer``,
``TransformerDecoder``. They are built from ``MultiheadAttention``, ``LayerNorm``, ``Linear`` and
``Dropout``:

    post-norm (norm_first=False, the default)      pre-norm (norm_first=True)
    x = norm1(x + self_attention(x))               x = x + self_attention(norm1(x))
    x = norm2(x + feed_forward(x))                 x = x + feed_forward(norm2(x))

    feed_forward(x) = dropout2(linear2(dropout(activation(linear1(x)))))
    self_attention(x) = dropout1(self_attn(x, x, x)), need_weights=False (the fused kernel)

The decoder layer adds a cross-attention block on ``memory`` between the two (``norm2``), its
feed-forward block using ``norm3`` and ``dropout3``. Masks (``*_mask``, ``*_key_padding_mask``,
``is_causal``) mean what they mean to ``nn.MultiheadAttention``; ``is_causal=True`` needs the
causal mask too (as PyTorch documents it: a hint that the mask is causal), and then the kernel's
causal mode runs. PyTorch's inference fast path (nested tensors) is not reproduced: with a key
padding mask, its outputs at padded positions are zeros where ours are computed values.
"""
import copy

import numpy as np

from .. import functional as F
from .attention import MultiheadAttention
from .containers import ModuleList
from .layers import Dropout, Linear
from .module import Module
from .normalization import LayerNorm

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _activation(op, activation):
    if callable(activation):
        return activation
    if activation not in ACTIVATIONS:
        raise ValueError(f"{op}: expected activation 'relu', 'gelu' or a callable, got {activation!r}")
    return ACTIVATIONS[activation]


class _TransformerLayer(Module):
    """What the encoder and decoder layers share: their attentions (``self_attn``, and the
    decoder's ``multihead_attn``), the feed-forward block (``linear1``, ``dropout``, ``linear2``),
    one ``norm<i>`` and ``dropout<i>`` per residual block, and the residual wiring, post-norm or
    pre-norm."""

    def __init__(self, attentions, d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                 batch_first, norm_first, bias, device, dtype):
        super().__init__()
        factory = dict(device=device, dtype=dtype)
        for name in attentions:  # registered first, as PyTorch does: the state_dict keys come in its order
            setattr(self, name, MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                   batch_first=batch_first, **factory))
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, **factory)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, **factory)
        self.norm_first = norm_first
        for index in range(1, len(attentions) + 2):  # one residual block per attention, and the feed-forward
            setattr(self, f"norm{index}", LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory))
            setattr(self, f"dropout{index}", Dropout(dropout))
        self.activation = _activation(type(self).__name__, activation)

    def _feed_forward(self, x):
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def _residual(self, x, index, block):
        """x + dropout_i(block(norm_i(x))) pre-norm, or norm_i(x + dropout_i(block(x))) post-norm."""
        norm, dropout = getattr(self, f"norm{index}"), getattr(self, f"dropout{index}")
        if self.norm_first:
            return x + dropout(block(norm(x)))
        return norm(x + dropout(block(x)))


def _attention_block(attention, key_value, mask, key_padding_mask, is_causal):
    """The block ``x -> attention(x, key_value or x, key_value or x)``, output only."""
    def block(x):
        source = x if key_value is None else key_value
        return attention(x, source, source, attn_mask=mask, key_padding_mask=key_padding_mask,
                         need_weights=False, is_causal=is_causal)[0]
    return block


class TransformerEncoderLayer(_TransformerLayer):
    """``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``; src (S, N, E),
    (N, S, E) with ``batch_first``, or unbatched (S, E)."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True, device=None,
                 dtype=None):
        super().__init__(("self_attn",), d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                         batch_first, norm_first, bias, device, dtype)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        attend = _attention_block(self.self_attn, None, src_mask, src_key_padding_mask, is_causal)
        x = self._residual(src, 1, attend)
        return self._residual(x, 2, self._feed_forward)


class TransformerDecoderLayer(_TransformerLayer):
    """``forward(tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
    memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``: self-attention
    on ``tgt``, cross-attention on ``memory`` (``multihead_attn``), then the feed-forward block."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu",
                 layer_norm_eps=1e-5, batch_first=False, norm_first=False, bias=True, device=None,
                 dtype=None):
        super().__init__(("self_attn", "multihead_attn"), d_model, nhead, dim_feedforward, dropout,
                         activation, layer_norm_eps, batch_first, norm_first, bias, device, dtype)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        x = self._residual(tgt, 1, _attention_block(self.self_attn, None, tgt_mask, tgt_key_padding_mask,
                                                    tgt_is_causal))
        x = self._residual(x, 2, _attention_block(self.multihead_attn, memory, memory_mask,
                                                  memory_key_padding_mask, memory_is_causal))
        return self._residual(x, 3, self._feed_forward)


def _clones(op, layer, num_layers):
    if num_layers < 1:
        raise ValueError(f"{op}: expected num_layers >= 1, got {num_layers}")
    return ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])


def _is_causal_mask(mask, is_causal):
    """PyTorch's rule for ``is_causal=None``: True when ``mask`` is the float causal mask (-inf
    above the diagonal, 0 elsewhere). Only speed depends on it: the causal kernel mode skips the
    masked tiles, and gives what the mask gives."""
    if is_causal is not None or mask is None:
        return bool(is_causal)
    data = mask.numpy()
    if data.ndim != 2 or data.shape[0] != data.shape[1] or data.dtype == bool:
        return False
    above = np.triu(np.ones(data.shape, dtype=bool), k=1)
    return bool(np.all(np.isneginf(data[above])) and np.all(data[~above] == 0))


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` (``layers``), then ``norm`` if given;
    ``forward(src, mask=None, src_key_padding_mask=None, is_causal=None)``. ``is_causal=None``
    detects a causal ``mask`` as PyTorch does. ``enable_nested_tensor`` is accepted and ignored."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        self.layers = _clones("TransformerEncoder", encoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        is_causal = _is_causal_mask(mask, is_causal)
        for layer in self.layers:
            src = layer(src, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=is_causal)
        return src if self.norm is None else self.norm(src)


class TransformerDecoder(Module):
    """``num_layers`` copies of ``decoder_layer`` (``layers``), then ``norm`` if given; ``forward``
    takes ``TransformerDecoderLayer``'s arguments (``tgt_is_causal=None`` detects a causal ``tgt_mask``)."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        self.layers = _clones("TransformerDecoder", decoder_layer, num_layers)
        self.num_layers, self.norm = num_layers, norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        tgt_is_causal = _is_causal_mask(tgt_mask, tgt_is_causal)
        for layer in self.layers:
            tgt = layer(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return tgt if self.norm is None else self.norm(tgt)
