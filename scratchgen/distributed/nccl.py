"""The same collectives on GPUs: NCCL through CuPy (``cupy.cuda.nccl``), set up over MPI.

    world = distributed.init()                 # MPI: who is who
    gpus = NCCLCommunicator(world)             # NCCL: the GPU-to-GPU sums
    gpus.allreduce_(cupy_array)                # in place, on the device; no copy to the host

NCCL needs every rank to join one communicator named by a unique id that one rank draws; the id
(128 bytes) travels from rank 0 to the others by an MPI ``Bcast`` of its bytes. Each rank drives
the GPU ``rank % <GPUs on its node>`` (one process per GPU; see the README's cluster paragraph).
A NCCL call only queues work on the current stream, so waiting is a poll of the stream with the
same deadline as the MPI collectives; on timeout the NCCL communicator is aborted so that no GPU
stays blocked, and ``CollectiveTimeout`` is raised.

Not run on the project's machines (they have no GPU): its test skips, saying so.
"""
import numpy as np

from .communicator import wait_for


def _nccl():
    try:
        import cupy
        from cupy.cuda import nccl
    except ImportError as error:
        raise RuntimeError("NCCLCommunicator: needs CuPy with NCCL (pip install 'scratchgen[gpu]'), which is "
                           f"not importable here ({error})") from error
    return cupy, nccl


class NCCLCommunicator:
    """``allreduce_`` and ``broadcast_`` of CuPy arrays over NCCL, for the ranks of ``world`` (MPI)."""

    def __init__(self, world):
        cupy, nccl = _nccl()
        self.cupy, self.nccl, self.world = cupy, nccl, world
        self.rank, self.size, self.timeout = world.rank, world.size, world.timeout
        self.gpu = world.rank % cupy.cuda.runtime.getDeviceCount()
        cupy.cuda.Device(self.gpu).use()
        unique_id = np.array(nccl.get_unique_id() if world.rank == 0 else [0] * 128, dtype=np.int8)
        world.broadcast_(unique_id)
        self.comm = nccl.NcclCommunicator(self.size, tuple(int(byte) for byte in unique_id), self.rank)
        self.description = f"rank {self.rank} of {self.size} over NCCL (GPU {self.gpu})"

    def _datatype(self, array):
        types = {np.dtype(np.float16): self.nccl.NCCL_FLOAT16, np.dtype(np.float32): self.nccl.NCCL_FLOAT32,
                 np.dtype(np.float64): self.nccl.NCCL_FLOAT64, np.dtype(np.int64): self.nccl.NCCL_INT64}
        if array.dtype not in types:
            raise TypeError(f"NCCLCommunicator: expected float16/32/64 or int64 arrays, got {array.dtype}")
        if not array.flags.c_contiguous:
            raise ValueError("NCCLCommunicator: expected a C-contiguous array (it is written in place)")
        return types[array.dtype]

    def allreduce_(self, array):
        """``array`` (a CuPy array on this rank's GPU) becomes the sum over ranks, in place."""
        stream = self.cupy.cuda.get_current_stream()
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._datatype(array), self.nccl.NCCL_SUM,
                            stream.ptr)
        self._wait(stream, f"NCCL allreduce of {array.size} {array.dtype} values")
        return array

    def broadcast_(self, array, root=0):
        stream = self.cupy.cuda.get_current_stream()
        self.comm.broadcast(array.data.ptr, array.data.ptr, array.size, self._datatype(array), root, stream.ptr)
        self._wait(stream, f"NCCL broadcast of {array.size} {array.dtype} values")
        return array

    def allgather(self, array):
        return self.world.allgather(array)

    def barrier(self):
        self.world.barrier()

    def abort(self, code):
        self.world.abort(code)

    def _wait(self, stream, what):
        try:
            wait_for(lambda: stream.done, self.timeout,
                     lambda: f"{what} did not complete within {self.timeout:g} s on rank {self.rank} of {self.size}")
        except Exception:
            self.comm.abort()
            raise
