"""``scratchgen train vae``: a variational autoencoder (Kingma & Welling 2014) on the digits.

The model
    q(z|x) = N(mu(x), diag sigma(x)^2)       the encoder outputs (mu, log sigma^2)
    p(z)   = sum_k pi_k N(m_k, diag s_k^2)   a learned mixture of Gaussians (the default), or N(0, I)
    p(x|z) = N(f(z), s^2)                    per pixel, one learned scale s (the default), or
             Bernoulli(sigmoid(f(z)))        per pixel (grey levels read as probabilities)

The loss: the negative evidence lower bound, summed over pixels and latent dimensions (so it is
in nats per image) and averaged over the batch:

    -ELBO(x) = E_q[-log p(x|z)] + KL(q(z|x) || p(z))
             ~ -log p(x | z = mu + sigma * eps)           one sample, eps ~ N(0, I): the
                                                          reparameterisation makes it differentiable
             + KL                                         N(0, I): 1/2 sum_j (mu_j^2 + sigma_j^2 - 1
                                                          - log sigma_j^2), in closed form; mixture:
                                                          log q(z|x) - log p(z) at the same sample

KL warm-up (optional) trains on reconstruction + beta * KL with beta rising linearly from 0 to
1 over the first ``kl_warmup_epochs`` epochs; every *reported* -ELBO uses beta = 1.

The importance-weighted bound (Burda et al. 2016), reported at the end with k = 64, is tighter:

    log p(x) >= log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),     z_i ~ q(z|x)

Samples decode z ~ p(z) and show the decoder's mean image (the Gaussian mean clipped to [0, 1],
or the Bernoulli probabilities) rather than pixel noise — VAE samples are blurry by nature: the
mean of p(x|z) averages over every digit that z could have come from. Why the mixture prior: see
``MixturePrior``; docs/vae.md has the numbers.
"""
import dataclasses
import math
import typing

import numpy as np

from .. import functional as F
from .. import nn, optim
from ..autograd import no_grad
from ..ops.reduction import logsumexp
from ..random import generator
from ..tensor import randn, tensor
from .base import Recipe, TrainConfig, option, register

LOG_2PI = math.log(2 * math.pi)
# The Gaussian likelihood's log s starts at -2 (s ~ 0.14, about where training ends). From s = 1,
# Adam at lr 1e-3 takes ~2,000 steps (50 epochs) just to walk there, all the while weighting the
# reconstruction 50x too lightly; starting near the end gave better samples in half the epochs.
INITIAL_LOG_SCALE = -2.0


@dataclasses.dataclass
class VAEConfig(TrainConfig):
    epochs: int = option(100, "100 x 43 steps: about a minute on one core")
    batch_size: int = option(32, "images per step")
    lr: float = option(1e-3, "Adam's learning rate")
    architecture: typing.Literal["mlp", "conv"] = option("mlp", '"conv": two stride-2 convolutions each way')
    likelihood: typing.Literal["gaussian", "bernoulli"] = option("gaussian", "p(x|z), per pixel")
    latent_dim: int = option(8, "dimensions of z")
    hidden: int = option(256, "MLP: width of both hidden layers")
    channels: int = option(32, "conv: channels of layer 1 (twice as many in 2)")
    kl_warmup_epochs: float = option(10.0, "beta: 0 -> 1 over these epochs (0: no warm-up)")
    prior: typing.Literal["mixture", "normal"] = option("mixture",
                                                        "p(z): a learned Gaussian mixture, or N(0, I)")
    prior_components: int = option(20, "mixture prior: number of Gaussians")
    iwae_samples: int = option(64, "k of the final importance-weighted bound")

    def __post_init__(self):
        if self.architecture not in ("mlp", "conv"):
            raise ValueError(f"vae: expected architecture 'mlp' or 'conv', got {self.architecture!r}")
        if self.likelihood not in ("bernoulli", "gaussian"):
            raise ValueError(f"vae: expected likelihood 'bernoulli' or 'gaussian', got {self.likelihood!r}")
        if self.prior not in ("normal", "mixture"):
            raise ValueError(f"vae: expected prior 'normal' or 'mixture', got {self.prior!r}")
        if self.latent_dim < 1 or self.iwae_samples < 1 or self.kl_warmup_epochs < 0:
            raise ValueError(f"vae: expected latent_dim >= 1, iwae_samples >= 1 and kl_warmup_epochs >= 0, "
                             f"got {self.latent_dim}, {self.iwae_samples}, {self.kl_warmup_epochs}")


