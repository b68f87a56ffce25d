"""Gradient clipping: ``clip_grad_norm_`` and ``clip_grad_value_``, in place on ``param.grad``; and
``load_torch_state_dict``, PyTorch weights into a module."""
import math

from ...autograd import host_operation
from ...backend import get_array_module
from ...tensor import Tensor
from . import rnn  # noqa: F401  (nn.utils.rnn, as in PyTorch)


def _gradients(parameters):
    parameters = [parameters] if isinstance(parameters, Tensor) else parameters
    return [p.grad.data for p in parameters if p.grad is not None]


def _vector_norm(array, norm_type):
    """The p-norm of all elements: max |g| for p = inf, (sum |g|^p)^(1/p) otherwise."""
    xp = get_array_module(array)
    if norm_type == math.inf:
        return xp.abs(array).max() if array.size else xp.zeros((), array.dtype)
    if norm_type == 2:
        return xp.sqrt(xp.vdot(array.ravel(), array.ravel()))
    return (xp.abs(array) ** norm_type).sum() ** (1.0 / norm_type)


@host_operation  # (the compiler replays the call: see autograd.host_operation)
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale all gradients together so that their joint ``norm_type``-norm is at most ``max_norm``.

    total = norm of the per-parameter norms (the norm of all gradients as one vector);
    every gradient is multiplied by min(1, max_norm / (total + 1e-6)), as PyTorch.
    Returns the total norm (before clipping) as a 0-d Tensor.
    """
    return scale_to_norm_(_gradients(parameters), max_norm, norm_type, error_if_nonfinite)


def scale_to_norm_(grads, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """``clip_grad_norm_`` on a list of gradient arrays (one per parameter, or the flat buffers of
    ``optim.flat``), scaled in place; returns the total norm as a 0-d Tensor."""
    norm_type = float(norm_type)
    if not grads:
        return Tensor(0.0)
    xp = get_array_module(grads[0])
    norms = xp.stack([_vector_norm(g, norm_type).astype(grads[0].dtype) for g in grads])
    total = _vector_norm(norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} is {float(total)}; "
                           "pass error_if_nonfinite=False to clip anyway")
    scale = xp.minimum(max_norm / (total + 1e-6), 1.0)
    for g in grads:
        g *= scale.astype(g.dtype)
    return Tensor(xp.asarray(total))


@host_operation
def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element into [-clip_value, clip_value]."""
    for g in _gradients(parameters):
        get_array_module(g).clip(g, -clip_value, clip_value, out=g)


def load_torch_state_dict(module, state_dict, strict=True):
    """Copy a PyTorch ``state_dict`` (``torch.Tensor`` values, or arrays) into ``module``: the
    names and layouts are PyTorch's, so this is ``load_state_dict`` after taking each tensor's
    memory on the CPU. The file itself is the caller's to read (``torch.load``, or
    ``scratchgen.serialize.load_safetensors`` for ``.safetensors``): scratchgen never unpickles."""
    arrays = {name: value.detach().cpu().numpy() if hasattr(value, "detach") else value
              for name, value in state_dict.items()}
    return module.load_state_dict(arrays, strict=strict)
