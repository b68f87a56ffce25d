"""The samplers against known answers, at fixed seeds.

Tolerances come from the chains themselves: a sample mean (or covariance entry) must lie within
FOUR Monte-Carlo standard errors of the exact value, MCSE = sd / sqrt(ESS), the ESS of the mean
computed by ``scratchgen.mcmc`` from the same draws (so slow mixing widens the band honestly
instead of failing by chance). A discrete target is checked with a chi-square test on the final
state of many independent chains (independent draws, so the test's assumptions hold), at p > 0.001.
"""
import numpy as np
import pytest
from scipy import stats

import scratchgen as sg
from scratchgen import mcmc
from scratchgen.mcmc import effective_sample_size

STANDARD_ERRORS = 4.0


# ---- targets with known moments ------------------------------------------------------------------
COVARIANCE = np.array([[1.0, 0.8], [0.8, 1.5]])


def correlated_gaussian(x):
    precision = sg.tensor(np.linalg.inv(COVARIANCE))
    return -0.5 * ((x @ precision) * x).sum(dim=1)


BANANA_BEND, BANANA_WIDTH = 0.5, 1.0   # x1 ~ N(0, 1), x2 | x1 ~ N(bend (x1^2 - 1), width^2)


def banana(x):
    """A Rosenbrock-shaped density: mean 0, covariance diag(1, width^2 + 2 bend^2)."""
    first, second = x[:, 0], x[:, 1]
    bent = (second - BANANA_BEND * (first * first - 1)) / BANANA_WIDTH
    return -0.5 * (first * first + bent * bent)


MIXTURE_WEIGHTS, MIXTURE_MEANS, MIXTURE_SCALE = np.array([0.3, 0.7]), np.array([[-1.5, 0.0], [1.5, 0.5]]), 0.7


def two_modes(x):
    """0.3 N((-1.5, 0), 0.7^2 I) + 0.7 N((1.5, 0.5), 0.7^2 I): two modes, the valley between them 10x lower."""
    components = []
    for weight, mean in zip(MIXTURE_WEIGHTS, MIXTURE_MEANS):
        offset = (x - sg.tensor(mean)) / MIXTURE_SCALE
        components.append(np.log(weight) - 0.5 * (offset * offset).sum(dim=1, keepdim=True))
    return sg.logsumexp(sg.cat(components, dim=1), dim=1)


def mixture_moments():
    mean = MIXTURE_WEIGHTS @ MIXTURE_MEANS
    second = sum(w * (MIXTURE_SCALE ** 2 * np.eye(2) + np.outer(m, m)) for w, m in zip(MIXTURE_WEIGHTS, MIXTURE_MEANS))
    return mean, second - np.outer(mean, mean)


TARGETS = {
    "correlated gaussian": (correlated_gaussian, np.zeros(2), COVARIANCE),
    "banana": (banana, np.zeros(2), np.diag([1.0, BANANA_WIDTH ** 2 + 2 * BANANA_BEND ** 2])),
    "two modes": (two_modes, *mixture_moments()),
}


def assert_moments_within_standard_errors(samples, mean, covariance):
    """Each mean and covariance entry within STANDARD_ERRORS MCSEs (sd / sqrt(ESS of the mean))."""
    def check(series, exact, what):
        flat = series.reshape(-1)
        error = flat.std(ddof=1) / np.sqrt(effective_sample_size(series, method="mean"))
        assert abs(flat.mean() - exact) < STANDARD_ERRORS * error, \
            f"{what}: {flat.mean():.4f}, exact {exact:.4f}, MCSE {error:.4f}"
    for i in range(2):
        check(samples[..., i], mean[i], f"mean {i}")
        for j in range(i, 2):  # E[(x_i - mu_i)(x_j - mu_j)] with the exact means
            check((samples[..., i] - mean[i]) * (samples[..., j] - mean[j]), covariance[i, j], f"cov {i}{j}")


