"""Scaled dot-product attention, the definition: the whole score matrix at once, readable, the oracle.

Forward, per batch element and head (``mask`` additive, ``causal`` keeps j <= i)::

    scores[i, j] = scale * q[i] . k[j] + mask[i, j]        (-inf where causal hides j > i)
    logsumexp[i] = log sum_j exp(scores[i, j])
    probs[i, j]  = exp(scores[i, j] - logsumexp[i])         (softmax over keys)
    out[i]       = sum_j probs[i, j] v[j]

Backward (with dO = grad_out; ``delta`` is the softmax's Jacobian collapsed to one number a row)::

    grad_v      = probs^T dO
    grad_probs  = dO v^T
    delta[i]    = sum_j probs[i, j] grad_probs[i, j] = dO[i] . out[i]
    grad_scores = probs * (grad_probs - delta[:, None])
    grad_q      = scale * grad_scores k
    grad_k      = scale * grad_scores^T q

A row whose scores are all -inf gets probs 0 (out 0, logsumexp -inf, no gradient) instead of the
NaN that exp(-inf - -inf) would give. Memory: one (B, H, L, S) array per intermediate — the cost
the ``cpu`` implementation avoids. Written against ``xp = array_module(q)`` so it runs on CuPy too.
"""
from .._checks import array_module
from ._shapes import check_attention_gradient_inputs, check_attention_inputs


def attention_forward(q, k, v, mask, is_causal, scale):
    """``(out, logsumexp)`` of softmax(q k^T * scale + mask) v; see the module docstring."""
    check_attention_inputs("attention_forward", q, k, v, mask)
    xp = array_module(q)
    scores = masked_scores(q, k, mask, is_causal, scale)
    row_max = scores.max(axis=-1, keepdims=True)
    weights = xp.exp(scores - finite_or_zero(row_max))
    row_sum = weights.sum(axis=-1, keepdims=True)
    kept = row_sum > 0
    probs = weights / xp.where(kept, row_sum, 1)
    logsumexp = xp.where(kept, row_max + xp.log(xp.where(kept, row_sum, 1)), -xp.inf)
    return xp.matmul(probs, v), logsumexp[..., 0]


def attention_backward(grad_out, q, k, v, out, logsumexp, mask, is_causal, scale):
    """``(grad_q, grad_k, grad_v)``, recomputing the probabilities from ``logsumexp``."""
    check_attention_gradient_inputs("attention_backward", grad_out, q, k, v, out, logsumexp, mask)
    xp = array_module(q)
    scores = masked_scores(q, k, mask, is_causal, scale)
    probs = xp.exp(scores - finite_or_zero(logsumexp)[..., None])
    grad_v = xp.matmul(xp.swapaxes(probs, -1, -2), grad_out)
    grad_probs = xp.matmul(grad_out, xp.swapaxes(v, -1, -2))
    delta = (grad_out * out).sum(axis=-1, keepdims=True)
    grad_scores = probs * (grad_probs - delta)
    grad_q = xp.matmul(grad_scores, k) * scale
    grad_k = xp.matmul(xp.swapaxes(grad_scores, -1, -2), q) * scale
    return grad_q, grad_k, grad_v


def masked_scores(q, k, mask, is_causal, scale):
    """``scale * q k^T + mask``, with -inf above the diagonal when ``is_causal``: (B, H, L, S)."""
    xp = array_module(q)
    scores = xp.matmul(q, xp.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    if mask is not None:
        scores = scores + mask
    if is_causal:
        queries, keys = scores.shape[-2:]
        visible = xp.tril(xp.ones((queries, keys), dtype=bool))  # key j <= query i, top-left aligned
        scores = xp.where(visible, scores, -xp.inf)
    return scores


def finite_or_zero(values):
    """``values`` with -inf replaced by 0: the shift used for rows that have no visible key."""
    xp = array_module(values)
    return xp.where(xp.isneginf(values), 0, values)
