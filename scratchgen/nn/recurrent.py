"""Recurrent layers: ``LSTM`` (a stack of fused layers) and ``LSTMCell`` (one step for decoding).

Parameter names, layouts, gate order (i, f, g, o) and initialisation are PyTorch's, so a
``state_dict`` moves between the two. Both run the fused kernels of
``scratchgen.kernels.recurrence`` and are differentiable once (no ``create_graph`` through them).
"""
import math

from .. import functional as F
from .. import init
from .module import Module, new_parameter

LAYER_PARAMETERS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")  # PyTorch's names, in its order


class _LSTMParameters(Module):
    """Registers one layer's weight_ih (4H, I), weight_hh (4H, H), bias_ih and bias_hh (4H,)
    under ``suffix`` and initialises everything U(-1/sqrt(H), 1/sqrt(H)) as PyTorch does."""

    def __init__(self, hidden_size, bias, device, dtype):
        super().__init__()
        self.hidden_size, self.bias = hidden_size, bias
        self._factory = dict(device=device, dtype=dtype)

    def _add_layer(self, input_size, suffix=""):
        gates = 4 * self.hidden_size
        setattr(self, f"weight_ih{suffix}", new_parameter(gates, input_size, **self._factory))
        setattr(self, f"weight_hh{suffix}", new_parameter(gates, self.hidden_size, **self._factory))
        for name in (f"bias_ih{suffix}", f"bias_hh{suffix}"):
            self.register_parameter(name, new_parameter(gates, **self._factory) if self.bias else None)

    def _layer_weights(self, suffix=""):
        return tuple(getattr(self, f"{kind}{suffix}") for kind in LAYER_PARAMETERS)

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            init.uniform_(parameter, -bound, bound)


class LSTM(_LSTMParameters):
    """A stack of ``num_layers`` LSTM layers over a sequence; ``forward(input, hx=None)`` returns
    ``output, (h_n, c_n)``.

    input   (T, B, I), (B, T, I) with ``batch_first``, or unbatched (T, I)
    hx      (h0, c0), each (num_layers, B, H) ((num_layers, H) unbatched); zeros when None
    output  the last layer's hidden state at every step, laid out like ``input``
    h_n/c_n the final states of every layer, shaped like h0
    ``dropout`` zeroes the outputs of every layer but the last while training.
    ``bidirectional`` and ``proj_size`` are not implemented.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False, dropout=0.0,
                 bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__(hidden_size, bias, device, dtype)
        if bidirectional or proj_size:
            raise NotImplementedError("LSTM: bidirectional=True and proj_size > 0 are not implemented")
        if not 0 <= dropout <= 1:
            raise ValueError(f"LSTM: expected dropout in [0, 1], got {dropout}")
        if num_layers < 1:
            raise ValueError(f"LSTM: expected num_layers >= 1, got {num_layers}")
        self.input_size, self.num_layers = input_size, num_layers
        self.batch_first, self.dropout = batch_first, dropout
        for layer in range(num_layers):
            self._add_layer(input_size if layer == 0 else hidden_size, suffix=f"_l{layer}")
        self.reset_parameters()

    def forward(self, input, hx=None):
        weights = [self._layer_weights(f"_l{layer}") for layer in range(self.num_layers)]
        return F.lstm(input, weights, hx, dropout=self.dropout, training=self.training,
                      batch_first=self.batch_first)

    def extra_repr(self):
        options = [f"num_layers={self.num_layers}"] if self.num_layers != 1 else []
        options += [] if self.bias else ["bias=False"]
        options += ["batch_first=True"] if self.batch_first else []
        options += [f"dropout={self.dropout}"] if self.dropout else []
        return ", ".join([f"{self.input_size}, {self.hidden_size}"] + options)


class LSTMCell(_LSTMParameters):
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
