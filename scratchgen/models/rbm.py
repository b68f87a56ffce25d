"""``scratchgen train rbm``: a Bernoulli–Bernoulli restricted Boltzmann machine on binarised digits.

The model: binary visible units v (the 64 pixels) and binary hidden units h, with the energy

    E(v, h) = -b^T v - c^T h - h^T W v,           p(v, h) = exp(-E(v, h)) / Z

No connections within a layer, so each layer's units are independent given the other:

    p(h_j = 1 | v) = sigmoid(c_j + W_j v),        p(v_i = 1 | h) = sigmoid(b_i + W_:i^T h)

and the hidden units sum out in closed form, leaving the free energy of a visible vector:

    F(v) = -log sum_h exp(-E(v, h)) = -b^T v - sum_j softplus(c_j + W_j v),   p(v) = exp(-F(v)) / Z

Training (Hinton 2002; Tieleman 2008; Hinton's "practical guide", 2010): the gradient of the mean
negative log-likelihood is  d/dtheta [mean_data F(v) - mean_model F(v)],  the second mean over the
model's own distribution, which no one can compute; contrastive divergence replaces it by samples
v~ from k steps of Gibbs sampling (v -> h -> v):

    CD-k   the chains start at the data batch, afresh every step
    PCD-k  "persistent" chains carry on from where the previous step left them (default)

The step's loss is  mean F(v_data) - mean F(v~)  with v~ held constant, so the engine's autograd
differentiates the free energy; its gradients are the classic statistics (a test checks it):

    dL/dW = -(<p(h|v) v^T>_data - <p(h|v~) v~^T>),  dL/db = -(<v>_data - <v~>),  dL/dc = -(<p(h|v)>_data - ...)

SGD with momentum (0.5 for the first epochs, then 0.9) and L2 weight decay on W only, as the guide
advises; the learning rate falls linearly to 0 (PCD's chains follow the model only while it moves
slowly). Each epoch binarises the grey digits afresh, v ~ Bernoulli(x).

Samples: Gibbs chains (``scratchgen.mcmc.gibbs`` over the joint state (v, h)) from random
visible units, and the visible means p(v = 1 | h) of their states as images. Or MALA
(``scratchgen.mcmc.langevin``) on a continuous relaxation: exp(-F(v)) for v in the unit box, moved
to all of R^64 by v = sigmoid(u), whose log-density is  -F(sigmoid(u)) + sum_i log sigmoid'(u_i).

Likelihood: log Z exactly by enumerating the 2^H hidden states when H <= 20,

    log Z = logsumexp_h [c^T h + sum_i softplus(b_i + W_:i^T h)]       (the visibles sum out)

and by annealed importance sampling (Salakhutdinov & Murray 2008) otherwise; the test
log-likelihood mean_v [-F(v) - log Z] is scored on the fixed binarisation of the test split
(``scratchgen.eval.binary``).
"""
import copy
import dataclasses
import math
import typing

import numpy as np

from .. import mcmc, nn, optim
from ..autograd import no_grad
from ..eval.binary import binary_test_log_likelihood
from ..functional import softplus
from ..ops.reduction import logsumexp
from ..random import generator
from ..tensor import rand, randn, tensor, zeros
from .base import Recipe, TrainConfig, option, overwrite, register, set_hyperparameters

EXACT_HIDDEN_LIMIT = 20        # up to 2^20 hidden states are enumerated for the exact log Z
ENUMERATION_CHUNK = 2 ** 14    # hidden states per pass of the enumeration


