"""The RBM: its step equals the PyTorch twin's, autograd gives the classic CD statistics, log Z
exact and by AIS, Gibbs and MALA samples, and the fixed binarised test split."""
import dataclasses
import itertools

import numpy as np
import pytest
from scipy import special, stats

import scratchgen as sg
from scratchgen import optim
from scratchgen.data import load_digits_split
from scratchgen.eval.binary import binarised_test_images, binary_test_log_likelihood
from scratchgen.models import Clock
from scratchgen.models.rbm import RBM, RBMConfig, RBMRecipe, contrastive_divergence, relaxed_log_density
from twin_checks import assert_parameters_equal_the_twins

IMAGES = np.array(load_digits_split().train_images[:16]).reshape(16, 64)


def random_rbm(visible, hidden, scale=1.0, seed=0, dtype=np.float64):
    """An RBM with weights far from their tiny initial values, so every term matters."""
    rng = np.random.default_rng(seed)
    model = RBM(visible, hidden).to(dtype)
    model.weight.data[...] = rng.normal(scale=scale, size=(hidden, visible))
    model.visible_bias.data[...] = rng.normal(scale=scale, size=visible)
    model.hidden_bias.data[...] = rng.normal(scale=scale, size=hidden)
    return model


def all_binary(count):
    return np.array(list(itertools.product([0.0, 1.0], repeat=count)))


def test_free_energy_sums_the_energy_over_hidden_states_and_log_z_sums_everything():
    model = random_rbm(6, 4)
    visibles, hiddens = all_binary(6), all_binary(4)
    energies = np.stack([model.energy(sg.tensor(visibles), sg.tensor(np.repeat(h[None], len(visibles), 0))).numpy()
                         for h in hiddens], axis=1)                                    # (2^V, 2^H)
    np.testing.assert_allclose(model.free_energy(sg.tensor(visibles)).numpy(), -special.logsumexp(-energies, axis=1),
                               rtol=1e-12)
    assert model.log_partition() == pytest.approx(special.logsumexp(-energies), rel=1e-12)


