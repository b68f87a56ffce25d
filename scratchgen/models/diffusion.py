"""``scratchgen train diffusion``: a denoising diffusion model (Ho et al. 2020) on the digits, with a
small attention U-Net, DDIM sampling (Song et al. 2021) and classifier-free guidance (Ho & Salimans 2021).

The forward process adds Gaussian noise in T steps with variances beta_1..beta_T; in closed form

    q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I),     abar_t = prod_{s <= t} (1 - beta_s)

so x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps with eps ~ N(0, I). Images are scaled to [-1, 1].
Schedules (computed in float64): "linear", beta from 1e-4 to 0.02 over T = 1000 steps (both ends
scaled by 1000 / T for other T, so the total noise stays comparable), and "cosine" (Nichol &
Dhariwal 2021), abar_t = f(t) / f(0) with f(t) = cos((t/T + s) / (1 + s) * pi/2)^2, s = 0.008.

A U-Net eps_theta(x_t, t, y) predicts the noise; the loss is the "simple" objective

    L = E_{x_0, y, t, eps} | eps - eps_theta(sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, t, y) |^2

(the mean over pixels and the batch), with t uniform on the T steps. The class y is replaced by
a null class with probability ``label_dropout``, so one network learns eps(x_t, t, y) and eps(x_t, t).

Sampling runs the reverse chain from x_T ~ N(0, I) with the EMA weights:

    DDPM (ancestral, all T steps)   x_{t-1} = mu~_t(x_t, x0_hat) + sqrt(beta~_t) z,   the posterior
                                    q(x_{t-1} | x_t, x_0) with x_0 replaced by the prediction
                                    x0_hat = (x_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t)
    DDIM (any subsequence of steps, t -> s)
                                    x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_theta + sigma z
                                    sigma = eta sqrt((1 - abar_s)/(1 - abar_t)) sqrt(1 - abar_t/abar_s)

eta = 0 is deterministic; eta = 1 over all T steps is the ancestral sampler again. Classifier-free
guidance mixes the two predictions with a scale w (1: plain conditional, 0: unconditional):

    eps = eps_theta(x_t, t) + w (eps_theta(x_t, t, y) - eps_theta(x_t, t))
"""
import dataclasses
import math
import typing

import numpy as np

from .. import functional as F
from .. import init, nn, optim
from ..autograd import no_grad
from ..ops.shape import cat
from ..progress import ProgressBar
from ..tensor import Tensor, rand, randint, randn, randn_like, tensor
from .base import Recipe, TrainConfig, option, register, set_hyperparameters

NUM_CLASSES = 10
COSINE_OFFSET = 0.008   # s of the cosine schedule: keeps beta_1 from being vanishingly small
MAX_BETA = 0.999        # the cosine schedule's betas are clipped here (its last step would be 1)
DRY_RUN_STEPS = 2       # DDIM steps of every sample a dry run draws


