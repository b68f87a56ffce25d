"""The digits metrics on cases whose answer is known, and the shipped classifier."""
import os

import numpy as np
import pytest

from scratchgen.data import load_digits_split, resize_bilinear
from scratchgen.eval import (classify, digits_metrics, frechet_distance, inception_score,
                             load_digits_classifier)
from scratchgen.eval.classifier import weights_path
from scratchgen.eval.metrics import check_samples, gaussian_statistics

SPLIT = load_digits_split()


def test_shipped_classifier_is_small_and_accurate():
    assert os.path.getsize(weights_path()) < 200_000
    _, probabilities = classify(SPLIT.test_images)
    assert (probabilities.argmax(1) == SPLIT.test_labels).mean() >= 0.97
    assert load_digits_classifier() is load_digits_classifier()  # loaded once


def test_test_split_against_itself_is_perfect():
    report = digits_metrics(SPLIT.test_images)
    assert report["fid"] < 1e-6 < report["fid_floor"]
    assert report["classes_covered"] == 10 and report["memorised_share"] == 0.0
    assert report["inception_score"] == pytest.approx(report["inception_score_test"])
    assert report["inception_score"] > 9


def test_training_images_score_near_the_floor_and_count_as_memorised():
    report = digits_metrics(SPLIT.train_images[:1000])
    assert report["n_samples"] == 1000 and report["memorised_share"] == 1.0
    assert report["fid_ratio"] < 1.5 and report["classes_covered"] == 10


def test_uniform_noise_is_far_from_digits():
    noise = np.random.default_rng(0).random((1000, 8, 8)).astype(np.float32)
    report = digits_metrics(noise)
    assert report["fid_ratio"] > 50 and report["memorised_share"] == 0.0


def test_a_single_repeated_digit_covers_one_class():
    report = digits_metrics(np.repeat(SPLIT.test_images[:1], 200, axis=0))
    assert report["classes_covered"] == 1 and max(report["class_shares"]) == 1.0
    assert report["inception_score"] == pytest.approx(1.0)
    assert report["fid_ratio"] > 20


def test_16_pixel_samples_are_compared_after_the_same_round_trip():
    report = digits_metrics(resize_bilinear(SPLIT.test_images, 16))
    assert report["fid"] < 1e-6 and report["classes_covered"] == 10


def test_frechet_distance_against_the_closed_form_with_scipy():
    from scipy import linalg
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(200, 5)), rng.normal(size=(300, 5)) @ rng.normal(size=(5, 5)) + 0.5
    (mean_a, cov_a), (mean_b, cov_b) = gaussian_statistics(a), gaussian_statistics(b)
    expected = ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * linalg.sqrtm(cov_a @ cov_b).real)
    assert frechet_distance((mean_a, cov_a), (mean_b, cov_b)) == pytest.approx(expected, rel=1e-8)
    shift = np.array([3.0, 0, 0, 4, 0])
    assert frechet_distance((mean_a, cov_a), (mean_a + shift, cov_a)) == pytest.approx(25.0)


def test_inception_score_bounds():
    assert inception_score(np.full((50, 10), 0.1)) == pytest.approx(1.0)
    assert inception_score(np.eye(10)[np.arange(100) % 10]) == pytest.approx(10.0, rel=1e-6)


@pytest.mark.parametrize("samples, message", [
    (np.full((4, 8, 8), 1.5, np.float32), r"values in \[0, 1\], got values in \[1.5, 1.5\]"),
    (np.full((4, 8, 8), np.nan, np.float32), "finite"),
    (np.zeros((4, 8, 7), np.float32), r"shape \(N, S, S\).*got shape \(4, 8, 7\)"),
    (np.zeros((4, 12, 12), np.float32), "multiple of 8"),
    (np.zeros((4, 8, 8), np.uint8), "floating-point"),
])
def test_bad_sample_files_are_refused_with_the_reason(samples, message):
    with pytest.raises(ValueError, match=message):
        check_samples(samples)
