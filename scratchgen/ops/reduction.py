"""Reductions (sum, mean, var, max, logsumexp, ...) and the softmax family.

Only ``Sum``, ``Amax``, ``Normalize`` (the norm layers' fused standardisation, through
``standardize``) and the two softmaxes (``SoftmaxOp``, ``LogSoftmaxOp``) are Functions; ``mean``,
``var``, ``std``, ``logsumexp`` and friends are compositions, so their gradients (of any order)
come for free.
"""
import builtins
import math
from collections import namedtuple

import numpy as np

from .. import backend
from ..autograd import Function, is_grad_enabled
from ..kernels import implementation
from ..tensor import Tensor
from .elementwise import ChannelDot, channel_affine, exp, isfinite, log, sqrt, where
from .shape import broadcast_back, expand, normalize_dim, normalize_dims, reshape, sum_array


def _keepdim_shape(shape, axes):
    return tuple(1 if i in axes else s for i, s in enumerate(shape))


class Sum(Function):
    """y = sum of x over ``axes``;  dx = dy broadcast back over those axes."""

    def forward(self, x, axes, keepdim):
        self.input_shape, self.axes = x.shape, axes
        return sum_array(x, axes, keepdim)

    def backward(self, grad):
        return broadcast_back(grad, _keepdim_shape(self.input_shape, self.axes), self.input_shape)


class Amax(Function):
    """y = max of x over ``axes``;  the gradient goes to the maximal elements, split evenly
    between ties (PyTorch's rule for ``amax``)."""

    def forward(self, x, axes, keepdim):
        self.input_shape, self.axes = x.shape, axes
        peak = x.max(axis=axes, keepdims=True)
        winners = x == peak
        self.share = winners / winners.sum(axis=axes, keepdims=True)
        self.share = self.share.astype(x.dtype, copy=False)
        return peak if keepdim else peak.reshape([s for i, s in enumerate(x.shape) if i not in axes])

    def backward(self, grad):
        grad = reshape(grad, _keepdim_shape(self.input_shape, self.axes))
        return grad * Tensor(self.share)


def sum(x, dim=None, keepdim=False, dtype=None):  # noqa: A001 (PyTorch's name)
    axes = normalize_dims("sum", dim, x.ndim)
    if dtype is not None:
        x = x.to(dtype)
    elif x.dtype.kind in "biu":
        x = x.to(np.int64)
    return Sum.apply(x, axes=axes, keepdim=keepdim)


def _count(x, axes):
    return math.prod([x.shape[a] for a in axes])  # (np.prod of a list costs microseconds)


def mean(x, dim=None, keepdim=False):
    if not backend.is_floating(x.dtype):
        raise TypeError(f"mean: expected a floating-point tensor, got dtype {x.dtype}")
    axes = normalize_dims("mean", dim, x.ndim)
    return sum(x, axes, keepdim) / _count(x, axes)


def var(x, dim=None, unbiased=None, keepdim=False, correction=None):
    """Variance over ``dim`` with Bessel's ``correction`` (default 1; ``unbiased=False`` means 0)."""
    if correction is None:
        correction = 0 if unbiased is False else 1
    axes = normalize_dims("var", dim, x.ndim)
    centred = x - mean(x, axes, keepdim=True)
    return sum(centred * centred, axes, keepdim) / builtins.max(_count(x, axes) - correction, 0)


def std(x, dim=None, unbiased=None, keepdim=False, correction=None):
    return sqrt(var(x, dim, unbiased=unbiased, keepdim=keepdim, correction=correction))


class Normalize(Function):
    """y = (x - mean) * inverse_std over ``axes``, the statistics from ``Moments`` (inverse_std =
    1 / sqrt(var + eps), biased variance): the core of LayerNorm, GroupNorm and BatchNorm as one
    node, where written with ops it took seven (and their backward twenty).

        dx = inverse_std (dy - mean(dy) - y mean(dy y))      (means over ``axes``: NormalizeBackward)

    For a first-order backward inverse_std is a constant array; under ``create_graph=True`` it is
    recomputed from x with ops, so that a second derivative (a gradient penalty through a
    normalised critic) sees how it depends on x — y is the saved output, already attached to the
    graph. Either way the arithmetic is one ``NormalizeBackward`` node (one kernel call).
    """

    def forward(self, x, axes, eps, mean, inverse_std):
        self.axes, self.eps, self.inverse_std = axes, eps, inverse_std
        layout = _Layout(x.shape, axes)
        y = layout.restore(_normalization(x).normalize(layout.arrange(x), layout.flat(mean),
                                                       layout.flat(inverse_std)))
        self.save_for_backward(x, y)
        return y

    def backward(self, grad):
        x, y = self.saved_tensors
        if is_grad_enabled():
            inverse_std = 1 / sqrt(var(x, self.axes, correction=0, keepdim=True) + self.eps)
        else:
            inverse_std = Tensor(self.inverse_std)
        return NormalizeBackward.apply(grad, y, inverse_std, axes=self.axes)


