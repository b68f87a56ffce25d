"""Ops that move elements around without arithmetic: reshape, permute, expand and its adjoint
``sum_to``, indexing and its adjoint ``index_add``, cat/split, pad, and device transfer.

Most come in adjoint pairs, and each one's backward *is* its partner: expand <-> sum_to,
getitem <-> index_add, pad -> getitem, cat -> getitem. So every derivative here is itself
differentiable, to any order.
"""
import itertools
import math
import numbers

import numpy as np

from .. import backend
from ..autograd import Function
from ..tensor import Tensor


def is_int(value):
    """An integer of any kind (``type`` first: the ABC check is slow and shapes are mostly ints)."""
    return type(value) is int or isinstance(value, numbers.Integral)


def normalize_dim(op, dim, ndim):
    """A possibly negative ``dim`` as an index in [0, ndim), or a clear IndexError."""
    if type(dim) is int and -ndim <= dim < ndim:  # the common case (ndim 0 falls through)
        return dim % ndim
    if not is_int(dim):
        raise TypeError(f"{op}: expected dim to be an int, got {type(dim).__name__}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor with {ndim} dimensions")
    return dim % max(ndim, 1)


def normalize_dims(op, dim, ndim):
    """``dim`` (None, an int, or a sequence) as a sorted tuple of non-negative axes."""
    if dim is None:
        return tuple(range(ndim))
    dims = (dim,) if is_int(dim) else tuple(dim)
    axes = tuple(sorted(normalize_dim(op, d, ndim) for d in dims))
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: dim {dim} repeats a dimension")
    return axes


# ---- reshape and permute -------------------------------------------------------------------------
class Reshape(Function):
    """y = x viewed with another shape;  dx = dy reshaped back."""

    def forward(self, x, shape):
        self.input_shape = x.shape
        return x.reshape(shape)

    def backward(self, grad):
        return reshape(grad, self.input_shape)


class Permute(Function):
    """y = x with its axes reordered;  dx = dy with the inverse order."""

    def forward(self, x, dims):
        self.dims = dims
        return x.transpose(dims)

    def backward(self, grad):
        inverse = [0] * len(self.dims)
        for position, axis in enumerate(self.dims):  # (np.argsort of a tuple costs microseconds)
            inverse[axis] = position
        return Permute.apply(grad, dims=tuple(inverse))  # a permutation, and not the identity


def _sizes(op, sizes):
    if len(sizes) == 1 and not is_int(sizes[0]):
        sizes = tuple(sizes[0])
    for size in sizes:  # all Python ints, the usual case: the tuple as it is
        if type(size) is not int:
            break
    else:
        return sizes
    if not all(map(is_int, sizes)):
        raise TypeError(f"{op}: expected int sizes, got {sizes}")
    return tuple(int(s) for s in sizes)


def reshape(x, *shape):
    shape = _sizes("reshape", shape)
    known = math.prod(s for s in shape if s != -1)  # (np.prod of a list costs microseconds)
    fits = x.numel() == known if -1 not in shape else known > 0 and x.numel() % known == 0
    if shape.count(-1) > 1 or not fits:
        raise ValueError(f"reshape: shape {shape} is invalid for a tensor of shape {x.shape} "
                         f"({x.numel()} elements)")
    if tuple(shape) == x.shape:
        return x
    return Reshape.apply(x, shape=shape)


view = reshape


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    start = normalize_dim("flatten", start_dim, x.ndim)
    end = normalize_dim("flatten", end_dim, x.ndim)
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1:])


def permute(x, *dims):
    dims = _sizes("permute", dims)
    axes = tuple(normalize_dim("permute", d, x.ndim) for d in dims)
    if sorted(axes) != list(range(x.ndim)):
        raise ValueError(f"permute: expected a permutation of {x.ndim} dims, got {dims}")
    if axes == tuple(range(x.ndim)):
        return x
    return Permute.apply(x, dims=axes)


def transpose(x, dim0, dim1):
    a, b = normalize_dim("transpose", dim0, x.ndim), normalize_dim("transpose", dim1, x.ndim)
    if a == b:
        return x
    order = list(range(x.ndim))
    order[a], order[b] = order[b], order[a]
    return Permute.apply(x, dims=tuple(order))  # a permutation by construction: permute's checks pass


def reverse_axes(x):
    """``x.T``: the axes in reverse order (nothing to do below 2 dims)."""
    return x if x.ndim < 2 else Permute.apply(x, dims=tuple(range(x.ndim - 1, -1, -1)))


