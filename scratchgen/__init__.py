"""scratchgen: a from-scratch numerical engine for generative models.

    import scratchgen as sg
    x = sg.randn(3, 4, requires_grad=True)
    (x.tanh() * x).sum().backward()
    x.grad

See README.md for the tour, ``scratchgen.functional`` for ops, ``scratchgen.testing`` for
``gradcheck``.
"""
import numpy as _np

from . import cuda  # noqa: F401  (scratchgen.cuda.is_available(), as torch.cuda)
from .autograd import enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import Device as device
from .kernels import use_kernels
from .ops.elementwise import (abs, allclose, clamp, erf, exp, isfinite, isnan, log, maximum, minimum,  # noqa: F401
                              sigmoid, sqrt, tanh, where)
from .ops.linalg import bmm, matmul, mm
from .ops.reduction import amax, amin, argmax, argmin, logsumexp, max, mean, min, std, sum, var  # noqa: F401
from .ops.shape import cat, chunk, flatten, gather, permute, reshape, split, squeeze, stack, transpose, \
    unsqueeze  # noqa: F401
from .random import Generator, get_rng_state, manual_seed, set_rng_state
from .serialize import CheckpointError, load, save
from .tensor import (Tensor, arange, eye, full, full_like, is_tensor, linspace, ones, ones_like, rand,
                     rand_like, randint, randn, randn_like, randperm, tensor, zeros, zeros_like)

from ._version import __version__  # noqa: F401

float16, float32, float64 = _np.float16, _np.float32, _np.float64
int32, int64, bool_ = _np.int32, _np.int64, _np.bool_
long, double, half = int64, float64, float16

from . import init, nn, optim  # noqa: E402,F401  (subpackages that build on everything above)
from . import viz  # noqa: E402,F401  (graph pictures, gradient flow)
from .anomaly import AnomalyError, detect_anomaly  # noqa: E402,F401
from .profiler import profile  # noqa: E402,F401
from . import utils  # noqa: E402,F401  (scratchgen.utils.data: Dataset, TensorDataset, DataLoader)
# PyTorch's names a script reaches for (docs/differences.md lists what still differs)
from .autograd import inference_mode  # noqa: E402,F401
from .ops.linalg import einsum  # noqa: E402,F401
from .ops.shape import clone, repeat, scatter_add, tril, triu  # noqa: E402,F401
from .random import Generator  # noqa: E402,F401
from .tensor import as_tensor, from_dlpack, from_numpy  # noqa: E402,F401
from .compiler import UncapturableError, compile  # noqa: E402,F401  (trace-and-replay; docs/compile.md)
