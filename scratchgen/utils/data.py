"""``scratchgen.utils.data``: ``Dataset``, ``TensorDataset`` and ``DataLoader``, as ``torch.utils.data``.

    dataset = TensorDataset(images, labels)           # Tensors (or NumPy arrays) of one length
    loader = DataLoader(dataset, batch_size=64, shuffle=True)
    for images_batch, labels_batch in loader:         # a fresh random order every epoch
        ...

Shuffling follows PyTorch: each epoch's permutation is drawn from ``generator`` when one is given
(a ``scratchgen.Generator``, whose stream then runs on from epoch to epoch), otherwise from a
generator seeded by one draw from the global one, so ``scratchgen.manual_seed(s)`` makes the orders
repeat. The permutations are NumPy's (PCG64): the same rules as PyTorch's, other numbers.

Resuming (what ``scratchgen train`` relies on): ``state_dict()`` records the stream's state at the
start of the current epoch and how many batches of it were handed out; ``load_state_dict`` redraws
that epoch's permutation and carries on at the next batch. So a run stopped mid-epoch (Ctrl-C) and
resumed sees exactly the batches an uninterrupted run would have seen.

Data-parallel training (``scratchgen.distributed``) gives every rank the same generator seed and
its ``rank`` of ``world_size`` (a scratchgen extension; PyTorch uses a ``DistributedSampler``): all
ranks draw the same permutation, cut it into global batches of ``batch_size * world_size`` examples,
and each takes its ``batch_size`` of every global batch —

    global batch i = order[i·b·N : (i+1)·b·N]       rank r's part: order[i·b·N + r·b : i·b·N + (r+1)·b]

so N ranks with batch b see together what one process with batch b·N sees, and every rank takes
the same number of steps (``__len__``): with more than one rank, a last global batch short of
b·N examples is left out (a different remainder each epoch, since the order changes).

Batches: a ``TensorDataset`` is cut with one index array per stored array (no loop over examples)
and keeps its arrays' kind: Tensors give Tensors, NumPy arrays give NumPy arrays (the training
runner batches NumPy arrays). Any other dataset's examples are fetched one by one and joined by
``default_collate``: Tensors and arrays stacked into a Tensor, numbers into a 1-d Tensor, tuples,
lists and dicts element by element.
"""
import numbers

import numpy as np

from .. import random
from ..ops.shape import stack
from ..tensor import Tensor, tensor


class Dataset:
    """An indexable collection of examples: subclasses define ``__getitem__`` and ``__len__``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __len__")


class TensorDataset(Dataset):
    """Example ``i`` is ``tuple(t[i] for t in tensors)``: Tensors or arrays sharing their first dim."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: expected at least one tensor")
        lengths = [len(t) for t in tensors]
        if len(set(lengths)) != 1:
            raise ValueError(f"TensorDataset: expected tensors of one length (first dim), "
                             f"got lengths {lengths}")
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(t[index] for t in self.tensors)

    def __len__(self):
        return len(self.tensors[0])


def default_collate(samples):
    """Join a list of examples into a batch (see the module docstring)."""
    first = samples[0]
    if isinstance(first, Tensor):
        return stack(samples)
    if isinstance(first, np.ndarray):
        return Tensor(np.stack(samples))
    if isinstance(first, (bool, np.bool_)):
        return tensor(samples)
    if isinstance(first, numbers.Integral):
        return tensor(samples, dtype=np.int64)
    if isinstance(first, numbers.Real):
        return tensor(samples, dtype=np.float64)  # Python floats are doubles, as in PyTorch
    if isinstance(first, dict):
        return {key: default_collate([sample[key] for sample in samples]) for key in first}
    if isinstance(first, (tuple, list)):
        return type(first)(default_collate(list(column)) for column in zip(*samples))
    if isinstance(first, str):
        return list(samples)
    raise TypeError(f"default_collate: expected Tensors, arrays, numbers, strings, tuples, lists or dicts, "
                    f"got {type(first).__name__}")


class DataLoader:
    """Batches of ``dataset``, ``batch_size`` at a time, shuffled each epoch when ``shuffle``."""

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, generator=None,
                 collate_fn=None, *, rank=0, world_size=1):
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: expected a positive int batch_size, got {batch_size!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"DataLoader: expected 0 <= rank < world_size, got rank {rank} of {world_size}")
        if generator is not None and not isinstance(generator, random.Generator):
            raise TypeError(f"DataLoader: expected generator to be a scratchgen.Generator, "
                            f"got {type(generator).__name__}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.shuffle, self.drop_last = shuffle, drop_last or world_size > 1
        self.generator, self.collate_fn = generator, collate_fn
        self.size = len(dataset)
        if self.size == 0 or (self.drop_last and self.size < self.global_batch_size):
            raise ValueError(f"DataLoader: {self.size} examples make no batch of {self.global_batch_size}"
                             + (f" ({self.batch_size} on each of {world_size} ranks)" if world_size > 1 else ""))
        self._order = None         # this epoch's permutation (None between epochs)
        self._epoch_start = None   # the shuffling stream's state before that permutation was drawn
        self._position = 0         # batches of this epoch handed out so far

    @property
    def global_batch_size(self):
        """Examples per step over all ranks."""
        return self.batch_size * self.world_size

    def __len__(self):
        """Batches per epoch."""
        full, rest = divmod(self.size, self.global_batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _start_epoch(self, stream=None):
        if self.shuffle:
            # without a generator of its own, each epoch's stream is seeded from the global one
            stream = stream or self.generator or random.Generator(int(random.generator().integers(2 ** 63)))
            self._epoch_start = stream.get_state()
            self._order = stream.numpy.permutation(self.size)
        else:
            self._order = np.arange(self.size)
        self._position = 0

    def __iter__(self):
        if self._order is None:
            self._start_epoch()
        while self._position < len(self):
            start = self._position * self.global_batch_size + self.rank * self.batch_size
            index = self._order[start:start + self.batch_size]
            self._position += 1  # counted before the yield: a stop after this batch resumes after it
            yield self._fetch(index)
        self._order = None

    def _fetch(self, index):
        if isinstance(self.dataset, TensorDataset) and self.collate_fn is None:
            return self.dataset[index]
        samples = [self.dataset[int(i)] for i in index]
        return (self.collate_fn or default_collate)(samples)

    @property
    def position(self):
        """Batches of the current epoch already handed out (0 between epochs)."""
        return 0 if self._order is None else self._position

    def state_dict(self):
        """JSON-friendly: where the random order stands, and where in the epoch the loader is."""
        if self._order is None:
            saved = None if self.generator is None else self.generator.get_state()
            return {"generator": saved, "position": 0}
        return {"generator": self._epoch_start, "position": self._position}

    def load_state_dict(self, state):
        saved, position = state["generator"], int(state["position"])
        if self.generator is not None and saved is not None:
            self.generator.set_state(saved)
        self._order = None
        if position:
            stream = self.generator or (None if saved is None else random.Generator().set_state(saved))
            self._start_epoch(stream)
            self._position = position
