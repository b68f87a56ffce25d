"""layer_norm in float32 agrees with the same computation in float64 (on the same float32
inputs) within float32 tolerance, wherever the true output is representable: values near
+-1e19 (whose squares overflow float32) and variances far below eps (where a rounded mean
dominates the centred values)."""
import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F


def layer_norm_float64(x, eps):
    x = x.astype(np.float64)
    centred = x - x.mean(-1, keepdims=True)
    return centred / np.sqrt((centred ** 2).mean(-1, keepdims=True) + eps)


@pytest.mark.parametrize("case", ["near 1e19", "near -1e19", "variance below eps", "offset, tiny spread"])
def test_layer_norm_matches_float64(case):
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((4, 64))
    x = {"near 1e19": 1e19 * (1 + noise),
         "near -1e19": -1e19 + 3e18 * noise,
         "variance below eps": 1e-4 * noise,                  # variance 1e-8 < eps 1e-5
         "offset, tiny spread": 1000 + 1e-3 * noise}[case].astype(np.float32)  # variance 1e-6 < eps too
    expected = layer_norm_float64(x, 1e-5)
    got = F.layer_norm(sg.tensor(x), 64).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5 * np.abs(expected).max())


def test_layer_norm_gradient_near_1e19_is_finite():
    x = sg.tensor((1e19 * np.random.default_rng(1).standard_normal((2, 16))).astype(np.float32), requires_grad=True)
    (F.layer_norm(x, 16) * sg.tensor(np.arange(16, dtype=np.float32))).sum().backward()
    assert np.isfinite(x.grad.numpy()).all() and np.abs(x.grad.numpy()).max() > 0
