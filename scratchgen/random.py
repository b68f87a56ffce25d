"""The global, seedable random generator behind ``randn``, ``rand``, dropout and init.

One NumPy ``Generator`` (PCG64) drives everything on the CPU, so ``manual_seed(s)`` makes a run
repeat bit for bit; its state is a JSON-friendly dict so checkpoints can carry it. Random arrays
for CUDA tensors are drawn here and copied over, which keeps CPU and GPU runs identical.
"""
import numpy as np

_generator = np.random.Generator(np.random.PCG64(0))


def manual_seed(seed):
    """Reseed the global generator (returns it, as ``torch.manual_seed`` does)."""
    global _generator
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: expected a non-negative int, got {seed!r}")
    _generator = np.random.Generator(np.random.PCG64(int(seed)))
    return _generator


def generator():
    return _generator


def get_rng_state():
    """The generator's state as a JSON-serialisable dict."""
    return _generator.bit_generator.state


def set_rng_state(state):
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError(f"set_rng_state: expected a PCG64 state dict, got {state!r:.80}")
    _generator.bit_generator.state = state


class Generator:
    """A random stream of its own, as ``torch.Generator``: ``Generator().manual_seed(0)``.

    It holds a NumPy ``Generator`` (PCG64) in ``.numpy``; a ``DataLoader`` given one shuffles
    from it and leaves the global generator alone. ``seed`` may be an int or a tuple of ints
    (NumPy's seed sequence: ``(run_seed, stream)`` gives independent streams of one run).
    """

    def __init__(self, seed=0):
        self.manual_seed(seed)

    def manual_seed(self, seed):
        """Restart the stream from ``seed``; returns the generator (as PyTorch's)."""
        entropy = seed if isinstance(seed, tuple) else (seed,)
        if not all(isinstance(s, (int, np.integer)) and s >= 0 for s in entropy):
            raise ValueError(f"Generator.manual_seed: expected a non-negative int (or a tuple of them), "
                             f"got {seed!r}")
        self.numpy = np.random.Generator(np.random.PCG64(seed if isinstance(seed, tuple) else int(seed)))
        self._initial_seed = seed
        return self

    def initial_seed(self):
        return self._initial_seed

    def get_state(self):
        """The stream's position as a JSON-serialisable dict (NumPy's PCG64 state)."""
        return self.numpy.bit_generator.state

    def set_state(self, state):
        self.numpy.bit_generator.state = state
        return self
