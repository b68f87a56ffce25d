"""How far fusion reaches: a ReLU's forward inside a group (its mask recomputed from its output), any
broadcast operand (a batch norm's per-channel scale), ops that are not one chain, a lone ``where``
into an arena block — and what
it must not fuse: a result NumPy laid out in a permuted input's order. Each against the unfused
program, bit for bit."""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.compiler import fusion


def _run_both(make, arguments, calls=4):
    """``make()``'s function compiled with and without fusion, called on each of ``arguments()``;
    the results must be equal bit for bit (NaN where NaN). Returns the fused program."""
    fused, plain = sg.compile(make(), poisoning=True), sg.compile(make(), fuse=False)
    for _ in range(calls):
        arrays = arguments()
        ours = fused(*[sg.tensor(a, requires_grad=True) for a in arrays])
        theirs = plain(*[sg.tensor(a, requires_grad=True) for a in arrays])
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a.data, b.data)
    return next(iter(fused.cache.values())).program


def _groups(program):
    return [op.name.split("[")[1].rstrip("]") for op in program.ops if op.kind == "fused"]


def _relu_layer():
    rng = np.random.default_rng(3)
    weight, bias = (sg.tensor(rng.standard_normal(shape).astype(np.float32)) for shape in ((5, 4), (4,)))

    def step(x):
        hidden = F.relu(x @ weight + bias)          # MatMul + Add + Relu: one kernel
        loss = (hidden * hidden.relu()).sum()       # a second ReLU on a ReLU's output
        loss.backward()
        return loss, x.grad
    return step


def test_a_relu_fuses_and_its_backward_reads_the_mask_from_its_output():
    rng = np.random.default_rng(0)

    def arguments():
        x = rng.standard_normal((6, 5)).astype(np.float32)
        x[0, :2] = -0.0, np.nan                     # max(-0, 0) = +0 and NaN: both masks say False
        return [x]
    program = _run_both(_relu_layer, arguments)
    assert "MatMul+Add+Relu" in _groups(program), _groups(program)
    assert not any(op.kind == "forward+" and op.name == "Relu" for op in program.ops)
    masks = [op for op in program.ops if op.name == "Relu.positive"]
    assert masks and all(op.kind == "forward" and "y > 0" in op.detail for op in masks)


def test_a_channel_scale_and_shift_fuse_with_the_activation():
    """A batch norm's affine step, ``x * gamma + beta`` with ``(1, C, 1, 1)`` operands, then ReLU."""
    rng = np.random.default_rng(1)
    gamma, beta = (sg.tensor(rng.standard_normal((1, 3, 1, 1)).astype(np.float32)) for _ in range(2))

    def make():
        def step(x):
            loss = (F.relu(x * gamma + beta) * x).sum()
            loss.backward()
            return loss, x.grad
        return step
    program = _run_both(make, lambda: [rng.standard_normal((2, 3, 4, 5)).astype(np.float32)])
    assert "Mul+Add+Relu" in _groups(program), _groups(program)


def test_ops_that_are_not_one_chain_fuse_into_one_group():
    """``x * 2`` and ``x - 1`` each read once, by the ``Add`` that follows: one kernel of three ops
    (a leaky ReLU's backward has this shape: a ``Where`` and a ``Mul`` that an ``Add`` combines)."""
    rng = np.random.default_rng(5)

    def make():
        def step(x):
            loss = ((x * 2.0 + (x - 1.0)) * x).sum()
            loss.backward()
            return loss, x.grad
        return step
    program = _run_both(make, lambda: [rng.standard_normal((3, 4)).astype(np.float32)])
    groups = _groups(program)
    assert "Mul+Sub+Add" in groups or "Sub+Mul+Add" in groups, groups


def test_a_lone_where_writes_into_an_arena_block():
    rng = np.random.default_rng(2)

    def make():
        def step(x, y):
            return (sg.where(x > 0, x, y),)
        return step
    program = _run_both(make, lambda: [rng.standard_normal((4, 6)).astype(np.float32) for _ in range(2)])
    assert _groups(program) == ["Where"]


def test_a_result_in_a_permuted_order_is_not_fused():
    """``x.T * 2 - 1``: NumPy gives the result x's (column-major) order, and a later product reads
    those strides; a kernel writes row-major, so the run stays unfused."""
    rng = np.random.default_rng(4)
    weight = sg.tensor(rng.standard_normal((3, 7)).astype(np.float32))

    def make():
        def step(x):
            return ((x.permute(1, 0) * 2.0 - 1.0) @ weight,)
        return step
    program = _run_both(make, lambda: [rng.standard_normal((3, 5)).astype(np.float32)])
    assert "Mul+Sub" not in _groups(program)


@settings(deadline=None, max_examples=60)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.data())
def test_a_broadcast_operand_is_read_where_numpy_reads_it(out_shape, data):
    """The kernel's index expression for an operand of a drawn broadcastable shape, evaluated at every
    output position, against NumPy's own broadcasting of the operand's element numbers."""
    kept = data.draw(st.integers(0, len(out_shape) - 1))
    shape = [data.draw(st.sampled_from([1, size])) for size in out_shape][kept:]
    indexing = fusion._indexing(shape, out_shape)
    numbers = np.arange(int(np.prod(shape))).reshape(shape)
    expected = np.broadcast_to(numbers, out_shape).reshape(-1)
    flat = numbers.reshape(-1)
    read = [eval(f"flat{indexing}", {"flat": flat, "i": i}) for i in range(expected.size)]  # noqa: S307
    np.testing.assert_array_equal(read, expected, err_msg=f"{shape} -> {out_shape}: {indexing}")


def test_the_wider_groups_of_a_backward_pass_a_float64_gradcheck():
    """Central differences of the compiled loss against the compiled gradient, in float64, for a
    step whose backward fuses a ReLU mask read from the output, per-channel operands and a group
    that is not a chain."""
    rng = np.random.default_rng(6)
    gamma, beta = (sg.tensor(rng.standard_normal((1, 3, 1, 1))) for _ in range(2))

    def step(x):
        loss = (F.relu(x * gamma + beta) * (x - 1.0) + x * 2.0).sum()
        loss.backward()
        return loss, x.grad
    compiled = sg.compile(step)
    x = rng.standard_normal((2, 3, 4, 4))
    for _ in range(3):
        _, grad = compiled(sg.tensor(x, requires_grad=True))
    program = next(iter(compiled.cache.values())).program
    assert any(op.kind == "fused" and "loss.backward()" in op.line for op in program.ops)
    assert "Mul+Add+Relu" in _groups(program), _groups(program)
    for _ in range(3):
        direction = rng.standard_normal(x.shape)
        up, _ = compiled(sg.tensor(x + 1e-6 * direction, requires_grad=True))
        down, _ = compiled(sg.tensor(x - 1e-6 * direction, requires_grad=True))
        numeric = (up.data - down.data) / 2e-6
        np.testing.assert_allclose(numeric, np.sum(grad.data * direction), rtol=1e-6, atol=1e-9)
