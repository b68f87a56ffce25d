"""Markov chain Monte Carlo on scratchgen's engine: samplers and their diagnostics.

    from scratchgen import mcmc
    result = mcmc.langevin(log_prob, initial, steps=1000, step_size=0.1, burn_in=500)   # MALA
    result.samples.shape            # (1000, chains, dim)
    result.acceptance_rate          # a float
    mcmc.effective_sample_size(result.samples), mcmc.split_rhat(result.samples)   # per coordinate

``samplers``: ``metropolis_hastings``, ``langevin`` (MALA or unadjusted), ``gibbs``;
``diagnostics``: rank-normalised bulk ESS and split R-hat (Vehtari et al. 2021). docs/mcmc.md
walks through them.
"""
from .diagnostics import (effective_sample_size, monte_carlo_standard_error, rank_normalise,  # noqa: F401
                          split_rhat)
from .samplers import SamplerResult, gibbs, langevin, metropolis_hastings  # noqa: F401
