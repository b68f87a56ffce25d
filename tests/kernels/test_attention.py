"""Attention kernels: ``cpu`` (flash, tiled) against ``reference`` on drawn shapes (T=1, lengths
that are no multiple of a tile, head_dim 1..64, batch 1, causal, broadcast masks, rows with no
visible key), both against PyTorch, a float64 directional-derivative check, a mutant whose causal
mask is shifted by one (the comparison must catch it), memory linear in T, threads, boundary checks."""
import tracemalloc

import numpy as np
import pytest
from conftest import require_torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from scratchgen.kernels.attention import cpu, reference

TOLERANCES = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
MASK_KINDS = ("none", "additive", "blocking")


@st.composite
def attention_configs(draw, max_length=200):
    """Shapes up to a few tiles long (tiles are 64 and 128 rows), every mask and causal option."""
    lengths = st.one_of(st.just(1), st.integers(1, max_length))
    batch, heads = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    queries, keys = draw(lengths), draw(lengths)
    full = (batch, heads, queries, keys)
    # each mask axis is either full or 1 (broadcast), and leading axes may be missing altogether
    mask_shape = tuple(size if draw(st.booleans()) else 1 for size in full)[draw(st.integers(0, 2)):]
    return dict(batch=batch, heads=heads, queries=queries, keys=keys, depth=draw(st.integers(1, 64)),
                value_depth=draw(st.integers(1, 64)), causal=draw(st.booleans()),
                mask=draw(st.sampled_from(MASK_KINDS)), mask_shape=mask_shape,
                scale=draw(st.sampled_from([None, 0.3, 1.7])), seed=draw(st.integers(0, 2**16)))


def attention_arrays(config, dtype):
    """q, k, v, an output gradient, the additive mask (or None) and the scale for ``config``."""
    rng = np.random.default_rng(config["seed"])
    b, h, queries, keys = config["batch"], config["heads"], config["queries"], config["keys"]

    def normal(*shape):
        return rng.standard_normal(shape).astype(dtype)
    q, k, v = normal(b, h, queries, config["depth"]), normal(b, h, keys, config["depth"]), \
        normal(b, h, keys, config["value_depth"])
    grad_out = normal(b, h, queries, config["value_depth"])
    mask = None
    if config["mask"] == "additive":  # any float bias, some keys blocked
        mask = np.where(rng.random(config["mask_shape"]) < 0.2, -np.inf, normal(*config["mask_shape"]))
    elif config["mask"] == "blocking":  # a boolean mask made additive; often blocks whole rows
        mask = np.where(rng.random(config["mask_shape"]) < 0.5, -np.inf, 0.0)
    mask = None if mask is None else mask.astype(dtype)
    scale = config["depth"] ** -0.5 if config["scale"] is None else config["scale"]
    return q, k, v, grad_out, mask, scale


def run_kernels(kernels, q, k, v, grad_out, mask, causal, scale):
    out, logsumexp = kernels.attention_forward(q, k, v, mask, causal, scale)
    grads = kernels.attention_backward(grad_out, q, k, v, out, logsumexp, mask, causal, scale)
    return {"out": out, "logsumexp": logsumexp, "grad_q": grads[0], "grad_k": grads[1], "grad_v": grads[2]}


def assert_cpu_matches_reference(config, dtype):
    q, k, v, grad_out, mask, scale = attention_arrays(config, dtype)
    expected = run_kernels(reference, q, k, v, grad_out, mask, config["causal"], scale)
    actual = run_kernels(cpu, q, k, v, grad_out, mask, config["causal"], scale)
    tolerances = float32_tolerances(config, expected) if dtype == np.float32 else \
        dict.fromkeys(expected, TOLERANCES[dtype])
    for name, array in actual.items():
        assert array.dtype == dtype and array.shape == expected[name].shape, name
        assert not np.isnan(array).any(), f"{name} has NaN"
        np.testing.assert_allclose(array, expected[name], err_msg=name, **tolerances[name])


def float32_tolerances(config, reference32):
    """rtol 1e-4 / atol 1e-5 for each result — unless float32 itself cannot reach that.

    Some drawn cases cancel: with one visible key, ds = dO.v - delta is exactly 0 in exact
    arithmetic, and grad_k is a sum of L rounding errors of size eps * |dO| |v|. There the atol is
    widened to 4x the float32 *reference's* own error against float64 (PyTorch's SDPA tests use
    the same yardstick), so the kernel must never be much worse than the naive float32 code.
    """
    q, k, v, grad_out, mask, scale = attention_arrays(config, np.float64)
    truth = run_kernels(reference, q, k, v, grad_out, mask, config["causal"], scale)
    tolerances = {}
    for name, array in reference32.items():
        finite = np.isfinite(truth[name])
        noise = np.max(np.abs(array[finite] - truth[name][finite]), initial=0.0)
        tolerances[name] = dict(rtol=1e-4, atol=max(1e-5, 4 * noise))
    return tolerances


