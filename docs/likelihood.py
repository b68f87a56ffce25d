"""Train the three exact-likelihood models at their defaults and write their comparison into
docs/likelihood.md (between the ``results`` markers): ``python docs/likelihood.py``.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python docs/likelihood.py     # trains into runs/lh-*/ (~10 min)
    python docs/likelihood.py --reuse        # only re-reads those runs (and copies their samples.png)

Each model trains exactly as ``scratchgen train MODEL --out runs/lh-MODEL`` would; the table's
figures are that run's final record (``test_bits_per_dim``, and the digits metrics of its 1,000
final samples). Two references are computed here on the same split: the uniform distribution
(log2 17 bits per pixel) and independent per-pixel categoricals fitted to the training images.
"""
import argparse
import json
import math
import os
import pathlib
import shutil
import time

import numpy as np

from scratchgen import runner
from scratchgen.data import load_digits_split
from scratchgen.eval.likelihood import LEVELS, bits_per_dim, to_levels
from scratchgen.memory import keep_freed_memory
from results_section import final_and_last_epoch, parameter_count, write_results

MODELS = ("pixelcnn", "pixelrnn", "realnvp")
DOCS = pathlib.Path(__file__).resolve().parent
DOCUMENT = DOCS / "likelihood.md"
SMOOTHING = 1.0  # add-one counts for the independent-pixel reference
WALL_CLOCK = "wall_clock.json"


def train_all(folder, reuse):
    """{model: (final record, last epoch record, wall seconds or None, run folder)}, training the
    models whose run is missing (or all); each run's wall clock is kept in its ``wall_clock.json``."""
    results = {}
    for model in MODELS:
        run = os.path.join(folder, f"lh-{model}")
        if not (reuse and os.path.exists(os.path.join(run, "last.npz"))):
            started = time.perf_counter()
            runner.train(model, out=run, overwrite=True, echo=lambda *args: None)
            pathlib.Path(run, WALL_CLOCK).write_text(json.dumps({"wall_s": time.perf_counter() - started}))
        wall_file = pathlib.Path(run, WALL_CLOCK)
        wall = json.loads(wall_file.read_text())["wall_s"] if wall_file.exists() else None
        results[model] = (*final_and_last_epoch(run), wall, run)
        shutil.copyfile(os.path.join(run, "samples.png"), DOCS / "images" / f"likelihood-{model}-samples.png")
    return results


def independent_pixels_bits():
    """Test bits per pixel of 64 independent 17-way categoricals fitted (add-one) to the training split."""
    split = load_digits_split()
    train, test = to_levels(split.train_images), to_levels(split.test_images)
    counts = np.stack([(train == level).sum(axis=0) for level in range(LEVELS)]) + SMOOTHING   # (17, 8, 8)
    log_probabilities = np.log(counts / counts.sum(axis=0))
    rows, cols = np.indices(test.shape[1:])

    def nll(levels, _rows):
        return -log_probabilities[levels, rows, cols].sum(axis=(1, 2))
    return bits_per_dim(nll, test)


def table(results):
    lines = ["| model | test bits per pixel | digits FID / floor | classes covered | parameters | "
             "training time (epochs) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for model, (final, last, wall, run) in results.items():
        lines.append(f"| `{model}` | **{final['test_bits_per_dim']:.3f}** | {final['fid_ratio']:.1f} | "
                     f"{final['classes_covered']}/10 | {parameter_count(model, run):,} | "
                     f"{last['time_s']:.0f} s ({last['epoch']}) |")
    free = 64 * (LEVELS - 1)  # each pixel's 17 probabilities sum to 1
    reference = independent_pixels_bits()
    lines.append(f"| independent pixels (add-one counts) | {reference:.3f} | | | {free:,} | |")
    lines.append(f"| uniform over the 17 levels | {math.log2(LEVELS):.3f} | | | 0 | |")
    walls = [f"`{model}` {wall:.0f} s" for model, (_, _, wall, _) in results.items() if wall is not None]
    note = (f"\n\nWall clock of each whole run (training, final evaluation, 1,000 samples): "
            f"{', '.join(walls)}.") if walls else ""
    return "\n".join(lines) + note


def main():
    keep_freed_memory()  # as the command line does (scratchgen/memory.py)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", default="runs", help="where the run folders go (default: runs)")
    parser.add_argument("--reuse", action="store_true", help="keep runs that already have a checkpoint")
    args = parser.parse_args()
    write_results(DOCUMENT, table(train_all(args.runs, args.reuse)))
    print(f"wrote the results of {', '.join(MODELS)} into {DOCUMENT}")


if __name__ == "__main__":
    main()
