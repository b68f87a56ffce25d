"""LSTM, GRU, RNN and LSTMCell against PyTorch: the same state_dict gives the same outputs, final
states and every gradient (drawn layer counts, directions, layouts, biases, initial states, dtypes,
packed sequences of drawn lengths); PyTorch's init;
dropout between layers; a decoding loop of cells equals the sequence layer; BPTT through 1,000
steps; and the fused op refuses a second derivative."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import scratchgen as sg
from conftest import require_torch
from scratchgen import nn
from scratchgen.nn.recurrent import LAYER_PARAMETERS
from torch_twins import assert_outputs_and_gradients_match, assert_same, leaves, seeded_loss, twins, values

# kind -> (our class, torch's class name, extra constructor options, does the state hold c as well)
KINDS = {"LSTM": (nn.LSTM, "LSTM", {}, True), "GRU": (nn.GRU, "GRU", {}, False),
         "RNN": (nn.RNN, "RNN", {}, False), "RNN-relu": (nn.RNN, "RNN", {"nonlinearity": "relu"}, False)}


def recurrent_twins(torch, kind, input_size, hidden, dtype, **options):
    ours_class, torch_name, extra, _ = KINDS[kind]
    return twins(torch, lambda d: ours_class(input_size, hidden, dtype=d, **extra, **options),
                 lambda: getattr(torch.nn, torch_name)(input_size, hidden, **extra, **options), dtype)


def as_pairs(kind, states):
    """(h, c) for the LSTM, (h,) for GRU and RNN: the states a layer takes and returns."""
    return tuple(states) if KINDS[kind][3] else (states,)


def from_pairs(kind, states):
    return tuple(states) if KINDS[kind][3] else states[0]


@settings(max_examples=40)
@given(kind=st.sampled_from(sorted(KINDS)), layers=st.integers(1, 3), bidirectional=st.booleans(),
       batch_first=st.booleans(), bias=st.booleans(), given_state=st.booleans(), unbatched=st.booleans(),
       steps=st.sampled_from([1, 2, 5]), batch=st.integers(1, 3), hidden=st.sampled_from([1, 3, 5]),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_recurrent_layers_match_torch(kind, layers, bidirectional, batch_first, bias, given_state, unbatched,
                                      steps, batch, hidden, dtype, seed):
    """LSTM, GRU and RNN (tanh, relu): outputs, final states and every gradient as PyTorch's."""
    torch = require_torch()
    torch.manual_seed(seed)
    ours, theirs = recurrent_twins(torch, kind, 4, hidden, dtype, num_layers=layers, bias=bias,
                                   batch_first=batch_first, bidirectional=bidirectional)
    rng = np.random.default_rng(seed)
    stacked = layers * (2 if bidirectional else 1)
    x_shape = (steps, 4) if unbatched else ((batch, steps, 4) if batch_first else (steps, batch, 4))
    state_shape = (stacked, hidden) if unbatched else (stacked, batch, hidden)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (x_shape, state_shape, state_shape)]
    (x, *states), (tx, *tstates) = leaves(torch, *arrays[:2 + KINDS[kind][3]])
    y, finals = ours(x, from_pairs(kind, states) if given_state else None)
    ty, tfinals = theirs(tx, from_pairs(kind, tstates) if given_state else None)
    outputs = [("output", y, ty)] + list(zip(("h_n", "c_n"), as_pairs(kind, finals), as_pairs(kind, tfinals)))
    inputs = [("x", x, tx)] + (list(zip(("h0", "c0"), states, tstates)) if given_state else [])
    assert_outputs_and_gradients_match(outputs, inputs, ours, theirs, dtype)


@settings(max_examples=30)
@given(kind=st.sampled_from(sorted(KINDS)), layers=st.integers(1, 2), bidirectional=st.booleans(),
       enforce_sorted=st.booleans(), lengths=st.lists(st.integers(1, 5), min_size=1, max_size=4),
       given_state=st.booleans(), batch_first=st.booleans(), seed=st.integers(0, 2**16))
