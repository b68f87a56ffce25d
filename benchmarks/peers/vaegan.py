"""The PyTorch twin of ``scratchgen.models.vaegan``: the VAE twin's encoder, the DCGAN twin's
generator (as decoder) and discriminator, the three losses and the simultaneous update, with the
same parameter names (``encoder.0.weight``, ``decoder.1.running_mean``, ``discriminator.3.weight``...).

    twin, optimizers = build(config, side=8)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_vaegan.state_dict().items()})
    losses = training_step(twin, optimizers, images, noise, prior_noise)    # = vaegan_step's

``twin_training_step`` and ``twin_sampler`` are the benchmark suite's entry points (see
``peers/__init__.py``).
"""
import torch
from torch import nn
from torch.nn import functional as F

from .gan import discriminator, generator
from .vae import TorchVAE

NETWORKS = ("encoder", "decoder", "discriminator")


class TorchVAEGAN(nn.Module):
    def __init__(self, config, side):
        super().__init__()
        encoder_channels = 2 * config.channels
        self.encoder = TorchVAE(config.architecture, "gaussian", config.latent_dim, config.hidden,
                                encoder_channels, side).encoder
        self.decoder = generator(config.latent_dim, config.channels, side)
        self.discriminator = discriminator(config.channels, side)
        self.latent_dim, self.gamma, self.kl_weight = config.latent_dim, config.gamma, config.kl_weight
        self.loss = config.loss

    def decode(self, z):
        return self.decoder(z[:, :, None, None])

    def features_and_scores(self, images):
        features = self.discriminator[:-1](images)
        return features, self.discriminator[-1](features).view(-1)


def real_loss(loss, scores):
    if loss == "nonsat":
        return F.binary_cross_entropy_with_logits(scores, torch.ones_like(scores))
    return F.relu(1 - scores).mean()


def fake_loss(loss, scores):
    if loss == "nonsat":
        return F.binary_cross_entropy_with_logits(scores, torch.zeros_like(scores))
    return F.relu(1 + scores).mean()


def fooling_loss(loss, scores):
    """The decoder's adversarial loss: -log D(x) (non-saturating), or -s for the hinge loss."""
    return real_loss(loss, scores) if loss == "nonsat" else -scores.mean()


def build(config, side):
    twin = TorchVAEGAN(config, side)
    optimizers = {name: torch.optim.Adam(getattr(twin, name).parameters(), config.lr, betas=(config.beta1, 0.999))
                  for name in NETWORKS}
    return twin, optimizers


def training_step(twin, optimizers, images, noise, prior_noise):
    """The three losses on one forward pass, each network's gradient from its own loss, then the
    three Adam steps; returns {"encoder", "decoder", "discriminator", "kl", "feature_reconstruction"}."""
    mu, log_variance = twin.encoder(images).chunk(2, dim=-1)
    z = mu + torch.exp(0.5 * log_variance) * noise
    reconstructed, sampled = twin.decode(z), twin.decode(prior_noise)

    real_features, real_scores = twin.features_and_scores(images)
    gan = (real_loss(twin.loss, real_scores) + fake_loss(twin.loss, twin.features_and_scores(reconstructed.detach())[1])
           + fake_loss(twin.loss, twin.features_and_scores(sampled.detach())[1]))
    gradients = {"discriminator": torch.autograd.grad(gan, list(twin.discriminator.parameters()))}

    twin.discriminator.requires_grad_(False)
    reconstructed_features, reconstructed_scores = twin.features_and_scores(reconstructed)
    like = 0.5 * (reconstructed_features - real_features.detach()).flatten(1).pow(2).sum(dim=1).mean()
    fooling = (fooling_loss(twin.loss, reconstructed_scores)
               + fooling_loss(twin.loss, twin.features_and_scores(sampled)[1]))
    twin.discriminator.requires_grad_(True)
    kl = 0.5 * (mu.pow(2) + log_variance.exp() - 1 - log_variance).sum(dim=-1).mean()
    losses = {"encoder": twin.kl_weight * kl + like, "decoder": twin.gamma * like + fooling, "discriminator": gan}
    gradients["encoder"] = torch.autograd.grad(losses["encoder"], list(twin.encoder.parameters()), retain_graph=True)
    gradients["decoder"] = torch.autograd.grad(losses["decoder"], list(twin.decoder.parameters()))
    for name in NETWORKS:
        for parameter, gradient in zip(getattr(twin, name).parameters(), gradients[name]):
            parameter.grad = gradient
        optimizers[name].step()
    return {**{name: value.item() for name, value in losses.items()}, "kl": kl.item(),
            "feature_reconstruction": like.item()}


def _twin_of(recipe):
    twin, optimizers = build(recipe.config, recipe.image_shape[0])
    twin.load_state_dict({name: torch.as_tensor(value) for name, value in recipe.model.state_dict().items()})
    return twin, optimizers


def twin_training_step(recipe, batch):
    """``step()``: what ``VAEGANRecipe.train_step`` does on ``batch[0]`` ((N, S, S) in [0, 1]),
    fresh noise each step, the decoder's weight average included."""
    config = recipe.config
    twin, optimizers = _twin_of(recipe)
    average = [weight.detach().clone() for weight in twin.decoder.parameters()]
    images = torch.as_tensor(batch[0]).unsqueeze(1) * 2 - 1

    def step():
        losses = training_step(twin, optimizers, images, torch.randn(len(images), config.latent_dim),
                               torch.randn(len(images), config.latent_dim))
        with torch.no_grad():
            for shadow, weight in zip(average, twin.decoder.parameters()):
                shadow.lerp_(weight, 1 - config.ema_decay)
        return losses
    return step


def twin_sampler(recipe, n, statistics_batch=1024):
    """``draw()``: ``n`` images in [0, 1] decoded from z ~ N(0, I), BatchNorm statistics first
    estimated on ``statistics_batch`` noise vectors, as ``VAEGANRecipe.sample`` does."""
    decoder = _twin_of(recipe)[0].decoder
    latent = recipe.config.latent_dim

    @torch.no_grad()
    def draw():
        for layer in decoder.modules():
            if isinstance(layer, nn.BatchNorm2d):
                layer.momentum = 1.0
        decoder.train()(torch.randn(statistics_batch, latent, 1, 1))
        return ((decoder.eval()(torch.randn(n, latent, 1, 1))[:, 0] + 1) / 2).clamp(0, 1)
    return draw
