"""``scratchgen.init``: gains and fans equal PyTorch's, draws have the right spread and bounds, and
``manual_seed`` makes them repeat."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen as sg
from conftest import require_torch
from scratchgen.nn import init

NONLINEARITIES = [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                  ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]


@pytest.mark.parametrize("nonlinearity, param", NONLINEARITIES)
def test_calculate_gain_matches_pytorch(nonlinearity, param):
    torch = require_torch()
    assert init.calculate_gain(nonlinearity, param) == torch.nn.init.calculate_gain(nonlinearity, param)


def test_calculate_gain_rejects_unknown():
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")


@settings(max_examples=30, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=5))
def test_fans_match_pytorch(shape):
    torch = require_torch()
    assert init._calculate_fan_in_and_fan_out(sg.zeros(*shape)) == \
        torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))


def test_fans_need_two_dims():
    with pytest.raises(ValueError, match="at least 2 dims"):
        init.xavier_uniform_(sg.zeros(3))


# (function, kwargs, expected std from fans (fan_in=256*9, fan_out=64*9), uniform?)
FAN_IN, FAN_OUT = 256 * 9, 64 * 9
SCHEMES = [
    (init.xavier_uniform_, {"gain": 2.0}, 2.0 * math.sqrt(2 / (FAN_IN + FAN_OUT)), True),
    (init.xavier_normal_, {}, math.sqrt(2 / (FAN_IN + FAN_OUT)), False),
    (init.kaiming_uniform_, {"nonlinearity": "relu"}, math.sqrt(2 / FAN_IN), True),
    (init.kaiming_normal_, {"mode": "fan_out", "nonlinearity": "relu"}, math.sqrt(2 / FAN_OUT), False),
    (init.kaiming_uniform_, {"a": math.sqrt(5)}, math.sqrt(1 / 3) / math.sqrt(FAN_IN), True),
]


@pytest.mark.parametrize("function, kwargs, std, uniform", SCHEMES,
                         ids=lambda value: getattr(value, "__name__", None))
def test_variance_scaling_schemes(function, kwargs, std, uniform):
    sg.manual_seed(0)
    weight = sg.zeros(64, 256, 3, 3)  # a conv weight (out, in, kh, kw)
    assert function(weight, **kwargs) is weight
    values = weight.numpy()
    assert abs(values.std() - std) < 0.01 * std
    if uniform:
        bound = math.sqrt(3) * std
        assert np.abs(values).max() <= bound * (1 + 1e-6) and np.abs(values).max() > 0.99 * bound


def test_simple_fills_and_dtype_kept():
    x = sg.zeros(3, 4, dtype=sg.float64)
    init.constant_(x, 2.5)
    assert np.all(x.numpy() == 2.5) and x.dtype == np.float64
    init.ones_(x)
    assert np.all(x.numpy() == 1)
    init.zeros_(x)
    assert not np.any(x.numpy())
    init.uniform_(x, -1, -0.5)
    assert np.all((x.numpy() >= -1) & (x.numpy() < -0.5))
    init.normal_(x, mean=10, std=0.1)
    assert abs(x.numpy().mean() - 10) < 0.2


def test_manual_seed_repeats_draws():
    sg.manual_seed(42)
    first = init.kaiming_normal_(sg.zeros(5, 5)).numpy().copy()
    sg.manual_seed(42)
    np.testing.assert_array_equal(init.kaiming_normal_(sg.zeros(5, 5)).numpy(), first)
    assert not np.array_equal(init.kaiming_normal_(sg.zeros(5, 5)).numpy(), first)


def test_bad_mode_and_empty_tensor():
    with pytest.raises(ValueError, match="fan_in"):
        init.kaiming_uniform_(sg.zeros(2, 2), mode="fan_avg")
    empty = sg.zeros(0, 3)
    assert init.xavier_uniform_(empty) is empty


def test_scratchgen_init_is_nn_init():
    assert sg.init.xavier_uniform_ is init.xavier_uniform_
