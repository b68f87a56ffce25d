"""``scratchgen train gan``: a DCGAN (Radford et al. 2016) on the digits, with three losses.

The networks, for images of side S (8 by default: the digits as they are; 16 or 32 upsample them
bilinearly), C = ``channels``; stride-2 kernels are 4 x 4, the ones at 2 x 2 are 2 x 2:

    generator      z (N, latent, 1, 1) -> ConvT -> (2^k C, 2, 2) -> BN -> ReLU         k = log2(S / 2)
                   -> [ConvT stride 2 -> BN -> ReLU]  (side x2, channels /2) while the side < S/2
                   -> ConvT stride 2 -> (1, S, S) -> tanh            images live in [-1, 1]
    discriminator  (1, S, S) -> Conv stride 2 -> (C, S/2, S/2) -> LeakyReLU 0.2   (no norm on the input)
                   -> [Conv stride 2 -> norm -> LeakyReLU 0.2]  (side /2, channels x2) while the side > 2
                   -> Conv 2 x 2 -> (N,) scores

so the generator has twice the discriminator's channels at each size (at S = 8 and the default
C = 16: 64 and 32 channels against 16 and 32).

The DCGAN recipe: BatchNorm everywhere except the generator's output and the discriminator's
input, weights ~ N(0, 0.02) (BatchNorm scales ~ N(1, 0.02)), Adam with lr 2e-4 and beta1 0.5.

The losses, on the discriminator's scores s (logits, or a critic's values), means over the batch:

    nonsat   L_D = softplus(-s(x)) + softplus(s(G(z)))    binary cross-entropy with logits: labels 1 / 0
             L_G = softplus(-s(G(z)))                      -log D(G(z)): non-saturating (Goodfellow 2014)
    hinge    L_D = relu(1 - s(x)) + relu(1 + s(G(z)))      L_G = -s(G(z))      (Lim & Ye 2017)
    wgan-gp  L_D = s(G(z)) - s(x) + lambda (|grad s(x_hat)|_2 - 1)^2            (Gulrajani et al. 2017)
             x_hat = e x + (1 - e) G(z), e ~ U(0, 1) per image;  L_G = -s(G(z))

Softplus of logits rather than log(sigmoid): exact where the sigmoid saturates. The gradient
penalty differentiates the critic twice: ``scratchgen.grad(s(x_hat).sum(), x_hat,
create_graph=True)`` returns grad s(x_hat) as a graph (convolution's backward is made of
convolutions), and L_D's backward runs through it to the critic's weights. The penalty is
defined per image, which BatchNorm would break (each image's score would depend on the rest of
the batch), so the WGAN-GP critic normalises each image on its own: LayerNorm over (C, H, W),
written as GroupNorm with one group (per-channel scale and shift), as Gulrajani et al. advise.

One training step: a discriminator step on a real batch and G(z), then a generator step on the
same G(z) (the discriminator frozen). Samples come from an exponential moving average of the
generator's weights (Yazici et al. 2019): the trained weights oscillate as the two networks chase
each other, and their average draws much cleaner digits (about half the FID here); BatchNorm's
statistics are estimated afresh for the averaged weights, on 1,024 noise vectors, before drawing.
After the first epoch and every ``grid_every`` epochs, ``samples_epochNNN.png`` shows the same 100
fixed noise vectors and ``validate`` scores 1,000 samples with the digits metrics (``fid_ratio``,
``classes_covered`` in ``metrics.jsonl``), so progress (and mode collapse) shows as training goes.
"""
import dataclasses
import typing

import numpy as np

from .. import functional as F
from .. import init, nn, optim
from ..autograd import grad, no_grad
from ..eval.metrics import digits_metrics
from ..tensor import rand, randn, tensor
from .base import Recipe, TrainConfig, option, register, set_hyperparameters

LOSSES = ("nonsat", "hinge", "wgan-gp")
KERNEL = 4
FIXED_NOISE_STREAM = 3  # the fixed noise of the progress grids: PCG64 seeded (seed, 3)


