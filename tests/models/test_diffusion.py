"""The diffusion model: the forward process's statistics, one training step against the PyTorch
twin, the samplers on a Gaussian toy with an analytic denoiser, guidance, and the CLI end to end."""
import dataclasses
import math

import numpy as np
import pytest

import scratchgen as sg
from scratchgen import cli
from scratchgen.data import load_digits_split
from scratchgen.models import Clock
from scratchgen.models.diffusion import (NUM_CLASSES, DiffusionConfig, DiffusionRecipe, GaussianDiffusion,
                                         UNet, cosine_betas, guided_denoiser, linear_betas)
from twin_checks import assert_parameters_equal_the_twins

SMALL = dict(channels=8, groups=4, heads=2)


def small_config(**changes):
    return dataclasses.replace(DiffusionConfig(**SMALL), **changes)


# ---- schedules and the forward process -----------------------------------------------------------
def test_linear_schedule_is_ho_et_al_at_1000_steps_and_rescaled_for_fewer():
    betas = linear_betas(1000)
    assert betas.dtype == np.float64 and betas[0] == pytest.approx(1e-4) and betas[-1] == pytest.approx(0.02)
    short = linear_betas(100)
    assert short[0] == pytest.approx(1e-3) and short[-1] == pytest.approx(0.2)
    # the rescaling keeps the end point of the forward process about as noisy
    assert np.prod(1 - short) == pytest.approx(np.prod(1 - betas), abs=1e-4)


def test_cosine_schedule_follows_its_definition():
    timesteps = 200
    diffusion = GaussianDiffusion(cosine_betas(timesteps))
    t = np.arange(1, timesteps + 1)
    f = np.cos((t / timesteps + 0.008) / 1.008 * np.pi / 2) ** 2 / np.cos(0.008 / 1.008 * np.pi / 2) ** 2
    unclipped = diffusion.betas < 0.999
    np.testing.assert_allclose(diffusion.alphas_cumprod[unclipped], f[unclipped], rtol=1e-12)
    assert np.all(np.diff(diffusion.alphas_cumprod) < 0) and diffusion.alphas_cumprod[-1] < 1e-4


@pytest.mark.parametrize("schedule", [linear_betas, cosine_betas])
def test_q_sample_matches_the_closed_form_mean_and_variance(schedule):
    diffusion = GaussianDiffusion(schedule(1000))
    draws = 20000
    x0 = sg.tensor(np.tile(np.array([-1.0, -0.3, 0.5, 1.0]), (draws, 1)))                 # (draws, 4)
    for t in (0, 250, 600, 999):
        sg.manual_seed(t)
        x_t = diffusion.q_sample(x0, np.full(draws, t), sg.randn(draws, 4, dtype=sg.float64)).numpy()
        abar = diffusion.alphas_cumprod[t]
        mean, variance = math.sqrt(abar) * x0.numpy()[0], 1 - abar
        standard_error = math.sqrt(variance / draws)
        np.testing.assert_allclose(x_t.mean(0), mean, atol=5 * standard_error, err_msg=f"t={t}")
        np.testing.assert_allclose(x_t.var(0), variance, rtol=5 * math.sqrt(2 / draws), err_msg=f"t={t}")


# ---- one training step against the twin ----------------------------------------------------------
def perturb(model, seed=0):
    """Replace every parameter by a random draw: the zero-initialised layers would otherwise stop
    most gradients at exactly zero, and a comparison of zeros checks nothing."""
    rng = np.random.default_rng(seed)
    for parameter in model.parameters():
        parameter.data[...] = rng.normal(0, 0.3, parameter.shape)


