"""RMSprop (Hinton's lecture 6e), optionally centred (Graves 2013) and with momentum."""
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
                 maximize=False, fused=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or momentum < 0 or alpha < 0:
            raise ValueError(f"RMSprop: expected non-negative lr, alpha, eps, weight_decay and momentum, "
                             f"got lr={lr}, alpha={alpha}, eps={eps}, weight_decay={weight_decay}, "
                             f"momentum={momentum}")
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize), fused)

    def state_names(self, group):
        return ("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ()) \
            + (("grad_avg",) if group["centered"] else ())

    def kernel_update(self, kernels, param, grad, state, group, step, fresh):
        kernels.rmsprop_step(param, grad, state["square_avg"], state.get("grad_avg"),
                             state.get("momentum_buffer"),
                             lr=group["lr"], alpha=group["alpha"], eps=group["eps"],
                             weight_decay=group["weight_decay"], momentum=group["momentum"])
