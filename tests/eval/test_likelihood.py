"""Bits per dimension: one definition for discrete and dequantised-continuous models, pinned by the
uniform distribution (exactly log2 17 on both paths) and by a model both paths describe alike."""
import math

import numpy as np
import pytest

from scratchgen.data import load_digits_split
from scratchgen.eval import likelihood

LEVELS = load_digits_split().test_images[:40]


def test_the_uniform_distribution_is_log2_17_bits_on_both_paths():
    levels = likelihood.to_levels(LEVELS)
    pixels = levels[0].size
    discrete = likelihood.bits_per_dim(lambda batch, rows: np.full(len(batch), pixels * math.log(17)), levels)
    continuous = likelihood.bits_per_dim(lambda batch, rows: np.zeros(len(batch)), levels, continuous=True)
    assert discrete == pytest.approx(math.log2(17), abs=1e-12)
    assert continuous == pytest.approx(math.log2(17), abs=1e-12)
    assert likelihood.dequantised_bits_per_dim(0.0, dims=64) == pytest.approx(math.log2(17), abs=1e-12)
    assert math.log2(17) == pytest.approx(4.087, abs=1e-3)


def test_a_density_constant_on_each_cube_gives_the_discrete_figure():
    """p(y) = prod 17 q[floor(17 y)] spreads a per-pixel categorical q evenly over each level's
    cube, so its bound is tight: E_u[-log p(y)] + 64 log 17 = -log P(x) for every draw of u."""
    q = np.random.default_rng(0).dirichlet(np.ones(17))
    levels = likelihood.to_levels(LEVELS)
    drawn = []

    def discrete(batch, rows):
        return -np.log(q[batch]).sum(axis=(1, 2))

    def density(y, rows):
        drawn.append(y)
        return -np.log(17 * q[np.floor(y * 17).astype(int)]).sum(axis=(1, 2))

    exact = likelihood.bits_per_dim(discrete, levels)
    bound = likelihood.bits_per_dim(density, levels, continuous=True, draws=3, batch=16)
    assert bound == pytest.approx(exact, rel=1e-6)
    assert sum(len(y) for y in drawn) == 3 * len(levels)             # 3 draws of u for every image
    y = np.concatenate(drawn[:3])                                       # the first draw, in order
    assert ((y >= levels / 17) & (y < (levels + 1) / 17)).all()         # each y inside its level's cube


def test_the_rows_passed_along_index_the_batch():
    levels = likelihood.to_levels(LEVELS)
    seen = []

    def nll(batch, rows):
        seen.append((levels[rows] == batch).all())
        return np.zeros(len(batch))
    likelihood.bits_per_dim(nll, levels, batch=7)
    assert len(seen) == 6 and all(seen)


@pytest.mark.parametrize("images, message", [
    (np.full((2, 8, 8), 1 / 255, np.float32), "17 grey levels"),   # MNIST's 256 levels
    (np.full((2, 8, 8), 17 / 16, np.float32), "17 grey levels"),   # above 1
    (np.zeros((2, 8, 8), np.int64), "float images"),
])
def test_data_other_than_17_levels_is_refused(images, message):
    with pytest.raises(ValueError, match=message):
        likelihood.to_levels(images, op="pixelcnn")


def test_an_nll_of_the_wrong_shape_or_levels_out_of_range_are_refused():
    levels = likelihood.to_levels(LEVELS)
    with pytest.raises(ValueError, match="one NLL per image"):
        likelihood.bits_per_dim(lambda batch, rows: np.zeros((len(batch), 64)), levels)
    with pytest.raises(ValueError, match="integer levels in 0..16"):
        likelihood.bits_per_dim(lambda batch, rows: np.zeros(len(batch)), levels + 1)
