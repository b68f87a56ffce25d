"""Property-test cases for the fused LSTM: ``FusedLSTM`` through ``F.lstm`` (stacked layers,
batch_first, given initial state) and ``F.lstm_cell``; and for the composed GRU and tanh RNN of
``scratchgen.nn.recurrence_runner`` (stacked, one or two directions), composed of ops and so
differentiable twice (checked on the RNN; the GRU's second order is its ops' and would cost
minutes here).

Each case returns its outputs flattened into one vector (output, h_n, c_n), so gradcheck and the
PyTorch comparison see every output. Sizes stay tiny: each finite-difference coordinate is two
runs of the whole stack. No ``second_order``: the op is differentiable once by design.
"""
from hypothesis import strategies as st

import scratchgen as sg
import scratchgen.functional as F
from scratchgen.nn.recurrence_runner import gru_steps, rnn_steps, run_layers
from scratchgen.testing.strategies import GradCase, arrays


@st.composite
def lstm_stacks(draw):
    """x, h0, c0 and (weight_ih, weight_hh, bias_ih, bias_hh) per layer, and ``batch_first``."""
    steps, batch, inputs, hidden = (draw(st.integers(1, 3)) for _ in range(4))
    layers, batch_first = draw(st.integers(1, 2)), draw(st.booleans())
    x = draw(arrays((batch, steps, inputs) if batch_first else (steps, batch, inputs)))
    states = [draw(arrays((layers, batch, hidden))) for _ in range(2)]
    weights = []
    for layer in range(layers):
        gates = 4 * hidden
        shapes = [(gates, inputs if layer == 0 else hidden), (gates, hidden), (gates,), (gates,)]
        weights += [draw(arrays(shape)) for shape in shapes]
    return (x, *states, *weights), {"batch_first": batch_first}


@st.composite
def lstm_cell_steps(draw):
    """input, h, c, weight_ih, weight_hh, bias_ih, bias_hh of one (batched) step."""
    batch, inputs, hidden = (draw(st.integers(1, 3)) for _ in range(3))
    shapes = [(batch, inputs), (batch, hidden), (batch, hidden), (4 * hidden, inputs), (4 * hidden, hidden),
              (4 * hidden,), (4 * hidden,)]
    return tuple(draw(arrays(shape)) for shape in shapes), {}


def _flat(cat, *tensors):
    return cat([t.reshape(-1) for t in tensors])


def lstm_outputs(x, h0, c0, *weights, batch_first):
    layers = [weights[i:i + 4] for i in range(0, len(weights), 4)]
    output, (h_n, c_n) = F.lstm(x, layers, (h0, c0), batch_first=batch_first)
    return _flat(sg.cat, output, h_n, c_n)


def torch_lstm_outputs(x, h0, c0, *weights, batch_first):
    import torch
    output, h_n, c_n = torch.lstm(x, (h0, c0), list(weights), True, len(weights) // 4, 0.0, False, False,
                                  batch_first)
    return _flat(torch.cat, output, h_n, c_n)


def lstm_cell_outputs(x, h, c, *weights):
    return _flat(sg.cat, *F.lstm_cell(x, (h, c), *weights))


def torch_lstm_cell_outputs(x, h, c, *weights):
    import torch
    return _flat(torch.cat, *torch.lstm_cell(x, (h, c), *weights))


def composed_stacks(gates):
    """x, h0 and (weight_ih, weight_hh, bias_ih, bias_hh) per layer and direction, of a GRU
    (``gates`` 3) or an RNN (1)."""
    @st.composite
    def draw_stack(draw):
        # smaller than the LSTM's: every finite difference reruns a Python loop of composed ops
        steps, batch, inputs, hidden = (draw(st.integers(1, 2)) for _ in range(4))
        layers, directions = draw(st.sampled_from([(1, 1), (1, 2), (2, 1)]))  # two of each is costly
        x, h0 = draw(arrays((steps, batch, inputs))), draw(arrays((layers * directions, batch, hidden)))
        weights = []
        for layer in range(layers):
            layer_inputs = inputs if layer == 0 else hidden * directions
            rows = gates * hidden
            shapes = [(rows, layer_inputs), (rows, hidden), (rows,), (rows,)]
            weights += [draw(arrays(shape)) for shape in shapes * directions]
        return (x, h0, *weights), {"layers": layers, "directions": directions}
    return draw_stack()


def composed_outputs(steps):
    def outputs(x, h0, *weights, layers, directions):
        groups = [weights[i:i + 4] for i in range(0, len(weights), 4)]
        per_layer = [groups[layer * directions:(layer + 1) * directions] for layer in range(layers)]
        y, (h_n,) = run_layers(steps, per_layer, x, (list(h0),))
        return _flat(sg.cat, y, h_n)
    return outputs


def torch_composed_outputs(name):
    def outputs(x, h0, *weights, layers, directions):
        import torch
        y, h_n = getattr(torch, name)(x, h0, list(weights), True, layers, 0.0, False, directions == 2, False)
        return _flat(torch.cat, y, h_n)
    return outputs


CASES = [
    GradCase("lstm", lstm_outputs, lstm_stacks(), torch_lstm_outputs),
    GradCase("lstm_cell", lstm_cell_outputs, lstm_cell_steps(), torch_lstm_cell_outputs),
    GradCase("gru", composed_outputs(gru_steps), composed_stacks(3), torch_composed_outputs("gru")),
    GradCase("rnn_tanh", composed_outputs(rnn_steps("tanh")), composed_stacks(1),
             torch_composed_outputs("rnn_tanh"), second_order=True),
]
