"""Transformer layers against PyTorch: TransformerEncoderLayer, TransformerEncoder (with a final
norm), TransformerDecoderLayer and TransformerDecoder hold PyTorch's state_dict keys in its order,
and the same weights give the same outputs and every gradient over drawn layouts (batch_first,
unbatched), norm_first, activations, masks (causal with and without the is_causal hint, key
padding) and dtypes. Dropout is exercised separately: its random draws are not PyTorch's."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen as sg
from conftest import require_torch
from scratchgen import nn
from torch_twins import assert_outputs_and_gradients_match, leaves, twins, values

D_MODEL, HEADS, FEEDFORWARD = 8, 2, 12


def make_layers(module, kind, options, stack):
    """(encoder or decoder, as one layer or a 2-layer stack with a final LayerNorm) from
    ``module`` (scratchgen.nn or torch.nn)."""
    layer = getattr(module, f"Transformer{kind}Layer")(D_MODEL, HEADS, FEEDFORWARD, dropout=0.0, **options)
    if not stack:
        return layer
    return getattr(module, f"Transformer{kind}")(layer, 2, norm=module.LayerNorm(D_MODEL))


def causal_float_mask(size):
    return np.triu(np.full((size, size), -np.inf), k=1)


def masks(kind, stack, mask, padding, batch, target, source, rng):
    """Keyword arguments of the drawn masks; key 0 stays visible in every padding mask (a row with no
    visible key is NaN in PyTorch, zeros here)."""
    kwargs = {}
    prefix, hint = ("src_", "is_causal") if kind == "Encoder" else ("tgt_", "tgt_is_causal")
    mask_name = ("mask" if kind == "Encoder" else "tgt_mask") if stack else f"{prefix}mask"
    if mask != "none":
        kwargs[mask_name] = causal_float_mask(target)
        if mask == "causal_hint":
            kwargs[hint] = True
    if padding:
        padded = rng.random((batch, target)) < 0.4
        padded[:, 0] = False
        kwargs[f"{prefix}key_padding_mask"] = padded
        if kind == "Decoder":
            memory_padded = rng.random((batch, source)) < 0.4
            memory_padded[:, 0] = False
            kwargs["memory_key_padding_mask"] = memory_padded
    return kwargs


def as_tensors(kwargs, make_tensor, dtype):
    """Mask arrays as tensors (float masks in the inputs' dtype); flags unchanged."""
    def convert(value):
        if not isinstance(value, np.ndarray):
            return value
        return make_tensor(value if value.dtype == bool else value.astype(dtype))
    return {name: convert(value) for name, value in kwargs.items()}


@settings(max_examples=30)
@given(kind=st.sampled_from(["Encoder", "Decoder"]), stack=st.booleans(), norm_first=st.booleans(),
       batch_first=st.booleans(), activation=st.sampled_from(["relu", "gelu"]),
       mask=st.sampled_from(["none", "causal", "causal_hint"]), padding=st.booleans(),
       batch=st.integers(1, 3), target=st.integers(1, 5), source=st.integers(1, 4),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_transformer_layers_match_torch(kind, stack, norm_first, batch_first, activation, mask, padding,
                                        batch, target, source, dtype, seed):
    torch = require_torch()
    torch.manual_seed(seed)
    options = dict(norm_first=norm_first, batch_first=batch_first, activation=activation)
    ours, theirs = twins(torch, lambda d: make_layers(nn, kind, options, stack).to(dtype=d),
                         lambda: make_layers(torch.nn, kind, options, stack), dtype)
    rng = np.random.default_rng(seed)
    lengths = [target] if kind == "Encoder" else [target, source]
    shapes = [(batch, length, D_MODEL) if batch_first else (length, batch, D_MODEL) for length in lengths]
    arrays = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    inputs, their_inputs = leaves(torch, *arrays)
    kwargs = masks(kind, stack, mask, padding, batch, target, source, rng)
    out = ours(*inputs, **as_tensors(kwargs, sg.tensor, dtype))
    their_out = theirs(*their_inputs, **as_tensors(kwargs, torch.tensor, dtype))
    names = ("src",) if kind == "Encoder" else ("tgt", "memory")
    assert_outputs_and_gradients_match([("output", out, their_out)], zip(names, inputs, their_inputs), ours,
                                       theirs, dtype)


@pytest.mark.parametrize("kind", ["Encoder", "Decoder"])
def test_unbatched_input_matches_the_batch_of_one(kind):
    sg.manual_seed(0)
    layer = make_layers(nn, kind, {}, stack=False)
    x = sg.randn(4, D_MODEL)
    inputs = (x,) if kind == "Encoder" else (x, sg.randn(3, D_MODEL))
    unbatched = layer(*inputs)
    batched = layer(*(t.reshape(t.shape[0], 1, D_MODEL) for t in inputs))
    assert unbatched.shape == (4, D_MODEL)
    np.testing.assert_allclose(values(unbatched), values(batched)[:, 0], rtol=1e-6, atol=1e-6)


def test_dropout_is_active_in_training_only():
    sg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, FEEDFORWARD, dropout=0.5)
    x = sg.randn(5, 2, D_MODEL)
    assert not np.allclose(values(layer(x)), values(layer(x)))   # two different dropout draws
    layer.eval()
    np.testing.assert_array_equal(values(layer(x)), values(layer(x)))


def test_the_causal_hint_needs_the_mask_and_bad_options_are_named():
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, FEEDFORWARD)
    with pytest.raises(ValueError, match="is_causal=True is a hint that attn_mask is the causal mask"):
        layer(sg.randn(3, 1, D_MODEL), is_causal=True)
    with pytest.raises(ValueError, match="TransformerEncoderLayer: expected activation 'relu', 'gelu' or a "
                                         "callable, got 'tanh'"):
        nn.TransformerEncoderLayer(D_MODEL, HEADS, activation="tanh")
    with pytest.raises(ValueError, match="TransformerEncoder: expected num_layers >= 1, got 0"):
        nn.TransformerEncoder(layer, 0)


def test_the_encoder_stack_detects_a_causal_mask_as_pytorch():
    from scratchgen.nn.transformer import _is_causal_mask
    assert _is_causal_mask(sg.tensor(causal_float_mask(4)), None)
    assert not _is_causal_mask(sg.tensor(np.triu(np.ones((4, 4), bool), k=1)), None)  # bool: not detected
    assert not _is_causal_mask(sg.tensor(np.zeros((4, 4))), None)
    assert not _is_causal_mask(sg.tensor(causal_float_mask(4)), False)
