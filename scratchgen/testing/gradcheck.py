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

It never says yes wrongly: a NaN or infinity on either side is a failure (a NaN compares False
with every tolerance), and so is a call with no input that requires grad. A failure names the
side, the input and the element, with a hint where the cause is recognisable: a kink (the
one-sided slopes disagree), a float32 computation inside fn, a non-contiguous input.
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
    """Forward outputs at x + eps e_j and x - eps e_j for each coordinate j, as two
    (outputs, coordinates) arrays: their difference over 2 eps is the central-difference
    Jacobian column, and each one against f(x) gives a one-sided slope (the kink test)."""
    base = inputs[index].data
    plus, minus = [], []
    for j in coordinates:
        for step, values in ((eps, plus), (-eps, minus)):
            shifted = base.copy()
            shifted.reshape(-1)[j] += step
            args = list(inputs)
            # keep requires_grad: fn may itself differentiate (gradgradcheck's first derivative)
            args[index] = Tensor(shifted, requires_grad=True)
            values.append(_flat(_as_outputs(fn(*args))))
    if not plus:
        return np.zeros((0, 0)), np.zeros((0, 0))
    return np.stack(plus, axis=1), np.stack(minus, axis=1)


def _flat(outputs):
    return np.concatenate([np.asarray(o.data, dtype=np.float64).reshape(-1) for o in outputs])


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


class _Labels:
    """How a check names what it differentiates: plain gradcheck says "gradient of input i";
    gradgradcheck says "second derivative" and tells fn's inputs from the cotangents it added."""

    def __init__(self, check="gradcheck", subject="gradient", function_inputs=None):
        self.check, self.subject, self.function_inputs = check, subject, function_inputs

    def input(self, i):
        if self.function_inputs is None:
            return f"input {i}"
        if i < self.function_inputs:
            return f"input {i} (an input of fn)"
        k = i - self.function_inputs
        return f"input {i} (cotangent v{k}, the seed for output {k} of fn)"


def _fail(message, raise_exception):
    if raise_exception:
        raise GradcheckError(message)
    return False


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True, seed=0):
    """True if the gradients of ``fn`` w.r.t. every input with ``requires_grad`` match central
    finite differences: |analytic - numeric| <= atol + rtol |numeric| everywhere checked, with
    both sides finite (NaN or Inf on either side is a failure, never a pass).

    On a mismatch, raises ``GradcheckError`` naming the input, the worst element, and the
    analytic and numeric values, with a hint where the cause is recognisable: a kink, a float32
    computation, a non-contiguous input (or returns False with ``raise_exception=False``). With
    no input requiring grad there is nothing to check, which is a failure too.
    """
    return _gradcheck(fn, tuple(inputs), eps, atol, rtol, raise_exception, seed, _Labels())


def _gradcheck(fn, inputs, eps, atol, rtol, raise_exception, seed, labels):
    _check_inputs(labels.check, inputs)
    if not any(isinstance(x, Tensor) and x.requires_grad for x in inputs):
        return _fail(f"{labels.check}: no input requires grad, so there is nothing to check; create the "
                     "inputs to differentiate with requires_grad=True", raise_exception)
    rng = np.random.default_rng(seed)
    outputs = _as_outputs(fn(*inputs))
    # an empty input has no coordinates to check (and no Jacobian columns)
    differentiable = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad
                      and x.numel() > 0]
    tracked = [o for o in outputs if o.requires_grad]
    cotangents, full = _cotangents(outputs, rng)
    probe = _Probe(inputs, outputs, eps, atol, rtol, labels)
    for i in differentiable:
        size = inputs[i].numel()
        coordinates = (np.arange(size) if size <= FULL_JACOBIAN_INPUTS
                       else rng.choice(size, SAMPLED_COORDINATES, replace=False))
        probe.add_columns(i, coordinates, *_numeric_columns(fn, inputs, i, coordinates, eps))
    for number, u in enumerate(cotangents):
        seed_text = f"flat output element {number}" if full else f"random cotangent {number}"
        analytic = _analytic(outputs, tracked, u, [inputs[i] for i in differentiable])
        for i, g in zip(differentiable, analytic):
            problem = probe.compare(i, u, g, seed_text)
            if problem:
                return _fail(problem, raise_exception)
    return True