@pytest.mark.parametrize("config", [
    small_config(),
    small_config(levels=3, res_blocks=2, schedule="linear", timesteps=100),
], ids=["2-levels-cosine", "3-levels-2-blocks-linear"])
def test_training_step_loss_and_every_gradient_equal_the_pytorch_twin(torch, config):
    from scratchgen.benchmarks.peers.diffusion import TorchUNet, schedule_betas, training_loss
    sg.manual_seed(0)
    model = UNet.from_config(config).double()
    perturb(model)
    twin = TorchUNet.from_config(config).double()
    twin.load_state_dict({name: torch.from_numpy(array) for name, array in model.state_dict().items()})
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in twin.parameters())

    rng = np.random.default_rng(1)
    images = load_digits_split().train_images[:12].astype(np.float64)
    x0 = images.reshape(12, 1, 8, 8) * 2 - 1
    t = rng.integers(0, config.timesteps, 12)
    noise = rng.normal(size=x0.shape)
    labels = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, NUM_CLASSES, NUM_CLASSES])  # two null-class labels

    diffusion = GaussianDiffusion.from_config(config)
    loss = diffusion.loss(model, sg.tensor(x0), sg.tensor(t), sg.tensor(noise), sg.tensor(labels))
    loss.backward()
    expected = training_loss(twin, schedule_betas(config.schedule, config.timesteps), torch.from_numpy(x0),
                             torch.from_numpy(t), torch.from_numpy(noise), torch.from_numpy(labels))
    expected.backward()

    assert loss.item() == pytest.approx(expected.item(), rel=1e-10)
    for name, parameter in model.named_parameters():
        assert np.abs(parameter.grad.numpy()).max() > 0, name
    assert_parameters_equal_the_twins(model, twin, rtol=1e-8, atol=1e-11, values=False)


def test_guided_ddim_sampling_equals_the_twins(torch):
    from scratchgen.benchmarks.peers import diffusion as peer
    config = small_config(timesteps=100)
    sg.manual_seed(0)
    model = UNet.from_config(config).double()
    perturb(model)
    twin = peer.TorchUNet.from_config(config).double()
    twin.load_state_dict({name: torch.from_numpy(array) for name, array in model.state_dict().items()})
    x_T = np.random.default_rng(2).normal(size=(6, 1, 8, 8))
    labels = np.array([3, 3, 0, 9, 1, 7])
    ours = GaussianDiffusion.from_config(config).sample(guided_denoiser(model, sg.tensor(labels), 2.0),
                                                          sg.tensor(x_T), steps=5)
    theirs = peer.ddim_sample(peer.guided_denoiser(twin, torch.from_numpy(labels), 2.0),
                              peer.schedule_betas("cosine", 100), torch.from_numpy(x_T), steps=5)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-9, atol=1e-11)


def test_the_benchmark_suites_twin_step_and_sampler_run(torch):
    from scratchgen.benchmarks.peers import diffusion as peer
    data = load_digits_split()
    recipe = DiffusionRecipe(small_config(timesteps=20, sample_steps=2), data)
    step = peer.twin_training_step(recipe, (data.train_images[:8], data.train_labels[:8]))
    assert np.isfinite(step())
    for options in ({}, {"sampler": "ddpm", "class_": "none"}, {"class_": "4", "guidance": 2.0}):
        samples = peer.twin_sampler(recipe, 3, **options)()
        assert samples.shape == (3, 8, 8) and 0 <= float(samples.min()) <= float(samples.max()) <= 1


def test_a_fresh_unet_predicts_zero_noise_and_zero_init_covers_the_last_layers():
    model = UNet.from_config(small_config())
    x = sg.randn(3, 1, 8, 8)
    out = model(x, sg.tensor([0, 10, 999]), sg.tensor([1, 2, NUM_CLASSES]))
    assert out.shape == (3, 1, 8, 8) and not np.any(out.numpy())
    zeroed = [name for name, p in model.named_parameters() if p.numel() > 0 and not np.any(p.numpy())]
    assert {"head.2.weight", "middle.1.proj.weight"} <= set(zeroed)
    assert all(f"{name}.conv2.weight" in zeroed for name, module in model.named_modules()
               if type(module).__name__ == "ResidualBlock")


# ---- samplers on a Gaussian toy ------------------------------------------------------------------
MU, SIGMA = 0.4, 0.5   # the toy data: x0 ~ N(MU, SIGMA^2) in one dimension


def gaussian_denoiser(diffusion):
    """The exact E[eps | x_t] for x0 ~ N(MU, SIGMA^2): x_t = a x0 + b eps, so
    E[eps | x_t] = b (x_t - a MU) / (a^2 SIGMA^2 + b^2) — the optimal denoiser, no training."""
    def denoise(x, t):
        a, b = math.sqrt(diffusion.alphas_cumprod[t]), math.sqrt(1 - diffusion.alphas_cumprod[t])
        return b * (x - a * MU) / (a * a * SIGMA ** 2 + b * b)
    return denoise


