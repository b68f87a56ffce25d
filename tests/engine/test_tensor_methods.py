"""Tensor's methods are written out in tensor.py, each calling the op of the same name: they must
keep the op's parameters (names, order, defaults) — and no method may silently stop existing."""
import inspect

import pytest

from scratchgen import ops
from scratchgen.tensor import Tensor

MODULES = (ops.elementwise, ops.reduction, ops.shape, ops.linalg)
# methods whose PyTorch signature is not the function's: Tensor.where(condition, other) puts self
# between the two (torch.where(condition, self, other))
PYTORCH_ORDER = {"where"}
WRAPPERS = sorted((module.__name__.rsplit(".", 1)[1], name) for module in MODULES
                  for name, method in vars(Tensor).items()
                  if inspect.isfunction(method) and inspect.isfunction(getattr(module, name, None))
                  and f"_ops.{module.__name__.rsplit('.', 1)[1]}.{name}(" in inspect.getsource(method)
                  and name not in PYTORCH_ORDER)


def _rest(signature, rename=None):
    """The parameters after the first, as (kind, default) with names (``b`` read as ``other``)."""
    params = list(signature.parameters.values())[1:]
    return [((rename or {}).get(p.name, p.name), p.kind, p.default) for p in params]


def test_the_usual_methods_are_written_out():
    names = {name for _, name in WRAPPERS}
    assert {"sum", "mean", "reshape", "permute", "softmax", "exp", "matmul", "clamp", "unsqueeze"} <= names
    assert not hasattr(Tensor, "__getattr__")


@pytest.mark.parametrize("module, name", WRAPPERS)
def test_a_method_takes_the_parameters_of_its_op(module, name):
    op = getattr(getattr(ops, module), name)
    method = vars(Tensor)[name]
    assert _rest(inspect.signature(method)) == _rest(inspect.signature(op), rename={"b": "other"})
