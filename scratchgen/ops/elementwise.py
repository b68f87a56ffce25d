"""Element-wise ops: arithmetic, unary math, comparisons, activations with a closed-form derivative.

Each ``Function`` keeps its forward and backward within a few lines of each other. Backward
formulas are written with Tensor ops, so they are differentiable again (``create_graph=True``).
Gradients may come out with the broadcast shape; the engine sums them back (``sum_to``).
"""
import math
import numbers

import numpy as np

from .. import backend
from ..autograd import Function
from .random import DropoutMask
from ..tensor import Tensor


# ---- operands: scalars, dtype promotion, devices, broadcasting ----------------------------------
HOST_ARRAYS = (np.ndarray, np.generic)  # what a CPU tensor holds (a reduction to 0-d gives a NumPy scalar)

def as_tensor_operand(value, like):
    """``value`` as a Tensor on ``like``'s device (Python scalars take ``like``'s dtype)."""
    if isinstance(value, Tensor):
        return value
    if type(value) in (float, int) or isinstance(value, (numbers.Number, np.bool_)):  # ABC check last: slow
        array = like.data
        dtype = array.dtype
        if type(value) is not float or dtype.kind != "f":  # a float with a float tensor: its dtype
            dtype = backend.scalar_dtype(dtype, value)
        xp = np if type(array) is np.ndarray else backend.get_array_module(array)
        return Tensor._from_node(xp.asarray(value, dtype=dtype))  # a constant
    return Tensor(backend.to_device(np.asarray(value) if not hasattr(value, "dtype") else value, like.device))


def binary_operands(op, a, b, elementwise=True):
    """Both operands as Tensors of one dtype (PyTorch's promotion), checked for device and, for
    element-wise ops, for broadcastable shapes."""
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError(f"{op}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
        a = as_tensor_operand(a, b)  # made on b's device
    elif not isinstance(b, Tensor):
        b = as_tensor_operand(b, a)
    a_data, b_data = a.data, b.data
    fits = a_data.shape == b_data.shape or not elementwise or not a_data.ndim or not b_data.ndim \
        or backend.broadcast_shape(a_data.shape, b_data.shape) is not None  # (a 0-d operand: anything)
    host = isinstance(a_data, HOST_ARRAYS) and isinstance(b_data, HOST_ARRAYS)
    if fits and host and a_data.dtype == b_data.dtype:
        return a, b  # the common case, in every op: one device, nothing to promote
    if a.device != b.device:
        raise RuntimeError(f"{op}: expected both tensors on one device, got {a.device} and {b.device}; "
                           "move one with .to(device)")
    if not fits:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} are not broadcastable")
    dtype = backend.result_dtype(a_data.dtype, b_data.dtype)
    return cast(a, dtype), cast(b, dtype)


class Cast(Function):
    """y = x as another dtype;  dx = dy cast back."""

    def forward(self, x, dtype):
        self.input_dtype = x.dtype
        return x.astype(dtype)

    def backward(self, grad):
        return cast(grad, self.input_dtype)


def cast(x, dtype):
    dtype = np.dtype(dtype)
    if x.dtype == dtype:
        return x
    if x.requires_grad and not backend.is_floating(dtype):
        return Tensor(x.data.astype(dtype))  # an integer copy carries no gradient (as in PyTorch)
    return Cast.apply(x, dtype=dtype)


# ---- arithmetic ----------------------------------------------------------------------------------
class Add(Function):
    """y = a + b;  da = dy, db = dy."""

    def forward(self, a, b):
        return a + b

    def backward(self, grad):
        return grad, grad


class Sub(Function):
    """y = a - b;  da = dy, db = -dy."""

    def forward(self, a, b):
        return a - b

    def backward(self, grad):
        return grad, -grad if self.needs_input_grad[1] else None


class Mul(Function):
    """y = a * b;  da = dy * b, db = dy * a."""

    def forward(self, a, b):
        self.save_for_backward(a, b)
        return a * b

    def backward(self, grad):
        a, b = self.saved_tensors
        return (grad * b if self.needs_input_grad[0] else None,
                grad * a if self.needs_input_grad[1] else None)


