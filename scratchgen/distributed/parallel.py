"""Data-parallel training: every rank holds the same model, computes gradients on its own shard of
the batch, and takes the same optimizer step with the gradients averaged over the ranks.

    world = distributed.init()
    model = DataParallel(MyNet())                   # same model everywhere: checked, then rank 0's copied
    optimizer = optim.Adam(model.parameters())
    model.average_gradients_of(optimizer)           # before every step: gradients averaged over ranks
    for x, y in shard_of_each_batch:
        optimizer.zero_grad(); loss_fn(model(x), y).backward(); optimizer.step()

Three steps, each over collectives of ``communicator``:

1. ``check_same_model``: every rank describes its parameters and buffers (names, shapes, dtypes)
   and compares with rank 0's; ranks whose models differ are refused at the start with a message
   naming the first difference, instead of an allreduce of mismatched buffers later (which MPI
   would not notice, or would hang in).
2. ``broadcast_state``: rank 0's parameters and buffers are copied to every rank.
3. ``GradientAveraging``, an optimizer step pre-hook. The optimizer's parameters are laid out in
   ``optim.FlatParameters`` (the optimizer's own when it is fused, else one kept here; see
   docs/design.md, "Flat parameter buffers"): ``gather_grads()`` copies the gradients into one
   flat buffer per dtype, each buffer is summed over the ranks by one in-place ``Allreduce`` and
   divided by the number of ranks, and each ``param.grad`` is already a view of it. Then every
   rank runs the same update on the same numbers.

Why average at the step, not during the backward pass (as PyTorch's DDP does with bucket hooks)?
The engine's leaf hooks fire once per backward pass, but a recipe may run several backward passes
per step (a GAN's two losses) or none for some parameters, and nothing marks the end of a backward
pass; averaging what the optimizer is about to use is correct in every case, and costs one
collective per dtype and step. What overlap would save is at most the allreduce's share of a step,
which the benchmark measures (docs/distributed.md). One consequence: a recipe that clips gradients
by their norm between ``backward`` and ``step`` clips each rank's gradient before the average —
the same step whenever the norm stays under the limit, a slightly different one when it does not.
"""
import hashlib

import numpy as np

from .. import backend
from ..nn import Module
from ..optim import FlatParameters
from .batchnorm import convert_sync_batchnorm
from .communicator import DistributedError, init

DESCRIPTION_BYTES = 512   # each rank's report of how its model differs from rank 0's, padded


class ModelMismatch(DistributedError):
    """The ranks hold different models (parameter or buffer names, shapes or dtypes)."""


def describe_model(module):
    """One line per parameter and buffer: ``name shape dtype`` (what must agree across ranks)."""
    lines = [f"parameter {name} {tuple(param.shape)} {param.dtype}" for name, param in module.named_parameters()]
    lines += [f"buffer {name} {tuple(buffer.shape)} {buffer.dtype}" for name, buffer in module.named_buffers()]
    return lines


def first_difference(mine, reference):
    """How the lines ``mine`` differ from ``reference`` (rank 0's), in words; '' when they agree."""
    for index, (ours, theirs) in enumerate(zip(mine, reference)):
        if ours != theirs:
            return f"entry {index} is `{ours}` where rank 0 has `{theirs}`"
    if len(mine) != len(reference):
        return f"{len(mine)} parameters and buffers where rank 0 has {len(reference)}"
    return ""


def check_same_model(module, communicator):
    """Raise ``ModelMismatch`` on every rank, naming each differing rank and its first difference,
    unless all ranks' ``module`` have the same parameters and buffers. Buffer methods only: rank 0's
    description is broadcast as bytes, each rank's verdict gathered as a fixed-size byte string."""
    lines = describe_model(module)
    reference = _broadcast_text("\n".join(lines), communicator).split("\n") if lines else []
    verdict = first_difference(lines, reference).encode()[:DESCRIPTION_BYTES]
    verdicts = communicator.allgather(np.frombuffer(verdict.ljust(DESCRIPTION_BYTES, b"\0"), dtype=np.uint8))
    differences = [(rank, bytes(row).rstrip(b"\0").decode(errors="replace")) for rank, row in enumerate(verdicts)]
    differences = [(rank, text) for rank, text in differences if text]
    if differences:
        shown = "; ".join(f"rank {rank}: {text}" for rank, text in differences)
        raise ModelMismatch(f"the ranks' models differ from rank 0's ({shown}); every rank must build the same "
                            "model (same options and data)")


