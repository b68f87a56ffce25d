"""BatchNorm over the whole global batch: ``SyncBatchNorm1d``/``2d`` and the ``all_reduce`` op under them.

Data-parallel training splits a batch of B·N examples into N shards of B. Plain BatchNorm would
normalise each shard by its own statistics — a different model from the one trained on B·N
examples in one process. SyncBatchNorm sums the statistics over the ranks first (two-pass, as
``standardize`` does, so float32 keeps its digits):

    n    = Σ_ranks count                         (examples × positions per channel)
    mean = Σ_ranks Σ x / n
    var  = Σ_ranks Σ (x - mean)² / n             (biased, as BatchNorm normalises with)
    y    = (x - mean) / sqrt(var + eps) · weight + bias

Built from differentiable ops around one new op, ``all_reduce`` (y = Σ_ranks x on every rank), so
the backward pass needs no hand-written formula: the adjoint of "every rank receives the sum of
every rank's x" is "every rank's x receives the sum of every rank's output gradient", i.e.
``all_reduce`` again. With the ranks' losses averaged (the gradient averaging of
``DataParallel``) the gradients are exactly those of one process normalising all B·N examples.

Evaluation uses the running statistics, which every rank updated with the same global values, so
they stay equal on all ranks without further communication. With one rank it is BatchNorm.
"""
import numpy as np

from .. import backend
from ..autograd import Function, host_operation
from ..nn import BatchNorm1d, BatchNorm2d
from ..nn.normalization import _BatchNorm
from .communicator import world


class AllReduceSum(Function):
    """y = Σ_ranks x (the same y on every rank);  dx = Σ_ranks dy."""

    def forward(self, x, comm):
        self.comm = comm
        return comm.allreduce_(x.copy())

    def backward(self, grad):
        return all_reduce(grad, self.comm)


def all_reduce(x, comm=None):
    """The element-wise sum of ``x`` over the ranks of ``comm`` (default: the world), differentiable."""
    return AllReduceSum.apply(x, comm=comm or world())


class _SyncBatchNorm:
    """What SyncBatchNorm1d/2d add to BatchNorm1d/2d: statistics of the global batch when training."""

    comm = None   # None: the world of ``distributed.init``

    def forward(self, x):
        comm = self.comm or world()
        if not self.training or comm.size == 1:
            return super().forward(x)
        self._check_input(x)
        momentum = self._momentum_of_this_batch()
        dims = (0,) + tuple(range(2, x.ndim))
        local_count = x.numel() // x.shape[1]
        xp = backend.get_array_module(x.data)
        count = int(comm.allreduce_(xp.array([local_count], dtype=np.int64))[0])
        mean = all_reduce(x.sum(dim=dims, keepdim=True), comm) / count            # (1, C, 1...)
        centred = x - mean
        variance = all_reduce((centred * centred).sum(dim=dims, keepdim=True), comm) / count
        if self.track_running_stats:
            self._update_running(mean.data, variance.data, momentum, count / (count - 1))
        out = centred * (variance + self.eps) ** -0.5
        shape = (1, -1) + (1,) * (x.ndim - 2)
        if self.weight is not None:
            out = out * self.weight.reshape(shape)
        return out if self.bias is None else out + self.bias.reshape(shape)

    @host_operation  # a write outside the graph: a compiled step replays the call (autograd.host_operation)
    def _update_running(self, mean, variance, momentum, unbiased):
        """running = (1 - momentum) running + momentum batch, as ``F.batch_norm`` does; the variance
        made unbiased (times count / (count - 1)) here, inside the host operation, so that a compiled
        step replays that product on each batch's variance."""
        for running, batch in ((self.running_mean, mean), (self.running_var, variance * unbiased)):
            running.data *= 1 - momentum
            running.data += momentum * batch.reshape(-1).astype(running.dtype, copy=False)

    @classmethod
    def from_batchnorm(cls, layer, comm=None):
        """A SyncBatchNorm holding ``layer``'s very parameters and buffers (an optimizer built over
        them keeps working), its options and its training mode."""
        synced = cls.__new__(cls)
        synced.__dict__.update(layer.__dict__)
        synced.comm = comm
        return synced


class SyncBatchNorm1d(_SyncBatchNorm, BatchNorm1d):
    """``BatchNorm1d`` whose training statistics are those of the batch across all ranks."""


class SyncBatchNorm2d(_SyncBatchNorm, BatchNorm2d):
    """``BatchNorm2d`` whose training statistics are those of the batch across all ranks."""


_SYNCED = {BatchNorm1d: SyncBatchNorm1d, BatchNorm2d: SyncBatchNorm2d}


def convert_sync_batchnorm(module, comm=None):
    """Replace, in place, every ``BatchNorm1d``/``2d`` inside ``module`` by its Sync version, sharing
    parameters and buffers; returns ``module`` (or the replacement, when ``module`` itself is one)."""
    if type(module) in _SYNCED:
        return _SYNCED[type(module)].from_batchnorm(module, comm)
    for parent in list(module.modules()):
        for name, child in list(parent._modules.items()):
            if type(child) in _SYNCED:
                parent.add_module(name, _SYNCED[type(child)].from_batchnorm(child, comm))
            elif isinstance(child, _BatchNorm) and not isinstance(child, _SyncBatchNorm):
                raise TypeError(f"convert_sync_batchnorm: expected BatchNorm1d or BatchNorm2d, got "
                                f"{type(child).__name__} at {name!r}")
    return module
