"""The optimizer updates in plain NumPy/CuPy operators (the readable definition and test oracle).

Each line is one rounded operation in the arrays' dtype, in the order ``cpu`` and ``gpu`` repeat
element by element, which is what makes the three bit-identical. ``xp`` is NumPy or CuPy, whichever
owns the arrays, so the per-parameter optimizers run these on either device.
"""
from .._checks import array_module


def sgd_step(param, grad, momentum_buffer, lr, weight_decay, momentum, dampening, nesterov, fresh):
    if weight_decay != 0:
        grad = grad + weight_decay * param
    if momentum_buffer is not None:
        if fresh:
            momentum_buffer[...] = grad
        else:
            momentum_buffer *= momentum
            momentum_buffer += (1 - dampening) * grad
        grad = grad + momentum * momentum_buffer if nesterov else momentum_buffer
    param -= lr * grad


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
              decoupled, step):
    xp = array_module(param)
    if weight_decay != 0:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            grad = grad + weight_decay * param
    exp_avg += (1 - beta1) * (grad - exp_avg)
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    if max_exp_avg_sq is not None:
        xp.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
        exp_avg_sq = max_exp_avg_sq
    step_size = lr / (1 - beta1 ** step)
    denominator = xp.sqrt(exp_avg_sq) / (1 - beta2 ** step) ** 0.5 + eps
    param -= step_size * (exp_avg / denominator)


def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay, momentum):
    xp = array_module(param)
    if weight_decay != 0:
        grad = grad + weight_decay * param
    square_avg *= alpha
    square_avg += (1 - alpha) * grad * grad
    if grad_avg is not None:
        grad_avg += (1 - alpha) * (grad - grad_avg)
        denominator = xp.sqrt(square_avg - grad_avg * grad_avg) + eps
    else:
        denominator = xp.sqrt(square_avg) + eps
    if momentum_buffer is not None:
        momentum_buffer *= momentum
        momentum_buffer += grad / denominator
        param -= lr * momentum_buffer
    else:
        param -= lr * (grad / denominator)


def ema_step(shadow, param, decay):
    shadow -= (1 - decay) * (shadow - param)