def _broadcast_text(text, communicator):
    """Rank 0's ``text`` on every rank: its length, then its bytes, each one ``Bcast``."""
    encoded = text.encode()
    length = int(communicator.broadcast_(np.array([len(encoded)], dtype=np.int64))[0])
    data = np.frombuffer(encoded, dtype=np.uint8).copy() if communicator.rank == 0 else \
        np.empty(length, dtype=np.uint8)
    return bytes(communicator.broadcast_(data)).decode()


def broadcast_state(module, communicator, root=0):
    """Copy rank ``root``'s parameters and buffers into every rank's ``module``, in place."""
    tensors = [param for param in module.parameters()] + [buffer for buffer in module.buffers()]
    for tensor in tensors:
        host = np.ascontiguousarray(backend.to_device(tensor.data, "cpu"))
        communicator.broadcast_(host, root)
        tensor.data[...] = backend.to_device(host, tensor.device)


def state_digest(module):
    """A short hash of every parameter and buffer value (equal digests: equal models), for tests and logs."""
    digest = hashlib.sha256()
    for tensor in [*module.parameters(), *module.buffers()]:
        digest.update(np.ascontiguousarray(backend.to_device(tensor.data, "cpu")).tobytes())
    return digest.hexdigest()[:16]


class GradientAveraging:
    """An optimizer step pre-hook: the optimizer's gradients become their average over the ranks."""

    def __init__(self, communicator):
        self.communicator = communicator
        self._flat = None

    @property
    def description(self):
        """What the hook does, in words (a compiled step's listing names it: scratchgen.compile)."""
        return f"gradients summed by an in-place allreduce over {self.communicator.size} ranks, then averaged"

    def flat_parameters(self, optimizer):
        """The optimizer's parameters in flat buffers: its own when fused (two layouts of one
        parameter cannot coexist: each rebinds ``param.data``), else one kept here and rebuilt
        when a parameter was rebound or added."""
        if optimizer.fused is not None:
            return optimizer.fused.flat_parameters()
        params = [param for group in optimizer.param_groups for param in group["params"]]
        if self._flat is None or not self._flat.is_current() or self._flat.params != params:
            self._flat = FlatParameters(params)
        return self._flat

    def __call__(self, optimizer, args, kwargs):
        size = self.communicator.size
        for grad in self.flat_parameters(optimizer).gather_grads():
            self.communicator.allreduce_(grad)
            grad /= size


def average_gradients_of(optimizer, communicator):
    """Average ``optimizer``'s gradients over the ranks before each of its steps; returns the hook's handle."""
    return optimizer.register_step_pre_hook(GradientAveraging(communicator))


class DataParallel(Module):
    """``module`` made the same on every rank (checked, then rank 0's state broadcast); calling it
    calls ``module``. ``average_gradients_of(optimizer)`` makes that optimizer's steps data-parallel.
    Its ``state_dict`` keys carry the prefix ``module.``, as PyTorch's."""

    def __init__(self, module, communicator=None):
        super().__init__()
        self.module = module
        object.__setattr__(self, "communicator", communicator or init())
        check_same_model(module, self.communicator)
        broadcast_state(module, self.communicator)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)

    def average_gradients_of(self, optimizer):
        return average_gradients_of(optimizer, self.communicator)


def make_data_parallel(model, optimizers, world, device_communicator=None):
    """What ``scratchgen train --distributed`` does to a recipe's model and optimizers in place:
    BatchNorm layers synchronised, the ranks' models checked and made equal (over ``world``, MPI),
    every optimizer's gradients averaged (over ``device_communicator`` when given, e.g. NCCL for
    GPU arrays, else ``world``). Returns the hooks' handles."""
    gradients = device_communicator or world
    convert_sync_batchnorm(model, gradients)
    check_same_model(model, world)
    broadcast_state(model, world)
    return [average_gradients_of(optimizer, gradients) for optimizer in optimizers]
