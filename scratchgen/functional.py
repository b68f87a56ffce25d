"""``scratchgen.functional`` (import as ``F``): ``torch.nn.functional``'s names and signatures.

Activations and losses here are compositions of the ops in ``scratchgen.ops``; each one's
gradient follows from theirs. Everything else (dropout, convolution, attention, LSTM, and SiLU and
GELU, each one fused op) is the op itself, re-exported: ``ops`` never imports this module, so the
layers only point down.
"""

import numpy as np

from . import backend
from .autograd import Function, host_operation
from .ops.attention import scaled_dot_product_attention  # noqa: F401
from .ops.conv import avg_pool2d, conv2d, conv_transpose2d, interpolate, max_pool2d  # noqa: F401
from .ops.elementwise import (abs, clamp, dropout, erf, exp, gelu, log, maximum, minimum, relu,  # noqa: F401
                              sigmoid, silu, softplus, sqrt, tanh, where)
from .ops.elementwise import channel_affine
from .ops.linalg import matmul
from .ops.reduction import group_norm_affine
from .ops.reduction import log_softmax, logsumexp, mean, softmax, standardize, sum  # noqa: F401
from .ops.recurrence import lstm, lstm_cell  # noqa: F401
from .ops.shape import getitem, pad, reshape  # noqa: F401
from .tensor import Tensor


# ---- activations --------------------------------------------------------------------------------
def leaky_relu(x, negative_slope=0.01):
    return where(x > 0, x, x * negative_slope)


def elu(x, alpha=1.0):
    # exp only of the non-positive part: exp(x) of a large x would overflow inside the unused branch.
    # where, not minimum(x, 0): at x = 0 the whole gradient goes to the exp branch, so elu'(0) =
    # alpha as in PyTorch (minimum would split the tie and give alpha / 2).
    return where(x > 0, x, (exp(where(x > 0, 0.0, x)) - 1) * alpha)


def hardtanh(x, min_val=-1.0, max_val=1.0):
    """clamp(x, min_val, max_val), but with PyTorch's derivative: 0 at the bounds themselves
    (clamp's is 1 there, as PyTorch's clamp's is)."""
    outside = (x <= min_val) | (x >= max_val)
    return where(outside, clamp(x.detach(), min_val, max_val), x)


# ---- layers as functions ------------------------------------------------------------------------
def linear(x, weight, bias=None):
    """y = x W^T + b, with W of shape (out_features, in_features) as in PyTorch."""
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(f"linear: input has {x.shape[-1]} features (shape {x.shape}) but the weight "
                         f"expects {weight.shape[-1]} (weight shape {weight.shape})")
    out = matmul(x, weight.mT)
    return out if bias is None else out + bias


def embedding(indices, weight, padding_idx=None):
    """Rows of ``weight`` picked by integer ``indices`` (its gradient scatter-adds into them).
    ``padding_idx``'s row gets no gradient, as in PyTorch."""
    index = indices.data if isinstance(indices, Tensor) else np.asarray(indices)
    if index.dtype.kind not in "iu":
        raise TypeError(f"embedding: expected integer indices, got dtype {index.dtype}")
    if index.size and (int(index.min()) < 0 or int(index.max()) >= weight.shape[0]):
        raise IndexError(f"embedding: indices must lie in [0, {weight.shape[0]}), got values in "
                         f"[{int(index.min())}, {int(index.max())}]")
    if padding_idx is not None:
        keep = backend.get_array_module(index).arange(weight.shape[0]) != padding_idx
        weight = where(Tensor(keep[:, None]), weight, weight.detach())
    return getitem(weight, index)


# ---- normalisation ------------------------------------------------------------------------------
# y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance; the three norms differ
# only in the axes the statistics run over. ``standardize`` (ops/reduction.py) is one fused node.

def _channel_shape(ndim):
    """Shape that broadcasts a per-channel (dim 1) vector of length C over (N, C, ...)."""
    return (1, -1) + (1,) * (ndim - 2)


def _affine_fuses(out, weight, bias):
    """Whether a per-channel weight and bias (C,) share out's float dtype: one fused op can take them."""
    return (backend.is_floating(out.dtype) and weight.dtype == out.dtype
            and (bias is None or bias.dtype == out.dtype))