@dataclasses.dataclass
class RBMConfig(TrainConfig):
    epochs: int = option(300, "passes over the training split")
    batch_size: int = option(20, "images per step (and persistent chains)")
    lr: float = option(0.05, "SGD's learning rate, falling linearly to 0")
    hidden: int = option(256, "hidden units (<= 20: the exact log Z; more: AIS)")
    method: typing.Literal["pcd", "cd"] = option("pcd", "persistent chains, or chains restarted at the data")
    gibbs_steps: int = option(5, "k of CD-k / PCD-k")
    momentum: float = option(0.9, "SGD momentum after the first momentum_warmup epochs (0.5 before)")
    momentum_warmup: int = option(5, "epochs at momentum 0.5")
    weight_decay: float = option(1e-4, "L2 on the weights (not the biases)")
    ais_runs: int = option(100, "annealed importance sampling: independent runs")
    ais_steps: int = option(10000, "annealed importance sampling: intermediate distributions")

    def __post_init__(self):
        if self.method not in ("pcd", "cd"):
            raise ValueError(f"rbm: expected method 'pcd' or 'cd', got {self.method!r}")
        if self.hidden < 1 or self.gibbs_steps < 1 or self.ais_runs < 1 or self.ais_steps < 2:
            raise ValueError(f"rbm: expected hidden >= 1, gibbs_steps >= 1, ais_runs >= 1 and ais_steps >= 2, "
                             f"got {self.hidden}, {self.gibbs_steps}, {self.ais_runs}, {self.ais_steps}")
        if not 0 <= self.momentum < 1 or self.weight_decay < 0 or self.momentum_warmup < 0:
            raise ValueError(f"rbm: expected momentum in [0, 1), weight_decay >= 0 and momentum_warmup >= 0, "
                             f"got {self.momentum}, {self.weight_decay}, {self.momentum_warmup}")


@dataclasses.dataclass
class SampleOptions:
    """``scratchgen sample rbm`` / ``eval rbm`` flags (the fields of this dataclass)."""
    sampler: typing.Literal["gibbs", "mala"] = option("gibbs",
                                                      "Gibbs on (v, h), or MALA on the relaxed free energy")
    chains: int = option(100, "independent chains; each gives n / chains samples")
    burn_in: int = option(1000, "steps (Gibbs sweeps) discarded first")
    thin: int = option(100, "steps between two samples of one chain")
    step_size: float = option(0.01, "MALA's initial step size (adapted during burn-in)")


