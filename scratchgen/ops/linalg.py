"""Matrix products."""
import math

from .. import backend
from ..autograd import Function
from ..tensor import Tensor
from .elementwise import binary_operands
from .shape import reshape, transpose


class MatMul(Function):
    """Y = A @ B over the last two axes (leading axes broadcast);
    dA = dY @ B^T, dB = A^T @ dY (the engine sums broadcast batch axes away).

    A weight shared by every row of a batch (B 2-D, A of shape (..., M, K)) is the common case of
    ``Linear`` on sequences: there Y is one product of the rows stacked, (rows, K) @ (K, N), and
    dB = A^T @ dY summed over the batch axes is (K, rows) @ (rows, N). BLAS runs each as a single
    GEMM, 25-45% faster here than NumPy's loop of small products (and a sum, for dB)."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        xp = backend.get_array_module(a)
        if b.ndim == 2 and a.ndim > 2:
            return xp.matmul(_rows(a), b).reshape(a.shape[:-1] + b.shape[-1:])
        return xp.matmul(a, b)

    def backward(self, grad):
        a, b = self.saved_tensors
        return (matmul(grad, transpose(b, -1, -2)) if self.needs_input_grad[0] else None,
                self._grad_b(a, b, grad) if self.needs_input_grad[1] else None)

    @staticmethod
    def _grad_b(a, b, grad):
        if b.ndim == 2 and a.ndim > 2:
            return matmul(transpose(_rows(a), 0, 1), _rows(grad))
        return matmul(transpose(a, -1, -2), grad)


def _rows(x):
    """(..., M, K) -> (prod(...) * M, K): the batch's rows stacked into one matrix (an array or
    a Tensor)."""
    shape = (math.prod(x.shape[:-1]), x.shape[-1])
    return reshape(x, shape) if isinstance(x, Tensor) else x.reshape(shape)


def matmul(a, b):
    """``torch.matmul``: 1-D operands are promoted to matrices and the added axis removed again."""
    a, b = binary_operands("matmul", a, b, elementwise=False)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: expected tensors with at least 1 dim, got shapes {a.shape} and {b.shape}")
    vector_a, vector_b = a.ndim == 1, b.ndim == 1
    a = reshape(a, (1,) + a.shape) if vector_a else a
    b = reshape(b, b.shape + (1,)) if vector_b else b
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: inner dimensions differ: shapes {a.shape} and {b.shape}")
    try:
        out = MatMul.apply(a, b)
    except ValueError as error:
        raise ValueError(f"matmul: batch shapes {a.shape[:-2]} and {b.shape[:-2]} do not broadcast "
                         f"({error})") from None
    if vector_a:
        out = reshape(out, out.shape[:-2] + out.shape[-1:])
    if vector_b:
        out = reshape(out, out.shape[:-1])
    return out


def mm(a, b):
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm: expected 2-D tensors, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


bmm = matmul