def t(x):
    if x.ndim > 2:
        raise ValueError(f"t: expected a tensor with at most 2 dims, got shape {x.shape}")
    return x.T if x.ndim == 2 else x


def squeeze(x, dim=None):
    axes = [d for d in normalize_dims("squeeze", dim, x.ndim) if x.shape[d] == 1]
    return reshape(x, tuple(s for d, s in enumerate(x.shape) if d not in axes))


def unsqueeze(x, dim):
    dim = normalize_dim("unsqueeze", dim, x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


# ---- expand and its adjoint ---------------------------------------------------------------------
class Expand(Function):
    """y = x broadcast to a larger shape;  dx = dy summed over the broadcast axes (``sum_to``)."""

    def forward(self, x, shape):
        self.input_shape = x.shape
        return backend.get_array_module(x).broadcast_to(x, shape)

    def backward(self, grad):
        return sum_to(grad, self.input_shape)


def sum_array(x, axes, keepdims):
    """``x.sum(axis=axes, keepdims=keepdims)`` for a sorted tuple of axes. Where the kept axes are one
    block followed by reduced trailing axes (a gradient's per-channel sum over (N, H, W) or (H, W)),
    a float NumPy array is summed as two matrix-vector products over its (A, B, D) view instead,

        y[b] = sum_a sum_d x[a, b, d] = ones(A) @ (x.reshape(A B, D) @ ones(D)).reshape(A, B),

    5-9x faster than NumPy's strided reduction on the U-Net's (64, C, 8, 8) gradients (measured, float32
    and float64), and as accurate (BLAS keeps a vector of partial sums)."""
    kept = [axis for axis in range(x.ndim) if axis not in axes]
    block = bool(kept) and kept[-1] < x.ndim - 1 and kept == list(range(kept[0], kept[-1] + 1))
    if type(x) is not np.ndarray or x.dtype.char not in "fd" or not x.flags.c_contiguous or not block \
            or x.size == 0:
        return x.sum(axis=axes, keepdims=keepdims)
    lead, middle = math.prod(x.shape[:kept[0]]), math.prod(x.shape[kept[0]:kept[-1] + 1])
    trail = math.prod(x.shape[kept[-1] + 1:])
    y = x.reshape(lead * middle, trail) @ np.ones(trail, x.dtype)
    if lead > 1:
        y = np.ones(lead, x.dtype) @ y.reshape(lead, middle)
    shape = [1 if axis in axes else size for axis, size in enumerate(x.shape)] if keepdims else \
        [x.shape[axis] for axis in kept]
    return y.reshape(shape)


class SumTo(Function):
    """y = x summed down to ``shape`` (un-broadcasting);  dx = dy broadcast back (``expand``)."""

    def forward(self, x, shape):
        self.input_shape = x.shape
        lead = x.ndim - len(shape)
        axes = tuple(range(lead)) + tuple(lead + i for i, s in enumerate(shape) if s == 1 and x.shape[lead + i] != 1)
        return sum_array(x, axes, keepdims=True).reshape(shape) if axes else x.reshape(shape)

    def backward(self, grad):
        return expand(grad, self.input_shape)


def expand(x, *sizes):
    """Broadcast to ``sizes`` (-1 keeps a dimension), as ``torch.Tensor.expand``."""
    sizes = _sizes("expand", sizes)
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: cannot expand shape {x.shape} to fewer dims {sizes}")
    shape = tuple(x.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    if any(x.shape[i] not in (1, shape[lead + i]) for i in range(x.ndim)):
        raise ValueError(f"expand: shape {x.shape} cannot be expanded to {sizes}")
    return x if shape == x.shape else Expand.apply(x, shape=shape)


broadcast_to = expand


def broadcast_back(grad, kept, shape):
    """``expand(reshape(grad, kept), shape)`` for a reduction's gradient: ``kept`` is the reduced
    shape with its axes kept as 1s, so both steps are valid by construction and skip the checks
    that user calls go through (each one a few microseconds, on every reduction's backward)."""
    if grad.shape != kept:
        grad = Reshape.apply(grad, shape=kept)
    return grad if kept == shape else Expand.apply(grad, shape=shape)


def expand_as(x, other):
    return expand(x, other.shape)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape``, the adjoint of broadcasting (how gradients are un-broadcast)."""
    shape = tuple(shape)
    if x.shape == shape:
        return x
    if backend.broadcast_shape(shape, x.shape) != x.shape:
        raise ValueError(f"sum_to: shape {x.shape} does not reduce to {shape}")
    return SumTo.apply(x, shape=shape)


# ---- indexing and its adjoint -------------------------------------------------------------------
def raw_index(index):
    """A user's index with Tensors replaced by their arrays (and lists by integer arrays)."""
    items = index if isinstance(index, tuple) else (index,)
    converted = tuple(i.data if isinstance(i, Tensor) else (np.asarray(i) if isinstance(i, list) else i)
                      for i in items)
    return converted if isinstance(index, tuple) else converted[0]


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(isinstance(i, (numbers.Integral, slice, type(None), type(Ellipsis))) for i in items)


def _adds_rows(x, index, out):
    """Whether ``out[index] += x`` adds whole rows of floating ``out``: one integer index array into
    its first axis, ``x`` of the indexed shape (``kernels.scatter.add_rows``' contract)."""
    return (isinstance(index, np.ndarray) and index.dtype.kind in "iu" and out.dtype.kind == "f"
            and x.dtype == out.dtype and x.shape == index.shape + out.shape[1:])


class Index(Function):
    """y = x[index] (ints, slices, None, ..., integer or boolean arrays);
    dx = zeros with dy added at the same positions (``index_add``: repeated indices sum)."""

    def forward(self, x, index):
        self.input_shape, self.index = x.shape, index
        return x[index]

    def backward(self, grad):
        return index_add(grad, self.input_shape, self.index)


class IndexAdd(Function):
    """y = zeros(shape) with x added at ``index`` (scatter-add);  dx = dy[index]."""

    def forward(self, x, shape, index):
        self.index = index
        xp = backend.get_array_module(x)
        out = xp.zeros(shape, dtype=x.dtype)
        if _is_basic(index):
            out[index] = x  # positions are distinct: plain assignment is the fast path
        elif xp is np and _adds_rows(x, index, out):  # an embedding's gradient: rows added in one loop
            from ..kernels.scatter import add_rows  # Numba: imported on first use
            add_rows(out, index, x)                 # = np.add.at, bit for bit, many times faster
        elif xp is np:
            np.add.at(out, index, x)
        else:
            import cupyx
            cupyx.scatter_add(out, index, x)
        return out

    def backward(self, grad):
        return Index.apply(grad, index=self.index)


def getitem(x, index):
    index = raw_index(index)
    items = index if isinstance(index, tuple) else (index,)
    for item in items:
        if hasattr(item, "dtype") and item.dtype.kind not in "biu":
            raise IndexError(f"getitem: tensors used as indices must be integer or bool, got {item.dtype}")
    try:
        return Index.apply(x, index=index)
    except IndexError as error:
        raise IndexError(f"getitem: {error} (tensor of shape {x.shape})") from None


def index_add(x, shape, index):
    return IndexAdd.apply(x, shape=tuple(shape), index=index)


def gather(x, dim, index):
    """out[i][j][k] = x[i][index[i][j][k]][k] for dim=1, as ``torch.gather`` (through ``getitem``)."""
    dim = normalize_dim("gather", dim, x.ndim)
    index = index.data if isinstance(index, Tensor) else index
    if index.ndim != x.ndim:
        raise ValueError(f"gather: expected index with {x.ndim} dims, got shape {tuple(index.shape)}")
    return getitem(x, _positions_along(x.xp, dim, index))


def _positions_along(xp, dim, index):
    """The full index tuple that reads ``index`` along ``dim`` and every other dim in order
    (gather's and scatter_add's positions: [i, index[i, j, k], k] for dim=1)."""
    grids = list(xp.meshgrid(*[xp.arange(s) for s in index.shape], indexing="ij"))
    grids[dim] = index
    return tuple(grids)


# ---- joining and splitting ----------------------------------------------------------------------
class Cat(Function):
    """y = the inputs joined along ``dim``;  each dx is its slice of dy."""

    def forward(self, *arrays, dim):
        self.dim, self.sizes = dim, [a.shape[dim] for a in arrays]
        return backend.get_array_module(arrays[0]).concatenate(arrays, axis=dim)

    def backward(self, grad):
        bounds = np.cumsum([0] + self.sizes)
        lead = (slice(None),) * self.dim
        return tuple(getitem(grad, lead + (slice(start, stop),)) if needed else None
                     for start, stop, needed in zip(bounds[:-1], bounds[1:], self.needs_input_grad))


def cat(tensors, dim=0):
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty list of tensors")
    first = tensors[0]
    dim = normalize_dim("cat", dim, first.ndim)
    for i, t in enumerate(tensors):
        if t.ndim != first.ndim or t.shape[:dim] + t.shape[dim + 1:] != first.shape[:dim] + first.shape[dim + 1:]:
            raise ValueError(f"cat: tensor {i} has shape {t.shape}, expected {first.shape} "
                             f"except in dim {dim}")
    return Cat.apply(*_one_dtype_on_one_device("cat", tensors), dim=dim)


class Stack(Function):
    """y = the inputs stacked along a new axis ``dim``;  each dx is dy at its index of that axis."""

    def forward(self, *arrays, dim):
        self.dim = dim
        return backend.get_array_module(arrays[0]).stack(arrays, axis=dim)

    def backward(self, grad):
        lead = (slice(None),) * self.dim
        return tuple(getitem(grad, lead + (i,)) if needed else None
                     for i, needed in enumerate(self.needs_input_grad))


def stack(tensors, dim=0):
    """One node for the whole stack (not an unsqueeze per tensor and a cat: a fan-in of a thousand
    tensors would make a thousand and one graph nodes)."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty list of tensors")
    shape = tensors[0].data.shape  # (the arrays' shapes: ``Tensor.shape`` builds a tuple per call)
    for i, t in enumerate(tensors):
        if t.data.shape != shape:
            raise ValueError(f"stack: expected every tensor of shape {tensors[0].shape}, "
                             f"got {t.shape} at position {i}")
    dim = normalize_dim("stack", dim, tensors[0].ndim + 1)
    return Stack.apply(*_one_dtype_on_one_device("stack", tensors), dim=dim)


def _one_dtype_on_one_device(op, tensors):
    """``tensors`` cast to their promoted dtype, after checking that they share the first one's device."""
    dtype = tensors[0].data.dtype
    if all_host_arrays_of(dtype, tensors):
        return tensors  # the common case (a fan-in of a thousand tensors): nothing to check or cast
    first = tensors[0]
    for i, t in enumerate(tensors):
        if t.device != first.device:
            raise RuntimeError(f"{op}: expected all tensors on {first.device}, got tensor {i} on {t.device}")
    from .elementwise import cast
    dtype = backend.result_dtype(*[t.dtype for t in tensors])
    return [cast(t, dtype) for t in tensors]


def all_host_arrays_of(dtype, tensors):
    """Whether every tensor holds a NumPy array of ``dtype``."""
    for t in tensors:
        if type(t.data) is not np.ndarray or t.data.dtype != dtype:
            return False
    return True


def split(x, split_size_or_sections, dim=0):
    """Pieces of ``x`` along ``dim``: equal pieces of a given size (the last may be smaller), or
    the listed sizes — as ``torch.split``. Each piece is a slice, so its gradient is ``index_add``."""
    dim = normalize_dim("split", dim, x.ndim)
    length = x.shape[dim]
    if isinstance(split_size_or_sections, numbers.Integral):
        size = int(split_size_or_sections)
        sizes = [min(size, length - start) for start in range(0, length, size)] if size > 0 else []
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != length:
            raise ValueError(f"split: sections {sizes} do not sum to dim {dim}'s size {length}")
    bounds = list(itertools.accumulate(sizes, initial=0))  # (np.cumsum of a list costs microseconds)
    lead = (slice(None),) * dim
    return tuple(getitem(x, lead + (slice(int(a), int(b)),)) for a, b in zip(bounds[:-1], bounds[1:]))


def chunk(x, chunks, dim=0):
    length = x.shape[normalize_dim("chunk", dim, x.ndim)]
    return split(x, -(-length // chunks), dim)


def unbind(x, dim=0):
    dim = normalize_dim("unbind", dim, x.ndim)
    return tuple(getitem(x, (slice(None),) * dim + (i,)) for i in range(x.shape[dim]))


# ---- padding -------------------------------------------------------------------------------------
class Pad(Function):
    """y = x surrounded by ``value``;  dx = the interior slice of dy."""

    def forward(self, x, widths, value):
        self.interior = tuple(slice(before, before + size) for (before, _), size in zip(widths, x.shape))
        return backend.get_array_module(x).pad(x, widths, mode="constant", constant_values=value)

    def backward(self, grad):
        return getitem(grad, self.interior)


def pad(x, pad, mode="constant", value=0.0):
    """``torch.nn.functional.pad``: ``pad`` lists (before, after) pairs from the *last* dim backwards."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported; expected 'constant'")
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of at most {2 * x.ndim} sizes, got {pad}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding (cropping) is not supported, got {pad}")
    pairs = [(int(pad[i]), int(pad[i + 1])) for i in range(0, len(pad), 2)]
    widths = [(0, 0)] * (x.ndim - len(pairs)) + pairs[::-1]
    return Pad.apply(x, widths=tuple(widths), value=value)


# ---- devices -------------------------------------------------------------------------------------
class ToDevice(Function):
    """y = x copied to another device;  dx = dy copied back."""

    def forward(self, x, device):
        self.source = backend.device_of(x)
        return backend.to_device(x, device)

    def backward(self, grad):
        return to_device(grad, self.source)


def to_device(x, device):
    return x if x.device == device else ToDevice.apply(x, device=device)


# ---- PyTorch's copy, repeat, triangle, fill and scatter methods --------------------------------
class Clone(Function):
    """y = a copy of x (its own memory);  dx = dy."""

    def forward(self, x):
        return x.copy()

    def backward(self, grad):
        return grad


def clone(x):
    return Clone.apply(x)


def repeat(x, *sizes):
    """``torch.Tensor.repeat``: tile ``x`` ``sizes[d]`` times along each dim (leading new dims allowed).

    Written as view, expand, view: (s0, s1) -> (1, s0, 1, s1) -> (r0, s0, r1, s1) -> (r0 s0, r1 s1),
    so the gradient is expand's adjoint, ``sum_to``: each input element collects its copies' gradients."""
    sizes = _sizes("repeat", sizes)
    if len(sizes) < x.ndim or any(s < 0 for s in sizes):
        raise ValueError(f"repeat: expected at least {x.ndim} non-negative sizes (one per dim), got {sizes}")
    shape = (1,) * (len(sizes) - x.ndim) + x.shape
    interleaved = tuple(value for size in shape for value in (1, size))
    tiled = tuple(value for count, size in zip(sizes, shape) for value in (count, size))
    return reshape(expand(reshape(x, interleaved), tiled), tuple(c * s for c, s in zip(sizes, shape)))


def _triangle(op, x, diagonal, keep_lower):
    if x.ndim < 2:
        raise ValueError(f"{op}: expected a tensor with at least 2 dims, got shape {x.shape}")
    xp = x.xp
    rows, cols = x.shape[-2:]
    ones = xp.ones((rows, cols), dtype=bool)
    keep = xp.tril(ones, diagonal) if keep_lower else xp.triu(ones, diagonal)
    from .elementwise import where
    return where(Tensor(keep), x, 0)


def tril(x, diagonal=0):
    """The lower triangle of the last two dims (j - i <= diagonal), zeros above: ``torch.tril``."""
    return _triangle("tril", x, diagonal, keep_lower=True)


def triu(x, diagonal=0):
    """The upper triangle of the last two dims (j - i >= diagonal), zeros below: ``torch.triu``."""
    return _triangle("triu", x, diagonal, keep_lower=False)


def masked_fill(x, mask, value):
    """``value`` where ``mask`` (broadcast to x's shape) holds, x elsewhere: ``where(mask, value, x)``."""
    mask = mask.data if isinstance(mask, Tensor) else mask
    if getattr(mask, "dtype", None) != np.bool_:
        got = getattr(mask, "dtype", type(mask).__name__)
        raise TypeError(f"masked_fill: expected a bool mask, got {got}")
    from .elementwise import where
    out = where(mask, value, x)
    if out.shape != x.shape:
        raise ValueError(f"masked_fill: mask of shape {tuple(mask.shape)} does not broadcast to {x.shape}")
    return out


def scatter_add(x, dim, index, src):
    """out = x, then out[index[i][j]][j] += src[i][j] for dim=0 (``torch.Tensor.scatter_add``).

    The addition is ``index_add`` of src's leading ``index.shape`` block at the positions of
    ``gather``, so d(src) = gather(d(out), dim, index) and d(x) = d(out)."""
    dim = normalize_dim("scatter_add", dim, x.ndim)
    index = index.data if isinstance(index, Tensor) else index
    if index.ndim != x.ndim or src.ndim != x.ndim or any(i > s for i, s in zip(index.shape, src.shape)):
        raise ValueError(f"scatter_add: expected index with {x.ndim} dims, no larger than src {src.shape}, "
                         f"got {tuple(index.shape)}")
    block = src if src.shape == tuple(index.shape) else getitem(src, tuple(slice(0, s) for s in index.shape))
    return x + index_add(block, x.shape, _positions_along(x.xp, dim, index))