# Starts spread like the targets. (From N(0, 2^2), one MALA chain of the 64 lands far out on the
# banana, where the gradient is so steep that every proposal overshoots: it never moves again —
# the tail behaviour that makes MALA not geometrically ergodic for such targets.)
START = np.random.default_rng(0).standard_normal((64, 2))


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize("sampler", ["metropolis_hastings", "mala"])
def test_means_and_covariances_match_the_exact_ones(target, sampler):
    log_prob, mean, covariance = TARGETS[target]
    if sampler == "mala":
        result = mcmc.langevin(log_prob, START, steps=1000, step_size=0.1, seed=1, burn_in=300)
    else:
        result = mcmc.metropolis_hastings(log_prob, START, 1000, 1.0, seed=1, burn_in=300)
    assert result.samples.shape == (1000, 64, 2) and isinstance(result.acceptance_rate, float)
    assert result.rhat().max() < 1.05  # the chains agree (the two-mode chains hop between the modes)
    assert_moments_within_standard_errors(result.samples, mean, covariance)


# ---- discrete targets: chi-square on independent chains -------------------------------------------
TABLE = np.random.default_rng(3).dirichlet(np.ones(12)).reshape(4, 3)  # p(a, b), a in 0..3, b in 0..2


def assert_frequencies_match(cells, probabilities):
    counts = np.bincount(cells, minlength=probabilities.size)
    expected = probabilities.reshape(-1) * len(cells)
    assert stats.chisquare(counts, expected).pvalue > 1e-3, (counts, expected.round(1))


def test_metropolis_hastings_visits_cells_of_a_discrete_table_in_proportion():
    """A 4 x 3 table as a piecewise-constant density on the box [0, 4) x [0, 3): the chains' cells
    floor(x) must have the table's distribution. The final states of 4,000 chains are independent."""
    def log_prob(x):
        values = x.numpy()
        inside = (values >= 0).all(axis=1) & (values[:, 0] < 4) & (values[:, 1] < 3)
        cells = np.floor(np.clip(values, 0, [3.5, 2.5])).astype(int)
        return sg.tensor(np.where(inside, np.log(TABLE[cells[:, 0], cells[:, 1]]), -np.inf))
    start = np.random.default_rng(4).uniform([0, 0], [4, 3], size=(4000, 2))
    result = mcmc.metropolis_hastings(log_prob, start, steps=1, step_size=1.0, seed=5, burn_in=60, adapt=False)
    final = np.floor(result.samples[-1]).astype(int)
    assert_frequencies_match(final[:, 0] * 3 + final[:, 1], TABLE)


def conditional_draw(axis):
    """draw(state, rng) of one coordinate of the table from p(that coordinate | the other)."""
    def draw(state, rng):
        other = state[:, 1 - axis].astype(int)
        rows = TABLE[:, other].T if axis == 0 else TABLE[other]        # (chains, values of this coordinate)
        cumulative = np.cumsum(rows / rows.sum(axis=1, keepdims=True), axis=1)
        return (rng.random((len(state), 1)) > cumulative).sum(axis=1, keepdims=True)
    return draw


def test_gibbs_visits_the_cells_of_a_discrete_table_in_proportion():
    start = np.zeros((4000, 2))  # every chain starts in the same cell
    result = mcmc.gibbs([([0], conditional_draw(0)), ([1], conditional_draw(1))], start, steps=1, seed=6,
                        burn_in=30)
    final = result.samples[-1].astype(int)
    assert result.acceptance_rate == 1.0
    assert_frequencies_match(final[:, 0] * 3 + final[:, 1], TABLE)


def test_a_biased_sampler_fails_the_same_chi_square_check():
    """The check can fail: skipping the second block leaves coordinate 1 where it started."""
    start = np.zeros((4000, 2))
    with pytest.raises(ValueError, match="belong to no block"):
        mcmc.gibbs([([0], conditional_draw(0))], start, steps=1)
    lazy = mcmc.gibbs([([0], conditional_draw(0)), ([1], lambda state, rng: state[:, 1:])], start, 1, burn_in=30)
    with pytest.raises(AssertionError):
        final = lazy.samples[-1].astype(int)
        assert_frequencies_match(final[:, 0] * 3 + final[:, 1], TABLE)


# ---- Langevin on a Gaussian: known answers -----------------------------------------------------------
def standard_normal(x):
    return -0.5 * (x * x).sum(dim=1)


