"""Drawing the next character (``scratchgen.models.language.choose``): temperature and top-k."""
import numpy as np
import pytest

from scratchgen.models.language import check_sampling, choose
from scratchgen.runner import forked_rng

LOG_PROBS = np.log([0.1, 0.2, 0.3, 0.4])


def shares(draws):
    return np.bincount(draws, minlength=4) / len(draws)


def test_top_k_keeps_the_k_most_likely_renormalised():
    with forked_rng(0, 2):
        draws = [choose(LOG_PROBS, 1.0, top_k=2) for _ in range(4000)]
    np.testing.assert_allclose(shares(draws), [0, 0, 3 / 7, 4 / 7], atol=0.025)


def test_temperature_sharpens_or_takes_the_most_likely():
    with forked_rng(1, 2):
        draws = [choose(LOG_PROBS, 0.5) for _ in range(4000)]      # p^2, renormalised
    np.testing.assert_allclose(shares(draws), np.array([1, 4, 9, 16]) / 30, atol=0.025)
    assert {choose(LOG_PROBS, 0.0, top_k=3) for _ in range(10)} == {3}


def test_sampling_is_a_function_of_the_seed():
    def draw(seed):
        with forked_rng(seed, 2):
            return [choose(LOG_PROBS) for _ in range(50)]
    assert draw(4) == draw(4) != draw(5)


def test_bad_sampling_options_are_refused():
    with pytest.raises(ValueError, match="expected length, temperature and top_k >= 0"):
        check_sampling(10, -0.5, 0)