@dataclasses.dataclass
class DiffusionConfig(TrainConfig):
    epochs: int = option(100, "100 x 21 steps of 64 images")
    lr: float = option(1e-3, "Adam's learning rate after the warm-up")
    warmup_steps: int = option(200, "lr rises linearly from 0 over these steps")
    schedule: typing.Literal["linear", "cosine"] = option("cosine", "the betas of the forward process")
    timesteps: int = option(1000, "T, the number of noise levels")
    channels: int = option(32, "U-Net width at full resolution")
    levels: int = option(2, "resolutions (8x8 and 4x4 for the digits)")
    res_blocks: int = option(1, "residual blocks per resolution on the way down")
    groups: int = option(8, "GroupNorm groups")
    heads: int = option(4, "heads of the attention at the lowest resolution")
    dropout: float = option(0.0, "dropout inside the residual blocks")
    label_dropout: float = option(0.2, "share of labels replaced by the null class")
    ema_decay: float = option(0.999, "EMA of the weights (samples use the EMA)")
    grad_clip: float = option(1.0, "clip the gradient's global norm (0: off)")
    guidance: float = option(2.0, "guidance scale of the final class-conditional samples")
    sample_steps: int = option(50, "DDIM steps of the samples drawn after training")

    def __post_init__(self):
        if self.schedule not in ("linear", "cosine"):
            raise ValueError(f"diffusion: expected schedule 'linear' or 'cosine', got {self.schedule!r}")
        if self.timesteps < 2 or self.levels < 1 or self.res_blocks < 1 or self.channels < 1:
            raise ValueError(f"diffusion: expected timesteps >= 2, levels >= 1, res_blocks >= 1 and "
                             f"channels >= 1, got {self.timesteps}, {self.levels}, {self.res_blocks}, "
                             f"{self.channels}")
        if self.channels % self.groups or self.channels % self.heads:
            raise ValueError(f"diffusion: expected channels divisible by groups and heads, got "
                             f"{self.channels} channels, {self.groups} groups, {self.heads} heads")
        if not 0 <= self.label_dropout <= 1 or not 0 <= self.ema_decay <= 1:
            raise ValueError(f"diffusion: expected label_dropout and ema_decay in [0, 1], got "
                             f"{self.label_dropout}, {self.ema_decay}")


@dataclasses.dataclass
class SampleOptions:
    """``scratchgen sample diffusion`` / ``eval diffusion`` flags (the fields of this dataclass)."""
    sampler: typing.Literal["ddim", "ddpm"] = option("ddim", "ddpm: ancestral, all T steps")
    steps: int = option(0, "DDIM steps (0: the model's sample_steps)")
    eta: float = option(0.0, "DDIM noise: 0 deterministic, 1 as much as ancestral")
    class_: str = option("random", 'a digit 0-9, "all" (0..9 in turn), "random" (y ~ p(y)) or "none"')
    guidance: float = option(1.0, "classifier-free guidance scale (1: conditional only)")


# ---- the forward process and the samplers -------------------------------------------------------
def linear_betas(timesteps):
    """Ho et al.'s schedule, 1e-4 -> 0.02 over 1000 steps, both ends scaled by 1000 / T."""
    scale = 1000 / timesteps
    return np.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=np.float64)


