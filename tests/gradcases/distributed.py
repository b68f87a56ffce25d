"""``all_reduce`` (the op under SyncBatchNorm) in one process, where it is the identity; its
two-rank behaviour is checked by tests/distributed/test_mpi.py (SyncBatchNorm's gradients equal
one process's under mpirun -n 2)."""
from scratchgen.distributed import SingleProcess, all_reduce
from scratchgen.testing.strategies import GradCase

from .core import one

CASES = [
    GradCase("all_reduce", lambda a: all_reduce(a, SingleProcess()), one(), second_order=True),
]
