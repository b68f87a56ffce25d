"""Who this process is, how many there are, and the collectives data-parallel training needs.

    from scratchgen import distributed
    world = distributed.init()      # MPI.COMM_WORLD under mpirun; a single process otherwise
    world.rank, world.size          # also distributed.rank(), distributed.world_size()
    world.allreduce_(array)         # in place: every rank's array becomes the sum over ranks
    world.broadcast_(array)         # in place: every rank's array becomes rank 0's
    world.barrier()

MPI does the work (``mpi4py``; Open MPI locally, any MPI on a cluster): every collective is one of
mpi4py's upper-case *buffer* methods, which hand MPI the array's memory — never the lower-case
ones, which pickle Python objects. Each is started non-blocking (``Iallreduce``, ``Ibcast``,
``Ibarrier``, ``Iallgather``) and waited for with a deadline:

    request = comm.Iallreduce(IN_PLACE, array, SUM)
    while not request.Test():          # sleeps 10 µs, doubling to at most 1 ms between polls
        if now > deadline: raise CollectiveTimeout(...)

A blocking call would wait forever for a rank that has stopped (a hung node, a rank stuck in a
different part of the code); the deadline turns that into an error naming the collective, which
the CLI prints on the rank that saw it and then ends the whole job (``abort``). A rank that *dies*
is usually noticed first by the launcher (Open MPI's ``mpirun`` ends the job when a rank is
killed, saying which), the deadline covers every other case. The timeout is ``init(timeout=)``,
else ``$SCRATCHGEN_COLLECTIVE_TIMEOUT`` (seconds), else 300 s: generous, because the ranks also
wait for each other at the end of every epoch while rank 0 alone writes its checkpoint.

Without ``mpi4py``, or under a plain ``python`` (one rank), ``init`` returns ``SingleProcess``,
whose collectives do nothing, and says so once.
"""
import os
import sys
import time

import numpy as np

DEFAULT_TIMEOUT_S = 300.0
TIMEOUT_VARIABLE = "SCRATCHGEN_COLLECTIVE_TIMEOUT"
_FIRST_POLL_S, _LONGEST_POLL_S = 1e-5, 1e-3

_world = None


class DistributedError(RuntimeError):
    """Data-parallel training cannot go on: the ranks disagree or one of them does not answer."""


class CollectiveTimeout(DistributedError):
    """A collective did not complete within the timeout (a rank died, stopped or went elsewhere)."""


class SingleProcess:
    """The world of one process: rank 0 of 1; collectives leave their arrays as they are."""
    rank, size = 0, 1
    timeout = DEFAULT_TIMEOUT_S
    description = "a single process"

    def allreduce_(self, array):
        return array

    def broadcast_(self, array, root=0):
        return array

    def allgather(self, array):
        return array[None].copy()

    def barrier(self):
        pass

    def abort(self, code):
        raise SystemExit(code)


class MPICommunicator:
    """Collectives over an mpi4py communicator, each bounded by ``timeout`` seconds."""

    def __init__(self, comm, timeout=DEFAULT_TIMEOUT_S):
        from mpi4py import MPI
        self.MPI, self.comm, self.timeout = MPI, comm, float(timeout)
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.description = f"rank {self.rank} of {self.size} over MPI ({MPI.Get_library_version().split(',')[0]})"

    def allreduce_(self, array):
        """``array`` (contiguous) becomes the element-wise sum of every rank's ``array``."""
        self._wait(self.comm.Iallreduce(self.MPI.IN_PLACE, _contiguous(array, "allreduce_"), op=self.MPI.SUM),
                   f"allreduce of {array.size} {array.dtype} values")
        return array

    def broadcast_(self, array, root=0):
        """``array`` (contiguous) becomes rank ``root``'s ``array`` on every rank."""
        self._wait(self.comm.Ibcast(_contiguous(array, "broadcast_"), root=root),
                   f"broadcast of {array.size} {array.dtype} values from rank {root}")
        return array

    def allgather(self, array):
        """Every rank's ``array`` (same shape and dtype on all), stacked: shape ``(size, *array.shape)``."""
        gathered = np.empty((self.size, *array.shape), dtype=array.dtype)
        self._wait(self.comm.Iallgather(np.ascontiguousarray(array), gathered), "allgather")
        return gathered

    def barrier(self):
        self._wait(self.comm.Ibarrier(), "barrier")

    def abort(self, code):
        """End every rank of the job now (``MPI_Abort``): what to do after a collective failed,
        since the other ranks may be blocked in it and would never leave."""
        sys.stderr.flush()
        self.comm.Abort(code)

    def _wait(self, request, what):
        wait_for(request.Test, self.timeout, lambda: f"{what} did not complete within {self.timeout:g} s on "
                 f"rank {self.rank} of {self.size}: another rank has died, stopped, or is running different "
                 f"code (the timeout is {TIMEOUT_VARIABLE} or --collective-timeout)")


def wait_for(done, timeout, message, clock=time.monotonic, sleep=time.sleep):
    """Poll ``done()`` until it is true; after ``timeout`` seconds raise ``CollectiveTimeout(message())``.
    The pause between polls doubles from 10 µs to 1 ms: a quick collective costs little latency,
    a slow one little CPU (the ranks share cores with the training they wait for)."""
    deadline, pause = clock() + timeout, _FIRST_POLL_S
    while not done():
        if clock() > deadline:
            raise CollectiveTimeout(message())
        sleep(pause)
        pause = min(2 * pause, _LONGEST_POLL_S)


def _contiguous(array, op):
    if not (array.flags.c_contiguous and array.flags.writeable):
        raise ValueError(f"{op}: expected a writeable C-contiguous array (it is written in place), got "
                         f"{'a read-only' if not array.flags.writeable else 'a non-contiguous'} array")
    return array


def timeout_from_environment():
    """``$SCRATCHGEN_COLLECTIVE_TIMEOUT`` in seconds (> 0), else ``DEFAULT_TIMEOUT_S``."""
    value = os.environ.get(TIMEOUT_VARIABLE)
    if value is None:
        return DEFAULT_TIMEOUT_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{TIMEOUT_VARIABLE}: expected a number of seconds > 0, got {value!r}")
    return seconds


def init(timeout=None, echo=None):
    """The world this process belongs to (kept: later calls return it, a new ``timeout`` applied).
    ``echo`` (e.g. ``print``) receives one line saying what was found when it is not MPI with
    several ranks — mpi4py missing, or a single rank — so a user never mistakes one process for many."""
    global _world
    if _world is None:
        _world, note = _discover(timeout or timeout_from_environment())
        if note and echo is not None:
            echo(note)
    if timeout is not None:
        _world.timeout = float(timeout)
    return _world


def _discover(timeout):
    try:
        from mpi4py import MPI
    except ImportError:
        return SingleProcess(), ("distributed: mpi4py is not installed (pip install 'scratchgen[dist]'); "
                                 "training as a single process")
    world = MPICommunicator(MPI.COMM_WORLD, timeout)
    if world.size == 1:
        return world, ("distributed: one MPI rank (start several with mpirun -n N); training as a single "
                       "process")
    return world, None


def world():
    """The communicator ``init`` made, or ``SingleProcess`` before any ``init``."""
    return _world or SingleProcess()


def rank():
    return world().rank


def world_size():
    return world().size


def barrier():
    world().barrier()
