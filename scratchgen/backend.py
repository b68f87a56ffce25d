"""Array-module dispatch, devices and the dtype policy.

Every array in scratchgen is either a NumPy array (device ``"cpu"``) or a CuPy array (device
``"cuda"``). Code that must run on both asks ``get_array_module(array)`` for ``xp`` and writes
``xp.exp(...)`` once — Chainer's approach. CuPy is imported only when a CUDA device is asked for,
so CPU-only machines never need it.
"""
import numpy as np

DEFAULT_DTYPE = np.dtype(np.float32)
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))

_DTYPE_NAMES = {"float16": np.float16, "half": np.float16, "float32": np.float32, "float": np.float32,
                "float64": np.float64, "double": np.float64, "int32": np.int32, "int64": np.int64,
                "long": np.int64, "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}


def cupy_or_none():
    """The ``cupy`` module, or None when it is not installed."""
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def is_cupy_array(array):
    kind = type(array)
    return kind is not np.ndarray and kind.__module__.startswith("cupy")  # asked on every op: NumPy first


def get_array_module(*arrays):
    """``cupy`` if any argument is a CuPy array, else ``numpy``."""
    for array in arrays:
        if is_cupy_array(array):
            return cupy_or_none()
    return np


class Device:
    """Where a tensor's array lives: ``Device("cpu")`` or ``Device("cuda")`` / ``"cuda:1"``."""

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu"):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        kind, _, index = str(spec).partition(":")
        if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
            raise ValueError(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {spec!r}")
        self.type = kind
        self.index = int(index) if index else (0 if kind == "cuda" else None)

    def __eq__(self, other):
        if not isinstance(other, Device):
            try:
                other = Device(other)
            except (ValueError, TypeError):
                return NotImplemented
        return self.type == other.type and self.index == other.index

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device('{self}')"


CPU = Device("cpu")


def device_of(array):
    if is_cupy_array(array):
        return Device(f"cuda:{array.device.id}")
    return CPU  # one shared object: asked for on every op, so not parsed afresh each time


def broadcast_shape(a, b):
    """The shape that shapes ``a`` and ``b`` broadcast to (NumPy's rule: aligned from the right,
    each pair equal or one of them 1), or None when they do not. ``np.broadcast_shapes`` gives the
    same, for about a microsecond more per call, which every broadcasting op pays."""
    if len(a) < len(b):
        a, b = b, a
    lead = len(a) - len(b)
    out = list(a[:lead])
    for m, n in zip(a[lead:], b):
        if m != n and m != 1 and n != 1:
            return None
        out.append(n if m == 1 else m)
    return tuple(out)


def require_cupy(purpose):
    """Import CuPy for ``purpose`` or say exactly why it cannot be used and how to fix it."""
    cupy = cupy_or_none()
    if cupy is None:
        raise RuntimeError(f"{purpose}: the 'cuda' device needs CuPy, which is not installed; "
                           "install the GPU extra: pip install 'scratchgen[gpu]' (see README, GPU)")
    fix = ("check that `nvidia-smi` lists a GPU, that CUDA_VISIBLE_DEVICES does not hide it and that the "
           "cupy-cuda12x / cupy-cuda13x wheel matches the driver's CUDA version; or use device='cpu'")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own CUDARuntimeError subclasses
        raise RuntimeError(f"{purpose}: CuPy is installed but no CUDA GPU is usable ({error}); {fix}") \
            from error
    if count == 0:
        raise RuntimeError(f"{purpose}: CuPy is installed but no CUDA GPU is visible; {fix}")
    return cupy


def to_device(array, device):
    """Copy ``array`` to ``device`` (no copy when it is already there)."""
    if type(array) is np.ndarray and (device is CPU or device == "cpu"):  # every draw asks: no parsing
        return array
    device = Device(device)
    if device.type == "cpu":
        return array.get() if is_cupy_array(array) else array
    cupy = require_cupy(f"to('{device}')")
    with cupy.cuda.Device(device.index):
        return cupy.asarray(array)


def as_dtype(dtype):
    """Normalise a dtype given as a NumPy dtype, a type, or a name such as ``"float32"``."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        if dtype not in _DTYPE_NAMES:
            raise TypeError(f"dtype: unknown name {dtype!r}; expected one of {sorted(_DTYPE_NAMES)}")
        return np.dtype(_DTYPE_NAMES[dtype])
    return np.dtype(getattr(dtype, "numpy_dtype", dtype))


def is_floating(dtype):
    return np.dtype(dtype).kind == "f"


def result_dtype(*dtypes):
    """PyTorch's promotion for tensor-tensor operations: the wider float wins; ints go to float
    only when a float takes part; bool and int give int64."""
    if len(set(dtypes)) == 1:
        return np.dtype(dtypes[0])  # the common case, in every op: nothing to promote
    dtypes = [np.dtype(d) for d in dtypes]
    floats = [d for d in dtypes if d.kind == "f"]
    if floats:
        return max(floats, key=lambda d: d.itemsize)
    return np.result_type(*dtypes)


def scalar_dtype(tensor_dtype, scalar):
    """Dtype of ``tensor <op> python_scalar``: the tensor's dtype wins, except that a float scalar
    with an integer or bool tensor gives the default float dtype (as in PyTorch)."""
    tensor_dtype = np.dtype(tensor_dtype)
    if isinstance(scalar, float) and tensor_dtype.kind != "f":
        return DEFAULT_DTYPE
    if isinstance(scalar, (int, np.integer)) and not isinstance(scalar, bool) and tensor_dtype.kind == "b":
        return np.dtype(np.int64)
    return tensor_dtype
