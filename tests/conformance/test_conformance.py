"""PyTorch scripts (tests/conformance/scripts) run once with torch and once with scratchgen behind
the same names; every output agrees at float32 tolerance (the harness's docstring has the rules)."""
import numpy as np
import pytest
from conftest import require_torch
from harness import check_script, compare, script_names, swap_imports


@pytest.mark.torch
@pytest.mark.parametrize("name", script_names())
def test_a_pytorch_script_runs_on_scratchgen_with_the_same_outputs(name):
    require_torch()
    expected, _ = check_script(name)
    assert expected, f"{name}: run() returned nothing to compare"


def test_the_scripts_are_there():
    assert {"mlp", "cnn_batchnorm", "custom_function", "scheduler_sweep", "dataloader"} <= set(script_names())


def test_only_import_lines_are_rewritten():
    source = ("import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"
              "from torch.utils.data import DataLoader, TensorDataset\nimport numpy as np\n"
              "x = 'import torch'  # torch stays torch here\n")
    assert swap_imports(source).splitlines() == [
        "import scratchgen as torch", "import scratchgen.nn as nn", "import scratchgen.nn.functional as F",
        "from scratchgen.utils.data import DataLoader, TensorDataset", "import numpy as np",
        "x = 'import torch'  # torch stays torch here"]


@pytest.mark.parametrize("line", ["import torchvision", "from torch import nn", "import torch.optim as optim",
                                  "import os"])
def test_an_import_outside_the_convention_is_refused_naming_it(line):
    with pytest.raises(ValueError, match=f"line 2: '{line}' is not an import"):
        swap_imports(f"import torch\n{line}\n", "planted")


def test_a_difference_is_reported_with_the_output_named():
    with pytest.raises(AssertionError, match="planted, output 'loss'"):
        compare({"loss": np.array([1.0, 2.0])}, {"loss": np.array([1.0, 2.1])}, "planted")
    with pytest.raises(AssertionError, match="dtype"):
        compare({"n": np.array([1])}, {"n": np.array([1.0])}, "planted")
