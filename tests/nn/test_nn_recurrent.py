"""LSTM and LSTMCell against PyTorch: the same state_dict gives the same outputs, final states and
every gradient (drawn layer counts, layouts, biases, initial states, dtypes); PyTorch's init;
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

TOLERANCES = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-10)}


def twins(torch, make_ours, make_theirs, dtype):
    """A scratchgen layer and its PyTorch twin holding the same (randomised) weights."""
    theirs = make_theirs().to(getattr(torch, np.dtype(dtype).name))
    ours = make_ours(dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({name: value.numpy() for name, value in theirs.state_dict().items()})
    return ours, theirs


def leaves(torch, *arrays):
    return ([sg.tensor(a, requires_grad=True) for a in arrays],
            [torch.tensor(a, requires_grad=True) for a in arrays])


def values(tensor):
    return tensor.detach().numpy()


def assert_same(ours, theirs, dtype, what):
    np.testing.assert_allclose(values(ours), values(theirs), **TOLERANCES[dtype], err_msg=what)


def seeded_loss(outputs, tensor_type, dtype):
    """sum(output * fixed random weights) over every output: each gets a distinct gradient."""
    rng = np.random.default_rng(0)
    return sum((o * tensor_type(rng.standard_normal(tuple(o.shape)).astype(dtype))).sum() for o in outputs)


@settings(max_examples=25)
@given(layers=st.integers(1, 3), batch_first=st.booleans(), bias=st.booleans(), given_state=st.booleans(),
       unbatched=st.booleans(), steps=st.sampled_from([1, 2, 5]), batch=st.integers(1, 3),
       hidden=st.sampled_from([1, 3, 5]), dtype=st.sampled_from([np.float32, np.float64]),
       seed=st.integers(0, 2**16))
def test_lstm_matches_torch(layers, batch_first, bias, given_state, unbatched, steps, batch, hidden, dtype,
                            seed):
    torch = require_torch()
    torch.manual_seed(seed)
    options = dict(num_layers=layers, bias=bias, batch_first=batch_first)
    ours, theirs = twins(torch, lambda d: nn.LSTM(4, hidden, dtype=d, **options),
                         lambda: torch.nn.LSTM(4, hidden, **options), dtype)
    rng = np.random.default_rng(seed)
    x_shape = (steps, 4) if unbatched else ((batch, steps, 4) if batch_first else (steps, batch, 4))
    state_shape = (layers, hidden) if unbatched else (layers, batch, hidden)
    arrays = [rng.standard_normal(s).astype(dtype) for s in (x_shape, state_shape, state_shape)]
    (x, h0, c0), (tx, th0, tc0) = leaves(torch, *arrays)
    y, (h_n, c_n) = ours(x, (h0, c0) if given_state else None)
    ty, (th_n, tc_n) = theirs(tx, (th0, tc0) if given_state else None)
    for name, a, b in (("output", y, ty), ("h_n", h_n, th_n), ("c_n", c_n, tc_n)):
        assert a.shape == tuple(b.shape), name
        assert_same(a, b, dtype, name)
    seeded_loss([y, h_n, c_n], sg.tensor, dtype).backward()
    seeded_loss([ty, th_n, tc_n], torch.tensor, dtype).backward()
    pairs = [("x", x, tx)] + ([("h0", h0, th0), ("c0", c0, tc0)] if given_state else [])
    pairs += [(name, p, q) for (name, p), q in zip(ours.named_parameters(), theirs.parameters())]
    for name, a, b in pairs:
        assert_same(a.grad, b.grad, dtype, f"gradient of {name}")


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
    with pytest.raises(ValueError, match=r"lstm: expected input with 3 features \(the last dim\), got shape"):
        layer(sg.zeros(5, 2, 6))
    with pytest.raises(ValueError, match=r"lstm: expected h0 of shape \(2, 2, 4\), got \(1, 2, 4\)"):
        layer(sg.zeros(5, 2, 3), (sg.zeros(1, 2, 4), sg.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match="lstm: expected input of shape"):
        layer(sg.zeros(5))
    with pytest.raises(ValueError, match=r"lstm_cell: expected cx of shape \(2, 4\), got \(4,\)"):
        nn.LSTMCell(3, 4)(sg.zeros(2, 3), (sg.zeros(2, 4), sg.zeros(4)))
    with pytest.raises(NotImplementedError, match="bidirectional"):
        nn.LSTM(3, 4, bidirectional=True)
