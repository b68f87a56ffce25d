"""The PyTorch twin of ``scratchgen.models.diffusion``: the same attention U-Net, noise schedules,
loss and DDIM/DDPM samplers, written as one would in PyTorch, with the same parameter names
(``down.0.conv1.weight``, ...), so a ``state_dict`` moves across unchanged.

    twin = TorchUNet.from_config(config).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_unet.state_dict().items()})
    loss = training_loss(twin, schedule_betas(config), x0, t, noise, labels)   # = the scratchgen loss

For the benchmark suite (``peers/__init__.py``): ``twin_training_step(recipe, batch)`` and
``twin_sampler(recipe, n, **sample_options)`` build the twin from a scratchgen recipe and return
a zero-argument callable that runs one training step / draws n samples as the recipe does.
"""
import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

NUM_CLASSES = 10


# ---- schedules and the loss -----------------------------------------------------------------------
def schedule_betas(schedule, timesteps):
    """float64 betas: "linear" (1e-4 -> 0.02, scaled by 1000 / T) or "cosine" (Nichol & Dhariwal)."""
    if schedule == "linear":
        scale = 1000 / timesteps
        return torch.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=torch.float64)
    steps = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=0.999)


def training_loss(model, betas, x0, t, noise, labels):
    """mean |eps - eps_theta(sqrt(abar_t) x0 + sqrt(1 - abar_t) eps, t, y)|^2."""
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)[t].to(x0.dtype).view(-1, 1, 1, 1)
    x_t = alphas_cumprod.sqrt() * x0 + (1 - alphas_cumprod).sqrt() * noise
    return F.mse_loss(model(x_t, t, labels), noise)


# ---- the U-Net ------------------------------------------------------------------------------------
def timestep_embedding(t, dim):
    half = dim // 2
    frequencies = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float64) / max(half - 1, 1))
    angles = t.to(torch.float64)[:, None] * frequencies[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def zero_init(module):
    nn.init.zeros_(module.weight)
    nn.init.zeros_(module.bias)
    return module


class ResidualBlock(nn.Module):
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
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.embedding(F.silu(embedding))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    def __init__(self, channels, groups, heads):
        super().__init__()
        self.heads = heads
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        n, c, height, width = x.shape
        q, k, v = self.qkv(self.norm(x)).view(n, 3, self.heads, c // self.heads, height * width) \
            .transpose(-1, -2).unbind(1)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, height, width))


class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class TorchUNet(nn.Module):
    def __init__(self, channels=32, levels=2, res_blocks=1, groups=8, heads=4, dropout=0.0,
                 num_classes=NUM_CLASSES):
        super().__init__()
        self.channels, self.null_class = channels, num_classes
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
                   config.dropout)

    def forward(self, x, t, labels):
        embedding = self.time_mlp(timestep_embedding(t, self.channels).to(x.dtype))
        embedding = embedding + self.class_embedding(labels)
        h = self.stem(x)
        skips = [h]
        for block in self.down:
            h = block(h, embedding) if isinstance(block, ResidualBlock) else block(h)
            skips.append(h)
        for block in self.middle:
            h = block(h, embedding) if isinstance(block, ResidualBlock) else block(h)
        for block in self.up:
            if isinstance(block, ResidualBlock):
                h = block(torch.cat([h, skips.pop()], dim=1), embedding)
            else:
                h = block(h)
        return self.head(h)


# ---- sampling ----------------------------------------------------------------------------------
def guided_denoiser(model, labels, guidance):
    """eps(x, t): unconditional (null class) when ``labels`` is None, else eps_u + w (eps_c - eps_u)."""
    def denoise(x, t):
        times = torch.full((x.shape[0],), t)
        null = torch.full((x.shape[0],), model.null_class)
        if labels is None:
            return model(x, times, null)
        if guidance == 1:
            return model(x, times, labels)
        conditional, unconditional = model(torch.cat([x, x]), torch.cat([times, times]),
                                           torch.cat([labels, null])).chunk(2)
        return unconditional + guidance * (conditional - unconditional)
    return denoise


