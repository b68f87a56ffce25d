"""``Tensor``: an array (NumPy or CuPy) plus what autograd needs, and the creation functions.

A tensor is a *leaf* when it has no ``creator`` (data, parameters); otherwise ``creator`` is the
``Function`` node that produced it and ``index`` which of that node's outputs it is. Gradients
of leaves that ``requires_grad`` accumulate in ``.grad`` with ``+`` (micrograd's rule: a value
used twice gets the sum of both contributions).

The methods here only translate PyTorch's vocabulary into calls of the ops in ``scratchgen.ops``;
the math lives there.
"""
import numbers

import numpy as np

from . import backend
from .autograd import _root_gradients, is_grad_enabled, no_grad, run_backward
from .backend import DEFAULT_DTYPE, Device, as_dtype, device_of, get_array_module


class Tensor:
    # _version counts in-place writes (setitem, init, optimizer steps, load_state_dict): an op that
    # saved this tensor for backward checks it there, so a write in between is an error, not a
    # silently wrong gradient (as PyTorch's version counter); _view_of is the leaf whose array an
    # op's output views (weight.mT), so a write into the leaf is seen through the view too;
    # _grad_home (set by optim.FlatParameters only) is where this leaf's gradient is kept
    __slots__ = ("data", "grad", "_requires_grad", "creator", "index", "name", "_hooks", "_version",
                 "_view_of", "_grad_home", "__weakref__")
    __array_priority__ = 1000  # make `ndarray + Tensor` call Tensor.__radd__
    # NumPy's ufuncs refuse Tensors (np.exp(t) raises; ndarray + t defers to Tensor.__radd__), so an
    # object array of Tensors is never built; np.asarray(t) goes through __array__ instead
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False):
        if isinstance(data, Tensor):
            data = data.data
        self.data = data if type(data) is np.ndarray or hasattr(data, "__array_interface__") \
            or backend.is_cupy_array(data) else np.asarray(data)  # (hasattr builds the interface: slow)
        self.grad = None
        self.creator = None
        self.index = 0
        self.name = None
        self._hooks = None
        self._version, self._view_of, self._grad_home = 0, None, None
        self._requires_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _from_node(cls, data, creator=None, index=0):
        """Wrap an op's output array; ``creator`` None makes a constant (no graph)."""
        tensor = cls.__new__(cls)
        tensor.data, tensor.grad, tensor.name, tensor._hooks = data, None, None, None
        tensor.creator, tensor.index, tensor._version, tensor._view_of = creator, index, 0, None
        tensor._requires_grad = creator is not None
        return tensor

    # ---- autograd --------------------------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag):
        if flag and not backend.is_floating(self.dtype):
            raise RuntimeError(f"requires_grad: only floating-point tensors can require gradients, "
                               f"got dtype {self.dtype}")
        if not flag and self.creator is not None:
            raise RuntimeError("requires_grad: cannot turn it off on a tensor computed by an op; "
                               "use .detach()")
        self._requires_grad = bool(flag)

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        return self.creator is None

    def backward(self, gradient=None, retain_graph=False, create_graph=False):
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` (``gradient`` seeds non-scalars)."""
        seeds = _root_gradients([self], None if gradient is None else [gradient], "backward")
        run_backward([self], seeds, retain_graph=retain_graph or create_graph, create_graph=create_graph)

    def _accumulate_grad(self, grad):
        """``.grad += grad``. A first-order gradient of a leaf laid out by ``optim.FlatParameters``
        goes into its home, its slice of the flat gradient buffer: copied there when ``.grad`` is
        None, added in place when ``.grad`` already is that slice (as PyTorch accumulates), so the
        buffer holds every gradient and the optimizer has nothing to gather. Elsewhere a fresh array."""
        if is_grad_enabled():  # create_graph=True: keep the sum differentiable
            self.grad = grad if self.grad is None else self.grad + grad
            return
        home = self._gradient_home(grad.data)
        if self.grad is None:  # copy: the incoming array may be shared or a read-only view
            if home is None:
                self.grad = Tensor(grad.data.copy())
            else:
                home[...] = grad.data
                self.grad = Tensor(home)
        elif home is not None and self.grad.data is home:
            home += grad.data
        else:
            self.grad = Tensor(self.grad.data + grad.data)

    def _gradient_home(self, array):
        """The flat-buffer slice this leaf's gradient lives in, when ``array`` fits it (the leaf may
        have been moved, cast or rebound since it was laid out: then there is none)."""
        home = getattr(self, "_grad_home", None)  # (unset on a leaf made by _from_node, e.g. detach())
        if home is None or type(home) is not type(array) or home.dtype != array.dtype or home.shape != array.shape:
            return None
        return home

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor._from_node(self.data)

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces
        the gradient. Returns a handle whose ``remove()`` unregisters it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: the tensor does not require grad")
        if self.creator is None:
            self._hooks = hooks = self._hooks or []
        else:
            hooks = self.creator.__dict__.setdefault("output_hooks", {}).setdefault(self.index, [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in ``.grad`` after backward (a hook that stores it)."""
        if self.creator is not None:
            def store(grad):
                self.grad = grad if self.grad is None else self.grad + grad
            self.register_hook(store)

    # ---- properties ------------------------------------------------------------------------------
    shape = property(lambda self: tuple(self.data.shape))
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    device = property(lambda self: device_of(self.data))

    def size(self, dim=None):
        """The shape (as PyTorch's ``size()``), or one dimension's length."""
        return self.shape if dim is None else self.shape[dim]

    def numel(self):
        return int(self.data.size)

    def dim(self):
        return self.data.ndim

    @property
    def xp(self):
        return get_array_module(self.data)

    @property
    def T(self):
        return _ops.shape.reverse_axes(self)

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self):
        body = np.array2string(backend.to_device(self.data, "cpu"), separator=", ", precision=4, threshold=50,
                               prefix="tensor(")
        extras = [] if self.dtype == DEFAULT_DTYPE or self.dtype.kind != "f" else [f"dtype={self.dtype}"]
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self.creator is not None:
            extras.append(f"grad_fn=<{self.creator.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"tensor({', '.join([body] + extras)})"

    # ---- conversion ------------------------------------------------------------------------------
    def numpy(self):
        """The data as a NumPy array (shared, not copied, on the CPU)."""
        if backend.is_cupy_array(self.data):
            raise TypeError("numpy(): tensor is on a CUDA device; call .cpu() first")
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): expected a tensor with one element, got shape {self.shape}")
        return self.data.reshape(-1)[0].item()

    def tolist(self):
        return backend.to_device(self.data, "cpu").tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"bool(): truth value of a tensor with {self.data.size} elements is "
                               "ambiguous; use .any() or .all()")
        return bool(self.item())

    __hash__ = object.__hash__

    def to(self, *args, dtype=None, device=None):
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or keywords, as in PyTorch."""
        for arg in args:
            if isinstance(arg, (str, Device)) and not _is_dtype_name(arg):
                device = arg
            else:
                dtype = arg
        out = self
        if device is not None and Device(device) != self.device:
            out = _ops.shape.to_device(out, Device(device))
        if dtype is not None and as_dtype(dtype) != out.dtype:
            out = _ops.elementwise.cast(out, as_dtype(dtype))
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else f"cuda:{device}")

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def long(self):
        return self.to(np.int64)

    def int(self):
        return self.to(np.int32)

    def bool(self):
        return self.to(np.bool_)

    def type_as(self, other):
        return self.to(other.dtype)

    # ---- arithmetic (math in scratchgen.ops.elementwise) ----------------------------------------
    def __add__(self, other):
        return _ops.elementwise.add(self, other)

    def __radd__(self, other):
        return _ops.elementwise.add(other, self)

    def __sub__(self, other):
        return _ops.elementwise.sub(self, other)

    def __rsub__(self, other):
        return _ops.elementwise.sub(other, self)

    def __mul__(self, other):
        return _ops.elementwise.mul(self, other)

    def __rmul__(self, other):
        return _ops.elementwise.mul(other, self)

    def __truediv__(self, other):
        return _ops.elementwise.div(self, other)

    def __rtruediv__(self, other):
        return _ops.elementwise.div(other, self)

    def __pow__(self, other):
        return _ops.elementwise.pow(self, other)

    def __rpow__(self, other):
        return _ops.elementwise.pow(other, self)

    def __neg__(self):
        return _ops.elementwise.neg(self)

    def __abs__(self):
        return _ops.elementwise.abs(self)

    def __matmul__(self, other):
        return _ops.linalg.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.linalg.matmul(other, self)

    def __eq__(self, other):
        return _ops.elementwise.compare("eq", self, other)

    def __ne__(self, other):
        return _ops.elementwise.compare("ne", self, other)

    def __lt__(self, other):
        return _ops.elementwise.compare("lt", self, other)

    def __le__(self, other):
        return _ops.elementwise.compare("le", self, other)

    def __gt__(self, other):
        return _ops.elementwise.compare("gt", self, other)

    def __ge__(self, other):
        return _ops.elementwise.compare("ge", self, other)

    def __invert__(self):
        if self.dtype != np.bool_:
            raise TypeError(f"~: expected a bool tensor, got dtype {self.dtype}")
        return Tensor(~self.data)

    def __and__(self, other):
        return _ops.elementwise.compare("and", self, other)

    def __or__(self, other):
        return _ops.elementwise.compare("or", self, other)

    def __getitem__(self, index):
        return _ops.shape.getitem(self, index)

    def __setitem__(self, index, value):
        if self.requires_grad:
            raise RuntimeError("setitem: in-place assignment into a tensor that requires grad would "
                               "corrupt its gradient; build a new tensor (e.g. with where or cat)")
        self.data[_ops.shape.raw_index(index)] = value.data if isinstance(value, Tensor) else value
        self._version += 1

    # ---- the ops as methods, as in PyTorch (``x.sum(dim=1)``, ``x.reshape(2, 3)``) ----------------
    # Each one calls the function of the same name in scratchgen.ops; the Functions live there.
    # element-wise (scratchgen/ops/elementwise.py)
    def exp(self):
        return _ops.elementwise.exp(self)

    def log(self):
        return _ops.elementwise.log(self)

    def sqrt(self):
        return _ops.elementwise.sqrt(self)

    def abs(self):  # noqa: A003 (PyTorch's name)
        return _ops.elementwise.abs(self)

    def erf(self):
        return _ops.elementwise.erf(self)

    def clamp(self, min=None, max=None):
        return _ops.elementwise.clamp(self, min, max)

    def clip(self, min=None, max=None):
        return _ops.elementwise.clip(self, min, max)

    def maximum(self, other):
        return _ops.elementwise.maximum(self, other)

    def minimum(self, other):
        return _ops.elementwise.minimum(self, other)

    def relu(self):
        return _ops.elementwise.relu(self)

    def sigmoid(self):
        return _ops.elementwise.sigmoid(self)

    def tanh(self):
        return _ops.elementwise.tanh(self)

    def softplus(self, beta=1.0, threshold=20.0):
        return _ops.elementwise.softplus(self, beta, threshold)

    def pow(self, other):  # noqa: A003 (PyTorch's name)
        return _ops.elementwise.pow(self, other)

    def isfinite(self):
        return _ops.elementwise.isfinite(self)

    def isnan(self):
        return _ops.elementwise.isnan(self)

    def sign(self):
        return _ops.elementwise.sign(self)

    def any(self, dim=None, keepdim=False):  # noqa: A003 (PyTorch's name)
        return _ops.elementwise.any(self, dim, keepdim)

    def all(self, dim=None, keepdim=False):  # noqa: A003 (PyTorch's name)
        return _ops.elementwise.all(self, dim, keepdim)

    def neg(self):
        return _ops.elementwise.neg(self)

    # reductions (scratchgen/ops/reduction.py)
    def sum(self, dim=None, keepdim=False, dtype=None):  # noqa: A003 (PyTorch's name)
        return _ops.reduction.sum(self, dim, keepdim, dtype)

    def mean(self, dim=None, keepdim=False):
        return _ops.reduction.mean(self, dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, correction=None):
        return _ops.reduction.var(self, dim, unbiased, keepdim, correction)

    def std(self, dim=None, unbiased=None, keepdim=False, correction=None):
        return _ops.reduction.std(self, dim, unbiased, keepdim, correction)

    def amax(self, dim=None, keepdim=False):
        return _ops.reduction.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return _ops.reduction.amin(self, dim, keepdim)

    def max(self, dim=None, keepdim=False):  # noqa: A003 (PyTorch's name)
        return _ops.reduction.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):  # noqa: A003 (PyTorch's name)
        return _ops.reduction.min(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return _ops.reduction.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return _ops.reduction.argmin(self, dim, keepdim)

    def logsumexp(self, dim, keepdim=False):
        return _ops.reduction.logsumexp(self, dim, keepdim)

    def softmax(self, dim=-1):
        return _ops.reduction.softmax(self, dim)

    def log_softmax(self, dim=-1):
        return _ops.reduction.log_softmax(self, dim)

    # shapes (scratchgen/ops/shape.py)
    def reshape(self, *shape):
        return _ops.shape.reshape(self, *shape)

    def view(self, *shape):
        return _ops.shape.view(self, *shape)

    def flatten(self, start_dim=0, end_dim=-1):
        return _ops.shape.flatten(self, start_dim, end_dim)

    def permute(self, *dims):
        return _ops.shape.permute(self, *dims)

    def transpose(self, dim0, dim1):
        return _ops.shape.transpose(self, dim0, dim1)

    def t(self):
        return _ops.shape.t(self)

    def squeeze(self, dim=None):
        return _ops.shape.squeeze(self, dim)

    def unsqueeze(self, dim):
        return _ops.shape.unsqueeze(self, dim)

    def expand(self, *sizes):
        return _ops.shape.expand(self, *sizes)

    def expand_as(self, other):
        return _ops.shape.expand_as(self, other)

    def broadcast_to(self, *sizes):
        return _ops.shape.broadcast_to(self, *sizes)

    def split(self, split_size_or_sections, dim=0):
        return _ops.shape.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return _ops.shape.chunk(self, chunks, dim)

    def unbind(self, dim=0):
        return _ops.shape.unbind(self, dim)

    def gather(self, dim, index):
        return _ops.shape.gather(self, dim, index)

    def sum_to(self, shape):
        return _ops.shape.sum_to(self, shape)

    # linear algebra (scratchgen/ops/linalg.py)
    def matmul(self, other):
        return _ops.linalg.matmul(self, other)

    # ---- PyTorch's remaining everyday methods (compositions of the ops above, in scratchgen.ops) ----
    def clone(self):
        return _ops.shape.clone(self)

    def contiguous(self):
        """Itself when its array is C-contiguous, else a contiguous copy (NumPy's strides are handled
        by every op, so this matters only to code that hands ``.data`` to a kernel)."""
        return self if self.data.flags.c_contiguous else _ops.shape.clone(self)

    def masked_fill(self, mask, value):
        return _ops.shape.masked_fill(self, mask, value)

    def repeat(self, *sizes):
        return _ops.shape.repeat(self, *sizes)

    def tril(self, diagonal=0):
        return _ops.shape.tril(self, diagonal)

    def triu(self, diagonal=0):
        return _ops.shape.triu(self, diagonal)

    def where(self, condition, other):
        """``self`` where ``condition`` holds, else ``other`` (``torch.Tensor.where``)."""
        return _ops.elementwise.where(condition, self, other)

    def scatter_add(self, dim, index, src):
        return _ops.shape.scatter_add(self, dim, index, src)

    # ---- in place: each write bumps _version, so a backward that saved this tensor raises ----------
    def zero_(self):
        return self._write_in_place("zero_", 0)

    def fill_(self, value):
        return self._write_in_place("fill_", value.data if isinstance(value, Tensor) else value)

    def copy_(self, src):
        source = src.data if isinstance(src, Tensor) else src
        if hasattr(source, "dtype"):
            source = backend.to_device(source, self.device)
        return self._write_in_place("copy_", source)

    def add_(self, other, alpha=1):
        other = other.data if isinstance(other, Tensor) else other
        return self._write_in_place("add_", self.data + (other if alpha == 1 else other * alpha))

    def sub_(self, other, alpha=1):
        other = other.data if isinstance(other, Tensor) else other
        return self._write_in_place("sub_", self.data - (other if alpha == 1 else other * alpha))

    def mul_(self, other):
        return self._write_in_place("mul_", self.data * (other.data if isinstance(other, Tensor) else other))

    def div_(self, other):
        return self._write_in_place("div_", self.data / (other.data if isinstance(other, Tensor) else other))

    def clamp_(self, min=None, max=None):  # noqa: A002 (PyTorch's names)
        if min is None and max is None:
            raise ValueError("clamp_: expected at least one of min and max")
        return self._write_in_place("clamp_", self.xp.clip(self.data, min, max))

    def _write_in_place(self, op, values):
        """The one door of the in-place methods: refuse what would corrupt a gradient, write, count."""
        if self.requires_grad and (self.creator is not None or is_grad_enabled()):
            raise RuntimeError(f"{op}: in-place write into a tensor that requires grad "
                               f"({'computed by ' + self.creator.name if self.creator else 'a leaf'}) while "
                               "gradients are recorded would corrupt its gradient; write under "
                               "scratchgen.no_grad() (a parameter update) or build a new tensor (x = x + y)")
        self.data[...] = values
        self._version += 1
        return self

    # ---- interop: NumPy's __array__ protocol and DLPack (zero copies where the memory allows) ------
    def __array__(self, dtype=None, copy=None):
        """``np.asarray(t)`` is the tensor's own array (no copy); NumPy 2's ``copy`` and ``dtype``
        are honoured (``copy=False`` with a dtype change is refused, as NumPy asks)."""
        if backend.is_cupy_array(self.data):
            raise TypeError("__array__: tensor is on a CUDA device; call .cpu() first (or use DLPack)")
        array = self.data
        if dtype is not None and np.dtype(dtype) != array.dtype:
            if copy is False:
                raise ValueError(f"__array__: copy=False, but dtype {np.dtype(dtype)} differs from the "
                                 f"tensor's {array.dtype}, which needs a copy")
            return array.astype(dtype)
        return array.copy() if copy else array

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """Export the array through DLPack (``torch.from_dlpack(t)``, ``np.from_dlpack(t)``,
        ``cupy.from_dlpack(t)`` share its memory); the keywords go to the array's own exporter."""
        options = {"stream": stream, "max_version": max_version, "dl_device": dl_device, "copy": copy}
        return self.data.__dlpack__(**{key: value for key, value in options.items() if value is not None})

    def __dlpack_device__(self):
        return self.data.__dlpack_device__()


class _HookHandle:
    def __init__(self, hooks, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self):
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _is_dtype_name(arg):
    try:
        as_dtype(arg)
        return True
    except TypeError:
        return False


# ---- creation ------------------------------------------------------------------------------------
def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf tensor copied from ``data`` (nested lists, scalars, NumPy/CuPy arrays, Tensors).

    Python floats become float32 (the default dtype), ints int64 and bools bool — as in PyTorch;
    arrays keep their dtype unless ``dtype`` says otherwise.
    """
    if isinstance(data, Tensor):
        data = data.data
    dtype = as_dtype(dtype)
    if dtype is None and not hasattr(data, "dtype"):
        inferred = np.asarray(data)
        dtype = DEFAULT_DTYPE if inferred.dtype.kind == "f" else inferred.dtype
    array = backend.to_device(data, device or (device_of(data) if hasattr(data, "dtype") else "cpu"))
    xp = get_array_module(array)
    array = xp.array(array, dtype=dtype, copy=True)
    return Tensor(array, requires_grad=requires_grad)


def _make(array, dtype, device, requires_grad):
    array = array.astype(as_dtype(dtype) or DEFAULT_DTYPE, copy=False)
    return Tensor(backend.to_device(array, device or "cpu"), requires_grad=requires_grad)


def _shape_of(size):
    """``size`` (ints, or one sequence of ints) as a tuple of non-negative Python ints. Every draw
    and every ``zeros`` passes here: ``type(s) is int`` is asked before the (slow) ABC check."""
    if len(size) == 1 and type(size[0]) is not int and not isinstance(size[0], numbers.Integral):
        size = tuple(size[0])
    shape = []
    for s in size:
        if (type(s) is not int and not isinstance(s, numbers.Integral)) or s < 0:
            raise ValueError(f"size: expected non-negative ints, got {size}")
        shape.append(int(s))
    return tuple(shape)


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.zeros(_shape_of(size)), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _make(np.ones(_shape_of(size)), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None and isinstance(fill_value, (bool, numbers.Integral)):
        dtype = np.bool_ if isinstance(fill_value, bool) else np.int64
    return _make(np.full(_shape_of((size,)), fill_value), dtype, device, requires_grad)


def _draw(method, arguments, dtype, device, requires_grad=False):
    """Numbers from the global generator through the ``RandomDraw`` op (so the compiler sees the draw);
    the op has no inputs, so its output is already a leaf."""
    drawn = _ops.random.RandomDraw.apply(method=method, arguments=arguments,
                                         dtype=as_dtype(dtype) or DEFAULT_DTYPE, device=device or "cpu")
    if requires_grad:
        drawn.requires_grad = True
    return drawn


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal samples from the global generator (``manual_seed`` makes them repeat)."""
    return _draw("standard_normal", (_shape_of(size),), dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform samples on [0, 1) from the global generator."""
    return _draw("random", (_shape_of(size),), dtype, device, requires_grad)


def randint(low, high, size, dtype=np.int64, device=None):
    return _draw("integers", (low, high, _shape_of((size,))), dtype, device)


def randperm(n, device=None):
    return _draw("permutation", (n,), np.int64, device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    values = np.arange(start, end, step)
    if dtype is None:
        dtype = DEFAULT_DTYPE if values.dtype.kind == "f" else np.int64
    return _make(values, dtype, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _make(np.linspace(start, end, steps), dtype, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _make(np.eye(n, m), dtype, device, requires_grad)


def _like(maker):
    def like(other, dtype=None, device=None, requires_grad=False, **kwargs):
        return maker(*other.shape, dtype=dtype or other.dtype, device=device or other.device,
                     requires_grad=requires_grad, **kwargs)
    like.__name__ = f"{maker.__name__}_like"
    like.__doc__ = f"``{maker.__name__}`` with the shape, dtype and device of ``other``."
    return like


zeros_like = _like(zeros)
ones_like = _like(ones)
randn_like = _like(randn)
rand_like = _like(rand)


def full_like(other, fill_value, dtype=None, device=None, requires_grad=False):
    return full(other.shape, fill_value, dtype=dtype or other.dtype, device=device or other.device,
                requires_grad=requires_grad)


def is_tensor(obj):
    return isinstance(obj, Tensor)


def from_numpy(array):
    """A tensor sharing ``array``'s memory: writes through either are seen by both (``torch.from_numpy``)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a NumPy array, got {type(array).__name__}")
    if array.dtype.hasobject:
        raise TypeError("from_numpy: expected a numeric NumPy array, got an object array")
    return Tensor(array)


def as_tensor(data, dtype=None, device=None):
    """``data`` as a tensor, sharing its memory when dtype and device already match (a Tensor is
    returned as it is), copying otherwise (``torch.as_tensor``)."""
    if isinstance(data, Tensor):
        return data.to(dtype=dtype, device=device)
    if isinstance(data, np.ndarray) or backend.is_cupy_array(data):
        same_dtype = dtype is None or as_dtype(dtype) == data.dtype
        same_device = device is None or Device(device) == device_of(data)
        if same_dtype and same_device:
            return Tensor(data)
    return tensor(data, dtype=dtype, device=device)


_DLPACK_CPU, _DLPACK_CUDA = 1, 2  # DLDeviceType codes of the DLPack standard


def from_dlpack(ext_tensor):
    """A tensor viewing the memory of any DLPack exporter (a torch tensor, a NumPy or CuPy array):
    ``torch.from_dlpack``'s counterpart; no copy is made."""
    if isinstance(ext_tensor, Tensor):
        return ext_tensor
    if not hasattr(ext_tensor, "__dlpack__") or not hasattr(ext_tensor, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ and __dlpack_device__, "
                        f"got {type(ext_tensor).__name__}")
    kind = int(ext_tensor.__dlpack_device__()[0])
    if kind == _DLPACK_CPU:
        return Tensor(np.from_dlpack(ext_tensor))
    if kind == _DLPACK_CUDA:
        import cupy
        return Tensor(cupy.from_dlpack(ext_tensor))
    raise TypeError(f"from_dlpack: expected memory on the CPU or a CUDA device, got DLPack device "
                    f"type {kind}")


__all__ = ["Tensor", "tensor", "zeros", "ones", "full", "randn", "rand", "randint", "randperm", "arange",
           "linspace", "eye", "zeros_like", "ones_like", "randn_like", "rand_like", "full_like",
           "is_tensor", "no_grad", "from_numpy", "as_tensor", "from_dlpack"]


from . import ops as _ops  # noqa: E402  (ops import Tensor, so they load after it)
