"""One contract per kernel family: every implementation against ``reference``, family by family,
on the same hypothesis-drawn cases.

Parametrised over family x implementation. ``cpu`` runs everywhere; ``gpu`` runs in Numba's CUDA
simulator only (``NUMBA_ENABLE_CUDASIM=1``, set before Numba is imported: a pytest process of its
own, the GPU CI step) and skips otherwise, saying how to run it. The family-specific tests
(test_conv.py, test_recurrence.py, test_attention.py, tests/gpu/) go further: edge cases, memory,
threads, PTX; this file is the promise that the implementations are interchangeable.
"""
import importlib
import os

import numpy as np
import optimizer_kernel_cases
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SIMULATING = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
TOLERANCES = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-10, atol=1e-12)}
# The simulator runs every CUDA thread as a Python thread: a few small cases are all it can afford.
EXAMPLES = {"cpu": 25, "gpu": 4}


# ---- the shared cases: (arrays, options) per family, drawn once for every implementation --------
@st.composite
def conv_cases(draw):
    groups = draw(st.integers(1, 2))
    c_in, c_out = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel_hw = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    stride, padding, dilation = ((draw(st.integers(lo, hi)), draw(st.integers(lo, hi)))
                                 for lo, hi in ((1, 2), (0, 1), (1, 2)))
    # large enough for at least one output pixel
    height, width = (dilation[a] * (kernel_hw[a] - 1) + 1 + draw(st.integers(0, 4)) for a in (0, 1))
    return dict(shape=(draw(st.integers(1, 2)), c_in, height, width), c_out=c_out, kernel_hw=kernel_hw,
                stride=stride, padding=padding, dilation=dilation, groups=groups, bias=draw(st.booleans()),
                seed=draw(st.integers(0, 2**16)))


@st.composite
def lstm_cases(draw):
    return dict(steps=draw(st.integers(1, 5)), batch=draw(st.integers(1, 3)), inputs=draw(st.integers(1, 5)),
                hidden=draw(st.integers(1, 6)), seed=draw(st.integers(0, 2**16)))


