"""What a PyTorch tool user expects of the command line: ``--print-config`` (the merged config as
JSON, loadable back with ``--config``), whole model summaries in ``models`` and ``--help``, help
groups titled in words, and no flags for options a model ignores."""
import json
import re

import pytest

from scratchgen import cli
from scratchgen.models import get_recipe, recipe_names


def help_text(capsys, *argv):
    with pytest.raises(SystemExit) as stopped:
        cli.main([*argv, "--help"])
    assert stopped.value.code == 0
    return capsys.readouterr().out


def words(text):
    return " ".join(text.split())


def test_print_config_prints_the_merged_config_and_trains_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "vae", "--lr", "0.01", "--print-config"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["model"] == "vae" and printed["config"]["lr"] == 0.01
    assert printed["config"]["epochs"] == get_recipe("vae").Config().epochs   # the default, not a dry run's
    assert not (tmp_path / "runs").exists()


def test_print_config_loads_back_with_config_and_flags_win(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "base.json").write_text(json.dumps({"lr": 0.5, "epochs": 7}))
    assert cli.main(["train", "gan", "--config", "base.json", "--lr", "0.02", "--print-config"]) == 0
    first = capsys.readouterr().out
    config = json.loads(first)["config"]
    assert (config["lr"], config["epochs"]) == (0.02, 7)     # defaults < --config < flags
    (tmp_path / "printed.json").write_text(first)
    assert cli.main(["train", "gan", "--config", "printed.json", "--print-config"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(first)


def test_print_config_refuses_a_bad_value_as_a_usage_error(capsys):
    assert cli.main(["train", "vae", "--lr", "-1", "--print-config"]) == 2
    assert "--lr: expected a learning rate > 0" in capsys.readouterr().err


@pytest.mark.parametrize("model", recipe_names())
def test_models_and_train_help_show_whole_summaries(model, capsys):
    summary = cli._summary(get_recipe(model))
    assert summary.endswith((".", ")")) and "``" not in summary, summary
    assert cli.main(["models"]) == 0
    listing = capsys.readouterr().out
    assert re.search(rf"^{model}\s+{re.escape(summary)}$", listing, re.MULTILINE)
    assert summary in words(help_text(capsys, "train"))


def test_help_groups_are_titled_in_words(capsys):
    text = help_text(capsys, "train", "diffusion")
    assert "diffusion model options:" in text and "run options:" in text
    assert not re.search(r"\w+Config options", text)
    assert "sampling options:" in help_text(capsys, "sample", "diffusion")


@pytest.mark.parametrize("model, ignored", [("charlstm", "--image-size"), ("gpt", "--image-size"),
                                            ("seq2seq", "--image-size"), ("seq2seq", "--data"),
                                            ("ngram", "--lr"), ("ngram", "--batch-size")])
def test_options_a_model_ignores_are_not_offered(model, ignored, capsys):
    assert not re.search(rf"{ignored}\b(?!-)", help_text(capsys, "train", model))
    with pytest.raises(SystemExit) as stopped:
        cli.main(["train", model, ignored, "1", "--print-config"])
    assert stopped.value.code == 2
    assert "--image-size" in help_text(capsys, "train", "vae")   # an image model still has it
