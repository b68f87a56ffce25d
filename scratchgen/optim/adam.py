"""Adam (Kingma & Ba 2015), with optional AMSGrad, and AdamW (Loshchilov & Hutter 2019)."""
from .optimizer import Optimizer


class Adam(Optimizer):
    """As ``torch.optim.Adam``, per parameter p with gradient g at step t:

        g = g + weight_decay * p                      (L2 penalty; AdamW decays p itself instead)
        m = m + (1 - beta1) (g - m)                   (first moment, a lerp towards g)
        v = beta2 v + (1 - beta2) g^2                 (second moment)
        v_max = max(v_max, v)                         (AMSGrad: use v_max in place of v)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False,
                 maximize=False, fused=False):
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"{type(self).__name__}: expected lr, eps, weight_decay >= 0 and betas in "
                             f"[0, 1), got lr={lr}, eps={eps}, weight_decay={weight_decay}, betas={betas}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize), fused)

    def state_names(self, group):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ())

    def kernel_update(self, kernels, param, grad, state, group, step, fresh):
        beta1, beta2 = group["betas"]
        kernels.adam_step(param, grad, state["exp_avg"], state["exp_avg_sq"], state.get("max_exp_avg_sq"),
                          lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                          weight_decay=group["weight_decay"], decoupled=self.decoupled_weight_decay,
                          step=step)


class AdamW(Adam):
    """Adam with decoupled weight decay: p = p (1 - lr weight_decay) before the Adam step, so the
    decay is not rescaled by the adaptive denominator."""

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False,
                 maximize=False, fused=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize, fused)
