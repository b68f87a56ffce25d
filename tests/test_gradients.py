"""Every differentiable op, property-tested: gradcheck (float64), gradgradcheck where declared,
values and gradients against PyTorch, and a coverage check that no Function goes untested."""
import importlib
import itertools
import pkgutil
import warnings

import numpy as np
import pytest
from gradcases import all_cases
from hypothesis import assume, given
from hypothesis import strategies as st

import scratchgen as sg
from conftest import require_torch
from scratchgen.testing import all_function_classes, functions_in_graph, gradcheck, gradgradcheck

CASES = all_cases()
# Functions that need hardware this machine may lack; the GPU test suite covers them.
NEEDS_A_GPU = {"ToDevice"}
# Functions of the library that are markers, not ops: SecondOrderBlocked stands in for the
# gradient of a once-differentiable op, and its backward refuses by design.
NOT_OPS = {"SecondOrderBlocked"}
# Random draws and target weights have nothing to differentiate: Functions so that the compiler sees them.
NOT_OPS |= {"RandomDraw", "DropoutMask", "TargetWeights", "Compare", "Moments", "Test", "ArgExtreme"}
# Abstract bases, never applied themselves: their subclasses (SiLU, GELUBackward...) have cases.
NOT_OPS |= {"_FusedActivation", "_ActivationGradient"}
# Built only inside a first-order backward (under no_grad), so never in a graph: group_norm_affine's
# gradcheck checks it against finite differences; its second order is the composed ops' (gradgradcheck).
NOT_OPS |= {"GroupNormAffineBackward"}


def _draw(case, data):
    arrays, params = data.draw(case.inputs)
    assume(case.reject is None or not case.reject(*arrays, **params))
    return arrays, params


def _leaves(arrays):
    return [sg.Tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for a in arrays]


def _call(case, tensors, params):
    return case.fn(*tensors, **params)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@given(data=st.data())
def test_gradcheck(case, data):
    arrays, params = _draw(case, data)
    assert gradcheck(lambda *xs: _call(case, xs, params), _leaves(arrays), eps=case.eps, atol=case.atol, rtol=case.rtol)


@pytest.mark.parametrize("case", [c for c in CASES if c.second_order], ids=lambda c: c.name)
@given(data=st.data())
def test_gradgradcheck(case, data):
    arrays, params = _draw(case, data)
    assert gradgradcheck(lambda *xs: _call(case, xs, params), _leaves(arrays), eps=case.eps, atol=case.atol, rtol=case.rtol)


@pytest.mark.torch
@pytest.mark.parametrize("case", [c for c in CASES if c.torch_fn is not None], ids=lambda c: c.name)
@given(data=st.data())
def test_matches_torch(case, data):
    torch = require_torch()
    arrays, params = _draw(case, data)
    for dtype, rtol, atol in ((np.float64, 1e-10, 1e-10), (np.float32, 1e-4, 1e-5)):
        ours = [sg.Tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
        theirs = [torch.tensor(np.asarray(a, dtype=dtype), requires_grad=True) for a in arrays]
        out, expected = case.fn(*ours, **params), case.torch_fn(*theirs, **params)
        assert out.shape == tuple(expected.shape), f"{case.name}: shape {out.shape} vs torch {tuple(expected.shape)}"
        np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=rtol, atol=atol)
        assert out.dtype == np.dtype(str(expected.dtype).replace("torch.", ""))
        seed = np.random.default_rng(0).standard_normal(out.shape).astype(dtype)
        (out * sg.Tensor(seed)).sum().backward()
        (expected * torch.tensor(seed)).sum().backward()
        for i, (x, y) in enumerate(zip(ours, theirs)):
            # an input the output does not depend on: None on one side may be zeros on the other
            ours_grad = np.zeros(x.shape) if x.grad is None else x.grad.data
            their_grad = np.zeros(x.shape) if y.grad is None else y.grad.numpy()
            np.testing.assert_allclose(ours_grad, their_grad, rtol=rtol, atol=atol,
                                       err_msg=f"{case.name}: gradient of input {i}")


def _import_every_op_module():
    import scratchgen.ops
    for info in pkgutil.walk_packages(scratchgen.ops.__path__, "scratchgen.ops."):
        importlib.import_module(info.name)


def _examples(case, count):
    """The first ``count`` examples the case accepts, out of at most ``20 * count`` drawn; lazily, so
    drawing (hypothesis's ``.example()`` is slow) stops as soon as ``count`` are found."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # .example() outside @given is what we want here
        drawn = (case.inputs.example() for _ in range(20 * count))
        accepted = (d for d in drawn if case.reject is None or not case.reject(*d[0], **d[1]))
        return list(itertools.islice(accepted, count))


def test_every_function_has_a_gradcheck_case():
    """Adding a Function to scratchgen without a case here makes this fail (found by
    introspection). Functions defined outside scratchgen's modules (test doubles, mutants,
    documentation examples) are not the library's ops and are not asked for."""
    _import_every_op_module()
    seen = set()
    for case in CASES:
        for arrays, params in _examples(case, count=5):
            out = case.fn(*_leaves(arrays), **params)
            seen |= functions_in_graph(*(out if isinstance(out, tuple) else (out,)))
    missing = {cls.__name__ for cls in all_function_classes()} - {cls.__name__ for cls in seen} - NEEDS_A_GPU - NOT_OPS
    assert not missing, f"Functions without a gradcheck case in tests/gradcases: {sorted(missing)}"


class _OutsideTheLibrary(sg.autograd.Function):
    """A Function defined in a test module: no case asked for, and no flag needed to say so."""

    def forward(self, x):
        return x

    def backward(self, grad):
        return grad


def test_coverage_asks_only_for_functions_defined_in_scratchgen():
    from scratchgen.ops.elementwise import TanhOp
    classes = all_function_classes()
    assert TanhOp in classes
    assert _OutsideTheLibrary not in classes
    assert _OutsideTheLibrary in all_function_classes(package=__name__)
