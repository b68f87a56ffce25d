"""Stochastic gradient descent with momentum (heavy ball or Nesterov) and L2 weight decay."""
from .optimizer import Optimizer


class SGD(Optimizer):
    """As ``torch.optim.SGD``, per parameter p with gradient g:

        g = g + weight_decay * p
        b = g (first step), else b = momentum * b + (1 - dampening) * g
        g = g + momentum * b (Nesterov), else g = b          (only when momentum != 0)
        p = p - lr * g
    """

    def __init__(self, params, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False, fused=False):
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(f"SGD: expected non-negative lr, momentum and weight_decay, "
                             f"got {lr}, {momentum}, {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize), fused)

    counts_steps = False

    def state_names(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    def kernel_update(self, kernels, param, grad, state, group, step, fresh):
        kernels.sgd_step(param, grad, state.get("momentum_buffer"), lr=group["lr"],
                         weight_decay=group["weight_decay"], momentum=group["momentum"],
                         dampening=group["dampening"], nesterov=group["nesterov"], fresh=fresh)
