"""The DCGAN: one training step of each loss equals its PyTorch twin's (losses, every gradient,
the updated weights), the gradient penalty's second-order backward agrees with finite
differences, and ``scratchgen train gan`` / ``sample gan`` work end to end."""
import contextlib
import dataclasses
import json

import numpy as np
import pytest

import scratchgen as sg
from scratchgen import cli
from scratchgen.data import load_images
from scratchgen.models import Clock
from scratchgen.models.gan import (GANConfig, GANRecipe, adversarial_step, discriminator,
                                   gradient_penalty, to_model_range)
from scratchgen.testing import gradcheck, gradgradcheck
from twin_checks import assert_parameters_equal_the_twins

START = Clock(step=0, epoch=0, batch=0, batches_per_epoch=10)
SIDE = 16  # the twin tests run one size up from the default 8, for one more BatchNorm layer each
REAL = np.asarray(load_images("digits", SIDE).train_images[:6])


def tiny_config(loss):
    return GANConfig(loss=loss, image_size=SIDE, latent_dim=5, channels=3, lr=1e-3)


@pytest.mark.parametrize("loss", ["nonsat", "hinge", "wgan-gp"])
def test_training_step_losses_gradients_and_updates_equal_the_pytorch_twin(torch, loss):
    from scratchgen.benchmarks.peers.gan import build, training_step
    config = tiny_config(loss)
    sg.manual_seed(0)
    recipe = GANRecipe(config, load_images("digits", SIDE))
    model, optimizers = recipe.model.double(), recipe.optimizers  # cast in place: the optimizers still fit
    twin, twin_optimizers = build(config, SIDE)
    twin.double().load_state_dict({name: torch.from_numpy(array)
                                   for name, array in model.state_dict().items()})
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in twin.parameters())

    rng = np.random.default_rng(1)
    real = REAL[:, None].astype(np.float64) * 2 - 1
    noise = rng.standard_normal((len(real), config.latent_dim, 1, 1))
    mix = rng.uniform(size=(len(real), 1, 1, 1))
    losses = adversarial_step(model, optimizers, sg.tensor(real), sg.tensor(noise), sg.tensor(mix),
                              config.gp_weight)
    d_loss, g_loss = training_step(twin, twin_optimizers, torch.from_numpy(real), torch.from_numpy(noise),
                                   torch.from_numpy(mix), config.gp_weight)

    assert losses["d_loss"] == pytest.approx(d_loss, rel=1e-10)
    assert losses["g_loss"] == pytest.approx(g_loss, rel=1e-10)
    # discriminator gradients: its step's; the generator's: its own
    assert_parameters_equal_the_twins(model, twin, rtol=1e-8, values=False)
    twin_state = twin.state_dict()
    for name, array in model.state_dict().items():  # Adam's updates and BatchNorm's running statistics
        np.testing.assert_allclose(array, twin_state[name].numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


def test_training_step_reports_what_the_discriminator_sees():
    sg.manual_seed(0)
    recipe = GANRecipe(tiny_config("nonsat"), load_images("digits", SIDE))
    losses = recipe.train_step((sg.tensor(REAL),), START)
    assert {"d_loss", "g_loss", "d_real", "d_fake"} == set(losses)
    assert 0 < losses["d_fake"] < 1 and 0 < losses["d_real"] < 1  # D(x), D(G(z)) are probabilities here
    wgan = GANRecipe(tiny_config("wgan-gp"), load_images("digits", SIDE))
    assert wgan.train_step((sg.tensor(REAL),), START)["gradient_penalty"] > 0


def test_learning_rate_falls_linearly_to_zero_after_decay_from():
    config = dataclasses.replace(tiny_config("hinge"), epochs=10, decay_from=0.6)
    recipe = GANRecipe(config, load_images("digits", SIDE))
    assert recipe.learning_rate(Clock(0, 0, 0, 10)) == recipe.learning_rate(Clock(60, 6, 0, 10)) == config.lr
    assert recipe.learning_rate(Clock(80, 8, 0, 10)) == pytest.approx(config.lr / 2)
    assert recipe.learning_rate(Clock(99, 9, 9, 10)) == pytest.approx(config.lr / 40)


# ---- the gradient penalty differentiates the critic twice ------------------------------------------
@contextlib.contextmanager
def parameters_replaced(module, tensors):
    """Run ``module`` with its parameters replaced by ``tensors`` (in ``parameters()`` order), so a
    function of the weights can be handed to gradcheck."""
    slots = [(layer, name) for layer in module.modules()
             for name, p in layer._parameters.items() if p is not None]
    saved = [layer._parameters[name] for layer, name in slots]
    for (layer, name), value in zip(slots, tensors):
        layer._parameters[name] = value
    try:
        yield module
    finally:
        for (layer, name), value in zip(slots, saved):
            layer._parameters[name] = value


def small_critic():
    """The WGAN-GP critic at 8 x 8 with 2 channels: conv, LeakyReLU, conv, LayerNorm, LeakyReLU, conv."""
    sg.manual_seed(3)
    critic = discriminator(channels=2, side=8, norm="layer").double()
    for parameter in critic.parameters():  # move the norm's scale and shift off 1 and 0
        parameter.data += np.random.default_rng(4).normal(0, 0.1, parameter.shape)
    return critic


def critic_inputs(count=2):
    rng = np.random.default_rng(5)
    real, fake = (sg.tensor(rng.uniform(-1, 1, (count, 1, 8, 8))) for _ in range(2))
    return real, fake, sg.tensor(rng.uniform(size=(count, 1, 1, 1)))


def test_gradient_penalty_weight_gradients_match_finite_differences():
    critic = small_critic()
    real, fake, mix = critic_inputs()
    weights = [sg.tensor(p.data.copy(), requires_grad=True) for p in critic.parameters()]

    def penalty(*weights):
        with parameters_replaced(critic, weights):
            return gradient_penalty(lambda x: critic(x).reshape(-1), real, fake, mix)

    assert gradcheck(penalty, weights, atol=1e-6, rtol=1e-4)


def test_critic_passes_gradgradcheck():
    critic = small_critic()
    x = sg.tensor(critic_inputs()[0].data, requires_grad=True)
    weights = [sg.tensor(p.data.copy(), requires_grad=True) for p in critic.parameters()]

    def scores(x, *weights):
        with parameters_replaced(critic, weights):
            return critic(x).reshape(-1)

    assert gradgradcheck(scores, [x, *weights], atol=1e-6, rtol=1e-4)


# ---- configuration, sampling and the command line --------------------------------------------------
def test_samples_are_images_in_the_unit_interval_and_noise_maps_to_the_tanh_range():
    sg.manual_seed(0)
    recipe = GANRecipe(tiny_config("hinge"), load_images("digits", SIDE))
    samples = recipe.sample(7)
    assert samples.shape == (7, SIDE, SIDE) and samples.dtype == np.float32
    assert 0 <= samples.min() and samples.max() <= 1
    scaled = to_model_range(sg.tensor(REAL)).numpy()
    assert scaled.shape == (6, 1, SIDE, SIDE) and scaled.min() == -1 and scaled.max() == 1


@pytest.mark.parametrize("changes, message", [
    ({"loss": "wgan"}, "loss one of"),
    ({"image_size": 12}, "image_size 8, 16 or 32"),
    ({"latent_dim": 0}, "latent_dim >= 1"),
])
def test_bad_config_values_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(GANConfig(), **changes)


@pytest.mark.parametrize("loss", ["nonsat", "wgan-gp"])
def test_cli_dry_run_writes_progress_grids_and_metrics_and_samples(tmp_path, capsys, loss):
    run = tmp_path / "run"
    assert cli.main(["train", "gan", "--dry-run", "--out", str(run), "--loss", loss, "--channels", "4",
                     "--epochs", "2", "--grid-every", "2"]) == 0
    for name in ("samples_epoch001.png", "samples_epoch002.png", "samples.png", "loss.png", "last.npz"):
        assert (run / name).exists(), name
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "fid_ratio", "classes_covered"} <= records[0].keys()
    assert records[-1]["final"] and "fid" in records[-1]
    out = tmp_path / "s.npy"
    assert cli.main(["sample", "gan", "--checkpoint", str(run), "--n", "5", "--out", str(out)]) == 0
    assert np.load(out).shape == (5, 8, 8)  # the default image size