def toy_samples(diffusion, sampler, seed, draws=20000, **options):
    sg.manual_seed(seed)
    x = sg.randn(draws, dtype=sg.float64)
    return diffusion.sample(gaussian_denoiser(diffusion), x, sampler=sampler, clip=False, **options).numpy()


def test_ddim_with_eta_one_over_all_steps_matches_the_ancestral_sampler():
    diffusion = GaussianDiffusion(linear_betas(1000))
    ancestral = toy_samples(diffusion, "ddpm", seed=1)
    ddim = toy_samples(diffusion, "ddim", seed=2, steps=1000, eta=1.0)
    draws = len(ancestral)
    assert abs(ddim.mean() - ancestral.mean()) < 5 * SIGMA * math.sqrt(2 / draws)
    assert ddim.var() == pytest.approx(ancestral.var(), rel=5 * 2 / math.sqrt(draws))
    for samples in (ancestral, ddim):  # and both reach the data distribution
        assert abs(samples.mean() - MU) < 5 * SIGMA / math.sqrt(draws)
        assert samples.var() == pytest.approx(SIGMA ** 2, rel=0.05)
    # one step with the same noise is the same map: the two are one chain written two ways
    x, eps = sg.tensor([-0.7, 0.2, 1.5], dtype=sg.float64), sg.tensor([0.3, -0.1, 0.8], dtype=sg.float64)
    for t in (99, 40, 1, 0):
        sg.manual_seed(7)
        ancestral_step = diffusion.ddpm_step(x, t, eps, clip=False)
        sg.manual_seed(7)
        ddim_step = diffusion.ddim_step(x, t, t - 1, eps, eta=1.0, clip=False)
        np.testing.assert_allclose(ddim_step.numpy(), ancestral_step.numpy(), rtol=1e-12, atol=1e-14)


def test_deterministic_ddim_approaches_the_toy_distribution_as_steps_grow():
    diffusion = GaussianDiffusion(cosine_betas(1000))
    runs = {steps: toy_samples(diffusion, "ddim", seed=3, steps=steps, eta=0.0) for steps in (10, 100, 1000)}
    errors = [abs(samples.var() - SIGMA ** 2) for samples in runs.values()]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01  # first order: coarse steps shrink it
    assert all(abs(samples.mean() - MU) < 0.01 for samples in runs.values())
    np.testing.assert_array_equal(runs[10], toy_samples(diffusion, "ddim", seed=3, steps=10, eta=0.0))


@pytest.mark.parametrize("sampler, steps", [("ddim", 10), ("ddim", 1000), ("ddpm", None)])
def test_a_denoiser_returning_the_true_noise_recovers_x0_exactly(sampler, steps):
    diffusion = GaussianDiffusion(cosine_betas(1000))
    x0 = sg.tensor(np.random.default_rng(0).uniform(-1, 1, (4, 1, 8, 8)))
    eps = sg.randn(4, 1, 8, 8, dtype=sg.float64)
    x_T = diffusion.q_sample(x0, np.full(4, 999), eps)

    def true_noise(x_t, t):  # the noise that takes x0 to x_t in one jump of q(x_t | x_0)
        abar = diffusion.alphas_cumprod[t]
        return (x_t - math.sqrt(abar) * x0) / math.sqrt(1 - abar)

    options = {"steps": steps, "eta": 0.0} if sampler == "ddim" else {}
    recovered = diffusion.sample(true_noise, x_T, sampler=sampler, clip=False, **options)
    np.testing.assert_allclose(recovered.numpy(), x0.numpy(), rtol=0, atol=1e-9)


# ---- guidance, labels, the recipe ----------------------------------------------------------------
def test_guidance_mixes_conditional_and_unconditional_predictions():
    sg.manual_seed(0)
    model = UNet.from_config(small_config())
    perturb(model)
    x, labels = sg.randn(5, 1, 8, 8), sg.tensor([6, 6, 1, 2, 3])
    times = sg.tensor(np.full(5, 300))
    with sg.no_grad():
        conditional = model(x, times, labels).numpy()
        unconditional = model(x, times, sg.tensor(np.full(5, NUM_CLASSES))).numpy()
        for scale in (0.0, 1.0, 2.5):
            guided = guided_denoiser(model, labels, scale)(x, 300).numpy()
            expected = unconditional + scale * (conditional - unconditional)
            np.testing.assert_allclose(guided, expected, rtol=1e-4, atol=1e-5)
        unguided = guided_denoiser(model, None, 3.0)(x, 300).numpy()  # no labels: unconditional, whatever w
        np.testing.assert_allclose(unguided, unconditional, atol=1e-6)