class _Probe:
    """The numeric side for each input, and the verdict (with its diagnosis) for one cotangent."""

    def __init__(self, inputs, outputs, eps, atol, rtol, labels):
        self.inputs, self.eps, self.atol, self.rtol, self.labels = inputs, eps, atol, rtol, labels
        self.base = _flat(outputs) if outputs else np.zeros(0)
        self.float32_inside = _looks_float32(outputs, self.base)
        self.columns = {}

    def add_columns(self, i, coordinates, plus, minus):
        self.columns[i] = (coordinates, plus, minus)

    def compare(self, i, u, g, seed_text):
        """None if input i's gradient along cotangent u is right, else the failure message."""
        coordinates, plus, minus = self.columns[i]
        with np.errstate(all="ignore"):  # inf - inf is what we are looking for, not an error
            numeric = u @ ((plus - minus) / (2 * self.eps))
            slopes = ((self.base[:, None] - minus) / self.eps, (plus - self.base[:, None]) / self.eps)
        picked = np.zeros(len(coordinates)) if g is None else g.reshape(-1)[coordinates]
        where = f"(seeded with {seed_text}; atol={self.atol}, rtol={self.rtol})"
        for side, values in (("analytic side (backward)", picked),
                             ("numeric side (finite differences of forward)", numeric)):
            bad = np.flatnonzero(~np.isfinite(values))
            if bad.size:
                k = int(bad[0])
                return (f"{self.labels.check}: {self.labels.subject} of {self._name(i)}: the {side} is "
                        f"{values[k]} at element {self._element(i, coordinates[k])}: analytic {picked[k]:.6g}, "
                        f"numeric {numeric[k]:.6g} {where}" + self._hints(i, k, numeric, slopes))
        excess = np.abs(picked - numeric) - (self.atol + self.rtol * np.abs(numeric))
        if not excess.size or excess.max() <= 0:
            return None
        k = int(np.argmax(excess))
        return (f"{self.labels.check}: {self.labels.subject} of {self._name(i)} is wrong at element "
                f"{self._element(i, coordinates[k])}: analytic {picked[k]:.6g}, numeric {numeric[k]:.6g} {where}"
                + self._hints(i, k, numeric, slopes))

    def _name(self, i):
        x = self.inputs[i]
        text = f"{self.labels.input(i)} (shape {x.shape}"
        if not x.data.flags.c_contiguous:
            text += f", non-contiguous: strides {x.data.strides}"
        return text + ")"

    def _element(self, i, flat_index):
        return tuple(int(e) for e in np.unravel_index(flat_index, self.inputs[i].shape))

    def _hints(self, i, k, numeric, slopes):
        hints = []
        # float32 rounding makes one-sided slopes disagree too: then it is not evidence of a kink
        kink = None if self.float32_inside else _kink(slopes[0][:, k], slopes[1][:, k], self.atol, self.rtol)
        if kink:
            hints.append(f"the one-sided slopes of output element {kink[0]} differ there (left {kink[1]:.6g}, "
                         f"right {kink[2]:.6g}): the point is a kink (|x| or relu at 0, max at a tie), where no "
                         "derivative exists; keep such points out of the test (strategies.near, has_ties)")
        if self.float32_inside and np.isfinite(numeric[k]):
            hints.append("fn's outputs are float32 values (or float32 rounded): a float32 cast inside fn is the "
                         "likely cause, as finite differences of a float32 function are only good to ~3 digits")
        if not self.inputs[i].data.flags.c_contiguous:
            hints.append("the input is a non-contiguous view (contiguous=False in the strategies): if the same "
                         "values pass as np.ascontiguousarray(...), the op assumes C order")
        return "".join(f"\n  hint: {h}" for h in hints)


def _kink(left, right, atol, rtol):
    """(output element, left slope, right slope) where the slopes from the left and the right
    disagree by far more than curvature over one step explains (for a smooth f they differ by
    about f'' eps), or None: the coordinate sits at a kink."""
    with np.errstate(all="ignore"):
        gap = np.abs(left - right) - 10 * (atol + rtol * np.maximum(np.abs(left), np.abs(right)))
    gap[~np.isfinite(gap)] = -np.inf  # a pole is not a kink
    if not gap.size or gap.max() <= 0:
        return None
    worst = int(np.argmax(gap))
    return worst, left[worst], right[worst]


def _looks_float32(outputs, flat):
    """True if fn computed in float32: a float32 output, or float64 outputs whose every value is
    exactly a float32 (a float64 computation almost never lands on one) and not all integers."""
    if any(o.dtype != np.float64 for o in outputs):
        return True
    finite = flat[np.isfinite(flat)]
    if not finite.size or np.all(finite == np.round(finite)):
        return False
    return bool(np.all(finite.astype(np.float32).astype(np.float64) == finite))


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
    (x, v) -> d<v, fn(x)>/dx, built with ``create_graph=True``: checks second derivatives.

    The map's inputs are fn's inputs followed by one cotangent v_k per output of fn; a failure
    says "second derivative" and which of the two kinds the wrong input is.
    """
    inputs = tuple(inputs)
    _check_inputs("gradgradcheck", inputs)
    differentiable = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not differentiable:
        return _fail("gradgradcheck: no input of fn requires grad, so there is no first derivative to "
                     "check; create the inputs to differentiate with requires_grad=True", raise_exception)
    rng = np.random.default_rng(seed + 1)
    outputs = _as_outputs(fn(*inputs))
    if grad_outputs is None:
        grad_outputs = [Tensor(rng.standard_normal(o.shape), requires_grad=True) for o in outputs]
    count = len(inputs)

    def first_derivative(*args):
        xs, vs = args[:count], args[count:]
        outs = _as_outputs(fn(*xs))
        pairs = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
        grads = autograd_grad([o for o, _ in pairs], [xs[i] for i in differentiable],
                              grad_outputs=[v for _, v in pairs], create_graph=True, allow_unused=True)
        return tuple(g if g is not None else Tensor(np.zeros(xs[i].shape)) for g, i in zip(grads, differentiable))

    labels = _Labels("gradgradcheck", "second derivative (the gradient of the first derivative d<v, fn(x)>/dx)",
                     function_inputs=count)
    return _gradcheck(first_derivative, inputs + tuple(grad_outputs), eps, atol, rtol, raise_exception, seed,
                      labels)
