"""The harness: run the selected workloads at each thread count and collect one row per
(workload, pass, contender).

    results = run_suite(Options(), threads=(1, 2), pattern="attention")   # a process per thread count
    rows = run_workloads(select(all_workloads(options), "engine"), options, threads=1)  # in this process

A row holds the timing (median, IQR, runs, first call), the rate (``rate``: units of the
workload's ``Work`` per second) and its fraction of the machine's ceiling, the tracemalloc peak
where measured — or ``skipped`` with a reason, or ``error``. A failing workload, pass or
contender becomes an error row and the suite goes on.

Each thread count runs in its own process, started with the thread pools' environment variables
set (a BLAS pool is sized when it loads), and pins them again there (``machine.pin_threads``).
"""
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import traceback

from scratchgen.memory import keep_freed_memory
from scratchgen.progress import format_duration

from .ceilings import ceilings_from
from .machine import environment_warnings, machine_info, pin_threads, pinned_threads, thread_environment
from .timing import describe, peak_bytes, time_interleaved
from .workload import Broken, Options, Precompiled, Skip

SCHEMA_VERSION = 1
CEILING_OF_UNIT = {"flop": "gemm_gflops", "byte": "bandwidth_gbs"}  # both ceilings are in units of 1e9/s


def all_workloads(options):
    """Every workload of the suite, family by family (ceilings first: the rest is measured against them)."""
    from . import attention, ceilings, conv, engine, models, recurrence
    families = (ceilings, conv, recurrence, attention, engine, models)
    found = [workload for module in families for workload in module.workloads(options)]
    keys = [w.key for w in found]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"benchmarks: expected unique workload names, got duplicates {duplicates}")
    return found


def select(workloads, pattern=None):
    """The workloads whose ``family/name`` matches the regular expression ``pattern``
    (case-insensitive), always with the ceilings, which the rates are fractions of."""
    if not pattern:
        return list(workloads)
    matches = re.compile(pattern, re.IGNORECASE).search
    return [w for w in workloads if w.family == "ceiling" or matches(w.key)]


# ---- one thread count, in this process ---------------------------------------------------------------
def run_workloads(workloads, options, threads, progress=None):
    """``{"threads", "pinned", "machine", "ceilings", "rows", "elapsed_s"}`` for one thread count."""
    progress = progress or Progress(len(workloads), threads)
    started = time.perf_counter()
    keep_freed_memory()  # for every contender alike: see scratchgen/memory.py
    with pin_threads(threads):
        machine, pinned = machine_info(), pinned_threads()
        rows = []
        for index, workload in enumerate(workloads):
            progress.start(index, workload)
            workload_started = time.perf_counter()
            found = run_workload(workload, options)
            progress.done(index, workload, time.perf_counter() - workload_started, found)
            rows += found
    ceilings = ceilings_from(rows)
    for row in rows:
        add_fraction_of_ceiling(row, ceilings)
    return {"threads": threads, "pinned": pinned, "machine": machine, "ceilings": ceilings, "rows": rows,
            "elapsed_s": time.perf_counter() - started}


def run_workload(workload, options):
    """The rows of one workload: every pass, every contender (skips and errors included)."""
    base = {"workload": workload.name, "family": workload.family, "description": workload.description,
            "series": workload.series, "x": workload.x, "design": workload.design}
    try:
        contenders = workload.setup(options)
    except Exception as error:  # noqa: BLE001 -- the suite reports it and goes on
        return [base | {"pass": None, "contender": None, **error_fields(error)}]
    rows = [base | {"pass": None, "contender": name, **not_run(contender)}
            for name, contender in contenders.items() if isinstance(contender, (Skip, Broken))]
    runnable = {name: passes for name, passes in contenders.items() if isinstance(passes, dict)}
    for pass_name in passes_in_order(workload, runnable):
        calls = {name: passes[pass_name] for name, passes in runnable.items() if pass_name in passes}
        rows += [base | {"pass": pass_name} | row for row in time_pass(workload, pass_name, calls, options)]
    return rows


def not_run(contender):
    return {"skipped": contender.reason} if isinstance(contender, Skip) else {"error": contender.error}


def passes_in_order(workload, contenders):
    """The workload's passes first, in its order, then any others a contender offers."""
    found = list(workload.work)
    for passes in contenders.values():
        found += [name for name in passes if name not in found]
    return found


def time_pass(workload, pass_name, calls, options):
    """Rows ``{contender, median_s, ..., rate, peak_bytes}`` of one pass, contenders interleaved
    (a ``Precompiled`` pass with the first call and note its setup measured)."""
    precompiled = {name: call for name, call in calls.items() if isinstance(call, Precompiled)}
    calls = {name: precompiled[name].call if name in precompiled else call for name, call in calls.items()}
    try:
        timings = time_interleaved(calls, repeats=options.repeats, warmup=options.warmup,
                                   budget_s=options.budget_s, min_repeats=options.min_repeats)
    except Exception as error:  # noqa: BLE001 -- a contender failed after its first call
        return [{"contender": None, **error_fields(error)}]
    work = workload.work.get(pass_name)
    rows = []
    for name, timing in timings.items():
        row = {"contender": name, **timing}
        if name in precompiled and "median_s" in row:
            row |= {"first_call_s": precompiled[name].first_call_s, "first_call_note": precompiled[name].note}
        if work is not None and "median_s" in row:
            row |= {"rate": work.amount / row["median_s"], "unit": work.unit, "work": work.amount,
                    "work_note": work.note}
        ours = name.startswith(("scratchgen", "kernel"))
        if options.memory and workload.memory and ours and "median_s" in row:
            row |= measured_peak(calls[name])
        rows.append(row)
    return rows