class NormalizeBackward(Function):
    """g_x = r (g - mean(g) - y mean(g y)), means over ``axes``, r = inverse_std (reduced dims
    kept): ``Normalize``'s gradient as one kernel call. Its own derivative, for second order, with
    u the gradient of g_x::

        dg = r (u - mean(u) - y mean(u y))     (the map is self-adjoint in g)
        dy = -r (u mean(g y) + g mean(u y))
        dr = u (g - mean(g) - y mean(g y))     (summed down to r's shape by the engine)
    """

    def forward(self, grad, y, inverse_std, axes):
        self.axes = axes
        layout = _Layout(y.shape, axes)
        flat_inverse_std = layout.flat(inverse_std.astype(np.float64, copy=False))
        grad_x = _normalization(y).normalize_backward(layout.arrange(grad.astype(y.dtype, copy=False)),
                                                      layout.arrange(y), flat_inverse_std)
        self.save_for_backward(grad, y, inverse_std)
        return layout.restore(grad_x)

    def backward(self, upstream):
        grad, y, inverse_std = self.saved_tensors
        axes = self.axes
        average_grad_y = mean(grad * y, axes, keepdim=True)
        average_upstream_y = mean(upstream * y, axes, keepdim=True)
        d_grad = NormalizeBackward.apply(upstream, y, inverse_std, axes=axes)
        d_y = -inverse_std * (upstream * average_grad_y + grad * average_upstream_y)
        d_inverse_std = upstream * (grad - mean(grad, axes, keepdim=True) - y * average_grad_y)
        return d_grad, d_y, d_inverse_std


def standardize(x, dim, eps=1e-5):
    """``(y, mean, variance)``: x normalised over ``dim`` (see ``Normalize``), and the batch's
    mean and biased variance as float64 arrays with the reduced dims kept."""
    if not backend.is_floating(x.dtype):
        raise TypeError(f"standardize: expected a floating-point tensor, got dtype {x.dtype}")
    axes = normalize_dims("standardize", dim, x.ndim)
    average, variance, inverse_std = (t.data for t in Moments.apply(x.data, axes=axes, eps=eps))
    y = Normalize.apply(x, axes=axes, eps=eps, mean=average, inverse_std=inverse_std)
    return y, average, variance


def group_norm_affine(x, groups, weight, bias, eps):
    """GroupNorm of x (N, C, ...) with its per-channel weight and bias (C,) as one ``GroupNormAffine``
    node: y = (x - mean[n, g]) * inverse_std[n, g] * weight[c] + bias[c]."""
    return GroupNormAffine.apply(x, weight, bias, groups=groups, eps=eps)