class Div(Function):
    """y = a / b;  da = dy / b, db = -dy * a / b**2 = -dy * y / b."""

    def forward(self, a, b):
        y = a / b
        self.save_for_backward(b, y)
        return y

    def backward(self, grad):
        b, y = self.saved_tensors
        return (grad / b if self.needs_input_grad[0] else None,
                -grad * y / b if self.needs_input_grad[1] else None)


class Neg(Function):
    """y = -x;  dx = -dy."""

    def forward(self, x):
        return -x

    def backward(self, grad):
        return -grad


class Pow(Function):
    """y = a ** b;  da = dy * b * a**(b-1), db = dy * y * log(a)."""

    def forward(self, a, b):
        y = a ** b
        self.save_for_backward(a, b, y)
        return y

    def backward(self, grad):
        a, b, y = self.saved_tensors
        grad_a = grad * b * a ** (b - 1) if self.needs_input_grad[0] else None
        grad_b = grad * y * log(a) if self.needs_input_grad[1] else None
        return grad_a, grad_b


# ---- per-channel affine map (the norm layers' weight and bias) and its adjoint ------------------
def _per_channel(vector, like):
    """A (C,) array repeated to broadcast over the trailing (C, *spatial) part of ``like`` (N, C, ...):
    NumPy then runs one long inner loop per sample instead of one of H*W values per channel
    (2-3x faster on 4x4 maps, measured)."""
    xp = backend.get_array_module(like)
    return xp.repeat(vector, math.prod(like.shape[2:]))


class ChannelAffine(Function):
    """y[n, c, ...] = x[n, c, ...] w[c] + b[c] (b optional), one op instead of a Mul and an Add.

        dx = dy w[c]  (ChannelAffine)     dw[c] = sum dy x  (ChannelDot)     db[c] = sum dy
    """

    def forward(self, x, weight, bias):
        self.save_for_backward(x, weight)
        flat = x.reshape(x.shape[0], math.prod(x.shape[1:]))
        y = flat * _per_channel(weight, x)
        if bias is not None:
            y += _per_channel(bias, x)
        return y.reshape(x.shape)

    def backward(self, grad):
        x, weight = self.saved_tensors
        need_x, need_weight, need_bias = self.needs_input_grad
        channel_axes = (0,) + tuple(range(2, grad.ndim))
        return (ChannelAffine.apply(grad, weight, None) if need_x else None,
                ChannelDot.apply(grad, x) if need_weight else None,
                grad.sum(dim=channel_axes) if need_bias else None)


class ChannelDot(Function):
    """y[c] = sum over n and positions of a[n, c, ...] b[n, c, ...]: ChannelAffine's weight gradient.

        da = u[c] b  (ChannelAffine)     db = u[c] a  (ChannelAffine)
    """

    def forward(self, a, b):
        self.save_for_backward(a, b)
        xp = backend.get_array_module(a)
        shape = (a.shape[0], a.shape[1], math.prod(a.shape[2:]))
        return xp.einsum("ncp,ncp->c", a.reshape(shape), b.reshape(shape))  # no (N, C, P) temporary

    def backward(self, upstream):
        a, b = self.saved_tensors
        need_a, need_b = self.needs_input_grad
        return (ChannelAffine.apply(b, upstream, None) if need_a else None,
                ChannelAffine.apply(a, upstream, None) if need_b else None)


def channel_affine(x, weight, bias=None):
    """x * weight[c] + bias[c] over the channel axis (dim 1) of x (N, C, ...), weight and bias (C,)."""
    return ChannelAffine.apply(x, weight, bias)


def add(a, b):
    return Add.apply(*binary_operands("add", a, b))


def sub(a, b):
    return Sub.apply(*binary_operands("sub", a, b))


def mul(a, b):
    return Mul.apply(*binary_operands("mul", a, b))


def div(a, b):
    a, b = binary_operands("div", a, b)
    if not backend.is_floating(a.dtype):  # true division of integers gives floats, as in PyTorch
        a, b = cast(a, backend.DEFAULT_DTYPE), cast(b, backend.DEFAULT_DTYPE)
    return Div.apply(a, b)


def neg(x):
    return Neg.apply(x)


def pow(a, b):  # noqa: A001 (PyTorch's name)
    return Pow.apply(*binary_operands("pow", a, b))


