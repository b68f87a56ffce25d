"""SGD, Adam, AdamW and RMSprop equal PyTorch (``foreach=False``) over 20 steps on the same parameters and
gradients, per parameter and fused (``test_fused.py`` tests the fused path further);
parameter groups, zero_grad, closures, and state_dict save/resume (bit-exact)."""
import numpy as np
import pytest

import scratchgen as sg
from conftest import require_torch
from scratchgen import optim

SHAPES = [(3, 4), (4,), (2, 2, 3)]
STEPS = 20

CONFIGS = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.02, weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.005, centered=True)),
    ("RMSprop", dict(lr=0.005, centered=True, momentum=0.9, eps=1e-4)),
]
TOLERANCE = {np.float64: dict(rtol=1e-12, atol=1e-14), np.float32: dict(rtol=2e-6, atol=1e-6)}


def _initial_and_gradients(dtype, seed=0):
    rng = np.random.default_rng(seed)
    initial = [rng.standard_normal(shape).astype(dtype) for shape in SHAPES]
    # Some gradients of exactly zero and a wide range of scales exercise eps and amsgrad's max.
    def gradient(shape):
        scale = 10.0 ** rng.integers(-3, 2)
        return (rng.standard_normal(shape) * scale * (rng.random(shape) > 0.1)).astype(dtype)

    gradients = [[gradient(shape) for shape in SHAPES] for _ in range(STEPS)]
    return initial, gradients


def _run_ours(name, options, initial, gradients, fused=False):
    params = [sg.nn.Parameter(sg.tensor(a)) for a in initial]
    optimizer = getattr(optim, name)(params, **options, fused=fused)
    history = []
    for step_gradients in gradients:
        for param, grad in zip(params, step_gradients):
            param.grad = sg.tensor(grad)
        optimizer.step()
        history.append([p.numpy().copy() for p in params])
    return history


def _run_torch(torch, name, options, initial, gradients):
    params = [torch.nn.Parameter(torch.tensor(a)) for a in initial]
    optimizer = getattr(torch.optim, name)(params, **options, foreach=False)
    history = []
    for step_gradients in gradients:
        for param, grad in zip(params, step_gradients):
            param.grad = torch.tensor(grad)
        optimizer.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


@pytest.mark.parametrize("fused", [False, True], ids=["per-parameter", "fused"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, options", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_matches_pytorch_over_20_steps(name, options, dtype, fused):
    torch = require_torch()
    initial, gradients = _initial_and_gradients(dtype)
    ours = _run_ours(name, options, initial, gradients, fused)
    theirs = _run_torch(torch, name, options, initial, gradients)
    for step, (mine, reference) in enumerate(zip(ours, theirs)):
        for a, b in zip(mine, reference):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b, **TOLERANCE[dtype], err_msg=f"step {step + 1}")


def test_parameter_groups_use_their_own_hyperparameters():
    torch = require_torch()
    initial, gradients = _initial_and_gradients(np.float64)
    ours_params = [sg.nn.Parameter(sg.tensor(a)) for a in initial]
    torch_params = [torch.nn.Parameter(torch.tensor(a)) for a in initial]

    def groups(params):
        return [{"params": params[:2], "lr": 0.1}, {"params": params[2:], "momentum": 0.5}]

    ours = optim.SGD(groups(ours_params), lr=0.01, momentum=0.9)
    theirs = torch.optim.SGD(groups(torch_params), lr=0.01, momentum=0.9)
    assert [g["lr"] for g in ours.param_groups] == [0.1, 0.01]
    assert [g["momentum"] for g in ours.param_groups] == [0.9, 0.5]
    for step_gradients in gradients:
        for a, b, g in zip(ours_params, torch_params, step_gradients):
            a.grad, b.grad = sg.tensor(g), torch.tensor(g)
        ours.step(), theirs.step()
    for a, b in zip(ours_params, torch_params):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-12)


def test_add_param_group_rejects_duplicates_and_non_leaves():
    a, b = sg.nn.Parameter(sg.zeros(2)), sg.nn.Parameter(sg.zeros(2))
    optimizer = optim.Adam([a], lr=1e-3)
    optimizer.add_param_group({"params": [b], "lr": 0.5})
    assert optimizer.param_groups[1]["betas"] == (0.9, 0.999) and optimizer.param_groups[1]["lr"] == 0.5
    with pytest.raises(ValueError, match="appears twice"):
        optimizer.add_param_group({"params": [a]})
    with pytest.raises(ValueError, match="leaf tensors"):
        optim.SGD([a * 2], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([a], lr=0.1, nesterov=True)


def test_zero_grad_and_closure():
    param = sg.nn.Parameter(sg.tensor([1.0, -2.0]))
    optimizer = optim.SGD([param], lr=0.5)

    def closure():
        optimizer.zero_grad()
        loss = (param * param).sum()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    assert loss.item() == 5.0
    np.testing.assert_array_equal(param.numpy(), [0.0, 0.0])  # p - 0.5 * 2p
    optimizer.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(param.grad.numpy(), [0.0, 0.0])
    optimizer.zero_grad()
    assert param.grad is None
    optimizer.step()  # parameters without gradients are skipped
    np.testing.assert_array_equal(param.numpy(), [0.0, 0.0])


@pytest.mark.parametrize("name, options", [("SGD", dict(lr=0.05, momentum=0.9)),
                                           ("Adam", dict(lr=0.01, amsgrad=True)),
                                           ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5))])
def test_state_dict_resume_is_bit_exact(name, options):
    initial, gradients = _initial_and_gradients(np.float32, seed=3)
    straight = _run_ours(name, options, initial, gradients)[-1]

    params = [sg.nn.Parameter(sg.tensor(a)) for a in initial]
    first = getattr(optim, name)(params, **options)
    for step_gradients in gradients[:10]:
        for param, grad in zip(params, step_gradients):
            param.grad = sg.tensor(grad)
        first.step()
    saved = first.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2] and saved["param_groups"][0]["params"] == [0, 1, 2]
    assert all(isinstance(value, np.ndarray)
               for entry in saved["state"].values() for key, value in entry.items() if key != "step")
    resumed_params = [sg.nn.Parameter(sg.tensor(p.numpy().copy())) for p in params]
    second = getattr(optim, name)(resumed_params, lr=123.0)  # hyperparameters come back from the state
    second.load_state_dict(saved)
    assert second.param_groups[0]["lr"] == options["lr"]
    for step_gradients in gradients[10:]:
        for param, grad in zip(resumed_params, step_gradients):
            param.grad = sg.tensor(grad)
        second.step()
    for a, b in zip(resumed_params, straight):
        np.testing.assert_array_equal(a.numpy(), b)


def test_load_state_dict_checks_group_sizes():
    a, b = sg.nn.Parameter(sg.zeros(2)), sg.nn.Parameter(sg.zeros(2))
    saved = optim.Adam([a, b]).state_dict()
    with pytest.raises(ValueError, match=r"groups of sizes \[1\], got \[2\]"):
        optim.Adam([a]).load_state_dict(saved)
