"""Sample-quality metrics on the digits, all read through the shipped digits classifier.

Samples are float images in [0, 1] of shape (N, 8, 8) — or (N, S, S) with S a multiple of 8
(e.g. 16 for the convolutional models), averaged down to 8 x 8 in 2 x 2 (S/8 x S/8) blocks; the
real images they are compared with then take the same round trip (bilinear up, block average
down), so the comparison stays fair.

digits FID (Heusel et al. 2017, with the digits classifier in place of Inception)
    Fit a Gaussian to the classifier's 64 penultimate features of the samples and one to those
    of the 450 test images; FID = |mu_s - mu_t|^2 + tr(C_s + C_t - 2 (C_s^1/2 C_t C_s^1/2)^1/2).
    Its **floor** is the FID of N *training* images (N = the number of samples, at most 1,347,
    a fixed random subset) against the test split: what a perfect generator would score with
    that many samples. FID is biased upwards for small N, so compare a model to its floor.
    Below ``MIN_FID_SAMPLES`` (128: twice the 64 features, so the covariance is estimated from
    more samples than it has dimensions) the distance says nothing; FID, floor and ratio are
    then null, ``fid_unavailable`` says why, and the other metrics stay.
class coverage
    The share of samples the classifier assigns to each digit; a class counts as covered when
    it gets at least 5% of the samples (a uniform generator gives each 10%).
Inception Score (Salimans et al. 2016)
    exp(mean over samples of KL(p(y|x) || p(y))), p(y) the mean prediction: 1 for a single
    repeated class, at most 10; the test split's own score is reported beside it.
memorisation
    The share of samples closer (Euclidean distance in pixel space, 8 x 8, values in [0, 1]) to
    some training image than *any* held-out test image is to its nearest training image. The
    threshold is calibrated from the data: min over test images of their nearest-training-image
    distance (0.504 for the digits at 8 x 8), so no genuinely new digit of the test split would
    count as memorised, while copies (distance 0) always do.
"""
import functools

import numpy as np

from ..data import average_pool, load_digits_split, resize_bilinear
from .classifier import NUM_CLASSES, classify

METRIC_SIZE = 8
COVERED_SHARE = 0.05
FLOOR_SEED = 0
MIN_FID_SAMPLES = 128


def check_samples(samples, op="digits metrics"):
    """Samples as float64 (N, 8, 8) in [0, 1] (a channel dim of 1 is dropped), or a clear error."""
    samples = np.asarray(samples)
    if samples.ndim == 4 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim != 3 or samples.shape[1] != samples.shape[2] or samples.shape[1] % METRIC_SIZE \
            or len(samples) < 2:
        raise ValueError(f"{op}: expected at least 2 square images of shape (N, S, S) with S a multiple of "
                         f"{METRIC_SIZE}, got shape {samples.shape}")
    if samples.dtype.kind != "f":
        raise ValueError(f"{op}: expected floating-point samples in [0, 1], got dtype {samples.dtype}")
    if not np.isfinite(samples).all():
        count = int((~np.isfinite(samples)).sum())
        raise ValueError(f"{op}: expected finite samples, got {count} NaN/inf values")
    low, high = float(samples.min()), float(samples.max())
    if low < 0 or high > 1:
        raise ValueError(f"{op}: expected values in [0, 1], got values in [{low:.3g}, {high:.3g}]")
    return samples.astype(np.float64)


# ---- the real images every metric compares with ---------------------------------------------------
@functools.lru_cache(maxsize=4)
def reference(size=METRIC_SIZE):
    """Real digits as samples of side ``size`` would be measured: round-tripped to ``size`` and
    back to 8 x 8. Returns a dict with the train and test images, the test features' statistics
    and class probabilities, and the memorisation threshold."""
    split = load_digits_split()
    train, test = (_round_trip(images, size) for images in (split.train_images, split.test_images))
    test_features, test_probabilities = classify(test)
    return {
        "train": train, "test": test,
        "test_statistics": gaussian_statistics(test_features),
        "test_inception_score": inception_score(test_probabilities),
        "memorisation_threshold": float(nearest_distances(test, train).min()),
    }


def _round_trip(images, size):
    images = np.asarray(images, dtype=np.float64)
    return images if size == METRIC_SIZE else average_pool(resize_bilinear(images, size), METRIC_SIZE)


