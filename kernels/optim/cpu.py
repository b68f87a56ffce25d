"""The optimizer updates on the CPU: one Numba loop over a whole flat buffer per step.

Why: the per-parameter NumPy path makes about ten array operations per parameter per step, each a
pass over memory and a few microseconds of dispatch; a model with fifty parameters pays that five
hundred times. Here every element is read once, updated in registers and written once, and the
whole model is one call (``scratchgen.optim.flat`` lays the parameters out in one buffer). The
arithmetic is in ``_elementwise`` (shared with ``gpu``); this module only loops.
"""
from numba import njit

from ._elementwise import (adam_arguments, adam_at, ema_arguments, ema_at, public_step, rmsprop_arguments,
                           rmsprop_at, sgd_arguments, sgd_at)

# error_model="numpy": a division by zero gives inf or nan, as in NumPy, instead of Numba's Python
# check (a branch per division that also stops LLVM from vectorising the loop).
ELEMENT_OPTIONS = dict(inline="always", error_model="numpy")
LOOP_OPTIONS = dict(cache=True, error_model="numpy")
_sgd_at, _adam_at, _rmsprop_at, _ema_at = (njit(**ELEMENT_OPTIONS)(f)
                                           for f in (sgd_at, adam_at, rmsprop_at, ema_at))

# A flag that guards a store (AMSGrad's maximum, a momentum buffer, a centred average) stops LLVM
# from vectorising the loop, so each such flag gets a loop of its own in which it is a constant.


@njit(**LOOP_OPTIONS)
def _sgd_loop(param, grad, momentum_buffer, lr, weight_decay, momentum, one_minus_dampening, use_momentum,
              nesterov, fresh):
    if use_momentum:
        for i in range(param.size):
            _sgd_at(i, param, grad, momentum_buffer, lr, weight_decay, momentum, one_minus_dampening,
                    True, nesterov, fresh)
    else:
        for i in range(param.size):
            _sgd_at(i, param, grad, momentum_buffer, lr, weight_decay, momentum, one_minus_dampening,
                    False, nesterov, fresh)


@njit(**LOOP_OPTIONS)
def _adam_loop(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2,
               eps, weight_decay, decay_factor, step_size, bias_correction2_sqrt, amsgrad):
    if amsgrad:
        for i in range(param.size):
            _adam_at(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2,
                     one_minus_beta2, eps, weight_decay, decay_factor, step_size, bias_correction2_sqrt,
                     True)
    else:
        for i in range(param.size):
            _adam_at(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2,
                     one_minus_beta2, eps, weight_decay, decay_factor, step_size, bias_correction2_sqrt,
                     False)


@njit(**LOOP_OPTIONS)
def _rmsprop_loop(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha, eps,
                  weight_decay, momentum, centered, use_momentum):
    if centered:
        _rmsprop_centered_loop(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha,
                               eps, weight_decay, momentum, True, use_momentum)
    else:
        _rmsprop_centered_loop(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha,
                               eps, weight_decay, momentum, False, use_momentum)


@njit(inline="always", error_model="numpy")
def _rmsprop_centered_loop(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha,
                           eps, weight_decay, momentum, centered, use_momentum):
    """``_rmsprop_loop``'s second level: ``centered`` is a constant here, ``use_momentum`` is split."""
    if use_momentum:
        for i in range(param.size):
            _rmsprop_at(i, param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha,
                        eps, weight_decay, momentum, centered, True)
    else:
        for i in range(param.size):
            _rmsprop_at(i, param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha,
                        eps, weight_decay, momentum, centered, False)


@njit(**LOOP_OPTIONS)
def _ema_loop(shadow, param, one_minus_decay):
    for i in range(shadow.size):
        _ema_at(i, shadow, param, one_minus_decay)


sgd_step = public_step(sgd_arguments, lambda prepared: _sgd_loop(*prepared))
adam_step = public_step(adam_arguments, lambda prepared: _adam_loop(*prepared))
rmsprop_step = public_step(rmsprop_arguments, lambda prepared: _rmsprop_loop(*prepared))
ema_step = public_step(ema_arguments, lambda prepared: _ema_loop(*prepared))
