"""The PyTorch twin of ``scratchgen.models.vae``: the same encoder, decoder, likelihoods and loss,
written as one would in PyTorch, with the same parameter names (``encoder.1.weight``, ...).

    twin = TorchVAE.from_config(config, side=8)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_vae.state_dict().items()})
    loss = training_loss(twin, images, noise, kl_weight=1.0)   # = the scratchgen step's loss
"""
import math

import torch
from torch import nn
from torch.distributions import Categorical, Independent, MixtureSameFamily, Normal, kl_divergence
from torch.nn import functional as F


class MixturePrior(nn.Module):
    """p(z) = sum_k softmax(logits)_k N(z; means_k, diag exp(log_scales_k)^2)."""

    def __init__(self, latent_dim, components):
        super().__init__()
        self.means = nn.Parameter(torch.randn(components, latent_dim))
        self.log_scales = nn.Parameter(torch.zeros(components, latent_dim))
        self.logits = nn.Parameter(torch.zeros(components))

    def log_prob(self, z):
        components = Independent(Normal(self.means, self.log_scales.exp()), 1)
        return MixtureSameFamily(Categorical(logits=self.logits), components).log_prob(z)


class TorchVAE(nn.Module):
    def __init__(self, architecture="mlp", likelihood="bernoulli", latent_dim=8, hidden=256, channels=32,
                 side=8, prior="normal", prior_components=10):
        super().__init__()
        self.side, self.latent_dim, self.likelihood = side, latent_dim, likelihood
        if architecture == "mlp":
            self.encoder = nn.Sequential(
                nn.Flatten(), nn.Linear(side * side, hidden), nn.ReLU(),
                nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))
            self.decoder = nn.Sequential(
                nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                nn.Linear(hidden, side * side), nn.Unflatten(1, (1, side, side)))
        else:
            quarter = side // 4
            self.encoder = nn.Sequential(
                nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.ReLU(),
                nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU(),
                nn.Flatten(), nn.Linear(2 * channels * quarter * quarter, 2 * latent_dim))
            self.decoder = nn.Sequential(
                nn.Linear(latent_dim, 2 * channels * quarter * quarter), nn.ReLU(),
                nn.Unflatten(1, (2 * channels, quarter, quarter)),
                nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1), nn.ReLU(),
                nn.ConvTranspose2d(channels, 1, 4, stride=2, padding=1))
        if likelihood == "gaussian":
            self.log_scale = nn.Parameter(torch.full((1,), -2.0))  # as scratchgen's INITIAL_LOG_SCALE
        self.prior = MixturePrior(latent_dim, prior_components) if prior == "mixture" else None

    @classmethod
    def from_config(cls, config, side):
        return cls(config.architecture, config.likelihood, config.latent_dim, config.hidden, config.channels,
                   side, config.prior, config.prior_components)

    def encode(self, images):
        return self.encoder(images.view(-1, 1, self.side, self.side)).chunk(2, dim=-1)

    def decode(self, z):
        return self.decoder(z).view(-1, self.side, self.side)

    def reconstruction_nll(self, images, outputs):
        if self.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(outputs, images, reduction="none")
        else:
            nll = (0.5 * ((images - outputs) / self.log_scale.exp()) ** 2 + self.log_scale
                   + 0.5 * math.log(2 * math.pi))
        return nll.sum(dim=(1, 2))

    def forward(self, images, noise):
        """(reconstruction -log p(x|z), KL(q(z|x) || p(z))) per image, with z = mu + sigma * noise: in
        closed form for N(0, I), a one-sample estimate log q(z|x) - log p(z) for the mixture."""
        mu, log_variance = self.encode(images)
        posterior = Normal(mu, torch.exp(0.5 * log_variance))
        z = posterior.mean + posterior.stddev * noise
        if self.prior is None:
            kl = kl_divergence(posterior, Normal(torch.zeros_like(mu), torch.ones_like(mu))).sum(dim=-1)
        else:
            kl = posterior.log_prob(z).sum(dim=-1) - self.prior.log_prob(z)
        return self.reconstruction_nll(images, self.decode(z)), kl


def training_loss(model, images, noise, kl_weight=1.0):
    """The VAE training objective: mean over the batch of reconstruction + kl_weight * KL."""
    reconstruction, kl = model(images, noise)
    return (reconstruction + kl_weight * kl).mean()


def _twin_of(recipe):
    """The twin of a scratchgen VAE recipe, with its config and current weights."""
    twin = TorchVAE.from_config(recipe.config, side=recipe.model.side)
    twin.load_state_dict({name: torch.as_tensor(value) for name, value in recipe.model.state_dict().items()})
    return twin


def twin_training_step(recipe, batch):
    """The benchmark suite's twin step (see ``peers/__init__.py``): one Adam step on ``batch[0]``
    (N, S, S) images with fresh noise, KL weight 1."""
    twin = _twin_of(recipe)
    optimizer = torch.optim.Adam(twin.parameters(), lr=recipe.config.lr)
    images = torch.as_tensor(batch[0])

    def step():
        loss = training_loss(twin, images, torch.randn(len(images), twin.latent_dim))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()
    return step


def twin_sampler(recipe, n):
    """The benchmark suite's twin sampler: ``n`` mean images decoded from z ~ N(0, I)."""
    twin = _twin_of(recipe)

    @torch.no_grad()
    def draw():
        outputs = twin.decode(torch.randn(n, twin.latent_dim))
        return outputs.sigmoid() if twin.likelihood == "bernoulli" else outputs.clamp(0.0, 1.0)
    return draw
