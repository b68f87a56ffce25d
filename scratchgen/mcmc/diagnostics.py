"""How well a set of Markov chains has explored its target: effective sample size and split R-hat,
rank-normalised as Vehtari, Gelman, Simpson, Carpenter & Bürkner (2021) define them.

Draws arrive as the samplers return them, ``(draws, chains)`` or ``(draws, chains, dim)``; each
statistic is computed per coordinate.

Split chains
    Each chain is cut into its first and second half, so m chains of n draws become 2m chains of
    n/2 (an odd middle draw is dropped). A chain that drifts (not yet stationary) then disagrees
    with itself, which R-hat sees.
Rank normalisation
    Pool all S draws, replace each by its rank r (ties share their average rank) and map the rank
    through the normal quantile function with Blom's offset:  z = Phi^-1((r - 3/8) / (S + 1/4)).
    The statistics of z exist even when the target has no mean or variance (Cauchy tails), and
    they no longer depend on a monotone transformation of the draws.
Split R-hat (bulk), on m' chains of n' draws z_ij
    W = mean_j s_j^2                     (within-chain variance, s_j^2 with ddof 1)
    B = n' var_j(mean_i z_ij)            (between-chain variance, ddof 1)
    R-hat = sqrt(((n' - 1) / n' W + B / n') / W)
    ``split_rhat`` returns the larger of the bulk R-hat and the R-hat of the *folded* draws
    |x - median(x)| (rank-normalised too), which catches chains that agree in location but not in
    scale. R-hat near 1 (below 1.01) says the chains agree; well above 1, they have not mixed.
Effective sample size, from the autocorrelations rho_t of the split chains
    rho_t = 1 - (W - mean_j gamma_j(t)) / var+,   var+ = (n' - 1) / n' W + B / n'
    (gamma_j(t): chain j's autocovariance at lag t, computed by FFT), summed in pairs
    P_k = rho_2k + rho_2k+1 while positive (Geyer's initial positive sequence) and forced to
    decrease (his initial monotone sequence); tau = -1 + 2 sum_k P_k (at least 1 / log10(S)),
    ESS = S / tau. "bulk" ESS uses the rank-normalised draws (the paper's default); "mean" uses the
    draws themselves — the ESS to divide a variance by for the Monte-Carlo standard error of a
    mean: MCSE = sd / sqrt(ESS).

The same choices as ArviZ's ``ess(method="bulk"/"mean")`` and ``rhat(method="rank")``, which the
tests use as the oracle.
"""
import numpy as np
from scipy import special, stats

BLOM_OFFSET = 3 / 8
MINIMUM_DRAWS = 4


def _as_draws(draws, op):
    """(draws, chains, dim) float64 from (draws, chains) or (draws, chains, dim), or a clear error."""
    draws = np.asarray(draws, dtype=np.float64)
    if draws.ndim not in (2, 3):
        raise ValueError(f"{op}: expected draws of shape (draws, chains) or (draws, chains, dim), "
                         f"got shape {draws.shape}")
    if draws.shape[0] < MINIMUM_DRAWS:
        raise ValueError(f"{op}: expected at least {MINIMUM_DRAWS} draws per chain, got {draws.shape[0]}")
    if not np.isfinite(draws).all():
        raise ValueError(f"{op}: expected finite draws, got {int((~np.isfinite(draws)).sum())} NaN/inf values")
    return draws if draws.ndim == 3 else draws[:, :, None]


def _per_coordinate(statistic, draws, squeeze):
    values = np.array([statistic(draws[:, :, index]) for index in range(draws.shape[2])])
    return float(values[0]) if squeeze else values


def split_chains(draws):
    """(n, m) -> (n // 2, 2 m): each chain's first half and its last half as two chains."""
    half = draws.shape[0] // 2
    return np.concatenate([draws[:half], draws[draws.shape[0] - half:]], axis=1)


def rank_normalise(draws):
    """z = Phi^-1((r - 3/8) / (S + 1/4)) of the pooled ranks r (ties averaged), same shape."""
    ranks = stats.rankdata(draws, method="average").reshape(draws.shape)
    return special.ndtri((ranks - BLOM_OFFSET) / (draws.size - 2 * BLOM_OFFSET + 1))


