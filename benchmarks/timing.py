"""Honest timing: warm-up apart, contenders interleaved in one process, medians and IQR.

Interleaving (A, B, A, B, ...) rather than timing A's runs then B's makes slow drift of a shared
machine (another process, frequency changes) fall on both contenders alike, so the *ratio*
A/B stays meaningful even when absolute times wander.
"""
import time

import numpy as np


def measure(fn, clock=time.perf_counter):
    """Seconds one call of ``fn`` takes."""
    start = clock()
    fn()
    return clock() - start


def time_interleaved(contenders, repeats=20, warmup=2, min_seconds=0.0):
    """Time several zero-argument callables, alternating between them.

    ``contenders`` maps a name to a callable. The first ``warmup`` calls of each are timed on
    their own (that is where JIT compilation happens) and reported as ``first_call_s``; then
    rounds of one call each run until ``repeats`` rounds are done and at least ``min_seconds``
    have passed. Returns ``{name: {"median_s", "q25_s", "q75_s", "runs", "first_call_s"}}``.
    """
    first_call = {name: measure(fn) for name, fn in contenders.items()}
    for _ in range(max(warmup - 1, 0)):
        for fn in contenders.values():
            fn()
    samples = {name: [] for name in contenders}
    started = time.perf_counter()
    rounds = 0
    while rounds < repeats or time.perf_counter() - started < min_seconds:
        for name, fn in contenders.items():
            samples[name].append(measure(fn))
        rounds += 1
    return {name: summarise(times) | {"first_call_s": first_call[name]}
            for name, times in samples.items()}


def summarise(times):
    """Median and inter-quartile range of a list of durations in seconds."""
    q25, median, q75 = np.percentile(np.asarray(times), [25, 50, 75])
    return {"median_s": float(median), "q25_s": float(q25), "q75_s": float(q75), "runs": len(times)}