# ---- modules -------------------------------------------------------------------------------------
def mlp_encoder(pixels, hidden, latent_dim):
    """(N, 1, S, S) -> (N, 2 latent_dim): mu and log sigma^2 side by side."""
    return nn.Sequential(nn.Flatten(), nn.Linear(pixels, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))


def mlp_decoder(latent_dim, hidden, side):
    """(N, latent_dim) -> (N, 1, S, S): per-pixel logits (Bernoulli) or means (Gaussian)."""
    return nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, side * side), nn.Unflatten(1, (1, side, side)))


def conv_encoder(side, channels, latent_dim):
    """(N, 1, S, S) -> conv 3x3 stride 2 (S/2) -> conv 3x3 stride 2 (S/4) -> linear -> (N, 2 latent_dim)."""
    quarter = side // 4
    return nn.Sequential(nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(2 * channels * quarter * quarter, 2 * latent_dim))


def conv_decoder(latent_dim, channels, side):
    """(N, latent_dim) -> linear -> (2C, S/4, S/4) -> transposed conv 4x4 stride 2, twice -> (N, 1, S, S)."""
    quarter = side // 4
    return nn.Sequential(nn.Linear(latent_dim, 2 * channels * quarter * quarter), nn.ReLU(),
                         nn.Unflatten(1, (2 * channels, quarter, quarter)),
                         nn.ConvTranspose2d(2 * channels, channels, 4, stride=2, padding=1), nn.ReLU(),
                         nn.ConvTranspose2d(channels, 1, 4, stride=2, padding=1))


# ---- priors --------------------------------------------------------------------------------------
def log_posterior(noise, log_variance):
    """log q(z|x) at z = mu + sigma * noise, summed over latent dims: sum_j log N(z_j; mu_j, sigma_j^2)."""
    return -0.5 * (noise * noise + log_variance + LOG_2PI).sum(dim=-1)


class NormalPrior(nn.Module):
    """p(z) = N(0, I): the KL from q(z|x) has a closed form."""

    def __init__(self, latent_dim):
        super().__init__()
        self.latent_dim = latent_dim

    def log_density(self, z):
        return -0.5 * (z * z + LOG_2PI).sum(dim=-1)

    def kl(self, mu, log_variance, z, noise):
        return 0.5 * (mu * mu + log_variance.exp() - 1 - log_variance).sum(dim=-1)

    def sample(self, count, device):
        return randn(count, self.latent_dim, device=device)


class MixturePrior(nn.Module):
    """p(z) = sum_k pi_k N(z; m_k, diag s_k^2), pi = softmax(logits); means, scales and weights are
    learned with the rest. A standard normal prior leaves "holes": the encoder clusters the digits,
    and z ~ N(0, I) often lands between clusters, where the decoder draws blends. A mixture can
    follow the clusters. Its KL has no closed form: KL ~ log q(z|x) - log p(z) at the sampled z
    (unbiased, like the reconstruction term)."""

    def __init__(self, latent_dim, components):
        super().__init__()
        self.latent_dim = latent_dim
        self.means = nn.Parameter(randn(components, latent_dim))                    # (K, latent)
        self.log_scales = nn.Parameter(np.zeros((components, latent_dim), np.float32))
        self.logits = nn.Parameter(np.zeros(components, np.float32))                # (K,)

    def log_density(self, z):
        """log p(z) for z of shape (..., latent): a log-sum-exp over the K components."""
        standardised = (z.unsqueeze(-2) - self.means) * (-self.log_scales).exp()    # (..., K, latent)
        log_components = (-0.5 * (standardised * standardised + LOG_2PI) - self.log_scales).sum(dim=-1)
        return logsumexp(log_components + self.logits.log_softmax(-1), dim=-1)

    def kl(self, mu, log_variance, z, noise):
        return log_posterior(noise, log_variance) - self.log_density(z)

    def sample(self, count, device):
        weights = self.logits.softmax(-1).detach().cpu().numpy().astype(np.float64)
        component = generator().choice(len(weights), size=count, p=weights / weights.sum())
        noise = randn(count, self.latent_dim, device=device)
        return self.means[component] + self.log_scales[component].exp() * noise