def cosine_betas(timesteps):
    """Nichol & Dhariwal's schedule: abar(t) = f(t) / f(0), beta_t = 1 - abar(t) / abar(t - 1)."""
    steps = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    f = np.cos((steps + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2) ** 2
    return np.minimum(1 - f[1:] / f[:-1], MAX_BETA)


class GaussianDiffusion:
    """The noise schedule of T steps (index t = 0..T-1 here for the paper's 1..T), q(x_t | x_0),
    the loss, and the reverse samplers. Coefficients live in float64 and are cast to the data's
    dtype only when they multiply a tensor."""

    def __init__(self, betas):
        self.betas = np.asarray(betas, dtype=np.float64)
        self.timesteps = len(self.betas)
        self.alphas_cumprod = np.cumprod(1 - self.betas)                             # abar_t
        self.alphas_cumprod_prev = np.concatenate([[1.0], self.alphas_cumprod[:-1]])  # abar_{t-1}, 1 at t=0

    @classmethod
    def from_config(cls, config):
        betas = {"linear": linear_betas, "cosine": cosine_betas}[config.schedule](config.timesteps)
        return cls(betas)

    @staticmethod
    def _per_example(values, t, like):
        """values[t] as an (N, 1, ..., 1) tensor broadcasting over ``like`` (N, ...), in its dtype.
        The gather is an op on the tensor ``t`` (so a compiled step reads each batch's times)."""
        t = t if isinstance(t, Tensor) else tensor(np.asarray(t), device=like.device)
        gathered = tensor(values, dtype=like.dtype, device=like.device)[t]
        return gathered.reshape((-1,) + (1,) * (like.ndim - 1))

    def q_sample(self, x0, t, noise):
        """x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, for a batch of x_0 and per-example t."""
        return (self._per_example(np.sqrt(self.alphas_cumprod), t, x0) * x0
                + self._per_example(np.sqrt(1 - self.alphas_cumprod), t, x0) * noise)

    def loss(self, model, x0, t, noise, labels):
        """The simple loss: mean squared error between eps and eps_theta(x_t, t, y)."""
        return F.mse_loss(model(self.q_sample(x0, t, noise), t, labels), noise)

    # ---- reverse process ----
    def predict_x0(self, x_t, t, eps, clip):
        """(x0_hat, eps_hat): the x_0 that ``eps`` implies, optionally clipped to the data's range
        [-1, 1], and the noise that the (clipped) x0_hat implies in turn."""
        abar = self.alphas_cumprod[t]
        x0 = (x_t - math.sqrt(1 - abar) * eps) / math.sqrt(abar)
        if not clip:
            return x0, eps
        x0 = x0.clamp(-1.0, 1.0)
        return x0, (x_t - math.sqrt(abar) * x0) / math.sqrt(1 - abar)

    def ddpm_step(self, x, t, eps, clip=True):
        """x_{t-1} ~ q(x_{t-1} | x_t, x_0 = x0_hat): the posterior, mean c_0 x0_hat + c_t x_t and
        variance beta~_t = beta_t (1 - abar_{t-1}) / (1 - abar_t) (0 at t = 0: no noise at the end)."""
        beta, abar, abar_prev = self.betas[t], self.alphas_cumprod[t], self.alphas_cumprod_prev[t]
        x0, _ = self.predict_x0(x, t, eps, clip)
        mean = (math.sqrt(abar_prev) * beta / (1 - abar)) * x0 \
            + (math.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar)) * x
        variance = beta * (1 - abar_prev) / (1 - abar)
        return mean + math.sqrt(variance) * randn_like(x) if t > 0 else mean

    def ddim_step(self, x, t, s, eps, eta=0.0, clip=True):
        """x_s from x_t (s < t; s = -1 for x_0, where abar = 1): the DDIM update with noise sigma."""
        abar, abar_next = self.alphas_cumprod[t], (self.alphas_cumprod[s] if s >= 0 else 1.0)
        x0, eps = self.predict_x0(x, t, eps, clip)
        sigma = eta * math.sqrt((1 - abar_next) / (1 - abar) * (1 - abar / abar_next))
        x = math.sqrt(abar_next) * x0 + math.sqrt(max(1 - abar_next - sigma ** 2, 0.0)) * eps
        return x + sigma * randn_like(x) if sigma > 0 else x

    def ddpm_steps(self, denoiser, x, clip=True):
        """Ancestral sampling over all T steps; yields (t - 1, x_{t-1}) after each step (-1: x_0)."""
        for t in reversed(range(self.timesteps)):
            x = self.ddpm_step(x, t, denoiser(x, t), clip)
            yield t - 1, x

    def ddim_times(self, steps):
        """``steps`` time indices from T-1 down to 0, evenly spread (all of them when steps = T)."""
        if not 1 <= steps <= self.timesteps:
            raise ValueError(f"ddim: expected 1 <= steps <= T = {self.timesteps}, got {steps}")
        return [int(t) for t in np.round(np.linspace(self.timesteps - 1, 0, steps))]

    def ddim_steps(self, denoiser, x, steps, eta=0.0, clip=True):
        """DDIM over ``steps`` of the T indices; yields (s, x_s) after each step (s = -1: x_0)."""
        times = self.ddim_times(steps)
        for t, s in zip(times, times[1:] + [-1]):
            x = self.ddim_step(x, t, s, denoiser(x, t), eta, clip)
            yield s, x

    def reverse_steps(self, denoiser, x, sampler="ddim", steps=50, eta=0.0, clip=True, progress=False):
        """The chosen sampler's steps from x = x_T, with a progress bar on a terminal when asked."""
        if sampler == "ddpm":
            total, name, loop = self.timesteps, f"DDPM-{self.timesteps}", self.ddpm_steps(denoiser, x, clip)
        elif sampler == "ddim":
            total, name = steps, f"DDIM-{steps} eta={eta:g}"
            loop = self.ddim_steps(denoiser, x, steps, eta, clip)
        else:
            raise ValueError(f"sample: expected sampler 'ddim' or 'ddpm', got {sampler!r}")
        if not progress:
            yield from loop
            return
        bar = ProgressBar(None, None, total, label=f"sampling {name}", unit="steps")
        for done, step in enumerate(loop, start=1):
            bar.update(done, {}, 1)
            yield step
        bar.close()

    def sample(self, denoiser, x, **options):
        """x_0 from x_T = ``x`` (options as ``reverse_steps``)."""
        for _, x in self.reverse_steps(denoiser, x, **options):
            pass
        return x


