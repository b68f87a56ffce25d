"""``DataLoader``: seeded shuffling and batching over NumPy arrays, resumable bit for bit.

    loader = DataLoader(images, labels, batch_size=64, seed=0)
    for epoch in range(epochs):
        for images_batch, labels_batch in loader:   # a fresh random order every epoch
            ...

The order comes from the loader's *own* generator (PCG64 seeded with ``seed``), so model code that
draws random numbers (dropout, the VAE's noise) never changes which examples arrive when.

Data-parallel training (``scratchgen.distributed``) gives every rank the same ``seed`` and its
``rank`` of ``world_size``: all ranks draw the same permutation, cut it into global batches of
``batch_size * world_size`` examples, and each takes its ``batch_size`` of every global batch —

    global batch i = order[i·b·N : (i+1)·b·N]       rank r's part: order[i·b·N + r·b : i·b·N + (r+1)·b]

so N ranks with batch b see together what one process with batch b·N sees, and every rank takes
the same number of steps (``__len__``): with more than one rank, a last global batch short of
b·N examples is left out (a different remainder each epoch, since the order changes).

Resuming: ``state_dict()`` records the generator's state at the start of the current epoch and
how many batches of it were handed out. ``load_state_dict`` redraws that epoch's permutation
from the recorded state and carries on at the next batch — so a run stopped mid-epoch (Ctrl-C)
and resumed sees exactly the batches an uninterrupted run would have seen.
"""
import numpy as np


class DataLoader:
    def __init__(self, *arrays, batch_size, shuffle=True, drop_last=False, seed=0, rank=0, world_size=1):
        if not arrays:
            raise ValueError("DataLoader: expected at least one array")
        lengths = {len(array) for array in arrays}
        if len(lengths) != 1:
            raise ValueError(f"DataLoader: expected arrays of one length, got lengths "
                             f"{[len(array) for array in arrays]}")
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"DataLoader: expected a positive int batch_size, got {batch_size!r}")
        if not 0 <= rank < world_size:
            raise ValueError(f"DataLoader: expected 0 <= rank < world_size, got rank {rank} of {world_size}")
        self.arrays, self.batch_size = arrays, int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.shuffle, self.drop_last = shuffle, drop_last or world_size > 1
        self.size = lengths.pop()
        if self.size == 0 or (self.drop_last and self.size < self.global_batch_size):
            raise ValueError(f"DataLoader: {self.size} examples make no batch of {self.global_batch_size}"
                             + (f" ({self.batch_size} on each of {world_size} ranks)" if world_size > 1 else ""))
        self.generator = np.random.Generator(np.random.PCG64(seed))
        self._order = None         # this epoch's permutation (None between epochs)
        self._epoch_start = None   # the generator's state before that permutation was drawn
        self._position = 0         # batches of this epoch handed out so far

    @property
    def global_batch_size(self):
        """Examples per step over all ranks."""
        return self.batch_size * self.world_size

    def __len__(self):
        """Batches per epoch."""
        full, rest = divmod(self.size, self.global_batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def _start_epoch(self):
        self._epoch_start = self.generator.bit_generator.state
        self._order = self.generator.permutation(self.size) if self.shuffle else np.arange(self.size)
        self._position = 0

    def __iter__(self):
        if self._order is None:
            self._start_epoch()
        while self._position < len(self):
            start = self._position * self.global_batch_size + self.rank * self.batch_size
            index = self._order[start:start + self.batch_size]
            self._position += 1  # counted before the yield: a stop after this batch resumes after it
            yield tuple(array[index] for array in self.arrays)
        self._order = None

    @property
    def position(self):
        """Batches of the current epoch already handed out (0 between epochs)."""
        return 0 if self._order is None else self._position

    def state_dict(self):
        """JSON-friendly: where the random order stands, and where in the epoch the loader is."""
        if self._order is None:
            return {"generator": self.generator.bit_generator.state, "position": 0}
        return {"generator": self._epoch_start, "position": self._position}

    def load_state_dict(self, state):
        self.generator.bit_generator.state = state["generator"]
        self._order = None
        if state["position"]:
            self._start_epoch()
            self._position = int(state["position"])
