"""The committed graph figures match what the code draws today. Regenerate them with
``python docs/figures.py`` (needs Graphviz's ``dot``); this test needs no Graphviz: it compares
each SVG's nodes (id and label lines) and edges with the DOT text the code produces now."""
import importlib.util
import pathlib
import re
import xml.etree.ElementTree as ElementTree

import pytest

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"
SVG = "{http://www.w3.org/2000/svg}"
NODE = re.compile(r'^\s*(\w+) \[label="((?:[^"\\]|\\.)*)"', re.MULTILINE)
EDGE = re.compile(r"^\s*(\w+) -> (\w+)", re.MULTILINE)


def _figures_module():
    spec = importlib.util.spec_from_file_location("docs_figures", DOCS / "figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FIGURES = _figures_module()


def drawn_from_dot(source):
    nodes = {name: label.replace('\\"', '"').split("\\n") for name, label in NODE.findall(source)}
    return nodes, sorted(EDGE.findall(source))


def drawn_in_svg(path):
    nodes, edges = {}, []
    for group in ElementTree.parse(path).getroot().iter(f"{SVG}g"):
        title = group.find(f"{SVG}title").text
        if group.get("class") == "node":
            nodes[title] = [text.text or "" for text in group.iter(f"{SVG}text")]
        elif group.get("class") == "edge":
            edges.append(tuple(title.split("->")))
    return nodes, sorted(edges)


@pytest.mark.parametrize("name", sorted(FIGURES.GRAPH_FIGURES))
def test_the_committed_graph_figure_is_what_the_code_draws(name):
    expected_nodes, expected_edges = drawn_from_dot(FIGURES.graph_figure(name).source)
    nodes, edges = drawn_in_svg(DOCS / "figures" / name)
    assert expected_nodes, "no node parsed from the DOT text: has its format changed?"
    stale = {node: (nodes.get(node), label) for node, label in expected_nodes.items() if nodes.get(node) != label}
    extra = set(nodes) - set(expected_nodes)
    assert not stale and not extra and edges == expected_edges, (
        f"docs/figures/{name} no longer matches the code (regenerate: python docs/figures.py); "
        f"nodes that differ (svg, now): {dict(list(stale.items())[:5])}; nodes gone: {sorted(extra)[:5]}")
