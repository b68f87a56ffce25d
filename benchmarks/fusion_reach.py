"""This branch's fusion reach against the narrower reach it replaced, in one process (interleaved, so a
loaded machine slows both sides alike): a model's compiled step with ReLU fused, broadcast operands,
groups that are not chains and lone ``Where`` kernels (docs/compile.md, section 4), against the same
compiler with those four switched off — the reach of the compiler before them.

    python -m benchmarks.fusion_reach gan [--rounds 60]

Each round runs two steps of each side in thread CPU time, the order alternating; the figure is the
median and quartiles of the per-round ratios (below 1: the wider reach is faster).
"""
import argparse
import contextlib
import statistics
import sys
import time

import numpy as np

from .floor import compiled_program
from .machine import pin_threads


@contextlib.contextmanager
def narrower_reach():
    """The fusion of before: chains only, operands of the output's shape, single elements or a
    trailing-axis bias, ReLU's node kept, no group of one op."""
    from scratchgen.compiler import fusion
    saved = (fusion._relu_masks_from_outputs, fusion._indexing, fusion._longest_group, fusion.OUT_FORMS)
    wide_indexing = fusion._indexing

    def indexing(shape, out_shape, broadcasts=True):
        found = wide_indexing(shape, out_shape, broadcasts)
        return found if found in (None, "[0]", "[i]") or found.startswith("[i % ") else None

    def chain(run, readers, protected):
        length = 1
        while length < len(run):
            tail = run[length - 1].writes[0]
            if tail not in run[length].reads or readers.get(tail) != 1 or tail in protected:
                break
            length += 1
        return length
    fusion._relu_masks_from_outputs, fusion._indexing, fusion._longest_group = (lambda program: None), \
        indexing, chain
    fusion.OUT_FORMS = {**fusion.OUT_FORMS, "Where": None}
    try:
        yield
    finally:
        fusion._relu_masks_from_outputs, fusion._indexing, fusion._longest_group, fusion.OUT_FORMS = saved


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fusion_reach",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("model")
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args(argv)
    with pin_threads(1):
        with narrower_reach():   # fusion runs at the second capture, inside compiled_program
            narrow, narrow_program = compiled_program(args.model)
        wide, wide_program = compiled_program(args.model)
        ratios = []
        for round_index in range(args.rounds):
            spent = {}
            for side in ((narrow, wide) if round_index % 2 == 0 else (wide, narrow)):
                started = time.thread_time()
                side(), side()
                spent[side] = time.thread_time() - started
            ratios.append(spent[wide] / spent[narrow])
    q25, q75 = np.percentile(ratios, [25, 75])
    print(f"{args.model}: {len(narrow_program.ops)} ops -> {len(wide_program.ops)}; wide / narrow reach, "
          f"thread time, {args.rounds} rounds: median {statistics.median(ratios):.3f} "
          f"(IQR {q25:.3f}-{q75:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
