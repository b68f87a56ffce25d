"""Run folders and checkpoints: never clobber a run, never keep a bad checkpoint, never write a
metrics line that is not JSON, honour or refuse what is asked on resume, stop cleanly on SIGTERM."""
import json
import math
import os
import signal

import numpy as np
import pytest

from scratchgen import cli, runner, serialize
from scratchgen.models.mlp import MLPRecipe

TINY = ["--hidden", "8", "--features", "8"]


def train(folder, *options):
    return cli.main(["train", "mlp", "--out", str(folder), "--epochs", "1", *TINY, *options])


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_out_holding_a_run_is_refused_unless_resume_or_overwrite(tmp_path, capsys):
    assert train(tmp_path) == 0
    before = (tmp_path / "metrics.jsonl").read_text()
    assert train(tmp_path) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (tmp_path / "metrics.jsonl").read_text() == before
    assert cli.main(["train", "vae", "--out", str(tmp_path), "--epochs", "1"]) == 2  # another model too
    assert train(tmp_path, "--overwrite") == 0
    records = runner.read_metrics(tmp_path)
    assert [r.get("final", False) for r in records] == [False, True]  # a fresh history, not appended


def test_default_run_folders_are_distinct_even_in_the_same_second(in_tmp, monkeypatch):
    monkeypatch.setattr(runner.time, "strftime", lambda *args: "20260101-000000")
    folders = [runner.new_run_folder("mlp") for _ in range(3)]
    assert len(set(folders)) == 3 and all(os.path.isdir(folder) for folder in folders)


@pytest.mark.parametrize("option, value, expected", [
    ("--epochs", "0", "--epochs: expected an integer >= 1"),
    ("--batch-size", "-3", "--batch-size: expected an integer >= 1"),
    ("--hidden", "0", "--hidden: expected an integer >= 1"),
    ("--lr", "nan", "--lr: expected a finite number"),
    ("--lr", "-0.1", "--lr: expected a learning rate > 0"),
    ("--weight-decay", "inf", "--weight-decay: expected a finite number"),
])
def test_bad_config_values_exit_2_before_any_folder_exists(in_tmp, capsys, option, value, expected):
    assert cli.main(["train", "mlp", option, value]) == 2
    error = capsys.readouterr().err
    assert expected in error and "Traceback" not in error
    assert not os.path.exists("runs")


def test_config_file_sits_between_the_resumed_config_and_the_flags(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"lr": 0.01, "hidden": 8, "features": 8, "epochs": 1}))
    assert cli.main(["train", "mlp", "--out", str(tmp_path / "a"), "--config", str(config), "--lr", "0.02"]) == 0
    recorded = json.loads((tmp_path / "a" / "config.json").read_text())["config"]
    assert recorded["lr"] == 0.02 and recorded["hidden"] == 8
    # a run's own config.json works as --config; its values fall to the flags again
    assert cli.main(["train", "mlp", "--out", str(tmp_path / "b"), "--config", str(tmp_path / "a" / "config.json"),
                     "--hidden", "4"]) == 0
    recorded = json.loads((tmp_path / "b" / "config.json").read_text())["config"]
    assert recorded["lr"] == 0.02 and recorded["hidden"] == 4
    config.write_text(json.dumps({"lr": "fast"}))
    assert cli.main(["train", "mlp", "--out", str(tmp_path / "c"), "--config", str(config)]) == 2
    assert not (tmp_path / "c").exists()


def test_a_checkpoint_is_written_only_when_everything_is_finite(tmp_path, monkeypatch, capsys):
    step = MLPRecipe.train_step

    def blowing_up_on_the_last_step_of_epoch_2(self, batch, clock):
        losses = step(self, batch, clock)
        if clock.epoch == 1 and clock.batch == clock.batches_per_epoch - 1:
            for param in self.model.parameters():
                param.data[...] = np.inf   # the loss was finite; the update that follows was not
        return losses

    monkeypatch.setattr(MLPRecipe, "train_step", blowing_up_on_the_last_step_of_epoch_2)
    assert train(tmp_path, "--epochs", "3") == 1
    assert "non-finite values in model/" in capsys.readouterr().err
    state = serialize.load(tmp_path / "last.npz")
    assert state["meta"]["epoch"] == 1
    assert all(np.isfinite(array).all() for array in state["model"].values())
    assert [record["epoch"] for record in runner.read_metrics(tmp_path)] == [1]


def test_non_finite_metrics_are_written_as_null_with_a_flag(tmp_path):
    line = runner.metrics_line({"epoch": 1, "loss": math.nan, "test_loss": math.inf, "accuracy": 0.5})
    record = json.loads(line, parse_constant=lambda name: pytest.fail(f"bare {name} in {line}"))
    assert record["loss"] is None and record["test_loss"] is None and record["accuracy"] == 0.5
    assert record["nonfinite"] == {"loss": "nan", "test_loss": "inf"}


