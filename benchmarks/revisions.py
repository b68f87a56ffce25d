"""Interleaved A/B of two git revisions on the suite's own workloads: what decides whether an engine
or kernel change is kept, on a machine shared with other work.

    python -m benchmarks.ab revisions HEAD~1 WORKTREE --only 'engine/' [--rounds 12]

Each revision is exported (``git archive``) into a temporary folder laid out as the installed package
(``kernels/`` and ``benchmarks/`` under ``scratchgen/``); ``WORKTREE`` is the checkout as it is. A
round starts one process per revision, in alternating order (A then B, then B then A), at one
thread; each process times the ``scratchgen[cpu]`` (or ``scratchgen``) contender of every selected
workload and pass in *thread CPU time*, as the median of batches of calls. The ratio B/A is taken
per round, and its median and quartiles over the rounds are reported: a slow spell of the machine
hits both sides of a round, and the order alternates so neither side always runs first.
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from .machine import thread_environment

WORKTREE = "WORKTREE"

# Run in each revision's process (``python -c``), so it may use only what every revision has:
# ``all_workloads``, ``select``, ``Options`` and a workload's ``setup``.
TIMER = r"""
import json, statistics, sys, time
import scratchgen
from scratchgen.benchmarks.machine import pin_threads
from scratchgen.benchmarks.suite import all_workloads, select
from scratchgen.benchmarks.workload import Options

pattern, batches, batch_seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
options = Options(impls=("cpu",), peers=())
medians = {}
with pin_threads(1):
    for workload in select(all_workloads(options), pattern):
        if workload.family == "ceiling":
            continue
        contenders = workload.setup(options)
        passes = contenders.get(sys.argv[4]) if len(sys.argv) > 4 else \
            contenders.get("scratchgen[cpu]", contenders.get("scratchgen"))
        for name, call in (passes or {}).items():
            call(), call()                                   # compile, warm the caches
            start = time.thread_time(); call(); once = max(time.thread_time() - start, 1e-7)
            calls = max(1, int(batch_seconds / once))
            samples = []
            for _ in range(batches):
                start = time.thread_time()
                for _ in range(calls):
                    call()
                samples.append((time.thread_time() - start) / calls)
            medians[f"{workload.key} {name}"] = statistics.median(samples)
print("FROM " + scratchgen.__file__)
print("RESULT " + json.dumps(medians))
"""


def export(revision, folder):
    """``revision``'s package laid out as installed, in ``folder``; returns the PYTHONPATH entry."""
    archive = subprocess.run(["git", "archive", revision, "scratchgen", "kernels", "benchmarks"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", folder], input=archive, check=True)
    for part in ("kernels", "benchmarks"):
        shutil.move(os.path.join(folder, part), os.path.join(folder, "scratchgen", part))
    return folder


def time_revision(path, pattern, batches, batch_seconds, contender=None):
    """``{"family/name pass": seconds per call}`` measured in a fresh process running ``path``'s code
    (None: the installed checkout's), of ``contender`` (default ``scratchgen[cpu]``)."""
    environment = thread_environment(1)
    if path is not None:
        environment["PYTHONPATH"] = path  # ahead of the editable install's finder
    # started in a folder with no scratchgen/ of its own: ``python -c`` puts its working directory
    # first on sys.path, so from a checkout's root it would import that checkout instead
    with tempfile.TemporaryDirectory(prefix="scratchgen-ab-cwd-") as neutral:
        arguments = [pattern, str(batches), str(batch_seconds)] + ([contender] if contender else [])
        done = subprocess.run([sys.executable, "-c", TIMER, *arguments],
                              env=environment, capture_output=True, text=True, cwd=neutral)
    lines = done.stdout.splitlines()
    results = [line for line in lines if line.startswith("RESULT ")]
    if done.returncode != 0 or not results:
        raise RuntimeError(f"benchmarks.ab revisions: the timing process failed:\n{done.stderr[-2000:]}")
    imported = next(line[len("FROM "):] for line in lines if line.startswith("FROM "))
    if path is not None and not imported.startswith(os.path.join(path, "")):
        raise RuntimeError(f"benchmarks.ab revisions: expected to time the code in {path}, got {imported}")
    return json.loads(results[-1][len("RESULT "):])


def compare_revisions(revision_a, revision_b, pattern, rounds, batches=7, batch_seconds=0.01, contender=None):
    with tempfile.TemporaryDirectory(prefix="scratchgen-ab-") as scratch:
        paths = {}
        for side, revision in (("a", revision_a), ("b", revision_b)):
            folder = os.path.join(scratch, side)
            os.mkdir(folder)
            paths[side] = None if revision == WORKTREE else export(revision, folder)
        ratios = {}
        for round_index in range(rounds):
            order = ("a", "b") if round_index % 2 == 0 else ("b", "a")
            times = {side: time_revision(paths[side], pattern, batches, batch_seconds, contender)
                     for side in order}
            for key in times["a"].keys() & times["b"].keys():
                ratios.setdefault(key, []).append(times["b"][key] / times["a"][key])
            print(f"round {round_index + 1}/{rounds} done", file=sys.stderr, flush=True)
    print(f"B/A thread-CPU time, A = {revision_a}, B = {revision_b}, {rounds} interleaved rounds "
          f"(median, IQR; below 1: B is faster)")
    for key in sorted(ratios):
        q25, q75 = np.percentile(ratios[key], [25, 75])
        print(f"  {key}: {statistics.median(ratios[key]):.3f} ({q25:.3f}-{q75:.3f})")
    return ratios
