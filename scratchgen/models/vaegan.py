"""``scratchgen train vaegan``: a VAE whose decoder is a GAN's generator (Larsen et al. 2016).

Three networks, built from the pieces of the two models they join (imported, not copied):

    encoder        q(z|x) = N(mu(x), diag sigma(x)^2)      the VAE's encoder (``vae.py``), MLP or conv
    decoder        x~ = Dec(z)                              the DCGAN's generator (``gan.py``)
    discriminator  s(x) = head(Dis_l(x))                    the DCGAN's discriminator (``gan.py``):
                                                            Dis_l, its layers before the score, are
                                                            the "learned similarity" features

Every step draws a reconstruction x~ = Dec(z), z = mu + sigma eps ~ q(z|x), and a prior sample
x_p = Dec(z_p), z_p ~ N(0, I). A VAE would score x~ against x pixel by pixel; the VAE-GAN scores
it in the discriminator's feature space, where a slightly shifted stroke costs little and a
blurred one costs much (a Gaussian of unit variance on the features, summed over them):

    L_prior = KL(q(z|x) || N(0, I))                               (closed form, as the VAE's)
    L_like  = 1/2 |Dis_l(x~) - Dis_l(x)|^2
    L_GAN   = real(s(x)) + fake(s(x~)) + fake(s(x_p))         x real, x~ and x_p both generated
    L_fool  = fool(s(x~)) + fool(s(x_p))                      the decoder's side of the game

each averaged over the batch, with the DCGAN's terms (``gan.real_loss``, ``fake_loss``,
``fooling_loss``): ``--loss nonsat``, the paper's cross-entropy on logits, real = softplus(-s),
fake = softplus(s), fool = softplus(-s) (the non-saturating form of -L_GAN); ``--loss hinge``
(the default), real = relu(1 - s), fake = relu(1 + s), fool = -s. The three losses train their
own networks with their own Adam, all from the same forward pass (the paper's Algorithm 1):

    encoder        L_prior + L_like
    decoder        gamma L_like + L_fool
    discriminator  L_GAN

The discriminator is never trained on L_like (it would learn features that make every image
match). Samples come from an exponential moving average of the decoder's weights, with BatchNorm's
statistics estimated afresh for them, exactly as the DCGAN's (``gan.py``).
"""
import dataclasses
import typing

from .. import nn, optim
from ..autograd import grad, no_grad
from ..eval.metrics import digits_metrics
from ..tensor import randn, tensor
from .base import Recipe, TrainConfig, option, register, set_hyperparameters
from .gan import dcgan_init_, discriminator, estimate_batch_norm_statistics, fake_loss, fooling_loss, generator, \
    linearly_decayed, real_loss, to_image_range, to_model_range
from .vae import NormalPrior, conv_encoder, interleaved_rows, mlp_encoder

NETWORKS = ("encoder", "decoder", "discriminator")


