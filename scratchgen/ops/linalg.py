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


# ---- einsum: sums, permutations and one matmul per pair of operands ------------------------------
def einsum(equation, *operands):
    """``torch.einsum`` for the contractions models write ("bij,bjk->bik", "bhqd,bhkd->bhqk",
    "i,j->ij", "...ij,jk", "ii" excepted), reduced to ops that already have derivatives:

    1. a letter that appears in one operand only and nowhere later is summed out (``sum``);
    2. operands are folded left to right; for a pair A, B the letters split into batch (in both, and
       needed later), contracted (in both, not needed later), A's own and B's own. A is permuted to
       (batch, A's own, contracted) and flattened to (batch, M, K), B to (batch, K, N), and one
       ``matmul`` gives (batch, M, N), unflattened to (batch, A's own, B's own);
    3. the result is permuted into the output's letter order.
    Without "->" the output is every letter used once, in alphabetical order (``...`` first).
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    inputs, output = _parse_einsum(equation, [x.ndim for x in operands])
    sizes = {}
    for number, (x, letters) in enumerate(zip(operands, inputs)):
        if len(set(letters)) != len(letters):
            raise NotImplementedError(f"einsum: a letter repeated within one operand (a diagonal or trace, "
                                      f"operand {number} of {equation!r}) is not supported")
        for letter, size in zip(letters, x.shape):
            if sizes.setdefault(letter, size) != size and 1 not in (size, sizes[letter]):
                raise ValueError(f"einsum: letter {letter!r} of {equation!r} has sizes {sizes[letter]} "
                                 f"and {size}")
            sizes[letter] = max(size, sizes[letter])
    result, letters = operands[0], inputs[0]
    for position in range(1, len(operands)):
        needed = set(output).union(*inputs[position + 1:])
        result, letters = _sum_out(result, letters, needed | set(inputs[position]))
        other, other_letters = _sum_out(operands[position], inputs[position], needed | set(letters))
        result, letters = _contract(result, letters, other, other_letters, needed)
    result, letters = _sum_out(result, letters, set(output))
    return result.permute(*[letters.index(letter) for letter in output])


def _parse_einsum(equation, ranks):
    """(one string of letters per operand, the output's letters), with ``...`` spelled out as
    distinct placeholder letters aligned from the right."""
    left, arrow, right = equation.replace(" ", "").partition("->")
    terms = left.split(",")
    if len(terms) != len(ranks):
        raise ValueError(f"einsum: {equation!r} names {len(terms)} operands, got {len(ranks)}")
    spread = max([rank - (len(term) - 3) for term, rank in zip(terms, ranks) if "..." in term], default=0)
    placeholders = [chr(0x3B1 + i) for i in range(spread)]  # Greek letters: never in an equation
    inputs = []
    for term, rank in zip(terms, ranks):
        if "..." in term:
            term = term.replace("...", "".join(placeholders[spread - (rank - len(term) + 3):]))
        if len(term) != rank or not all(c.isalpha() for c in term):
            raise ValueError(f"einsum: term {term!r} of {equation!r} does not fit an operand with "
                             f"{rank} dims")
        inputs.append(term)
    if arrow:
        output = right.replace("...", "".join(placeholders))
    else:
        counts = "".join(inputs)
        output = "".join(placeholders) + "".join(sorted(c for c in set(counts) if counts.count(c) == 1
                                                        and c not in placeholders))
    unknown = set(output) - set("".join(inputs))
    if unknown or len(set(output)) != len(output):
        raise ValueError(f"einsum: output {right!r} of {equation!r} repeats a letter or names one "
                         "no operand has")
    return inputs, output


def _sum_out(x, letters, keep):
    """Sum ``x`` over the dims whose letters are not in ``keep``."""
    gone = tuple(i for i, letter in enumerate(letters) if letter not in keep)
    if not gone:
        return x, letters
    return x.sum(dim=gone), "".join(letter for letter in letters if letter in keep)


def _contract(a, a_letters, b, b_letters, needed):
    """One matmul over the letters ``a`` and ``b`` share but nothing later needs (see ``einsum``)."""
    shared = [letter for letter in a_letters if letter in b_letters]
    batch = [letter for letter in shared if letter in needed]
    summed = [letter for letter in shared if letter not in needed]
    a_own = [letter for letter in a_letters if letter not in shared]
    b_own = [letter for letter in b_letters if letter not in shared]

    def arranged(x, letters, order):
        x = x.permute(*[letters.index(letter) for letter in order])
        return x, [x.shape[i] for i in range(len(order))]

    a, a_sizes = arranged(a, a_letters, batch + a_own + summed)
    b, b_sizes = arranged(b, b_letters, batch + summed + b_own)
    batch_a, batch_b = a_sizes[:len(batch)], b_sizes[:len(batch)]
    own_a, own_b = a_sizes[len(batch):len(batch) + len(a_own)], b_sizes[len(batch) + len(summed):]
    depth = math.prod(a_sizes[len(batch) + len(a_own):])
    product = matmul(reshape(a, tuple(batch_a) + (math.prod(own_a), depth)),
                     reshape(b, tuple(batch_b) + (depth, math.prod(own_b))))
    shape = tuple(max(p, q) for p, q in zip(batch_a, batch_b)) + tuple(own_a) + tuple(own_b)
    return reshape(product, shape), "".join(batch + a_own + b_own)
