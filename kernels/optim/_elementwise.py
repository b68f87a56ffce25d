"""What ``cpu`` and ``gpu`` share: the update of one element, and the host code that prepares a call.

The ``*_at(i, ...)`` functions are plain Python: ``cpu`` compiles them with ``njit`` and loops over
``i``; ``gpu`` compiles them as ``numba.cuda`` device functions and gives each thread its ``i``. So
the arithmetic exists once, in the order of the ``reference`` operators (one rounding per operator;
LLVM does not fuse a multiply and an add unless told to, so the results are bit-identical).

The ``*_arguments`` functions check the arrays, turn the scalars into the arrays' dtype (so float32
stays float32), fold what depends only on the step (Adam's bias corrections) into scalars, and put
a zero-length placeholder where an optional state array is off (its flag says not to touch it).
"""
import functools
import math

from .._checks import array_module, check_float_arrays


def sgd_at(i, param, grad, momentum_buffer, lr, weight_decay, momentum, one_minus_dampening,
           use_momentum, nesterov, fresh):
    g = grad[i]
    if weight_decay != 0:
        g = g + weight_decay * param[i]
    if use_momentum:
        b = g if fresh else momentum_buffer[i] * momentum + one_minus_dampening * g
        momentum_buffer[i] = b
        g = g + momentum * b if nesterov else b
    param[i] = param[i] - lr * g


def adam_at(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2,
            eps, weight_decay, decay_factor, step_size, bias_correction2_sqrt, amsgrad):
    p = param[i]
    g = grad[i]
    if decay_factor != 1:         # decoupled decay (AdamW)
        p = p * decay_factor
    if weight_decay != 0:         # the L2 penalty (Adam; weight_decay is 0 here when decoupled)
        g = g + weight_decay * p
    m = exp_avg[i] + one_minus_beta1 * (g - exp_avg[i])
    v = exp_avg_sq[i] * beta2 + one_minus_beta2 * g * g
    exp_avg[i] = m
    exp_avg_sq[i] = v
    if amsgrad:
        kept = max_exp_avg_sq[i]
        if not kept >= v and kept == kept:   # NumPy's maximum: a NaN on either side wins
            kept = v
        max_exp_avg_sq[i] = kept
        v = kept
    param[i] = p - step_size * (m / (math.sqrt(v) / bias_correction2_sqrt + eps))


def rmsprop_at(i, param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha, eps,
               weight_decay, momentum, centered, use_momentum):
    g = grad[i]
    if weight_decay != 0:
        g = g + weight_decay * param[i]
    s = square_avg[i] * alpha + one_minus_alpha * g * g
    square_avg[i] = s
    if centered:
        a = grad_avg[i] + one_minus_alpha * (g - grad_avg[i])
        grad_avg[i] = a
        denominator = math.sqrt(s - a * a) + eps
    else:
        denominator = math.sqrt(s) + eps
    if use_momentum:
        b = momentum_buffer[i] * momentum + g / denominator
        momentum_buffer[i] = b
        param[i] = param[i] - lr * b
    else:
        param[i] = param[i] - lr * (g / denominator)


def ema_at(i, shadow, param, one_minus_decay):
    shadow[i] = shadow[i] - one_minus_decay * (shadow[i] - param[i])


# ---- host side: checks and scalars --------------------------------------------------------------
def public_step(arguments, run):
    """A contract function (``sgd_step``, ...) with the signature of ``arguments`` (which checks and
    prepares); ``run(prepared)`` runs the loop or launches the kernel on the prepared tuple."""
    @functools.wraps(arguments)
    def step(*args, **kwargs):
        run(arguments(*args, **kwargs))
    step.__name__ = step.__qualname__ = arguments.__name__.replace("_arguments", "_step")
    return step


def _checked(op, **arrays):
    """The common dtype, after checking one dtype, 1-D, C-contiguous and one length."""
    dtype = check_float_arrays(op, **arrays)
    given = {name: a for name, a in arrays.items() if a is not None}
    first = next(iter(given))
    for name, array in given.items():
        if array.ndim != 1 or array.shape != given[first].shape:
            raise ValueError(f"{op}: expected 1-D arrays of one length (the flat buffers), got {name} of "
                             f"shape {tuple(array.shape)} and {first} of shape {tuple(given[first].shape)}")
    return dtype


def _or_placeholder(array, like):
    return array if array is not None else array_module(like).empty(0, like.dtype)


def sgd_arguments(param, grad, momentum_buffer, lr, weight_decay, momentum, dampening, nesterov, fresh):
    cast = _checked("sgd_step", param=param, grad=grad, momentum_buffer=momentum_buffer).type
    # Without momentum the buffer is never read (nor is ``momentum`` used), as in the reference.
    return (param, grad, _or_placeholder(momentum_buffer, param), cast(lr), cast(weight_decay),
            cast(momentum), cast(1 - dampening), momentum_buffer is not None, bool(nesterov), bool(fresh))


def adam_arguments(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
                   decoupled, step):
    cast = _checked("adam_step", param=param, grad=grad, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq,
                    max_exp_avg_sq=max_exp_avg_sq).type
    decay_factor = 1 - lr * weight_decay if decoupled and weight_decay != 0 else 1.0
    return (param, grad, exp_avg, exp_avg_sq, _or_placeholder(max_exp_avg_sq, param), cast(1 - beta1),
            cast(beta2), cast(1 - beta2), cast(eps), cast(0.0 if decoupled else weight_decay),
            cast(decay_factor), cast(lr / (1 - beta1 ** step)), cast((1 - beta2 ** step) ** 0.5),
            max_exp_avg_sq is not None)


def rmsprop_arguments(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay,
                      momentum):
    cast = _checked("rmsprop_step", param=param, grad=grad, square_avg=square_avg, grad_avg=grad_avg,
                    momentum_buffer=momentum_buffer).type
    return (param, grad, square_avg, _or_placeholder(grad_avg, param),
            _or_placeholder(momentum_buffer, param),
            cast(lr), cast(alpha), cast(1 - alpha), cast(eps), cast(weight_decay), cast(momentum),
            grad_avg is not None, momentum_buffer is not None)


def ema_arguments(shadow, param, decay):
    cast = _checked("ema_step", shadow=shadow, param=param).type
    return shadow, param, cast(1 - decay)
