"""``scratchgen.compile`` on the GPU: a captured step replays with its fusion groups as ``numba.cuda``
kernels (scratchgen/compiler/cuda.py), and gives eager's bits.

In Numba's CUDA simulator the tensors stay NumPy and ``use_kernels("gpu")`` makes the compiler generate
CUDA kernels, launched through the simulator; on a real GPU the same tests run on CUDA tensors (CuPy),
where the device alone chooses them (see gpu_target.py). Kept small: the simulator runs every thread
of a launch in Python.
"""
import numpy as np
import pytest
from gpu_target import array_module_or_skip, simulating
from hypothesis import given, settings
from hypothesis import strategies as st

array_module_or_skip()

import scratchgen as sg  # noqa: E402
import scratchgen.functional as F  # noqa: E402
from scratchgen import nn, optim  # noqa: E402

DEVICE, KERNELS = ("cpu", "gpu") if simulating() else ("cuda", None)


@pytest.fixture(autouse=True)
def _generated_kernels_in_a_temporary_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SCRATCHGEN_CACHE", str(tmp_path))


def classifier_and_step(fused_optimizer):
    """A small classifier's training step (cross-entropy: its loss and gradient have fusible runs)."""
    sg.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(DEVICE)
    optimizer = optim.Adam(model.parameters(), lr=0.05, fused=fused_optimizer)

    def step(x, y):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}
    return model, step


def batches(count):
    rng = np.random.default_rng(1)
    return [(sg.tensor(rng.standard_normal((5, 6)).astype(np.float32), device=DEVICE),
             sg.tensor(rng.integers(0, 3, 5), device=DEVICE)) for _ in range(count)]


def fused_ops(compiled):
    return [op for entry in compiled.cache.values() for op in entry.program.ops if op.kind == "fused"]


@pytest.mark.parametrize("fused_optimizer", [False, True])
def test_a_compiled_training_step_replays_with_cuda_kernels_and_equals_eager(fused_optimizer):
    """Four steps (two captures, two replays): the same losses and parameters, bit for bit; every fused
    group ran as a generated CUDA kernel, whose source explain() shows."""
    with sg.use_kernels(KERNELS):
        model, step = classifier_and_step(fused_optimizer)
        compiled = sg.compile(step, poisoning=True)
        twin, eager_step = classifier_and_step(fused_optimizer)
        for x, y in batches(4):
            assert compiled(x, y) == eager_step(x, y)
    assert compiled.replays == 2
    for (name, ours), theirs in zip(model.named_parameters(), twin.parameters()):
        np.testing.assert_array_equal(ours.cpu().numpy(), theirs.cpu().numpy(), err_msg=name)
    groups = fused_ops(compiled)
    assert groups and all(op.name.startswith("fused_cuda_") for op in groups), [op.name for op in groups]
    text = compiled.explain()
    assert "@cuda.jit" in text and "for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):" in text
    assert "fmul_rn(" in text   # products rounded on their own: never contracted into an FMA


ARITHMETIC = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
              "div": lambda a, b: a / b, "rsub": lambda a, b: b - a, "neg": lambda a, b: -a}


@st.composite
def chains(draw):
    """(shape, ops, operands): a chain of arithmetic on x, each op's other operand y (x's shape), a
    one-element array or a Python number — what a fusion group takes."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    names = draw(st.lists(st.sampled_from(sorted(ARITHMETIC)), min_size=2, max_size=5))
    operands = draw(st.lists(st.sampled_from(["y", "single", "number"]), min_size=len(names),
                             max_size=len(names)))
    return shape, names, operands


@settings(deadline=None, max_examples=6)   # each example launches a kernel in the simulator
@given(chains(), st.sampled_from([np.float32, np.float64]))
def test_a_fused_chain_on_drawn_shapes_equals_the_numpy_ops(chain, dtype):
    """The generated CUDA kernel of a whole chain (no gradient: nothing else reads its intermediates)
    against the eager ops, bit for bit, for float32 and float64."""
    shape, names, operands = chain

    def function(x, y, single):
        value = x
        for name, operand in zip(names, operands):
            other = {"y": y, "single": single, "number": 0.75}[operand]
            value = ARITHMETIC[name](value, other)
        return value

    rng = np.random.default_rng(0)
    with sg.use_kernels(KERNELS):
        compiled = sg.compile(function)
        for _ in range(3):   # two captures (the second fuses), then a replay
            arrays = [rng.standard_normal(s).astype(dtype) + 2.0 for s in (shape, shape, (1,))]
            tensors = [sg.tensor(a, device=DEVICE) for a in arrays]
            np.testing.assert_array_equal(compiled(*tensors).cpu().numpy(), function(*tensors).cpu().numpy(),
                                          err_msg=f"{names} {operands} {shape}")
    assert compiled.replays == 1
    assert [op.name.split("[")[0].startswith("fused_cuda_") for op in fused_ops(compiled)] == [True]


@pytest.mark.skipif(not simulating(), reason="on a GPU the arrays' device chooses the kernels")
def test_switching_the_kernel_choice_captures_again_with_cpu_kernels():
    """The kernel choice is guarded: the same function without ``use_kernels("gpu")`` is a new
    signature, captured again, and its fusion groups are Numba CPU kernels."""
    compiled = sg.compile(lambda x, y: (x * y - 1.0) * x)
    x, y = sg.ones(4), sg.full((4,), 2.0)
    with sg.use_kernels("gpu"):
        for _ in range(3):
            compiled(x, y)
    for _ in range(3):
        assert compiled(x, y).numpy().tolist() == [1.0] * 4
    assert (compiled.captures, compiled.replays) == (4, 2)
    on_gpu = sorted(op.name.startswith("fused_cuda_") for op in fused_ops(compiled))
    assert on_gpu == [False, True], [op.name for op in fused_ops(compiled)]
