"""Hypothesis strategies for property-testing ops, and ``GradCase``, one op under test.

Reuse them for your own ops (see README, "Testing your own op"):

    @st.composite
    def my_inputs(draw):
        shape = draw(shapes(max_dims=3))
        return (draw(arrays(shape)),), {}

    case = GradCase("my_op", my_op, my_inputs(), torch_fn=torch_equivalent)

Values are drawn in a bounded range and laid out contiguously or not (strided views), so an op
that assumes C order is caught. Ops with kinks (abs and relu at 0, max at ties) reject draws too
close to them with ``near`` / ``has_ties``: finite differences straddling a kink are meaningless.
"""
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

try:
    from hypothesis import note
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp
except ImportError as error:  # hypothesis is a test dependency, not a runtime one
    raise ImportError("scratchgen.testing.strategies needs hypothesis, which the `test` extra installs: "
                      "pip install 'scratchgen[test]'") from error


def shapes(min_dims=0, max_dims=4, min_side=1, max_side=5):
    """Array shapes, 0-d and size-1 sides included."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def broadcastable_shapes(count=2, min_dims=0, max_dims=4, max_side=5):
    """``count`` shapes that broadcast together (some sides 1, some dims missing)."""
    return hnp.mutually_broadcastable_shapes(num_shapes=count, min_dims=min_dims, max_dims=max_dims,
                                             max_side=max_side).map(lambda result: result.input_shapes)


@st.composite
def arrays(draw, shape, low=-2.0, high=2.0, dtype=np.float64, contiguous=None):
    """A float array of ``shape`` with values in [low, high]; ``contiguous=None`` lets hypothesis
    choose between a C-contiguous array and a strided view of a larger buffer.

    The layout is invisible in an array's repr, so it is written into hypothesis' falsifying
    example as a note (``hypothesis.note``), with the line that rebuilds it.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    values = np.random.default_rng(seed).uniform(low, high, size=shape).astype(dtype)
    if contiguous is None:
        contiguous = draw(st.booleans())
    if contiguous or values.ndim == 0:
        note(f"array of shape {values.shape}: C-contiguous")
        return values
    strided = strided_view(values)
    note(f"array of shape {values.shape}: NON-contiguous, strides {strided.strides} (rebuild with "
         "scratchgen.testing.strategies.strided_view(values), or draw arrays(shape, contiguous=False))")
    return strided


def strided_view(values):
    """The same values as a non-contiguous view: every other element of a buffer twice as wide
    in the last axis (what ``arrays`` draws when it picks a strided layout)."""
    values = np.asarray(values)
    buffer = np.zeros(values.shape[:-1] + (2 * values.shape[-1],), dtype=values.dtype)
    buffer[..., ::2] = values
    return buffer[..., ::2]


def near(values, points, margin=1e-3):
    """True if any element of ``values`` lies within ``margin`` of any of ``points`` (a kink)."""
    values = np.asarray(values)
    return any(bool(np.any(np.abs(values - p) < margin)) for p in points)


def has_ties(values, axis=None, margin=1e-3):
    """True if the two largest elements along ``axis`` are within ``margin`` (max is not smooth)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return False
    moved = values.reshape(-1) if axis is None else np.moveaxis(values, axis, -1)
    if moved.shape[-1] < 2:
        return False
    top_two = np.sort(moved, axis=-1)[..., -2:]
    return bool(np.any(top_two[..., 1] - top_two[..., 0] < margin))


@dataclass(frozen=True)
class GradCase:
    """One differentiable op under property test.

    ``inputs`` draws ``(arrays, params)``: a tuple of float64 arrays (each becomes a tensor that
    requires grad) and a dict of other keyword arguments (dims, indices, flags). ``fn`` is called
    as ``fn(*tensors, **params)`` and ``torch_fn`` (optional) the same way on torch tensors.
    ``reject(*arrays, **params)`` returns True for draws at non-differentiable points.
    ``second_order`` adds a ``gradgradcheck``; ``eps``, ``rtol`` and ``atol`` go to both.
    """

    name: str
    fn: Callable
    inputs: st.SearchStrategy
    torch_fn: Optional[Callable] = None
    reject: Optional[Callable] = None
    second_order: bool = False
    rtol: float = 1e-3
    atol: float = 1e-5
    eps: float = 1e-6

    def __repr__(self):
        return f"GradCase({self.name})"


def draws(*array_strategies, **param_strategies):
    """``(arrays, params)`` from independent strategies: a shortcut for simple cases."""
    return st.tuples(st.tuples(*array_strategies), st.fixed_dictionaries(param_strategies))
