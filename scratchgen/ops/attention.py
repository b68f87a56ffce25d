"""Scaled dot-product attention: one fused ``Function`` and ``F.scaled_dot_product_attention``.

    out = softmax(q k^T * scale + mask) v          for every batch element (and head)

``ScaledDotProductAttention`` runs the kernels of ``scratchgen.kernels.attention`` that the
registry picks (flash attention on the CPU: memory linear in the sequence length). Its backward
is the kernel's backward on raw arrays, so it is differentiable once; ``create_graph=True``
through it raises an error naming it. The mask is a constant: it gets no gradient.

``composed_attention`` is the same math from ordinary ops (matmul, softmax, dropout), and so is
differentiable to any order. It is the path for attention dropout and for callers that need the
attention weights (``nn.MultiheadAttention(need_weights=True)``).

Masks follow PyTorch: a boolean ``attn_mask`` is True where a key *takes part* (the opposite of
``nn.MultiheadAttention``'s masks), a float mask is added to the scores, and either broadcasts over
the batch dims. ``is_causal`` keeps key j for query i when j <= i (top-left aligned when L != S).
A query with no visible key gets zero output and passes no gradient (no NaN), as in PyTorch 2.13.
"""
import math

import numpy as np

from .. import backend
from ..autograd import Function
from ..kernels import implementation
from ..tensor import Tensor
from .elementwise import dropout
from .linalg import matmul
from .reduction import softmax
from .shape import expand, reshape


class ScaledDotProductAttention(Function):
    """out (B, H, L, Ev) from q (B, H, L, E), k (B, H, S, E), v (B, H, S, Ev).

    ``mask`` is None or an additive array broadcastable to (B, H, L, S), of q's dtype.
    """

    once_differentiable = True

    def forward(self, q, k, v, *, mask, is_causal, scale):
        xp = backend.get_array_module(q)
        q, k, v = (xp.ascontiguousarray(a) for a in (q, k, v))
        self.kernels = implementation("attention", q)
        self.options = (mask, is_causal, scale)  # constants, not saved tensors: no gradient flows to them
        out, logsumexp = self.kernels.attention_forward(q, k, v, *self.options)
        self.save_for_backward(q, k, v, out, logsumexp)
        return out

    def backward(self, grad):
        q, k, v, out, logsumexp = (t.data for t in self.saved_tensors)
        grad = backend.get_array_module(q).ascontiguousarray(grad.data)
        grads = self.kernels.attention_backward(grad, q, k, v, out, logsumexp, *self.options)
        return tuple(Tensor(g) for g in grads)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False):
    """``torch.nn.functional.scaled_dot_product_attention``: query (..., L, E), key (..., S, E),
    value (..., S, Ev) -> (..., L, Ev); the leading (batch) dims broadcast.

    ``attn_mask``: boolean (True = attend) or float (added to the scores), broadcastable to
    (..., L, S); a constant, so a float mask that requires grad is refused. ``is_causal`` and
    ``attn_mask`` are exclusive, as in PyTorch. ``scale`` defaults to 1/sqrt(E).

    ``dropout_p > 0`` leaves the fused kernel: the weights must be materialised to drop some, so
    it runs ``composed_attention`` (memory O(L S), differentiable to any order). Like PyTorch, the
    dropout applies whenever ``dropout_p > 0`` — pass 0.0 at evaluation time.
    """
    op = "scaled_dot_product_attention"
    if enable_gqa:
        raise NotImplementedError(f"{op}: enable_gqa=True is not implemented")
    if attn_mask is not None and is_causal:
        raise ValueError(f"{op}: expected attn_mask or is_causal, got both (PyTorch refuses them together; "
                         "fold the causal part into attn_mask)")
    if not 0 <= dropout_p <= 1:
        raise ValueError(f"{op}: expected dropout_p in [0, 1], got {dropout_p}")
    batch_shape = check_attention_shapes(op, query, key, value)
    mask = additive_mask(op, attn_mask, query, batch_shape + (query.shape[-2], key.shape[-2]),
                         true_means_attend=True)
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    q, k, v = (as_heads(x, batch_shape) for x in (query, key, value))
    out, _ = attention(q, k, v, mask_as_heads(mask, batch_shape), is_causal, scale, dropout_p)
    return reshape(out, batch_shape + out.shape[-2:])


def attention(q, k, v, mask, is_causal, scale, dropout_p=0.0, need_weights=False):
    """``(out, weights)`` for 4-D (B, H, ., .) tensors and a 4-D additive mask array (or None).

    The fused kernel when it can (``weights`` is then None), ``composed_attention`` when the
    weights are wanted or dropped out.
    """
    if need_weights or dropout_p > 0:
        return composed_attention(q, k, v, mask, is_causal, scale, dropout_p)
    return ScaledDotProductAttention.apply(q, k, v, mask=mask, is_causal=is_causal, scale=scale), None


