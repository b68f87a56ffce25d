"""PyTorch twins of scratchgen's models: idiomatic ``torch.nn`` modules with the same architecture,
parameter names and parameter count, so a ``state_dict`` moves between the two. The tests check
that a training step matches bit for bit in float64 (to rounding), and the benchmark suite times
the two side by side."""
