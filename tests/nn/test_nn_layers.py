"""Layers against PyTorch: a state_dict moves both ways and gives the same outputs; activation and
loss modules equal their PyTorch twins; Embedding's padding row, Dropout's modes, Flatten/Unflatten."""
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen as sg
from conftest import require_torch
from scratchgen import nn


def _pairs(torch):
    """(scratchgen layer, PyTorch layer, input maker) for every layer with state."""
    rng = np.random.default_rng(0)

    def floats(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return {
        "Linear": (nn.Linear(5, 3), torch.nn.Linear(5, 3), lambda: floats(4, 5)),
        "Linear-no-bias": (nn.Linear(5, 3, bias=False), torch.nn.Linear(5, 3, bias=False),
                           lambda: floats(2, 5)),
        "Embedding": (nn.Embedding(7, 4, padding_idx=0), torch.nn.Embedding(7, 4, padding_idx=0),
                      lambda: rng.integers(0, 7, size=(3, 5))),
        "LayerNorm": (nn.LayerNorm(6), torch.nn.LayerNorm(6), lambda: floats(2, 6)),
        "GroupNorm": (nn.GroupNorm(2, 4), torch.nn.GroupNorm(2, 4), lambda: floats(2, 4, 3)),
        "BatchNorm1d": (nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3), lambda: floats(5, 3)),
        "BatchNorm2d": (nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3), lambda: floats(2, 3, 2, 2)),
        "Sequential": (nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2)),
                       torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(),
                                           torch.nn.Linear(8, 2)), lambda: floats(6, 4)),
    }


def _randomise(module):
    """Make every float entry distinct from the defaults, so a misrouted name shows."""
    state = module.state_dict()
    for name, value in state.items():
        if value.dtype.kind == "f":
            value[...] = np.abs(np.random.default_rng(len(name)).standard_normal(value.shape)) + 0.5
        else:
            value[...] = 7
    module.load_state_dict(state)


def _outputs(torch, ours, twin, x):
    return ours(sg.tensor(x)).numpy(), twin(torch.from_numpy(x)).detach().numpy()


@pytest.mark.parametrize("name", ["Linear", "Linear-no-bias", "Embedding", "LayerNorm", "GroupNorm",
                                  "BatchNorm1d", "BatchNorm2d", "Sequential"])
def test_state_dict_moves_to_pytorch_and_back(name):
    torch = require_torch()
    ours, twin, make_input = _pairs(torch)[name]
    assert list(ours.state_dict()) == list(twin.state_dict())
    for key, value in ours.state_dict().items():
        reference = twin.state_dict()[key].numpy()
        assert value.shape == reference.shape and value.dtype == reference.dtype, key

    _randomise(ours)  # scratchgen -> PyTorch
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    for mode in ("train", "eval"):
        getattr(ours, mode)(), getattr(twin, mode)()
        x = make_input()
        np.testing.assert_allclose(*_outputs(torch, ours, twin, x), rtol=1e-5, atol=1e-5, err_msg=mode)

    fresh = _pairs(torch)[name][0]  # PyTorch -> scratchgen (torch tensors load directly)
    fresh.load_state_dict(twin.state_dict())
    fresh.eval(), twin.eval()
    x = make_input()
    np.testing.assert_allclose(*_outputs(torch, fresh, twin, x), rtol=1e-5, atol=1e-5)
    for key, value in twin.state_dict().items():
        np.testing.assert_array_equal(fresh.state_dict()[key], value.numpy(), err_msg=key)


def test_default_initialisation_has_pytorchs_scale():
    sg.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    for param in (layer.weight.data, layer.bias.data):
        assert np.abs(param).max() <= bound and np.abs(param).max() > 0.95 * bound
    assert abs(layer.weight.data.std() - bound / np.sqrt(3)) < 0.01 * bound  # U(-b, b) has std b / sqrt(3)
    embedding = nn.Embedding(1000, 50, padding_idx=-1)
    assert embedding.padding_idx == 999 and not np.any(embedding.weight.data[999])
    assert abs(embedding.weight.data[:999].std() - 1) < 0.02
    sg.manual_seed(5)
    first = nn.Linear(3, 3).weight.data.copy()
    sg.manual_seed(5)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.data, first)


def test_embedding_padding_row_gets_no_gradient():
    embedding = nn.Embedding(5, 3, padding_idx=2)
    indices = sg.tensor([[2, 1, 2], [4, 2, 1]])
    embedding(indices).sum().backward()
    grad = embedding.weight.grad.numpy()
    np.testing.assert_array_equal(grad[2], 0)
    np.testing.assert_array_equal(grad[1], 2)
    np.testing.assert_array_equal(grad[0], 0)


def test_dropout_train_and_eval():
    sg.manual_seed(0)
    dropout = nn.Dropout(0.25)
    x = sg.ones(200, 50)
    out = dropout(x).numpy()
    assert set(np.unique(out)) <= {0.0, np.float32(1 / 0.75)}
    assert abs((out == 0).mean() - 0.25) < 0.02
    assert dropout.eval()(x) is x
    with pytest.raises(ValueError, match=r"p in \[0, 1\]"):
        nn.Dropout(1.5)


