"""``nn.utils.rnn``: batches of sequences of different lengths, as PyTorch packs them.

A ``PackedSequence`` keeps only the real steps of a batch, time-major, the longest sequence first:

    padded (T, B, *) with lengths [3, 1, 2]      sorted by length: batch order (0, 2, 1)
    data       = x[0,0] x[0,2] x[0,1] | x[1,0] x[1,2] | x[2,0]      (sum(lengths), *)
    batch_sizes = [3, 2, 1]          how many sequences are still running at each step
    sorted_indices = [0, 2, 1]       packed column j is batch element sorted_indices[j]
    unsorted_indices = [0, 2, 1]     its inverse permutation

Packing and unpacking are one gather and one scatter (``getitem`` / ``index_add`` with the positions
of the real steps), so gradients flow through both. A recurrent layer given a ``PackedSequence``
runs each sequence for its own length only: ``h_n`` is each sequence's state at its last real step,
and the padded output is zero past each length.
"""
from typing import NamedTuple, Optional

import numpy as np

from ...ops.shape import getitem, index_add, pad, stack
from ...tensor import Tensor, tensor


class PackedSequence(NamedTuple):
    """What ``pack_padded_sequence`` returns; field names and meaning as PyTorch's."""
    data: Tensor
    batch_sizes: Tensor
    sorted_indices: Optional[Tensor] = None
    unsorted_indices: Optional[Tensor] = None


def _lengths_array(lengths):
    """Lengths (a list, array or Tensor) as a 1-D int64 NumPy array."""
    array = lengths.numpy() if isinstance(lengths, Tensor) else np.asarray(lengths)
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise ValueError(f"pack_padded_sequence: expected lengths as a 1-D list of ints, got {array!r}")
    return array.astype(np.int64)


def _batch_sizes(sorted_lengths):
    """batch_sizes[t] = the number of sequences longer than t (lengths sorted decreasing)."""
    steps = np.arange(sorted_lengths[0])
    return (sorted_lengths[None, :] > steps[:, None]).sum(axis=1).astype(np.int64)


def packed_positions(batch_sizes):
    """(time index, column index) of every packed row, in packed order: the gather that packs a
    sorted padded (T, B, *) batch and the scatter that unpacks it."""
    batch_sizes = np.asarray(batch_sizes)
    times = np.repeat(np.arange(len(batch_sizes)), batch_sizes)
    columns = np.concatenate([np.arange(size) for size in batch_sizes])
    return times, columns


def sorted_lengths(packed):
    """Each packed column's length (decreasing), from ``batch_sizes``."""
    batch_sizes = packed.batch_sizes.numpy()
    return (batch_sizes[None, :] > np.arange(batch_sizes[0])[:, None]).sum(axis=1)


def pack_padded_sequence(input, lengths, batch_first=False, enforce_sorted=True):
    """Pack a padded batch (T, B, *) ((B, T, *) with ``batch_first``) whose sequence b has
    ``lengths[b]`` real steps. ``enforce_sorted`` asks for lengths already in decreasing order;
    ``False`` sorts them (and remembers the permutation, undone when unpacking)."""
    lengths = _lengths_array(lengths)
    batch_dim = 0 if batch_first else 1
    if input.ndim < 2 or len(lengths) != input.shape[batch_dim]:
        raise ValueError(f"pack_padded_sequence: expected one length per sequence ({input.shape[batch_dim]} "
                         f"for input of shape {input.shape}), got {len(lengths)}")
    steps = input.shape[1 - batch_dim]
    if lengths.min() < 1 or lengths.max() > steps:
        raise ValueError(f"pack_padded_sequence: expected lengths in [1, {steps}] (the padded length), "
                         f"got {lengths.tolist()}")
    if enforce_sorted and np.any(np.diff(lengths) > 0):
        raise ValueError(f"pack_padded_sequence: expected lengths in decreasing order with "
                         f"enforce_sorted=True, got {lengths.tolist()}; pass enforce_sorted=False to sort "
                         "them")
    order = None if enforce_sorted else np.argsort(-lengths, kind="stable")
    batch_sizes = _batch_sizes(lengths if order is None else lengths[order])
    times, columns = packed_positions(batch_sizes)
    batch_index = columns if order is None else order[columns]
    data = getitem(input, (batch_index, times) if batch_first else (times, batch_index))
    return _packed(data, batch_sizes, order)


def _packed(data, batch_sizes, order):
    if order is None:
        return PackedSequence(data, tensor(batch_sizes))
    return PackedSequence(data, tensor(batch_sizes), tensor(order), tensor(np.argsort(order)))


def pad_packed_sequence(sequence, batch_first=False, padding_value=0.0, total_length=None):
    """Undo ``pack_padded_sequence``: ``(padded, lengths)``, the batch in its original order,
    zeros (or ``padding_value``) past each length, padded to ``total_length`` steps if given."""
    batch_sizes = sequence.batch_sizes.numpy()
    steps = len(batch_sizes) if total_length is None else total_length
    if steps < len(batch_sizes):
        raise ValueError(f"pad_packed_sequence: expected total_length >= {len(batch_sizes)} (the longest "
                         f"sequence), got {total_length}")
    padded = scatter_packed(sequence.data, batch_sizes, steps)
    lengths = sorted_lengths(sequence)
    if padding_value:
        real = np.zeros(padded.shape[:2] + (1,) * (padded.ndim - 2), dtype=padded.dtype)
        real[packed_positions(batch_sizes)] = 1
        padded = padded + tensor((1 - real) * padding_value, device=padded.device)
    if sequence.unsorted_indices is not None:
        order = sequence.unsorted_indices.numpy()
        padded, lengths = padded[:, order], lengths[order]
    return (padded.transpose(0, 1) if batch_first else padded), tensor(lengths.astype(np.int64))


def scatter_packed(data, batch_sizes, steps):
    """The packed rows ``data`` back into a zero-padded (steps, B, *) batch, columns sorted."""
    shape = (steps, int(batch_sizes[0])) + tuple(data.shape[1:])
    return index_add(data, shape, packed_positions(batch_sizes))


def pad_sequence(sequences, batch_first=False, padding_value=0.0):
    """Stack sequences of shapes (L_i, *) into (max L, B, *) ((B, max L, *) with ``batch_first``),
    padded at the end with ``padding_value``."""
    if not sequences:
        raise ValueError("pad_sequence: expected a non-empty list of sequences")
    longest = max(s.shape[0] for s in sequences)
    padded = [pad(s, (0, 0) * (s.ndim - 1) + (0, longest - s.shape[0]), value=padding_value)
              for s in sequences]
    return stack(padded, dim=0 if batch_first else 1)


def pack_sequence(sequences, enforce_sorted=True):
    """``pack_padded_sequence(pad_sequence(sequences), their lengths, enforce_sorted=...)``."""
    lengths = [s.shape[0] for s in sequences]
    return pack_padded_sequence(pad_sequence(sequences), lengths, enforce_sorted=enforce_sorted)
