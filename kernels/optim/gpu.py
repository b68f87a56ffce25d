"""The optimizer updates on the GPU: one ``numba.cuda`` kernel per flat buffer, one thread per element
(a grid-stride loop), the arithmetic shared with ``cpu`` through ``_elementwise``."""
import functools

import numpy as np

from .. import simulating_gpu
from .._cuda import cuda, launch_over
from ._elementwise import (adam_arguments, adam_at, ema_arguments, ema_at, public_step, rmsprop_arguments,
                           rmsprop_at, sgd_arguments, sgd_at)

_sgd_at, _adam_at, _rmsprop_at, _ema_at = (cuda.jit(device=True, inline="always")(f)
                                           for f in (sgd_at, adam_at, rmsprop_at, ema_at))


@cuda.jit
def sgd_kernel(param, grad, momentum_buffer, lr, weight_decay, momentum, one_minus_dampening, use_momentum,
               nesterov, fresh):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        _sgd_at(i, param, grad, momentum_buffer, lr, weight_decay, momentum, one_minus_dampening,
                use_momentum, nesterov, fresh)


@cuda.jit
def adam_kernel(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2, one_minus_beta2,
                eps, weight_decay, decay_factor, step_size, bias_correction2_sqrt, amsgrad):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        _adam_at(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, one_minus_beta1, beta2,
                 one_minus_beta2, eps, weight_decay, decay_factor, step_size, bias_correction2_sqrt, amsgrad)


@cuda.jit
def rmsprop_kernel(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha, eps,
                   weight_decay, momentum, centered, use_momentum):
    for i in range(cuda.grid(1), param.size, cuda.gridsize(1)):
        _rmsprop_at(i, param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, one_minus_alpha, eps,
                    weight_decay, momentum, centered, use_momentum)


@cuda.jit
def ema_kernel(shadow, param, one_minus_decay):
    for i in range(cuda.grid(1), shadow.size, cuda.gridsize(1)):
        _ema_at(i, shadow, param, one_minus_decay)


def _launch(kernel, prepared):
    """``kernel`` over every element of the first (flat) array."""
    if simulating_gpu():  # the simulator would wrap NumPy scalars as arrays: pass plain numbers
        prepared = tuple(value.item() if isinstance(value, np.generic) else value for value in prepared)
    launch_over(prepared[0].size, kernel, *prepared)


sgd_step = public_step(sgd_arguments, functools.partial(_launch, sgd_kernel))
adam_step = public_step(adam_arguments, functools.partial(_launch, adam_kernel))
rmsprop_step = public_step(rmsprop_arguments, functools.partial(_launch, rmsprop_kernel))
ema_step = public_step(ema_arguments, functools.partial(_launch, ema_kernel))