def test_packed_sequences_match_torch(kind, layers, bidirectional, enforce_sorted, lengths, given_state,
                                      batch_first, seed):
    """pack_padded_sequence -> layer -> pad_packed_sequence: each sequence runs for its own length
    (final states at its last real step, zeros past it), in float32, as PyTorch."""
    torch = require_torch()
    from scratchgen.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    if enforce_sorted:
        lengths = sorted(lengths, reverse=True)
    torch.manual_seed(seed)
    dtype, hidden, batch = np.float32, 3, len(lengths)
    ours, theirs = recurrent_twins(torch, kind, 2, hidden, dtype, num_layers=layers,
                                   bidirectional=bidirectional, batch_first=batch_first)
    rng = np.random.default_rng(seed)
    stacked = layers * (2 if bidirectional else 1)
    x_shape = (batch, max(lengths), 2) if batch_first else (max(lengths), batch, 2)
    state_shape = (stacked, batch, hidden)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (x_shape, state_shape, state_shape)]
    (x, *states), (tx, *tstates) = leaves(torch, *arrays[:2 + KINDS[kind][3]])
    packed = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    tpacked = torch.nn.utils.rnn.pack_padded_sequence(tx, lengths, batch_first=batch_first,
                                                      enforce_sorted=enforce_sorted)
    np.testing.assert_array_equal(values(packed.data), values(tpacked.data))
    y, finals = ours(packed, from_pairs(kind, states) if given_state else None)
    ty, tfinals = theirs(tpacked, from_pairs(kind, tstates) if given_state else None)
    (y, y_lengths), (ty, ty_lengths) = (pad_packed_sequence(y, batch_first=batch_first),
                                        torch.nn.utils.rnn.pad_packed_sequence(ty, batch_first=batch_first))
    np.testing.assert_array_equal(values(y_lengths), values(ty_lengths))
    outputs = [("output", y, ty)] + list(zip(("h_n", "c_n"), as_pairs(kind, finals), as_pairs(kind, tfinals)))
    inputs = [("x", x, tx)] + (list(zip(("h0", "c0"), states, tstates)) if given_state else [])
    assert_outputs_and_gradients_match(outputs, inputs, ours, theirs, dtype)


@settings(max_examples=15)
@given(bias=st.booleans(), unbatched=st.booleans(), given_state=st.booleans(), batch=st.integers(1, 3),
       dtype=st.sampled_from([np.float32, np.float64]), seed=st.integers(0, 2**16))
def test_lstm_cell_matches_torch(bias, unbatched, given_state, batch, dtype, seed):
    torch = require_torch()
    torch.manual_seed(seed)
    ours, theirs = twins(torch, lambda d: nn.LSTMCell(3, 5, bias=bias, dtype=d),
                         lambda: torch.nn.LSTMCell(3, 5, bias=bias), dtype)
    rng = np.random.default_rng(seed)
    shapes = [(3,), (5,), (5,)] if unbatched else [(batch, 3), (batch, 5), (batch, 5)]
    (x, h, c), (tx, th, tc) = leaves(torch, *(rng.standard_normal(s).astype(dtype) for s in shapes))
    out, tout = ours(x, (h, c) if given_state else None), theirs(tx, (th, tc) if given_state else None)
    for name, a, b in zip(("h", "c"), out, tout):
        assert a.shape == tuple(b.shape), name
        assert_same(a, b, dtype, name)
    seeded_loss(list(out), sg.tensor, dtype).backward()
    seeded_loss(list(tout), torch.tensor, dtype).backward()
    pairs = [("x", x, tx)] + ([("h", h, th), ("c", c, tc)] if given_state else [])
    pairs += [(name, p, q) for (name, p), q in zip(ours.named_parameters(), theirs.parameters())]
    for name, a, b in pairs:
        assert_same(a.grad, b.grad, dtype, f"gradient of {name}")