def composed_attention(q, k, v, mask, is_causal, scale, dropout_p=0.0):
    """``(out, weights)``: softmax(q k^T * scale + mask) v from matmul, softmax and dropout.

    Rows with no visible key get finite scores and then zero weights, so neither the forward nor
    the backward ever computes exp(-inf - -inf).
    """
    xp, dtype = q.xp, q.dtype
    queries, keys = q.shape[-2], k.shape[-2]
    bias = xp.zeros((1, 1, queries, keys), dtype=dtype) if mask is None else mask.astype(dtype)
    if is_causal:
        bias = bias + xp.where(xp.tril(xp.ones((queries, keys), dtype=bool)), 0, -xp.inf).astype(dtype)
    has_key = (bias > -xp.inf).any(axis=-1, keepdims=True)
    scores = matmul(q, k.mT) * scale + Tensor(xp.where(has_key, bias, 0).astype(dtype))
    weights = softmax(scores, dim=-1) * Tensor(has_key.astype(dtype))
    if dropout_p > 0:
        weights = dropout(weights, dropout_p)
    return matmul(weights, v), weights


# ---- shapes and masks ---------------------------------------------------------------------------
def check_attention_shapes(op, query, key, value):
    """The broadcast batch shape of query (..., L, E), key (..., S, E), value (..., S, Ev)."""
    for name, x in (("query", query), ("key", key), ("value", value)):
        if x.ndim < 2:
            raise ValueError(f"{op}: expected {name} of shape (..., length, features), got {tuple(x.shape)}")
    if key.shape[-1] != query.shape[-1] or value.shape[-2] != key.shape[-2]:
        raise ValueError(f"{op}: expected key (..., S, {query.shape[-1]}) and value (..., S, Ev) for query "
                         f"{tuple(query.shape)}, got key {tuple(key.shape)} and value {tuple(value.shape)}")
    if not (query.dtype == key.dtype == value.dtype):
        raise TypeError(f"{op}: expected query, key and value of one dtype, got {query.dtype}, {key.dtype}, "
                        f"{value.dtype}")
    try:
        return tuple(np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2]))
    except ValueError:
        raise ValueError(f"{op}: batch dims of query {tuple(query.shape)}, key {tuple(key.shape)} and "
                         f"value {tuple(value.shape)} do not broadcast") from None


def additive_mask(op, mask, like, scores_shape, true_means_attend):
    """A boolean or float mask (Tensor or array) as an additive float array of ``like``'s dtype.

    ``true_means_attend`` picks the boolean convention: PyTorch's SDPA (True = attend) or its
    ``nn.MultiheadAttention`` (True = masked out).
    """
    if mask is None:
        return None
    if isinstance(mask, Tensor) and mask.requires_grad:
        raise ValueError(f"{op}: gradients with respect to a float mask are not supported (the fused "
                         "kernel treats the mask as a constant); pass mask.detach()")
    array = mask.data if isinstance(mask, Tensor) else like.xp.asarray(mask)
    if not broadcasts_to(array.shape, scores_shape):
        raise ValueError(f"{op}: expected a mask broadcastable to {tuple(scores_shape)}, "
                         f"got {tuple(array.shape)}")
    xp = backend.get_array_module(array)
    if array.dtype == bool:
        return xp.where(array if true_means_attend else ~array, 0, -xp.inf).astype(like.dtype)
    if array.dtype.kind != "f":
        raise TypeError(f"{op}: expected a boolean or float mask, got dtype {array.dtype}")
    return xp.ascontiguousarray(array, dtype=like.dtype)


def broadcasts_to(shape, target):
    try:
        return np.broadcast_shapes(shape, target) == tuple(target)
    except ValueError:
        return False


def as_heads(x, batch_shape):
    """(..., n, d) with batch dims ``batch_shape`` as a 4-D (B, H, n, d) tensor.

    Up to two batch dims stay as they are (1s prepended); more are merged into the first axis.
    """
    x = expand(x, batch_shape + x.shape[-2:])
    return reshape(x, heads_shape(batch_shape) + x.shape[-2:])


def mask_as_heads(mask, batch_shape):
    """The additive mask (..., L or 1, S or 1) laid out like ``as_heads`` does the inputs.

    Its size-1 axes stay size 1 (the kernels broadcast them, nothing is materialised), except
    where more than two batch dims are merged and the mask varies along them.
    """
    if mask is None:
        return None
    mask = mask.reshape((1,) * (len(batch_shape) + 2 - mask.ndim) + mask.shape)
    if len(batch_shape) > 2 and math.prod(mask.shape[:-3]) > 1:
        mask = backend.get_array_module(mask).broadcast_to(mask, batch_shape[:-1] + mask.shape[-3:])
    merged = (math.prod(mask.shape[:-3]),) + mask.shape[-3:] if len(batch_shape) > 2 else mask.shape
    return backend.get_array_module(mask).ascontiguousarray(mask.reshape((1,) * (4 - len(merged)) + merged))


def heads_shape(batch_shape):
    if len(batch_shape) <= 2:
        return (1,) * (2 - len(batch_shape)) + tuple(batch_shape)
    return (math.prod(batch_shape[:-1]), batch_shape[-1])
