"""The PyTorch twin of ``scratchgen.models.diffusion``: the same attention U-Net, noise schedules,
loss and DDIM/DDPM samplers, written as one would in PyTorch, with the same parameter names
(``down.0.conv1.weight``, ...), so a ``state_dict`` moves across unchanged.

    twin = TorchUNet.from_config(config).double()
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in scratchgen_unet.state_dict().items()})
    loss = training_loss(twin, schedule_betas(config), x0, t, noise, labels)   # = the scratchgen loss

For the benchmark suite: ``training_step(config, batch_size)`` and ``sampler(config, n, sampler)``
build the twin and return a zero-argument callable that runs one optimizer step / draws n samples.
"""
import math

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


# ---- sampling -------------------------------------------------------------------------------------
@torch.no_grad()
def ddim_sample(model, betas, x, steps=50, eta=0.0, labels=None):
    """DDIM (eta = 1 and steps = T: ancestral-equivalent) with x0 clipped to [-1, 1]; unconditional
    when ``labels`` is None."""
    alphas_cumprod = torch.cumprod(1 - betas, dim=0).tolist()
    timesteps = len(alphas_cumprod)
    times = [round(float(t)) for t in torch.linspace(timesteps - 1, 0, steps, dtype=torch.float64)]
    labels = torch.full((x.shape[0],), model.null_class) if labels is None else labels
    for t, s in zip(times, times[1:] + [-1]):
        abar, abar_next = alphas_cumprod[t], (alphas_cumprod[s] if s >= 0 else 1.0)
        eps = model(x, torch.full((x.shape[0],), t), labels)
        x0 = ((x - math.sqrt(1 - abar) * eps) / math.sqrt(abar)).clamp(-1, 1)
        eps = (x - math.sqrt(abar) * x0) / math.sqrt(1 - abar)
        sigma = eta * math.sqrt((1 - abar_next) / (1 - abar) * (1 - abar / abar_next))
        x = math.sqrt(abar_next) * x0 + math.sqrt(max(1 - abar_next - sigma ** 2, 0.0)) * eps
        if sigma > 0:
            x = x + sigma * torch.randn_like(x)
    return x


# ---- what the benchmark suite times ---------------------------------------------------------------
def _config(config):
    if config is None:
        from scratchgen.models.diffusion import DiffusionConfig
        config = DiffusionConfig()
    return config


def training_step(config=None, batch_size=64, side=8, seed=0):
    """A twin and a zero-argument callable that runs one Adam step on a fixed random batch
    (what ``DiffusionRecipe.train_step`` does, clipping included, label dropout left out)."""
    config = _config(config)
    torch.manual_seed(seed)
    model = TorchUNet.from_config(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    betas = schedule_betas(config.schedule, config.timesteps)
    x0 = torch.rand(batch_size, 1, side, side) * 2 - 1
    labels = torch.randint(0, NUM_CLASSES, (batch_size,))

    def step():
        t = torch.randint(0, config.timesteps, (batch_size,))
        loss = training_loss(model, betas, x0, t, torch.randn_like(x0), labels)
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        return loss.item()
    return model, step


def sampler(config=None, n=256, sampler="ddim", steps=50, side=8, seed=0):
    """A zero-argument callable drawing ``n`` unconditional samples: DDIM-``steps`` (eta 0) or
    DDPM-T (``sampler="ddpm"``: DDIM with eta 1 over all T steps, the same chain)."""
    config = _config(config)
    torch.manual_seed(seed)
    model = TorchUNet.from_config(config).eval()
    betas = schedule_betas(config.schedule, config.timesteps)
    steps, eta = (config.timesteps, 1.0) if sampler == "ddpm" else (steps, 0.0)
    return lambda: ddim_sample(model, betas, torch.randn(n, 1, side, side), steps, eta)


def twin_training_step(recipe, batch):
    """The benchmark suite's twin step (see ``peers/__init__.py``): ``training_step`` at the batch's
    size and image side (PyTorch's own initial weights: the time does not depend on them)."""
    images = batch[0]
    return training_step(recipe.config, batch_size=len(images), side=images.shape[-1])[1]


def twin_sampler(recipe, n):
    """The benchmark suite's twin sampler: ``n`` unconditional DDIM samples, as many steps as the
    recipe takes."""
    return sampler(recipe.config, n, steps=recipe.sampling_steps(), side=recipe.image_shape[0])
