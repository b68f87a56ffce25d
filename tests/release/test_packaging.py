"""The package as it installs: every subpackage is in the wheel, the license is an SPDX string,
and the test-only strategies say which extra they need."""
import os
import subprocess
import sys
import tomllib

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pyproject():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)


def _installed_name(folder, package_dir):
    """The dotted name a source folder installs as, through pyproject's package-dir mapping."""
    for name, source in sorted(package_dir.items(), key=lambda item: -len(item[1])):
        if folder == source or folder.startswith(source + "/"):
            return (name + folder[len(source):]).replace("/", ".")
    return None


def test_every_folder_with_an_init_is_packaged():
    setuptools = _pyproject()["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    missing = []
    for top in sorted(set(setuptools["package-dir"].values())):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            if "__init__.py" in files and "__pycache__" not in folder:
                name = _installed_name(os.path.relpath(folder, ROOT).replace(os.sep, "/"),
                                       setuptools["package-dir"])
                if name not in listed:
                    missing.append(name)
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {missing}"


def test_license_is_an_spdx_string_with_a_setuptools_that_accepts_it():
    project = _pyproject()
    assert isinstance(project["project"]["license"], str)
    floor = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")][0]
    assert int(floor.split(">=")[1].split(".")[0]) >= 77, floor


def test_strategies_without_hypothesis_name_the_test_extra():
    code = ("import sys; sys.modules['hypothesis'] = None\n"
            "try:\n    import scratchgen.testing.strategies\n"
            "except ImportError as error:\n    print(error)\n")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "scratchgen[test]" in shown, shown
