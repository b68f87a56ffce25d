"""The VAE: one training step equals its PyTorch twin's, the bounds behave, sampling and config."""
import dataclasses

import numpy as np
import pytest

import scratchgen as sg
from scratchgen.data import load_digits_split
from scratchgen.models import Clock
from scratchgen.models.vae import VAE, MixturePrior, VAEConfig, VAERecipe
from twin_checks import assert_parameters_equal_the_twins

IMAGES = np.array(load_digits_split().train_images[:16])


def small_config(**changes):
    return dataclasses.replace(VAEConfig(hidden=32, channels=4, latent_dim=3), **changes)


def twin_of(model, config, torch):
    from scratchgen.benchmarks.peers.vae import TorchVAE
    twin = TorchVAE.from_config(config, side=model.side).double()
    twin.load_state_dict({name: torch.from_numpy(array) for name, array in model.state_dict().items()})
    return twin


@pytest.mark.parametrize("config", [
    small_config(likelihood="bernoulli", prior="mixture"),
    small_config(likelihood="gaussian", prior="normal"),
    small_config(architecture="conv", likelihood="bernoulli", prior="normal"),
    small_config(architecture="conv", likelihood="gaussian", prior="mixture"),
], ids=["mlp-bernoulli-mixture", "mlp-gaussian-normal", "conv-bernoulli-normal", "conv-gaussian-mixture"])
def test_training_step_loss_and_every_gradient_equal_the_pytorch_twin(torch, config):
    from scratchgen.benchmarks.peers.vae import training_loss
    sg.manual_seed(0)
    model = VAE(config, side=8).double()
    rng = np.random.default_rng(2)  # move parameters off their initial values, so every gradient is exercised
    if config.likelihood == "gaussian":
        model.log_scale.data[...] = -1.3
    if config.prior == "mixture":
        model.prior.log_scales.data[...] = rng.normal(scale=0.3, size=model.prior.log_scales.shape)
        model.prior.logits.data[...] = rng.normal(size=model.prior.logits.shape)
    twin = twin_of(model, config, torch)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in twin.parameters())
    noise = np.random.default_rng(1).normal(size=(len(IMAGES), config.latent_dim))
    kl_weight = 0.3

    reconstruction, kl = model.negative_elbo(sg.tensor(IMAGES, dtype=sg.float64), noise=sg.tensor(noise))
    loss = (reconstruction + kl_weight * kl).mean()
    loss.backward()
    expected = training_loss(twin, torch.from_numpy(IMAGES).double(), torch.from_numpy(noise), kl_weight)
    expected.backward()

    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    assert_parameters_equal_the_twins(model, twin, values=False)


def test_importance_weighted_bound_is_tighter_than_the_elbo():
    sg.manual_seed(0)
    model = VAE(small_config(), side=8)
    images = sg.tensor(IMAGES)
    with sg.no_grad():
        nelbo = sum(sum(model.negative_elbo(images)).mean().item() for _ in range(20)) / 20
        iwae = model.importance_weighted_nll(images, 64).mean().item()
        single = model.importance_weighted_nll(images, 1).mean().item()
    assert iwae < nelbo  # log p(x) >= IWAE_64 >= ELBO
    assert single == pytest.approx(nelbo, rel=0.05)  # k = 1 estimates the ELBO itself


def test_mixture_prior_density_and_sampling():
    from scipy.stats import multivariate_normal
    sg.manual_seed(0)
    prior = MixturePrior(latent_dim=2, components=3)
    prior.log_scales.data[...] = [[0.0, -1.0], [0.5, 0.2], [-2.0, -2.0]]
    prior.logits.data[...] = [0.0, 1.0, -1.0]
    z = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    weights = np.exp(prior.logits.numpy()) / np.exp(prior.logits.numpy()).sum()
    expected = np.log(sum(w * multivariate_normal(m, np.diag(np.exp(2 * s))).pdf(z) for w, m, s in
                          zip(weights, prior.means.numpy(), prior.log_scales.numpy())))
    np.testing.assert_allclose(prior.log_density(sg.tensor(z)).numpy(), expected, rtol=1e-5)

    prior.logits.data[...] = [-30.0, -30.0, 30.0]  # all weight on the narrow third component
    samples = prior.sample(200, "cpu").numpy()
    assert samples.shape == (200, 2)
    np.testing.assert_allclose(samples.mean(0), prior.means.numpy()[2], atol=0.05)


def test_kl_warm_up_rises_linearly_to_one():
    recipe = VAERecipe(small_config(kl_warmup_epochs=2.0), load_digits_split())
    assert recipe.kl_weight(Clock(0, 0, 0, 10)) == 0.0
    assert recipe.kl_weight(Clock(15, 1, 5, 10)) == pytest.approx(0.75)
    assert recipe.kl_weight(Clock(40, 4, 0, 10)) == 1.0
    no_warm_up = VAERecipe(small_config(kl_warmup_epochs=0.0), load_digits_split())
    assert no_warm_up.kl_weight(Clock(0, 0, 0, 10)) == 1.0


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
def test_samples_and_reconstructions_are_images_in_the_unit_interval(likelihood):
    sg.manual_seed(0)
    recipe = VAERecipe(small_config(likelihood=likelihood), load_digits_split())
    samples = recipe.sample(7)
    assert samples.shape == (7, 8, 8) and samples.dtype == np.float32
    assert 0 <= samples.min() and samples.max() <= 1
    grid = recipe.figures(load_digits_split())["reconstructions"]
    assert grid.shape == (80, 8, 8)
    np.testing.assert_array_equal(grid[:10], load_digits_split().test_images[:10])


def test_training_step_reports_the_unweighted_negative_elbo():
    sg.manual_seed(0)
    recipe = VAERecipe(small_config(kl_warmup_epochs=1.0), load_digits_split())
    recipe.before_step(Clock(0, 0, 0, 10))
    losses = recipe.train_step((sg.tensor(IMAGES),), Clock(0, 0, 0, 10))
    assert losses["loss"] < losses["nelbo"]  # beta = 0 at the start of warm-up: the KL is left out
    assert losses["nelbo"] - losses["kl"] == pytest.approx(losses["loss"], rel=1e-5)


@pytest.mark.parametrize("changes, message", [
    ({"architecture": "rnn"}, "architecture 'mlp' or 'conv'"),
    ({"likelihood": "poisson"}, "likelihood 'bernoulli' or 'gaussian'"),
    ({"latent_dim": 0}, "latent_dim >= 1"),
])
def test_bad_config_values_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        VAEConfig(**changes)