# ---- the U-Net ------------------------------------------------------------------------------------
def timestep_embedding(t, dim):
    """Transformer-style sinusoids of the integer times t (N,), a NumPy array: (N, dim) float64 =
    [sin(t w_k), cos(t w_k)], w_k = 10000^(-k / (dim/2 - 1)), k < dim/2. A constant: nothing
    upstream is learned, so the U-Net computes it once for every t and looks rows up."""
    half = dim // 2
    frequencies = np.exp(-math.log(10000) * np.arange(half, dtype=np.float64) / max(half - 1, 1))
    angles = np.asarray(t, dtype=np.float64)[:, None] * frequencies[None, :]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)


def zero_init(module):
    """Start a layer at zero output, so each residual branch (and the whole net) starts as identity."""
    init.zeros_(module.weight)
    init.zeros_(module.bias)
    return module


class ResidualBlock(nn.Module):
    """x + conv(SiLU(GN(conv(SiLU(GN(x))) + W emb))): a conv pair that reads the time/class embedding."""

    def __init__(self, in_channels, out_channels, embedding_dim, groups, dropout):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.embedding = nn.Linear(embedding_dim, out_channels)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x, embedding):
        h = self.conv1(F.silu(self.norm1(x)))                                   # (N, C_out, H, W)
        h = h + self.embedding(F.silu(embedding)).reshape(h.shape[0], -1, 1, 1)
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """x + proj(softmax(q k^T / sqrt(d)) v) over the H W positions, ``heads`` heads (fused kernel)."""

    def __init__(self, channels, groups, heads):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        n, c, height, width = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, height * width)
        q, k, v = (qkv[:, i].transpose(-1, -2) for i in range(3))               # each (N, heads, HW, d)
        out = F.scaled_dot_product_attention(q, k, v)                           # (N, heads, HW, d)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, height, width))


