"""How far compiling can take a model's training step: the floor that its heavy kernels set.

A compiled replay calls the heavy kernels (convolutions, matrix products, the fused LSTM, attention)
exactly as eager scratchgen does; what the compiler can remove is everything else (elementwise ops,
reductions, copies, allocation, host operations, the replay loop itself). So the heavy kernels' time
alone, divided by the PyTorch twin's whole step, is the lowest compiled/PyTorch ratio the compiler
could reach: where it is above the issue's 0.7, the target needs faster kernels, not more fusion.

    python -m benchmarks.floor gan seq2seq charlstm gpt [--rounds 15]

Each round times, one after another in one process and in thread CPU time (another process taking
the core is not counted): the twin's step, the compiled step, and the compiled step again with every
op of its program timed (``Program.timed``), whose heavy ops are summed. Medians over the rounds; one
thread (BLAS, Numba, PyTorch pinned).
"""
import argparse
import re
import statistics
import sys
import time
import types

from .machine import pin_threads
from .models import prepared, twin_function

# Labels of ``Program.timed`` (``kind name``) that are heavy kernels called as they are. A product's
# fused epilogue (``fused MatMul+Add``) counts as heavy with its product: the floor is then a little
# high by the epilogue's pass, which is small beside the product.
HEAVY = re.compile(r"Conv2dOp|ConvTranspose2dOp|Conv2dWeightGrad|MatMul|FusedLSTM|ScaledDotProductAttention")


def compiled_program(name):
    """``(compiled step, its program)`` of ``name``'s recipe, captured (two calls) with the cpu kernels."""
    import scratchgen
    from scratchgen.kernels import use_kernels
    recipe, batch, clock = prepared(name, types.SimpleNamespace(quick=False))
    step = scratchgen.compile(recipe.train_step)
    with use_kernels("cpu"):
        for _ in range(3):
            recipe.before_step(clock)
            step(batch, clock)
    (entry,) = [entry for entry in step.cache.values() if entry.trusted]

    def run():
        with use_kernels("cpu"):
            step(batch, clock)
    return run, entry.program


def twin_step(name):
    recipe, batch, _ = prepared(name, types.SimpleNamespace(quick=False))
    return twin_function(name, "twin_training_step")(recipe, tuple(part.numpy() for part in batch))


def thread_seconds(call):
    started = time.thread_time()
    call()
    return time.thread_time() - started


def measure(name, rounds):
    """Medians over ``rounds``: twin step, compiled step, heavy ops' share of the compiled step."""
    run, program = compiled_program(name)
    twin = twin_step(name)
    twin(), run()   # warm
    twins, compiled, heavy = [], [], []
    for _ in range(rounds):
        twins.append(thread_seconds(twin))
        compiled.append(thread_seconds(run))
        with program.timed(time.thread_time) as totals:
            run()
        heavy.append(sum(seconds for label, (_, seconds) in totals.items() if HEAVY.search(label)))
    return statistics.median(twins), statistics.median(compiled), statistics.median(heavy)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor", description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    print("| model | PyTorch eager step (ms) | compiled step (ms) | heavy kernels (ms) | other (ms) "
          "| compiled / torch | floor: heavy / torch |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with pin_threads(1):
        for name in args.models:
            twin, compiled, heavy = measure(name, args.rounds)
            print(f"| {name} | {twin * 1e3:.1f} | {compiled * 1e3:.1f} | {heavy * 1e3:.1f} "
                  f"| {(compiled - heavy) * 1e3:.1f} | {compiled / twin:.2f} | {heavy / twin:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