# ---- unary math ----------------------------------------------------------------------------------
class Exp(Function):
    """y = exp(x);  dx = dy * y."""

    def forward(self, x):
        y = backend.get_array_module(x).exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * y


class Log(Function):
    """y = log(x);  dx = dy / x."""

    def forward(self, x):
        self.save_for_backward(x)
        return backend.get_array_module(x).log(x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad / x


class Sqrt(Function):
    """y = sqrt(x);  dx = dy / (2 y)."""

    def forward(self, x):
        y = backend.get_array_module(x).sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad / (2 * y)


class Abs(Function):
    """y = |x|;  dx = dy * sign(x)  (0 at x = 0, as PyTorch)."""

    def forward(self, x):
        xp = backend.get_array_module(x)
        self.save_for_backward(xp.sign(x))
        return xp.abs(x)

    def backward(self, grad):
        (sign,) = self.saved_tensors
        return grad * sign


class Erf(Function):
    """y = erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt;  dx = dy * 2/sqrt(pi) * exp(-x^2)."""

    def forward(self, x):
        self.save_for_backward(x)
        if x.dtype == np.float32 and not backend.is_cupy_array(x):
            from ..kernels.special import erf_float32  # Numba: imported on first use
            return erf_float32(x)  # 10x faster than SciPy's here (see its module docstring)
        return special_function("erf", x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * (2 / math.sqrt(math.pi)) * exp(-x * x)


def exp(x):
    return Exp.apply(_float_input("exp", x))


def log(x):
    return Log.apply(_float_input("log", x))


def sqrt(x):
    return Sqrt.apply(_float_input("sqrt", x))


def abs(x):  # noqa: A001 (PyTorch's name)
    return Abs.apply(x)


def erf(x):
    return Erf.apply(_float_input("erf", x))


def _float_input(op, x):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: expected a Tensor, got {type(x).__name__}")
    return x if backend.is_floating(x.dtype) else cast(x, backend.DEFAULT_DTYPE)


# ---- piecewise ops (constant masks: their second derivative is zero almost everywhere) ----------
class Where(Function):
    """y = a where cond else b;  da = dy where cond else 0, db = dy where not cond else 0."""

    def forward(self, a, b, condition):
        self.condition = condition
        return backend.get_array_module(a).where(condition, a, b)

    def backward(self, grad):
        zero = Tensor(grad.xp.zeros((), dtype=grad.dtype))
        grad_a = Where.apply(grad, zero, condition=self.condition) if self.needs_input_grad[0] else None
        grad_b = Where.apply(zero, grad, condition=self.condition) if self.needs_input_grad[1] else None
        return grad_a, grad_b


class Clamp(Function):
    """y = min(max(x, low), high);  dx = dy where low <= x <= high else 0."""

    def forward(self, x, low, high):
        xp = backend.get_array_module(x)
        inside = xp.ones(x.shape, dtype=bool)
        if low is not None:
            inside &= x >= low
        if high is not None:
            inside &= x <= high
        self.inside = inside
        return xp.clip(x, low, high).astype(x.dtype, copy=False)

    def backward(self, grad):
        return where(Tensor(self.inside), grad, 0.0)


class Maximum(Function):
    """y = max(a, b);  the gradient goes to the larger input, split evenly on ties (PyTorch)."""

    def forward(self, a, b):
        xp = backend.get_array_module(a)
        self.share_a = ((a > b) + 0.5 * (a == b)).astype(xp.result_type(a, b))
        return xp.maximum(a, b)

    def backward(self, grad):
        share_a = Tensor(self.share_a)
        return grad * share_a, grad * (1 - share_a)


class Relu(Function):
    """y = max(x, 0);  dx = dy where x > 0 else 0."""

    def forward(self, x):
        self.positive = x > 0
        return backend.get_array_module(x).maximum(x, 0).astype(x.dtype, copy=False)

    def backward(self, grad):
        return where(Tensor(self.positive), grad, 0.0)


def where(condition, a, b):
    """``a`` where ``condition`` holds, else ``b`` (broadcasting all three)."""
    condition = condition.data if isinstance(condition, Tensor) else condition
    like = a if isinstance(a, Tensor) else b
    a, b = binary_operands("where", a if isinstance(a, Tensor) else as_tensor_operand(a, like),
                           b if isinstance(b, Tensor) else as_tensor_operand(b, like))
    if condition.dtype != np.bool_:
        raise TypeError(f"where: expected a bool condition, got dtype {condition.dtype}")
    operands = backend.broadcast_shape(a.data.shape, b.data.shape)  # (binary_operands checked it)
    if condition.shape != operands and backend.broadcast_shape(condition.shape, operands) is None:
        raise ValueError(f"where: condition {tuple(condition.shape)} does not broadcast with "
                         f"{a.shape} and {b.shape}")
    return Where.apply(a, b, condition=condition)


def clamp(x, min=None, max=None):  # noqa: A002 (PyTorch's names)
    if min is None and max is None:
        raise ValueError("clamp: expected at least one of min and max")
    return Clamp.apply(x, low=min, high=max)


clip = clamp


def maximum(a, b):
    return Maximum.apply(*binary_operands("maximum", a, b))


def minimum(a, b):
    """min(a, b) = -max(-a, -b): one derivative rule serves both."""
    a, b = binary_operands("minimum", a, b)
    return -maximum(-a, -b)


def relu(x):
    return Relu.apply(x)


# ---- smooth activations -------------------------------------------------------------------------
def special_function(name, x):
    """``scipy.special.<name>(x)`` (``cupyx.scipy.special`` for a CuPy array) in x's dtype."""
    if backend.is_cupy_array(x):
        from cupyx.scipy import special
    else:
        from scipy import special
    return getattr(special, name)(x).astype(x.dtype, copy=False)


class SigmoidOp(Function):
    """y = 1 / (1 + exp(-x));  dx = dy * y * (1 - y)."""

    def forward(self, x):
        # float32 on the CPU: one vectorised Numba loop, ~4x SciPy's expit, which goes through libm
        # element by element (kernels/special.py). Otherwise SciPy's expit: exact on both sides of 0
        # and never overflowing (written with exp, where and two divisions it cost 4x more).
        if x.dtype == np.float32 and not backend.is_cupy_array(x):
            from ..kernels.special import sigmoid_float32  # Numba: imported on first use
            y = sigmoid_float32(x)
        else:
            y = special_function("expit", x)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * y * (1 - y)


class TanhOp(Function):
    """y = tanh(x);  dx = dy * (1 - y^2)."""

    def forward(self, x):
        y = backend.get_array_module(x).tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved_tensors
        return grad * (1 - y * y)


class SoftplusOp(Function):
    """y = log(1 + exp(x)) (computed as logaddexp(0, x): no overflow);  dx = dy * sigmoid(x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return backend.get_array_module(x).logaddexp(0, x).astype(x.dtype, copy=False)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return grad * sigmoid(x)


def sigmoid(x):
    return SigmoidOp.apply(_float_input("sigmoid", x))


def tanh(x):
    return TanhOp.apply(_float_input("tanh", x))


def softplus(x, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta. Computed exactly for every x (PyTorch switches to the identity
    above ``threshold``; the two differ by less than exp(-threshold))."""
    if beta == 1.0:
        return SoftplusOp.apply(x)
    return SoftplusOp.apply(x * beta) / beta


# ---- SiLU and GELU: one op each way ---------------------------------------------------------------
# Written with the ops above, GELU took five forward passes over memory (divide, erf, add, two
# multiplies), each with a temporary, and as many backward; here the activation is one op and its
# gradient dy * f'(x) another, each one vectorised Numba loop for float32 on the CPU
# (kernels/special.py). float64 (gradient checks) and CuPy arrays take each class's ``reference``:
# the NumPy/CuPy formula the kernels are tested against.
GELU_CUBIC = 0.044715   # the tanh form's x^3 coefficient (Hendrycks & Gimpel)


def _kernel_or_reference(kernel, reference, *arrays):
    """``kernels.special.<kernel>(*arrays)`` when all are float32 NumPy arrays of one shape, else
    ``reference(*arrays)`` (NumPy or CuPy: it broadcasts, and keeps float64's accuracy)."""
    x = arrays[0]
    for a in arrays:  # (this module's ``all`` is the tensor op)
        if type(a) is not np.ndarray or a.dtype != np.float32 or a.shape != x.shape:
            return reference(*arrays)
    from ..kernels import special  # Numba: imported on first use
    return getattr(special, kernel)(*arrays)


class _ActivationGradient(Function):
    """dx = dy * f'(x) of a fused activation f, as one op (inputs x, dy). Its own backward makes
    second derivatives work (gradient penalties, gradgradcheck):

        d/d(dy) = g f'(x)          (this op again, with g in dy's place)
        d/dx    = g dy f''(x)      (``second_derivative``, written with differentiable ops)
    """

    kernel = None   # the float32 kernel's name in kernels/special.py

    def forward(self, x, grad):
        self.save_for_backward(x, grad)
        return _kernel_or_reference(self.kernel, self.reference, x, grad)

    def backward(self, g):
        x, grad = self.saved_tensors
        return (g * grad * self.second_derivative(x) if self.needs_input_grad[0] else None,
                type(self).apply(x, g) if self.needs_input_grad[1] else None)


class _FusedActivation(Function):
    """y = f(x) as one op; dx = ``gradient``(x, dy) = dy f'(x), one op too (see ``_ActivationGradient``)."""

    kernel = None     # the float32 kernel's name in kernels/special.py
    gradient = None   # the _ActivationGradient subclass for f

    def forward(self, x):
        self.save_for_backward(x)
        return _kernel_or_reference(self.kernel, self.reference, x)

    def backward(self, grad):
        (x,) = self.saved_tensors
        return self.gradient.apply(x, grad)


class SiLUBackward(_ActivationGradient):
    """dx = dy silu'(x),  silu'(x) = s (1 + x (1 - s)),  s = sigmoid(x)  (from (x s)' = s + x s (1 - s));
    silu''(x) = s (1 - s) (2 + x (1 - 2 s))."""

    kernel = "silu_grad_float32"

    @staticmethod
    def reference(x, grad):
        s = special_function("expit", x)
        return grad * (s * (1 + x * (1 - s)))

    @staticmethod
    def second_derivative(x):
        s = sigmoid(x)
        return s * (1 - s) * (2 + x * (1 - 2 * s))


class SiLU(_FusedActivation):
    """y = silu(x) = x sigmoid(x) (Elfwing et al.'s sigmoid-weighted linear unit, a.k.a. swish);
    dx = dy s (1 + x (1 - s)) by ``SiLUBackward``."""

    kernel, gradient = "silu_float32", SiLUBackward

    @staticmethod
    def reference(x):
        return x * special_function("expit", x)


class GELUBackward(_ActivationGradient):
    """dx = dy gelu'(x),  gelu'(x) = Phi(x) + x phi(x)  (phi = Phi', the standard normal density
    exp(-x^2/2) / sqrt(2 pi));  gelu''(x) = 2 phi(x) + x phi'(x) = phi(x) (2 - x^2)."""

    kernel = "gelu_grad_float32"

    @staticmethod
    def reference(x, grad):
        xp = backend.get_array_module(x)
        cdf = 0.5 * (1 + special_function("erf", x * math.sqrt(0.5)))
        density = xp.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))
        return grad * (cdf + x * density)

    @staticmethod
    def second_derivative(x):
        return exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi)) * (2 - x * x)