class Downsample(nn.Module):
    """A stride-2 3x3 convolution: H x W -> H/2 x W/2."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest-neighbour x2, then a 3x3 convolution (no checkerboard, unlike a transposed conv)."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    """eps_theta(x_t, t, y): (N, 1, S, S) -> (N, 1, S, S).

        stem conv -> [res blocks, downsample] per level -> res, attention, res -> [res blocks on
        (h, skip), upsample] per level, in reverse -> GN, SiLU, conv (zero-initialised)

    Level l has ``channels * 2^l`` channels; every down-path output is kept as a skip and
    concatenated back on the way up (``res_blocks + 1`` up blocks per level, as in Ho et al.). The
    embedding is MLP(sinusoids(t)) + a learned vector per class (index 10: the null class).
    """

    def __init__(self, channels=32, levels=2, res_blocks=1, groups=8, heads=4, dropout=0.0,
                 num_classes=NUM_CLASSES, timesteps=1000):
        super().__init__()
        self.channels, self.null_class = channels, num_classes
        self.sinusoids = timestep_embedding(np.arange(timesteps), channels)   # (T, C) float64, row t
        embedding_dim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, embedding_dim), nn.SiLU(),
                                      nn.Linear(embedding_dim, embedding_dim))
        self.class_embedding = nn.Embedding(num_classes + 1, embedding_dim)
        self.stem = nn.Conv2d(1, channels, 3, padding=1)

        def res(cin, cout):
            return ResidualBlock(cin, cout, embedding_dim, groups, dropout)

        widths = [channels * 2 ** level for level in range(levels)]
        self.down, skips, width = nn.ModuleList(), [channels], channels
        for level, level_width in enumerate(widths):
            for _ in range(res_blocks):
                self.down.append(res(width, level_width))
                width = level_width
                skips.append(width)
            if level < levels - 1:
                self.down.append(Downsample(width))
                skips.append(width)
        self.middle = nn.ModuleList([res(width, width), AttentionBlock(width, groups, heads),
                                     res(width, width)])
        self.up = nn.ModuleList()
        for level, level_width in reversed(list(enumerate(widths))):
            for _ in range(res_blocks + 1):
                self.up.append(res(width + skips.pop(), level_width))
                width = level_width
            if level > 0:
                self.up.append(Upsample(width))
        self.head = nn.Sequential(nn.GroupNorm(groups, width), nn.SiLU(),
                                  zero_init(nn.Conv2d(width, 1, 3, padding=1)))

    @classmethod
    def from_config(cls, config):
        return cls(config.channels, config.levels, config.res_blocks, config.groups, config.heads,
                   config.dropout, timesteps=config.timesteps)

    def embed(self, t, labels):
        """(N, 4C): the time embedding plus the class's (labels == 10: the null class). The
        sinusoids are rows of the table picked by an op on ``t`` (a compiled step reads each batch's)."""
        sinusoids = tensor(self.sinusoids, dtype=self.stem.weight.dtype, device=t.device)[t]
        return self.time_mlp(sinusoids) + self.class_embedding(labels)

    def forward(self, x, t, labels):
        embedding = self.embed(t, labels)

        def run(block, h):
            return block(h, embedding) if isinstance(block, ResidualBlock) else block(h)

        h = self.stem(x)
        skips = [h]
        for block in self.down:
            h = run(block, h)
            skips.append(h)
        for block in self.middle:
            h = run(block, h)
        for block in self.up:
            h = run(block, cat([h, skips.pop()], dim=1) if isinstance(block, ResidualBlock) else h)
        return self.head(h)


def guided_denoiser(model, labels, guidance, null_class=NUM_CLASSES):
    """denoiser(x_t, t) -> eps for the samplers. ``labels`` None: unconditional; otherwise
    eps_u + w (eps_c - eps_u), in one forward pass over [x; x] when w != 1."""
    def denoise(x, t):
        count = x.shape[0]
        times = tensor(np.full(count, t, dtype=np.int64), device=x.device)
        if labels is None:
            return model(x, times, tensor(np.full(count, null_class, dtype=np.int64), device=x.device))
        if guidance == 1:
            return model(x, times, labels)
        null = tensor(np.full(count, null_class, dtype=np.int64), device=x.device)
        conditional, unconditional = model(cat([x, x]), cat([times, times]), cat([labels, null])).chunk(2)
        return unconditional + guidance * (conditional - unconditional)
    return denoise


# ---- training, sampling, evaluation --------------------------------------------------------------
@register
class DiffusionRecipe(Recipe):
    name = "diffusion"
    Config = DiffusionConfig
    SampleOptions = SampleOptions
    plot_keys = ("loss", "test_loss")

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        height, width = data.image_shape
        if height != width or height % 2 ** (config.levels - 1):
            raise ValueError(f"diffusion: expected square images with a side divisible by 2^(levels-1) = "
                             f"{2 ** (config.levels - 1)}, got {data.image_shape}")
        self.side = height
        shares = np.bincount(data.train_labels, minlength=NUM_CLASSES) / len(data.train_labels)
        self.class_cumulative_shares = np.cumsum(shares)[:-1]  # p(y) of the "random" labels, as bin edges
        self.diffusion = GaussianDiffusion.from_config(config)
        self.model = UNet.from_config(config).to(self.device)
        optimizer = optim.Adam(self.model.parameters(), lr=config.lr, fused=True)
        self.optimizers = {"model": optimizer}
        self.ema = optim.ExponentialMovingAverage(self.model, decay=config.ema_decay,
                                                  flat=optimizer.fused.flat_parameters())

    def to_model_scale(self, images):
        """(N, S, S) in [0, 1] -> (N, 1, S, S) in [-1, 1]."""
        return images.reshape(images.shape[0], 1, self.side, self.side) * 2 - 1

    def drop_labels(self, labels):
        """Each label replaced by the null class with probability ``label_dropout`` (a draw and a
        ``where``: ops, so a compiled step drops fresh labels on every replay)."""
        dropped = rand(labels.shape[0], device=labels.device) < self.config.label_dropout
        return F.where(dropped, NUM_CLASSES, labels)

    def before_step(self, clock):
        """Warm-ups read off the clock (a resumed run needs no extra state): the learning rate's, and
        the EMA's (decay (1 + n) / (10 + n) until it reaches ema_decay: early shadows would otherwise
        remember the random initialisation for thousands of steps)."""
        warmup = min(1.0, (clock.step + 1) / max(self.config.warmup_steps, 1))
        set_hyperparameters(self.optimizers["model"], lr=self.config.lr * warmup)
        self.ema.decay = min(self.config.ema_decay, (1 + clock.step) / (10 + clock.step))

    def train_step(self, batch, clock):
        images, labels = batch
        x0 = self.to_model_scale(images)
        t = randint(0, self.diffusion.timesteps, x0.shape[0], device=self.device)
        noise = randn_like(x0)
        loss = self.diffusion.loss(self.model, x0, t, noise, self.drop_labels(labels))
        optimizer = self.optimizers["model"]
        optimizer.zero_grad()
        loss.backward()
        if self.config.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        optimizer.step()
        self.ema.update()
        return {"loss": loss.item()}

    def validate(self, data):
        """The loss on the test split with the EMA weights (one t and eps per image, seeded by the runner)."""
        images, labels = self.to_tensors((data.test_images, data.test_labels))
        x0 = self.to_model_scale(images)
        with no_grad(), self.ema.average_parameters():
            t = randint(0, self.diffusion.timesteps, x0.shape[0], device=self.device)
            loss = self.diffusion.loss(self.model, x0, t, randn_like(x0), labels)
        return {"test_loss": loss.item()}

    def evaluate(self, data):
        """The test loss; the digits FID and coverage of unconditional (null-class) samples; and
        how often class-conditional samples at the config's guidance are classified as the class
        asked for. 100 samples per class, 1,000 unconditional; DDIM with ``sample_steps``."""
        from ..eval import classify, digits_metrics
        from ..eval.metrics import MIN_FID_SAMPLES
        report = self.validate(data)
        count = MIN_FID_SAMPLES if self.dry_run else 1000  # dry runs: the fewest a FID is given for
        unconditional = digits_metrics(self.sample(count, class_="none"))
        report.update({f"unconditional_{name}": unconditional[name]
                       for name in ("fid", "fid_ratio", "classes_covered")})
        samples = self.sample(count, class_="all", guidance=self.config.guidance)
        _, probabilities = classify(_to_metric_size(samples))
        asked = np.arange(count) % NUM_CLASSES
        accuracy = float((probabilities.argmax(1) == asked).mean())
        report[f"class_accuracy_guidance_{self.config.guidance:g}"] = accuracy
        return report

    # ---- sampling ----
    def _labels(self, n, class_):
        """The labels of ``n`` samples for ``class_``: None (unconditional), one digit, 0..9 in
        turn ("all"), or drawn from the training split's class shares ("random")."""
        class_ = str(class_)
        if class_ == "none":
            return None
        if class_ == "random":
            labels = np.searchsorted(self.class_cumulative_shares, rand(n).numpy(), side="right")
        elif class_ == "all":
            labels = np.arange(n) % NUM_CLASSES
        elif class_.isdigit() and int(class_) < NUM_CLASSES:
            labels = np.full(n, int(class_))
        else:
            raise ValueError(f"diffusion: expected class 0-9, 'all', 'random' or 'none', got {class_!r}")
        return tensor(labels.astype(np.int64), device=self.device)

    def sampling_steps(self, steps=0):
        return steps or (DRY_RUN_STEPS if self.dry_run else self.config.sample_steps)

    def reverse_steps(self, n, sampler="ddim", steps=0, eta=0.0, class_="random", guidance=1.0,
                      progress=True):
        """Yields (T, x_T), then (t, x_t) after each step of ``n`` chains down to (-1, x_0), with
        the EMA weights swapped in while it runs. ``steps`` 0: the config's ``sample_steps`` (a dry
        run takes 2: a smoke test, not a measurement)."""
        steps = self.sampling_steps(steps)
        denoiser = guided_denoiser(self.model, self._labels(n, class_), guidance)
        x = randn(n, 1, self.side, self.side, device=self.device)
        yield self.diffusion.timesteps, x
        with no_grad(), self.ema.average_parameters():
            yield from self.diffusion.reverse_steps(denoiser, x, sampler, steps, eta, progress=progress)

    def sample(self, n, **options):
        """(n, S, S) float32 images in [0, 1]; options as ``SampleOptions``. The default draws
        from the model's p(x) = sum_y p(y) p(x | y): a label y ~ p(y) per sample, then DDIM
        without guidance; ``class_="none"`` asks the unconditional (null-class) model instead."""
        for _, x in self.reverse_steps(n, **options):
            pass
        return _to_unit_interval(x)

    def trajectory(self, rows=8, steps=0):
        """(rows, 10 digits, S, S): x_t of one DDIM chain per digit at ``rows`` evenly spaced
        steps from x_T (pure noise, clipped for display) to x_0, and the t of each row."""
        kept = set(np.round(np.linspace(0, self.sampling_steps(steps), rows)).astype(int).tolist())
        chains = self.reverse_steps(NUM_CLASSES, steps=steps, class_="all", guidance=self.config.guidance,
                                    progress=False)
        shown = [(t, _to_unit_interval(x)) for index, (t, x) in enumerate(chains) if index in kept]
        return np.stack([images for _, images in shown]), [t for t, _ in shown]

    def figures(self, data):
        """``class_grid.png``: a row per digit (10 samples each, at the config's guidance);
        ``trajectory.png``: a column per digit, x_t from pure noise (top row) to the sample (bottom)."""
        grid = self.sample(100, class_="all", guidance=self.config.guidance, progress=False)
        side = self.side
        by_row = grid.reshape(10, 10, side, side).transpose(1, 0, 2, 3).reshape(100, side, side)
        trajectory, _ = self.trajectory()
        return {"class_grid": by_row, "trajectory": trajectory.reshape(-1, self.side, self.side)}


def _to_unit_interval(x):
    """(N, 1, S, S) in [-1, 1] (clipped) -> (N, S, S) float32 in [0, 1], as NumPy."""
    images = (x.clamp(-1.0, 1.0) + 1) * 0.5
    return images.numpy().astype(np.float32).reshape(x.shape[0], x.shape[2], x.shape[3])


def _to_metric_size(samples):
    from ..data import average_pool
    return samples if samples.shape[1] == 8 else average_pool(samples.astype(np.float64), 8)