def test_decoding_with_cells_equals_the_sequence_layer():
    """LSTMCell shares LSTM's gate math: a step-by-step loop gives the same states and gradients."""
    sg.manual_seed(0)
    sequence_layer, cell = nn.LSTM(3, 4, dtype=sg.float64), nn.LSTMCell(3, 4, dtype=sg.float64)
    cell.load_state_dict({name[:-3]: value for name, value in sequence_layer.state_dict().items()})
    x = sg.tensor(np.random.default_rng(1).standard_normal((6, 2, 3)), requires_grad=True)
    y, (h_n, c_n) = sequence_layer(x)
    y.sum().backward()
    expected_grad, x.grad = x.grad.numpy(), None
    state, outputs = None, []
    for t in range(6):
        state = cell(x[t], state)
        outputs.append(state[0])
    sg.stack(outputs).sum().backward()
    np.testing.assert_allclose(values(sg.stack(outputs)), values(y), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(values(state[1]), values(c_n[0]), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(x.grad.numpy(), expected_grad, rtol=1e-10, atol=1e-12)


def test_default_init_is_pytorchs_uniform_range():
    sg.manual_seed(0)
    layer = nn.LSTM(7, 16, num_layers=2)
    bound = 1 / np.sqrt(16)
    for name, parameter in layer.named_parameters():
        drawn = values(parameter)
        assert drawn.dtype == np.float32, name
        assert np.all(np.abs(drawn) <= bound), name
        assert np.abs(drawn).max() > 0.9 * bound and abs(drawn.mean()) < 0.2 * bound, name


def test_dropout_applies_between_layers_only_while_training():
    sg.manual_seed(0)
    layer = nn.LSTM(3, 4, num_layers=2, dropout=1.0)
    x = sg.tensor(np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32))
    y, (h_n, _) = layer(x)
    # dropout=1 zeroes everything the second layer sees: it runs on zeros, the first layer does not
    second_layer = tuple(getattr(layer, f"{kind}_l1") for kind in LAYER_PARAMETERS)
    y_on_zeros, _ = sg.functional.lstm(sg.zeros(5, 2, 4), [second_layer])
    np.testing.assert_allclose(values(y), values(y_on_zeros), rtol=1e-6)
    assert np.any(values(h_n)[0] != 0)  # the first layer's output is not dropped
    layer.eval()
    y_eval, _ = layer(x)
    assert not np.allclose(values(y_eval), values(y))


def test_backpropagation_through_1000_steps_matches_torch():
    torch = require_torch()
    torch.manual_seed(0)
    ours, theirs = twins(torch, lambda d: nn.LSTM(3, 8, num_layers=2, dtype=d),
                         lambda: torch.nn.LSTM(3, 8, num_layers=2), np.float64)
    (x,), (tx,) = leaves(torch, np.random.default_rng(0).standard_normal((1000, 2, 3)))
    y, _ = ours(x)
    ty, _ = theirs(tx)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-8, atol=1e-10)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-8, atol=1e-10)


def test_second_derivative_through_the_fused_op_is_an_error():
    layer = nn.LSTM(3, 4)
    x = sg.tensor(np.ones((2, 1, 3), dtype=np.float32), requires_grad=True)
    y, _ = layer(x)
    (grad_x,) = sg.grad(y.sum(), [x], create_graph=True)
    with pytest.raises(RuntimeError, match="FusedLSTM is differentiable only once"):
        grad_x.sum().backward()


def test_reference_and_cpu_kernels_agree_through_the_layer():
    sg.manual_seed(0)
    layer = nn.LSTM(3, 5, num_layers=2)
    x = sg.tensor(np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32))
    results = []
    for kernels in ("reference", "cpu"):
        with sg.use_kernels(kernels):
            y, (h_n, c_n) = layer(x)
            y.sum().backward()
        results.append([values(y), values(c_n)] + [p.grad.numpy().copy() for p in layer.parameters()])
        layer.zero_grad()
    for ours, expected in zip(*results):
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