class VAE(nn.Module):
    def __init__(self, config, side):
        super().__init__()
        if config.architecture == "conv" and side % 4:
            raise ValueError(f"vae: the conv architecture needs an image side divisible by 4, got {side}")
        self.side, self.latent_dim, self.likelihood = side, config.latent_dim, config.likelihood
        if config.architecture == "mlp":
            self.encoder = mlp_encoder(side * side, config.hidden, config.latent_dim)
            self.decoder = mlp_decoder(config.latent_dim, config.hidden, side)
        else:
            self.encoder = conv_encoder(side, config.channels, config.latent_dim)
            self.decoder = conv_decoder(config.latent_dim, config.channels, side)
        if config.likelihood == "gaussian":
            self.log_scale = nn.Parameter(np.full(1, INITIAL_LOG_SCALE, np.float32))  # log s, all pixels
        self.prior = NormalPrior(config.latent_dim) if config.prior == "normal" else \
            MixturePrior(config.latent_dim, config.prior_components)

    def encode(self, images):
        """(N, S, S) images -> mu, log sigma^2, each (N, latent_dim)."""
        statistics = self.encoder(images.reshape(images.shape[0], 1, self.side, self.side))
        return statistics.chunk(2, dim=-1)

    def decode(self, z):
        """(N, latent_dim) -> (N, S, S) decoder outputs: logits (Bernoulli) or means (Gaussian)."""
        return self.decoder(z).reshape(z.shape[0], self.side, self.side)

    def reconstruction_nll(self, images, outputs):
        """-log p(x|z) per image (N,), summed over pixels, in nats."""
        if self.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(outputs, images, reduction="none")
        else:  # 1/2 ((x - m) / s)^2 + log s + 1/2 log 2 pi
            nll = 0.5 * ((images - outputs) * (-self.log_scale).exp()) ** 2 + self.log_scale + 0.5 * LOG_2PI
        return nll.sum(dim=(1, 2))

    def negative_elbo(self, images, noise=None):
        """(reconstruction -log p(x|z), KL(q||p)) per image, each (N,); their sum is -ELBO.

        ``noise`` is eps ~ N(0, I) of shape (N, latent_dim), drawn here when not given.
        """
        mu, log_variance = self.encode(images)
        noise = randn(*mu.shape, dtype=mu.dtype, device=mu.device) if noise is None else noise
        z = mu + (0.5 * log_variance).exp() * noise                                      # (N, latent)
        return self.reconstruction_nll(images, self.decode(z)), self.prior.kl(mu, log_variance, z, noise)

    def importance_weighted_nll(self, images, samples):
        """-log p(x) estimated with ``samples`` importance samples from q(z|x): -(IWAE bound), (N,)."""
        count = images.shape[0]
        mu, log_variance = self.encode(images)
        noise = randn(samples, *mu.shape, dtype=mu.dtype, device=mu.device)               # (k, N, latent)
        z = mu + (0.5 * log_variance).exp() * noise
        log_q = log_posterior(noise, log_variance)                                        # (k, N)
        log_prior = self.prior.log_density(z)                                             # (k, N)
        repeated = images.unsqueeze(0).expand(samples, *images.shape)                    # (k, N, S, S)
        repeated = repeated.reshape(samples * count, *images.shape[1:])
        outputs = self.decode(z.reshape(samples * count, self.latent_dim))
        log_likelihood = -self.reconstruction_nll(repeated, outputs).reshape(samples, count)
        return math.log(samples) - logsumexp(log_likelihood + log_prior - log_q, dim=0)

    def mean_image(self, z):
        """The mean of p(x|z) as an image in [0, 1]: Bernoulli probabilities, or the clipped Gaussian mean."""
        outputs = self.decode(z)
        return outputs.sigmoid() if self.likelihood == "bernoulli" else outputs.clamp(0.0, 1.0)

    def sample(self, count):
        """``count`` mean images decoded from z ~ p(z), (count, S, S)."""
        return self.mean_image(self.prior.sample(count, next(self.parameters()).device))

    def reconstruct(self, images):
        """Mean images decoded from the posterior means mu(x)."""
        return self.mean_image(self.encode(images)[0])