def _channel_affine(out, weight, bias):
    """out * weight + bias with per-channel weight and bias of shape (C,): one ``ChannelAffine`` op
    when there is a weight of out's dtype (the norm layers' case)."""
    if weight is not None and _affine_fuses(out, weight, bias):
        return channel_affine(out, weight, bias)
    if weight is not None:
        out = out * reshape(weight, _channel_shape(out.ndim))
    return out if bias is None else out + reshape(bias, _channel_shape(out.ndim))


def normalize(input, p=2.0, dim=1, eps=1e-12):
    """PyTorch's L_p normalisation: input / max(||input||_p, eps), the norm taken over ``dim``.
    (The mean/variance standardisation of the norm layers is ``ops.reduction.standardize``.)"""
    norm = sum(abs(input) ** p, dim, keepdim=True) ** (1.0 / p)
    return input / clamp(norm, min=eps)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing ``normalized_shape`` dims of each sample (Ba et al. 2016)."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    count = len(normalized_shape)
    if count == 0 or input.shape[input.ndim - count:] != normalized_shape:
        raise ValueError(f"layer_norm: expected input with trailing shape {normalized_shape}, "
                         f"got {input.shape}")
    out = standardize(input, tuple(range(input.ndim - count, input.ndim)), eps)[0]
    if weight is not None:
        out = out * weight
    return out if bias is None else out + bias


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise each sample over groups of C / num_groups channels and all positions (Wu & He 2018)."""
    if input.ndim < 2 or input.shape[1] % num_groups:
        raise ValueError(f"group_norm: expected input (N, C, ...) with C divisible by "
                         f"num_groups={num_groups}, got shape {input.shape}")
    if weight is not None and bias is not None and _affine_fuses(input, weight, bias):
        return group_norm_affine(input, num_groups, weight, bias, eps)
    grouped = reshape(input, (input.shape[0], num_groups, -1))  # (N, G, C/G * positions)
    out = reshape(standardize(grouped, (2,), eps)[0], input.shape)
    return _channel_affine(out, weight, bias)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """Normalise each channel (dim 1) over the batch and all positions (Ioffe & Szegedy 2015).

    Training uses the batch's statistics and, where running statistics are given, updates them
    in place: running = (1 - momentum) running + momentum batch, with the *unbiased* batch variance
    for ``running_var`` (as PyTorch). Evaluation uses the running statistics as constants.
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected input (N, C, ...), got shape {input.shape}")
    shape = _channel_shape(input.ndim)
    if not training:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: evaluation (training=False) needs running_mean and running_var")
        inverse_std = (running_var.data + eps) ** -0.5
        out = (input - Tensor(running_mean.data.reshape(shape))) * Tensor(inverse_std.reshape(shape))
        return _channel_affine(out, weight, bias)
    count = input.numel() // input.shape[1]
    if count < 2:
        raise ValueError(f"batch_norm: expected more than 1 value per channel when training, got input "
                         f"shape {input.shape}")
    out, average, variance = standardize(input, (0,) + tuple(range(2, input.ndim)), eps)
    for running, batch, factor in ((running_mean, average, 1), (running_var, variance, count / (count - 1))):
        if running is not None:
            _update_running(running, batch, momentum, factor)
    return _channel_affine(out, weight, bias)


@host_operation  # a write outside the graph: the compiler replays the call (autograd.host_operation)
def _update_running(running, batch, momentum, factor):
    """running = (1 - momentum) running + momentum factor batch, in place (``batch`` an array; the
    factor count / (count - 1) makes the variance unbiased)."""
    if factor != 1:
        batch = batch * factor
    running.data *= 1 - momentum
    running.data += momentum * batch.reshape(-1).astype(running.dtype, copy=False)


# ---- losses -------------------------------------------------------------------------------------
def _reduce(loss, reduction, op):
    if reduction == "mean":
        return mean(loss)
    if reduction == "sum":
        return sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{op}: expected reduction 'mean', 'sum' or 'none', got {reduction!r}")


def _check_same_shape(op, input, target):
    if input.shape != target.shape:
        raise ValueError(f"{op}: expected target of the input's shape {input.shape}, got {target.shape}")


