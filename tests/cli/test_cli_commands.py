"""The `scratchgen` command in-process: dry runs of every model (what CI smoke-runs), sampling,
evaluation, and the clear errors."""
import json

import numpy as np
import pytest

from scratchgen import cli, runner
from scratchgen.models import config_help, get_recipe, recipe_names


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory):
    """One dry run of the default main job, shared by the tests that read its outputs."""
    folder = tmp_path_factory.mktemp("vae-run")
    assert cli.main(["train", "vae", "--dry-run", "--out", str(folder)]) == 0
    return folder


def test_vae_dry_run_writes_the_run_folder(vae_run):
    for name in ("config.json", "metrics.jsonl", "last.npz", "samples.png", "samples.npy", "loss.png",
                 "reconstructions.png"):
        assert (vae_run / name).exists(), name
    config = json.loads((vae_run / "config.json").read_text())
    assert config["model"] == "vae" and config["config"]["epochs"] == 1 and config["dry_run"]
    records = [json.loads(line) for line in (vae_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 1] and records[0]["step"] == 3
    assert {"time_s", "loss", "nelbo", "test_nelbo"} <= records[0].keys()
    final = records[-1]
    assert final["final"] and {"test_iwae_nll_k64", "fid", "fid_floor", "classes_covered", "inception_score",
                               "memorised_share"} <= final.keys()


@pytest.mark.parametrize("model", sorted(set(recipe_names()) - {"vae"}))
def test_every_other_model_dry_runs(tmp_path, model):
    assert cli.main(["train", model, "--dry-run", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "last.npz").exists() and (tmp_path / "loss.png").exists()


def test_sample_writes_npy_and_png(vae_run, tmp_path, capsys):
    out = tmp_path / "s.npy"
    assert cli.main(["sample", "vae", "--checkpoint", str(vae_run), "--n", "12", "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (12, 8, 8) and samples.dtype == np.float32
    assert 0 <= samples.min() <= samples.max() <= 1
    assert cli.main(["sample", "vae", "--checkpoint", str(vae_run / "last.npz"), "--n", "9",
                     "--out", str(tmp_path / "s.png")]) == 0
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote 12 samples" in capsys.readouterr().out


def test_eval_samples_and_eval_model_print_json(vae_run, capsys):
    assert cli.main(["eval", "samples", str(vae_run / "samples.npy")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_samples"] == runner.DRY_RUN_SAMPLES and len(report["class_shares"]) == 10
    assert cli.main(["eval", "vae", "--checkpoint", str(vae_run), "--n", "50"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "vae" and report["epoch"] == 1 and report["n_samples"] == 50
    assert report["test_iwae_nll_k64"] <= report["test_nelbo"] + 1.0


def test_unknown_option_and_unknown_model_exit_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "vae", "--latent-dimension", "4"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --latent-dimension" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "gpt9"])
    assert "invalid choice: 'gpt9'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "vae", "--likelihood", "poisson"])
    assert "invalid choice: 'poisson'" in capsys.readouterr().err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["sample", "vae", "--checkpoint", str(tmp_path / "nope.npz"), "--out", "x.npy"]) == 2
    assert "no such file or run folder" in capsys.readouterr().err
    assert cli.main(["eval", "vae", "--checkpoint", str(tmp_path)]) == 2
    assert "no last.npz in the run folder" in capsys.readouterr().err
    assert cli.main(["train", "vae", "--resume", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2


def test_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    from scratchgen.eval.classifier import weights_path
    out = str(tmp_path / "x.npy")
    assert cli.main(["sample", "vae", "--checkpoint", str(weights_path()), "--out", out]) == 2
    assert "holds a 'mlp' checkpoint, expected 'vae'" in capsys.readouterr().err


def test_bad_output_name_and_bad_sample_file(vae_run, tmp_path, capsys):
    assert cli.main(["sample", "vae", "--checkpoint", str(vae_run), "--out", str(tmp_path / "x.jpg")]) == 2
    assert "ending in .png or .npy" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.full((5, 8, 8), 2.0, np.float32))
    assert cli.main(["eval", "samples", str(tmp_path / "bad.npy")]) == 2
    assert "values in [0, 1]" in capsys.readouterr().err
    assert cli.main(["eval", "samples", str(tmp_path / "missing.npy")]) == 2


def test_changed_architecture_on_resume_is_a_clear_error(vae_run, tmp_path, capsys):
    assert cli.main(["train", "vae", "--resume", str(vae_run), "--hidden", "17", "--out", str(tmp_path)]) == 2
    assert "does not fit the vae model" in capsys.readouterr().err


def test_unusable_device_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import scratchgen.backend as backend
    monkeypatch.setattr(backend, "cupy_or_none", lambda: None)  # as on a machine without CuPy
    assert cli.main(["train", "vae", "--dry-run", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "needs CuPy" in capsys.readouterr().err


def test_model_options_come_with_their_declared_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "vae", "--help"])
    help_text = capsys.readouterr().out
    assert "--latent-dim INT" in help_text and "dimensions of z (default: 8)" in help_text
    assert "--dry-run" in help_text and "--resume PATH" in help_text


@pytest.mark.parametrize("model", recipe_names())
def test_every_model_has_a_help_page(model, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", model, "--help"])  # e.g. a "%" in an option's help must not break it
    assert exit_info.value.code == 0 and "--epochs" in capsys.readouterr().out


@pytest.mark.parametrize("model", recipe_names())
def test_every_option_of_every_model_declares_its_help(model):
    recipe = get_recipe(model)
    configs = [recipe.Config] + ([recipe.SampleOptions] if recipe.SampleOptions is not None else [])
    missing = [f"{config.__name__}.{name}" for config in configs
               for name, text in config_help(config).items() if not text.strip()]
    assert missing == [], f"declare these fields with option(default, help): {missing}"