@torch.no_grad()
def ddim_sample(denoiser, betas, x, steps=50, eta=0.0):
    """DDIM with x0 clipped to [-1, 1]; eta = 1 over all T steps is the ancestral (DDPM) chain."""
    alphas_cumprod = torch.cumprod(1 - betas, dim=0).tolist()
    timesteps = len(alphas_cumprod)
    times = [round(float(t)) for t in torch.linspace(timesteps - 1, 0, steps, dtype=torch.float64)]
    for t, s in zip(times, times[1:] + [-1]):
        abar, abar_next = alphas_cumprod[t], (alphas_cumprod[s] if s >= 0 else 1.0)
        eps = denoiser(x, t)
        x0 = ((x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)).clamp(-1, 1)
        eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
        sigma = eta * math.sqrt((1 - abar_next) / (1 - abar) * (1 - abar / abar_next))
        x = math.sqrt(abar_next) * x0 + math.sqrt(max(1 - abar_next - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * torch.randn_like(x)
    return x


# ---- what the benchmark suite times (see peers/__init__.py) ----------------------------------------
def _twin_of(recipe):
    """The twin of a scratchgen diffusion recipe, with its config and current weights."""
    twin = TorchUNet.from_config(recipe.config)
    twin.load_state_dict({name: torch.as_tensor(value) for name, value in recipe.model.state_dict().items()})
    return twin


def twin_training_step(recipe, batch):
    """One step as ``DiffusionRecipe.train_step`` takes it on ``batch`` = (images (N, S, S) in
    [0, 1], labels): fresh t and noise, label dropout, the loss, backward, clipping, Adam, EMA."""
    config = recipe.config
    twin = _twin_of(recipe)
    parameters = list(twin.parameters())
    shadows = [parameter.detach().clone() for parameter in parameters]
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    betas = schedule_betas(config.schedule, config.timesteps)
    images, labels = (torch.tensor(part) for part in batch)  # copies: the batch may be read-only
    x0 = images.unsqueeze(1) * 2 - 1

    def step():
        t = torch.randint(0, config.timesteps, (len(x0),))
        dropped = torch.rand(len(labels)) < config.label_dropout
        kept_or_null = labels.masked_fill(dropped, NUM_CLASSES)
        loss = training_loss(twin, betas, x0, t, torch.randn_like(x0), kept_or_null)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, config.grad_clip)
        optimizer.step()
        with torch.no_grad():
            torch._foreach_lerp_(shadows, parameters, 1 - config.ema_decay)
        return loss.item()
    return step


def twin_sampler(recipe, n, sampler="ddim", steps=0, eta=0.0, class_="random", guidance=1.0):
    """``draw()`` draws ``n`` samples as ``recipe.sample(n, ...)`` does, with the same options:
    labels y ~ p(y) by default, DDIM with as many steps as the recipe takes (its
    ``sampling_steps``: the config's ``sample_steps``, fewer in a dry run); ``sampler="ddpm"`` is the
    ancestral chain over all T steps (here as DDIM with eta = 1 over every step: the same chain)."""
    config = recipe.config
    twin = _twin_of(recipe).eval()
    betas = schedule_betas(config.schedule, config.timesteps)
    steps, eta = (config.timesteps, 1.0) if sampler == "ddpm" else (recipe.sampling_steps(steps), eta)
    side = recipe.side
    shares = torch.as_tensor(np.diff(recipe.class_cumulative_shares, prepend=0.0, append=1.0))

    def labels():
        if class_ == "none":
            return None
        if class_ == "random":
            return torch.multinomial(shares, n, replacement=True)
        if class_ == "all":
            return torch.arange(n) % NUM_CLASSES
        return torch.full((n,), int(class_))

    def draw():
        denoiser = guided_denoiser(twin, labels(), guidance)
        return ((ddim_sample(denoiser, betas, torch.randn(n, 1, side, side), steps, eta) + 1) / 2).squeeze(1)
    return draw
