"""What the MPI tests run on every rank: ``mpirun -n 2 python mpi_worker.py SCENARIO[,SCENARIO...] FOLDER``.

    net         k steps of a small MLP, DataParallel, per-rank batch b  -> FOLDER/net.npz (rank 0's state)
    batchnorm   the same with BatchNorm1d made SyncBatchNorm1d
    per-rank-batchnorm   ... left plain (each rank's statistics): must NOT equal the reference
    mlp         k training steps of the registered `mlp` recipe, made data-parallel as the CLI does
    net-compiled, mlp-compiled   net and mlp with the step through ``scratchgen.compile`` (captured twice,
                then replayed: the replayed ``Optimizer.step`` runs the gradient allreduce of its pre-hook)
    stall       rank 1 stops itself (SIGSTOP) before the 2nd step: rank 0 must time out and end the job

``train(scenario, batch, world)`` is also called in-process by the tests with one rank and batch
2b: the single-process reference the MPI run must equal.
"""
import os
import signal
import sys

import numpy as np

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import distributed, nn, optim
from scratchgen.utils.data import DataLoader, TensorDataset
from scratchgen.models import Clock, get_recipe, make_config

STEPS, BATCH_PER_RANK = 4, 8


def small_net(batchnorm, hidden=16):
    # no bias before BatchNorm: its gradient is zero up to rounding, which Adam would blow up to
    # full-size steps of noise (and it is left out in practice for that reason)
    normalise = [nn.BatchNorm1d(hidden)] if batchnorm else []
    return nn.Sequential(nn.Linear(12, hidden, bias=not batchnorm), *normalise, nn.ReLU(), nn.Linear(hidden, 5))


def examples(count):
    generator = np.random.default_rng(7)
    return (generator.standard_normal((count, 12)).astype(np.float32) * 2 + 1,
            generator.integers(0, 5, count))


def train_net(batchnorm, batch, world, stall_at=None, compiled=False):
    """``batchnorm``: None (no BatchNorm), "synchronised" or "per rank"; ``compiled``: the step through
    ``scratchgen.compile``."""
    sg.manual_seed(world.rank)            # different initial weights on each rank: the broadcast must fix them
    model = small_net(batchnorm is not None)
    if batchnorm == "synchronised":
        model = distributed.convert_sync_batchnorm(model, world)
    model = distributed.DataParallel(model, world)
    optimizer = optim.Adam(model.parameters(), lr=0.05)
    model.average_gradients_of(optimizer)
    loader = DataLoader(TensorDataset(*examples(STEPS * batch * world.size)), batch_size=batch, shuffle=True,
                        generator=sg.Generator(3), rank=world.rank, world_size=world.size)

    def train_step(x, y):
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
    step_function = sg.compile(train_step) if compiled else train_step
    for step, (x, y) in enumerate(loader):
        if step == stall_at and world.rank == 1:
            os.kill(os.getpid(), signal.SIGSTOP)
        step_function(sg.tensor(x), sg.tensor(y))
    report_replays(step_function, world)
    return model.module.state_dict()


def report_replays(step_function, world):
    if hasattr(step_function, "replays"):
        print(f"rank {world.rank}: {step_function.captures} captures, {step_function.replays} replays",
              flush=True)


def train_mlp(batch, world, compiled=False):
    from scratchgen.runner import build_recipe, compiled_step, make_recipe_data_parallel
    recipe_class = get_recipe("mlp")
    recipe, data = build_recipe(recipe_class, make_config(recipe_class.Config, {"batch_size": batch}))
    make_recipe_data_parallel(recipe, world)
    loader = recipe.make_loader(data, seed=(0, 1))
    train_step = compiled_step(recipe) if compiled else recipe.train_step
    for step, arrays in zip(range(STEPS), loader):
        train_step(recipe.to_tensors(arrays), Clock(step, 0, step, len(loader)))
    report_replays(getattr(train_step, "program", None), world)
    return recipe.model.state_dict()


def train(scenario, batch, world):
    scenario, compiled = scenario.removesuffix("-compiled"), scenario.endswith("-compiled")
    if scenario == "mlp":
        return train_mlp(batch, world, compiled)
    batchnorm = {"batchnorm": "synchronised", "per-rank-batchnorm": "per rank"}.get(scenario)
    return train_net(batchnorm, batch, world, stall_at=1 if scenario == "stall" else None, compiled=compiled)


def main(scenarios, folder):
    world = distributed.init()
    for scenario in scenarios.split(","):   # several in one launch: each mpirun start costs seconds
        try:
            state = train(scenario, BATCH_PER_RANK, world)
        except distributed.CollectiveTimeout as error:   # what the CLI does: say it, end every rank
            print(f"rank {world.rank}: {error}", file=sys.stderr, flush=True)
            world.abort(1)
        if world.rank == 0:
            np.savez(os.path.join(folder, f"{scenario}.npz"), **state)
        checksum = sum(float(np.abs(value).sum()) for value in state.values())
        print(f"rank {world.rank} of {world.size}: {scenario} done, checksum {checksum:.6f}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
