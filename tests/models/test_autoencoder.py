"""The autoencoder anomaly detector: one training step equals its PyTorch twin's, the held-out
class never reaches training, ROC-AUC is the Mann-Whitney probability, and ``scratchgen train ae``
/ ``scratchgen eval ae`` work end to end."""
import dataclasses
import json

import numpy as np
import pytest

import scratchgen as sg
from scratchgen import cli
from scratchgen.data import load_digits_split
from scratchgen.models.autoencoder import AutoencoderConfig, AutoencoderRecipe, roc_auc
from twin_checks import assert_parameters_equal_the_twins

IMAGES = np.array(load_digits_split().train_images[:16], dtype=np.float64)


def test_training_step_loss_gradients_and_update_equal_the_pytorch_twin(torch):
    from scratchgen.benchmarks.peers.autoencoder import build, training_step
    config = AutoencoderConfig(hidden=12, code_dim=3)
    sg.manual_seed(0)
    recipe = AutoencoderRecipe(config, load_digits_split())
    model = recipe.model.double()  # cast in place: the optimizer still holds these parameters
    twin, optimizer = build(config, side=8)
    twin.double().load_state_dict({name: torch.from_numpy(array)
                                   for name, array in model.state_dict().items()})
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in twin.parameters())

    loss = recipe.train_step((sg.tensor(IMAGES),), None)["loss"]
    expected = training_step(twin, optimizer, torch.from_numpy(IMAGES))

    assert loss == pytest.approx(expected, rel=1e-12)
    assert_parameters_equal_the_twins(model, twin)


def test_roc_auc_is_the_probability_that_an_anomaly_outscores_a_normal_image():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, size=40).astype(float)  # many ties: they count one half
    positive = rng.uniform(size=40) < 0.3
    pairs = scores[positive][:, None] - scores[~positive][None, :]
    assert roc_auc(scores, positive) == pytest.approx(((pairs > 0) + 0.5 * (pairs == 0)).mean())
    assert roc_auc(positive.astype(float), positive) == 1.0


def test_the_held_out_digit_is_left_out_of_training_only():
    data = AutoencoderRecipe.load_data(AutoencoderConfig(holdout_class=3))
    full = load_digits_split()
    assert 3 not in data.train_labels and len(data.train_labels) == int((full.train_labels != 3).sum())
    np.testing.assert_array_equal(data.test_labels, full.test_labels)
    with pytest.raises(ValueError, match="holdout_class in 0..9"):
        AutoencoderRecipe.load_data(AutoencoderConfig(holdout_class=10))


def test_dry_run_writes_the_best_and_worst_reconstructions(tmp_path):
    assert cli.main(["train", "ae", "--dry-run", "--out", str(tmp_path), "--holdout-class", "1"]) == 0
    assert (tmp_path / "best_and_worst_reconstructions.png").exists() and (tmp_path / "last.npz").exists()
    final = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()][-1]
    assert final["final"] and 0 <= final["roc_auc"] <= 1


def test_eval_ae_without_a_checkpoint_reports_every_held_out_digit(monkeypatch, capsys):
    @dataclasses.dataclass
    class OneEpoch(AutoencoderConfig):
        epochs: int = 1

    monkeypatch.setattr(AutoencoderRecipe, "Config", OneEpoch)
    assert cli.main(["eval", "ae"]) == 0
    out = capsys.readouterr().out
    report = json.loads(out[out.index("{"):])
    assert sorted(report["roc_auc"], key=int) == [str(k) for k in range(10)]
    assert report["mean_roc_auc"] > 0.55  # better than chance after one epoch
    assert "| held-out digit | ROC-AUC |" in out and out.count("| mean |") == 1