# ---- training, sampling, evaluation --------------------------------------------------------------
@register
class VAERecipe(Recipe):
    name = "vae"
    Config = VAEConfig
    plot_keys = ("nelbo", "test_nelbo")
    evaluation_batch = 50  # test images per pass of the k-sample bound (k x 50 decodes at once)

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        height, width = data.image_shape
        if height != width:
            raise ValueError(f"vae: expected square images, got {data.image_shape}")
        self.model = VAE(config, height).to(self.device)
        self.optimizers = {"model": optim.Adam(self.model.parameters(), lr=config.lr, fused=True)}
        # beta, a 0-d tensor that before_step writes in place: a compiled step reads it on every replay
        self.beta = tensor(np.float32(1.0), device=self.device)

    def kl_weight(self, clock):
        warmup = self.config.kl_warmup_epochs
        return 1.0 if warmup == 0 else min(1.0, clock.epochs_done / warmup)

    def before_step(self, clock):
        self.beta.data[...] = self.kl_weight(clock)

    def train_step(self, batch, clock):
        images = batch[0]
        reconstruction, kl = self.model.negative_elbo(images)
        loss = (reconstruction + self.beta * kl).mean()
        optimizer = self.optimizers["model"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item(), "nelbo": (reconstruction + kl).mean().item(), "kl": kl.mean().item()}

    def _test_batches(self, data):
        for start in range(0, len(data.test_images), self.evaluation_batch):
            yield tensor(data.test_images[start:start + self.evaluation_batch], device=self.device)

    def validate(self, data):
        """Test -ELBO (one noise draw per image) and its two parts, nats per image."""
        reconstruction = kl = 0.0
        with no_grad():
            for images in self._test_batches(data):
                parts = self.model.negative_elbo(images)
                reconstruction += parts[0].sum().item()
                kl += parts[1].sum().item()
        count = len(data.test_images)
        return {"test_nelbo": (reconstruction + kl) / count, "test_reconstruction": reconstruction / count,
                "test_kl": kl / count}

    def evaluate(self, data):
        report = self.validate(data)
        with no_grad():
            total = sum(self.model.importance_weighted_nll(images, self.config.iwae_samples).sum().item()
                        for images in self._test_batches(data))
        report[f"test_iwae_nll_k{self.config.iwae_samples}"] = total / len(data.test_images)
        return report

    def sample(self, n):
        with no_grad():
            return self.model.sample(n).cpu().numpy().astype(np.float32)

    def figures(self, data):
        """``reconstructions.png``: rows of 10 test digits, each row followed by its reconstructions."""
        originals = data.test_images[:40]
        with no_grad():
            reconstructions = self.model.reconstruct(tensor(originals, device=self.device)).cpu().numpy()
        return {"reconstructions": interleaved_rows(originals, reconstructions)}


def interleaved_rows(originals, reconstructions, columns=10):
    """One grid of (N, S, S) images: a row of ``columns`` originals, then the row of their
    reconstructions, and so on."""
    rows = [block for start in range(0, len(originals), columns)
            for block in (originals[start:start + columns], reconstructions[start:start + columns])]
    return np.concatenate(rows)
