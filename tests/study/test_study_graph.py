"""viz.graph: the DOT text names the graph's ops, leaves and edges; module collapsing; rendering."""
import re
import shutil

import numpy as np
import pytest

import scratchgen as sg
from scratchgen import nn, viz

NODE = re.compile(r'^\s+(\w+) \[label="([^"]*)"', re.MULTILINE)
EDGE = re.compile(r"^\s+(\w+) -> (\w+)", re.MULTILINE)


def parse(graph):
    """(labels by DOT name, set of (source label, target label)) — labels' first lines."""
    labels = {key: label.split("\\n") for key, label in NODE.findall(graph.source)}
    edges = {(labels[a][0], labels[b][0]) for a, b in EDGE.findall(graph.source)}
    return labels, edges


def test_a_small_graph_has_its_ops_leaves_and_edges():
    x = sg.tensor(np.ones(3), requires_grad=True)
    w = sg.tensor(np.arange(3.0), requires_grad=True)
    loss = (x * w).exp().sum()
    labels, edges = parse(viz.graph(loss, params={"x": x, "w": w}))
    assert sorted(label[0] for label in labels.values()) == ["Exp", "Mul", "Sum", "output", "w", "x"]
    assert edges == {("x", "Mul"), ("w", "Mul"), ("Mul", "Exp"), ("Exp", "Sum"), ("Sum", "output")}
    by_name = {label[0]: label for label in labels.values()}
    assert by_name["Mul"] == ["Mul", "(3,)", "saved 48 B"]       # Mul saves both float64 inputs
    assert by_name["Exp"] == ["Exp", "(3,)", "saved 24 B"]       # Exp saves its output
    assert by_name["w"] == ["w", "(3,) float64"]


def test_unnamed_leaves_and_freed_graphs_are_labelled():
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    labels, edges = parse(viz.graph(y))
    assert ("leaf", "Mul") in edges
    assert {label[0]: label for label in labels.values()}["Mul"][-1] == "saved: freed"


def test_a_tensor_used_three_times_gets_one_node_and_three_edges():
    x = sg.tensor([1.0, 2.0], requires_grad=True)
    h = x.tanh()
    source = viz.graph((h * h + h).sum(), params={"x": x}).source
    assert source.count('label="TanhOp') == 1
    tanh_key = re.search(r'(\w+) \[label="TanhOp', source).group(1)
    assert len(re.findall(rf"^\s+{tanh_key} -> ", source, re.MULTILINE)) == 3  # Mul (twice) and Add


def mlp():
    sg.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))


def test_collapsing_draws_one_box_per_module_with_its_parameters_inside():
    model = mlp()
    with viz.module_scopes(model):
        loss = (model(sg.randn(5, 3)) ** 2).mean()
    labels, edges = parse(viz.graph(loss, params=model, collapse_modules=True))
    assert ("0 (Linear)", "1 (Tanh)") in edges and ("1 (Tanh)", "2 (Linear)") in edges
    assert ("2 (Linear)", "Pow") in edges
    assert not any("weight" in label[0] for label in labels.values())  # folded into the boxes
    by_name = {label[0]: label for label in labels.values()}
    assert by_name["0 (Linear)"][1:] == ["3 ops", "params: weight, bias"]


def test_uncollapsed_graph_names_parameters_from_the_module():
    model = mlp()
    labels, edges = parse(viz.graph(model(sg.randn(2, 3)).sum(), params=model))
    assert ("0.bias", "Add") in edges and ("2.bias", "Add") in edges


def test_collapsing_without_recorded_scopes_says_what_to_do():
    model = mlp()
    with pytest.raises(ValueError, match="module_scopes"):
        viz.graph(model(sg.randn(2, 3)).sum(), params=model, collapse_modules=True)


def test_render_without_graphviz_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    x = sg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="Graphviz program `dot`"):
        viz.graph(x.exp().sum()).render(str(tmp_path / "g.svg"))
    assert viz.graph(x.exp().sum()).save(tmp_path / "g.dot").read_text().startswith("digraph")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_writes_an_svg(tmp_path):
    x = sg.tensor([1.0], requires_grad=True)
    path = viz.graph(x.exp().sum()).render(str(tmp_path / "g.svg"))
    assert "<svg" in open(path, encoding="utf-8").read()
