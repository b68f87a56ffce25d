"""Three Markov chain Monte Carlo samplers, many chains at once.

    result = metropolis_hastings(log_prob, initial, steps, step_size, seed=0)
    result = langevin(log_prob, initial, steps, step_size, adjust=True, seed=0)      # MALA; False: ULA
    result = gibbs(blocks, initial, steps, seed=0)
    result.samples          # NumPy (steps, chains, dim): the kept draws
    result.acceptance_rate  # float: the share of proposals accepted over the kept steps

``log_prob`` maps a (chains, dim) Tensor to a (chains,) Tensor of log-densities (up to a constant),
written with scratchgen ops; Langevin gets its gradient from the engine's autograd. ``initial`` is
a (chains, dim) array: one starting point per chain. Every chain moves independently; batching
them only shares the cost of each call.

Metropolis–Hastings (random walk)
    propose y = x + h L eps, eps ~ N(0, I)      (L: an optional preconditioner, the identity
                                                 by default; symmetric, so q cancels)
    accept with probability min(1, p(y) / p(x)), else stay at x.
Langevin, with step size h
    propose y = x + h grad log p(x) + sqrt(2 h) eps
    unadjusted (ULA): always move to y. Cheap, but its chain targets a slightly wrong distribution
        (on N(0, 1) its stationary variance is 1 / (1 - h / 2)); the bias shrinks with h.
    adjusted (MALA): accept with probability min(1, p(y) q(x|y) / (p(x) q(y|x))),
        q(y|x) = N(y; x + h grad log p(x), 2 h I), which makes p exactly stationary.
Gibbs (blocked)
    each sweep redraws every block of coordinates from its conditional given the rest:
    ``blocks`` is a sequence of (coordinates, draw) with ``draw(state, rng)`` returning new values
    of ``state[:, coordinates]`` drawn from p(those | the rest). Every move is accepted.

Options shared by all (keywords): ``burn_in`` steps run first and discarded; ``thin`` steps
between kept draws (``steps`` kept draws cost steps x thin steps). During burn-in, MH and MALA adapt
their step size toward ``target_acceptance`` (0.234 for MH, 0.574 for MALA: the optimal rates of
Roberts, Gelman & Gilks 1997 and Roberts & Rosenthal 1998) by a Robbins–Monro recursion on log h,

    log h <- log h + (mean acceptance probability over chains - target) / t^0.6,

and keep the final h for the kept steps (``result.step_size``); ``adapt=False`` keeps h fixed.
A proposal whose log-density is NaN or -inf (outside the support) is rejected; a start point
whose log-density is not finite is an error.
"""
import dataclasses
import time

import numpy as np

from ..autograd import grad, no_grad
from ..tensor import tensor

MH_TARGET_ACCEPTANCE = 0.234
MALA_TARGET_ACCEPTANCE = 0.574
ADAPTATION_DECAY = 0.6  # Robbins–Monro gains 1 / t^0.6: summing to infinity, squares finite


@dataclasses.dataclass
class SamplerResult:
    """What a sampler returns. ``samples`` (steps, chains, dim); ``log_probs`` (steps, chains)
    (NaN for Gibbs, which never evaluates a density); ``step_size`` after adaptation."""
    samples: np.ndarray
    acceptance_rate: float
    step_size: float
    log_probs: np.ndarray
    seconds: float

    def effective_sample_size(self, method="bulk"):
        """(dim,) ESS of each coordinate over all chains (``diagnostics.effective_sample_size``)."""
        from .diagnostics import effective_sample_size
        return effective_sample_size(self.samples, method)

    def rhat(self):
        """(dim,) rank-normalised split R-hat of each coordinate."""
        from .diagnostics import split_rhat
        return split_rhat(self.samples)


# ---- checks ----------------------------------------------------------------------------------------
def _check_initial(initial, op):
    state = np.array(initial, dtype=np.float64)  # a copy: the chains never write into the caller's array
    if state.ndim != 2 or 0 in state.shape:
        raise ValueError(f"{op}: expected initial of shape (chains, dim), got shape {state.shape}")
    if not np.isfinite(state).all():
        raise ValueError(f"{op}: expected a finite initial state, got NaN/inf in chains "
                         f"{np.flatnonzero(~np.isfinite(state).all(axis=1)).tolist()[:10]}")
    return state


