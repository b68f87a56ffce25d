"""A custom autograd Function in PyTorch's ctx style (save_for_backward, saved_tensors, a
non-tensor argument), used inside a model and differentiated (PyTorch code)."""
import torch
import torch.nn as nn
import numpy as np


class ScaledSoftplus(torch.autograd.Function):
    """y = log(1 + exp(beta x)) / beta;  dx = dy * sigmoid(beta x)."""

    @staticmethod
    def forward(ctx, x, beta):
        ctx.save_for_backward(x)
        ctx.beta = beta
        return torch.log(1 + torch.exp(beta * x)) / beta

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * torch.sigmoid(ctx.beta * x), None


def build():
    return nn.Linear(4, 3)


def run(model):
    rng = np.random.default_rng(2)
    x = torch.tensor(rng.standard_normal((5, 4)).astype(np.float32), requires_grad=True)
    out = ScaledSoftplus.apply(model(x), 2.0)
    loss = (out * out).sum()
    loss.backward()
    return {"out": out.detach().numpy(), "loss": np.array(loss.item()), "x.grad": x.grad.numpy(),
            "weight.grad": model.weight.grad.numpy(), "bias.grad": model.bias.grad.numpy()}