def _grouped(array, groups):
    """x (N, C, ...) as the kernels' contiguous (N, G, C / G, positions): a view of a contiguous x."""
    xp = backend.get_array_module(array)
    return xp.ascontiguousarray(array).reshape(array.shape[0], groups, array.shape[1] // groups, -1)


class GroupNormAffine(Function):
    """y = xhat * w[c] + b[c], xhat = (x - mean[n, g]) * inverse_std[n, g] (statistics over the group's
    channels and positions, the kernels' ``moments``): GroupNorm and its affine map as one node where
    the composition (Moments, Normalize, ChannelAffine, two Reshapes) made five; with u = dy w[c]

        dx = inverse_std (u - mean(u) - xhat mean(u xhat))    dw[c] = sum dy xhat    db[c] = sum dy

    one ``GroupNormAffineBackward`` node (two passes over (dy, x)). Under ``create_graph=True`` (a
    gradient penalty through a GroupNorm critic) the gradient is written with differentiable ops
    instead (``_group_norm_gradient_graph``), so that it can be differentiated again.
    """

    def forward(self, x, weight, bias, groups, eps):
        grouped, kernels, xp = _grouped(x, groups), _normalization(x), backend.get_array_module(x)
        self.mean, _, self.inverse_std = kernels.moments(grouped.reshape(1, -1, grouped[0, 0].size), eps)
        self.groups, self.eps = groups, eps
        self.save_for_backward(x, weight)
        weight, bias = xp.ascontiguousarray(weight), xp.ascontiguousarray(bias)
        return kernels.affine_normalize(grouped, self.mean, self.inverse_std, weight, bias).reshape(x.shape)

    def backward(self, grad):
        x, weight = self.saved_tensors
        if is_grad_enabled():
            return _group_norm_gradient_graph(grad, x, weight, self.groups, self.eps)
        return GroupNormAffineBackward.apply(grad, x, weight, groups=self.groups, mean=self.mean,
                                             inverse_std=self.inverse_std)


class GroupNormAffineBackward(Function):
    """``GroupNormAffine``'s (dx, dw, db) as one kernel call; built only under ``no_grad`` (a first-order
    backward), so it needs no derivative of its own."""

    def forward(self, grad, x, weight, groups, mean, inverse_std):
        weight, grad = backend.get_array_module(x).ascontiguousarray(weight), grad.astype(x.dtype, copy=False)
        grads = _normalization(x).affine_normalize_backward(_grouped(grad, groups), _grouped(x, groups), mean,
                                                            inverse_std, weight)
        return grads[0].reshape(x.shape), grads[1], grads[2]

    def backward(self, *grads):
        raise RuntimeError("GroupNormAffineBackward has no derivative of its own: differentiate "
                           "GroupNormAffine with create_graph=True, whose gradient is then written with ops")


def _group_norm_gradient_graph(grad, x, weight, groups, eps):
    """GroupNormAffine's (dx, dw, db) with differentiable ops: the composed GroupNorm's gradient."""
    grouped = reshape(x, (x.shape[0], groups, -1))
    normalized = standardize(grouped, (2,), eps)[0]
    inverse_std = 1 / sqrt(var(grouped, (2,), correction=0, keepdim=True) + eps)
    grad_normalized = reshape(channel_affine(grad, weight), grouped.shape)
    grad_x = NormalizeBackward.apply(grad_normalized, normalized, inverse_std, axes=(2,))
    channel_axes = (0,) + tuple(range(2, x.ndim))
    return (reshape(grad_x, x.shape), ChannelDot.apply(grad, reshape(normalized, x.shape)),
            grad.sum(dim=channel_axes))


class Moments(Function):
    """(mean, biased variance, 1 / sqrt(variance + eps)) over ``axes``, float64 arrays with the
    reduced dims kept: what ``Normalize`` and BatchNorm's running averages need (the numerics,
    float64 sums and the corrected two-pass variance: ``scratchgen.kernels.normalization``).
    Arrays only, no gradient (``Normalize``'s backward carries it); an op so that observers (the
    compiler) see the arithmetic."""

    def forward(self, x, *, axes, eps):
        layout = _Layout(x.shape, axes)
        statistics = _normalization(x).moments(layout.arrange(x), eps)
        return tuple(statistic.reshape(_keepdim_shape(x.shape, axes)) for statistic in statistics)

    def backward(self, *grads):
        return (None,)


def _normalization(array):
    return implementation("normalization", array)


class _Layout:
    """How an array reduced over ``axes`` maps onto the kernels' (A, C, B) layout, and back.

    When the kept axes are consecutive (every norm: LayerNorm's and GroupNorm's trailing axes,
    BatchNorm's all-but-dim-1) A and B are the reduced axes before and after them: a reshape.
    Otherwise the reduced axes are moved to the front first, (R, C, 1), a copy."""

    def __init__(self, shape, axes):
        self.shape = shape
        kept = [i for i in range(len(shape)) if i not in axes]
        if kept and kept != list(range(kept[0], kept[-1] + 1)):
            self.order = tuple(sorted(axes)) + tuple(kept)
            self.arranged_shape = (_product(shape[i] for i in axes), _product(shape[i] for i in kept), 1)
        else:
            self.order = None
            first, last = (kept[0], kept[-1] + 1) if kept else (0, 0)
            self.arranged_shape = tuple(_product(sizes) for sizes in (shape[:first], shape[first:last],
                                                                      shape[last:]))

    def arrange(self, array):
        """``array`` as a C-contiguous (A, C, B) array (a view when it already was contiguous)."""
        xp = backend.get_array_module(array)
        if self.order is not None:
            array = array.transpose(self.order)
        return xp.ascontiguousarray(array).reshape(self.arranged_shape)

    def flat(self, statistic):
        """A keepdim-shaped statistic as the kernels' contiguous (C,) array."""
        return backend.get_array_module(statistic).ascontiguousarray(statistic).reshape(-1)

    def restore(self, arranged):
        """The inverse of ``arrange``, for an output of the kernels."""
        if self.order is None:
            return arranged.reshape(self.shape)
        moved = arranged.reshape(tuple(self.shape[i] for i in self.order))
        return moved.transpose(np.argsort(self.order))


def _product(sizes):
    return int(np.prod(list(sizes), dtype=np.int64))


def amax(x, dim=None, keepdim=False):
    axes = normalize_dims("amax", dim, x.ndim)
    if x.numel() == 0:
        raise RuntimeError(f"amax: cannot reduce an empty tensor of shape {x.shape}")
    return Amax.apply(x, axes=axes, keepdim=keepdim)


def amin(x, dim=None, keepdim=False):
    return -amax(-x, dim, keepdim)


MaxResult = namedtuple("MaxResult", ["values", "indices"])


def max(x, dim=None, keepdim=False):  # noqa: A001
    """The largest element, or with ``dim`` a (values, indices) pair, as ``torch.max``."""
    if dim is None:
        return amax(x)
    return MaxResult(amax(x, dim, keepdim), argmax(x, dim, keepdim))


def min(x, dim=None, keepdim=False):  # noqa: A001
    if dim is None:
        return amin(x)
    return MaxResult(amin(x, dim, keepdim), argmin(x, dim, keepdim))


class ArgExtreme(Function):
    """y = the int64 index of the largest (``name="argmax"``) or smallest (``"argmin"``) element
    along ``axis`` (of the flattened array when None). No gradient; an op (on the raw array) so that
    observers see it: a compiled step that feeds its greedy choice back in (seq2seq) replays it."""

    def forward(self, x, *, name, axis, keepdim):
        xp = backend.get_array_module(x)
        if axis is None:
            return xp.asarray(getattr(x, name)()).astype(np.int64)
        return getattr(xp, name)(x, axis=axis, keepdims=keepdim).astype(np.int64)

    def backward(self, grad):
        return None


def argmax(x, dim=None, keepdim=False):
    return _arg_extreme("argmax", x, dim, keepdim)


def argmin(x, dim=None, keepdim=False):
    return _arg_extreme("argmin", x, dim, keepdim)


def _arg_extreme(name, x, dim, keepdim):
    axis = None if dim is None else normalize_dim(name, dim, x.ndim)
    return ArgExtreme.apply(x.data, name=name, axis=axis, keepdim=keepdim)


def logsumexp(x, dim, keepdim=False):
    """log(sum(exp(x))) computed as m + log(sum(exp(x - m))) with m = max(x), a constant shift
    (so nothing overflows and the gradient is the softmax)."""
    axes = normalize_dims("logsumexp", dim, x.ndim)
    shift = amax(x, axes, keepdim=True).detach()
    shift = where(isfinite(shift), shift, 0.0)
    out = log(sum(exp(x - shift), axes, keepdim=True)) + shift
    return out if keepdim else reshape(out, [s for i, s in enumerate(x.shape) if i not in axes])


# ---- softmax ------------------------------------------------------------------------------------
def _log_softmax_array(x, dim):
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=dim, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))


class LogSoftmaxOp(Function):
    """y = x - logsumexp(x);  dx = dy - softmax(x) * sum(dy)."""

    def forward(self, x, dim):
        self.dim = dim
        y = _log_softmax_array(x, dim)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad - exp(y) * sum(grad, self.dim, keepdim=True)


class SoftmaxOp(Function):
    """y = exp(x) / sum(exp(x));  dx = y * (dy - sum(dy * y))."""

    def forward(self, x, dim):
        self.dim = dim
        y = backend.get_array_module(x).exp(_log_softmax_array(x, dim))
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return y * (grad - sum(grad * y, self.dim, keepdim=True))


def softmax(x, dim=-1):
    return SoftmaxOp.apply(x, dim=normalize_dim("softmax", dim, x.ndim))


def log_softmax(x, dim=-1):
    return LogSoftmaxOp.apply(x, dim=normalize_dim("log_softmax", dim, x.ndim))