def _variances(chains):
    """(within-chain variance W, var+ the pooled estimate of the target's variance) of (n, m) draws."""
    count = chains.shape[0]
    within = chains.var(axis=0, ddof=1).mean()
    between = count * chains.mean(axis=0).var(ddof=1) if chains.shape[1] > 1 else 0.0
    return within, (count - 1) / count * within + between / count


def _rhat(chains):
    within, pooled = _variances(chains)
    return float(np.sqrt(pooled / within))


def _autocovariances(chains):
    """(n, m) -> (n, m): gamma_j(t) = 1/n sum_i (z_ij - mean_j)(z_i+t,j - mean_j), by FFT."""
    count = chains.shape[0]
    centred = chains - chains.mean(axis=0)
    spectrum = np.fft.rfft(centred, n=2 * count, axis=0)  # zero-padded: no wrap-around
    return np.fft.irfft(spectrum * spectrum.conj(), n=2 * count, axis=0)[:count] / count


def _ess(chains):
    """The effective sample size of (n, m) draws (see the module docstring)."""
    count, number = chains.shape
    if np.ptp(chains) < np.finfo(float).resolution:
        return float(chains.size)  # a constant: every draw is as good as independent
    within, pooled = _variances(chains)
    correlations = 1 - (within - _autocovariances(chains).mean(axis=1)) / pooled  # rho_t
    correlations[0] = 1.0
    # Geyer: sum the pairs P_k = rho_2k + rho_2k+1 while they stay positive, each at most the one
    # before (the initial monotone sequence); the first pair that is not positive ends the sum,
    # its even term counted once if positive. Pairs run up to lag n - 3.
    pair_sums, last_even = [], 0.0
    for lag in range(0, max(count - 2, 1), 2):
        pair = correlations[lag] + correlations[lag + 1]
        if pair <= 0 and lag > 0:
            last_even = max(correlations[lag], 0.0)
            break
        pair_sums.append(min(pair, pair_sums[-1]) if pair_sums else pair)
    else:
        last_even = max(correlations[lag], 0.0)
        pair_sums.pop()  # the last pair reached is treated as the one that ends the sum
    tau = max(-1 + 2 * sum(pair_sums) + last_even, 1 / np.log10(chains.size))
    return float(count * number / tau)


def effective_sample_size(draws, method="bulk"):
    """ESS per coordinate of (draws, chains[, dim]): a float, or a (dim,) array for 3-D draws.
    ``method`` "bulk" (rank-normalised split chains) or "mean" (split chains as they are)."""
    if method not in ("bulk", "mean"):
        raise ValueError(f"effective_sample_size: expected method 'bulk' or 'mean', got {method!r}")
    squeeze = np.ndim(draws) == 2
    draws = _as_draws(draws, "effective_sample_size")
    if method == "bulk":
        return _per_coordinate(lambda chains: _ess(rank_normalise(split_chains(chains))), draws, squeeze)
    return _per_coordinate(lambda chains: _ess(split_chains(chains)), draws, squeeze)


def split_rhat(draws):
    """Rank-normalised split R-hat per coordinate of (draws, chains[, dim]): max(bulk, folded)."""
    squeeze = np.ndim(draws) == 2
    draws = _as_draws(draws, "split_rhat")
    if draws.shape[1] < 1:
        raise ValueError(f"split_rhat: expected at least one chain, got shape {draws.shape}")

    def rhat(chains):
        split = split_chains(chains)
        folded = np.abs(split - np.median(split))
        return max(_rhat(rank_normalise(split)), _rhat(rank_normalise(folded)))
    return _per_coordinate(rhat, draws, squeeze)


def monte_carlo_standard_error(draws):
    """MCSE of the mean per coordinate: sd / sqrt(ESS of the mean)."""
    squeeze = np.ndim(draws) == 2
    spread = _as_draws(draws, "monte_carlo_standard_error").std(axis=(0, 1), ddof=1)
    errors = spread / np.sqrt(effective_sample_size(draws, method="mean"))
    return float(errors) if squeeze else errors
