"""Activation modules: thin wrappers that call the function of the same name in
``scratchgen.functional`` with the options given at construction."""
from .. import functional as F
from .module import Module


class _Activation(Module):
    """Calls ``function(x, **options)``; ``options`` names the attributes passed on (and printed)."""

    function = None
    options = ()

    def __init__(self, **options):
        super().__init__()
        for name, value in options.items():
            setattr(self, name, value)

    def forward(self, x):
        return type(self).function(x, **{name: getattr(self, name) for name in self.options})

    def extra_repr(self):
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in self.options)


# ``inplace`` is accepted for PyTorch compatibility and ignored: ops here never write into their input.
class ReLU(_Activation):
    function = staticmethod(F.relu)

    def __init__(self, inplace=False):
        super().__init__()


class LeakyReLU(_Activation):
    function, options = staticmethod(F.leaky_relu), ("negative_slope",)

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__(negative_slope=negative_slope)


class ELU(_Activation):
    function, options = staticmethod(F.elu), ("alpha",)

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__(alpha=alpha)


class GELU(_Activation):
    function, options = staticmethod(F.gelu), ("approximate",)

    def __init__(self, approximate="none"):
        super().__init__(approximate=approximate)


class SiLU(_Activation):
    function = staticmethod(F.silu)

    def __init__(self, inplace=False):
        super().__init__()


class Sigmoid(_Activation):
    function = staticmethod(F.sigmoid)


class Tanh(_Activation):
    function = staticmethod(F.tanh)


class Softplus(_Activation):
    function, options = staticmethod(F.softplus), ("beta", "threshold")

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__(beta=beta, threshold=threshold)


class Softmax(_Activation):
    function, options = staticmethod(F.softmax), ("dim",)

    def __init__(self, dim=-1):
        super().__init__(dim=dim)


class LogSoftmax(_Activation):
    function, options = staticmethod(F.log_softmax), ("dim",)

    def __init__(self, dim=-1):
        super().__init__(dim=dim)
