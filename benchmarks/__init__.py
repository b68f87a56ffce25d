"""The benchmark suite (installed as scratchgen.benchmarks): run with `python -m benchmarks`
(or `scratchgen bench`); docs/benchmarks.md explains what it measures.

    workload.py    Workload, Work, Skip, Options: what is timed, defined once, as data
    timing.py      interleaved timing, medians and IQR, first call apart; tracemalloc peaks
    ceilings.py    the machine's limits: fp32 GEMM rate and memory bandwidth
    conv.py, recurrence.py, attention.py   the kernel families' workloads (and their tuning tools)
    engine.py      engine overhead: one tiny op, long chains, fan-out/fan-in
    models.py      every model's training step and sampling against its PyTorch twin (peers/)
    suite.py       the harness: a process per thread count, one row per (workload, pass, contender)
    report.py      results.json, REPORT.md and the scaling plots
    machine.py     CPU, versions, BLAS, environment; thread pinning
"""