# ---- the model -------------------------------------------------------------------------------------
class RBM(nn.Module):
    """W (hidden, visible), b (visible,), c (hidden,); every method takes and returns (N, ...) Tensors."""

    def __init__(self, visible, hidden, persistent_chains=0):
        super().__init__()
        self.weight = nn.Parameter(randn(hidden, visible) * 0.01)  # W ~ N(0, 0.01^2), the guide's choice
        self.visible_bias = nn.Parameter(zeros(visible))
        self.hidden_bias = nn.Parameter(zeros(hidden))
        if persistent_chains:  # PCD's chains: part of the state, so a resumed run continues them
            self.register_buffer("chains", zeros(persistent_chains, visible))

    @property
    def visible(self):
        return self.weight.shape[1]

    @property
    def hidden(self):
        return self.weight.shape[0]

    def forward(self, v):
        """The hidden units' logits c + W v, (N, H): p(h = 1 | v) = sigmoid(them), and F(v) is
        made of them (so calling the module is the one layer an RBM has)."""
        return v @ self.weight.T + self.hidden_bias

    def visible_logits(self, h):
        return h @ self.weight + self.visible_bias                   # (N, V): b + W^T h

    def energy(self, v, h):
        """E(v, h) = -b^T v - c^T h - h^T W v, (N,)."""
        return -(v * self.visible_bias).sum(dim=1) - (h * self(v)).sum(dim=1)

    def free_energy(self, v):
        """F(v) = -b^T v - sum_j softplus(c_j + W_j v), (N,)."""
        return -(v * self.visible_bias).sum(dim=1) - softplus(self(v)).sum(dim=1)

    def gibbs_step(self, v, uniforms=None):
        """v -> h ~ p(h|v) -> v' ~ p(v|h); ``uniforms`` (u_h (N, H), u_v (N, V)) in [0, 1) make the
        draws (u < p), drawn here when not given. Returns (h, v') as 0/1 Tensors of v's dtype."""
        hidden_uniform, visible_uniform = uniforms or (rand(v.shape[0], self.hidden, dtype=v.dtype),
                                                       rand(v.shape[0], self.visible, dtype=v.dtype))
        h = (hidden_uniform < self(v).sigmoid()).to(v.dtype)
        return h, (visible_uniform < self.visible_logits(h).sigmoid()).to(v.dtype)

    def log_partition(self):
        """log Z by enumerating the hidden states (H <= 20): logsumexp_h [c^T h + sum_i softplus(b_i + W_:i^T h)]."""
        if self.hidden > EXACT_HIDDEN_LIMIT:
            raise ValueError(f"rbm: the exact log Z enumerates 2^hidden states; expected hidden <= "
                             f"{EXACT_HIDDEN_LIMIT}, got {self.hidden} (use annealed_log_partition)")
        parts, model = [], self.float64_copy()
        with no_grad():
            for start in range(0, 2 ** self.hidden, ENUMERATION_CHUNK):
                codes = np.arange(start, min(start + ENUMERATION_CHUNK, 2 ** self.hidden))
                h = tensor(((codes[:, None] >> np.arange(self.hidden)) & 1).astype(np.float64))
                log_weights = (h * model.hidden_bias).sum(dim=1) + softplus(model.visible_logits(h)).sum(dim=1)
                parts.append(logsumexp(log_weights, dim=0).item())
        return float(logsumexp(tensor(np.array(parts)), dim=0).item())

    def annealed_log_partition(self, runs=100, steps=10000, base_visible_bias=None):
        """(log Z estimate, its standard error) by AIS from the base rate model p_0(v, h) ∝
        exp(b_A^T v) (independent units) to the RBM, through p_beta(v, h) ∝ exp((1 - beta) b_A^T v
        - beta E(v, h)) on the betas of ``ais_betas``:

            log p*_beta(v) = (1 - beta) b_A^T v + beta b^T v + sum_j softplus(beta (c_j + W_j v))
            v_0 ~ p_0;  for each beta_k: log w += log p*_beta_k(v) - log p*_beta_k-1(v)
                                       = (beta_k - beta_k-1) (b - b_A)^T v
                                         + sum_j softplus(beta_k a_j) - softplus(beta_k-1 a_j),
                        a = c + W v;  then v ~ one Gibbs step at beta_k
            log Z = log Z_0 + log mean_runs w,   log Z_0 = H log 2 + sum_i softplus(b_A,i)

        ``base_visible_bias`` b_A: the data's base rates are the usual choice (default: b).
        The estimate of Z is unbiased; its log is, on average, a little low (Jensen).
        The standard error is the delta method's: sd(w / mean w) / sqrt(runs).
        """
        model = self.float64_copy()  # ten thousand small differences of large numbers: float64
        with no_grad():
            base = model.visible_bias.detach() if base_visible_bias is None else \
                tensor(np.asarray(base_visible_bias, np.float64))
            betas = ais_betas(steps)
            v = (rand(runs, self.visible, dtype=np.float64) < base.sigmoid()).double()
            log_weights = np.zeros(runs)
            for previous, beta in zip(betas[:-1], betas[1:]):
                hidden_logits = model(v)                                                # c + W v
                log_weights += ((beta - previous) * (v * (model.visible_bias - base)).sum(dim=1)
                                + (softplus(beta * hidden_logits) - softplus(previous * hidden_logits)).sum(dim=1)
                                ).numpy()
                h = (rand(runs, self.hidden, dtype=np.float64) < (beta * hidden_logits).sigmoid()).double()
                logits = (1 - beta) * base + beta * model.visible_logits(h)
                v = (rand(runs, self.visible, dtype=np.float64) < logits.sigmoid()).double()
            log_base = self.hidden * math.log(2) + softplus(base).sum().item()
        shifted = np.exp(log_weights - log_weights.max())
        log_z = log_base + log_weights.max() + math.log(shifted.mean())
        return float(log_z), float(shifted.std(ddof=1) / shifted.mean() / math.sqrt(runs))

    def float64_copy(self):
        """A float64 copy of the weights (log Z sums and differences many large numbers)."""
        return copy.deepcopy(self).double()


