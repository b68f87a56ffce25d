"""Honest timing: warm-up apart, contenders interleaved in one process, medians and IQR.

Interleaving (A, B, A, B, ...) rather than timing A's runs then B's makes slow drift of a shared
machine (another process, frequency changes) fall on both contenders alike, so the *ratio*
A/B stays meaningful even when absolute times wander.
"""
import time
import tracemalloc

import numpy as np


def measure(fn, clock=time.perf_counter):
    """Seconds one call of ``fn`` takes."""
    start = clock()
    fn()
    return clock() - start


def time_interleaved(contenders, repeats=20, warmup=2, min_seconds=0.0, budget_s=None, min_repeats=3):
    """Time several zero-argument callables, alternating between them.

    ``contenders`` maps a name to a callable. The first ``warmup`` calls of each are timed on
    their own (that is where JIT compilation happens) and the first is reported as
    ``first_call_s``; then rounds of one call each run until ``repeats`` rounds are done and at
    least ``min_seconds`` have passed. ``budget_s`` lowers ``repeats`` so that the rounds take about
    that long (judged by the last warm-up calls), but never below ``min_repeats``: big workloads
    get fewer, small ones all, and the suite's total time stays bounded. It also drops the warm-up
    calls after the first when the first round alone took half the budget: the first call has
    compiled what there was to compile, and a second costs as much as a timed round.

    Returns ``{name: {"median_s", "q25_s", "q75_s", "runs", "first_call_s"}}``; a contender whose
    first call raises gets ``{"error": "Type: message"}`` instead and sits out the rounds, so one
    broken contender does not cost the others their figures.
    """
    latest, first_call, errors = {}, {}, {}
    for name, fn in contenders.items():
        try:
            first_call[name] = latest[name] = measure(fn)
        except Exception as error:  # noqa: BLE001 -- reported, not swallowed: see the docstring
            errors[name] = {"error": describe(error)}
    running = {name: fn for name, fn in contenders.items() if name not in errors}
    expensive = budget_s is not None and sum(first_call.values()) > budget_s / 2
    for _ in range(0 if expensive else max(warmup - 1, 0)):
        for name, fn in running.items():
            latest[name] = measure(fn)
    rounds_wanted = planned_rounds(sum(latest.values()), repeats, budget_s, min_repeats)
    samples = {name: [] for name in running}
    started = time.perf_counter()
    rounds = 0
    while running and (rounds < rounds_wanted or time.perf_counter() - started < min_seconds):
        for name, fn in running.items():
            samples[name].append(measure(fn))
        rounds += 1
    timed = {name: summarise(times) | {"first_call_s": first_call[name]} for name, times in samples.items()}
    return {name: timed.get(name) or errors[name] for name in contenders}


def describe(error):
    """An exception as one line: ``Type: message``."""
    return f"{type(error).__name__}: {error}"


def planned_rounds(seconds_per_round, repeats, budget_s, min_repeats):
    """How many rounds fit ``budget_s`` (all ``repeats`` without a budget), at least ``min_repeats``."""
    if budget_s is None or seconds_per_round <= 0:
        return repeats
    return max(min(repeats, int(budget_s / seconds_per_round)), min(min_repeats, repeats))


def summarise(times):
    """Median and inter-quartile range of a list of durations in seconds."""
    q25, median, q75 = np.percentile(np.asarray(times), [25, 50, 75])
    return {"median_s": float(median), "q25_s": float(q25), "q75_s": float(q75), "runs": len(times)}


def peak_bytes(fn):
    """Peak memory tracemalloc saw during one call of ``fn``: NumPy's allocations (it reports
    them to tracemalloc), not those of libraries with their own allocator (PyTorch)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
