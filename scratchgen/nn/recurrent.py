"""Recurrent layers: ``RNN``, ``GRU`` and ``LSTM`` (stacks of layers, one or two directions,
padded or packed sequences) and ``LSTMCell`` (one step, for decoding).

Parameter names, layouts, gate orders (LSTM i, f, g, o; GRU r, z, n) and initialisation are
PyTorch's, so a ``state_dict`` moves between the two. The LSTM runs the fused kernels of
``scratchgen.kernels.recurrence`` and is differentiable once (no ``create_graph`` through it);
GRU and RNN are composed from ordinary ops (``recurrence_runner``), differentiable to any order.
"""
import math

from .. import functional as F
from .. import init
from ..ops.shape import getitem, reshape, transpose
from ..tensor import zeros
from .module import Module, new_parameter
from .recurrence_runner import gru_steps, lstm_steps, rnn_steps, run_layers
from .utils.rnn import PackedSequence, packed_positions, scatter_packed, sorted_lengths

LAYER_PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # PyTorch's names, in its order


class _RecurrentParameters(Module):
    """Registers one layer's weight_ih (G H, I), weight_hh (G H, H), bias_ih and bias_hh (G H,)
    under ``suffix`` (G = the gate count) and initialises everything U(-1/sqrt(H), 1/sqrt(H)) as
    PyTorch does."""

    gates = 4

    def __init__(self, hidden_size, bias, device, dtype):
        super().__init__()
        self.hidden_size, self.bias = hidden_size, bias
        self._factory = dict(device=device, dtype=dtype)

    def _add_layer(self, input_size, suffix=""):
        rows = self.gates * self.hidden_size
        setattr(self, f"weight_ih{suffix}", new_parameter(rows, input_size, **self._factory))
        setattr(self, f"weight_hh{suffix}", new_parameter(rows, self.hidden_size, **self._factory))
        for name in (f"bias_ih{suffix}", f"bias_hh{suffix}"):
            self.register_parameter(name, new_parameter(rows, **self._factory) if self.bias else None)

    def _layer_weights(self, suffix=""):
        return tuple(getattr(self, f"{kind}{suffix}") for kind in LAYER_PARAMETERS)

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            init.uniform_(parameter, -bound, bound)


class _RecurrentLayers(_RecurrentParameters):
    """What RNN, GRU and LSTM share: ``num_layers`` layers of one or two directions over a
    sequence, PyTorch's ``forward`` conventions.

    input   (T, B, I), (B, T, I) with ``batch_first``, unbatched (T, I), or a ``PackedSequence``
    states  each (L * D, B, H) ((L * D, H) unbatched), D = 2 if ``bidirectional``; zeros when None;
            index ``layer * D + direction`` (direction 1 reads the sequence backwards)
    output  the last layer's hidden states at every step, (T, B, D * H) laid out like ``input``
            (a ``PackedSequence`` for a packed input), both directions side by side
    finals  each layer's and direction's last states, shaped like the initial ones; for a packed
            input, each sequence's state after its own last step
    ``dropout`` zeroes the outputs of every layer but the last while training.
    """

    state_names = ("hx",)

    def __init__(self, input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                 device, dtype):
        super().__init__(hidden_size, bias, device, dtype)
        name = type(self).__name__
        if not 0 <= dropout <= 1:
            raise ValueError(f"{name}: expected dropout in [0, 1], got {dropout}")
        if num_layers < 1:
            raise ValueError(f"{name}: expected num_layers >= 1, got {num_layers}")
        self.input_size, self.num_layers = input_size, num_layers
        self.batch_first, self.dropout, self.bidirectional = batch_first, dropout, bidirectional
        self.directions = 2 if bidirectional else 1
        for layer in range(num_layers):
            for suffix in self._direction_suffixes():
                self._add_layer(input_size if layer == 0 else hidden_size * self.directions,
                                suffix=f"_l{layer}{suffix}")
        self.reset_parameters()

    def _direction_suffixes(self):
        return ("", "_reverse")[:self.directions]

    def _steps(self):
        raise NotImplementedError

    def _run(self, input, states):
        """(output, final states) for ``forward``: ``states`` a tuple of state tensors or None."""
        packed = isinstance(input, PackedSequence)
        x, lengths, unbatched = self._time_major(input)
        states = self._initial_states(x, states, unbatched, input.sorted_indices if packed else None)
        weights = [[self._layer_weights(f"_l{layer}{suffix}") for suffix in self._direction_suffixes()]
                   for layer in range(self.num_layers)]
        output, finals = run_layers(self._steps(), weights, x, states, lengths, self.dropout, self.training)
        if packed:
            output = PackedSequence(getitem(output, packed_positions(input.batch_sizes.numpy())),
                                    *input[1:])
            if input.unsorted_indices is not None:
                finals = tuple(final[:, input.unsorted_indices.numpy()] for final in finals)
        elif unbatched:
            output = reshape(output, (output.shape[0], -1))
            finals = tuple(reshape(final, (final.shape[0], -1)) for final in finals)
        elif self.batch_first:
            output = transpose(output, 0, 1)
        return output, finals

    def _time_major(self, input):
        """(x (T, B, I), lengths per column or None, unbatched)."""
        name, size = type(self).__name__, self.input_size
        if isinstance(input, PackedSequence):
            if input.data.ndim != 2 or input.data.shape[1] != size:
                raise ValueError(f"{name}: expected packed data of shape (steps, {size}), got {input.data.shape}")
            batch_sizes = input.batch_sizes.numpy()
            return scatter_packed(input.data, batch_sizes, len(batch_sizes)), sorted_lengths(input), False
        if input.ndim not in (2, 3) or input.shape[-1] != size:
            raise ValueError(f"{name}: expected input of shape (T, B, {size}), (B, T, {size}) with "
                             f"batch_first or unbatched (T, {size}), got {input.shape}")
        if input.ndim == 2:
            return reshape(input, (input.shape[0], 1, input.shape[1])), None, True
        return (transpose(input, 0, 1) if self.batch_first else input), None, False

    def _initial_states(self, x, states, unbatched, sorted_indices):
        """Per state kind, a list of L * D (B, H) tensors: the given ones (reordered like the
        packed columns) or zeros."""
        stacked, batch = self.num_layers * self.directions, x.shape[1]
        if states is None:
            state = zeros(batch, self.hidden_size, dtype=x.dtype, device=x.device)
            return tuple([state] * stacked for _ in self.state_names)
        expected = (stacked, self.hidden_size) if unbatched else (stacked, batch, self.hidden_size)
        for name, state in zip(self.state_names, states):
            if tuple(state.shape) != expected:
                raise ValueError(f"{type(self).__name__}: expected {name} of shape {expected}, got "
                                 f"{tuple(state.shape)}")
        if unbatched:
            states = tuple(reshape(state, (stacked, 1, self.hidden_size)) for state in states)
        if sorted_indices is not None:
            states = tuple(state[:, sorted_indices.numpy()] for state in states)
        return tuple(list(state) for state in states)

    def extra_repr(self):
        options = [f"num_layers={self.num_layers}"] if self.num_layers != 1 else []
        options += [] if self.bias else ["bias=False"]
        options += ["batch_first=True"] if self.batch_first else []
        options += [f"dropout={self.dropout}"] if self.dropout else []
        options += ["bidirectional=True"] if self.bidirectional else []
        return ", ".join([f"{self.input_size}, {self.hidden_size}"] + options)


