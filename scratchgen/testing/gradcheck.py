"""``gradcheck``: compare backward's gradients with central finite differences, in float64.

The idea: for a scalar L(x) = <u, f(x)> with a fixed cotangent u, backward gives dL/dx in one
pass, and each coordinate can be estimated numerically as

    dL/dx_j  ~  (L(x + eps e_j) - L(x - eps e_j)) / (2 eps)      (error O(eps^2))

The numeric Jacobian columns J e_j are computed once per coordinate (two forward passes); any
cotangent's estimate is then u^T (J e_j). Small functions (at most ``FULL_JACOBIAN_OUTPUTS``
output elements and ``FULL_JACOBIAN_INPUTS`` input elements per input) are checked on the full
Jacobian: every output basis vector as u, every input coordinate. Larger ones are checked along
two random cotangents on a random sample of input coordinates (Chainer's directional idea;
enough to catch a wrong derivative with probability one, at a fraction of the cost).
"""
import numpy as np

from ..autograd import grad as autograd_grad
from ..tensor import Tensor

FULL_JACOBIAN_OUTPUTS = 16
FULL_JACOBIAN_INPUTS = 256
SAMPLED_COORDINATES = 48


class GradcheckError(AssertionError):
    """A gradient disagrees with its finite-difference estimate."""


def _as_outputs(result):
    return (result,) if isinstance(result, Tensor) else tuple(result)


def _check_inputs(op, inputs):
    for i, x in enumerate(inputs):
        if isinstance(x, Tensor) and x.requires_grad and x.dtype != np.float64:
            raise TypeError(f"{op}: input {i} requires grad but is {x.dtype}; finite differences need "
                            "float64 (use .double())")


def _numeric_columns(fn, inputs, index, coordinates, eps):
    """Finite-difference columns d outputs / d inputs[index][j] for each j, as flat arrays."""
    base = inputs[index].data
    columns = []
    for j in coordinates:
        values = []
        for step in (eps, -eps):
            shifted = base.copy()
            shifted.reshape(-1)[j] += step
            args = list(inputs)
            # keep requires_grad: fn may itself differentiate (gradgradcheck's first derivative)
            args[index] = Tensor(shifted, requires_grad=True)
            values.append(np.concatenate([np.asarray(o.data, dtype=np.float64).reshape(-1)
                                          for o in _as_outputs(fn(*args))]))
        columns.append((values[0] - values[1]) / (2 * eps))
    return np.stack(columns, axis=1) if columns else np.zeros((0, 0))


def _cotangents(outputs, rng):
    """Output seeds u: every basis vector for small outputs, two random vectors otherwise."""
    total = sum(o.numel() for o in outputs)
    if total <= FULL_JACOBIAN_OUTPUTS:
        return list(np.eye(total)), True
    return [rng.standard_normal(total) for _ in range(2)], False


def _split(flat, outputs):
    pieces, start = [], 0
    for o in outputs:
        pieces.append(Tensor(flat[start:start + o.numel()].reshape(o.shape).astype(o.dtype)))
        start += o.numel()
    return pieces


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """True if the gradients of ``fn`` w.r.t. every input with ``requires_grad`` match central
    finite differences: |analytic - numeric| <= atol + rtol |numeric| everywhere checked.

    On a mismatch, raises ``GradcheckError`` naming the input, the worst element, and the
    analytic and numeric values (or returns False with ``raise_exception=False``).
    """
    inputs = tuple(inputs)
    _check_inputs("gradcheck", inputs)
    rng = np.random.default_rng(seed)
    outputs = _as_outputs(fn(*inputs))
    # an empty input has no coordinates to check (and no Jacobian columns)
    differentiable = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad
                      and x.numel() > 0]
    tracked = [o for o in outputs if o.requires_grad]
    cotangents, full = _cotangents(outputs, rng)
    columns = {}
    for i in differentiable:
        size = inputs[i].numel()
        coordinates = (np.arange(size) if size <= FULL_JACOBIAN_INPUTS
                       else rng.choice(size, SAMPLED_COORDINATES, replace=False))
        columns[i] = (coordinates, _numeric_columns(fn, inputs, i, coordinates, eps))
    for number, u in enumerate(cotangents):
        analytic = _analytic(outputs, tracked, u, [inputs[i] for i in differentiable])
        for i, g in zip(differentiable, analytic):
            coordinates, jacobian = columns[i]
            numeric = u @ jacobian
            picked = np.zeros(len(coordinates)) if g is None else g.reshape(-1)[coordinates]
            excess = np.abs(picked - numeric) - (atol + rtol * np.abs(numeric))
            if excess.size and excess.max() > 0:
                worst = int(np.argmax(excess))
                element = np.unravel_index(coordinates[worst], inputs[i].shape)
                seed_text = f"flat output element {number}" if full else f"random cotangent {number}"
                message = (f"gradcheck: gradient of input {i} (shape {inputs[i].shape}) is wrong at element "
                           f"{tuple(int(e) for e in element)}: analytic {picked[worst]:.6g}, numeric "
                           f"{numeric[worst]:.6g} (seeded with {seed_text}; atol={atol}, rtol={rtol})")
                if raise_exception:
                    raise GradcheckError(message)
                return False
    return True


def _analytic(outputs, tracked, u, inputs):
    """Gradients of <u, outputs> w.r.t. ``inputs`` as flat NumPy arrays (None where unused)."""
    if not tracked:
        return [None] * len(inputs)
    seeds = _split(u, outputs)
    pairs = [(o, s) for o, s in zip(outputs, seeds) if o.requires_grad]
    grads = autograd_grad([o for o, _ in pairs], inputs, grad_outputs=[s for _, s in pairs],
                          retain_graph=True, allow_unused=True)
    return [None if g is None else np.asarray(g.data, dtype=np.float64) for g in grads]


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True,
                  seed=0):
    """``gradcheck`` applied to the first-order gradient map
    (x, v) -> d<v, fn(x)>/dx, built with ``create_graph=True``: checks second derivatives."""
    inputs = tuple(inputs)
    _check_inputs("gradgradcheck", inputs)
    rng = np.random.default_rng(seed + 1)
    outputs = _as_outputs(fn(*inputs))
    if grad_outputs is None:
        grad_outputs = [Tensor(rng.standard_normal(o.shape), requires_grad=True) for o in outputs]
    differentiable = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    count = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:count], args[count:]
        outs = _as_outputs(fn(*xs))
        pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
        grads = autograd_grad([o for o, _ in pairs], [xs[i] for i in differentiable],
                              grad_outputs=[v for _, v in pairs], create_graph=True, allow_unused=True)
        return tuple(g if g is not None else Tensor(np.zeros(xs[i].shape)) for g, i in zip(grads, differentiable))

    return gradcheck(first_derivative, inputs + tuple(grad_outputs), eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, seed=seed)
