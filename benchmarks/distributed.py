"""Data-parallel training on this machine: what an allreduce costs, what share of a step it takes,
how 1 -> 2 ranks scale, and a ring-allreduce cost model for N machines with the local figures in it.

    python -m benchmarks.distributed                 # launches mpirun -n 1 and -n 2 itself (needs .[dist])
    python -m benchmarks.distributed --steps 50 --json bench-out/distributed.json

Each launch runs this module with ``--worker`` on every rank; rank 0 prints one JSON line:

* allreduce: in-place ``Iallreduce`` (the communicator the training uses, timeout included) of
  float32 buffers from 1 to 2**20 values, median of ``--repeats``; a line t = a + bytes · c fitted
  through them. For the ring algorithm on N ranks (each rank sends and receives 2 (N-1) messages of
  bytes / N), t = 2 (N-1) α + 2 (N-1)/N · bytes / B, so with N = 2: α = a / 2 and B = 1 / c.
* the `mlp` recipe's training step (per-rank batch 64, made data-parallel as ``train --distributed``
  does): seconds per step, the part spent in the gradient allreduce, examples per second.

The cost model then predicts, for N ranks each with its own core and the measured α and B, the
step time = (the 1-rank step's compute) + 2 (N-1) α + 2 (N-1)/N · bytes / B. On this machine the
2 ranks share 2 cores with each other (and with whatever else runs): every figure is an upper
bound, and 1 -> 2 scaling is limited by the shared cores and memory bus, not by MPI.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

SIZES = [1, 2 ** 10, 2 ** 14, 2 ** 17, 2 ** 20]   # float32 values per allreduce
RANKS_MODELLED = (2, 4, 8, 16, 64)


class TimedCommunicator:
    """A communicator whose ``allreduce_`` calls add their seconds to ``allreduce_seconds``."""

    def __init__(self, inner):
        self.inner, self.allreduce_seconds = inner, 0.0
        self.rank, self.size, self.timeout = inner.rank, inner.size, inner.timeout

    def allreduce_(self, array):
        started = time.perf_counter()
        self.inner.allreduce_(array)
        self.allreduce_seconds += time.perf_counter() - started
        return array

    def __getattr__(self, name):   # broadcast_, allgather, barrier, abort: the inner communicator's
        return getattr(self.inner, name)


def time_allreduce(world, repeats):
    """{values: median seconds} of in-place allreduces of float32 buffers."""
    medians = {}
    for size in SIZES:
        buffer = np.ones(size, dtype=np.float32)
        world.barrier()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            world.allreduce_(buffer)
            times.append(time.perf_counter() - started)
        medians[size] = float(np.median(times))
    return medians


def time_training(world, steps, batch):
    from scratchgen.models import Clock, get_recipe, make_config
    from scratchgen.runner import build_recipe, make_recipe_data_parallel
    recipe_class = get_recipe("mlp")
    recipe, data = build_recipe(recipe_class, make_config(recipe_class.Config, {"batch_size": batch}))
    timed = TimedCommunicator(world)
    make_recipe_data_parallel(recipe, timed)
    loader = recipe.make_loader(data, seed=(0, 1))
    batches = iter(())
    for step in range(steps + 2):   # two warm-up steps (first-call costs), then the timed ones
        if step == 2:
            world.barrier()
            timed.allreduce_seconds, started = 0.0, time.perf_counter()
        arrays = next(batches, None)
        if arrays is None:
            batches = iter(loader)
            arrays = next(batches)
        clock = Clock(step, 0, 0, len(loader))
        recipe.before_step(clock)
        recipe.train_step(recipe.to_tensors(arrays), clock)
    seconds = (time.perf_counter() - started) / steps
    parameters = sum(param.numel() for param in recipe.model.parameters())
    return {"step_s": seconds, "allreduce_s": timed.allreduce_seconds / steps, "parameters": int(parameters),
            "examples_per_s": world.size * batch / seconds}


def worker(args):
    from scratchgen import distributed
    world = distributed.init()
    report = {"ranks": world.size, "training": time_training(world, args.steps, args.batch)}
    if world.size > 1:
        report["allreduce"] = time_allreduce(world, args.repeats)
    if world.rank == 0:
        print("RESULT " + json.dumps(report), flush=True)


def launch(ranks, args):
    """Run the worker on ``ranks`` ranks under mpirun; rank 0's report."""
    mpirun = os.path.join(os.path.dirname(sys.executable), "mpirun")
    environment = {**os.environ, "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                   "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    command = [mpirun if os.path.exists(mpirun) else "mpirun", "--oversubscribe", "-n", str(ranks), sys.executable,
               "-m", "benchmarks.distributed", "--worker", "--steps", str(args.steps), "--batch", str(args.batch),
               "--repeats", str(args.repeats)]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return json.loads(lines[0][len("RESULT "):])


def fit_ring(allreduce, ranks=2):
    """(alpha seconds per message, bandwidth bytes/s) of t = 2(N-1) alpha + 2(N-1)/N bytes / B."""
    sizes = np.array([int(size) for size in allreduce], dtype=np.float64) * 4
    times = np.array(list(allreduce.values()))
    slope, intercept = np.polyfit(sizes, times, 1)
    return max(intercept, 0.0) / (2 * (ranks - 1)), (2 * (ranks - 1) / ranks) / slope


def predicted_step(compute_s, parameter_bytes, alpha, bandwidth, ranks):
    return compute_s + 2 * (ranks - 1) * alpha + 2 * (ranks - 1) / ranks * parameter_bytes / bandwidth


def report_markdown(one, two):
    alpha, bandwidth = fit_ring(two["allreduce"])
    single, double = one["training"], two["training"]
    parameter_bytes = 4 * single["parameters"]
    lines = ["| ranks | step (ms) | allreduce per step (ms) | its share | examples/s |", "| --- | --- | --- | --- | --- |"]
    for result in (single, double):
        share = result["allreduce_s"] / result["step_s"]
        lines.append(f"| {one['ranks'] if result is single else two['ranks']} | {1e3 * result['step_s']:.2f} | "
                     f"{1e3 * result['allreduce_s']:.3f} | {share:.1%} | {result['examples_per_s']:,.0f} |")
    lines += ["", f"1 -> 2 ranks: {double['examples_per_s'] / single['examples_per_s']:.2f}x the examples per second "
              "(2 ranks on 2 shared cores: an upper bound on the cost, a lower bound on the scaling).", "",
              "| float32 values | allreduce (µs, median) |", "| --- | --- |"]
    lines += [f"| {int(size):,} | {1e6 * seconds:.1f} |" for size, seconds in two["allreduce"].items()]
    lines += ["", f"Ring fit: latency α = {1e6 * alpha:.1f} µs per message, bandwidth B = {bandwidth / 1e9:.2f} GB/s; "
              f"`mlp` gradients: {single['parameters']:,} float32 = {parameter_bytes / 1e3:.0f} kB.", "",
              "| N ranks | predicted allreduce (ms) | predicted step (ms) | ideal speed-up | predicted speed-up |",
              "| --- | --- | --- | --- | --- |"]
    for ranks in RANKS_MODELLED:
        step = predicted_step(single["step_s"], parameter_bytes, alpha, bandwidth, ranks)
        lines.append(f"| {ranks} | {1e3 * (step - single['step_s']):.3f} | {1e3 * step:.2f} | {ranks} | "
                     f"{ranks * single['step_s'] / step:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per launch (default: 30)")
    parser.add_argument("--batch", type=int, default=64, help="per-rank batch of the mlp (default: 64)")
    parser.add_argument("--repeats", type=int, default=50, help="allreduces timed per size (default: 50)")
    parser.add_argument("--json", default=None, help="also write both launches' reports here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    one, two = launch(1, args), launch(2, args)
    print(report_markdown(one, two))
    if args.json:
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"one_rank": one, "two_ranks": two}, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
