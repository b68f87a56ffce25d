"""The runner's promises: bit-identical resume (after an epoch and after Ctrl-C mid-epoch), a
non-finite loss stops cleanly, seeding, the progress bar."""
import io
import json
import math
import signal

import numpy as np
import pytest

from scratchgen import cli, runner, serialize
from scratchgen.progress import ProgressBar
from scratchgen.models.vae import VAERecipe

# A quick VAE: small, on the full digits split (43 batches an epoch), no pictures.
QUICK = {"hidden": 32, "latent_dim": 4, "iwae_samples": 4, "kl_warmup_epochs": 1.0}


def train(folder, epochs, resume=None, **options):
    return runner.train("vae", {**QUICK, "epochs": epochs, **options}, out=str(folder), resume=resume,
                        plots=False, echo=lambda *args: None)


def checkpoint_state(folder):
    state = serialize.load(folder / "last.npz")
    return state["model"], state["optim"], state["meta"]


def assert_same_training_state(folder_a, folder_b):
    model_a, optim_a, meta_a = checkpoint_state(folder_a)
    model_b, optim_b, meta_b = checkpoint_state(folder_b)
    assert model_a.keys() == model_b.keys()
    for name in model_a:
        np.testing.assert_array_equal(model_a[name], model_b[name], err_msg=name)
    for index, entries in optim_a["model"]["state"].items():
        for key, value in entries.items():
            np.testing.assert_array_equal(value, optim_b["model"]["state"][index][key])
    for key in ("step", "epoch", "rng_state", "loader"):
        assert meta_a[key] == meta_b[key], key


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    folder = tmp_path_factory.mktemp("straight")
    train(folder, epochs=2)
    return folder


def test_one_epoch_then_resume_one_equals_two_straight(straight, tmp_path):
    train(tmp_path, epochs=1)
    summary = train(tmp_path, epochs=2, resume=str(tmp_path))
    assert summary["epoch"] == 2 and not summary["interrupted"]
    assert_same_training_state(straight, tmp_path)
    epochs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    straight_epochs = [json.loads(line) for line in (straight / "metrics.jsonl").read_text().splitlines()]
    assert epochs[0]["loss"] == straight_epochs[0]["loss"] and epochs[2]["loss"] == straight_epochs[1]["loss"]


def test_ctrl_c_mid_epoch_saves_and_resumes_bit_identically(straight, tmp_path, monkeypatch):
    step = VAERecipe.train_step

    def interrupted_at_step_50(self, batch, clock):
        losses = step(self, batch, clock)
        if clock.step == 50:  # epoch 2, batch 7: as if the user pressed Ctrl-C during this step
            signal.raise_signal(signal.SIGINT)
        return losses

    monkeypatch.setattr(VAERecipe, "train_step", interrupted_at_step_50)
    summary = train(tmp_path, epochs=2)
    assert summary["interrupted"] and summary["step"] == 51
    meta = checkpoint_state(tmp_path)[2]
    assert (meta["step"], meta["epoch"], meta["loader"]["position"]) == (51, 1, 8)
    monkeypatch.setattr(VAERecipe, "train_step", step)
    train(tmp_path, epochs=2, resume=str(tmp_path / "last.npz"))
    assert_same_training_state(straight, tmp_path)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    step = VAERecipe.train_step

    def diverging_in_epoch_2(self, batch, clock):
        losses = step(self, batch, clock)
        return {**losses, "loss": math.nan} if clock.epoch == 1 and clock.batch == 3 else losses

    monkeypatch.setattr(VAERecipe, "train_step", diverging_in_epoch_2)
    options = [f"--{key.replace('_', '-')}={value}" for key, value in QUICK.items()]
    assert cli.main(["train", "vae", "--epochs", "3", "--out", str(tmp_path), *options]) == 1
    error = capsys.readouterr().err
    assert "non-finite loss {'loss': nan} at epoch 2, step 47" in error
    assert f"the last good checkpoint {tmp_path / 'last.npz'} (end of epoch 1) is kept" in error
    assert checkpoint_state(tmp_path)[2]["epoch"] == 1


def test_a_different_seed_gives_different_weights(straight, tmp_path):
    train(tmp_path, epochs=1, seed=1)
    assert not np.array_equal(checkpoint_state(straight)[0]["encoder.1.weight"],
                              checkpoint_state(tmp_path)[0]["encoder.1.weight"])


def test_progress_bar_shows_epoch_loss_and_speed():
    stream = io.StringIO()
    bar = ProgressBar(3, 10, total=4, stream=stream, enabled=True, interval=0.0)
    bar.update(2, {"loss": 12.3456}, examples=64)
    bar.close()
    text = stream.getvalue()
    assert "epoch 3/10 [" in text and "2/4" in text and "loss 12.35" in text and "ex/s" in text
    silent = io.StringIO()
    ProgressBar(1, 1, total=1, stream=silent).update(1, {"loss": 1.0}, examples=1)
    assert silent.getvalue() == ""  # not a terminal: no carriage-return noise in logs
