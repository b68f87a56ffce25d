"""RMSprop (Hinton's lecture 6e), optionally centred (Graves 2013) and with momentum."""
from ..backend import get_array_module
from .optimizer import Optimizer


class RMSprop(Optimizer):
    """As ``torch.optim.RMSprop``, per parameter p with gradient g:

        g = g + weight_decay * p
        s = alpha s + (1 - alpha) g^2                  (running mean square)
        a = a + (1 - alpha) (g - a);  d = sqrt(s - a^2) + eps     (centred: variance, not mean square)
        d = sqrt(s) + eps                              (not centred)
        b = momentum b + g / d;  p = p - lr b          (momentum > 0)
        p = p - lr g / d                               (momentum = 0)
    """

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False,
                 maximize=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or momentum < 0 or alpha < 0:
            raise ValueError(f"RMSprop: expected non-negative lr, alpha, eps, weight_decay and momentum, "
                             f"got lr={lr}, alpha={alpha}, eps={eps}, weight_decay={weight_decay}, "
                             f"momentum={momentum}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def update(self, param, grad, state, group):
        xp = get_array_module(param)
        alpha = group["alpha"]
        if not state:
            state.update(step=0, square_avg=xp.zeros_like(param))
            if group["momentum"] > 0:
                state["momentum_buffer"] = xp.zeros_like(param)
            if group["centered"]:
                state["grad_avg"] = xp.zeros_like(param)
        state["step"] += 1
        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = state["grad_avg"]
            grad_avg += (1 - alpha) * (grad - grad_avg)
            denominator = xp.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            denominator = xp.sqrt(square_avg) + group["eps"]
        if group["momentum"] > 0:
            buffer = state["momentum_buffer"]
            buffer *= group["momentum"]
            buffer += grad / denominator
            param -= group["lr"] * buffer
        else:
            param -= group["lr"] * (grad / denominator)
