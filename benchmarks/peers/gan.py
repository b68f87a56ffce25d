"""The PyTorch twin of ``scratchgen.models.gan``: the same DCGAN generator and discriminator, the
same three losses and the same training step, written as one would in PyTorch, with the same
parameter names (``generator.0.weight``, ``discriminator.3.running_mean``, ...).

    twin, optimizers = build(config, side=8)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_gan.state_dict().items()})
    losses = training_step(twin, optimizers, real, noise, mix, gp_weight)   # = adversarial_step's

``twin_training_step`` and ``twin_sampler`` are the benchmark suite's entry points (see
``peers/__init__.py``): the recipe's whole step (noise, both updates, the weight average) and its
sampler (BatchNorm statistics estimated for the averaged weights, then one batch).
"""
import copy

import math

import torch
from torch import nn
from torch.nn import functional as F

KERNEL = 4


def _doublings(side):
    return int(math.log2(side // 2))


def generator(latent_dim, channels, side):
    width = channels * 2 ** _doublings(side)
    layers = [nn.ConvTranspose2d(latent_dim, width, 2, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    for _ in range(_doublings(side) - 1):
        layers += [nn.ConvTranspose2d(width, width // 2, KERNEL, 2, 1, bias=False),
                   nn.BatchNorm2d(width // 2), nn.ReLU()]
        width //= 2
    return nn.Sequential(*layers, nn.ConvTranspose2d(width, 1, KERNEL, 2, 1), nn.Tanh())


def discriminator(channels, side, norm="batch"):
    layers, width = [nn.Conv2d(1, channels, KERNEL, 2, 1), nn.LeakyReLU(0.2)], channels
    for _ in range(_doublings(side) - 1):
        norm_layer = nn.BatchNorm2d(2 * width) if norm == "batch" else nn.GroupNorm(1, 2 * width)
        layers += [nn.Conv2d(width, 2 * width, KERNEL, 2, 1, bias=False), norm_layer, nn.LeakyReLU(0.2)]
        width *= 2
    return nn.Sequential(*layers, nn.Conv2d(width, 1, 2, 1, 0))


class TorchDCGAN(nn.Module):
    def __init__(self, side=16, latent_dim=32, channels=32, loss="nonsat"):
        super().__init__()
        self.loss = loss
        self.generator = generator(latent_dim, channels, side)
        self.discriminator = discriminator(channels, side, "layer" if loss == "wgan-gp" else "batch")

    def score(self, images):
        return self.discriminator(images).view(-1)

    def discriminator_loss(self, real, fake, mix=None, gp_weight=10.0):
        real_scores, fake_scores = self.score(real), self.score(fake)
        if self.loss == "nonsat":
            ones, zeros = torch.ones_like(real_scores), torch.zeros_like(fake_scores)
            return (F.binary_cross_entropy_with_logits(real_scores, ones)
                    + F.binary_cross_entropy_with_logits(fake_scores, zeros))
        if self.loss == "hinge":
            return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
        mixed = (mix * real + (1 - mix) * fake).requires_grad_(True)
        (slopes,) = torch.autograd.grad(self.score(mixed).sum(), mixed, create_graph=True)
        penalty = ((slopes.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
        return fake_scores.mean() - real_scores.mean() + gp_weight * penalty

    def generator_loss(self, fake):
        scores = self.score(fake)
        if self.loss == "nonsat":
            return F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))
        return -scores.mean()


def build(config, side):
    """The twin of a ``GANConfig`` and its two Adam optimizers (weights: PyTorch's own init;
    load scratchgen's ``state_dict`` to compare the two)."""
    twin = TorchDCGAN(side, config.latent_dim, config.channels, config.loss)
    betas = (config.beta1, config.beta2)
    optimizers = {"discriminator": torch.optim.Adam(twin.discriminator.parameters(), config.lr, betas=betas),
                  "generator": torch.optim.Adam(twin.generator.parameters(), config.lr, betas=betas)}
    return twin, optimizers


def training_step(twin, optimizers, real, noise, mix=None, gp_weight=10.0):
    """A discriminator step on ``real`` and G(noise), then a generator step on the same G(noise)
    with the discriminator frozen; returns (d_loss, g_loss) as floats."""
    fake = twin.generator(noise)
    d_loss = twin.discriminator_loss(real, fake.detach(), mix, gp_weight)
    optimizers["discriminator"].zero_grad()
    d_loss.backward()
    optimizers["discriminator"].step()

    twin.discriminator.requires_grad_(False)
    g_loss = twin.generator_loss(fake)
    optimizers["generator"].zero_grad()
    g_loss.backward()
    optimizers["generator"].step()
    twin.discriminator.requires_grad_(True)
    return d_loss.item(), g_loss.item()


def twin_training_step(recipe, batch):
    """The benchmark suite's twin step (see ``peers/__init__.py``): ``training_step`` with the
    recipe's config and weights on ``batch[0]``, (N, S, S) images in [0, 1], fresh noise each step."""
    config = recipe.config
    twin, optimizers = build(config, side=recipe.image_shape[0])
    twin.load_state_dict({name: torch.as_tensor(value) for name, value in recipe.model.state_dict().items()})
    real = torch.as_tensor(batch[0])[:, None] * 2 - 1                     # (N, 1, S, S) in [-1, 1]

    def step():
        noise = torch.randn(len(real), config.latent_dim, 1, 1)
        mix = torch.rand(len(real), 1, 1, 1) if config.loss == "wgan-gp" else None
        return training_step(twin, optimizers, real, noise, mix, config.gp_weight)
    return step


# ---- the benchmark suite's entry points ------------------------------------------------------------
def _twin_of(recipe):
    twin, optimizers = build(recipe.config, recipe.config.image_size)
    twin.load_state_dict({name: torch.from_numpy(array) for name, array in recipe.model.state_dict().items()})
    return twin, optimizers


def twin_training_step(recipe, batch):
    """``step()``: what ``GANRecipe.train_step`` does, on ``batch`` ((N, S, S) images in [0, 1], ...)."""
    config = recipe.config
    twin, optimizers = _twin_of(recipe)
    average = copy.deepcopy(twin.generator).requires_grad_(False)
    real = torch.from_numpy(batch[0]).unsqueeze(1) * 2 - 1
    count = len(real)

    def step():
        noise = torch.randn(count, config.latent_dim, 1, 1)
        mix = torch.rand(count, 1, 1, 1) if config.loss == "wgan-gp" else None
        training_step(twin, optimizers, real, noise, mix, config.gp_weight)
        with torch.no_grad():
            for shadow, weight in zip(average.parameters(), twin.generator.parameters()):
                shadow.lerp_(weight, 1 - config.ema_decay)
    return step


def twin_sampler(recipe, n, statistics_batch=1024):
    """``draw()``: ``n`` images in [0, 1] from the (averaged) generator, BatchNorm statistics first
    estimated on ``statistics_batch`` noise vectors, as ``GANRecipe.generate`` does."""
    generator = _twin_of(recipe)[0].generator
    latent = recipe.config.latent_dim
    norms = [layer for layer in generator.modules() if isinstance(layer, nn.BatchNorm2d)]

    @torch.no_grad()
    def draw():
        for layer in norms:
            layer.momentum = 1.0
        generator.train()(torch.randn(statistics_batch, latent, 1, 1))
        images = generator.eval()(torch.randn(n, latent, 1, 1))[:, 0]
        return ((images + 1) / 2).clamp(0, 1)
    return draw
