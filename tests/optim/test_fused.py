"""The fused optimizers (``fused=True``: flat buffers, one kernel per buffer) equal the per-parameter path
bit for bit: over parameter groups, missing gradients, mixed dtypes, gradients from the engine,
state_dict round-trips both ways, a parameter rebound or added after flattening; and the flat
buffers keep their invariants (views, one zero fill, one norm, the EMA)."""
import numpy as np
import pytest
from test_optimizers import CONFIGS, _initial_and_gradients

import scratchgen as sg
from scratchgen import nn, optim
from scratchgen.optim.flat import FlatParameters

MIXED_SHAPES = [((3, 4), np.float32), ((4,), np.float64), ((2, 2, 3), np.float32), ((5,), np.float64)]


def _mixed_parameters(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for shape, dtype in MIXED_SHAPES]


def _gradients(initial, steps, seed=1, missing=()):
    """Per step a gradient per parameter; None where (step, index) is in ``missing``."""
    rng = np.random.default_rng(seed)
    return [[None if (step, i) in missing else (rng.standard_normal(a.shape) * 0.5).astype(a.dtype)
             for i, a in enumerate(initial)] for step in range(steps)]


def _train(make_optimizer, initial, gradients, fused, between_steps=None):
    """Parameters after the steps, and the optimizer; ``between_steps(step, params, optimizer)``
    may change things (rebind, add a group) before each step."""
    params = [nn.Parameter(sg.tensor(a.copy())) for a in initial]
    optimizer = make_optimizer(params, fused)
    for step, step_gradients in enumerate(gradients):
        if between_steps is not None:
            between_steps(step, params, optimizer)
        for param, grad in zip(params, step_gradients):
            param.grad = None if grad is None else sg.tensor(grad)
        optimizer.step()
    return [p.numpy().copy() for p in params], optimizer


def _assert_same(ours, theirs):
    for a, b in zip(ours, theirs):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def _assert_same_state(fused, plain):
    saved_fused, saved_plain = fused.state_dict(), plain.state_dict()
    assert saved_fused["param_groups"] == saved_plain["param_groups"]
    assert list(saved_fused["state"]) == list(saved_plain["state"])
    for index, entries in saved_plain["state"].items():
        assert list(saved_fused["state"][index]) == list(entries)
        for name, value in entries.items():
            np.testing.assert_array_equal(saved_fused["state"][index][name], value)


@pytest.mark.parametrize("name, options", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)])
def test_groups_missing_gradients_and_mixed_dtypes_match_the_per_parameter_path(name, options):
    initial = _mixed_parameters()
    # Parameter 1 misses its gradient on steps 0 and 3, parameter 2 on step 5: its step count lags,
    # so its run splits from its neighbours'.
    gradients = _gradients(initial, 8, missing={(0, 1), (3, 1), (5, 2)})

    def make(params, fused):
        groups = [{"params": params[:3]}, {"params": params[3:], "lr": options["lr"] * 3}]
        return getattr(optim, name)(groups, **options, fused=fused)

    fused_result, fused = _train(make, initial, gradients, fused=True)
    plain_result, plain = _train(make, initial, gradients, fused=False)
    _assert_same(fused_result, plain_result)
    _assert_same_state(fused, plain)
    assert len(fused.fused.flat_parameters().buffers) == 2  # one per dtype


def test_one_group_all_gradients_is_one_kernel_call_per_buffer(monkeypatch):
    initial = _mixed_parameters()
    calls = []
    original = optim.Adam.kernel_update
    monkeypatch.setattr(optim.Adam, "kernel_update", lambda self, *args: calls.append(args[1].size)
                        or original(self, *args))
    _train(lambda params, fused: optim.Adam(params, fused=fused), initial, _gradients(initial, 2), fused=True)
    assert calls == [12 + 12, 4 + 5] * 2  # the float32 buffer, then the float64 one, each step


@pytest.mark.parametrize("direction", ["fused to per-parameter", "per-parameter to fused"])
@pytest.mark.parametrize("name, options", [("SGD", dict(lr=0.05, momentum=0.9)),
                                           ("Adam", dict(lr=0.01, amsgrad=True)),
                                           ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5))])
def test_state_dict_round_trip_between_the_paths(name, options, direction):
    initial, gradients = _initial_and_gradients(np.float32, seed=3)
    straight, _ = _train(lambda p, f: getattr(optim, name)(p, **options), initial, gradients, fused=False)
    first_fused = direction == "fused to per-parameter"
    middle, first = _train(lambda p, f: getattr(optim, name)(p, **options, fused=f), initial, gradients[:10],
                           fused=first_fused)
    saved = first.state_dict()

    def resume(params, fused):
        optimizer = getattr(optim, name)(params, lr=123.0, fused=fused)
        optimizer.load_state_dict(saved)
        return optimizer

    resumed, _ = _train(resume, middle, gradients[10:], fused=not first_fused)
    _assert_same(resumed, straight)


