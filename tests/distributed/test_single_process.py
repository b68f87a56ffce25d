"""scratchgen.distributed without mpirun: the single-process fallback, the sharded loader, the
timeout, SyncBatchNorm with one rank, gradient averaging over a simulated world, and the CLI's refusals."""
import itertools

import numpy as np
import pytest

import scratchgen as sg
import scratchgen.functional as F
from scratchgen import distributed, nn, optim
from scratchgen.utils.data import DataLoader, TensorDataset
from scratchgen.distributed import communicator
from scratchgen.distributed.parallel import first_difference


# ---- who is who ---------------------------------------------------------------------------------------
def test_without_mpi4py_init_says_it_trains_as_a_single_process(monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_mpi4py(name, *args, **kwargs):
        if name.startswith("mpi4py"):
            raise ImportError("No module named 'mpi4py'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpi4py)
    monkeypatch.setattr(communicator, "_world", None)
    said = []
    world = distributed.init(echo=said.append)
    assert (world.rank, world.size, distributed.rank(), distributed.world_size()) == (0, 1, 0, 1)
    assert said == ["distributed: mpi4py is not installed (pip install 'scratchgen[dist]'); training as a "
                    "single process"]
    distributed.barrier()   # nothing to wait for


def test_the_timeout_comes_from_the_environment_and_bad_values_are_named(monkeypatch):
    monkeypatch.setenv(communicator.TIMEOUT_VARIABLE, "2.5")
    assert communicator.timeout_from_environment() == 2.5
    monkeypatch.setenv(communicator.TIMEOUT_VARIABLE, "soon")
    with pytest.raises(ValueError, match="SCRATCHGEN_COLLECTIVE_TIMEOUT: expected a number of seconds > 0, got 'soon'"):
        communicator.timeout_from_environment()


def test_a_collective_that_never_completes_raises_after_the_timeout():
    now = itertools.count(0.0, 0.25)   # a clock that advances a quarter second per look
    pauses = []
    with pytest.raises(distributed.CollectiveTimeout, match="allreduce never finished"):
        communicator.wait_for(lambda: False, 3.0, lambda: "allreduce never finished", clock=lambda: next(now),
                              sleep=pauses.append)
    assert len(pauses) == 12 and pauses[0] == 1e-5 and max(pauses) == 1e-3   # backs off, up to 1 ms


def test_a_collective_that_completes_returns_without_sleeping_again():
    answers = iter([False, False, True])
    pauses = []
    communicator.wait_for(lambda: next(answers), 1.0, str, sleep=pauses.append)
    assert pauses == [1e-5, 2e-5]


# ---- data: one permutation, one shard per rank ---------------------------------------------------------
def test_the_ranks_shards_make_up_the_single_process_batches():
    data = TensorDataset(np.arange(50))
    single = [batch for (batch,) in DataLoader(data, batch_size=8, shuffle=True, generator=sg.Generator(4),
                                               drop_last=True)]
    ranks = [[batch for (batch,) in DataLoader(data, batch_size=4, shuffle=True, generator=sg.Generator(4),
                                               rank=r, world_size=2)] for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 6      # every rank the same number of steps
    for whole, first, second in zip(single, *ranks):
        np.testing.assert_array_equal(whole, np.concatenate([first, second]))


def test_a_rank_outside_the_world_is_refused():
    with pytest.raises(ValueError, match="expected 0 <= rank < world_size, got rank 2 of 2"):
        DataLoader(TensorDataset(np.arange(10)), batch_size=2, rank=2, world_size=2)


# ---- models: compared, broadcast, averaged ------------------------------------------------------------
def test_first_difference_names_the_entry_and_both_sides():
    reference = ["parameter w (3, 2) float32", "buffer b (2,) float32"]
    assert first_difference(reference, reference) == ""
    assert first_difference(["parameter w (3, 4) float32", reference[1]], reference) == \
        "entry 0 is `parameter w (3, 4) float32` where rank 0 has `parameter w (3, 2) float32`"
    assert first_difference(reference[:1], reference) == "1 parameters and buffers where rank 0 has 2"


class TwoRanksInOneProcess(distributed.SingleProcess):
    """A world of 2 in which the other rank's gradient is ``other`` (to see the average taken)."""
    size = 2

    def __init__(self, other):
        self.other = other

    def allreduce_(self, array):
        array += self.other
        return array


@pytest.mark.parametrize("fused", [False, True])
def test_gradient_averaging_runs_on_the_optimizers_flat_gradient_buffer(fused):
    layer = nn.Linear(3, 2)
    optimizer = optim.SGD(layer.parameters(), lr=1.0, fused=fused)
    size = sum(param.numel() for param in layer.parameters())
    distributed.average_gradients_of(optimizer, TwoRanksInOneProcess(other=np.full(size, 4.0, np.float32)))
    before = [param.data.copy() for param in layer.parameters()]
    layer(sg.ones(5, 3)).sum().backward()
    mine = [param.grad.data.copy() for param in layer.parameters()]
    optimizer.step()
    for param, old, grad in zip(layer.parameters(), before, mine):
        np.testing.assert_allclose(param.data, old - (grad + 4.0) / 2, rtol=1e-6)   # lr 1: the average


def test_the_step_pre_hook_runs_before_the_update_and_can_be_removed():
    param = nn.Parameter(sg.ones(2))
    optimizer = optim.SGD([param], lr=1.0)
    seen = []
    handle = optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(param.data.copy()))
    param.grad = sg.ones(2)
    optimizer.step()
    handle.remove()
    optimizer.step()
    assert len(seen) == 1 and seen[0].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("fused", [False, True])
def test_a_compiled_step_replays_the_gradient_averaging_and_names_it(fused):
    """``scratchgen.compile`` replays ``Optimizer.step`` as one host operation, pre-hook included: every
    replayed step takes the average with the other rank's gradient, as eager steps do, and the listing
    says the step runs the allreduce."""
    def run(compiled):
        sg.manual_seed(0)
        layer = nn.Linear(3, 2)
        optimizer = optim.Adam(layer.parameters(), lr=0.1, fused=fused)
        size = sum(param.numel() for param in layer.parameters())
        other_rank = TwoRanksInOneProcess(other=np.full(size, 4.0, np.float32))
        distributed.average_gradients_of(optimizer, other_rank)

        def step(x):
            optimizer.zero_grad()
            (layer(x) ** 2).sum().backward()
            optimizer.step()
        function = sg.compile(step, poisoning=True) if compiled else step
        for k in range(5):
            function(sg.full((4, 3), float(k)))
        return [param.data.copy() for param in layer.parameters()], function

    eager, _ = run(compiled=False)
    replayed, function = run(compiled=True)
    assert function.replays >= 2
    for wanted, got in zip(eager, replayed):
        np.testing.assert_array_equal(got, wanted)
    assert ("Optimizer.step() {runs its step pre-hooks: gradients summed by an in-place allreduce over 2 "
            "ranks, then averaged}") in function.explain()


def test_dataparallel_in_one_process_is_its_module():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    wrapped = distributed.DataParallel(model, distributed.SingleProcess())
    x = sg.randn(2, 4)
    np.testing.assert_array_equal(wrapped(x).data, model(x).data)
    assert list(wrapped.state_dict()) == ["module.0.weight", "module.0.bias"]


# ---- SyncBatchNorm ----------------------------------------------------------------------------------
def test_convert_sync_batchnorm_keeps_the_parameters_buffers_and_class_family():
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(12, 4), nn.BatchNorm1d(4))
    params, buffers = list(model.parameters()), list(model.buffers())
    distributed.convert_sync_batchnorm(model)
    assert isinstance(model[1], distributed.SyncBatchNorm2d) and isinstance(model[1], nn.BatchNorm2d)
    assert isinstance(model[4], distributed.SyncBatchNorm1d)
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert all(a is b for a, b in zip(model.buffers(), buffers))


class TwoEqualRanks(distributed.SingleProcess):
    """A world of 2 whose other rank holds this rank's very batch: the global batch is it twice."""
    size = 2

    def allreduce_(self, array):
        array *= 2
        return array


def test_sync_batchnorm_over_two_copies_of_a_batch_equals_batchnorm_of_it():
    """Statistics of the batch repeated are those of the batch (the variance's n-1 aside), so the
    output and the gradients (halved: two ranks' worth, averaged later) match plain BatchNorm."""
    sg.manual_seed(0)
    x = sg.randn(6, 3, 4) * 3 + 1
    plain = nn.BatchNorm1d(3, dtype="float64")
    synced = distributed.SyncBatchNorm1d.from_batchnorm(nn.BatchNorm1d(3, dtype="float64"), TwoEqualRanks())
    inputs = [x.double().detach().requires_grad_() for _ in range(2)]
    outputs = [layer(value) for layer, value in zip((plain, synced), inputs)]
    np.testing.assert_allclose(outputs[1].data, outputs[0].data, rtol=1e-10, atol=1e-12)
    weights = sg.randn(6, 3, 4).double()
    for out in outputs:
        (out * weights).sum().backward()
    np.testing.assert_allclose(inputs[1].grad.data, inputs[0].grad.data, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(synced.running_mean.data, plain.running_mean.data, rtol=1e-12)
    count = 6 * 4
    unbiased_ratio = (2 * count / (2 * count - 1)) / (count / (count - 1))
    np.testing.assert_allclose(synced.running_var.data - 0.9, (plain.running_var.data - 0.9) * unbiased_ratio,
                               rtol=1e-9)


def test_sync_batchnorm_on_one_rank_and_in_evaluation_is_batchnorm():
    x = sg.randn(5, 2, 3, 3)
    plain, synced = nn.BatchNorm2d(2), distributed.SyncBatchNorm2d(2)
    for mode in ("train", "eval"):
        getattr(plain, mode)()
        getattr(synced, mode)()
        np.testing.assert_array_equal(synced(x).data, plain(x).data)


# ---- GPU ----------------------------------------------------------------------------------------------
def test_nccl_allreduce_on_a_gpu():
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed: the NCCL communicator needs a GPU "
                                              "(pip install 'scratchgen[gpu]'); nothing to run it on here")
    if cupy.cuda.runtime.getDeviceCount() == 0:
        pytest.skip("no GPU on this machine: the NCCL communicator was not run")
    gpus = distributed.NCCLCommunicator(distributed.init())
    values = cupy.arange(5, dtype=cupy.float32)
    gpus.allreduce_(values)
    np.testing.assert_array_equal(cupy.asnumpy(values), np.arange(5) * gpus.size)


# ---- the CLI ------------------------------------------------------------------------------------------
def test_distributed_ngram_exits_2_with_the_reason(capsys):
    from scratchgen.cli import main
    assert main(["train", "ngram", "--distributed", "--dry-run"]) == 2
    assert "--distributed: ngram has no gradient step" in capsys.readouterr().err


def test_a_bad_collective_timeout_exits_2(capsys):
    from scratchgen.cli import main
    assert main(["train", "mlp", "--distributed", "--collective-timeout", "0"]) == 2
    assert "--collective-timeout: expected a number of seconds > 0, got 0.0" in capsys.readouterr().err


def test_a_mid_epoch_checkpoint_does_not_move_to_another_number_of_ranks():
    from scratchgen.models import get_recipe, make_config
    from scratchgen.runner import UsageError, _config_dict, check_resume_changes
    config = make_config(get_recipe("mlp").Config, {})
    saved = _config_dict(config)
    check_resume_changes(saved, config, {"position": 0}, saved_world_size=2, world_size=1)   # an epoch's end moves
    with pytest.raises(UsageError, match=r"4 batches into an epoch of a run on 2 rank\(s\), resumed on 3"):
        check_resume_changes(saved, config, {"position": 4}, saved_world_size=2, world_size=3)
