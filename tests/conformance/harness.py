"""The conformance harness: a PyTorch script runs on scratchgen with nothing changed but its imports.

The convention every script in ``tests/conformance/scripts/<name>.py`` follows
-----------------------------------------------------------------------------
* Plain PyTorch code. Its imports, one per line at the top level, are only these:
  ``import torch``, ``import torch.nn as nn``, ``import torch.nn.functional as F``,
  ``from torch.utils.data import <names>``, ``import numpy as np`` and ``import math``.
* ``def build():`` returns the model (an ``nn.Module``), or None when the script has none.
* ``def run(model) -> dict[str, numpy array]``: does the work on the model ``build`` made (forward,
  backward, optimizer steps, ...) and returns every quantity to compare, as NumPy arrays
  (``tensor.detach().numpy()``; plain numbers through ``np.array``).
* Inputs come from NumPy (``np.random.default_rng(seed)``), never from torch's random functions: the
  two libraries draw different numbers. For the same reason a shuffled DataLoader's order is not
  compared (only order-free results of it), and no dropout is active.

What the harness does (``check_script``)
----------------------------------------
1. Runs the script with PyTorch: ``model = build()``; the model's ``state_dict`` is copied (as NumPy
   arrays) before ``run(model)`` gives the expected outputs.
2. Rewrites the import lines, and only those: the module path's leading ``torch`` becomes
   ``scratchgen`` (``import torch`` -> ``import scratchgen as torch``, ``import torch.nn as nn`` ->
   ``import scratchgen.nn as nn``, ``from torch.utils.data import X`` -> ``from scratchgen.utils.data
   import X``). Any other import is refused, naming the line.
3. Runs the rewritten source: ``build()``, then the PyTorch model's initial state dict is loaded
   into it (the same starting weights), then ``run``.
4. Compares every output: the same names, shapes and dtypes, values within float32 tolerance
   (rtol 1e-4, atol 1e-5 unless a caller asks for other).
"""
import ast
import pathlib
import re

import numpy as np

SCRIPTS = pathlib.Path(__file__).resolve().parent / "scripts"
ALLOWED_IMPORTS = {"import torch", "import torch.nn as nn", "import torch.nn.functional as F",
                   "import numpy as np", "import math"}
_FROM_TORCH_DATA = re.compile(r"from torch\.utils\.data import [\w, ]+")


def script_names():
    return sorted(path.stem for path in SCRIPTS.glob("*.py"))


def swap_imports(source, name="script"):
    """The script's source with torch's imports pointing at scratchgen (see the module docstring)."""
    lines = source.splitlines()
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        line = lines[node.lineno - 1].strip()
        if line not in ALLOWED_IMPORTS and not _FROM_TORCH_DATA.fullmatch(line):
            raise ValueError(f"{name}, line {node.lineno}: {line!r} is not an import the conformance "
                             f"convention allows (expected one of {sorted(ALLOWED_IMPORTS)} or "
                             "'from torch.utils.data import ...')")
        if line == "import torch":
            line = "import scratchgen as torch"
        elif "torch" in line:
            line = re.sub(r"\btorch\b", "scratchgen", line, count=1)
        lines[node.lineno - 1] = line
    return "\n".join(lines) + "\n"


def execute(source, name):
    """The script's namespace after running its source (``build`` and ``run`` defined there)."""
    namespace = {"__name__": f"conformance_{name}"}
    exec(compile(source, f"<conformance script {name}>", "exec"), namespace)
    return namespace


def run_with_torch(source, name):
    """(the model's initial state dict as NumPy arrays or None, the outputs)."""
    namespace = execute(source, name)
    model = namespace["build"]()
    initial = None if model is None else {key: value.detach().cpu().numpy().copy()
                                          for key, value in model.state_dict().items()}
    return initial, namespace["run"](model)


def run_with_scratchgen(source, name, initial):
    namespace = execute(swap_imports(source, name), name)
    model = namespace["build"]()
    if model is not None:
        model.load_state_dict(initial)
    return namespace["run"](model)


def compare(expected, actual, name, rtol=1e-4, atol=1e-5):
    """Raise an AssertionError naming the script, the output and the worst element on any difference."""
    if set(expected) != set(actual):
        raise AssertionError(f"{name}: outputs {sorted(actual)} differ from PyTorch's {sorted(expected)}")
    for key, reference in expected.items():
        reference, value = np.asarray(reference), np.asarray(actual[key])
        if value.shape != reference.shape or value.dtype != reference.dtype:
            raise AssertionError(f"{name}, output {key!r}: shape {value.shape} dtype {value.dtype}, "
                                 f"PyTorch's {reference.shape} {reference.dtype}")
        np.testing.assert_allclose(value, reference, rtol=rtol, atol=atol, err_msg=f"{name}, output {key!r}")


def check_script(name, rtol=1e-4, atol=1e-5):
    """Run ``scripts/<name>.py`` with torch and with scratchgen and compare (steps 1-4 above)."""
    source = (SCRIPTS / f"{name}.py").read_text(encoding="utf-8")
    initial, expected = run_with_torch(source, name)
    actual = run_with_scratchgen(source, name, initial)
    compare(expected, actual, name, rtol, atol)
    return expected, actual