class LSTM(_RecurrentLayers):
    """``forward(input, hx=None) -> output, (h_n, c_n)``, hx = (h0, c0): PyTorch's ``nn.LSTM``
    on the fused kernel (see ``_RecurrentLayers`` for the shapes). ``proj_size`` is not implemented."""

    gates, state_names = 4, ("h0", "c0")

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        if proj_size:
            raise NotImplementedError("LSTM: proj_size > 0 is not implemented")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)

    def _steps(self):
        return lstm_steps

    def forward(self, input, hx=None):
        if hx is not None and len(hx) != 2:
            raise ValueError(f"LSTM: expected hx = (h0, c0), got {len(hx)} tensors")
        output, (h_n, c_n) = self._run(input, hx)
        return output, (h_n, c_n)


class _HiddenStateLayers(_RecurrentLayers):
    """GRU and RNN: one state, ``forward(input, hx=None) -> output, h_n``."""

    def forward(self, input, hx=None):
        output, (h_n,) = self._run(input, None if hx is None else (hx,))
        return output, h_n


class GRU(_HiddenStateLayers):
    """PyTorch's ``nn.GRU`` (gates r, z, n), composed from ordinary ops (the math:
    ``recurrence_runner.gru_steps``)."""

    gates = 3

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, device=None, dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)

    def _steps(self):
        return gru_steps


class RNN(_HiddenStateLayers):
    """PyTorch's ``nn.RNN``, the Elman network h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)
    (``nonlinearity="relu"``: relu), composed from ordinary ops."""

    gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: expected nonlinearity 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)
        self.nonlinearity = nonlinearity

    def _steps(self):
        return rnn_steps(self.nonlinearity)

    def extra_repr(self):
        return super().extra_repr() + ("" if self.nonlinearity == "tanh" else ", nonlinearity='relu'")


class LSTMCell(_RecurrentParameters):
    """One LSTM step, ``forward(input, hx=None) -> (h, c)``: input (B, I) or (I,), hx = (h, c)
    each (B, H) (or (H,)), zeros when None.

    It is the fused LSTM op over a sequence of length one (``F.lstm_cell``): the same gate math
    and kernels as ``LSTM``, one kernel call per decoding step, differentiable once.
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(hidden_size, bias, device, dtype)
        self.input_size = input_size
        self._add_layer(input_size)
        self.reset_parameters()

    def forward(self, input, hx=None):
        return F.lstm_cell(input, hx, *self._layer_weights())

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")