def test_autograd_gradients_are_the_closed_form_cd_statistics():
    """dL/dW = -(<p(h|v) v^T>_data - <p(h|v~) v~^T>_negative), and the same for the biases."""
    model = random_rbm(64, 10, scale=0.1)
    rng = np.random.default_rng(1)
    data, negative = (rng.random((16, 64)) < IMAGES).astype(float), (rng.random((9, 64)) < 0.3).astype(float)
    loss = model.free_energy(sg.tensor(data)).mean() - model.free_energy(sg.tensor(negative)).mean()
    loss.backward()
    W, c = model.weight.numpy(), model.hidden_bias.numpy()

    def statistics(v):
        hidden = special.expit(v @ W.T + c)
        return hidden.T @ v / len(v), v.mean(0), hidden.mean(0)
    for gradient, positive, negative_phase in zip((model.weight.grad, model.visible_bias.grad, model.hidden_bias.grad),
                                                  statistics(data), statistics(negative)):
        np.testing.assert_allclose(gradient.numpy(), -(positive - negative_phase), rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("method", ["pcd", "cd"])
def test_training_steps_equal_the_pytorch_twin(torch, method):
    """Two steps (so momentum's buffer is used) of CD-2 / PCD-2 with the same uniforms: loss, every
    gradient, every parameter after the update and the persistent chains equal the twin's."""
    from scratchgen.benchmarks.peers.rbm import build, training_step
    config = RBMConfig(hidden=12, method=method, gibbs_steps=2, batch_size=16, lr=0.1, weight_decay=0.01)
    model = random_rbm(64, 12, scale=0.3)
    if method == "pcd":
        model.register_buffer("chains", sg.tensor((np.random.default_rng(2).random((16, 64)) < 0.5).astype(float)))
    twin, twin_optimizer = build(config, visible=64)
    twin = twin.double()
    twin.load_state_dict({name: torch.from_numpy(array.copy()) for name, array in model.state_dict().items()})
    optimizer = optim.SGD([{"params": [model.weight], "weight_decay": config.weight_decay},
                           {"params": [model.visible_bias, model.hidden_bias], "weight_decay": 0.0}],
                          lr=config.lr, momentum=config.momentum)  # as RBMRecipe builds it
    rng = np.random.default_rng(3)
    for step in range(2):
        data = (rng.random((16, 64)) < IMAGES).astype(float)
        uniforms = [(rng.random((16, 12)), rng.random((16, 64))) for _ in range(2)]
        start = model.chains if method == "pcd" else sg.tensor(data)
        loss, negative = contrastive_divergence(model, sg.tensor(data), start, 2,
                                                [tuple(sg.tensor(u) for u in pair) for pair in uniforms])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if method == "pcd":
            model.chains.data[...] = negative.data
        expected = training_step(twin, twin_optimizer, torch.from_numpy(data), 2, method == "pcd",
                                 [tuple(torch.from_numpy(u) for u in pair) for pair in uniforms])
        assert loss.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert_parameters_equal_the_twins(model, twin, when=f" at step {step + 1}")
    if method == "pcd":
        np.testing.assert_array_equal(model.chains.numpy(), twin.chains.numpy())


def test_ais_agrees_with_the_exact_log_partition_function():
    """A 64 x 12 RBM with digit-like structure (one short PCD training), so log Z is not trivial."""
    sg.manual_seed(0)
    recipe = RBMRecipe(RBMConfig(hidden=12, epochs=3, lr=0.1), load_digits_split())
    train_images = load_digits_split().train_images
    for step, start in enumerate(range(0, 1340, 20)):  # one epoch
        recipe.before_step(Clock(step, 0, step, 67))
        recipe.train_step((sg.tensor(train_images[start:start + 20]),), Clock(step, 0, step, 67))
    exact = recipe.model.log_partition()
    estimate, error = recipe.model.annealed_log_partition(runs=64, steps=1000, base_visible_bias=recipe.base_visible_bias)
    assert 0 < error < 0.05
    assert abs(estimate - exact) < 4 * error + 0.01, (estimate, exact, error)  # 0.01: AIS's small downward bias
    crude, crude_error = recipe.model.annealed_log_partition(runs=64, steps=10)
    assert crude_error > error  # fewer intermediate distributions: visibly noisier weights


def test_recipe_reports_the_exact_log_likelihood_when_hidden_units_are_few():
    sg.manual_seed(0)
    recipe = RBMRecipe(RBMConfig(hidden=5), load_digits_split())
    report = recipe.evaluate(load_digits_split())
    v = sg.tensor(binarised_test_images().reshape(-1, 64))
    expected = (-recipe.model.free_energy(v)).numpy().mean() - recipe.model.log_partition()
    assert report["log_partition_method"] == "exact"
    assert report["test_log_likelihood"] == pytest.approx(expected, rel=1e-6)
    assert report["test_bits_per_pixel"] == pytest.approx(-expected / (64 * np.log(2)), rel=1e-6)


def test_gibbs_blocks_visit_visible_states_in_proportion_to_the_exact_marginal():
    """A 4 x 3 RBM: the final states of 3,000 independent chains against p(v) = exp(-F(v)) / Z."""
    recipe = RBMRecipe(RBMConfig(hidden=3), load_digits_split().subset(train=10))
    recipe.model = random_rbm(4, 3, scale=1.5, seed=4, dtype=np.float32)
    from scratchgen import mcmc
    start = np.zeros((3000, 7))
    final = mcmc.gibbs(recipe.gibbs_blocks(), start, 1, seed=5, burn_in=50).samples[-1, :, :4]
    states = all_binary(4)
    probabilities = np.exp(-recipe.model.free_energy(sg.tensor(states)).numpy().astype(float)
                           - recipe.model.log_partition())
    assert probabilities.sum() == pytest.approx(1.0, rel=1e-5)
    counts = np.bincount((final @ 2 ** np.arange(3, -1, -1)).astype(int), minlength=16)
    assert stats.chisquare(counts, probabilities / probabilities.sum() * 3000).pvalue > 1e-3


def test_relaxed_log_density_is_the_change_of_variables():
    model = random_rbm(5, 3)
    u = np.random.default_rng(6).normal(scale=2, size=(7, 5))
    v = special.expit(u)
    expected = -model.free_energy(sg.tensor(v)).numpy() + np.log(v * (1 - v)).sum(1)
    np.testing.assert_allclose(relaxed_log_density(model)(sg.tensor(u)).numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("sampler", ["gibbs", "mala"])
def test_samples_are_images_in_the_unit_interval(sampler):
    sg.manual_seed(0)
    recipe = RBMRecipe(RBMConfig(hidden=16), load_digits_split())
    images, result = recipe.run_chains(30, sampler, chains=10, burn_in=20, thin=2)
    assert images.shape == (30, 8, 8) and images.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    assert result.samples.shape[:2] == (3, 10)
    assert (result.acceptance_rate == 1.0) == (sampler == "gibbs")
    with pytest.raises(ValueError, match="sampler 'gibbs' or 'mala'"):
        recipe.sample(3, sampler="hmc")


def test_pcd_chains_are_checkpointed_and_move():
    sg.manual_seed(0)
    recipe = RBMRecipe(RBMConfig(hidden=8, batch_size=16), load_digits_split())
    before = recipe.model.chains.numpy().copy()
    recipe.before_step(Clock(0, 0, 0, 10))
    losses = recipe.train_step((sg.tensor(IMAGES.reshape(16, 8, 8)),), Clock(0, 0, 0, 10))
    assert set(losses) == {"loss", "reconstruction"}
    assert "chains" in recipe.state_dict()["model"]
    assert not np.array_equal(before, recipe.model.chains.numpy())
    assert "chains" not in RBMRecipe(RBMConfig(hidden=8, method="cd"), load_digits_split()).state_dict()["model"]


def test_the_binarised_test_split_is_fixed_and_scored_in_nats():
    images = binarised_test_images()
    assert images.shape == (450, 8, 8) and set(np.unique(images)) == {0.0, 1.0}
    assert images is binarised_test_images() and not images.flags.writeable
    grey = load_digits_split().test_images
    assert abs(images.mean() - grey.mean()) < 0.01                        # one Bernoulli draw per pixel
    coin = binary_test_log_likelihood(lambda v: np.full(len(v), -64 * np.log(2)))
    assert coin["test_log_likelihood"] == pytest.approx(-64 * np.log(2)) and coin["test_bits_per_pixel"] == 1.0
    with pytest.raises(ValueError, match="expected 450 finite log-probabilities"):
        binary_test_log_likelihood(lambda v: np.full(len(v), np.nan))


@pytest.mark.parametrize("changes, message", [
    ({"method": "gibbs"}, "method 'pcd' or 'cd'"),
    ({"hidden": 0}, "hidden >= 1"),
    ({"momentum": 1.0}, "momentum in [0, 1)"),
])
def test_bad_config_values_are_refused(changes, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(")", r"\)").replace("(", r"\(")):
        dataclasses.replace(RBMConfig(), **changes)
