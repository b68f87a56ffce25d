"""What every LSTM implementation shares: the saved state's type and the boundary checks."""
from collections import namedtuple

from .._checks import check_float_arrays, check_ndim

LSTMSaved = namedtuple("LSTMSaved", ["gates", "cells"])
LSTMSaved.__doc__ = """What ``lstm_backward`` needs besides the forward's inputs and output ``y``.

gates  (T, 4H, B)    activated gates (i, f, g, o) of every step, feature-major
cells  (T+1, H, B)   cell states c_0 .. c_T, feature-major (cells[0] is c0 transposed)
"""


def check_lstm_inputs(op, x, h0, c0, weight_ih, weight_hh, bias):
    """Check the forward's arguments; returns ``(T, B, I, H)``."""
    check_float_arrays(op, x=x, h0=h0, c0=c0, weight_ih=weight_ih, weight_hh=weight_hh, bias=bias)
    check_ndim(op, "x", x, 3, "(T, B, I)")
    check_ndim(op, "weight_hh", weight_hh, 2, "(4H, H)")
    steps, batch, inputs = x.shape
    hidden = weight_hh.shape[1]
    if steps < 1:
        raise ValueError(f"{op}: expected x with at least one time step, got shape {tuple(x.shape)}")
    expected = {"weight_hh": (4 * hidden, hidden), "weight_ih": (4 * hidden, inputs),
                "bias": (4 * hidden,), "h0": (batch, hidden), "c0": (batch, hidden)}
    _check_shapes(op, expected, weight_hh=weight_hh, weight_ih=weight_ih, bias=bias, h0=h0, c0=c0)
    return steps, batch, inputs, hidden


def check_lstm_gradient_inputs(op, grad_y, grad_h_n, grad_c_n, x, h0, weight_ih, weight_hh, y, saved):
    """Check the backward's arguments against the forward's shapes; returns ``(T, B, I, H)``."""
    check_float_arrays(op, x=x, h0=h0, weight_ih=weight_ih, weight_hh=weight_hh, y=y, grad_y=grad_y,
                       grad_h_n=grad_h_n, grad_c_n=grad_c_n, gates=saved.gates, cells=saved.cells)
    check_ndim(op, "x", x, 3, "(T, B, I)")
    check_ndim(op, "weight_hh", weight_hh, 2, "(4H, H)")
    steps, batch, inputs = x.shape
    hidden = weight_hh.shape[1]
    expected = {"weight_ih": (4 * hidden, inputs), "h0": (batch, hidden), "y": (steps, batch, hidden),
                "grad_y": (steps, batch, hidden), "grad_h_n": (batch, hidden), "grad_c_n": (batch, hidden),
                "gates": (steps, 4 * hidden, batch), "cells": (steps + 1, hidden, batch)}
    _check_shapes(op, expected, weight_ih=weight_ih, h0=h0, y=y, grad_y=grad_y, grad_h_n=grad_h_n,
                  grad_c_n=grad_c_n, gates=saved.gates, cells=saved.cells)
    return steps, batch, inputs, hidden


def _check_shapes(op, expected, **arrays):
    for name, array in arrays.items():
        if tuple(array.shape) != expected[name]:
            raise ValueError(f"{op}: expected {name} of shape {expected[name]}, got {tuple(array.shape)}")