def test_label_dropout_replaces_about_that_share_with_the_null_class():
    sg.manual_seed(0)
    recipe = DiffusionRecipe(small_config(label_dropout=0.25), load_digits_split())
    labels = sg.tensor(np.arange(4000) % NUM_CLASSES)
    dropped = recipe.drop_labels(labels).numpy()
    share = (dropped == NUM_CLASSES).mean()
    assert share == pytest.approx(0.25, abs=0.03)
    kept = dropped != NUM_CLASSES
    np.testing.assert_array_equal(dropped[kept], labels.numpy()[kept])


def test_training_step_learns_and_the_ema_follows():
    sg.manual_seed(0)
    data = load_digits_split()
    recipe = DiffusionRecipe(small_config(warmup_steps=1), data)
    batch = recipe.to_tensors((data.train_images[:32], data.train_labels[:32]))
    before = recipe.ema.state_dict()
    losses = []
    for step in range(8):
        recipe.before_step(Clock(step, 0, step, 10))
        losses.append(recipe.train_step(batch, Clock(step, 0, step, 10))["loss"])
    assert all(np.isfinite(losses)) and np.mean(losses[-3:]) < losses[0]
    after = recipe.ema.state_dict()
    assert any(not np.array_equal(before[name], after[name]) for name in before)


@pytest.mark.parametrize("options", [dict(sampler="ddim", steps=3, eta=0.5, class_="6", guidance=2.0),
                                     dict(sampler="ddim", steps=2, class_="all"),
                                     dict(sampler="ddim", steps=2),  # labels drawn from p(y)
                                     dict(sampler="ddpm")])
def test_samples_are_seeded_images_in_the_unit_interval(options):
    recipe = DiffusionRecipe(small_config(timesteps=20), load_digits_split())
    sg.manual_seed(3)
    samples = recipe.sample(4, progress=False, **options)
    assert samples.shape == (4, 8, 8) and samples.dtype == np.float32
    assert 0 <= samples.min() <= samples.max() <= 1
    sg.manual_seed(3)
    np.testing.assert_array_equal(samples, recipe.sample(4, progress=False, **options))


def test_trajectory_runs_from_noise_to_the_sample():
    recipe = DiffusionRecipe(small_config(timesteps=50), load_digits_split())
    pictures, times = recipe.trajectory(rows=4, steps=6)
    assert pictures.shape == (4, NUM_CLASSES, 8, 8) and times[0] == 50 and times[-1] == -1


@pytest.mark.parametrize("changes, message", [
    ({"schedule": "quadratic"}, "schedule 'linear' or 'cosine'"),
    ({"timesteps": 1}, "timesteps >= 2"),
    ({"channels": 12, "groups": 8}, "divisible by groups and heads"),
    ({"label_dropout": 1.5}, "label_dropout and ema_decay in"),
])
def test_bad_config_values_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        DiffusionConfig(**changes)


def test_cli_dry_run_then_class_conditional_sampling(tmp_path):
    run = str(tmp_path / "run")
    tiny = ["--channels", "8", "--groups", "4", "--heads", "2", "--timesteps", "50", "--sample-steps", "3"]
    assert cli.main(["train", "diffusion", "--dry-run", "--out", run, *tiny]) == 0
    for name in ("last.npz", "samples.png", "class_grid.png", "trajectory.png", "loss.png"):
        assert (tmp_path / "run" / name).exists(), name
    out = str(tmp_path / "sixes.npy")
    assert cli.main(["sample", "diffusion", "--checkpoint", run, "--n", "5", "--out", out, "--class", "6",
                     "--guidance", "2.0", "--steps", "4"]) == 0
    assert np.load(out).shape == (5, 8, 8)
    args = cli.build_parser().parse_args(["eval", "diffusion", "--checkpoint", run, "--sampler", "ddpm",
                                          "--class", "all", "--guidance", "3"])
    assert cli.sample_options(args, "diffusion") == {"sampler": "ddpm", "class_": "all", "guidance": 3.0}
    refused = ["sample", "diffusion", "--checkpoint", run, "--n", "2", "--out", out, "--class", "12"]
    assert cli.main(refused) == 2
