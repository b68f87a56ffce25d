"""Fusion: a run of elementwise arithmetic becomes one generated kernel, on disk and readable, with the
unfused program's bits (forward and backward)."""
import os

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.compiler import fusion


def _step(weight, bias):
    def step(x):
        y = x @ weight
        z = ((y * 2.0 - bias) * y + 1.0) / (bias * bias + 1.0)   # Mul Sub Mul Add Div: one group
        loss = z.sum()
        loss.backward()
        return loss, weight.grad
    return step


def test_a_chain_fuses_into_one_kernel_with_the_same_bits():
    weight, bias = sg.randn(4, 4, requires_grad=True), sg.randn(3, 4)
    fused, plain = sg.compile(_step(weight, bias)), sg.compile(_step(weight, bias), fuse=False)
    for _ in range(4):
        x = sg.randn(3, 4)
        weight.grad = None
        ours = fused(x)
        weight.grad = None
        theirs = plain(x)
        for a, b in zip(ours, theirs):
            np.testing.assert_array_equal(a.data, b.data)
    (program,) = [entry.program for entry in fused.cache.values()]
    groups = [op for op in program.ops if op.kind == "fused"]
    assert len(groups) >= 3 and any("Mul+Sub" in op.name for op in groups)   # (y * 2 - bias) is one
    assert len(program.ops) < len(next(iter(plain.cache.values())).program.ops)
    files = os.listdir(fusion.cache_folder())
    assert any(name.startswith(groups[0].name.split("[")[0]) and name.endswith(".py") for name in files)
    assert "for i in range(out.size):" in fused.explain()


def _layer(weight, bias):
    def step(x):
        y = x @ weight + bias                   # a MatMul with a bias epilogue
        loss = ((y * 0.5).exp() * 2.0).sum()    # Mul, Exp, Mul: exp is fused only in "fast" mode
        loss.backward()
        return loss, weight.grad
    return step


def _groups(mode):
    weight, bias = sg.randn(4, 5, requires_grad=True), sg.randn(5)
    compiled = sg.compile(_layer(weight, bias), fuse=mode)
    for _ in range(3):
        weight.grad = None
        compiled(sg.randn(3, 4))
    return [op.name.split("[")[1].rstrip("]") for op in next(iter(compiled.cache.values())).program.ops
            if op.kind == "fused"]


def test_a_matmul_takes_its_bias_as_an_epilogue_and_exp_waits_for_fast_mode():
    exact, fast = _groups("exact"), _groups("fast")
    assert any(group.startswith("MatMul+Add") for group in exact), exact
    assert any(group.startswith("MatMul+Add") for group in fast), fast
    assert not any("Exp" in group for group in exact)
    assert any("Mul+Exp" in group for group in fast), fast


def test_an_unknown_fusion_mode_is_refused():
    with pytest.raises(ValueError, match="expected fuse to be True, False, 'exact' or 'fast', got 'quick'"):
        sg.compile(lambda x: x, fuse="quick")


FAST_FUNCTIONS = {"exp": lambda x: x.exp(), "log": lambda x: (x + 100.0).log(), "tanh": lambda x: x.tanh(),
                  "sigmoid": lambda x: x.sigmoid(), "softplus": lambda x: x.softplus()}
MAX_ULP = 4   # docs/compile.md, "Fusion": what fuse="fast" may differ from NumPy by, per function


@pytest.mark.parametrize("name", sorted(FAST_FUNCTIONS))
def test_fast_kernels_stay_within_the_stated_ulp_of_numpy(name):
    """Each libm function a fast kernel calls, on 10^5 float32 values of several scales, against the
    unfused op (NumPy, SciPy): the largest difference in units in the last place (printed with -s)."""
    function = FAST_FUNCTIONS[name]
    x = np.concatenate([np.random.default_rng(0).standard_normal(25_000) * scale for scale in (0.1, 1, 5, 30)])
    x = sg.tensor(np.clip(x, -80, 80).astype(np.float32))   # exp(88.8) overflows float32
    compiled = sg.compile(lambda t: function(t * 1.0), fuse="fast")   # Mul + the function: one kernel
    for _ in range(3):
        ours = compiled(x).data
    assert any(op.kind == "fused" for op in next(iter(compiled.cache.values())).program.ops)
    theirs = function(x * 1.0).data
    finite = np.isfinite(theirs) & (theirs != 0)
    ulp = np.abs(ours[finite].astype(np.float64) - theirs[finite]) / np.spacing(np.abs(theirs[finite]))
    print(f"{name}: at most {ulp.max():.0f} ulp from NumPy; {np.mean(ours != theirs):.1%} of values differ")
    assert ulp.max() <= MAX_ULP