def test_flatten_unflatten_identity():
    x = sg.randn(2, 3, 4, 5)
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Unflatten(1, (3, 20))(nn.Flatten()(x)).shape == (2, 3, 20)
    assert nn.Unflatten(-1, (5, 1))(x).shape == (2, 3, 4, 5, 1)
    assert nn.Identity(7, unused=True)(x) is x


ACTIVATIONS = [("ReLU", {}), ("LeakyReLU", {"negative_slope": 0.2}), ("ELU", {"alpha": 0.7}), ("GELU", {}),
               ("GELU", {"approximate": "tanh"}), ("SiLU", {}), ("Sigmoid", {}), ("Tanh", {}),
               ("Softplus", {"beta": 2.0}), ("Softmax", {"dim": 1}), ("LogSoftmax", {"dim": -1})]


@pytest.mark.parametrize("name, options", ACTIVATIONS, ids=[f"{n}{o}" for n, o in ACTIVATIONS])
def test_activation_modules_match_pytorch(name, options):
    torch = require_torch()
    x = np.random.default_rng(0).uniform(-4, 4, size=(3, 5))
    ours = getattr(nn, name)(**options)
    twin = getattr(torch.nn, name)(**options)
    x_ours, x_torch = sg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, out_torch = ours(x_ours), twin(x_torch)
    np.testing.assert_allclose(out.numpy(), out_torch.detach().numpy(), rtol=1e-10, atol=1e-12)
    (out * out).sum().backward()
    (out_torch * out_torch).sum().backward()
    np.testing.assert_allclose(x_ours.grad.numpy(), x_torch.grad.numpy(), rtol=1e-9, atol=1e-12)
    for key, value in options.items():
        assert f"{key}={value!r}" in repr(ours)


def _loss_inputs(name, rng):
    logits = rng.standard_normal((4, 3))
    if name in ("CrossEntropyLoss", "NLLLoss"):
        return logits, np.array([0, 1, 2, 1])  # every class, and one ignored only where asked
    if name == "BCEWithLogitsLoss":
        return logits, rng.uniform(0, 1, size=(4, 3))
    return logits, rng.standard_normal((4, 3))


LOSSES = [("MSELoss", {}), ("L1Loss", {"reduction": "sum"}), ("CrossEntropyLoss", {"label_smoothing": 0.1}),
          ("CrossEntropyLoss", {"weight": [1.0, 2.0, 0.5]}), ("NLLLoss", {"ignore_index": 1}),
          ("BCEWithLogitsLoss", {"pos_weight": [1.0, 3.0, 0.5]}),
          ("BCEWithLogitsLoss", {"weight": [2.0, 1.0, 1.0]}),
          ("MSELoss", {"reduction": "none"})]


@pytest.mark.parametrize("name, options", LOSSES, ids=[f"{n}{o}" for n, o in LOSSES])
def test_loss_modules_match_pytorch(name, options):
    torch = require_torch()
    logits, target = _loss_inputs(name, np.random.default_rng(3))
    weights = {k: np.asarray(v) for k, v in options.items() if k in ("weight", "pos_weight")}
    ours = getattr(nn, name)(**{**options, **{k: sg.tensor(v, dtype=sg.float64) for k, v in weights.items()}})
    twin = getattr(torch.nn, name)(**{**options, **{k: torch.tensor(v) for k, v in weights.items()}})
    assert list(ours.state_dict()) == list(twin.state_dict())  # class weights are buffers in both
    x_ours, x_torch = sg.tensor(logits, requires_grad=True), torch.tensor(logits, requires_grad=True)
    out, out_torch = ours(x_ours, sg.tensor(target)), twin(x_torch, torch.tensor(target))
    np.testing.assert_allclose(out.numpy(), out_torch.detach().numpy(), rtol=1e-10, atol=1e-12)
    out.sum().backward()
    out_torch.sum().backward()
    np.testing.assert_allclose(x_ours.grad.numpy(), x_torch.grad.numpy(), rtol=1e-9, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(batch=st.lists(st.integers(1, 3), min_size=0, max_size=2), features=st.integers(1, 5),
       out_features=st.integers(1, 5), seed=st.integers(0, 100))
def test_linear_on_any_leading_shape_matches_pytorch(batch, features, out_features, seed):
    torch = require_torch()
    sg.manual_seed(seed)
    ours = nn.Linear(features, out_features, dtype=sg.float64)
    twin = torch.nn.Linear(features, out_features, dtype=torch.float64)
    twin.load_state_dict(OrderedDict((k, torch.from_numpy(v)) for k, v in ours.state_dict().items()))
    x = np.random.default_rng(seed).standard_normal((*batch, features))
    x_ours, x_torch = sg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, out_torch = ours(x_ours), twin(x_torch)
    np.testing.assert_allclose(out.numpy(), out_torch.detach().numpy(), rtol=1e-12, atol=1e-12)
    out.sum().backward(), out_torch.sum().backward()
    np.testing.assert_allclose(x_ours.grad.numpy(), x_torch.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.weight.grad.numpy(), twin.weight.grad.numpy(), rtol=1e-12, atol=1e-12)