def _check_counts(op, steps, burn_in, thin):
    for name, value, least in (("steps", steps, 1), ("burn_in", burn_in, 0), ("thin", thin, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise ValueError(f"{op}: expected {name} an integer >= {least}, got {value!r}")


def _check_step_size(op, step_size, target_acceptance):
    if not (isinstance(step_size, (int, float, np.floating)) and np.isfinite(step_size) and step_size > 0):
        raise ValueError(f"{op}: expected a positive, finite step_size, got {step_size!r}")
    if not 0 < target_acceptance < 1:
        raise ValueError(f"{op}: expected target_acceptance in (0, 1), got {target_acceptance!r}")


def _outside_the_support_is_expected():
    """NumPy's warnings off while a density is evaluated: log of a negative number (NaN) or of 0
    (-inf) is how a density says "outside the support", and the samplers reject such points."""
    return np.errstate(invalid="ignore", divide="ignore", over="ignore")


def _log_density(log_prob, state, op):
    """log_prob at ``state`` as a (chains,) float64 array, checked; NaN becomes -inf (rejected)."""
    with no_grad(), _outside_the_support_is_expected():
        value = log_prob(tensor(state))
    return _checked_values(value, state, op)


def _checked_values(value, state, op):
    shape = getattr(value, "shape", None)
    if shape != (state.shape[0],):
        raise ValueError(f"{op}: expected log_prob to map a (chains, dim) = {state.shape} Tensor to a (chains,) "
                         f"= ({state.shape[0]},) Tensor, got {type(value).__name__} of shape {shape}")
    values = np.asarray(value.numpy() if hasattr(value, "numpy") else value, dtype=np.float64)
    return np.where(np.isnan(values), -np.inf, values)


def _log_density_and_gradient(log_prob, state, op):
    """(log p, grad log p) at ``state``: ((chains,), (chains, dim)) float64 arrays. The chains are
    independent, so the gradient of sum_j log p(x_j) holds each chain's own gradient in its row."""
    point = tensor(state, requires_grad=True)
    with _outside_the_support_is_expected():
        value = log_prob(point)
        values = _checked_values(value, state, op)
        (gradient,) = grad(value.sum(), point)
    gradient = np.asarray(gradient.numpy(), dtype=np.float64)
    values = np.where(np.isfinite(gradient).all(axis=1), values, -np.inf)  # no direction: reject
    return values, gradient


def _check_start(values, op):
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise ValueError(f"{op}: expected a finite log-density at the initial state, got NaN/inf in chains "
                         f"{bad.tolist()[:10]} (start inside the support)")


# ---- the chain loop every sampler shares ------------------------------------------------------------
def _run(transition, state, steps, burn_in, thin, step_size, adapt, target_acceptance):
    """Run ``transition(state, step_size) -> (state, accepted (chains,) bool, acceptance probability
    (chains,))`` for burn_in + steps x thin steps; keep every ``thin``-th state after burn-in."""
    started = time.perf_counter()
    log_step = np.log(step_size)
    for step in range(1, burn_in + 1):
        state, _, probability = transition(state, np.exp(log_step))
        if adapt:
            log_step += (probability.mean() - target_acceptance) / step ** ADAPTATION_DECAY
    step_size = float(np.exp(log_step))
    chains, dim = state.x.shape
    samples, log_probs = np.empty((steps, chains, dim)), np.empty((steps, chains))
    accepted = 0
    for index in range(steps * thin):
        state, moved, _ = transition(state, step_size)
        accepted += int(moved.sum())
        if (index + 1) % thin == 0:
            samples[index // thin], log_probs[index // thin] = state.x, state.log_prob
    return SamplerResult(samples, accepted / (steps * thin * chains), step_size, log_probs,
                         time.perf_counter() - started)


@dataclasses.dataclass
class _Point:
    """Where each chain stands: x (chains, dim), log p(x) (chains,), and grad log p(x) for Langevin."""
    x: np.ndarray
    log_prob: np.ndarray
    gradient: np.ndarray = None

    def where(self, accepted, proposal):
        """Each chain at ``proposal`` if accepted there, else where it was."""
        keep = accepted[:, None]
        gradient = None if self.gradient is None else np.where(keep, proposal.gradient, self.gradient)
        return _Point(np.where(keep, proposal.x, self.x), np.where(accepted, proposal.log_prob, self.log_prob),
                      gradient)


def _accept(rng, log_ratio):
    """Metropolis' rule: (accepted, min(1, exp(log_ratio))) per chain; a NaN ratio is a rejection."""
    log_ratio = np.where(np.isnan(log_ratio), -np.inf, log_ratio)
    probability = np.exp(np.minimum(log_ratio, 0.0))
    return np.log(rng.random(log_ratio.shape)) < log_ratio, probability


# ---- Metropolis–Hastings ------------------------------------------------------------------------------
def _preconditioner(preconditioner, dim, op):
    """A function eps (chains, dim) -> L eps: identity, per-coordinate scales or a (dim, dim) L."""
    if preconditioner is None:
        return lambda noise: noise
    matrix = np.asarray(preconditioner, dtype=np.float64)
    if matrix.shape == (dim,):
        return lambda noise: noise * matrix
    if matrix.shape == (dim, dim):
        return lambda noise: noise @ matrix.T
    raise ValueError(f"{op}: expected a preconditioner of shape ({dim},) or ({dim}, {dim}), got {matrix.shape}")


def metropolis_hastings(log_prob, initial, steps, step_size, seed=0, *, burn_in=0, thin=1, adapt=True,
                        target_acceptance=MH_TARGET_ACCEPTANCE, preconditioner=None):
    """Random-walk Metropolis–Hastings: ``steps`` kept draws of each chain (see the module docstring).

    ``preconditioner``: per-coordinate proposal scales (dim,) or a matrix L (dim, dim) so that
    proposals have covariance h^2 L L^T (e.g. the Cholesky factor of the target's covariance).
    """
    op = "metropolis_hastings"
    state = _check_initial(initial, op)
    _check_counts(op, steps, burn_in, thin)
    _check_step_size(op, step_size, target_acceptance)
    shape_noise = _preconditioner(preconditioner, state.shape[1], op)
    rng = np.random.default_rng(seed)
    start = _Point(state, _log_density(log_prob, state, op))
    _check_start(start.log_prob, op)

    def transition(point, size):
        x = point.x + size * shape_noise(rng.standard_normal(point.x.shape))
        proposal = _Point(x, _log_density(log_prob, x, op))
        accepted, probability = _accept(rng, proposal.log_prob - point.log_prob)
        return point.where(accepted, proposal), accepted, probability
    return _run(transition, start, steps, burn_in, thin, step_size, adapt, target_acceptance)


# ---- Langevin --------------------------------------------------------------------------------------
def _log_transition(to, start, size):
    """log q(to | start) up to a constant: -|to - start - h grad log p(start)|^2 / (4 h), per chain."""
    difference = to.x - start.x - size * start.gradient
    return -(difference * difference).sum(axis=1) / (4 * size)


def langevin(log_prob, initial, steps, step_size, adjust=True, seed=0, *, burn_in=0, thin=1, adapt=True,
             target_acceptance=MALA_TARGET_ACCEPTANCE):
    """Langevin dynamics: MALA (``adjust=True``) or the unadjusted ULA (``adjust=False``; every
    proposal is taken, ``acceptance_rate`` is 1 and the step size never adapts)."""
    op = "langevin"
    state = _check_initial(initial, op)
    _check_counts(op, steps, burn_in, thin)
    _check_step_size(op, step_size, target_acceptance)
    rng = np.random.default_rng(seed)
    start = _Point(state, *_log_density_and_gradient(log_prob, state, op))
    _check_start(start.log_prob, op)

    def transition(point, size):
        noise = rng.standard_normal(point.x.shape)
        x = point.x + size * point.gradient + np.sqrt(2 * size) * noise
        proposal = _Point(x, *_log_density_and_gradient(log_prob, x, op))
        if not adjust:
            if not np.isfinite(proposal.log_prob).all():
                raise FloatingPointError(f"{op}: the unadjusted chain left the support (log-density NaN/inf); "
                                         f"use a smaller step_size, or adjust=True")
            everywhere = np.ones(len(x), dtype=bool)
            return proposal, everywhere, everywhere.astype(np.float64)
        log_ratio = (proposal.log_prob - point.log_prob
                     + _log_transition(point, proposal, size) - _log_transition(proposal, point, size))
        accepted, probability = _accept(rng, log_ratio)
        return point.where(accepted, proposal), accepted, probability
    return _run(transition, start, steps, burn_in, thin, step_size, adapt and adjust, target_acceptance)


# ---- Gibbs -----------------------------------------------------------------------------------------
def _check_blocks(blocks, dim, op):
    covered = np.zeros(dim, dtype=bool)
    for number, block in enumerate(blocks):
        if not (isinstance(block, tuple) and len(block) == 2 and callable(block[1])):
            raise ValueError(f"{op}: expected blocks as (coordinates, draw(state, rng)) pairs, got {block!r:.80} "
                             f"as block {number}")
        covered[block[0]] = True
    if not covered.all():
        raise ValueError(f"{op}: coordinates {np.flatnonzero(~covered).tolist()[:10]} belong to no block; "
                         f"every coordinate must be redrawn")


def gibbs(blocks, initial, steps, seed=0, *, burn_in=0, thin=1):
    """Blocked Gibbs sampling: each step is one sweep over ``blocks`` (see the module docstring);
    ``draw(state, rng)`` gets the (chains, dim) state and NumPy's Generator."""
    op = "gibbs"
    state = _check_initial(initial, op)
    _check_counts(op, steps, burn_in, thin)
    _check_blocks(blocks, state.shape[1], op)
    rng = np.random.default_rng(seed)
    everywhere = np.ones(len(state), dtype=bool)
    no_density = np.full(len(state), np.nan)

    def sweep(point, size):
        x = point.x.copy()
        for coordinates, draw in blocks:
            values = np.asarray(draw(x, rng), dtype=np.float64)
            expected = x[:, coordinates].shape
            if values.shape != expected:
                raise ValueError(f"{op}: expected a block's draw to return shape {expected}, got {values.shape}")
            x[:, coordinates] = values
        return _Point(x, no_density), everywhere, everywhere.astype(np.float64)
    result = _run(sweep, _Point(state, no_density), steps, burn_in, thin, 1.0, False, 0.5)
    return dataclasses.replace(result, step_size=float("nan"))  # Gibbs has no step size
