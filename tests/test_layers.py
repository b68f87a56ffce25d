"""The layers of docs/design.md, kept: every import in the package points down or sideways.

An AST walk reads every ``import`` of every module, the lazy ones inside functions included, and
looks both ends up in ``LAYERS`` (lowest first; a module belongs to the longest prefix listed).
An import of a higher layer fails the test with both files named.
"""
import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# Where each importable package lives in the repository (pyproject's package-dir).
PACKAGES = {"scratchgen": REPO / "scratchgen", "scratchgen.kernels": REPO / "kernels",
            "scratchgen.benchmarks": REPO / "benchmarks"}

# Lowest first. The parts of one layer may import each other.
LAYERS = [
    # with the kernels: the modules that import nothing of the package (version, fault points)
    ("kernels", ["scratchgen.kernels", "scratchgen._version", "scratchgen._faults"]),
    ("backend", ["scratchgen.backend", "scratchgen.random", "scratchgen.cuda", "scratchgen.memory"]),
    ("engine", ["scratchgen.tensor", "scratchgen.autograd", "scratchgen.ops"]),
    ("functional", ["scratchgen.functional"]),
    ("library", ["scratchgen.nn", "scratchgen.optim", "scratchgen.init", "scratchgen.serialize",
                 "scratchgen.testing", "scratchgen.anomaly", "scratchgen.profiler", "scratchgen.viz",
                 "scratchgen.plots", "scratchgen.progress", "scratchgen.mcmc",
                 "scratchgen.distributed", "scratchgen.compiler",
                 "scratchgen.utils"]),
    ("data and eval", ["scratchgen.data", "scratchgen.eval"]),
    ("models", ["scratchgen.models"]),
    ("runner", ["scratchgen.runner", "scratchgen.study"]),
    ("commands", ["scratchgen.cli", "scratchgen.benchmarks", "scratchgen"]),
]


def layer_of(module, layers):
    """(index, name) of the layer holding ``module``: the longest listed prefix wins."""
    best = None
    for index, (_, prefixes) in enumerate(layers):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (index, prefix)
    if best is None:
        raise LookupError(f"{module} is in no layer: add it to LAYERS")
    return best[0]


def modules(packages):
    """{dotted module name: its file} of every .py file under the packages' folders."""
    found = {}
    for package, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def _shown(path):
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def imported_modules(name, path, known):
    """The package modules ``name`` (file ``path``) imports anywhere in its body, lazily or not."""
    is_package = path.name == "__init__.py"
    base = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            origin = node.module or ""
            if node.level:
                anchor = base.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                origin = ".".join(anchor + ([origin] if origin else []))
            # `from . import ops` imports the module scratchgen.ops; `from .ops import cat` the module
            targets = [f"{origin}.{alias.name}" if f"{origin}.{alias.name}" in known else origin
                       for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a module a.b.c, or its package
                target = target.rpartition(".")[0]
            if target:
                yield target, node.lineno


def upward_imports(packages, layers):
    """Every import from a lower layer into a higher one, as readable lines."""
    known = modules(packages)
    problems = []
    for name, path in known.items():
        own = layer_of(name, layers)
        for target, line in imported_modules(name, path, known):
            above = layer_of(target, layers)
            if above > own:
                problems.append(f"{_shown(path)}:{line} (layer {layers[own][0]}) imports {target} "
                                f"({_shown(known[target])}, layer {layers[above][0]})")
    return problems


def test_every_import_points_down_or_sideways():
    problems = upward_imports(PACKAGES, LAYERS)
    assert problems == [], "imports that point up the layers:\n" + "\n".join(problems)


def test_every_module_has_a_layer():
    for name in modules(PACKAGES):
        layer_of(name, LAYERS)  # raises, naming the module, when it is in none


def _plant(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("low_source", [
    "from .top import run\n",                                       # at the top of the module
    "def helper():\n    from .top import run  # lazy\n    return run\n",  # inside a function
    "import toy.top\n",                                             # absolute
    "from . import top\n",                                          # the module itself
])
def test_a_planted_upward_import_is_caught_with_both_files_named(tmp_path, low_source):
    _plant(tmp_path, {"toy/__init__.py": "", "toy/low.py": low_source,
                      "toy/top.py": "from .low import helper\n\ndef run():\n    return 1\n"})
    layers = [("low", ["toy.low"]), ("top", ["toy.top", "toy"])]
    problems = upward_imports({"toy": tmp_path / "toy"}, layers)
    assert len(problems) == 1
    assert f"{tmp_path / 'toy' / 'low.py'}:" in problems[0]
    assert f"imports toy.top ({tmp_path / 'toy' / 'top.py'}, layer top)" in problems[0]


def test_a_downward_import_passes(tmp_path):
    _plant(tmp_path, {"toy/__init__.py": "", "toy/low.py": "X = 1\n",
                      "toy/top.py": "def run():\n    from .low import X\n    return X\n"})
    assert upward_imports({"toy": tmp_path / "toy"}, [("low", ["toy.low"]), ("top", ["toy.top", "toy"])]) == []


def test_docs_design_md_lists_the_same_layers():
    """docs/design.md's layer table (first column and the modules named in the second) is this one."""
    text = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    table = text[text.index("| layer | modules |"):].split("\n\n")[0].splitlines()[2:]
    rows = [[cell.strip() for cell in row.strip("|").split("|")] for row in table]
    assert [row[0] for row in rows] == [name for name, _ in LAYERS]
    for (name, prefixes), row in zip(LAYERS, rows):
        for prefix in prefixes:
            short = prefix.removeprefix("scratchgen.") if prefix != "scratchgen" else "package root"
            assert short.split(".")[-1] in row[1], f"docs/design.md, layer {name}: {prefix} is not named"


def test_nothing_links_to_a_design_file_outside_the_repository():
    documents = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    stale = [str(path.relative_to(REPO)) for path in documents if "DESIGN.md" in path.read_text(encoding="utf-8")]
    assert stale == [], "link docs/design.md instead of DESIGN.md in: " + ", ".join(stale)
    assert "](docs/design.md)" in (REPO / "README.md").read_text(encoding="utf-8")
