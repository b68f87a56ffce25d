"""``ExponentialMovingAverage``: shadow weights that average a model's parameters over training.

    shadow = decay * shadow + (1 - decay) * param     (after every optimizer step: ``update()``)

Sampling from the averaged weights (standard for diffusion models and GANs) swaps them in and
back out: ``with ema.average_parameters(): sample(model)``, or ``store()``/``copy_to()``/``restore()``.
Shadows are keyed by the model's ``state_dict`` names, which is how checkpoints store them
(``ema/<name>``). Buffers (e.g. BatchNorm's running statistics) are copied, not averaged.

Given ``flat`` (the ``FlatParameters`` a fused optimizer lays the model out in:
``optimizer.fused.flat_parameters()``), the shadows of those parameters are views into flat shadow
buffers of the same layout and ``update()`` is one ``kernels.optim.ema_step`` per buffer. While the
layout is stale (the model was moved) the same shadows are updated one by one instead.
"""
import contextlib
from collections import OrderedDict

import numpy as np

from .. import backend
from ..autograd import host_operation
from ..kernels import implementation
from ..kernels.optim import reference as reference_kernels
from ..tensor import Tensor


class ExponentialMovingAverage:
    def __init__(self, model, decay=0.999, flat=None):
        if not 0 <= decay <= 1:
            raise ValueError(f"ExponentialMovingAverage: expected decay in [0, 1], got {decay}")
        self.model, self.decay = model, decay
        self.shadow = OrderedDict((name, tensor.data.copy()) for name, tensor in self._tracked())
        self._stored = None
        self.flat, self._flat_shadows, self._flat_names = flat, [], set()
        if flat is not None:
            self._lay_out_shadows(flat)

    def _lay_out_shadows(self, flat):
        """Shadows of ``flat``'s averaged parameters become views of buffers laid out like it (a
        parameter shared under two names: the first; the other keeps its own shadow, as before)."""
        averaged = dict(self.model.named_parameters())
        self._flat_shadows = [buffer.data.copy() for buffer in flat.buffers]
        for name, param in averaged.items():
            where = flat.location(param)
            if where is not None:
                index, start, stop = where
                self.shadow[name] = self._flat_shadows[index][start:stop].reshape(param.shape)
                self._flat_names.add(name)

    def _tracked(self):
        return self.model._state_tensors()

    def _averaged_names(self):
        return {name for name, _ in self.model.named_parameters(remove_duplicate=False)}

    @host_operation  # (the compiler replays the call: see autograd.host_operation)
    def update(self):
        """Move every shadow towards the model's current weights (in place)."""
        averaged = self._averaged_names()
        done = set()
        if self.flat is not None and self.flat.is_current():
            for shadow, buffer in zip(self._flat_shadows, self.flat.buffers):
                implementation("optim", shadow).ema_step(shadow, buffer.data, self.decay)
            done = self._flat_names
        for name, tensor in self._tracked():
            if name in done:
                continue
            shadow = self.shadow[name]
            if type(shadow) is not type(tensor.data):  # the model was moved (Module.to): follow it
                shadow = self.shadow[name] = backend.to_device(shadow, tensor.device)
            if name in averaged:
                reference_kernels.ema_step(shadow, tensor.data, self.decay)
            else:
                shadow[...] = tensor.data

    def copy_to(self, model=None):
        """Write the shadow weights into ``model`` (default: the tracked one)."""
        (model or self.model).load_state_dict(self.shadow)

    def store(self):
        """Remember the model's current weights (to ``restore()`` after sampling with the shadows)."""
        self._stored = OrderedDict((name, tensor.data.copy()) for name, tensor in self._tracked())

    def restore(self):
        if self._stored is None:
            raise RuntimeError("ExponentialMovingAverage.restore: nothing stored; call store() first")
        self.model.load_state_dict(self._stored)
        self._stored = None

    @contextlib.contextmanager
    def average_parameters(self):
        """Inside the block the model holds the averaged weights; its own come back afterwards."""
        self.store()
        self.copy_to()
        try:
            yield self.model
        finally:
            self.restore()

    def state_dict(self):
        """name -> NumPy copy of each shadow (the ``ema/<name>`` entries of a checkpoint)."""
        return OrderedDict((name, np.array(backend.to_device(shadow, "cpu"), copy=True))
                           for name, shadow in self.shadow.items())

    def load_state_dict(self, state_dict):
        expected, given = set(self.shadow), set(state_dict)
        if expected != given:
            raise KeyError(f"ExponentialMovingAverage.load_state_dict: missing {sorted(expected - given)}, "
                           f"unexpected {sorted(given - expected)}")
        for name, shadow in self.shadow.items():
            value = state_dict[name].data if isinstance(state_dict[name], Tensor) else state_dict[name]
            shadow[...] = backend.to_device(value, backend.device_of(shadow)).astype(shadow.dtype, copy=False)