@settings(deadline=None, max_examples=50)
@given(config=attention_configs())
def test_cpu_matches_reference_float32(config):
    assert_cpu_matches_reference(config, np.float32)


@settings(deadline=None, max_examples=25)
@given(config=attention_configs(max_length=150))
def test_cpu_matches_reference_float64(config):
    assert_cpu_matches_reference(config, np.float64)


@settings(deadline=None, max_examples=25)
@given(config=attention_configs(max_length=100), dtype=st.sampled_from([np.float32, np.float64]))
def test_both_match_pytorch(config, dtype):
    torch = require_torch()
    q, k, v, grad_out, mask, scale = attention_arrays(config, dtype)
    inputs = [torch.from_numpy(a).requires_grad_() for a in (q, k, v)]
    # PyTorch refuses an explicit mask together with is_causal: fold the causal part into the mask
    causal_mask = np.where(np.tril(np.ones((q.shape[2], k.shape[2]), bool)), 0, -np.inf).astype(dtype)
    torch_mask = (causal_mask if mask is None else mask + causal_mask) if config["causal"] else mask
    out = torch.nn.functional.scaled_dot_product_attention(
        *inputs, attn_mask=None if torch_mask is None else torch.from_numpy(torch_mask), scale=scale)
    out.backward(torch.from_numpy(grad_out))
    expected = {"out": out.detach().numpy(), **{f"grad_{n}": x.grad.numpy() for n, x in zip("qkv", inputs)}}
    for kernels in (reference, cpu):
        actual = run_kernels(kernels, q, k, v, grad_out, mask, config["causal"], scale)
        tolerances = float32_tolerances(config, actual) if dtype == np.float32 else \
            dict.fromkeys(actual, dict(rtol=1e-9, atol=1e-11))
        for name, array in expected.items():
            np.testing.assert_allclose(actual[name], array, err_msg=f"{kernels.__name__} {name}",
                                       **tolerances[name])


@pytest.mark.parametrize("kernels", [reference, cpu], ids=["reference", "cpu"])
def test_rows_without_visible_keys_are_zero_not_nan(kernels):
    rng = np.random.default_rng(0)
    q, k, v, grad_out = (rng.standard_normal((1, 2, 130, 8)).astype(np.float32) for _ in range(4))
    mask = np.zeros((130, 130), np.float32)
    mask[[0, 65, 129]] = -np.inf  # rows in the first, second and last query tile
    result = run_kernels(kernels, q, k, v, grad_out, mask, True, 0.5)
    assert np.isneginf(result["logsumexp"][:, :, [0, 65, 129]]).all()
    assert np.isfinite(result["logsumexp"][:, :, 1]).all()
    for name in ("out", "grad_q"):
        assert (result[name][:, :, [0, 65, 129]] == 0).all(), name
    for name, array in result.items():
        assert not np.isnan(array).any(), name
    everything_masked = run_kernels(kernels, q, k, v, grad_out, np.full((130, 130), -np.inf, np.float32),
                                    False, 0.5)
    for name in ("out", "grad_q", "grad_k", "grad_v"):
        assert (everything_masked[name] == 0).all(), name


def test_float64_gradients_are_directional_derivatives():
    """<grad, d> equals the central difference of <grad_out, out> along a random direction d."""
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal(shape) for shape in ((1, 2, 70, 5), (1, 2, 90, 5), (1, 2, 90, 3)))
    grad_out = rng.standard_normal((1, 2, 70, 3))
    mask = np.where(rng.random((70, 90)) < 0.3, -np.inf, rng.standard_normal((70, 90)))
    directions = [rng.standard_normal(x.shape) for x in (q, k, v)]
    grads = run_kernels(cpu, q, k, v, grad_out, mask, True, 0.7)

    def loss(step):
        moved = [x + step * d for x, d in zip((q, k, v), directions)]
        return np.sum(grad_out * cpu.attention_forward(*moved, mask, True, 0.7)[0])
    eps = 1e-6
    numeric = (loss(eps) - loss(-eps)) / (2 * eps)
    analytic = sum(np.sum(grads[f"grad_{n}"] * d) for n, d in zip("qkv", directions))
    assert analytic == pytest.approx(numeric, rel=1e-6)


def shifted_causal_mask_tile(scores, mask, has_mask, is_causal, q0, k0):
    """The mutant: lets query i also see key i + 1 (the classic off-by-one on the diagonal)."""
    rows, cols = scores.shape
    if has_mask:
        for i in range(rows):
            for j in range(cols):
                scores[i, j] += mask[(q0 + i) * int(mask.shape[0] > 1), (k0 + j) * int(mask.shape[1] > 1)]
    if is_causal:
        for i in range(rows):
            for j in range(max(q0 + i + 2 - k0, 0), cols):
                scores[i, j] = -np.inf


