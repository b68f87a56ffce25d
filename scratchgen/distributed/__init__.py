"""``scratchgen.distributed``: data-parallel training over MPI (``mpi4py``), and NCCL through CuPy on GPUs.

    mpirun -n 2 scratchgen train mlp --distributed     # the CLI does all of the below

    from scratchgen import distributed
    world = distributed.init()                  # rank, size; one process when there is no MPI
    model = distributed.DataParallel(model)     # same model on every rank (checked, then broadcast)
    model.average_gradients_of(optimizer)       # each step: gradients averaged over the ranks
    loader = DataLoader(TensorDataset(x, y), batch_size=b, shuffle=True, generator=Generator(seed),
                        rank=world.rank, world_size=world.size)   # each rank its shard of one permutation

The pieces: ``communicator`` (who is who, and the collectives, each with a timeout), ``parallel``
(model checks, broadcast, gradient averaging on the optimizer's flat buffers), ``batchnorm``
(BatchNorm over the global batch), ``nccl`` (the GPU collectives). docs/distributed.md explains
the design, the guarantees and what it costs.
"""
from .batchnorm import SyncBatchNorm1d, SyncBatchNorm2d, all_reduce, convert_sync_batchnorm  # noqa: F401
from .communicator import (CollectiveTimeout, DistributedError, MPICommunicator, SingleProcess,  # noqa: F401
                           barrier, init, rank, world, world_size)
from .nccl import NCCLCommunicator  # noqa: F401
from .parallel import (DataParallel, GradientAveraging, ModelMismatch, average_gradients_of,  # noqa: F401
                       broadcast_state, check_same_model, make_data_parallel, state_digest)
