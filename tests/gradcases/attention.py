"""Property-test cases for attention: ``ScaledDotProductAttention`` through
``F.scaled_dot_product_attention`` (broadcast batch dims, boolean and float masks that broadcast,
causal with L != S, a custom scale) and the composed path it shares with ``nn.MultiheadAttention``.

The masks are constants (parameters, not inputs): the op gives them no gradient. Sizes stay tiny,
since every finite-difference coordinate is two forward passes. No ``second_order``: the fused op
is differentiable once by design (the composed path is, by construction, made of checked ops).
"""
import numpy as np
from hypothesis import strategies as st

import scratchgen.functional as F
from scratchgen.ops.attention import composed_attention
from scratchgen.testing.strategies import GradCase, arrays, broadcastable_shapes


@st.composite
def attention_inputs(draw):
    """q (..., L, E), k (..., S, E), v (..., S, Ev) with broadcasting batch dims, and a mask."""
    batch_q, batch_k, batch_v = draw(broadcastable_shapes(3, max_dims=2, max_side=2))
    batch = np.broadcast_shapes(batch_q, batch_k, batch_v)
    batch_mask = tuple(size if draw(st.booleans()) else 1 for size in batch)
    batch_mask = batch_mask[draw(st.integers(0, len(batch))):]  # leading dims may be missing
    queries, keys, depth, value_depth = (draw(st.integers(1, 3)) for _ in range(4))  # every coordinate costs 2 calls
    q = draw(arrays(batch_q + (queries, depth)))
    k = draw(arrays(batch_k + (keys, depth)))
    v = draw(arrays(batch_v + (keys, value_depth)))
    mask_kind = draw(st.sampled_from(["none", "causal", "boolean", "float"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    mask_shape = batch_mask + tuple(size if draw(st.booleans()) else 1 for size in (queries, keys))
    masks = {"none": None, "causal": None, "boolean": rng.random(mask_shape) < 0.7,
             "float": np.where(rng.random(mask_shape) < 0.2, -np.inf, rng.uniform(-2, 2, mask_shape))}
    mask = masks[mask_kind]
    scale = draw(st.sampled_from([None, 0.5]))
    return (q, k, v), {"attn_mask": mask, "is_causal": mask_kind == "causal", "scale": scale}


def sdpa(q, k, v, attn_mask, is_causal, scale):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal, scale=scale)


def torch_sdpa(q, k, v, attn_mask, is_causal, scale):
    """PyTorch's SDPA after expanding q, k, v to their common batch shape (PyTorch's kernels do
    not all broadcast batch dims between q, k and v; the expansion is what that would mean)."""
    import torch
    batch = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    q, k, v = (x.expand(batch + x.shape[-2:]) for x in (q, k, v))
    if attn_mask is not None:
        dtype = q.detach().numpy().dtype
        attn_mask = torch.from_numpy(attn_mask if attn_mask.dtype == bool else attn_mask.astype(dtype))
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal,
                                                            scale=scale)


@st.composite
def head_inputs(draw):
    """4-D q, k, v and an additive 4-D mask, as ``nn.MultiheadAttention`` hands them over."""
    batch, heads, depth = (draw(st.integers(1, 2)) for _ in range(3))
    queries, keys = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    q, k, v = (draw(arrays((batch, heads, n, depth))) for n in (queries, keys, keys))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    mask = np.where(rng.random((batch, 1, 1, keys)) < 0.3, -np.inf, 0.0)
    return (q, k, v), {"mask": mask, "is_causal": draw(st.booleans())}


def composed(q, k, v, mask, is_causal):
    return composed_attention(q, k, v, mask.astype(q.dtype), is_causal, 0.7)[0]


def torch_composed(q, k, v, mask, is_causal):
    import torch
    if is_causal:
        mask = mask + np.where(np.tril(np.ones((q.shape[-2], k.shape[-2]), bool)), 0, -np.inf)
    mask = torch.from_numpy(mask.astype(q.detach().numpy().dtype))
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, mask, scale=0.7)


CASES = [
    GradCase("scaled_dot_product_attention", sdpa, attention_inputs(), torch_sdpa),
    GradCase("composed_attention", composed, head_inputs(), torch_composed, second_order=True),
]
