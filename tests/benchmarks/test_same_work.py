"""Same work on both sides, always: every model workload that races scratchgen against its
PyTorch twin must make both run the same layers the same number of times on inputs of the same
size. Counted, not trusted: each call of a layer that owns parameters is recorded on both sides
(scratchgen's ``Module.__call__``, torch's global forward hook), keyed by its parameter shapes.

It caught the quick run's diffusion sampler: scratchgen drew with the dry run's 2 DDIM steps,
the twin with the config's 50 (a "ratio" of 0.07 that measured nothing)."""
import collections

import numpy as np
import pytest

from conftest import require_torch
from scratchgen import nn
from scratchgen.benchmarks import models
from scratchgen.benchmarks.workload import Options, Skip

OPTIONS = Options.for_quick_run(impls=("reference",))  # no JIT compilation: the count is what matters


def _signature(module, args):
    """(parameter shapes, elements of the first array argument or None): one layer call."""
    shapes = tuple(tuple(p.shape) for p in module._parameters.values() if p is not None)
    first = next((a for a in args if hasattr(a, "shape")), None)
    size = None if first is None else int(np.prod(first.shape))
    return shapes, size


def layer_calls_of_scratchgen(run):
    calls = collections.defaultdict(list)
    original = nn.Module.__call__

    def counting(self, *args, **kwargs):
        shapes, size = _signature(self, args)
        if shapes:
            calls[shapes].append(size)
        return original(self, *args, **kwargs)

    nn.Module.__call__ = counting
    try:
        run()
    finally:
        nn.Module.__call__ = original
    return calls


def layer_calls_of_torch(run):
    torch = require_torch()
    calls = collections.defaultdict(list)

    def hook(module, args, output):
        shapes, size = _signature(module, args)
        if shapes:
            calls[shapes].append(size)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        run()
    finally:
        handle.remove()
    return calls


def differences(ours, theirs):
    """Layers both sides have, called a different number of times or on inputs of other sizes
    (a layer one side writes as a plain parameter, not a module, is an implementation choice)."""
    found = []
    for shapes in ours.keys() & theirs.keys():
        a, b = ours[shapes], theirs[shapes]
        sizes_known = None not in a and None not in b
        if len(a) != len(b) or (sizes_known and sorted(a) != sorted(b)):
            found.append(f"layer with parameters {shapes}: scratchgen {len(a)} calls on {sorted(a, key=str)[:4]}..., "
                         f"torch {len(b)} calls on {sorted(b, key=str)[:4]}...")
    return found


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.parametrize("workload", models.workloads(OPTIONS), ids=lambda w: w.name)
def test_both_contenders_do_the_same_work(workload):
    require_torch()
    contenders = workload.setup(OPTIONS)
    twin = contenders.get("torch")
    if isinstance(twin, Skip):
        pytest.skip(twin.reason)  # no twin: nothing races, nothing to compare
    assert isinstance(twin, dict), f"{workload.name}: the twin's setup failed: {twin}"
    ours = contenders["scratchgen[reference]"]
    assert isinstance(ours, dict), f"{workload.name}: scratchgen's setup failed: {ours}"
    assert ours.keys() == twin.keys()
    for name in ours:
        counted_ours, counted_twin = layer_calls_of_scratchgen(ours[name]), layer_calls_of_torch(twin[name])
        assert counted_ours.keys() & counted_twin.keys(), f"{workload.name}: no layer in common to compare"
        problems = differences(counted_ours, counted_twin)
        assert not problems, f"{workload.name} ({name}) does different work on the two sides:\n" + "\n".join(problems)


@pytest.mark.torch
def test_the_readme_names_exactly_the_models_without_a_twin():
    require_torch()  # the twins import it
    import pathlib
    import re

    from scratchgen.models import get_recipe, recipe_names
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
    claim = re.search(r"Every model except (.*?) has a PyTorch\s+twin", readme)
    assert claim, "README no longer says which models lack a PyTorch twin"
    named = set(re.findall(r"`(\w+)`", claim.group(1)))
    shipped = [name for name in recipe_names()   # not recipes that docs' examples register while tested
               if get_recipe(name).__module__.startswith("scratchgen.models.")]
    without = {name for name in shipped if models.twin_module(name) is None}
    assert named == without, f"README names {sorted(named)} as twinless; the code has {sorted(without)}"