def ais_betas(steps):
    """``steps`` inverse temperatures from 0 to 1, denser where the distributions change fastest
    (Salakhutdinov & Murray's proportions: 1/29 of them on [0, 0.5], 8/29 on [0.5, 0.9], 20/29 on [0.9, 1])."""
    first, second = max(1, steps // 29), max(1, 8 * steps // 29)
    third = max(2, steps - first - second)
    return np.concatenate([np.linspace(0, 0.5, first, endpoint=False), np.linspace(0.5, 0.9, second, endpoint=False),
                           np.linspace(0.9, 1.0, third)])


def contrastive_divergence(model, data, start, steps, uniforms=None):
    """(loss, v~): loss = mean F(data) - mean F(v~), v~ after ``steps`` Gibbs steps from ``start``
    (held constant). ``uniforms``: a list of one (u_h, u_v) pair per step (see ``RBM.gibbs_step``)."""
    with no_grad():
        negative = start
        for step in range(steps):
            negative = model.gibbs_step(negative, uniforms[step] if uniforms else None)[1]
    return model.free_energy(data).mean() - model.free_energy(negative).mean(), negative


def relaxed_log_density(model):
    """log p(u) of u in R^V when v = sigmoid(u) has density ∝ exp(-F(v)) on the unit box:
    -F(sigmoid(u)) + sum_i log sigmoid'(u_i), log sigmoid' = -softplus(u) - softplus(-u)."""
    def log_prob(u):
        jacobian = -(softplus(u) + softplus(-u)).sum(dim=1)
        return -model.free_energy(u.sigmoid()) + jacobian
    return log_prob


# ---- training, sampling, evaluation --------------------------------------------------------------------
@register
class RBMRecipe(Recipe):
    name = "rbm"
    Config = RBMConfig
    SampleOptions = SampleOptions
    plot_keys = ("loss", "reconstruction", "test_reconstruction")

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        self.side = data.image_shape[0]
        pixels = int(np.prod(data.image_shape))
        chains = config.batch_size if config.method == "pcd" else 0
        self.model = RBM(pixels, config.hidden, chains).to(self.device)
        # the guide's visible biases: log(p / (1 - p)) of each pixel's mean over the training images
        rate = np.clip(np.asarray(data.train_images, np.float64).reshape(-1, pixels).mean(axis=0), 1e-3, 1 - 1e-3)
        self.base_visible_bias = np.log(rate / (1 - rate)).astype(np.float32)
        self.model.visible_bias.data[...] = self.base_visible_bias
        if chains:
            self.model.chains.data[...] = (np.random.default_rng(config.seed).random((chains, pixels)) < rate)
        model = self.model
        self.optimizers = {"model": optim.SGD([
            {"params": [model.weight], "weight_decay": config.weight_decay},
            {"params": [model.visible_bias, model.hidden_bias], "weight_decay": 0.0}], lr=config.lr, fused=True)}

    def binarise(self, images):
        """v ~ Bernoulli(x), a fresh draw for every batch: (N, S, S) -> (N, S*S) of 0s and 1s."""
        flat = images.reshape(images.shape[0], -1)
        return (rand(*flat.shape, dtype=flat.dtype, device=self.device) < flat).to(flat.dtype)

    def before_step(self, clock):
        """Momentum 0.5, then ``config.momentum`` after ``momentum_warmup`` epochs; lr falling linearly to 0."""
        momentum = 0.5 if clock.epoch < self.config.momentum_warmup else self.config.momentum
        lr = self.config.lr * (1 - clock.epochs_done / self.config.epochs)
        set_hyperparameters(self.optimizers["model"], momentum=momentum, lr=lr)

    def train_step(self, batch, clock):
        data = self.binarise(batch[0])
        persistent = self.config.method == "pcd"
        start = self.model.chains if persistent else data
        loss, negative = contrastive_divergence(self.model, data, start, self.config.gibbs_steps)
        optimizer = self.optimizers["model"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if persistent:
            overwrite(self.model.chains, negative)
        return {"loss": loss.item(), "reconstruction": self.reconstruction_error(data)}

    def reconstruction_error(self, v):
        """Mean squared error per image of v against p(v | h ~ p(h|v)) (the guide's cheap monitor)."""
        with no_grad():
            h = self.model.gibbs_step(v)[0]
            return ((self.model.visible_logits(h).sigmoid() - v) ** 2).sum(dim=1).mean().item()

    def validate(self, data):
        test = tensor(np.asarray(data.test_images).reshape(len(data.test_images), -1), device=self.device)
        return {"test_reconstruction": self.reconstruction_error(test)}

    def log_partition(self):
        """{"log_partition", "log_partition_stderr", "log_partition_method"}: exact or AIS."""
        if self.model.hidden <= EXACT_HIDDEN_LIMIT:
            return {"log_partition": self.model.log_partition(), "log_partition_stderr": 0.0,
                    "log_partition_method": "exact"}
        runs, steps = (4, 20) if self.dry_run else (self.config.ais_runs, self.config.ais_steps)
        log_z, error = self.model.annealed_log_partition(runs, steps, self.base_visible_bias)
        return {"log_partition": log_z, "log_partition_stderr": error, "log_partition_method": "ais"}

    def evaluate(self, data):
        """The test log-likelihood in nats on the fixed binarised test split: mean -F(v) - log Z."""
        report = self.log_partition()

        def log_probability(images):
            with no_grad():
                v = tensor(images.reshape(len(images), -1), device=self.device)
                return (-self.model.free_energy(v)).numpy() - report["log_partition"]
        return {**binary_test_log_likelihood(log_probability), **report}

    # ---- sampling ------------------------------------------------------------------------------------
    def sample(self, n, sampler="gibbs", chains=100, burn_in=1000, thin=100, step_size=0.01):
        """(n, S, S) images in [0, 1]: n / ``chains`` kept states of each chain after ``burn_in``
        steps, ``thin`` steps apart. Gibbs: the visible means p(v = 1 | h); MALA: v = sigmoid(u)."""
        return self.run_chains(n, sampler, chains, burn_in, thin, step_size)[0]

    def run_chains(self, n, sampler="gibbs", chains=100, burn_in=1000, thin=100, step_size=0.01):
        """(images (n, S, S), the ``SamplerResult``): what ``sample`` returns and how it got there."""
        if sampler not in ("gibbs", "mala"):
            raise ValueError(f"rbm: expected sampler 'gibbs' or 'mala', got {sampler!r}")
        if n < 1 or chains < 1:
            raise ValueError(f"rbm: expected n >= 1 and chains >= 1, got {n}, {chains}")
        chains = min(chains, n)
        per_chain = -(-n // chains)
        seed = int(generator().integers(2 ** 63))  # the run's seed (`sample --seed`) decides the chains
        start = (np.random.default_rng(seed).random((chains, self.model.visible))
                 < 1 / (1 + np.exp(-self.base_visible_bias))).astype(np.float64)  # the base-rate model
        if sampler == "gibbs":
            result = mcmc.gibbs(self.gibbs_blocks(), np.concatenate([start, np.zeros((chains, self.model.hidden))], 1),
                                per_chain, seed, burn_in=burn_in, thin=thin)
            with no_grad():
                hidden = tensor(result.samples[..., self.model.visible:].reshape(-1, self.model.hidden))
                images = self.model.visible_logits(hidden).sigmoid().numpy()
        else:
            relaxed = np.clip(start, 0.05, 0.95)  # inside the box: u = logit(v) finite
            result = mcmc.langevin(relaxed_log_density(self.model), np.log(relaxed / (1 - relaxed)), per_chain,
                                   step_size, seed=seed, burn_in=burn_in, thin=thin)
            images = 1 / (1 + np.exp(-result.samples.reshape(-1, self.model.visible)))
        images = images.reshape(per_chain, chains, -1).transpose(1, 0, 2).reshape(-1, self.side, self.side)[:n]
        return np.clip(images, 0, 1).astype(np.float32), result

    def gibbs_blocks(self):
        """The two blocks of the joint state [v | h] (chains, V + H): h ~ p(h|v), then v ~ p(v|h)."""
        visible, hidden = slice(0, self.model.visible), slice(self.model.visible, None)

        def draw(logits, state, rng):
            with no_grad():
                probability = logits(tensor(state)).sigmoid().numpy()
            return (rng.random(probability.shape) < probability).astype(np.float64)
        return [(hidden, lambda state, rng: draw(self.model, state[:, visible], rng)),
                (visible, lambda state, rng: draw(self.model.visible_logits, state[:, hidden], rng))]

    def figures(self, data):
        """A grid of MALA samples beside the Gibbs ones (``samples.png``)."""
        if self.dry_run:
            return {}
        return {"samples_mala": self.sample(100, sampler="mala")}
