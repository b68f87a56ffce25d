"""Optimizer family: one in-place update of a parameter array from its gradient and running state.

Contract (``reference``, ``cpu`` and ``gpu`` expose the same functions; every array has one float
dtype (float32 or float64) and one shape; ``cpu`` and ``gpu`` want them 1-D and C-contiguous, the
flat buffers of ``scratchgen.optim.flat``; ``reference`` takes any shape). Scalars are Python
numbers: the host code turns them into the arrays' dtype before the arithmetic, so a float32 update
computes in float32 throughout and all three implementations round alike (bit-identical results)::

    sgd_step(param, grad, momentum_buffer, lr, weight_decay, momentum, dampening, nesterov, fresh)
        g = grad + weight_decay * param
        b = g if fresh else momentum * b + (1 - dampening) * g        (when momentum_buffer is given)
        g = g + momentum * b (nesterov) or b;   param = param - lr * g
    adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay,
              decoupled, step)
        param = param (1 - lr weight_decay) (decoupled), else g = grad + weight_decay * param
        m = m + (1 - beta1) (g - m);   v = beta2 v + (1 - beta2) g g;   v_max = max(v_max, v)
        param = param - lr / (1 - beta1^step) * m / (sqrt(v or v_max) / sqrt(1 - beta2^step) + eps)
    rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay, momentum)
        g = grad + weight_decay * param;   s = alpha s + (1 - alpha) g g
        d = sqrt(s - a a) + eps with a = a + (1 - alpha) (g - a) (grad_avg given), else sqrt(s) + eps
        b = momentum b + g / d; param = param - lr b (momentum_buffer given), else param - lr g / d
    ema_step(shadow, param, decay)
        shadow = shadow - (1 - decay) (shadow - param)

Optional state arrays are ``None`` when the option is off (no momentum, not AMSGrad, not centred).
Each function returns nothing: ``param`` and the state arrays are updated in place.
"""