@dataclasses.dataclass
class GANConfig(TrainConfig):
    epochs: int = option(300, "~3 CPU-minutes")
    batch_size: int = option(32, "43 steps per epoch on the 1,347 training digits")
    lr: float = option(2e-4, "Adam, both networks")
    beta1: float = option(0.5, "Adam's beta1 (DCGAN: 0.5)")
    beta2: float = option(0.999, "Adam's beta2")
    decay_from: float = option(1.0, "share of training after which lr falls linearly to 0 (1: never)")
    image_size: int = option(8, "8: the digits as they are; 16 or 32: upsampled")
    loss: typing.Literal["nonsat", "hinge", "wgan-gp"] = option("hinge", "the adversarial loss")
    latent_dim: int = option(32, "dimensions of z")
    channels: int = option(16, "the discriminator's first layer (x2 per layer; generator x2)")
    gp_weight: float = option(10.0, "wgan-gp: lambda of the gradient penalty")
    ema_decay: float = option(0.998, "samples come from averaged generator weights (0: off)")
    grid_every: int = option(10, "epochs between fixed-noise grids and FID checks (0: none)")

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"gan: expected loss one of {LOSSES}, got {self.loss!r}")
        if self.image_size not in (8, 16, 32):
            raise ValueError(f"gan: expected image_size 8, 16 or 32, got {self.image_size}")
        if self.latent_dim < 1 or self.channels < 1 or self.gp_weight < 0 or self.grid_every < 0:
            raise ValueError(f"gan: expected latent_dim >= 1, channels >= 1, gp_weight >= 0 and "
                             f"grid_every >= 0, got {self.latent_dim}, {self.channels}, {self.gp_weight}, "
                             f"{self.grid_every}")
        if not 0 <= self.decay_from <= 1:
            raise ValueError(f"gan: expected decay_from in [0, 1], got {self.decay_from}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"gan: expected ema_decay in [0, 1), got {self.ema_decay}")


# ---- modules -------------------------------------------------------------------------------------
def _doublings(side):
    """How many stride-2 layers lie between 2 x 2 and ``side`` x ``side``."""
    return int(np.log2(side // 2))


def generator(latent_dim, channels, side):
    """(N, latent_dim, 1, 1) -> (N, 1, side, side) in [-1, 1]; twice the discriminator's channels
    at each size: 2 C at side / 2, 4 C at side / 4, ..."""
    width = channels * 2 ** _doublings(side)
    layers = [nn.ConvTranspose2d(latent_dim, width, 2, 1, 0, bias=False), nn.BatchNorm2d(width), nn.ReLU()]
    for _ in range(_doublings(side) - 1):  # 2 -> 4 -> ... -> side / 2
        layers += [nn.ConvTranspose2d(width, width // 2, KERNEL, 2, 1, bias=False),
                   nn.BatchNorm2d(width // 2), nn.ReLU()]
        width //= 2
    return nn.Sequential(*layers, nn.ConvTranspose2d(width, 1, KERNEL, 2, 1), nn.Tanh())


def _norm(kind, width):
    return nn.BatchNorm2d(width) if kind == "batch" else nn.GroupNorm(1, width)


def discriminator(channels, side, norm="batch"):
    """(N, 1, side, side) -> (N, 1, 1, 1) scores; C channels at side / 2, 2 C at side / 4, ...;
    ``norm`` "batch" (across the batch) or "layer" (each image on its own)."""
    layers, width = [nn.Conv2d(1, channels, KERNEL, 2, 1), nn.LeakyReLU(0.2)], channels
    for _ in range(_doublings(side) - 1):  # side / 2 -> ... -> 2
        layers += [nn.Conv2d(width, 2 * width, KERNEL, 2, 1, bias=False), _norm(norm, 2 * width),
                   nn.LeakyReLU(0.2)]
        width *= 2
    return nn.Sequential(*layers, nn.Conv2d(width, 1, 2, 1, 0))


def dcgan_init_(module):
    """The DCGAN initialisation: convolution weights ~ N(0, 0.02), norm scales ~ N(1, 0.02) and
    shifts 0. Convolution biases keep their default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in
    PyTorch's DCGAN: zeroed, the discriminator here won more and the samples scored ~1.5x worse."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            init.normal_(layer.weight, 0.0, 0.02)
        elif isinstance(layer, (nn.BatchNorm2d, nn.GroupNorm)):
            init.normal_(layer.weight, 1.0, 0.02)
            init.zeros_(layer.bias)
    return module


class DCGAN(nn.Module):
    def __init__(self, side, latent_dim=32, channels=32, loss="nonsat"):
        super().__init__()
        self.loss = loss
        norm = "layer" if loss == "wgan-gp" else "batch"  # the penalty is per image: see the docstring
        self.generator = dcgan_init_(generator(latent_dim, channels, side))
        self.discriminator = dcgan_init_(discriminator(channels, side, norm))

    def generate(self, noise):
        """(N, latent_dim, 1, 1) noise -> (N, 1, S, S) images in [-1, 1]."""
        return self.generator(noise)

    def score(self, images):
        """(N, 1, S, S) images in [-1, 1] -> (N,) discriminator scores."""
        return self.discriminator(images).reshape(-1)

    def discriminator_loss(self, real, fake, mix=None, gp_weight=10.0):
        """L_D of a real and a generated batch (see the module docstring) and what it is made of:
        {"d_loss", "d_real", "d_fake"[, "gradient_penalty"]} as scalar Tensors. ``fake`` is used
        as a constant; ``mix`` (N, 1, 1, 1) ~ U(0, 1) are the WGAN-GP interpolation weights."""
        fake = fake.detach()
        real_scores, fake_scores = self.score(real), self.score(fake)
        if self.loss == "nonsat":
            loss = real_loss("nonsat", real_scores) + fake_loss("nonsat", fake_scores)
            # D(x) and D(G(z)) as probabilities, as the DCGAN papers plot them
            return {"d_loss": loss, "d_real": real_scores.sigmoid().mean(),
                    "d_fake": fake_scores.sigmoid().mean()}
        if self.loss == "hinge":
            loss = real_loss("hinge", real_scores) + fake_loss("hinge", fake_scores)
            return {"d_loss": loss, "d_real": real_scores.mean(), "d_fake": fake_scores.mean()}
        penalty = gradient_penalty(self.score, real, fake, mix)
        loss = fake_scores.mean() - real_scores.mean() + gp_weight * penalty
        return {"d_loss": loss, "d_real": real_scores.mean(), "d_fake": fake_scores.mean(),
                "gradient_penalty": penalty}

    def generator_loss(self, fake):
        """L_G of generated images (differentiable through ``fake`` into the generator)."""
        return fooling_loss(self.loss, self.score(fake))


def real_loss(loss, scores):
    """The discriminator's loss on real images' scores, a mean over the batch: softplus(-s)
    ("nonsat": -log D(x)) or relu(1 - s) ("hinge")."""
    return F.softplus(-scores).mean() if loss == "nonsat" else F.relu(1 - scores).mean()


def fake_loss(loss, scores):
    """The discriminator's loss on generated images' scores: softplus(s) ("nonsat":
    -log(1 - D(G(z)))) or relu(1 + s) ("hinge")."""
    return F.softplus(scores).mean() if loss == "nonsat" else F.relu(1 + scores).mean()


def fooling_loss(loss, scores):
    """The generator's loss on its images' scores: softplus(-s) ("nonsat": -log D(G(z)), the
    non-saturating form) or -s ("hinge", "wgan-gp")."""
    return F.softplus(-scores).mean() if loss == "nonsat" else -scores.mean()


def gradient_penalty(critic, real, fake, mix):
    """mean over images of (|grad_x s(x_hat)|_2 - 1)^2 at x_hat = mix x + (1 - mix) fake,
    kept in the graph (``create_graph=True``) so that its gradient reaches the critic's weights."""
    mixed = (mix * real + (1 - mix) * fake).detach().requires_grad_()
    (slopes,) = grad(critic(mixed).sum(), mixed, create_graph=True)             # (N, 1, S, S)
    norms = (slopes * slopes).sum(dim=(1, 2, 3)).sqrt()                         # (N,)
    return ((norms - 1) ** 2).mean()


def adversarial_step(model, optimizers, real, noise, mix=None, gp_weight=10.0):
    """One discriminator step, then one generator step on the same G(z); returns the losses.

    ``real`` (N, 1, S, S) in [-1, 1], ``noise`` (N, latent, 1, 1), ``mix`` (N, 1, 1, 1) for WGAN-GP;
    ``optimizers`` {"discriminator": ..., "generator": ...}. The generator step freezes the
    discriminator, so its backward computes no discriminator weight gradients.
    """
    fake = model.generate(noise)
    parts = model.discriminator_loss(real, fake, mix, gp_weight)
    optimizers["discriminator"].zero_grad()
    parts["d_loss"].backward()
    optimizers["discriminator"].step()

    model.discriminator.requires_grad_(False)
    try:
        g_loss = model.generator_loss(fake)
        optimizers["generator"].zero_grad()
        g_loss.backward()
        optimizers["generator"].step()
    finally:
        model.discriminator.requires_grad_(True)
    return {**{name: value.item() for name, value in parts.items()}, "g_loss": g_loss.item()}


def estimate_batch_norm_statistics(generator, latent_dim, count=1024):
    """Set every BatchNorm layer's running mean and variance to those of one batch of ``count``
    noise vectors under the current weights. Averaged weights never ran during training, so the
    statistics gathered there belong to other weights; these belong to the averaged ones."""
    layers = [layer for layer in generator.modules() if isinstance(layer, nn.BatchNorm2d)]
    momenta, training = [layer.momentum for layer in layers], generator.training
    for layer in layers:
        layer.momentum = 1.0  # the running statistics become this batch's
    generator.train()
    with no_grad():
        generator(randn(count, latent_dim, 1, 1, device=next(generator.parameters()).device))
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum
    generator.train(training)


def linearly_decayed(lr, done, decay_from):
    """``lr`` while the share of training ``done`` is at most ``decay_from``, then falling
    linearly to 0 at ``done`` = 1."""
    return lr if done <= decay_from else lr * (1 - done) / (1 - decay_from)


def to_model_range(images):
    """(N, S, S) images in [0, 1] -> (N, 1, S, S) in [-1, 1], the generator's tanh range."""
    return images.reshape(images.shape[0], 1, *images.shape[1:]) * 2 - 1


def to_image_range(outputs):
    """(N, 1, S, S) generator outputs in [-1, 1] -> (N, S, S) NumPy float32 images in [0, 1]."""
    images = (outputs.cpu().numpy()[:, 0] + 1) / 2
    return np.clip(images, 0, 1).astype(np.float32)


# ---- training, sampling, evaluation --------------------------------------------------------------
@register
class GANRecipe(Recipe):
    name = "gan"
    Config = GANConfig
    plot_keys = ("d_loss", "g_loss", "d_real", "d_fake")
    grid_size = 100        # fixed noise vectors in each progress grid
    validation_samples = 1000

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        height, width = data.image_shape
        if height != width or height != config.image_size:
            raise ValueError(f"gan: expected square images of side {config.image_size}, "
                             f"got {data.image_shape}")
        self.model = DCGAN(height, config.latent_dim, config.channels, config.loss).to(self.device)
        betas = (config.beta1, config.beta2)
        self.optimizers = {name: optim.Adam(getattr(self.model, name).parameters(), config.lr, betas, fused=True)
                           for name in ("discriminator", "generator")}
        if config.ema_decay:
            self.ema = optim.ExponentialMovingAverage(self.model.generator, config.ema_decay,
                                                      flat=self.optimizers["generator"].fused.flat_parameters())
        fixed = np.random.default_rng((config.seed, FIXED_NOISE_STREAM)).standard_normal(
            (self.grid_size, config.latent_dim, 1, 1))
        self.fixed_noise = tensor(fixed.astype(np.float32), device=self.device)
        self.epoch = 0  # the epoch being trained, counted from 1 (set by before_step)

    def learning_rate(self, clock):
        """lr until ``decay_from`` of the epochs are done, then falling linearly to 0 at the end
        (read off the clock, so a resumed run needs no scheduler state)."""
        return linearly_decayed(self.config.lr, clock.epochs_done / self.config.epochs, self.config.decay_from)

    def is_grid_epoch(self, epoch):
        """After epoch 1 and every ``grid_every`` epochs: draw the fixed noise, score samples."""
        every = self.config.grid_every
        return bool(every) and (epoch == 1 or epoch % every == 0)

    def before_step(self, clock):
        self.epoch = clock.epoch + 1
        for optimizer in self.optimizers.values():
            set_hyperparameters(optimizer, lr=self.learning_rate(clock))

    def train_step(self, batch, clock):
        real = to_model_range(batch[0])
        count, latent = real.shape[0], self.config.latent_dim
        noise = randn(count, latent, 1, 1, device=self.device)
        mix = rand(count, 1, 1, 1, device=self.device) if self.config.loss == "wgan-gp" else None
        losses = adversarial_step(self.model, self.optimizers, real, noise, mix, self.config.gp_weight)
        if self.ema is not None:
            self.ema.update()
        return losses

    def generate(self, noise):
        """Images in [0, 1] from ``noise``: by the averaged generator when there is one (its
        BatchNorm statistics estimated afresh for the averaged weights), else the trained one."""
        with no_grad():
            if self.ema is None:
                return to_image_range(self.model.generate(noise))
            with self.ema.average_parameters():  # restores the trained weights and statistics after
                estimate_batch_norm_statistics(self.model.generator, self.config.latent_dim)
                return to_image_range(self.model.generate(noise))

    def sample(self, n):
        return self.generate(randn(n, self.config.latent_dim, 1, 1, device=self.device))

    def validate(self, data):
        """The digits FID ratio and class coverage of 1,000 samples, on grid epochs (digits only)."""
        if data.name != "digits" or not self.is_grid_epoch(self.epoch):
            return {}
        metrics = digits_metrics(self.sample(self.validation_samples))
        return {"fid_ratio": metrics["fid_ratio"], "classes_covered": metrics["classes_covered"]}

    def evaluate(self, data):
        return {}  # the runner scores the final samples with every digits metric

    def epoch_figures(self, data, epoch):
        """The fixed noise's images, on grid epochs."""
        return {"samples": self.generate(self.fixed_noise)} if self.is_grid_epoch(epoch) else {}
