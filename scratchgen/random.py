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