class GELU(_FusedActivation):
    """y = gelu(x) = x Phi(x),  Phi(x) = (1 + erf(x / sqrt 2)) / 2 the standard normal CDF
    (Hendrycks & Gimpel);  dx = dy (Phi(x) + x phi(x)) by ``GELUBackward``."""

    kernel, gradient = "gelu_float32", GELUBackward

    @staticmethod
    def reference(x):
        return 0.5 * x * (1 + special_function("erf", x * math.sqrt(0.5)))


def _gelu_tanh_inner(x):
    """(u, u') of the tanh form: u = sqrt(2/pi) (x + c x^3), u' = sqrt(2/pi) (1 + 3 c x^2), for arrays
    and Tensors alike."""
    scale = math.sqrt(2 / math.pi)
    return scale * (x + GELU_CUBIC * x * x * x), scale * (1 + 3 * GELU_CUBIC * x * x)


class GELUTanhBackward(_ActivationGradient):
    """dx = dy y'(x) of the tanh form y = x (1 + t) / 2, t = tanh(u(x)):
    y'(x) = (1 + t) / 2 + x (1 - t^2) u'(x) / 2;
    y''(x) = (1 - t^2) (u' + x (u'' - 2 t u'^2) / 2),  u'' = 6 c sqrt(2/pi) x."""

    kernel = "gelu_tanh_grad_float32"

    @staticmethod
    def reference(x, grad):
        u, slope = _gelu_tanh_inner(x)
        t = backend.get_array_module(x).tanh(u)
        return grad * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * slope)

    @staticmethod
    def second_derivative(x):
        u, slope = _gelu_tanh_inner(x)
        t = tanh(u)
        # 1 - t^2 = (1 - t)(1 + t) = 4 sigmoid(-2u) sigmoid(2u): keeps its relative accuracy where t
        # saturates, which 1 - t * t loses to the rounding of a float32 t near +-1 (1e-3 at x = 4)
        saturation = 4 * sigmoid(-2 * u) * sigmoid(2 * u)
        curvature = x * (6 * GELU_CUBIC * math.sqrt(2 / math.pi))
        return saturation * (slope + 0.5 * x * (curvature - 2 * t * slope * slope))


