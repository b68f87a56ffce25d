"""The benchmark suite (installed as scratchgen.benchmarks): run with `python -m benchmarks`."""