def exact_mala_acceptance(step_size, dim, draws=400_000, seed=0):
    """MALA's mean acceptance on N(0, I_dim) in stationarity. For this target the log acceptance
    ratio is h (|x|^2 - |y|^2) / 4 with y = (1 - h) x + sqrt(2 h) eps (the proposal and reverse
    densities combine in closed form), averaged here over independent x ~ N(0, I), eps ~ N(0, I)."""
    rng = np.random.default_rng(seed)
    x, noise = rng.standard_normal((2, draws, dim))
    y = (1 - step_size) * x + np.sqrt(2 * step_size) * noise
    return np.minimum(1.0, np.exp(step_size * ((x * x).sum(1) - (y * y).sum(1)) / 4)).mean()


@pytest.mark.parametrize("step_size", [0.2, 0.6, 1.2])
def test_mala_acceptance_follows_the_step_size_curve_on_a_gaussian(step_size):
    dim, chains, steps = 10, 200, 200
    start = np.random.default_rng(7).standard_normal((chains, dim))  # in stationarity from the start
    result = mcmc.langevin(standard_normal, start, steps, step_size, seed=8)
    exact = exact_mala_acceptance(step_size, dim)
    # the mean of chains x steps acceptance indicators; chains are independent, so bound the error
    # by treating each chain's rate as one draw: sd of the chain rates / sqrt(chains)
    rates = np.diff(result.samples, axis=0, prepend=start[None]).any(axis=2).mean(axis=0)
    assert abs(result.acceptance_rate - rates.mean()) < 1e-12
    assert abs(result.acceptance_rate - exact) < STANDARD_ERRORS * rates.std(ddof=1) / np.sqrt(chains)


def test_unadjusted_langevin_is_biased_as_predicted_and_mala_is_not():
    """On N(0, 1), ULA's chain x' = (1 - h) x + sqrt(2 h) eps has stationary variance 1 / (1 - h / 2)."""
    step_size, start = 0.5, np.random.default_rng(9).standard_normal((400, 1))
    for adjust, variance in ((False, 1 / (1 - step_size / 2)), (True, 1.0)):
        result = mcmc.langevin(standard_normal, start, 400, step_size, adjust=adjust, seed=10, adapt=False)
        assert_second_moment(result.samples[..., 0], variance)
    assert result.acceptance_rate < 1 and mcmc.langevin(standard_normal, start, 5, step_size,
                                                         adjust=False).acceptance_rate == 1.0


def assert_second_moment(draws, exact):
    square = draws * draws
    error = square.std(ddof=1) / np.sqrt(effective_sample_size(square, method="mean"))
    assert abs(square.mean() - exact) < STANDARD_ERRORS * error, (square.mean(), exact, error)


@pytest.mark.parametrize("sampler, target", [("mh", 0.234), ("mala", 0.574)])
def test_warm_up_adapts_the_step_size_toward_the_target_acceptance(sampler, target):
    start = np.random.default_rng(11).standard_normal((100, 5))
    run = (lambda **kw: mcmc.metropolis_hastings(standard_normal, start, 300, 20.0, seed=12, **kw)) \
        if sampler == "mh" else (lambda **kw: mcmc.langevin(standard_normal, start, 300, 5.0, seed=12, **kw))
    fixed, adapted = run(), run(burn_in=300)
    assert fixed.acceptance_rate < 0.05                      # far too large a step
    assert adapted.acceptance_rate == pytest.approx(target, abs=0.05)
    assert adapted.step_size < fixed.step_size
    assert run(burn_in=300, adapt=False).step_size == fixed.step_size


def test_a_preconditioner_shaped_like_the_target_mixes_faster():
    narrow = np.diag([1.0, 0.01])      # a target 10 x narrower in one direction

    def log_prob(x):
        return -0.5 * ((x @ sg.tensor(np.linalg.inv(narrow))) * x).sum(dim=1)
    start = np.random.default_rng(13).standard_normal((50, 2)) * [1.0, 0.1]
    plain = mcmc.metropolis_hastings(log_prob, start, 500, 0.5, seed=14, burn_in=200)
    shaped = mcmc.metropolis_hastings(log_prob, start, 500, 0.5, seed=14, burn_in=200, preconditioner=[1.0, 0.1])
    assert shaped.effective_sample_size()[0] > 3 * plain.effective_sample_size()[0]
    full = mcmc.metropolis_hastings(log_prob, start, 500, 0.5, seed=14, burn_in=200,
                                    preconditioner=np.linalg.cholesky(narrow))
    np.testing.assert_allclose(full.samples, shaped.samples)  # a diagonal L is the same proposal