def test_a_causal_mask_shifted_by_one_fails_the_comparison(monkeypatch):
    # Numba binds the globals a kernel calls when it compiles, so recompile the forward with the
    # mutant in place (fresh dispatchers, uncached; the real kernels are untouched).
    monkeypatch.setattr(cpu, "mask_tile", njit(shifted_causal_mask_tile))
    monkeypatch.setattr(cpu, "forward_head", njit(cpu.forward_head.py_func))
    monkeypatch.setattr(cpu, "forward_heads", njit(nogil=True)(cpu.forward_heads.py_func))
    with pytest.raises(AssertionError, match="out"):
        test_cpu_matches_reference_float32()


def test_memory_is_linear_in_length():
    """Forward + backward at T=2048 allocate far less than one T x T float32 matrix (16 MiB).

    tracemalloc sees NumPy's allocations; the cpu kernels take all their scratch from NumPy, and
    Numba's own allocator must allocate no data (checked with its statistics), so nothing escapes."""
    from numba.core.runtime import _nrt_python, rtsys
    rng = np.random.default_rng(0)
    q, k, v, grad_out = (rng.standard_normal((1, 2, 2048, 16)).astype(np.float32) for _ in range(4))
    one_matrix = 2048 * 2048 * 4
    small = [np.ascontiguousarray(x[:, :, :8]) for x in (q, k, v, grad_out)]
    run_kernels(cpu, *small, None, True, 0.25)  # compile first: the compiler's memory is not the kernels'
    _nrt_python.memsys_enable_stats()
    try:
        numba_allocations = rtsys.get_allocation_stats().alloc
        tracemalloc.start()
        run_kernels(cpu, q, k, v, grad_out, None, True, 0.25)
        cpu_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # Numba's only allocations: a MemInfo header wrapping each NumPy array handed to the
        # kernels (7 forward, 11 backward arguments) -- no data buffers
        assert rtsys.get_allocation_stats().alloc - numba_allocations <= 18
    finally:
        _nrt_python.memsys_disable_stats()
    assert cpu_peak < one_matrix / 8
    tracemalloc.start()  # the same measurement does see the reference's (2, T, T) matrices
    run_kernels(reference, q, k, v, grad_out, None, True, 0.25)
    reference_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert reference_peak > 2 * one_matrix


def test_threads_split_heads_without_changing_results(monkeypatch):
    config = dict(batch=2, heads=3, queries=150, keys=90, depth=16, value_depth=8, causal=True,
                  mask="additive", mask_shape=(2, 1, 150, 90), scale=None, seed=3)
    q, k, v, grad_out, mask, scale = attention_arrays(config, np.float32)
    single = run_kernels(cpu, q, k, v, grad_out, mask, True, scale)
    monkeypatch.setattr(cpu.numba, "get_num_threads", lambda: 4)  # 6 heads over 4 threads: 1 or 2 each
    threaded = run_kernels(cpu, q, k, v, grad_out, mask, True, scale)
    for name, array in single.items():
        np.testing.assert_array_equal(threaded[name], array, err_msg=name)


@pytest.mark.parametrize("kernels", [reference, cpu], ids=["reference", "cpu"])
def test_boundary_checks_say_what_they_got(kernels):
    q = np.zeros((1, 2, 5, 4), np.float32)
    kv = np.zeros((1, 2, 6, 4), np.float32)
    with pytest.raises(TypeError, match="attention_forward: expected all inputs of one dtype"):
        kernels.attention_forward(q, kv.astype(np.float64), kv, None, False, 1.0)
    with pytest.raises(TypeError, match="expected q of dtype float32 or float64, got int64"):
        kernels.attention_forward(q.astype(np.int64), kv, kv, None, False, 1.0)
    with pytest.raises(ValueError, match="expected k to be C-contiguous"):
        transposed = np.zeros((1, 2, 4, 6), np.float32).transpose(0, 1, 3, 2)
        kernels.attention_forward(q, transposed, kv, None, False, 1.0)
    with pytest.raises(ValueError, match=r"expected q of shape \(B, H, L, D\), got shape \(5, 4\)"):
        kernels.attention_forward(q[0, 0], kv, kv, None, False, 1.0)
    with pytest.raises(ValueError, match=r"expected k of shape \(1, 2, S, 4\)"):
        kernels.attention_forward(q, kv[..., :3].copy(), kv, None, False, 1.0)
    with pytest.raises(ValueError, match=r"expected v of shape \(1, 2, 6, Dv\)"):
        kernels.attention_forward(q, kv, kv[:, :, :5].copy(), None, False, 1.0)
    with pytest.raises(ValueError, match=r"expected mask broadcastable to \(B, H, L, S\) = \(1, 2, 5, 6\)"):
        kernels.attention_forward(q, kv, kv, np.zeros((5, 5), np.float32), False, 1.0)
    out, logsumexp = kernels.attention_forward(q, kv, kv, None, False, 1.0)
    with pytest.raises(ValueError, match=r"expected logsumexp of shape \(1, 2, 5\), got \(1, 2, 4\)"):
        kernels.attention_backward(out, q, kv, kv, out, logsumexp[..., :4].copy(), None, False, 1.0)
