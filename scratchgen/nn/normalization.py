"""Normalisation layers: ``LayerNorm``, ``GroupNorm``, ``BatchNorm1d``, ``BatchNorm2d``.

All compute (x - mean) / sqrt(var + eps) * weight + bias (``scratchgen.functional``); they differ
in the axes the statistics run over. BatchNorm alone keeps state between calls: running averages
of the batch statistics, registered as buffers (so they are saved, moved and loaded with the
parameters under PyTorch's names ``running_mean``, ``running_var``, ``num_batches_tracked``).
"""
import numbers

import numpy as np

from .. import backend
from .. import functional as F
from .. import init
from ..autograd import host_operation
from ..tensor import Tensor
from .module import Module, new_parameter


def _affine_parameters(module, shape, enabled, device, dtype, bias=True):
    """Register ``weight`` (ones) and ``bias`` (zeros) of ``shape``, or None for both."""
    def make():
        return new_parameter(*shape, device=device, dtype=dtype)

    module.register_parameter("weight", make() if enabled else None)
    module.register_parameter("bias", make() if enabled and bias else None)
    if module.weight is not None:
        init.ones_(module.weight)


class LayerNorm(Module):
    """Normalises each sample over its trailing ``normalized_shape`` dims."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True, device=None,
                 dtype=None):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (normalized_shape,)
        self.normalized_shape, self.eps = tuple(int(s) for s in normalized_shape), eps
        self.elementwise_affine = elementwise_affine
        _affine_parameters(self, self.normalized_shape, elementwise_affine, device, dtype, bias)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"


class GroupNorm(Module):
    """Normalises each sample over groups of channels (and all positions): batch-independent."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None, dtype=None):
        super().__init__()
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: expected num_channels divisible by num_groups, got "
                             f"{num_channels} channels in {num_groups} groups")
        self.num_groups, self.num_channels, self.eps, self.affine = num_groups, num_channels, eps, affine
        _affine_parameters(self, (num_channels,), affine, device, dtype)

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: expected input (N, {self.num_channels}, ...), got shape {x.shape}")
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class _BatchNorm(Module):
    """Shared by BatchNorm1d/2d, which only check the input's rank.

    ``momentum=None`` makes the running statistics a cumulative average: the update weight of the
    k-th batch is 1/k (``num_batches_tracked`` counts them).
    """

    input_ranks = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True,
                 device=None, dtype=None):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        _affine_parameters(self, (num_features,), affine, device, dtype)
        if track_running_stats:
            dtype = np.dtype(dtype or backend.DEFAULT_DTYPE)
            self.register_buffer("running_mean", _buffer(np.zeros(num_features, dtype), device))
            self.register_buffer("running_var", _buffer(np.ones(num_features, dtype), device))
            self.register_buffer("num_batches_tracked", _buffer(np.array(0, dtype=np.int64), device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    @host_operation  # a write outside the graph: the compiler replays the call (autograd.host_operation)
    def _count_batch(self):
        self.num_batches_tracked.data += 1

    def forward(self, x):
        self._check_input(x)
        momentum = self._momentum_of_this_batch()
        # Batch statistics while training, or always when there are no running ones to use; the
        # running ones are handed over to be used (eval) or updated (training and tracking).
        use_batch_stats = self.training or self.running_mean is None
        hand_over = not self.training or self.track_running_stats
        running_mean, running_var = (self.running_mean, self.running_var) if hand_over else (None, None)
        return F.batch_norm(x, running_mean, running_var, self.weight, self.bias, use_batch_stats, momentum,
                            self.eps)

    def _check_input(self, x):
        if x.ndim not in self.input_ranks or x.shape[1] != self.num_features:
            expected = " or ".join(f"{rank}-D" for rank in self.input_ranks)
            raise ValueError(f"{type(self).__name__}: expected {expected} input with {self.num_features} "
                             f"channels in dim 1, got shape {x.shape}")

    def _momentum_of_this_batch(self):
        """The running statistics' update weight for this call (counting the batch when training)."""
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self._count_batch()
            if self.momentum is None:
                momentum = 1.0 / int(self.num_batches_tracked.data)
        return momentum

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


def _buffer(array, device):
    return Tensor(backend.to_device(array, device or "cpu"))


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs, per channel C."""

    input_ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs, per channel C."""

    input_ranks = (4,)
