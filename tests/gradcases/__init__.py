"""Every differentiable op's property-test case, gathered from the modules of this package.

Each module defines ``CASES``, a list of ``scratchgen.testing.strategies.GradCase``; adding a
module here is all it takes for ``test_gradients.py`` to gradcheck it and compare it with PyTorch.
"""
import importlib
import pkgutil


def all_cases():
    cases = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        cases.extend(importlib.import_module(f"{__name__}.{info.name}").CASES)
    names = [case.name for case in cases]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ValueError(f"gradcases: names used twice: {sorted(duplicated)}")
    return cases
