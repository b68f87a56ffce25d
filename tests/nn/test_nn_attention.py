"""Attention at the user's level: ``nn.MultiheadAttention`` against PyTorch (the same state_dict gives
the same outputs, weights and every gradient, over layouts, kdim/vdim, masks of both kinds, causal
hints, dtypes); PyTorch's parameter names and init; which path runs (fused kernel or composed ops);
dropout; and ``F.scaled_dot_product_attention``'s mask conventions, errors and once-differentiability."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen as sg
import scratchgen.functional as F
from conftest import require_torch
from scratchgen import nn
from scratchgen.ops.attention import ScaledDotProductAttention
from scratchgen.testing import functions_in_graph

TOLERANCES = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-10)}


def values(tensor):
    return tensor.detach().numpy()


@st.composite
def mha_configs(draw):
    return dict(batch_first=draw(st.booleans()), unbatched=draw(st.booleans()), bias=draw(st.booleans()),
                kdim=draw(st.sampled_from([None, 3])), need_weights=draw(st.booleans()),
                average=draw(st.booleans()), padding=draw(st.booleans()),
                attn_mask=draw(st.sampled_from([None, "shared", "per_head", "causal"])),
                boolean_masks=draw(st.booleans()), batch=draw(st.integers(1, 3)),
                queries=draw(st.integers(1, 5)), keys=draw(st.integers(1, 6)),
                dtype=draw(st.sampled_from([np.float32, np.float64])),
                seed=draw(st.integers(0, 2**16)))


def mha_masks(config, num_heads, rng):
    """``(key_padding_mask, attn_mask, is_causal, queries, keys)`` as drawn. Key 0 always stays
    visible (PyTorch's weights path gives NaN for a row with no visible key, scratchgen zeros)."""
    batch, queries, keys = config["batch"], config["queries"], config["keys"]
    if config["attn_mask"] == "causal":
        queries = keys = min(queries, keys)  # the causal hint comes with a square causal mask

    def as_kind(masked_out):  # float masks: -inf where masked out, a random bias elsewhere
        if config["boolean_masks"]:
            return masked_out
        return np.where(masked_out, -np.inf, rng.standard_normal(masked_out.shape))
    padding = None
    if config["padding"]:
        padding = rng.random((keys,) if config["unbatched"] else (batch, keys)) < 0.4
        padding[..., 0] = False
        padding = as_kind(padding)
    if config["attn_mask"] is None:
        return padding, None, False, queries, keys
    if config["attn_mask"] == "causal":
        above_diagonal = np.triu(np.ones((queries, keys), bool), 1)  # a true hint: exactly the causal mask
        causal = above_diagonal if config["boolean_masks"] else np.where(above_diagonal, -np.inf, 0.0)
        return padding, causal, True, queries, keys
    heads = num_heads * (1 if config["unbatched"] else batch)
    mask = rng.random((heads, queries, keys) if config["attn_mask"] == "per_head" else (queries, keys)) < 0.3
    mask[..., 0] = False
    return padding, as_kind(mask), False, queries, keys


@settings(max_examples=30, deadline=None)
@given(config=mha_configs())
def test_multihead_attention_matches_torch(config):
    torch = require_torch()
    dtype, num_heads, embed = config["dtype"], 2, 4
    torch.manual_seed(config["seed"])
    options = dict(bias=config["bias"], kdim=config["kdim"], vdim=config["kdim"],
                   batch_first=config["batch_first"])
    theirs = torch.nn.MultiheadAttention(embed, num_heads, **options).to(getattr(torch, np.dtype(dtype).name))
    ours = nn.MultiheadAttention(embed, num_heads, dtype=dtype, **options)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({name: value.numpy() for name, value in theirs.state_dict().items()})
    rng = np.random.default_rng(config["seed"])
    padding, attn_mask, is_causal, queries, keys = mha_masks(config, num_heads, rng)
    kdim, batch = config["kdim"] or embed, config["batch"]

    def layout(length, features):
        if config["unbatched"]:
            return (length, features)
        return (batch, length, features) if config["batch_first"] else (length, batch, features)
    sizes = ((queries, embed), (keys, kdim), (keys, kdim))
    arrays = [rng.standard_normal(layout(n, f)).astype(dtype) for n, f in sizes]
    ours_in = [sg.tensor(a, requires_grad=True) for a in arrays]
    theirs_in = [torch.tensor(a, requires_grad=True) for a in arrays]
    call = dict(need_weights=config["need_weights"], average_attn_weights=config["average"],
                is_causal=is_causal)
    out, weights = ours(*ours_in, key_padding_mask=padding, attn_mask=attn_mask, **call)
    as_torch = [None if m is None else torch.from_numpy(m if m.dtype == bool else m.astype(dtype))
                for m in (padding, attn_mask)]
    t_out, t_weights = theirs(*theirs_in, key_padding_mask=as_torch[0], attn_mask=as_torch[1], **call)
    assert out.shape == tuple(t_out.shape)
    np.testing.assert_allclose(values(out), values(t_out), err_msg="output", **TOLERANCES[dtype])
    assert (weights is None) == (t_weights is None)
    if weights is not None:
        np.testing.assert_allclose(values(weights), values(t_weights), err_msg="weights", **TOLERANCES[dtype])
    seed = rng.standard_normal(out.shape).astype(dtype)
    (out * sg.tensor(seed)).sum().backward()
    (t_out * torch.from_numpy(seed)).sum().backward()
    pairs = list(zip(("query", "key", "value"), ours_in, theirs_in))
    pairs += [(name, p, q) for (name, p), q in zip(ours.named_parameters(), theirs.parameters())]
    for name, a, b in pairs:
        np.testing.assert_allclose(values(a.grad), b.grad.numpy(), err_msg=f"gradient of {name}",
                                   **TOLERANCES[dtype])


def test_parameters_and_init_are_pytorchs():
    sg.manual_seed(0)
    layer = nn.MultiheadAttention(16, 4)
    assert list(layer.state_dict()) == ["in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"]
    assert layer.in_proj_weight.shape == (48, 16)
    bound = np.sqrt(6 / (16 + 48))  # Xavier-uniform on (3E, E)
    drawn = values(layer.in_proj_weight)
    assert np.abs(drawn).max() <= bound and np.abs(drawn).max() > 0.9 * bound
    assert not values(layer.in_proj_bias).any() and not values(layer.out_proj.bias).any()
    out_bound = 1 / np.sqrt(16)  # out_proj keeps Linear's init
    assert 0.9 * out_bound < np.abs(values(layer.out_proj.weight)).max() <= out_bound
    separate = nn.MultiheadAttention(16, 4, kdim=5, vdim=7, bias=False)
    assert list(separate.state_dict()) == ["q_proj_weight", "k_proj_weight", "v_proj_weight",
                                           "out_proj.weight"]
    assert separate.k_proj_weight.shape == (16, 5) and separate.v_proj_weight.shape == (16, 7)


def test_need_weights_false_runs_the_fused_kernel():
    layer = nn.MultiheadAttention(8, 2, batch_first=True)
    x = sg.randn(2, 5, 8, requires_grad=True)
    out, weights = layer(x, x, x, need_weights=False)
    assert weights is None and ScaledDotProductAttention in functions_in_graph(out)
    out_with_weights, weights = layer(x, x, x)  # PyTorch's default materialises the weights
    assert ScaledDotProductAttention not in functions_in_graph(out_with_weights)
    assert weights.shape == (2, 5, 5)
    np.testing.assert_allclose(values(out_with_weights), values(out), rtol=1e-5, atol=1e-6)


def test_dropout_applies_to_the_weights_only_while_training():
    sg.manual_seed(0)
    layer = nn.MultiheadAttention(8, 2, dropout=1.0, batch_first=True)
    x = sg.randn(2, 5, 8)
    out, _ = layer(x, x, x, need_weights=False)
    np.testing.assert_allclose(values(out), np.broadcast_to(values(layer.out_proj.bias), out.shape))
    layer.eval()
    out_eval, _ = layer(x, x, x, need_weights=False)
    assert np.abs(values(out_eval) - values(layer.out_proj.bias)).max() > 1e-3


def test_mask_conventions_of_sdpa():
    """Boolean True = attend (the opposite of MultiheadAttention's); float masks are added."""
    rng = np.random.default_rng(0)
    q, k, v = (sg.tensor(rng.standard_normal((2, 3, 4))) for _ in range(3))
    keep = rng.random((3, 3)) < 0.6
    keep[:, 0] = True
    by_bool = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    by_float = F.scaled_dot_product_attention(q, k, v, attn_mask=np.where(keep, 0.0, -np.inf))
    by_tensor = F.scaled_dot_product_attention(q, k, v, attn_mask=sg.tensor(keep))
    np.testing.assert_array_equal(values(by_bool), values(by_float))
    np.testing.assert_array_equal(values(by_bool), values(by_tensor))
    causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    lower_triangle = np.tril(np.ones((3, 3), bool))
    by_triangle = F.scaled_dot_product_attention(q, k, v, attn_mask=lower_triangle)
    np.testing.assert_allclose(values(causal), values(by_triangle))
    nothing_visible = F.scaled_dot_product_attention(q, k, v, attn_mask=np.zeros((3, 3), bool))
    assert not values(nothing_visible).any()


def test_sdpa_dropout_falls_back_to_the_composed_path():
    rng = np.random.default_rng(0)
    q, k, v = (sg.tensor(rng.standard_normal((2, 6, 4)), requires_grad=True) for _ in range(3))
    sg.manual_seed(3)
    dropped = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert ScaledDotProductAttention not in functions_in_graph(dropped)
    sg.manual_seed(3)
    again = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    np.testing.assert_array_equal(values(again), values(dropped))
    assert not np.allclose(values(dropped), values(F.scaled_dot_product_attention(q, k, v)))
    assert not values(F.scaled_dot_product_attention(q, k, v, dropout_p=1.0)).any()


def test_sdpa_errors_say_what_they_got():
    q = sg.randn(2, 3, 4)
    with pytest.raises(ValueError, match="expected attn_mask or is_causal, got both"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(ValueError, match="gradients with respect to a float mask are not supported"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=sg.zeros(3, 3, requires_grad=True))
    with pytest.raises(ValueError, match=r"expected a mask broadcastable to \(2, 3, 3\), got \(4, 3\)"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((4, 3), bool))
    with pytest.raises(ValueError, match=r"expected key \(\.\.\., S, 4\)"):
        F.scaled_dot_product_attention(q, sg.randn(2, 3, 5), q)
    with pytest.raises(ValueError, match="batch dims of query"):
        F.scaled_dot_product_attention(q, sg.randn(3, 3, 4), q)
    with pytest.raises(ValueError, match="expected dropout_p in"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.5)


def test_the_fused_op_refuses_a_second_derivative():
    q = sg.randn(1, 2, 3, 4, dtype=sg.float64, requires_grad=True)
    out = F.scaled_dot_product_attention(q, q, q)
    (grad_q,) = sg.grad(out.sum(), q, create_graph=True)
    with pytest.raises(RuntimeError, match="ScaledDotProductAttention is differentiable only once"):
        grad_q.sum().backward()
