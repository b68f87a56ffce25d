"""docs/differences.md stays true: every name it lists as present exists, every name it lists as
not there yet does not, and the README points at it."""
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEXT = (ROOT / "docs" / "differences.md").read_text(encoding="utf-8")
NAME = re.compile(r"`(scratchgen(?:\.\w+)+)`")


def section(title):
    start = TEXT.index(f"\n## {title}\n")
    end = TEXT.find("\n## ", start + 1)
    return TEXT[start:end if end != -1 else None]


def resolve(dotted):
    """The object a dotted name denotes: the longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(dotted)


PRESENT = NAME.findall(section("Present"))
ABSENT = NAME.findall(section("Not there yet"))


def test_the_lists_are_read():
    assert len(PRESENT) > 50 and "scratchgen.einsum" in PRESENT and ABSENT


@pytest.mark.parametrize("name", PRESENT)
def test_a_name_listed_as_present_exists(name):
    assert resolve(name) is not None


@pytest.mark.parametrize("name", ABSENT)
def test_a_name_listed_as_not_there_yet_is_absent(name):
    with pytest.raises((ImportError, AttributeError)):
        resolve(name)


def test_the_readme_points_here():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "## Coming from PyTorch" in readme and "](docs/differences.md)" in readme
