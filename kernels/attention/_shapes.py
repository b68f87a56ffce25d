"""Boundary checks shared by every attention implementation (see the package docstring)."""
from .._checks import check_float_arrays, check_ndim


def check_attention_inputs(op, q, k, v, mask):
    """Check dtypes, layouts and shapes of q, k, v and the additive mask.

    Returns ``(B, H, L, S)``, the shape the mask broadcasts to.
    """
    check_float_arrays(op, q=q, k=k, v=v)
    if mask is not None:
        check_float_arrays(op, contiguous=False, q=q, mask=mask)
    check_ndim(op, "q", q, 4, "(B, H, L, D)")
    check_ndim(op, "k", k, 4, "(B, H, S, D)")
    check_ndim(op, "v", v, 4, "(B, H, S, Dv)")
    batch, heads, queries, depth = q.shape
    if k.shape[:2] != (batch, heads) or k.shape[3] != depth:
        raise ValueError(f"{op}: expected k of shape ({batch}, {heads}, S, {depth}) to match q "
                         f"{tuple(q.shape)}, got {tuple(k.shape)}")
    if v.shape[:3] != k.shape[:3]:
        raise ValueError(f"{op}: expected v of shape ({batch}, {heads}, {k.shape[2]}, Dv) to match k "
                         f"{tuple(k.shape)}, got {tuple(v.shape)}")
    scores_shape = (batch, heads, queries, k.shape[2])
    if mask is not None and not _broadcastable(mask.shape, scores_shape):
        raise ValueError(f"{op}: expected mask broadcastable to (B, H, L, S) = {scores_shape}, "
                         f"got {tuple(mask.shape)}")
    return scores_shape


def check_attention_gradient_inputs(op, grad_out, q, k, v, out, logsumexp, mask):
    """Check the backward's arguments: the forward's plus its output, gradient and logsumexp."""
    scores_shape = check_attention_inputs(op, q, k, v, mask)
    check_float_arrays(op, q=q, grad_out=grad_out, out=out, logsumexp=logsumexp)
    out_shape = scores_shape[:3] + (v.shape[3],)
    for name, array, shape in (("grad_out", grad_out, out_shape), ("out", out, out_shape),
                               ("logsumexp", logsumexp, scores_shape[:3])):
        if tuple(array.shape) != shape:
            raise ValueError(f"{op}: expected {name} of shape {shape}, got {tuple(array.shape)}")
    return scores_shape


def _broadcastable(shape, target):
    if len(shape) > len(target):
        return False
    return all(size in (1, goal) for size, goal in zip(shape[::-1], target[::-1]))
