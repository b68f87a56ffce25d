"""LayerNorm, GroupNorm and BatchNorm1d/2d against PyTorch: outputs, input and parameter gradients,
train and eval modes, and running statistics over several steps (momentum, cumulative average)."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import scratchgen as sg
from conftest import require_torch
from scratchgen import nn

# PyTorch runs in float64 as the exact oracle: a float32 PyTorch has rounding errors of its own.
# float64 checks the math tightly; float32 checks the dtype path, with room for the cancellation in
# normalisation gradients (terms of size |dy| / std cancel to a small result).
TOLERANCE = {np.float32: dict(rtol=1e-3, atol=1e-3), np.float64: dict(rtol=1e-9, atol=1e-11)}


def _twin(torch, torch_class, ours, *args, **kwargs):
    """``torch_class(*args, **kwargs)`` in float64 holding our module's state."""
    twin = torch_class(*args, **kwargs, dtype=torch.float64)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return twin


def _spread(rng, shape, dtype):
    """Distinct values in [-3, 3) at least 3/size apart: a group of nearly equal values would have
    a tiny variance, and its gradients (scaled by 1/std) would test float32 rounding, not the op."""
    size = int(np.prod(shape))
    grid = (rng.permutation(size) + rng.uniform(0, 0.5, size)) / size
    return (grid * 6 - 3).reshape(shape).astype(dtype)


def _randomise_affine(module):
    """Non-trivial weight and bias (the defaults 1 and 0 would hide a mix-up)."""
    if module.weight is not None:
        module.weight.data[...] = sg.randn(*module.weight.shape, dtype=module.weight.dtype).data
        module.bias.data[...] = sg.randn(*module.bias.shape, dtype=module.bias.dtype).data


def _compare_step(torch, ours, twin, x_array):
    """One forward and backward through both; compare output, input grad and parameter grads."""
    tolerance = TOLERANCE[x_array.dtype.type]
    x = sg.tensor(x_array, requires_grad=True)
    x_torch = torch.tensor(x_array.astype(np.float64), requires_grad=True)
    upstream = np.random.default_rng(1).standard_normal(x_array.shape)
    out, out_torch = ours(x), twin(x_torch)
    np.testing.assert_allclose(out.numpy(), out_torch.detach().numpy(), **tolerance)
    (out * sg.tensor(upstream.astype(x_array.dtype))).sum().backward()
    (out_torch * torch.from_numpy(upstream)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), x_torch.grad.numpy(), **tolerance)
    torch_params = dict(twin.named_parameters())
    for name, param in ours.named_parameters():
        np.testing.assert_allclose(param.grad.numpy(), torch_params[name].grad.numpy(), **tolerance,
                                   err_msg=name)
    ours.zero_grad(), twin.zero_grad()


dtypes = st.sampled_from([np.float32, np.float64])


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), trailing=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       normalized_dims=st.integers(1, 3), affine=st.booleans(), dtype=dtypes, seed=st.integers(0, 1000))
def test_layer_norm_matches_pytorch(batch, trailing, normalized_dims, affine, dtype, seed):
    torch = require_torch()
    normalized = tuple(trailing[-normalized_dims:])
    assume(np.prod(normalized) > 1)  # one value normalises to exactly 0 here and to rounding noise in PyTorch
    ours = nn.LayerNorm(normalized, elementwise_affine=affine, dtype=dtype)
    sg.manual_seed(seed)
    _randomise_affine(ours)
    twin = _twin(torch, torch.nn.LayerNorm, ours, normalized, elementwise_affine=affine)
    _compare_step(torch, ours, twin, _spread(np.random.default_rng(seed), (batch, *trailing), dtype))


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), groups=st.integers(1, 3), per_group=st.integers(1, 3),
       spatial=st.lists(st.integers(1, 4), max_size=2), affine=st.booleans(), dtype=dtypes,
       seed=st.integers(0, 1000))
def test_group_norm_matches_pytorch(batch, groups, per_group, spatial, affine, dtype, seed):
    torch = require_torch()
    channels = groups * per_group
    assume(per_group * np.prod(spatial) > 1)  # a group of one value: nothing to normalise
    ours = nn.GroupNorm(groups, channels, affine=affine, dtype=dtype)
    sg.manual_seed(seed)
    _randomise_affine(ours)
    twin = _twin(torch, torch.nn.GroupNorm, ours, groups, channels, affine=affine)
    _compare_step(torch, ours, twin, _spread(np.random.default_rng(seed), (batch, channels, *spatial), dtype))


@settings(max_examples=25, deadline=None)
@given(rank=st.sampled_from([2, 3, 4]), batch=st.integers(2, 4), channels=st.integers(1, 4),
       side=st.integers(1, 3), momentum=st.sampled_from([0.1, 0.5, None]), affine=st.booleans(),
       dtype=dtypes, seed=st.integers(0, 1000))
def test_batch_norm_matches_pytorch_in_train_and_eval(rank, batch, channels, side, momentum, affine, dtype,
                                                      seed):
    torch = require_torch()
    ours_class, torch_class = (nn.BatchNorm2d, torch.nn.BatchNorm2d) if rank == 4 else \
        (nn.BatchNorm1d, torch.nn.BatchNorm1d)
    ours = ours_class(channels, momentum=momentum, affine=affine, dtype=dtype)
    sg.manual_seed(seed)
    _randomise_affine(ours)
    twin = _twin(torch, torch_class, ours, channels, momentum=momentum, affine=affine)
    rng = np.random.default_rng(seed)
    shape = (batch, channels) + (side,) * (rank - 2)
    for _ in range(3):  # a few training steps move the running statistics
        _compare_step(torch, ours, twin, _spread(rng, shape, dtype) * 0.7 + 0.5)
    for name, value in twin.state_dict().items():
        np.testing.assert_allclose(ours.state_dict()[name], value.numpy(), **TOLERANCE[dtype], err_msg=name)
    assert int(ours.num_batches_tracked.item()) == 3
    ours.eval(), twin.eval()
    _compare_step(torch, ours, twin, _spread(rng, shape, dtype))
    assert int(ours.num_batches_tracked.item()) == 3  # evaluation leaves the statistics alone


def test_batch_norm_without_running_stats_uses_batch_statistics_in_eval():
    torch = require_torch()
    ours = nn.BatchNorm2d(3, track_running_stats=False).eval()
    twin = torch.nn.BatchNorm2d(3, track_running_stats=False).eval()
    assert list(ours.state_dict()) == list(twin.state_dict()) == ["weight", "bias"]
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2)).astype(np.float32)
    np.testing.assert_allclose(ours(sg.tensor(x)).numpy(), twin(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-5, atol=1e-6)


def test_norm_input_errors():
    with pytest.raises(ValueError, match="BatchNorm2d: expected 4-D input with 3 channels"):
        nn.BatchNorm2d(3)(sg.randn(2, 3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(sg.randn(1, 3))
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(2, 3)
    with pytest.raises(ValueError, match="trailing shape"):
        nn.LayerNorm(4)(sg.randn(2, 3))