def measured_peak(fn):
    try:
        return {"peak_bytes": peak_bytes(fn)}
    except Exception as error:  # noqa: BLE001
        return {"peak_error": describe(error)}


def error_fields(error):
    return {"error": describe(error), "traceback": traceback.format_exc(limit=-8)}


def add_fraction_of_ceiling(row, ceilings):
    ceiling = ceilings.get(CEILING_OF_UNIT.get(row.get("unit")))
    if ceiling and "rate" in row:
        row["fraction_of_ceiling"] = row["rate"] / 1e9 / ceiling


class Progress:
    """One line per workload on stderr: where the run is, how long each workload took, what failed,
    and the time left at the mean pace so far."""

    def __init__(self, total, threads, stream=None):
        self.total, self.threads = total, threads
        self.stream = stream or sys.stderr
        self.live = getattr(self.stream, "isatty", lambda: False)()
        self.started = time.perf_counter()

    def start(self, index, workload):
        if self.live:  # a terminal: say what is running now, overwritten when it is done
            self.stream.write(f"\r{self._prefix(index)} {workload.key} ...")
            self.stream.flush()

    def done(self, index, workload, seconds, rows):
        problems = sum("error" in row for row in rows)
        line = f"{self._prefix(index)} {workload.key}: {seconds:.1f} s"
        line += f", {problems} error(s)" if problems else ""
        left, pace = self.total - index - 1, (time.perf_counter() - self.started) / (index + 1)
        line += f"  (eta {format_duration(pace * left)})" if left else ""
        self.stream.write(f"\r{line}\033[K\n" if self.live else line + "\n")
        self.stream.flush()

    def _prefix(self, index):
        return f"[{index + 1:>3}/{self.total} | {self.threads} thread{'s' if self.threads > 1 else ''}]"


# ---- every thread count, a process each --------------------------------------------------------------
def run_suite(options, threads=(1,), pattern=None, in_process=False, stream=None, workloads=None,
              command=None):
    """The results document: options, machine, and one run per thread count (see the README's
    benchmarks section). ``in_process`` runs every thread count here, pinned by threadpoolctl
    alone, on ``workloads`` when given (tests) or those ``pattern`` selects."""
    stream = stream or sys.stderr
    started = time.perf_counter()
    runs = []
    for index, count in enumerate(threads):
        # memory does not depend on the thread count, and torch.compile's minutes are spent once
        run_options = options if index == 0 else dataclasses.replace(options, memory=False, torch_compile="")
        if in_process:
            chosen = workloads if workloads is not None else select(all_workloads(options), pattern)
            runs.append(run_workloads(chosen, run_options, count, Progress(len(chosen), count, stream)))
        else:
            runs.append(run_in_subprocess(run_options, count, pattern))
    machine = next((run.pop("machine") for run in runs if "machine" in run), None)
    for run in runs:
        run.pop("machine", None)
    warnings = environment_warnings(machine["environment"]) if machine else []
    for warning in warnings:
        print(f"warning: {warning}", file=stream)
    return {"schema": SCHEMA_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": command or shlex.join(sys.argv), "options": dataclasses.asdict(options),
            "only": pattern, "threads": list(threads), "machine": machine, "warnings": warnings, "runs": runs,
            "elapsed_s": time.perf_counter() - started}


def run_in_subprocess(options, threads, pattern):
    """One thread count in a fresh Python whose thread pools start at ``threads``."""
    with tempfile.TemporaryDirectory() as folder:
        request, answer = os.path.join(folder, "request.json"), os.path.join(folder, "answer.json")
        with open(request, "w") as file:
            json.dump({"options": dataclasses.asdict(options), "threads": threads, "pattern": pattern}, file)
        command = [sys.executable, "-m", __package__, "--worker", request, answer]
        completed = subprocess.run(command, env=thread_environment(threads))
        if completed.returncode != 0 or not os.path.exists(answer):
            return {"threads": threads, "rows": [],
                    "error": f"the {threads}-thread worker process exited with status {completed.returncode}"}
        with open(answer) as file:
            return json.load(file)


def worker(request_path, answer_path):
    """The child's side of ``run_in_subprocess``: read the request, run, write the answer."""
    with open(request_path) as file:
        request = json.load(file)
    options = Options(**{name: tuple(value) if isinstance(value, list) else value
                         for name, value in request["options"].items()})
    workloads = select(all_workloads(options), request["pattern"])
    result = run_workloads(workloads, options, request["threads"])
    with open(answer_path, "w") as file:
        json.dump(result, file)
    return 0