# ---- the metrics ---------------------------------------------------------------------------------
def gaussian_statistics(features):
    """(mean, covariance) of (N, F) features; the covariance with N - 1 in the denominator."""
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix):
    """The symmetric square root of a positive semi-definite matrix (tiny negative eigenvalues,
    which rounding makes, are clipped to zero)."""
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    return (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T


def frechet_distance(statistics_a, statistics_b):
    """Squared 2-Wasserstein distance between two Gaussians (mean, covariance).

    tr((C_a C_b)^1/2) is computed as the trace of the square root of C_a^1/2 C_b C_a^1/2, which
    is symmetric positive semi-definite, so a symmetric eigendecomposition suffices.
    """
    (mean_a, cov_a), (mean_b, cov_b) = statistics_a, statistics_b
    root_a = _sqrt_psd(cov_a)
    cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_root = np.sqrt(np.clip(cross, 0, None)).sum()
    distance = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_root
    return float(max(distance, 0.0))  # rounding can push identical statistics a hair below 0


def inception_score(probabilities):
    """exp(E_x KL(p(y|x) || p(y))) of (N, classes) predicted probabilities."""
    probabilities = np.clip(probabilities, 1e-12, 1.0)
    marginal = probabilities.mean(axis=0, keepdims=True)
    kl = (probabilities * (np.log(probabilities) - np.log(marginal))).sum(axis=1)
    return float(np.exp(kl.mean()))


def class_shares(probabilities):
    """The share of samples predicted as each class (argmax), a list of ``classes`` floats."""
    counts = np.bincount(probabilities.argmax(axis=1), minlength=probabilities.shape[1])
    return (counts / len(probabilities)).tolist()


def nearest_distances(images, candidates, chunk=256):
    """For each image, the Euclidean distance to its nearest candidate (both (N, 8, 8) arrays)."""
    flat_candidates = candidates.reshape(len(candidates), -1)
    candidate_norms = (flat_candidates ** 2).sum(axis=1)
    distances = []
    for start in range(0, len(images), chunk):
        block = images[start:start + chunk].reshape(-1, flat_candidates.shape[1])
        # |a - b|^2 = |a|^2 - 2 a.b + |b|^2, clipped at 0 against rounding
        squared = (block ** 2).sum(axis=1, keepdims=True) - 2 * block @ flat_candidates.T + candidate_norms
        distances.append(np.sqrt(np.clip(squared.min(axis=1), 0, None)))
    return np.concatenate(distances)


def fid_floor(count, size=METRIC_SIZE):
    """FID of ``count`` training images (a fixed random subset; all 1,347 at most) against the test split."""
    real = reference(size)
    chosen = np.random.default_rng(FLOOR_SEED).permutation(len(real["train"]))[:count]
    features, _ = classify(real["train"][chosen])
    return frechet_distance(gaussian_statistics(features), real["test_statistics"])


def digits_metrics(samples):
    """Every digits metric of ``samples`` (see the module docstring) as a JSON-friendly dict."""
    samples = check_samples(samples)
    size = samples.shape[1]
    real = reference(size)
    if size != METRIC_SIZE:
        samples = average_pool(samples, METRIC_SIZE)
    features, probabilities = classify(samples)
    shares = class_shares(probabilities)
    memorised = nearest_distances(samples, real["train"]) < real["memorisation_threshold"]
    return {
        "n_samples": len(samples),
        **_fid_entries(features, size),
        "classes_covered": int(sum(share >= COVERED_SHARE for share in shares)),
        "class_shares": [round(share, 4) for share in shares],
        "inception_score": inception_score(probabilities),
        "inception_score_test": real["test_inception_score"],
        "memorised_share": float(memorised.mean()),
        "memorisation_threshold": real["memorisation_threshold"],
    }


def _fid_entries(features, size):
    """fid, fid_floor and fid_ratio of the samples' features, or nulls and the reason when
    there are too few samples for a meaningful distance."""
    count = len(features)
    if count < MIN_FID_SAMPLES:
        return {"fid": None, "fid_floor": None, "fid_ratio": None,
                "fid_unavailable": f"FID needs at least {MIN_FID_SAMPLES} samples, got {count}"}
    fid = frechet_distance(gaussian_statistics(features), reference(size)["test_statistics"])
    floor = fid_floor(count, size)
    return {"fid": fid, "fid_floor": floor, "fid_ratio": fid / floor}


__all__ = ["digits_metrics", "frechet_distance", "inception_score", "class_shares", "nearest_distances",
           "fid_floor", "check_samples", "NUM_CLASSES",
           "MIN_FID_SAMPLES"]
