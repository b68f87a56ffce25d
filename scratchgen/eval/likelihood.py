"""Bits per dimension: the one likelihood figure every exact-likelihood model reports.

The digits are integer images: each of the 64 pixels takes one of 17 grey levels 0..16 (the data
sets store level / 16 in [0, 1]). A model's ``test_bits_per_dim`` is the negative log-likelihood
of the test split's integer images, in bits, divided by the number of pixels D:

    discrete model (PixelCNN, PixelRNN: a probability P(x) for every integer image x)
        bits/dim = E_test[-log P(x)] / (D ln 2)

    continuous model (RealNVP: a density p on [0, 1]^D), on dequantised images
        y = (x + u) / 17,  u ~ U[0, 1)^D,  so each integer image owns a cube of side 1/17
        -log P(x) = -log integral_cube p(y) dy  <=  E_u[-log p(y)] + D log 17      (Jensen)
        bits/dim = (E_test E_u[-log p(y)] + D log 17) / (D ln 2)

The D log 17 nats are the cube's volume, (1/17)^D: without them a density is not a probability
and the figure means nothing. Both paths give the uniform model exactly log2 17 ~ 4.087 bits/dim
(P(x) = 17^-D; p(y) = 1), which ``tests/eval/test_likelihood.py`` pins.

    levels = to_levels(data.test_images)                          # (N, H, W) int64 in 0..16
    bits = bits_per_dim(lambda batch, rows: model_nll(batch), levels)     # discrete: the batch is levels
    bits = bits_per_dim(negative_log_density, levels, continuous=True, draws=4)   # continuous: y
"""
import math

import numpy as np

LEVELS = 17                 # grey levels 0..16 of the digits
BATCH = 150                 # test images per call of the model's NLL


def to_levels(images, op="likelihood"):
    """Images in [0, 1] holding level / 16 -> int64 levels 0..16 of the same shape, or a clear error
    (a likelihood over 17 levels means nothing for other data: MNIST's 256 levels, upsampled digits)."""
    images = np.asarray(images)
    if images.dtype.kind != "f" or images.ndim < 2:
        raise ValueError(f"{op}: expected float images holding level / {LEVELS - 1}, got dtype "
                         f"{images.dtype} and shape {images.shape}")
    scaled = images.astype(np.float64) * (LEVELS - 1)
    levels = np.rint(scaled)
    off_grid = np.abs(scaled - levels) > 1e-4
    if off_grid.any() or levels.min() < 0 or levels.max() > LEVELS - 1:
        outside = images[off_grid] if off_grid.any() else images[(levels < 0) | (levels > LEVELS - 1)]
        example = float(outside[0])
        raise ValueError(f"{op}: expected images with {LEVELS} grey levels (multiples of 1/{LEVELS - 1} in "
                         f"[0, 1], as the digits are), got a value {example:.6g}")
    return levels.astype(np.int64)


def dequantise(levels, uniform):
    """y = (level + u) / 17 in [0, 1): integer levels spread uniformly over their cube."""
    return ((np.asarray(levels) + uniform) / LEVELS).astype(np.float32)


def nats_to_bits_per_dim(nats_per_image, dims):
    return nats_per_image / (dims * math.log(2))


def dequantised_bits_per_dim(negative_log_density, dims):
    """E_u[-log p(y)] in nats per image -> the bound on -log2 P(x) per dimension: the D log 17 nats
    of the cube's volume added, then (nats) / (D ln 2)."""
    return nats_to_bits_per_dim(negative_log_density + dims * math.log(LEVELS), dims)


def bits_per_dim(negative_log_likelihood, levels, continuous=False, draws=1, seed=0, batch=BATCH):
    """The test figure for ``levels`` (N, ...) int: E[-log P(x)] in bits per dimension.

    ``negative_log_likelihood(batch, rows)`` returns per-image nats (an array of length len(batch));
    ``rows`` is the slice of ``levels`` the batch holds (to look up labels, say). Discrete models
    (``continuous=False``) get integer levels and return -log P(x). Continuous models pass
    ``continuous=True`` and get dequantised float32 images y (``draws`` independent draws of u, from
    a generator seeded by ``seed``) and return -log p(y); the D log 17 term is added here, so no
    model can forget it.
    """
    levels = np.asarray(levels)
    if levels.dtype.kind not in "iu" or levels.min() < 0 or levels.max() >= LEVELS:
        raise ValueError(f"bits_per_dim: expected integer levels in 0..{LEVELS - 1}, got dtype "
                         f"{levels.dtype} with values in [{levels.min()}, {levels.max()}]")
    dims = int(np.prod(levels.shape[1:]))
    rng = np.random.default_rng(seed)
    total = 0.0
    for _ in range(draws if continuous else 1):
        for start in range(0, len(levels), batch):
            chunk = levels[start:start + batch]
            inputs = dequantise(chunk, rng.random(chunk.shape)) if continuous else chunk
            rows = slice(start, start + len(chunk))
            nats = np.asarray(negative_log_likelihood(inputs, rows), dtype=np.float64)
            if nats.shape != (len(chunk),):
                raise ValueError(f"bits_per_dim: expected one NLL per image, shape ({len(chunk)},), "
                                 f"got {nats.shape}")
            total += nats.sum()
    mean_nats = total / (len(levels) * (draws if continuous else 1))
    return dequantised_bits_per_dim(mean_nats, dims) if continuous else nats_to_bits_per_dim(mean_nats, dims)
