"""Each kernel family's docstring names exactly the implementations the family has.

The implementations are the family's modules named in ``kernels.IMPLEMENTATIONS`` (``reference``,
``cpu``, ``gpu``); a docstring that promises one which is not there, or forgets one which is (or
says one "will be" added), fails here.
"""
import importlib
import pkgutil
import re

import pytest

from scratchgen import kernels

FAMILIES = sorted(module.name for module in pkgutil.iter_modules(kernels.__path__) if module.ispkg)


def implementations_present(family):
    package = importlib.import_module(f"scratchgen.kernels.{family}")
    modules = {module.name for module in pkgutil.iter_modules(package.__path__)}
    return {name for name in kernels.IMPLEMENTATIONS if name in modules}


def implementations_named(docstring):
    """The implementation names the docstring mentions as words (``cpu``, cpu, "gpu" ...)."""
    return {name for name in kernels.IMPLEMENTATIONS if re.search(rf"\b{name}\b", docstring)}


def test_the_families_are_found():
    assert {"attention", "conv", "recurrence"} <= set(FAMILIES)


def docstring_problems(docstring, present):
    """What is stale in a family docstring, given the implementations ``present``."""
    problems = []
    named = implementations_named(docstring)
    if named != present:
        problems.append(f"names {sorted(named)}, has {sorted(present)}")
    if "will be" in docstring:
        problems.append("promises an implementation to come")
    counted = re.search(r"\b(Two|Three|Four) modules implement\b", docstring)
    if counted and counted[1] != {2: "Two", 3: "Three", 4: "Four"}.get(len(present)):
        problems.append(f"says {counted[1]} modules, has {len(present)}")
    return problems


@pytest.mark.parametrize("family", FAMILIES)
def test_docstring_names_exactly_the_implementations_the_family_has(family):
    docstring = importlib.import_module(f"scratchgen.kernels.{family}").__doc__ or ""
    assert docstring_problems(docstring, implementations_present(family)) == [], family


def test_a_stale_docstring_is_caught():
    stale = "Two modules implement one contract (``gpu`` will be the third): reference, cpu."
    problems = docstring_problems(stale, {"reference", "cpu", "gpu"})
    assert len(problems) == 2 and "promises" in problems[0] and "says Two" in problems[1]
    assert docstring_problems("reference and cpu", {"reference", "cpu", "gpu"}) == \
        ["names ['cpu', 'reference'], has ['cpu', 'gpu', 'reference']"]