def test_errors_say_what_was_expected():
    layer = nn.LSTM(3, 4, num_layers=2)
    with pytest.raises(ValueError, match=r"LSTM: expected input of shape \(T, B, 3\).*got \(5, 2, 6\)"):
        layer(sg.zeros(5, 2, 6))
    with pytest.raises(ValueError, match=r"LSTM: expected h0 of shape \(2, 2, 4\), got \(1, 2, 4\)"):
        layer(sg.zeros(5, 2, 3), (sg.zeros(1, 2, 4), sg.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match="LSTM: expected input of shape"):
        layer(sg.zeros(5))
    with pytest.raises(ValueError, match=r"GRU: expected hx of shape \(4, 2, 4\)"):
        nn.GRU(3, 4, num_layers=2, bidirectional=True)(sg.zeros(5, 2, 3), sg.zeros(2, 2, 4))
    from scratchgen.nn.utils.rnn import pack_sequence
    with pytest.raises(ValueError, match=r"GRU: expected packed data of shape \(steps, 3\), got \(5, 2\)"):
        nn.GRU(3, 4)(pack_sequence([sg.zeros(3, 2), sg.zeros(2, 2)]))
    with pytest.raises(ValueError, match="RNN: expected nonlinearity 'tanh' or 'relu', got 'gelu'"):
        nn.RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match=r"lstm_cell: expected cx of shape \(2, 4\), got \(4,\)"):
        nn.LSTMCell(3, 4)(sg.zeros(2, 3), (sg.zeros(2, 4), sg.zeros(4)))
    with pytest.raises(NotImplementedError, match="proj_size"):
        nn.LSTM(3, 4, proj_size=2)


def test_packing_utilities_match_torch():
    """pad_sequence, pack_sequence and pad_packed_sequence (padding_value, total_length, batch_first)
    give PyTorch's tensors, and packing passes gradients back to the padded input."""
    torch = require_torch()
    from scratchgen.nn.utils import rnn
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((length, 2)) for length in (2, 4, 1)]
    ours, theirs = leaves(torch, *arrays)
    padded, their_padded = rnn.pad_sequence(ours, padding_value=-1.0), torch.nn.utils.rnn.pad_sequence(
        theirs, padding_value=-1.0)
    np.testing.assert_array_equal(values(padded), values(their_padded))
    packed = rnn.pack_sequence(ours, enforce_sorted=False)
    their_packed = torch.nn.utils.rnn.pack_sequence(theirs, enforce_sorted=False)
    for field in ("data", "batch_sizes", "sorted_indices", "unsorted_indices"):
        np.testing.assert_array_equal(values(getattr(packed, field)), values(getattr(their_packed, field)),
                                      field)
    unpacked, lengths = rnn.pad_packed_sequence(packed, batch_first=True, padding_value=9.0, total_length=6)
    their_unpacked, their_lengths = torch.nn.utils.rnn.pad_packed_sequence(
        their_packed, batch_first=True, padding_value=9.0, total_length=6)
    np.testing.assert_array_equal(values(unpacked), values(their_unpacked))
    np.testing.assert_array_equal(values(lengths), values(their_lengths))
    seeded_loss([unpacked], sg.tensor, np.float64).backward()
    seeded_loss([their_unpacked], torch.tensor, np.float64).backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a.grad.numpy(), b.grad.numpy())


def test_packing_refuses_lengths_it_cannot_pack():
    from scratchgen.nn.utils.rnn import pack_padded_sequence
    x = sg.zeros(4, 3, 2)
    with pytest.raises(ValueError, match=r"expected lengths in decreasing order with enforce_sorted=True, "
                                         r"got \[1, 3, 2\]"):
        pack_padded_sequence(x, [1, 3, 2])
    with pytest.raises(ValueError, match=r"expected lengths in \[1, 4\] \(the padded length\), got "
                                         r"\[5, 3, 0\]"):
        pack_padded_sequence(x, [5, 3, 0], enforce_sorted=False)
    with pytest.raises(ValueError, match=r"expected one length per sequence \(3 for input of shape"):
        pack_padded_sequence(x, [2, 1])
