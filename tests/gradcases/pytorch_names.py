"""Property-test cases for the PyTorch names of issue 21: clone, contiguous, repeat, tril/triu,
masked_fill, Tensor.where, scatter_add and einsum (compositions, except ``Clone``; each is still
gradchecked and compared with PyTorch here, so a wrong composition fails)."""
import numpy as np
from hypothesis import strategies as st

import scratchgen as sg
from scratchgen.testing.strategies import GradCase, arrays, shapes

from .core import one, torch_fn


@st.composite
def repeat_draw(draw):
    array = draw(shapes(max_dims=3, max_side=3).flatmap(arrays))
    extra = draw(st.integers(0 if array.ndim else 1, 1))  # PyTorch wants at least one size
    sizes = tuple(draw(st.integers(1, 3)) for _ in range(array.ndim + extra))
    return (array,), {"sizes": sizes}


@st.composite
def matrix_draw(draw):
    array = draw(shapes(min_dims=2, max_dims=4, max_side=4).flatmap(arrays))
    return (array,), {"diagonal": draw(st.integers(-2, 2))}


@st.composite
def mask_draw(draw):
    array = draw(shapes(min_dims=1, max_dims=3).flatmap(arrays))
    seed = draw(st.integers(0, 1000))
    mask = np.random.default_rng(seed).random(array.shape[-1:]) < 0.5  # broadcast over the leading dims
    return (array,), {"mask": mask}


@st.composite
def scatter_draw(draw):
    """x, src and an index of src's shape, all with x's number of dims (PyTorch 2.13's backward
    fails for a src larger than the index, so that case is checked in tests/engine/test_pytorch_names.py)."""
    shape = draw(shapes(min_dims=1, max_dims=3, max_side=4))
    dim = draw(st.integers(0, len(shape) - 1))
    index_shape = tuple(draw(st.integers(1, s)) if d != dim else draw(st.integers(1, 5))
                        for d, s in enumerate(shape))
    index = np.random.default_rng(draw(st.integers(0, 1000))).integers(0, shape[dim], size=index_shape)
    return (draw(arrays(shape)), draw(arrays(index_shape))), {"dim": dim, "index": index}


# (equation, operand shapes): the contractions models write
EINSUM_PATTERNS = [
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),      # batched matmul
    ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),  # attention scores
    ("bhqk,bhkd->bhqd", [(1, 2, 3, 5), (1, 2, 5, 4)]),  # attention output
    ("i,j->ij", [(3,), (4,)]),                      # outer product
    ("i,i->", [(5,), (5,)]),                        # dot product
    ("ij->ji", [(3, 4)]),                           # transpose
    ("ijk->j", [(2, 3, 4)]),                        # sums
    ("...ij,jk", [(2, 3, 4), (4, 2)]),              # implicit output, ellipsis
    ("bn,nd,de->be", [(2, 3), (3, 4), (4, 2)]),     # a chain of three
    ("bik,k->bi", [(2, 3, 4), (4,)]),
]


@st.composite
def einsum_draw(draw):
    equation, operand_shapes = draw(st.sampled_from(EINSUM_PATTERNS))
    return tuple(draw(arrays(shape)) for shape in operand_shapes), {"equation": equation}


def _torch_scatter_add(x, src, dim, index):
    import torch
    return x.scatter_add(dim, torch.as_tensor(index), src)


def _torch_masked_fill(a, mask):
    import torch
    return a.masked_fill(torch.as_tensor(mask), -3.0)


def _torch_where_method(a):
    import torch
    return a.where(a > 0, torch.zeros((), dtype=a.dtype))


CASES = [
    GradCase("clone", lambda a: a.clone() * a, one(), torch_fn("lambda a: a.clone() * a"), second_order=True),
    GradCase("contiguous", lambda a: a.mT.contiguous(), one(min_dims=2),
             torch_fn("lambda a: a.mT.contiguous()")),
    GradCase("repeat", lambda a, sizes: a.repeat(*sizes), repeat_draw(),
             torch_fn("lambda a, sizes: a.repeat(*sizes)"), second_order=True),
    GradCase("tril", lambda a, diagonal: a.tril(diagonal), matrix_draw(),
             torch_fn("lambda a, diagonal: a.tril(diagonal)")),
    GradCase("triu", lambda a, diagonal: sg.triu(a, diagonal), matrix_draw(), torch_fn("torch.triu")),
    GradCase("masked_fill", lambda a, mask: a.masked_fill(sg.tensor(mask), -3.0), mask_draw(),
             _torch_masked_fill),
    GradCase("where_method", lambda a: a.where(a > 0, 0.0), one(), _torch_where_method,
             reject=lambda a: bool(np.any(np.abs(a) < 1e-3))),
    GradCase("scatter_add", lambda x, src, dim, index: x.scatter_add(dim, sg.tensor(index), src),
             scatter_draw(), _torch_scatter_add, second_order=True),
    GradCase("einsum", lambda *operands, equation: sg.einsum(equation, *operands), einsum_draw(),
             torch_fn("lambda *operands, equation: torch.einsum(equation, *operands)"), second_order=True),
]
