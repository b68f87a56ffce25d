"""What the figures were measured on, and the thread pinning they were measured under.

Thread counts matter as much as the code: NumPy's BLAS, Numba's parallel loops and PyTorch each
keep their own pool. ``pin_threads`` sets all three; the suite also starts one process per thread
count with the pools' environment variables set, because a BLAS pool is sized when it loads.
"""
import os
import platform
import sys

# The environment that decides how fast the libraries run. OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
# are set on some machines for old OpenBLAS builds; they force a slower GEMM kernel (see
# DESIGN.md), so the benchmark command unsets them and results.json records what they were.
RECORDED_ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                        "MKL_NUM_THREADS", "NUMBA_NUM_THREADS", "NUMBA_CACHE_DIR", "NUMBA_THREADING_LAYER",
                        "CI")
SLOWING_ENVIRONMENT = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


# Numba's default "omp" threading layer loads the system's libgomp beside the copy bundled with
# PyTorch: two OpenMP runtimes whose idle workers spin, each holding the 2 cores the other's next
# parallel region needs. Alternating with our kernels made PyTorch's 2-thread attention 26x slower
# than at 1 thread (123 vs 4.7 ms, measured). The "workqueue" layer keeps one OpenMP runtime in the process.
BENCHMARK_ENVIRONMENT = {"NUMBA_THREADING_LAYER": "workqueue"}


def thread_environment(threads):
    """The environment of a process whose thread pools all start at ``threads``."""
    pools = {variable: str(threads) for variable in THREAD_VARIABLES}
    return dict(os.environ, **BENCHMARK_ENVIRONMENT, **pools)


def pin_threads(threads):
    """Pin BLAS, Numba and PyTorch to ``threads``; returns the threadpoolctl context to keep open."""
    import numba
    import scipy.linalg.cython_blas  # noqa: F401 -- Numba's np.dot calls SciPy's OpenBLAS: load it to pin it
    from threadpoolctl import threadpool_limits
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        pass
    return threadpool_limits(limits=threads)


def pinned_threads():
    """What each pool actually runs with now: ``{"numba", "torch", "blas": {library file: threads}}``."""
    import numba
    from threadpoolctl import threadpool_info
    try:
        import torch
        torch_threads = torch.get_num_threads()
    except ImportError:
        torch_threads = None
    return {"numba": numba.get_num_threads(), "torch": torch_threads,
            "pools": {os.path.basename(pool["filepath"]): pool["num_threads"] for pool in threadpool_info()}}


def cpu_model():
    """The CPU's marketing name (Linux's /proc/cpuinfo), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def version_of(module_name):
    """A module's ``__version__``, or None when it is not installed."""
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return getattr(module, "__version__", "unknown")


def machine_info():
    """CPU, cores, library versions, the environment that matters and the BLAS libraries loaded."""
    from threadpoolctl import threadpool_info
    import scratchgen
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "logical_cores": os.cpu_count(), "usable_cores": usable,
            "platform": platform.platform(), "python": sys.version.split()[0],
            "versions": {name: version_of(name) for name in ("numpy", "numba", "torch", "scipy", "cupy")}
            | {"scratchgen": scratchgen.__version__},
            "environment": {name: os.environ.get(name) for name in RECORDED_ENVIRONMENT},
            "blas": threadpool_info()}


def environment_warnings(environment):
    """Lines to show when the environment is known to slow the figures down."""
    return [f"{name}={environment[name]} is set: OpenBLAS may run a slower GEMM kernel; run the benchmarks "
            f"under `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE` (DESIGN.md)"
            for name in SLOWING_ENVIRONMENT if environment.get(name) is not None]
