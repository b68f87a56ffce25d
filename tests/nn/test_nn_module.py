"""Module mechanics: registration, nested names, state_dict/load_state_dict, modes, repr, devices."""
from collections import OrderedDict

import numpy as np
import pytest

import scratchgen as sg
from scratchgen import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.norm = nn.BatchNorm1d(4)
        self.scale = nn.Parameter(sg.ones(1))
        self.register_buffer("steps", sg.zeros(1))
        self.register_buffer("scratch", sg.zeros(2), persistent=False)
        self.plain = sg.zeros(3)  # an unregistered tensor attribute stays out of the state

    def forward(self, x):
        return self.norm(self.fc(x)) * self.scale


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(4, 2))
        self.heads = nn.ModuleDict({"a": nn.Linear(2, 1)})

    def forward(self, x):
        for block in self.blocks:
            x = block(x[..., :3])
        return self.heads["a"](self.head(x))


def test_registration_and_nested_names():
    model = Model()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["blocks.0.scale", "blocks.0.fc.weight", "blocks.0.fc.bias", "blocks.0.norm.weight",
                     "blocks.0.norm.bias", "blocks.1.scale", "blocks.1.fc.weight", "blocks.1.fc.bias",
                     "blocks.1.norm.weight", "blocks.1.norm.bias", "head.1.weight", "head.1.bias",
                     "heads.a.weight", "heads.a.bias"]
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in model.parameters())
    buffers = [name for name, _ in model.named_buffers()]
    assert "blocks.0.scratch" in buffers and "blocks.1.norm.running_var" in buffers
    assert [name for name, _ in model.named_children()] == ["blocks", "head", "heads"]
    assert [name for name, _ in model.named_modules()][:4] == ["", "blocks", "blocks.0", "blocks.0.fc"]
    assert len(list(model.modules())) == len(dict(model.named_modules()))
    assert model.get_submodule("blocks.1.norm") is model.blocks[1].norm


def test_state_dict_order_matches_pytorch_and_skips_non_persistent():
    keys = list(Block().state_dict())
    # A module's own parameters, then its persistent buffers, then its children in order.
    assert keys == ["scale", "steps", "fc.weight", "fc.bias", "norm.weight", "norm.bias", "norm.running_mean",
                    "norm.running_var", "norm.num_batches_tracked"]


def test_state_dict_holds_numpy_copies():
    layer = nn.Linear(2, 2)
    state = layer.state_dict()
    assert isinstance(state, OrderedDict) and all(isinstance(v, np.ndarray) for v in state.values())
    state["weight"][...] = 7
    assert not np.any(layer.weight.data == 7)


def test_load_state_dict_round_trip_between_instances():
    source, target = Model(), Model()
    target.load_state_dict(source.state_dict())
    for (name, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    x = sg.randn(5, 3)
    source.eval(), target.eval()
    np.testing.assert_array_equal(source(x).numpy(), target(x).numpy())


def test_strict_load_names_every_bad_key_at_once():
    model = Block()
    state = model.state_dict()
    del state["fc.bias"], state["norm.running_mean"]
    state["fc.weight"] = np.zeros((3, 4), np.float32)
    state["extra.weight"] = np.zeros(1)
    before = model.fc.weight.data.copy()
    with pytest.raises(RuntimeError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    for key in ("fc.bias", "norm.running_mean", "extra.weight",
                "fc.weight: expected shape (4, 3), got (3, 4)"):
        assert key in message
    np.testing.assert_array_equal(model.fc.weight.data, before)  # all or nothing


def test_non_strict_load_reports_but_still_rejects_shapes():
    model = Block()
    state = model.state_dict()
    del state["scale"]
    state["unknown"] = np.zeros(2)
    state["fc.bias"] = np.full(4, 3.0)
    result = model.load_state_dict(state, strict=False)
    assert result.missing_keys == ["scale"] and result.unexpected_keys == ["unknown"]
    np.testing.assert_array_equal(model.fc.bias.data, np.full(4, 3.0, np.float32))
    assert model.fc.bias.dtype == np.float32  # the parameter keeps its dtype
    state["fc.bias"] = np.zeros(5)
    with pytest.raises(RuntimeError, match="shape mismatches"):
        model.load_state_dict(state, strict=False)


def test_train_eval_propagate():
    model = Model()
    assert model.training and all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.blocks.train()
    assert model.blocks[1].norm.training and not model.head.training


def test_zero_grad_sets_none_or_zero():
    model = Model()
    model(sg.randn(4, 3)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=False)
    assert all(not np.any(p.grad.data) for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_to_dtype_casts_floats_in_place_and_keeps_counters():
    model = Block()
    weight = model.fc.weight
    assert model.to(sg.float64) is model
    assert model.fc.weight is weight and weight.dtype == np.float64
    assert model.norm.running_var.dtype == np.float64 and model.steps.dtype == np.float64
    assert model.norm.num_batches_tracked.dtype == np.int64
    assert model(sg.randn(5, 3, dtype=sg.float64)).dtype == np.float64
    model.to("float32")
    assert all(p.dtype == np.float32 for p in model.parameters())
    with pytest.raises(TypeError, match="floating-point"):
        model.to(sg.int64)


def test_repr_is_a_tree_with_parameter_counts():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Sequential(nn.Linear(4, 2)))
    text = repr(model)
    assert text.splitlines()[1] == "  (0): Linear(in_features=3, out_features=4, bias=True)  # 16 parameters"
    assert "  (1): ReLU()" in text and "    (0): Linear(in_features=4, out_features=2, bias=True)" in text
    assert text.endswith(")  # 26 parameters")


def test_assignment_rules():
    model = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="Parameter or None"):
        model.weight = sg.zeros(2, 2)
    model.bias = None
    assert [n for n, _ in model.named_parameters()] == ["weight"]
    model.bias = nn.Parameter(sg.zeros(2))
    assert [n for n, _ in model.named_parameters()] == ["weight", "bias"]
    del model.bias
    assert not hasattr(model, "bias")

    class Early(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(sg.zeros(1))

    with pytest.raises(AttributeError, match="super"):
        Early()


def test_shared_parameter_listed_once_and_apply_visits_all():
    shared = nn.Linear(2, 2)
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(model.parameters())) == 2
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]  # as PyTorch
    visited = []
    model.apply(lambda m: visited.append(type(m).__name__))
    assert visited == ["Linear", "ReLU", "Sequential"]


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and isinstance(seq[1:], nn.Sequential)
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    assert list(seq[1:].state_dict()) == ["2.weight", "2.bias"]  # slices keep the names
    named = nn.Sequential(OrderedDict([("encode", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(named.state_dict()) == ["encode.weight", "encode.bias"]
    layers = nn.ModuleList([nn.Linear(1, 1)])
    layers.append(nn.Linear(1, 2))
    layers[0] = nn.Identity()
    assert [type(m).__name__ for m in layers] == ["Identity", "Linear"]
    assert list(layers.state_dict()) == ["1.weight", "1.bias"]
    with pytest.raises(IndexError):
        layers[2]
    heads = nn.ModuleDict({"b": nn.Linear(1, 1)})
    heads["a"] = nn.Linear(1, 1)
    assert list(heads) == ["b", "a"] and "a" in heads and len(heads) == 2


def test_parameter_is_a_slotted_tensor():
    param = nn.Parameter(sg.randn(2, 3))
    assert isinstance(param, sg.Tensor) and param.requires_grad and param.is_leaf
    assert not hasattr(param, "__dict__")
    assert repr(param).startswith("Parameter containing:")
    frozen = nn.Parameter(sg.zeros(2), requires_grad=False)
    assert not frozen.requires_grad
