"""``scratchgen train / eval / sample`` of the three exact-likelihood models (pixelcnn, pixelrnn,
realnvp): the run reports test_bits_per_dim, and data or checkpoints they cannot use exit 2."""
import json

import numpy as np
import pytest

from scratchgen import cli
from scratchgen.data import write_idx

MODELS = ("pixelcnn", "pixelrnn", "realnvp")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One dry run of each model: {model: run folder}."""
    folders = {}
    for model in MODELS:
        folders[model] = tmp_path_factory.mktemp(model)
        assert cli.main(["train", model, "--dry-run", "--out", str(folders[model])]) == 0
    return folders


@pytest.mark.parametrize("model", MODELS)
def test_train_eval_and_sample_report_bits_per_dim_and_write_images(runs, model, tmp_path, capsys):
    records = [json.loads(line) for line in (runs[model] / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "bits_per_dim", "test_bits_per_dim"} <= records[0].keys()
    assert {"test_bits_per_dim", "fid_ratio", "classes_covered"} <= records[-1].keys()
    assert (runs[model] / "samples.png").exists()
    capsys.readouterr()
    assert cli.main(["eval", model, "--checkpoint", str(runs[model]), "--n", "20"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert 1 < report["test_bits_per_dim"] < 6 and report["n_samples"] == 20
    out = tmp_path / "samples.npy"
    assert cli.main(["sample", model, "--checkpoint", str(runs[model]), "--n", "3", "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (3, 8, 8) and np.array_equal(samples * 16, np.rint(samples * 16))


def test_a_checkpoint_of_another_model_is_refused(runs, capsys):
    assert cli.main(["eval", "pixelcnn", "--checkpoint", str(runs["realnvp"])]) == 2
    assert "realnvp" in capsys.readouterr().err
    assert cli.main(["sample", "realnvp", "--checkpoint", str(runs["pixelrnn"]), "--out", "x.npy"]) == 2


@pytest.mark.parametrize("model", MODELS)
def test_data_that_is_not_17_grey_levels_is_refused(model, tmp_path, capsys):
    assert cli.main(["train", model, "--dry-run", "--image-size", "16", "--out", str(tmp_path / "up")]) == 2
    error = capsys.readouterr().err
    assert "17 grey levels" in error and "Traceback" not in error
    rng = np.random.default_rng(0)  # a miniature MNIST: 256 grey levels
    for prefix, count in (("train", 40), ("t10k", 10)):
        images = rng.integers(0, 256, (count, 8, 8), dtype=np.uint8)
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", images)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", (np.arange(count) % 10).astype(np.uint8))
    mnist_like = ["--data", f"idx:{tmp_path}", "--out", str(tmp_path / "r")]
    assert cli.main(["train", model, "--dry-run", *mnist_like]) == 2
    assert "17 grey levels" in capsys.readouterr().err
