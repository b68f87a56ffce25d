"""Hypothesis-drawn chains of elementwise ops with broadcasting: the compiled function's value and
gradients equal eager ones, bit for bit, on fresh data for every replay."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen as sg

UNARY = {"tanh": lambda x: x.tanh(), "sigmoid": lambda x: x.sigmoid(), "relu": lambda x: x.relu(),
         "neg": lambda x: -x, "square": lambda x: x * x, "exp": lambda x: (x.tanh()).exp()}
BINARY = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y, "mul": lambda x, y: x * y,
          "div": lambda x, y: x / (y * y + 1.0)}


@st.composite
def chains(draw):
    """(full shape, broadcast shape, ops): ``y`` broadcasts against ``x`` (a 1 or a missing dim)."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    kept = draw(st.integers(0, len(shape) - 1))    # leading dims dropped: broadcasting adds them back
    broadcast = tuple(draw(st.sampled_from([1, size])) for size in shape)[kept:]
    names = draw(st.lists(st.sampled_from(sorted(UNARY) + sorted(BINARY)), min_size=1, max_size=6))
    return shape, broadcast, names


def _chain(names):
    def function(x, y):
        value = x
        for name in names:
            value = BINARY[name](value, y) if name in BINARY else UNARY[name](value)
        loss = value.sum()
        loss.backward()
        return loss, x.grad, y.grad
    return function


@settings(deadline=None, max_examples=25)
@given(chains())
def test_a_compiled_chain_equals_eager(chain):
    shape, broadcast, names = chain
    compiled = sg.compile(_chain(names), poisoning=True)
    rng = np.random.default_rng(0)
    for _ in range(4):   # two captures, then replays on new data
        data = [rng.standard_normal(s).astype(np.float32) for s in (shape, broadcast)]
        ours = compiled(*[sg.tensor(a, requires_grad=True) for a in data])
        theirs = _chain(names)(*[sg.tensor(a, requires_grad=True) for a in data])
        for a, b, what in zip(ours, theirs, ("value", "x.grad", "y.grad")):
            if b is None:
                assert a is None, what
                continue
            np.testing.assert_array_equal(a.data, b.data, err_msg=f"{what}: {names}, {shape}, {broadcast}")
    assert compiled.replays == 2
