"""The VAE-GAN: one step (three losses, three gradients, three Adam updates) equals its PyTorch twin's;
each network is trained by its own loss only; sampling and config."""
import dataclasses

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.data import load_digits_split
from scratchgen.models import Clock
from scratchgen.models.gan import to_model_range
from scratchgen.models.vaegan import NETWORKS, VAEGAN, VAEGANConfig, VAEGANRecipe, vaegan_step
from twin_checks import assert_parameters_equal_the_twins

IMAGES = np.array(load_digits_split().train_images[:12])


def small_config(**changes):
    return dataclasses.replace(VAEGANConfig(latent_dim=4, channels=4, hidden=16, gamma=0.7, kl_weight=0.5), **changes)


def optimizers_of(model, config):
    return {name: sg.optim.Adam(getattr(model, name).parameters(), config.lr, (config.beta1, 0.999))
            for name in NETWORKS}


@pytest.mark.parametrize("architecture, loss", [("conv", "nonsat"), ("mlp", "nonsat"), ("conv", "hinge")])
def test_two_steps_equal_the_pytorch_twin(torch, architecture, loss):
    """Losses, every gradient, every parameter after the update and BatchNorm's running statistics."""
    from scratchgen.benchmarks.peers.vaegan import build, training_step
    config = small_config(architecture=architecture, loss=loss, lr=1e-2)
    sg.manual_seed(0)
    model = VAEGAN(config, side=8).double()
    twin, twin_optimizers = build(config, side=8)
    twin = twin.double()
    twin.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in model.state_dict().items()})
    optimizers = optimizers_of(model, config)
    images = to_model_range(sg.tensor(IMAGES, dtype=sg.float64))
    rng = np.random.default_rng(1)
    for step in range(2):
        noise, prior_noise = rng.normal(size=(2, len(IMAGES), config.latent_dim))
        ours = vaegan_step(model, optimizers, images, sg.tensor(noise), sg.tensor(prior_noise))
        theirs = training_step(twin, twin_optimizers, torch.from_numpy(images.numpy()), torch.from_numpy(noise),
                               torch.from_numpy(prior_noise))
        for name, value in theirs.items():
            assert ours[name] == pytest.approx(value, rel=1e-10), name
        assert_parameters_equal_the_twins(model, twin, rtol=1e-8, atol=1e-10, when=f" at step {step + 1}")
    buffers = dict(twin.named_buffers())
    for name, buffer in model.named_buffers():
        np.testing.assert_allclose(buffer.numpy(), buffers[name].numpy(), rtol=1e-10, err_msg=name)


def test_each_network_moves_by_its_own_loss_only():
    """The discriminator's gradient ignores the feature reconstruction; the encoder's ignores the GAN
    terms: changing gamma moves only the decoder's gradient, kl_weight only the encoder's."""
    def gradients(**changes):
        config = small_config(**changes)
        sg.manual_seed(0)
        model = VAEGAN(config, side=8).double()
        noise, prior_noise = np.random.default_rng(2).normal(size=(2, len(IMAGES), config.latent_dim))
        frozen = {name: sg.optim.SGD(getattr(model, name).parameters(), lr=0.0) for name in NETWORKS}
        vaegan_step(model, frozen, to_model_range(sg.tensor(IMAGES, dtype=sg.float64)), sg.tensor(noise),
                    sg.tensor(prior_noise))
        return {name: np.concatenate([p.grad.numpy().ravel() for p in getattr(model, name).parameters()])
                for name in NETWORKS}
    base, other_gamma, other_kl = gradients(), gradients(gamma=3.0), gradients(kl_weight=2.0)
    for name in NETWORKS:
        assert np.array_equal(base[name], other_gamma[name]) == (name != "decoder"), name
        assert np.array_equal(base[name], other_kl[name]) == (name != "encoder"), name


def test_training_step_samples_and_reconstructions():
    sg.manual_seed(0)
    recipe = VAEGANRecipe(small_config(), load_digits_split())
    losses = recipe.train_step((sg.tensor(IMAGES),), Clock(0, 0, 0, 10))
    assert set(losses) == {*NETWORKS, "kl", "feature_reconstruction"}
    assert all(np.isfinite(value) for value in losses.values())
    samples = recipe.sample(7)
    assert samples.shape == (7, 8, 8) and samples.dtype == np.float32 and 0 <= samples.min() <= samples.max() <= 1
    grid = recipe.figures(load_digits_split())["reconstructions"]
    assert grid.shape == (80, 8, 8)
    np.testing.assert_array_equal(grid[:10], load_digits_split().test_images[:10])


@pytest.mark.parametrize("changes, message", [
    ({"architecture": "rnn"}, "architecture 'conv' or 'mlp'"),
    ({"gamma": -1.0}, "gamma >= 0"),
    ({"ema_decay": 1.0}, "ema_decay in"),
    ({"loss": "wgan-gp"}, "loss 'nonsat' or 'hinge'"),
    ({"decay_from": 1.5}, "decay_from in"),
])
def test_bad_config_values_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        VAEGANConfig(**changes)


def test_learning_rate_of_all_three_falls_linearly_after_decay_from():
    sg.manual_seed(0)
    recipe = VAEGANRecipe(small_config(epochs=4, decay_from=0.5), load_digits_split())
    batch = (sg.tensor(IMAGES),)
    for clock, expected in [(Clock(0, 0, 0, 10), 1.0), (Clock(20, 2, 0, 10), 1.0), (Clock(30, 3, 0, 10), 0.5)]:
        recipe.before_step(clock)
        recipe.train_step(batch, clock)
        assert [optimizer.param_groups[0]["lr"] for optimizer in recipe.optimizers.values()] == \
            pytest.approx([expected * recipe.config.lr] * 3)
