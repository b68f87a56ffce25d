"""ESS and split R-hat: equal to ArviZ's on chains of every kind, and right where the answer is known."""
import warnings

import numpy as np
import pytest

from scratchgen.mcmc import effective_sample_size, monte_carlo_standard_error, split_rhat


@pytest.fixture(scope="module")
def arviz():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # ArviZ announces its refactor on import
        return pytest.importorskip("arviz")


def autoregressive(rho, draws, chains, seed):
    """AR(1) chains x_t = rho x_t-1 + sqrt(1 - rho^2) eps_t, started in stationarity: N(0, 1) marginals."""
    rng = np.random.default_rng(seed)
    x = np.empty((draws, chains))
    x[0] = rng.standard_normal(chains)
    for t in range(1, draws):
        x[t] = rho * x[t - 1] + np.sqrt(1 - rho ** 2) * rng.standard_normal(chains)
    return x


def chain_kinds():
    rng = np.random.default_rng(0)
    return {
        "independent": rng.standard_normal((400, 4)),
        "autocorrelated": autoregressive(0.9, 1000, 4, seed=1),
        "anticorrelated": autoregressive(-0.5, 300, 3, seed=2),
        "not mixed": rng.standard_normal((200, 4)) + np.array([0.0, 0.0, 1.0, 3.0]),
        "heavy tails (Cauchy)": rng.standard_cauchy((500, 4)),
        "one chain, odd length": autoregressive(0.5, 301, 1, seed=3),
        "ties (discrete)": rng.integers(0, 3, (200, 4)).astype(float),
        "random walk": np.cumsum(rng.standard_normal((300, 2)), axis=0),
    }


@pytest.mark.parametrize("kind", list(chain_kinds()))
def test_ess_and_rhat_equal_arviz(arviz, kind):
    draws = chain_kinds()[kind]          # ours: (draws, chains); ArviZ: (chains, draws)
    for method in ("bulk", "mean"):
        expected = arviz.ess(draws.T, method=method)
        assert effective_sample_size(draws, method) == pytest.approx(float(expected), rel=1e-9), method
    if draws.shape[1] > 1:  # ArviZ needs two chains for R-hat; ours splits a single one
        assert split_rhat(draws) == pytest.approx(float(arviz.rhat(draws.T, method="rank")), rel=1e-9)


def test_ess_of_an_ar1_chain_is_near_its_closed_form():
    """ESS of an AR(1) chain with coefficient rho: S (1 - rho) / (1 + rho)."""
    rho, draws = 0.8, autoregressive(0.8, 4000, 4, seed=5)
    exact = draws.size * (1 - rho) / (1 + rho)
    assert effective_sample_size(draws, "mean") == pytest.approx(exact, rel=0.15)
    assert effective_sample_size(draws) == pytest.approx(exact, rel=0.15)
    assert effective_sample_size(np.random.default_rng(6).standard_normal((1000, 4))) == pytest.approx(4000,
                                                                                                     rel=0.1)


def test_rhat_is_near_one_for_mixed_chains_and_large_for_stuck_ones():
    mixed = np.random.default_rng(7).standard_normal((1000, 4))
    assert split_rhat(mixed) < 1.01
    stuck = mixed + np.array([0.0, 0.0, 0.0, 2.0])       # one chain in another place
    assert split_rhat(stuck) > 1.1
    wide = mixed * np.array([1.0, 1.0, 1.0, 4.0])        # same centre, another scale: the folded R-hat sees it
    assert split_rhat(wide) > 1.1
    drifting = mixed + np.linspace(0, 3, 1000)[:, None]  # every chain moving: the split halves disagree
    assert split_rhat(drifting) > 1.1


def test_three_dimensional_draws_give_one_value_per_coordinate():
    draws = np.stack([autoregressive(0.9, 500, 4, 8), np.random.default_rng(9).standard_normal((500, 4))], axis=2)
    ess = effective_sample_size(draws)
    assert ess.shape == (2,) and ess[0] < ess[1] / 5
    assert split_rhat(draws).shape == (2,)
    mcse = monte_carlo_standard_error(draws)
    assert mcse[0] == pytest.approx(draws[..., 0].std(ddof=1) / np.sqrt(effective_sample_size(draws[..., 0], "mean")))


@pytest.mark.parametrize("draws, message", [
    (np.zeros(10), "shape (draws, chains)"),
    (np.zeros((3, 2)), "at least 4 draws"),
    (np.array([[0.0, np.nan]] * 10), "finite draws"),
])
def test_bad_draws_are_refused(draws, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        effective_sample_size(draws)
    with pytest.raises(ValueError, match="expected method"):
        effective_sample_size(np.zeros((10, 2)), method="tail")