class GELUTanh(_FusedActivation):
    """y = x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2, GELU's tanh approximation;
    dx by ``GELUTanhBackward``."""

    kernel, gradient = "gelu_tanh_float32", GELUTanhBackward

    @staticmethod
    def reference(x):
        u, _ = _gelu_tanh_inner(x)
        return 0.5 * x * (1 + backend.get_array_module(x).tanh(u))


def silu(x):
    return SiLU.apply(_float_input("silu", x))


def gelu(x, approximate="none"):
    """x Phi(x) with Phi the standard normal CDF; ``approximate="tanh"`` uses Hendrycks & Gimpel's
    tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    if approximate == "tanh":
        return GELUTanh.apply(_float_input("gelu", x))
    if approximate != "none":
        raise ValueError(f"gelu: expected approximate 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(_float_input("gelu", x))


# ---- comparisons and logic (no gradient) --------------------------------------------------------
_COMPARISONS = {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                "gt": np.greater, "ge": np.greater_equal, "and": np.logical_and, "or": np.logical_or}


class Compare(Function):
    """y = a <op> b, a bool array (eq, lt, and...). No gradient; an op so that observers (the compiler)
    see it. ``apply`` gets the raw arrays, so no graph node is ever made for it."""

    def forward(self, a, b, *, name):
        return getattr(backend.get_array_module(a), _COMPARISONS[name].__name__)(a, b)

    def backward(self, grad):
        return None, None


def compare(name, a, b):
    """Element-wise comparison or logic as a bool tensor (not differentiable)."""
    a, b = binary_operands(name, a, b)
    return Compare.apply(a.data, b.data, name=name)


def eq(a, b):
    return compare("eq", a, b)


class Test(Function):
    """y = isfinite(x) or isnan(x), a bool array. No gradient; an op (on the raw array) so that
    observers (the compiler) see it."""

    def forward(self, x, *, name):
        return getattr(backend.get_array_module(x), name)(x)

    def backward(self, grad):
        return None


def isfinite(x):
    return Test.apply(x.data, name="isfinite")


def isnan(x):
    return Test.apply(x.data, name="isnan")


def sign(x):
    return Tensor(x.xp.sign(x.data))


def allclose(a, b, rtol=1e-5, atol=1e-8):
    a, b = binary_operands("allclose", a, b)
    return bool(a.xp.allclose(a.data, b.data, rtol=rtol, atol=atol))


def any(x, dim=None, keepdim=False):  # noqa: A001
    return Tensor(x.xp.any(x.data, axis=dim, keepdims=keepdim))


def all(x, dim=None, keepdim=False):  # noqa: A001
    return Tensor(x.xp.all(x.data, axis=dim, keepdims=keepdim))


def dropout(x, p=0.5, training=True):
    """Zero each element with probability p and scale the rest by 1/(1-p) (inverted dropout)."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: expected p in [0, 1], got {p}")
    if not training or p == 0:
        return x
    if p == 1:
        return x * 0.0
    return x * DropoutMask.apply(shape=x.shape, p=p, dtype=x.dtype, device=x.device)
