"""Scaled dot-product attention: softmax(Q K^T * scale + mask) V, forward and backward.

Three modules implement one contract:

    reference   plain array code that materialises the (L, S) score matrix: the definition and
                the test oracle; runs on NumPy and CuPy arrays
    cpu         Numba flash attention: tiles of queries and keys, an online softmax, extra
                memory linear in the sequence length
    gpu         the same tiled plan as ``numba.cuda`` kernels on CuPy arrays

Contract (the same names and argument order in every implementation)::

    attention_forward(q, k, v, mask, is_causal, scale) -> (out, logsumexp)
    attention_backward(grad_out, q, k, v, out, logsumexp, mask, is_causal, scale)
        -> (grad_q, grad_k, grad_v)

Shapes and layouts (all C-contiguous, one float dtype, float32 or float64)::

    q          (B, H, L, D)     queries
    k          (B, H, S, D)     keys
    v          (B, H, S, Dv)    values
    out        (B, H, L, Dv)    attention output
    logsumexp  (B, H, L)        log sum_j exp(score[i, j]) per query row, -inf for a row whose
                                keys are all masked
    grad_out   (B, H, L, Dv)    gradient of the loss with respect to ``out``

``mask`` is None or an *additive* float array (same dtype as q) broadcastable to (B, H, L, S),
e.g. 0 where a key takes part and -inf where it does not; any strides are accepted, so a
read-only broadcast view (zero strides) is passed without materialising it. Boolean masks are
turned into 0/-inf masks by the caller (``scratchgen.ops.attention``). The mask gets no gradient.

``is_causal`` keeps key j for query i only when j <= i (top-left aligned when L != S, as in
PyTorch); it combines with ``mask``. ``scale`` is the factor on the scores (1/sqrt(D) by
PyTorch's default, chosen by the caller).

A row whose keys are all masked is defined, not NaN: its output is zero, its logsumexp -inf, and
it passes no gradient to q, k or v.
"""