@st.composite
def attention_cases(draw):
    return dict(batch=draw(st.integers(1, 2)), heads=draw(st.integers(1, 2)), queries=draw(st.integers(1, 9)),
                keys=draw(st.integers(1, 9)), depth=draw(st.integers(1, 8)), value_depth=draw(st.integers(1, 8)),
                causal=draw(st.booleans()), masked=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


# ---- running one implementation on a case: every output of the forward and the backward ----------
def run_conv(kernels, case, dtype, xp):
    rng = np.random.default_rng(case["seed"])
    n, c_in, _, _ = case["shape"]
    x = rng.standard_normal(case["shape"]).astype(dtype)
    weight = rng.standard_normal((case["c_out"], c_in // case["groups"], *case["kernel_hw"])).astype(dtype)
    bias = rng.standard_normal(case["c_out"]).astype(dtype) if case["bias"] else None
    window = (case["stride"], case["padding"], case["dilation"], case["groups"])
    x, weight, bias = (None if a is None else xp.asarray(a) for a in (x, weight, bias))
    y = kernels.conv2d_forward(x, weight, bias, *window)
    grad_y = xp.asarray(rng.standard_normal(y.shape).astype(dtype))
    return {"y": y,
            "grad_x": kernels.conv2d_backward_data(grad_y, weight, case["shape"][2:], *window),
            "grad_weight": kernels.conv2d_backward_weight(grad_y, x, case["kernel_hw"], *window)}


def run_lstm(kernels, case, dtype, xp):
    rng = np.random.default_rng(case["seed"])
    t, b, i, h = case["steps"], case["batch"], case["inputs"], case["hidden"]

    def normal(*shape):
        return xp.asarray((0.5 * rng.standard_normal(shape)).astype(dtype))
    x, h0, c0 = normal(t, b, i), normal(b, h), normal(b, h)
    weight_ih, weight_hh, bias = normal(4 * h, i), normal(4 * h, h), normal(4 * h)
    y, h_n, c_n, saved = kernels.lstm_forward(x, h0, c0, weight_ih, weight_hh, bias)
    grads = kernels.lstm_backward(normal(t, b, h), normal(b, h), normal(b, h), x, h0, weight_ih, weight_hh,
                                  y, saved)
    names = ("grad_x", "grad_h0", "grad_c0", "grad_weight_ih", "grad_weight_hh", "grad_bias")
    return {"y": y, "h_n": h_n, "c_n": c_n, **dict(zip(names, grads))}


def run_attention(kernels, case, dtype, xp):
    rng = np.random.default_rng(case["seed"])
    b, h, queries, keys = case["batch"], case["heads"], case["queries"], case["keys"]

    def normal(*shape):
        return xp.asarray(rng.standard_normal(shape).astype(dtype))
    q, k, v = normal(b, h, queries, case["depth"]), normal(b, h, keys, case["depth"]), \
        normal(b, h, keys, case["value_depth"])
    mask = None
    if case["masked"]:  # an additive mask blocking about a third of the keys (some rows entirely)
        blocked = rng.random((b, 1, queries, keys)) < 0.35
        mask = xp.asarray(np.where(blocked, -np.inf, 0.0).astype(dtype))
    scale = case["depth"] ** -0.5
    out, logsumexp = kernels.attention_forward(q, k, v, mask, case["causal"], scale)
    grads = kernels.attention_backward(normal(b, h, queries, case["value_depth"]), q, k, v, out, logsumexp,
                                       mask, case["causal"], scale)
    return {"out": out, "logsumexp": logsumexp, "grad_q": grads[0], "grad_k": grads[1], "grad_v": grads[2]}


@st.composite
def normalization_cases(draw):
    return dict(shape=(draw(st.integers(1, 3)), draw(st.integers(0, 4)), draw(st.integers(1, 9))),
                offset=draw(st.sampled_from([0.0, 100.0])), seed=draw(st.integers(0, 2**16)))


def run_normalization(kernels, case, dtype, xp):
    rng = np.random.default_rng(case["seed"])
    x = xp.asarray((case["offset"] + rng.standard_normal(case["shape"])).astype(dtype))
    mean, variance, inverse_std = kernels.moments(x, 1e-5)
    y = kernels.normalize(x, mean, inverse_std)
    grad_y = xp.asarray(rng.standard_normal(case["shape"]).astype(dtype))
    n, g, m = case["shape"]
    grouped = x.reshape(n, g, 1, m)   # GroupNorm's (N, G, K, P) with K = 1, the statistics of (1, N * G, P)
    statistics = kernels.moments(x.reshape(1, n * g, m), 1e-5)
    weight, bias = (xp.asarray(rng.standard_normal(g).astype(dtype)) for _ in range(2))
    affine_grads = kernels.affine_normalize_backward(grad_y.reshape(grouped.shape), grouped, statistics[0],
                                                     statistics[2], weight)
    return {"mean": mean, "variance": variance, "inverse_std": inverse_std, "y": y,
            "grad_x": kernels.normalize_backward(grad_y, y, inverse_std),
            "affine y": kernels.affine_normalize(grouped, statistics[0], statistics[2], weight, bias),
            **{f"affine {name}": grad for name, grad in zip(("grad_x", "grad_weight", "grad_bias"),
                                                           affine_grads)}}


def run_optim(kernels, case, dtype, xp):
    """The drawn optimizer update (``optimizer_kernel_cases``) for a few steps: parameter and state."""
    arrays = optimizer_kernel_cases.run(kernels, case | {"dtype": dtype}, xp.asarray)
    return {f"array {i}": array for i, array in enumerate(arrays)}


FAMILIES = {"conv": (conv_cases(), run_conv), "recurrence": (lstm_cases(), run_lstm),
            "attention": (attention_cases(), run_attention),
            "optim": (optimizer_kernel_cases.drawn_updates(), run_optim),
            "normalization": (normalization_cases(), run_normalization)}


def host(array):
    return array.get() if hasattr(array, "get") and not isinstance(array, np.ndarray) else np.asarray(array)


def kernels_or_skip(family, name):
    if name == "gpu" and not SIMULATING:
        pytest.skip("the gpu implementations run in Numba's CUDA simulator: "
                    "NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/kernels/test_contract.py -k gpu")
    return importlib.import_module(f"scratchgen.kernels.{family}.{name}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ["cpu", "gpu"])
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_implementation_matches_the_reference(family, name, dtype):
    kernels = kernels_or_skip(family, name)
    reference = importlib.import_module(f"scratchgen.kernels.{family}.reference")
    cases, run = FAMILIES[family]

    @settings(max_examples=EXAMPLES[name], deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(cases)
    def check(case):
        expected = run(reference, case, dtype, np)
        actual = run(kernels, case, dtype, np)  # the simulator runs gpu kernels on NumPy arrays
        assert actual.keys() == expected.keys()
        for key, value in expected.items():
            got = host(actual[key])
            assert got.dtype == value.dtype and got.shape == value.shape, (family, name, key)
            np.testing.assert_allclose(got, value, err_msg=f"{family}/{name}: {key}", **TOLERANCES[dtype])

    check()


def test_every_family_and_implementation_is_covered():
    from scratchgen import kernels
    assert set(FAMILIES) == set(kernels.FAMILIES)
    assert {"cpu", "gpu"} == set(kernels.IMPLEMENTATIONS) - {"reference"}