@dataclasses.dataclass
class VAEGANConfig(TrainConfig):
    epochs: int = option(100, "43 steps per epoch at batch 32")
    batch_size: int = option(32, "images per step")
    lr: float = option(5e-4, "Adam, all three networks (DCGAN: 2e-4)")
    beta1: float = option(0.5, "Adam's beta1 (DCGAN: 0.5)")
    decay_from: float = option(1.0, "share of training after which lr falls linearly to 0 (1: never)")
    loss: typing.Literal["nonsat", "hinge"] = option("hinge", "the adversarial loss: the DCGAN's hinge, or "
                                                     "the paper's cross-entropy")
    architecture: typing.Literal["conv", "mlp"] = option("conv", "the encoder: the VAE's conv or MLP one")
    latent_dim: int = option(32, "dimensions of z")
    channels: int = option(16, "discriminator's first layer (x2 per layer; decoder and encoder x2)")
    hidden: int = option(256, "MLP encoder: width of its hidden layers")
    gamma: float = option(1.0, "weight of the feature reconstruction in the decoder's loss")
    kl_weight: float = option(1.0, "weight of KL(q(z|x) || p(z)) in the encoder's loss")
    ema_decay: float = option(0.999, "samples come from averaged decoder weights (0: off)")
    grid_every: int = option(10, "epochs between FID checks of 1,000 samples (0: none)")

    def __post_init__(self):
        if self.architecture not in ("conv", "mlp"):
            raise ValueError(f"vaegan: expected architecture 'conv' or 'mlp', got {self.architecture!r}")
        if self.loss not in ("nonsat", "hinge"):
            raise ValueError(f"vaegan: expected loss 'nonsat' or 'hinge', got {self.loss!r}")
        if not 0 <= self.decay_from <= 1:
            raise ValueError(f"vaegan: expected decay_from in [0, 1], got {self.decay_from}")
        if self.latent_dim < 1 or self.channels < 1 or self.gamma < 0 or self.kl_weight < 0 or self.grid_every < 0:
            raise ValueError(f"vaegan: expected latent_dim >= 1, channels >= 1, gamma >= 0, kl_weight >= 0 and "
                             f"grid_every >= 0, got {self.latent_dim}, {self.channels}, {self.gamma}, "
                             f"{self.kl_weight}, {self.grid_every}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"vaegan: expected ema_decay in [0, 1), got {self.ema_decay}")


class VAEGAN(nn.Module):
    def __init__(self, config, side):
        super().__init__()
        self.latent_dim, self.gamma, self.kl_weight = config.latent_dim, config.gamma, config.kl_weight
        self.loss = config.loss
        self.encoder = mlp_encoder(side * side, config.hidden, config.latent_dim) if config.architecture == "mlp" \
            else conv_encoder(side, 2 * config.channels, config.latent_dim)
        self.decoder = dcgan_init_(generator(config.latent_dim, config.channels, side))
        self.discriminator = dcgan_init_(discriminator(config.channels, side))
        self.prior = NormalPrior(config.latent_dim)

    def encode(self, images):
        """(N, 1, S, S) in [-1, 1] -> mu, log sigma^2, each (N, latent)."""
        return self.encoder(images).chunk(2, dim=-1)

    def decode(self, z):
        """(N, latent) -> (N, 1, S, S) in [-1, 1]."""
        return self.decoder(z.reshape(*z.shape, 1, 1))

    def features_and_scores(self, images):
        """Dis_l(x), the discriminator's last hidden layer (N, ...), and its scores s(x) (N,)."""
        features = self.discriminator[:-1](images)
        return features, self.discriminator[-1](features).reshape(-1)

    def score(self, images):
        return self.features_and_scores(images)[1]


def vaegan_step(model, optimizers, images, noise, prior_noise):
    """One update of the three networks, each by its own loss and Adam, all three losses measured
    before any network moves (the paper's simultaneous update); returns the losses as floats.
    ``images`` (N, 1, S, S) in [-1, 1]; ``noise`` eps and ``prior_noise`` z_p, each (N, latent).

    The discriminator's loss sees the generated batches as constants; the encoder's and decoder's
    see a frozen discriminator, so no backward pass computes gradients nobody uses. (The real,
    reconstructed and prior-sampled batches each pass the discriminator on their own, as in the
    DCGAN, so BatchNorm normalises one kind of image at a time.)
    """
    mu, log_variance = model.encode(images)
    z = mu + (0.5 * log_variance).exp() * noise
    reconstructed, sampled = model.decode(z), model.decode(prior_noise)

    real_features, real_scores = model.features_and_scores(images)
    gan = (real_loss(model.loss, real_scores) + fake_loss(model.loss, model.score(reconstructed.detach()))
           + fake_loss(model.loss, model.score(sampled.detach())))
    gradients = {"discriminator": grad(gan, list(model.discriminator.parameters()))}

    model.discriminator.requires_grad_(False)
    try:
        reconstructed_features, reconstructed_scores = model.features_and_scores(reconstructed)
        difference = (reconstructed_features - real_features.detach()).reshape(images.shape[0], -1)
        like = 0.5 * (difference * difference).sum(dim=1).mean()
        fooling = fooling_loss(model.loss, reconstructed_scores) + fooling_loss(model.loss, model.score(sampled))
    finally:
        model.discriminator.requires_grad_(True)
    kl = model.prior.kl(mu, log_variance, z, noise).mean()
    losses = {"encoder": model.kl_weight * kl + like, "decoder": model.gamma * like + fooling, "discriminator": gan}
    gradients["encoder"] = grad(losses["encoder"], list(model.encoder.parameters()), retain_graph=True)
    gradients["decoder"] = grad(losses["decoder"], list(model.decoder.parameters()))
    for name in NETWORKS:
        for parameter, gradient in zip(getattr(model, name).parameters(), gradients[name]):
            parameter.grad = gradient
        optimizers[name].step()
    return {**{name: value.item() for name, value in losses.items()}, "kl": kl.item(),
            "feature_reconstruction": like.item()}


# ---- training, sampling ------------------------------------------------------------------------------
@register
class VAEGANRecipe(Recipe):
    name = "vaegan"
    Config = VAEGANConfig
    plot_keys = ("encoder", "decoder", "discriminator")
    validation_samples = 1000

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        height, width = data.image_shape
        if height != width or height not in (8, 16, 32):
            raise ValueError(f"vaegan: expected square images of side 8, 16 or 32, got {data.image_shape}")
        self.model = VAEGAN(config, height).to(self.device)
        self.optimizers = {name: optim.Adam(getattr(self.model, name).parameters(), config.lr, (config.beta1, 0.999),
                                      fused=True)
                           for name in NETWORKS}
        if config.ema_decay:
            self.ema = optim.ExponentialMovingAverage(self.model.decoder, config.ema_decay,
                                                      flat=self.optimizers["decoder"].fused.flat_parameters())
        self.epoch = 0

    def before_step(self, clock):
        self.epoch = clock.epoch + 1
        for optimizer in self.optimizers.values():
            set_hyperparameters(optimizer, lr=linearly_decayed(self.config.lr, clock.epochs_done / self.config.epochs,
                                                               self.config.decay_from))

    def train_step(self, batch, clock):
        images = to_model_range(batch[0])
        count, latent = images.shape[0], self.config.latent_dim
        losses = vaegan_step(self.model, self.optimizers, images, randn(count, latent, device=self.device),
                             randn(count, latent, device=self.device))
        if self.ema is not None:
            self.ema.update()
        return {name: losses[name] for name in (*NETWORKS, "kl", "feature_reconstruction")}

    def sample(self, n):
        """Images in [0, 1] decoded from z ~ N(0, I) by the averaged decoder (its BatchNorm
        statistics estimated afresh), or by the trained one without averaging."""
        noise = randn(n, self.config.latent_dim, device=self.device)
        with no_grad():
            if self.ema is None:
                return to_image_range(self.model.decode(noise))
            with self.ema.average_parameters():
                estimate_batch_norm_statistics(self.model.decoder, self.config.latent_dim)
                return to_image_range(self.model.decode(noise))

    def validate(self, data):
        every = self.config.grid_every
        if data.name != "digits" or not every or self.epoch % every or self.dry_run:
            return {}
        metrics = digits_metrics(self.sample(self.validation_samples))
        return {"fid_ratio": metrics["fid_ratio"], "classes_covered": metrics["classes_covered"]}

    def evaluate(self, data):
        return {}  # the runner scores the final samples with every digits metric

    def figures(self, data):
        """``reconstructions.png``: rows of 10 test digits, each followed by Dec(mu(x)) (trained weights)."""
        originals = data.test_images[:40]
        with no_grad():
            mu = self.model.encode(to_model_range(tensor(originals, device=self.device)))[0]
            reconstructions = to_image_range(self.model.decode(mu))
        return {"reconstructions": interleaved_rows(originals, reconstructions)}