def test_the_same_seed_gives_the_same_chains():
    start = np.zeros((4, 3))
    first = mcmc.langevin(standard_normal, start, 20, 0.3, seed=3)
    np.testing.assert_array_equal(first.samples, mcmc.langevin(standard_normal, start, 20, 0.3, seed=3).samples)
    assert not np.array_equal(first.samples, mcmc.langevin(standard_normal, start, 20, 0.3, seed=4).samples)
    thinned = mcmc.langevin(standard_normal, start, 10, 0.3, seed=3, thin=2)
    np.testing.assert_array_equal(thinned.samples, first.samples[1::2])


# ---- bad input -------------------------------------------------------------------------------------
def log_of_first_coordinate(x):
    return x[:, 0].log()  # NaN for x_0 < 0, -inf at 0: outside the support


@pytest.mark.parametrize("call, message", [
    (lambda: mcmc.metropolis_hastings(log_of_first_coordinate, -np.ones((3, 2)), 5, 0.1),
     "finite log-density at the initial state, got NaN/inf in chains [0, 1, 2]"),
    (lambda: mcmc.langevin(log_of_first_coordinate, np.array([[1.0, 0], [0, 0]]), 5, 0.1),
     "finite log-density at the initial state, got NaN/inf in chains [1]"),
    (lambda: mcmc.langevin(standard_normal, np.zeros(3), 5, 0.1), "initial of shape (chains, dim), got shape (3,)"),
    (lambda: mcmc.metropolis_hastings(standard_normal, [[np.inf, 0.0]], 5, 0.1), "finite initial state"),
    (lambda: mcmc.metropolis_hastings(lambda x: x.sum(), np.zeros((3, 2)), 5, 0.1),
     "a (chains,) = (3,) Tensor, got Tensor of shape ()"),
    (lambda: mcmc.langevin(lambda x: x, np.zeros((3, 2)), 5, 0.1), "got Tensor of shape (3, 2)"),
    (lambda: mcmc.metropolis_hastings(standard_normal, np.zeros((3, 2)), 5, 0.0), "positive, finite step_size"),
    (lambda: mcmc.langevin(standard_normal, np.zeros((3, 2)), 5, -1.0), "positive, finite step_size, got -1.0"),
    (lambda: mcmc.langevin(standard_normal, np.zeros((3, 2)), 5, float("nan")), "positive, finite step_size"),
    (lambda: mcmc.langevin(standard_normal, np.zeros((3, 2)), 0, 0.1), "steps an integer >= 1, got 0"),
    (lambda: mcmc.metropolis_hastings(standard_normal, np.zeros((3, 2)), 5, 0.1, thin=0), "thin an integer >= 1"),
    (lambda: mcmc.metropolis_hastings(standard_normal, np.zeros((3, 2)), 5, 0.1, preconditioner=np.eye(3)),
     "preconditioner of shape (2,) or (2, 2), got (3, 3)"),
    (lambda: mcmc.langevin(standard_normal, np.zeros((3, 2)), 5, 0.1, target_acceptance=1.5), "target_acceptance"),
    (lambda: mcmc.gibbs([([0, 1], lambda state, rng: state[:, :1])], np.zeros((3, 2)), 5),
     "draw to return shape (3, 2), got (3, 1)"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError) as error:
        call()
    assert message in str(error.value)


def test_a_proposal_outside_the_support_is_rejected_not_propagated():
    start = np.full((20, 1), 0.5)
    for result in (mcmc.metropolis_hastings(log_of_first_coordinate, start, 200, 2.0, seed=1, adapt=False),
                   mcmc.langevin(log_of_first_coordinate, start, 200, 0.5, seed=1, adapt=False)):
        assert np.isfinite(result.samples).all() and (result.samples > 0).all()
        assert 0 < result.acceptance_rate < 1
    with pytest.raises(FloatingPointError, match="left the support"):
        mcmc.langevin(log_of_first_coordinate, start, 200, 0.5, adjust=False, seed=1)
