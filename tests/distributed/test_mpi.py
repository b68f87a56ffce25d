"""Data parallelism under ``mpirun -n 2``: equal to one process with the doubled batch, rank 0 alone
writing, checkpoints moving between rank counts, and faults ending the job with a message."""
import json
import os
import re
import sys
import time

import numpy as np
import pytest

import mpi_worker
from mpi_launch import HERE, run_mpi
from scratchgen.distributed import SingleProcess

WORKER = [sys.executable, os.path.join(HERE, "mpi_worker.py")]
SCRATCHGEN = [sys.executable, "-m", "scratchgen.cli"]


@pytest.fixture
def mpi():
    return run_mpi


def two_ranks(mpi, command, **kwargs):
    return mpi([command, command], **kwargs)


SCENARIOS = ["net", "mlp", "batchnorm", "per-rank-batchnorm"]
COMPILED = ["net-compiled", "mlp-compiled", "batchnorm-compiled"]   # the same, through scratchgen.compile


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    """Every scenario trained in one `mpirun -n 2` launch: (rank 0's final states, the ranks' output)."""
    folder = tmp_path_factory.mktemp("states")
    result = two_ranks(run_mpi, WORKER + [",".join(SCENARIOS + COMPILED), str(folder)])
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(" done,") == 2 * len(SCENARIOS + COMPILED), result.stdout
    states = {scenario: dict(np.load(folder / f"{scenario}.npz")) for scenario in SCENARIOS + COMPILED}
    return states, result.stdout


@pytest.fixture(scope="module")
def two_rank_states(two_rank_run):
    return two_rank_run[0]


def single_process_state(scenario):
    """The same steps in this process: one rank, batch 2b."""
    return mpi_worker.train(scenario, 2 * mpi_worker.BATCH_PER_RANK, SingleProcess())


def largest_difference(one, other):
    assert sorted(one) == sorted(other)
    return max(float(np.abs(one[name].astype(np.float64) - other[name]).max()) for name in one)


@pytest.mark.parametrize("scenario", ["net", "mlp", "batchnorm"])
def test_two_ranks_with_batch_b_equal_one_process_with_batch_2b(two_rank_states, scenario):
    """k Adam steps; `net` and the registered `mlp` have no BatchNorm, `batchnorm` a SyncBatchNorm1d
    (running statistics included). Float32 tolerance: the two sums round differently."""
    assert largest_difference(two_rank_states[scenario], single_process_state(scenario)) < 2e-6


def test_per_rank_batchnorm_statistics_differ_from_the_global_batch(two_rank_states):
    """The equivalence test can fail: plain BatchNorm normalises each shard by its own statistics."""
    assert largest_difference(two_rank_states["per-rank-batchnorm"], single_process_state("batchnorm")) > 1e-3


@pytest.mark.parametrize("scenario", ["net", "mlp", "batchnorm"])
def test_two_ranks_compiled_equal_two_ranks_eager_and_one_process(two_rank_run, scenario):
    """``scratchgen.compile`` replays ``Optimizer.step`` as a host operation, so its pre-hook's gradient
    allreduce runs on every replay (and SyncBatchNorm's all_reduce ops are recorded ops): the same bits
    as eager on 2 ranks, hence the single process's numbers. Each rank replayed at least once (a replay
    without the allreduce would leave each rank with its own shard's update)."""
    states, output = two_rank_run
    for name, array in states[scenario].items():
        np.testing.assert_array_equal(states[f"{scenario}-compiled"][name], array, err_msg=name)
    assert largest_difference(states[f"{scenario}-compiled"], single_process_state(scenario)) < 2e-6
    replays = [int(count) for count in re.findall(r"rank \d: \d+ captures, (\d+) replays", output)]
    assert len(replays) == 2 * len(COMPILED) and min(replays) >= 1, output


def test_cli_compile_distributed_on_two_ranks_trains(mpi, tmp_path):
    command = SCRATCHGEN + ["train", "mlp", "--distributed", "--compile", "--dry-run", "--epochs", "1",
                            "--batch-size", "16", "--out", str(tmp_path / "run")]
    trained = two_ranks(mpi, command)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    assert trained.stdout.count("training mlp in") == 1


def test_cli_on_two_ranks_rank_0_alone_writes_and_a_checkpoint_moves_to_one_rank(mpi, tmp_path):
    out = tmp_path / "run"
    trained = two_ranks(mpi, SCRATCHGEN + ["train", "mlp", "--distributed", "--dry-run", "--epochs", "1",
                                          "--batch-size", "16", "--out", str(out)])
    assert trained.returncode == 0, trained.stderr
    assert trained.stdout.count("training mlp in") == 1           # rank 0 alone prints
    assert "on 2 ranks (a global batch of 2 x 16)" in trained.stdout
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [record.get("epoch") for record in records] == [1, 1]  # one epoch record and the final one, once
    assert json.loads((out / "config.json").read_text())["world_size"] == 2

    # written by 2 ranks, resumed by 1 (a plain process: it says so)
    from scratchgen.cli import main
    from scratchgen.serialize import load
    assert load(str(out / "last.npz"))["meta"]["world_size"] == 2
    status = main(["train", "mlp", "--resume", str(out), "--epochs", "2", "--distributed", "--dry-run"])
    assert status == 0
    resumed = load(str(out / "last.npz"))["meta"]
    assert (resumed["epoch"], resumed["world_size"]) == (2, 1)
    assert resumed["step"] == 1 + 3   # 48 examples: 1 global batch of 2 x 16 (the rest left out), then 3 of 16


def test_a_killed_rank_ends_the_job_with_a_message(mpi, tmp_path):
    command = SCRATCHGEN + ["train", "mlp", "--distributed", "--dry-run", "--epochs", "3", "--batch-size", "8",
                            "--collective-timeout", "10", "--out", str(tmp_path / "run")]
    started = time.monotonic()
    result = mpi([command, ["env", "SCRATCHGEN_KILL_AT=step:2"] + command], timeout=90)
    assert result.returncode != 0
    assert time.monotonic() - started < 60
    output = result.stdout + result.stderr
    # Open MPI's launcher notices the death first and says which rank; a launcher that does not
    # leaves it to rank 0's collective timeout, whose message names the collective
    assert "rank 1" in output and ("signal 9" in output or "did not complete within" in output), output


def test_a_stalled_rank_ends_the_job_within_the_timeout_with_a_message_from_rank_0(mpi, tmp_path):
    started = time.monotonic()
    result = two_ranks(mpi, WORKER + ["stall", str(tmp_path)],
                       environment={"SCRATCHGEN_COLLECTIVE_TIMEOUT": "3"}, timeout=90)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "rank 0: allreduce of" in result.stderr and "did not complete within 3 s" in result.stderr
    assert elapsed < 45, f"the job took {elapsed:.0f} s to end"
    assert not (tmp_path / "stall.npz").exists()


def test_mismatched_models_are_refused_at_start_by_rank_0(mpi, tmp_path):
    base = SCRATCHGEN + ["train", "mlp", "--distributed", "--dry-run", "--out", str(tmp_path / "run")]
    result = mpi([base + ["--hidden", "32"], base + ["--hidden", "24"]], timeout=90)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.count("the ranks' models differ") == 1      # said once, by rank 0
    assert "rank 1: entry 0 is `parameter body.0.weight (24, 64) float32` where rank 0 has " \
           "`parameter body.0.weight (32, 64) float32`" in result.stderr
