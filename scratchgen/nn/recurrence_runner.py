"""How the recurrent layers (``LSTM``, ``GRU``, ``RNN``) run a batch: cells, directions, layers, lengths.

A *steps* function runs one layer in one direction over a stretch of time in which every sequence
of the (sub)batch is running: ``steps(x (S, n, I), state, weights) -> y (S, n, H), state``, with
``state`` a tuple of (n, H) tensors — ``(h, c)`` for the LSTM, ``(h,)`` for the others.

    lstm_steps   the fused LSTM op (``scratchgen.ops.recurrence.FusedLSTM``): one kernel call
    gru_steps    composed from linear, sigmoid, tanh: one input projection, then a loop over steps
    rnn_steps    h' = tanh or relu(x W_ih^T + b_ih + h W_hh^T + b_hh), composed the same way

``run_layers`` stacks layers (dropout between them) and directions (the reverse direction reads
the sequence backwards and its output is flipped back; the two outputs are concatenated on the
feature dim). Sequences of different lengths (a ``PackedSequence``, columns sorted longest first)
run in *spans*: between two consecutive distinct lengths the same leading columns are running, so
each span is one ``steps`` call on those columns. Forwards, a sequence's final state is split off
where it ends; backwards, a sequence joins the running batch with its initial state where it
starts (at its last real step). Either way each sequence sees exactly its own steps, as PyTorch's
packed layers do, and the composed cells stay differentiable to any order.
"""
import numpy as np

from .. import functional as F
from ..ops.recurrence import FusedLSTM
from ..ops.shape import cat, chunk, pad, stack, unbind


# ---- steps: one layer, one direction, every sequence running ---------------------------------------
def lstm_steps(x, state, weights):
    """The fused LSTM over (S, n, I); weights (weight_ih, weight_hh, bias_ih, bias_hh), gates i, f, g, o."""
    y, h, c = FusedLSTM.apply(x, *state, *weights)
    return y, (h, c)


def gru_steps(x, state, weights):
    """GRU, gates in PyTorch's order (r, z, n):

        r = sigmoid(x W_ir + b_ir + h W_hr + b_hr)      z = sigmoid(x W_iz + b_iz + h W_hz + b_hz)
        n = tanh(x W_in + b_in + r * (h W_hn + b_hn))   h' = (1 - z) * n + z * h = n + z * (h - n)
    """
    weight_ih, weight_hh, bias_ih, bias_hh = weights
    (h,), outputs = state, []
    for projected in unbind(F.linear(x, weight_ih, bias_ih)):   # every step's input part in one matmul
        input_r, input_z, input_n = chunk(projected, 3, dim=-1)
        hidden_r, hidden_z, hidden_n = chunk(F.linear(h, weight_hh, bias_hh), 3, dim=-1)
        reset, update = F.sigmoid(input_r + hidden_r), F.sigmoid(input_z + hidden_z)
        candidate = F.tanh(input_n + reset * hidden_n)
        h = candidate + update * (h - candidate)
        outputs.append(h)
    return stack(outputs), (h,)


def rnn_steps(nonlinearity):
    """The Elman RNN's steps, h' = nonlinearity(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    activation = {"tanh": F.tanh, "relu": F.relu}[nonlinearity]

    def steps(x, state, weights):
        weight_ih, weight_hh, bias_ih, bias_hh = weights
        (h,), outputs = state, []
        for projected in unbind(F.linear(x, weight_ih, bias_ih)):
            h = activation(projected + F.linear(h, weight_hh, bias_hh))
            outputs.append(h)
        return stack(outputs), (h,)

    return steps


# ---- one direction over sequences of different lengths ---------------------------------------------
def _flip(sequence):
    return sequence[::-1]


def _rows(state, start, stop):
    return tuple(s[start:stop] for s in state)


def _pad_columns(y, batch):
    """(S, n, H) -> (S, batch, H): zeros for the sequences that are not running."""
    return y if y.shape[1] == batch else pad(y, (0, 0, 0, batch - y.shape[1]))


def _spans(lengths):
    """(start, stop, running) per stretch of steps with the same running columns: the first
    ``running`` ones, since the columns are sorted longest first."""
    stops = sorted(set(int(n) for n in lengths))
    return [(start, stop, int((lengths >= stop).sum())) for start, stop in zip([0] + stops[:-1], stops)]


def run_direction(steps, weights, x, initial, lengths=None, reverse=False):
    """y (T, B, H) and the final states (each sequence's, after its last real step) of one layer
    in one direction. x (T, B, I); ``initial`` a tuple of (B, H); ``lengths`` None (all run T
    steps) or per column, decreasing, with T = the longest."""
    if lengths is None:
        y, final = steps(_flip(x) if reverse else x, initial, weights)
        return (_flip(y) if reverse else y), final
    lengths, batch = np.asarray(lengths), x.shape[1]
    spans = _spans(lengths)
    if reverse:
        return _run_backwards(steps, weights, x, initial, spans, batch)
    state, finished, pieces = initial, [], []
    for start, stop, running in spans:
        if running < state[0].shape[0]:  # the columns past `running` ended at `start`
            finished.append(_rows(state, running, None))
            state = _rows(state, 0, running)
        y, state = steps(x[start:stop, :running], state, weights)
        pieces.append(_pad_columns(y, batch))
    finished.append(state)
    return cat(pieces), tuple(cat(list(parts)) for parts in zip(*finished[::-1]))


def _run_backwards(steps, weights, x, initial, spans, batch):
    """The reverse direction: from the last step down, columns joining as their sequences start."""
    state, pieces = _rows(initial, 0, 0), []
    for start, stop, running in reversed(spans):
        joined = state[0].shape[0]
        if running > joined:  # these columns' last real step is stop - 1: they start here
            state = tuple(cat([s, i[joined:running]]) for s, i in zip(state, initial))
        y, state = steps(_flip(x[start:stop, :running]), state, weights)
        pieces.append(_pad_columns(_flip(y), batch))
    return cat(pieces[::-1]), state


# ---- the stack -------------------------------------------------------------------------------------
def run_layers(steps, layer_weights, x, initial, lengths=None, dropout=0.0, training=False):
    """output (T, B, D * H) of the last layer and the final states, each (L * D, B, H).

    ``layer_weights[layer][direction]`` is one weight tuple (D = 1 or 2 directions); ``initial``
    holds for each state kind a list of L * D (B, H) tensors, index ``layer * D + direction``.
    ``dropout`` applies to every layer's output but the last, while ``training``.
    """
    finals = []
    for layer, directions in enumerate(layer_weights):
        if layer > 0:
            x = F.dropout(x, dropout, training)
        outputs = []
        for direction, weights in enumerate(directions):
            start = tuple(states[layer * len(directions) + direction] for states in initial)
            y, final = run_direction(steps, weights, x, start, lengths, reverse=direction == 1)
            outputs.append(y)
            finals.append(final)
        x = outputs[0] if len(outputs) == 1 else cat(outputs, dim=2)
    return x, tuple(stack(list(kind)) for kind in zip(*finals))
