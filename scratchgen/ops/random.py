"""Random draws as ops: arrays of fresh numbers from the global generator (``scratchgen.random``).

A draw has no inputs and no gradient; it is a ``Function`` only so that observers see it as one
operation with its parameters. That is what lets ``scratchgen.compile`` replay a step that draws
noise (a VAE's reparameterisation, dropout): the replay calls ``forward`` again, which draws the next
numbers from the same generator, so a compiled run and an eager run with one seed agree bit for bit.
"""
from .. import backend
from ..autograd import Function
from ..random import generator


class RandomDraw(Function):
    """y = generator().<method>(*arguments), cast to ``dtype`` and moved to ``device``."""

    def forward(self, *, method, arguments, dtype, device):
        array = getattr(generator(), method)(*arguments)
        return backend.to_device(array.astype(dtype, copy=False), device)

    def backward(self, grad):
        return ()  # no inputs, so nothing to return (and the engine never asks: nothing requires grad)


class DropoutMask(Function):
    """mask = (u >= p) / (1 - p) with u ~ U[0, 1) of ``shape``: inverted dropout's scaled keep mask."""

    def forward(self, *, shape, p, dtype, device):
        keep = generator().random(shape) >= p
        return backend.to_device((keep / (1 - p)).astype(dtype), device)

    def backward(self, grad):
        return ()
