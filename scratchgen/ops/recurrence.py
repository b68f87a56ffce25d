"""The LSTM as one fused ``Function`` per layer, and the functional ``lstm`` / ``lstm_cell``.

``FusedLSTM`` runs a whole sequence through one layer with the kernels of
``scratchgen.kernels.recurrence`` (the implementation the registry picks): its forward saves the
gates and cells the kernel returns, its backward is the kernel's backward through time. That
backward works on raw arrays, so the op is differentiable once only; differentiating its
gradients again (``create_graph=True``) raises an error naming it.

``lstm`` stacks layers (one ``FusedLSTM`` each, dropout between them) and handles
``batch_first``, unbatched input and default initial states; ``scratchgen.nn.LSTM`` calls it with
its parameters. ``lstm_cell`` is the same op over a sequence of length one: a decoding loop
shares the gate math with the sequence op instead of repeating it in element-wise ops (and each
step is one fused kernel call, not a dozen graph nodes).
"""
from .. import backend
from ..autograd import Function
from ..kernels import implementation
from ..kernels.recurrence import LSTMSaved
from ..tensor import Tensor, zeros
from . import elementwise
from .shape import reshape, stack, transpose


class FusedLSTM(Function):
    """(y, h_n, c_n) of one LSTM layer over x (T, B, I) from (h0, c0), each (B, H).

    Weights in PyTorch's layout and gate order (i, f, g, o); either bias may be None. The two
    biases enter only through their sum, so both receive the same gradient.
    """

    once_differentiable = True

    def forward(self, x, h0, c0, weight_ih, weight_hh, bias_ih, bias_hh):
        xp = backend.get_array_module(x)
        x, h0, c0, weight_ih, weight_hh = (xp.ascontiguousarray(a) for a in (x, h0, c0, weight_ih, weight_hh))
        if bias_ih is None or bias_hh is None:
            bias = bias_hh if bias_ih is None else bias_ih
            bias = xp.zeros(weight_hh.shape[0], dtype=weight_hh.dtype) if bias is None else bias
        else:
            bias = bias_ih + bias_hh
        self.kernels = implementation("recurrence", x)
        y, h_n, c_n, saved = self.kernels.lstm_forward(x, h0, c0, weight_ih, weight_hh,
                                                       xp.ascontiguousarray(bias))
        self.save_for_backward(x, h0, weight_ih, weight_hh, y, *saved)
        return y, h_n, c_n

    def backward(self, grad_y, grad_h_n, grad_c_n):
        x, h0, weight_ih, weight_hh, y, gates, cells = (t.data for t in self.saved_tensors)
        xp = backend.get_array_module(x)
        grad_y, grad_h_n, grad_c_n = (xp.ascontiguousarray(g.data) for g in (grad_y, grad_h_n, grad_c_n))
        grads = self.kernels.lstm_backward(grad_y, grad_h_n, grad_c_n, x, h0, weight_ih, weight_hh, y,
                                           LSTMSaved(gates, cells))
        grad_bias = grads[5]
        return tuple(Tensor(g) for g in grads[:5]) + (Tensor(grad_bias), Tensor(grad_bias))


def lstm(input, weights, hx=None, dropout=0.0, training=True, batch_first=False):
    """A stack of LSTM layers: ``output, (h_n, c_n)`` as ``torch.nn.LSTM`` returns them.

    ``weights`` holds one ``(weight_ih, weight_hh, bias_ih, bias_hh)`` per layer, in PyTorch's
    layouts (either bias may be None). ``input`` is (T, B, I), or (B, T, I) with ``batch_first``,
    or unbatched (T, I). ``hx`` is ``(h0, c0)``, each (L, B, H) ((L, H) unbatched), or None for
    zeros. ``dropout`` applies to the output of every layer but the last, while ``training``.
    """
    if input.ndim not in (2, 3):
        raise ValueError(f"lstm: expected input of shape (T, B, I) or unbatched (T, I), got {input.shape}")
    if input.shape[-1] != weights[0][0].shape[1]:
        raise ValueError(f"lstm: expected input with {weights[0][0].shape[1]} features (the last dim), "
                         f"got shape {input.shape}")
    unbatched = input.ndim == 2
    if unbatched:
        sequence = reshape(input, (input.shape[0], 1, input.shape[1]))
    else:
        sequence = transpose(input, 0, 1) if batch_first else input
    h0, c0 = _initial_states(sequence, weights, hx, unbatched)
    finals = []
    for layer, (weight_ih, weight_hh, bias_ih, bias_hh) in enumerate(weights):
        if layer > 0 and dropout > 0 and training:
            sequence = elementwise.dropout(sequence, dropout)
        sequence, h_n, c_n = FusedLSTM.apply(sequence, h0[layer], c0[layer], weight_ih, weight_hh,
                                             bias_ih, bias_hh)
        finals.append((h_n, c_n))
    h_n, c_n = stack([h for h, _ in finals]), stack([c for _, c in finals])   # (L, B, H)
    if unbatched:
        return reshape(sequence, (sequence.shape[0], -1)), (reshape(h_n, (len(weights), -1)),
                                                             reshape(c_n, (len(weights), -1)))
    return (transpose(sequence, 0, 1) if batch_first else sequence), (h_n, c_n)


def lstm_cell(input, hx, weight_ih, weight_hh, bias_ih=None, bias_hh=None):
    """One step, ``(h, c)``, as ``torch.nn.LSTMCell``: ``input`` (B, I) or (I,); ``hx`` is
    ``(h, c)``, each (B, H) (or (H,)), or None for zeros."""
    if input.ndim not in (1, 2):
        raise ValueError(f"lstm_cell: expected input of shape (B, I) or (I,), got {input.shape}")
    unbatched = input.ndim == 1
    sequence = reshape(input, (1, 1 if unbatched else input.shape[0], input.shape[-1]))
    if hx is not None:  # the cell's (B, H) state is the one-layer stack's (1, B, H) state
        batch, hidden = sequence.shape[1], weight_hh.shape[1]
        _check_states("lstm_cell", ("hx", "cx"), hx, (hidden,) if unbatched else (batch, hidden))
        hx = tuple(reshape(state, (1,) + tuple(state.shape)) for state in hx)
    h0, c0 = _initial_states(sequence, [(weight_ih, weight_hh)], hx, unbatched)
    _, h, c = FusedLSTM.apply(sequence, h0[0], c0[0], weight_ih, weight_hh, bias_ih, bias_hh)
    return (reshape(h, (-1,)), reshape(c, (-1,))) if unbatched else (h, c)


def _initial_states(sequence, weights, hx, unbatched):
    """Per-layer lists of (B, H) initial states: slices of the given (L, B, H) ones, or zeros."""
    layers, batch, hidden = len(weights), sequence.shape[1], weights[0][1].shape[1]
    if hx is None:
        state = zeros(batch, hidden, dtype=sequence.dtype, device=sequence.device)
        return [state] * layers, [state] * layers
    _check_states("lstm", ("h0", "c0"), hx, (layers, hidden) if unbatched else (layers, batch, hidden))
    return [[state[layer].reshape(batch, hidden) for layer in range(layers)] for state in hx]


def _check_states(op, names, states, expected):
    if len(states) != 2:
        raise ValueError(f"{op}: expected hx = ({names[0]}, {names[1]}), got {len(states)} tensors")
    for name, state in zip(names, states):
        if tuple(state.shape) != expected:
            raise ValueError(f"{op}: expected {name} of shape {expected}, got {tuple(state.shape)}")
