"""Likelihoods of binary images: the one fixed binarisation of the digits' test split, and the
log-likelihood figure any model of binary 8 x 8 images reports on it.

Grey digits x in [0, 1] become binary images by one Bernoulli draw per pixel, v ~ Bernoulli(x),
drawn ONCE from a fixed generator (PCG64 seeded ``BINARISATION_SEED``), so that every model is
scored on the very same 450 binary test images:

    v = (u < x),  u ~ U(0, 1) from PCG64(20131)

A model of binary images reports the mean over those images of log p(v) in nats per image
(``binary_test_log_likelihood``), with its standard error over the images (how much the figure
would move on another test split of the same size, not the model's own estimation error).
"""
import functools

import numpy as np

from ..data import load_digits_split

BINARISATION_SEED = 20131


@functools.lru_cache(maxsize=1)
def binarised_test_images():
    """(450, 8, 8) float32 of 0s and 1s: the digits' test split, binarised once (read-only)."""
    test = np.asarray(load_digits_split().test_images, dtype=np.float64)
    uniform = np.random.default_rng(BINARISATION_SEED).random(test.shape)
    images = (uniform < test).astype(np.float32)
    images.flags.writeable = False
    return images


def binary_test_log_likelihood(log_probability, batch_size=150):
    """Score a model of binary images on the fixed binarised test split.

    ``log_probability`` maps a (N, 8, 8) float32 array of 0s and 1s to (N,) log p(v) in nats.
    Returns {"test_log_likelihood": mean nats per image, "test_log_likelihood_stderr": its
    standard error over the images, "test_bits_per_pixel": -mean / (64 log 2)}.
    """
    images = binarised_test_images()
    values = np.concatenate([np.asarray(log_probability(images[start:start + batch_size]), dtype=np.float64)
                             .reshape(-1) for start in range(0, len(images), batch_size)])
    if values.shape != (len(images),) or not np.isfinite(values).all():
        raise ValueError(f"binary_test_log_likelihood: expected {len(images)} finite log-probabilities, got "
                         f"shape {values.shape} with {int((~np.isfinite(values)).sum())} NaN/inf values")
    mean = float(values.mean())
    pixels = images[0].size
    return {"test_log_likelihood": mean,
            "test_log_likelihood_stderr": float(values.std(ddof=1) / np.sqrt(len(values))),
            "test_bits_per_pixel": -mean / (pixels * np.log(2))}