def test_a_rebound_or_added_parameter_is_laid_out_again():
    initial = _mixed_parameters()
    gradients = _gradients(initial[:3] + [np.zeros(7, np.float32)], 6)
    added = nn.Parameter(sg.tensor(np.linspace(-1, 1, 7).astype(np.float32)))

    def change(step, params, optimizer):
        if step == 2:  # replace a parameter's array (as Module.to does)
            params[0].data = params[0].data * 2
        if step == 4:
            optimizer.add_param_group({"params": [added], "lr": 0.5})
            params.append(added)

    def make(params, fused):
        return optim.Adam(params[:3], lr=0.01, fused=fused)

    def run(fused):
        added.data = np.linspace(-1, 1, 7).astype(np.float32)
        result, optimizer = _train(make, initial[:3], gradients, fused, between_steps=change)
        return result + [added.numpy().copy()], optimizer

    (fused_result, fused), (plain_result, _) = run(True), run(False)
    _assert_same(fused_result, plain_result)
    flat = fused.fused.flat_parameters()
    assert flat.is_current() and flat.location(added) is not None


def test_module_to_float64_moves_the_fused_state_with_it():
    def run(fused):
        sg.manual_seed(0)
        model = nn.Linear(3, 2)
        optimizer = optim.Adam(model.parameters(), lr=0.1, fused=fused)
        x = sg.tensor(np.arange(6.0).reshape(2, 3))
        for step in range(4):
            if step == 2:
                model.double()
            optimizer.zero_grad()
            (model(x.to(dtype=model.weight.dtype)) ** 2).sum().backward()
            optimizer.step()
        return [p.numpy() for p in model.parameters()], optimizer

    (fused_result, fused), (plain_result, plain) = run(True), run(False)
    # The per-parameter path keeps float32 moments beside float64 parameters (it moves state across
    # devices only); the fused path lays the state out again in the parameters' dtype, as
    # load_state_dict does. So the results agree to float32 rounding, not bit for bit.
    for a, b in zip(fused_result, plain_result):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    weight = fused.param_groups[0]["params"][0]
    assert fused.state[weight]["exp_avg"].dtype == weight.dtype == np.float64


def _engine_step(model, optimizer, x, accumulate=1):
    optimizer.zero_grad()
    for _ in range(accumulate):  # two backward passes add their gradients
        (model(x).tanh() ** 2).sum().backward()
    optimizer.step()


@pytest.mark.parametrize("set_to_none", [True, False])
def test_gradients_from_the_engine_land_in_the_flat_buffer(set_to_none):
    x = sg.tensor(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))

    def run(fused):
        sg.manual_seed(1)
        model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2))
        optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, fused=fused)
        optimizer.zero_grad = lambda original=optimizer.zero_grad: original(set_to_none)
        for _ in range(3):
            _engine_step(model, optimizer, x, accumulate=2)
        return model, optimizer

    (fused_model, fused), (plain_model, _) = run(True), run(False)
    _assert_same([p.numpy() for p in fused_model.parameters()], [p.numpy() for p in plain_model.parameters()])
    (buffer,) = fused.fused.flat_parameters().buffers
    for param, data_view, grad_view in zip(buffer.params, buffer.data_views, buffer.grad_views):
        assert param.data is data_view and param.grad.data is grad_view  # views, not copies
    plain_grads = [p.grad.numpy().ravel() for p in plain_model.parameters()]
    np.testing.assert_array_equal(buffer.grad, np.concatenate(plain_grads))


def test_backward_writes_and_accumulates_in_the_flat_buffer_itself():
    """Each gradient goes straight to its slice: before any gather, after one backward (copied in)
    and after a second (added in place), ``param.grad`` is the slice and holds the plain sum."""
    x = sg.tensor(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    sg.manual_seed(1)
    model = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2))
    flat = FlatParameters(list(model.parameters()))
    (buffer,) = flat.buffers
    for backward_pass in range(2):
        (model(x).tanh() ** 2).sum().backward()
        for param, grad_view in zip(buffer.params, buffer.grad_views):
            assert param.grad.data is grad_view
        first = buffer.grad.copy() if backward_pass == 0 else first
    np.testing.assert_array_equal(buffer.grad, 2 * first)
    reference = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2))
    reference.load_state_dict(model.state_dict())
    (reference(x).tanh() ** 2).sum().backward()
    np.testing.assert_array_equal(first, np.concatenate([p.grad.numpy().ravel() for p in reference.parameters()]))


def test_a_gradient_that_does_not_fit_its_home_gets_its_own_array():
    """After the parameter is cast (``Module.double``) or under ``create_graph`` the flat slice is left
    alone; the optimizer's gather copies such gradients in later."""
    model = nn.Linear(3, 2)
    flat = FlatParameters(list(model.parameters()))
    grad_buffer = flat.buffers[0].grad
    x = sg.ones((1, 3))
    (model(x) ** 2).sum().backward(create_graph=True)
    assert model.weight.grad.creator is not None and not grad_buffer.any()
    model.zero_grad()
    model.double()
    model(x.double()).sum().backward()
    assert model.weight.grad.dtype == np.float64 and not grad_buffer.any()
    np.testing.assert_array_equal(model.weight.grad.numpy(), np.ones((2, 3)))


