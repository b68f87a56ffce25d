"""The GPU flash-attention kernels (forward, key and query backward) against the NumPy reference.

Runs in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) or on a real GPU (see gpu_target.py).
Most cases force 8-row tiles so that tiny sequences still cross several query and key tiles, with the
causal diagonal running through the middle of tiles; one case keeps the production tiles (64 rows)
and crosses one of their edges. Additive masks with -inf make fully masked rows (output 0,
logsumexp -inf, no gradient), and L != S checks PyTorch's top-left causal alignment.
"""
import numpy as np
import pytest
from gpu_target import array_module_or_skip, assert_close, on_device

xp = array_module_or_skip()

from scratchgen.kernels.attention import gpu, reference  # noqa: E402

SMALL_TILES = (8,)

# (B, H, L, S, D, Dv, is_causal, mask shape or None)
CASES = {
    "causal square": (1, 2, 19, 19, 4, 4, True, None),
    "causal, more keys than queries, masked": (2, 1, 13, 21, 3, 5, True, (13, 21)),
    "causal, more queries than keys": (1, 1, 21, 6, 4, 3, True, None),
    "broadcast mask, fully masked rows": (2, 2, 11, 17, 5, 5, False, (2, 1, 11, 1)),
    "one query, one key": (1, 1, 1, 1, 2, 3, False, None),
}


def attention_arrays(case, dtype, seed=0):
    batch, heads, queries, keys, depth, value_depth, is_causal, mask_shape = case
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, heads, queries, depth)).astype(dtype)
    k = rng.standard_normal((batch, heads, keys, depth)).astype(dtype)
    v = rng.standard_normal((batch, heads, keys, value_depth)).astype(dtype)
    mask = None
    if mask_shape is not None:
        mask = np.where(rng.random(mask_shape) < 0.3, -np.inf, rng.standard_normal(mask_shape)).astype(dtype)
    grad_out = rng.standard_normal((batch, heads, queries, value_depth)).astype(dtype)
    return q, k, v, mask, is_causal, grad_out


def check_forward_and_backward(case, dtype, scale=0.4):
    q, k, v, mask, is_causal, grad_out = attention_arrays(case, dtype)
    on_gpu = on_device(xp, q, k, v, mask, grad_out)
    out, logsumexp = gpu.attention_forward(*on_gpu[:4], is_causal, scale)
    expected_out, expected_logsumexp = reference.attention_forward(q, k, v, mask, is_causal, scale)
    assert_close(out, expected_out, "out")
    assert_close(logsumexp, expected_logsumexp, "logsumexp")
    q_d, k_d, v_d, mask_d, grad_out_d = on_gpu
    saved = on_device(xp, expected_out, expected_logsumexp)  # the backward is checked on its own
    grads = gpu.attention_backward(grad_out_d, q_d, k_d, v_d, *saved, mask_d, is_causal, scale)
    expected = reference.attention_backward(grad_out, q, k, v, expected_out, expected_logsumexp, mask,
                                            is_causal, scale)
    for name, actual, wanted in zip(("grad_q", "grad_k", "grad_v"), grads, expected):
        assert_close(actual, wanted, name)
    return expected_logsumexp


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_attention_matches_reference_across_small_tiles(case, dtype, monkeypatch):
    monkeypatch.setattr(gpu, "TILE_ROWS", SMALL_TILES)
    check_forward_and_backward(case, dtype)


def test_fully_masked_rows_are_exercised(monkeypatch):
    """The broadcast-mask case really has rows with no visible key (else it tests less than it says)."""
    monkeypatch.setattr(gpu, "TILE_ROWS", SMALL_TILES)
    logsumexp = check_forward_and_backward(CASES["broadcast mask, fully masked rows"], np.float32)
    assert np.isneginf(logsumexp).any() and np.isfinite(logsumexp).any()


def test_production_tiles_cross_a_tile_edge():
    """64-row tiles (what the PTX check compiles) over 70 causal positions: two query and key tiles."""
    assert gpu.tile_rows(gpu.forward_words, 4, 4, 4) == 64
    check_forward_and_backward((1, 1, 70, 70, 4, 4, True, None), np.float32)


def test_tiles_shrink_to_fit_shared_memory_and_huge_heads_use_the_reference():
    assert gpu.tile_rows(gpu.forward_words, 32, 32, 4) == 64          # 48 KB exactly
    assert gpu.tile_rows(gpu.backward_keys_words, 64, 64, 4) == 16
    assert gpu.tile_rows(gpu.forward_words, 32, 32, 8) == 32          # float64 halves the tile
    assert gpu.tile_rows(gpu.forward_words, 400, 400, 8) is None
    check_forward_and_backward((1, 1, 3, 4, 400, 2, True, None), np.float64)


def test_empty_query_axis():
    q, k, v = (np.zeros(shape, np.float32) for shape in ((1, 2, 0, 3), (1, 2, 5, 3), (1, 2, 5, 4)))
    out, logsumexp = gpu.attention_forward(*on_device(xp, q, k, v), None, True, 1.0)
    assert out.shape == (1, 2, 0, 4) and logsumexp.shape == (1, 2, 0)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # inf - inf in the simulator's NumPy scalars: wanted
@pytest.mark.parametrize("poison", [np.nan, np.inf])
@pytest.mark.parametrize("planted_in", ["q", "k", "v", "grad_out"])
def test_nan_and_inf_flow_as_in_the_reference(poison, planted_in, monkeypatch):
    """Not causal: with a causal mask the reference multiplies the hidden (zero) probabilities by a
    NaN row's gradient too, 0 * NaN, while the tiled kernels skip tiles wholly above the diagonal."""
    monkeypatch.setattr(gpu, "TILE_ROWS", SMALL_TILES)
    q, k, v, mask, is_causal, grad_out = attention_arrays((1, 1, 9, 9, 3, 3, False, None), np.float64)
    arrays = {"q": q, "k": k, "v": v, "grad_out": grad_out}
    arrays[planted_in][0, 0, 4, 1] = poison
    q, k, v, grad_out = arrays["q"], arrays["k"], arrays["v"], arrays["grad_out"]
    with np.errstate(all="ignore"):
        expected_out, expected_logsumexp = reference.attention_forward(q, k, v, None, False, 0.4)
        expected = reference.attention_backward(grad_out, q, k, v, expected_out, expected_logsumexp, None,
                                                False, 0.4)
        on_gpu = on_device(xp, q, k, v, grad_out)   # (the simulator computes with NumPy scalars)
        out, logsumexp = gpu.attention_forward(*on_gpu[:3], None, False, 0.4)
        saved = on_device(xp, expected_out, expected_logsumexp)
        grads = gpu.attention_backward(on_gpu[3], *on_gpu[:3], *saved, None, False, 0.4)
    for name, actual, wanted in zip(("out", "logsumexp", "grad_q", "grad_k", "grad_v"),
                                    (out, logsumexp, *grads), (expected_out, expected_logsumexp, *expected)):
        actual = xp.asnumpy(actual) if hasattr(xp, "asnumpy") else np.asarray(actual)
        np.testing.assert_array_equal(np.isnan(actual), np.isnan(wanted), err_msg=f"{name}: NaN positions")
        np.testing.assert_array_equal(np.isinf(actual), np.isinf(wanted), err_msg=f"{name}: inf positions")