def test_resume_overrides_reach_the_optimizer_and_the_record(tmp_path):
    assert train(tmp_path) == 0
    assert cli.main(["train", "mlp", "--resume", str(tmp_path), "--epochs", "2", "--lr", "0.5",
                     "--weight-decay", "0.25"]) == 0
    state = serialize.load(tmp_path / "last.npz")
    group = state["optim"]["model"]["param_groups"][0]
    assert group["lr"] == 0.5 and group["weight_decay"] == 0.25
    assert json.loads((tmp_path / "config.json").read_text())["config"]["lr"] == 0.5


def signal_at_batch(monkeypatch, signum, at_batch):
    """Make MLPRecipe's step send ``signum`` to this process as batch ``at_batch`` starts."""
    step = MLPRecipe.train_step

    def signalling(self, batch, clock):
        if clock.batch == at_batch:
            os.kill(os.getpid(), signum)
        return step(self, batch, clock)

    monkeypatch.setattr(MLPRecipe, "train_step", signalling)
    return step


def test_resume_refuses_changes_it_cannot_honour(tmp_path, monkeypatch, capsys):
    step = signal_at_batch(monkeypatch, signal.SIGINT, 5)
    assert train(tmp_path) == 130
    monkeypatch.setattr(MLPRecipe, "train_step", step)
    assert cli.main(["train", "mlp", "--resume", str(tmp_path), "--batch-size", "16"]) == 2
    assert "--batch-size cannot change in the middle of an epoch" in capsys.readouterr().err
    assert cli.main(["train", "mlp", "--resume", str(tmp_path), "--seed", "3"]) == 2
    assert "--seed cannot change" in capsys.readouterr().err


def test_sigterm_stops_at_a_step_saves_and_exits_143(tmp_path, monkeypatch):
    signal_at_batch(monkeypatch, signal.SIGTERM, 4)
    assert train(tmp_path) == 143
    meta = serialize.load(tmp_path / "last.npz")["meta"]
    assert meta["step"] == 5 and meta["loader"]["position"] == 5


def test_a_record_lost_between_checkpoint_and_log_comes_back_once(tmp_path):
    assert train(tmp_path, "--epochs", "2") == 0
    records = runner.read_metrics(tmp_path)
    # as if killed after epoch 2's checkpoint, before its record (and with a torn last line)
    (tmp_path / "metrics.jsonl").write_text(runner.metrics_line(records[0]) + '{"step": 4')
    assert cli.main(["train", "mlp", "--resume", str(tmp_path), "--epochs", "2"]) == 0
    again = runner.read_metrics(tmp_path)
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in records]
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in again] == strip


def test_cli_load_paths_refuse_non_finite_complex_and_integer_weights(tmp_path, capsys):
    assert train(tmp_path) == 0
    state = serialize.load(tmp_path / "last.npz")
    state["meta"] = {k: v for k, v in state["meta"].items() if k not in ("format_version", "scratchgen_version")}
    name = next(iter(state["model"]))
    for bad, message in [(np.full_like(state["model"][name], np.nan), "NaN/inf"),
                         (state["model"][name].astype(np.complex64), "complex"),
                         (state["model"][name].astype(np.int32), "expected a floating-point array")]:
        broken = {**state, "model": {**state["model"], name: bad}}
        serialize.save(broken, tmp_path / "bad.npz")
        assert cli.main(["eval", "mlp", "--checkpoint", str(tmp_path / "bad.npz")]) == 2
        assert message in capsys.readouterr().err
        assert cli.main(["train", "mlp", "--resume", str(tmp_path / "bad.npz"), "--epochs", "2"]) == 2
        assert message in capsys.readouterr().err
    halves = {**state, "model": {k: v.astype(np.float16) for k, v in state["model"].items()}}
    serialize.save(halves, tmp_path / "half.npz")
    assert cli.main(["eval", "mlp", "--checkpoint", str(tmp_path / "half.npz")]) == 0  # cast, as before


def test_a_killed_saves_temporary_is_removed_by_the_next_save(tmp_path):
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)    # a pid that no longer runs, as a killed writer's
    stale = tmp_path / f".last.npz.{child}.deadbeef.tmp"
    stale.write_bytes(b"half a checkpoint")
    mine = tmp_path / f".last.npz.{os.getpid()}.cafe.tmp"   # a live writer's is left alone
    mine.write_bytes(b"")
    serialize.save({"model": {"w": np.ones(2)}}, tmp_path / "last.npz")
    assert not stale.exists() and mine.exists()


def test_the_folder_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(serialize.os, "fsync", lambda fd: (synced.append(os.path.isdir(f"/proc/self/fd/{fd}")
                                                                          and os.readlink(f"/proc/self/fd/{fd}")),
                                                            real_fsync(fd)))
    serialize.save({"model": {"w": np.ones(2)}}, tmp_path / "last.npz")
    assert str(tmp_path) in synced