def test_zero_grad_is_one_fill_and_keeps_the_views():
    params = [nn.Parameter(sg.tensor(a)) for a in _mixed_parameters()]
    flat = FlatParameters(params)
    for param in params:
        param.grad = sg.ones(param.shape, dtype=param.dtype)
    flat.gather_grads()
    flat.zero_grad(set_to_none=False)
    for buffer in flat.buffers:
        assert not buffer.grad.any()
        assert all(p.grad.data is view for p, view in zip(buffer.params, buffer.grad_views))
    flat.zero_grad()
    assert all(p.grad is None for p in params)


def test_flat_layout_and_its_errors():
    params = [nn.Parameter(sg.tensor(a)) for a in _mixed_parameters()]
    values = [p.numpy().copy() for p in params]
    flat = FlatParameters(params)
    assert [b.dtype for b in flat.buffers] == [np.float32, np.float64]
    assert flat.location(params[2]) == (0, 12, 24) and flat.location(params[3]) == (1, 4, 9)
    _assert_same([p.numpy() for p in params], values)  # same values, now views
    np.testing.assert_array_equal(flat.buffers[1].data, np.concatenate([values[1], values[3]]))
    assert flat.is_current()
    params[1].data = params[1].data.copy()
    assert not flat.is_current()
    with pytest.raises(ValueError, match="each parameter once"):
        FlatParameters([params[0], params[0]])
    with pytest.raises(TypeError, match="leaf floating-point tensors, got Tensor at position 1"):
        FlatParameters([params[0], params[0] * 2])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_on_the_flat_buffers_matches_nn_utils(norm_type):
    initial = _mixed_parameters()
    gradients = _gradients(initial, 1, missing={(0, 2)})[0]
    flat_params = [nn.Parameter(sg.tensor(a)) for a in initial]
    plain_params = [nn.Parameter(sg.tensor(a)) for a in initial]
    for a, b, g in zip(flat_params, plain_params, gradients):
        a.grad = b.grad = None if g is None else sg.tensor(g * 10)
    total = FlatParameters(flat_params).clip_grad_norm_(1.0, norm_type)
    expected = nn.utils.clip_grad_norm_(plain_params, 1.0, norm_type)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-6)
    assert flat_params[2].grad is None
    for a, b in zip(flat_params, plain_params):
        if b.grad is not None:
            np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_ema_over_the_flat_buffers_matches_the_per_tensor_one():
    def model():
        sg.manual_seed(2)
        return nn.Sequential(nn.Linear(5, 6), nn.BatchNorm1d(6), nn.Linear(6, 2))

    flat_model, plain_model = model(), model()
    flat = FlatParameters(flat_model.parameters())
    fused = optim.ExponentialMovingAverage(flat_model, 0.9, flat=flat)
    plain = optim.ExponentialMovingAverage(plain_model, 0.9)
    rng = np.random.default_rng(0)
    for step in range(5):
        if step == 3:  # the layout goes stale: the flat EMA falls back to the per-tensor update
            flat_model.double(), plain_model.double()
        for a, b in zip(flat_model._state_tensors(), plain_model._state_tensors()):
            change = rng.standard_normal(a[1].shape).astype(a[1].dtype)
            a[1].data[...] += change  # in place: the flat views stay views
            b[1].data[...] += change
        fused.update(), plain.update()
        if step < 3:
            assert flat.is_current()
    assert fused._flat_names == {name for name, _ in flat_model.named_parameters()}
    assert list(fused.state_dict()) == list(plain.state_dict())
    _assert_same(list(fused.state_dict().values()), list(plain.state_dict().values()))


def test_a_checkpoint_of_a_fused_optimizer_has_the_same_keys_and_resumes_either_path(tmp_path):
    initial, gradients = _initial_and_gradients(np.float32, seed=5)
    make = lambda params, fused: optim.Adam(params, lr=0.01, amsgrad=True, fused=fused)  # noqa: E731
    straight, _ = _train(make, initial, gradients, fused=False)
    middle, fused = _train(make, initial, gradients[:7], fused=True)
    _, plain = _train(make, initial, gradients[:7], fused=False)
    sg.save({"optim": fused.state_dict()}, tmp_path / "fused.npz")
    sg.save({"optim": plain.state_dict()}, tmp_path / "plain.npz")
    with np.load(tmp_path / "fused.npz") as fused_file, np.load(tmp_path / "plain.npz") as plain_file:
        assert sorted(fused_file.files) == sorted(plain_file.files)  # optim/state/0/exp_avg, ...
    for resumed_fused in (False, True):
        saved = sg.load(tmp_path / "fused.npz")["optim"]

        def resume(params, fused_path, saved=saved):
            optimizer = make(params, fused_path)
            optimizer.load_state_dict(saved)
            return optimizer

        resumed, _ = _train(resume, middle, gradients[7:], fused=resumed_fused)
        _assert_same(resumed, straight)