def mse_loss(input, target, reduction="mean"):
    _check_same_shape("mse_loss", input, target)
    diff = input - target
    return _reduce(diff * diff, reduction, "mse_loss")


def l1_loss(input, target, reduction="mean"):
    _check_same_shape("l1_loss", input, target)
    return _reduce(abs(input - target), reduction, "l1_loss")


def binary_cross_entropy_with_logits(input, target, reduction="mean", pos_weight=None):
    """-[y log sigmoid(x) + (1-y) log(1 - sigmoid(x))] = softplus(x) - y x, written so it never
    takes the log of a rounded-to-zero probability."""
    _check_same_shape("binary_cross_entropy_with_logits", input, target)
    if pos_weight is None:
        loss = softplus(input) - target * input
    else:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * softplus(-input)
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def _class_targets(op, input, target):
    """Check (N, C, ...) logits against (N, ...) integer targets; move classes to the last axis."""
    index = target.data if isinstance(target, Tensor) else np.asarray(target)
    if index.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected integer class indices as target, got dtype {index.dtype}")
    if input.ndim < 1 or index.shape != (input.shape[:1] + input.shape[2:] if input.ndim > 1 else ()):
        raise ValueError(f"{op}: expected target of shape {input.shape[:1] + input.shape[2:]} for input "
                         f"{input.shape}, got {tuple(index.shape)}")
    if input.ndim > 2:
        input = input.permute(0, *range(2, input.ndim), 1)
    return input.reshape(-1, input.shape[-1]), index.reshape(-1)


class TargetWeights(Function):
    """(safe, weights) of class targets: ``weights`` 1 (or ``weight[target]``) where the target is not
    ``ignore_index`` and 0 where it is; ``safe`` the targets with ignored ones read as class 0. No
    gradient; an op so that a compiled step computes them again from every batch's targets."""

    def forward(self, index, *, ignore_index, dtype, weight):
        valid = index != ignore_index
        safe = index * valid  # ignored positions read class 0 and are then weighted by 0
        weights = valid.astype(dtype) if weight is None else weight[safe] * valid
        return safe, weights

    def backward(self, *grads):
        return (None,)


def nll_loss(input, target, ignore_index=-100, reduction="mean", weight=None):
    """-input[n, target[n]] averaged over the targets that are not ``ignore_index``."""
    log_probs, index = _class_targets("nll_loss", input, target)
    classes = log_probs.shape[-1]
    valid = index != ignore_index
    if ((index[valid] < 0) | (index[valid] >= classes)).any():
        raise IndexError(f"nll_loss: target values must lie in [0, {classes}) (or be ignore_index), "
                         f"got {index[valid].min()}..{index[valid].max()}")
    safe, weights = TargetWeights.apply(index, ignore_index=ignore_index, dtype=log_probs.dtype,
                                        weight=None if weight is None else weight.data)
    picked = getitem(log_probs, (log_probs.xp.arange(index.shape[0]), safe.data))
    loss = -picked * weights
    if reduction == "mean":
        return sum(loss) / sum(weights)
    return _reduce(loss.reshape(target.shape) if reduction == "none" else loss, reduction, "nll_loss")


def cross_entropy(input, target, ignore_index=-100, reduction="mean", label_smoothing=0.0, weight=None):
    """Cross-entropy of logits (N, C, ...) against class indices (N, ...); with ``label_smoothing``
    the target is (1 - s) one-hot + s / C uniform, as in PyTorch."""
    log_probs = log_softmax(input, dim=1 if input.ndim > 1 else 0)
    loss = nll_loss(log_probs, target, ignore_index=ignore_index, reduction=reduction, weight=weight)
    if label_smoothing == 0.0:
        return loss
    if weight is not None:
        raise NotImplementedError("cross_entropy: label_smoothing together with weight is not supported")
    flat, index = _class_targets("cross_entropy", log_probs, target)
    valid = Tensor((index != ignore_index).astype(log_probs.dtype))
    smooth = -mean(flat, dim=-1) * valid
    if reduction == "mean":
        smooth = sum(smooth) / float(valid.data.sum())
    else:
        smooth = _reduce(smooth.reshape(target.shape) if reduction == "none" else smooth, reduction,
                         "cross_entropy")
    return loss * (1 - label_smoothing) + smooth * label_smoothing
