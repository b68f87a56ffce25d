"""The seq2seq translator: one training step equals its PyTorch twin's, padding changes nothing,
beam width 1 is greedy decoding, teacher forcing mixes as scheduled, the model overfits 50 pairs,
and ``scratchgen train seq2seq --dry-run`` / ``scratchgen translate`` work end to end."""
import io
import os

import numpy as np
import pytest
from conftest import require_torch

from scratchgen import cli, tensor
from scratchgen.data.number_words import PAD_INDEX, load_number_words
from scratchgen.models import Clock
from scratchgen.models.seq2seq import Seq2Seq, Seq2SeqConfig, Seq2SeqRecipe
from scratchgen.random import manual_seed
from twin_checks import assert_parameters_equal_the_twins

SMALL = dict(embedding_dim=8, hidden=12, train_size=64)


def small_data():
    return load_number_words(train=64, valid=16, test=16, seed=0)


def float64_model(seed=0, **options):
    manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(**{**SMALL, **options}), 31, 13).double()


def test_training_step_matches_the_pytorch_twin():
    torch = require_torch()
    from scratchgen.benchmarks.peers.seq2seq import TorchSeq2Seq, training_loss
    config = Seq2SeqConfig(**SMALL, lr=1e-2, clip_norm=0.5)
    data = small_data()
    manual_seed(1)
    recipe = Seq2SeqRecipe(config, data)
    recipe.model.double()
    twin = TorchSeq2Seq.from_config(config, 31, 13).double()
    twin.load_state_dict({name: torch.from_numpy(value.copy())
                          for name, value in recipe.model.state_dict().items()})
    optimizer = torch.optim.Adam(twin.parameters(), lr=config.lr)
    source, target = (np.array(array[:24]) for array in data.train_arrays)  # writable copies for torch

    # step 0: the teacher forcing ratio is 1, as in the twin
    loss = recipe.train_step(recipe.to_tensors((source, target)), Clock(0, 0, 0, 10))["loss"]
    twin_loss = training_loss(twin, torch.from_numpy(source), torch.from_numpy(target))
    twin_loss.backward()
    torch.nn.utils.clip_grad_norm_(twin.parameters(), config.clip_norm)
    optimizer.step()

    assert loss == pytest.approx(twin_loss.item(), rel=1e-12)
    assert_parameters_equal_the_twins(recipe.model, twin)


def test_padding_changes_nothing():
    """A sentence alone (no padding at all) and in a padded batch: same states, logits, decoding."""
    model = float64_model()
    source, target, _ = small_data().split("test")
    batch_states, batch_final, _ = model.encoder(tensor(source))
    batch_logits = model(tensor(source), tensor(target[:, :-1])).numpy()
    batch_tokens = model.greedy_decode(tensor(source))[0]
    lengths = (source != PAD_INDEX).sum(axis=1)
    assert len(set(lengths.tolist())) > 2 and (lengths < source.shape[1]).all()
    for row, length in enumerate(lengths):
        alone = tensor(source[row:row + 1, :length])
        states, final, _ = model.encoder(alone)
        np.testing.assert_allclose(batch_states.numpy()[row, :length], states.numpy()[0], rtol=1e-12,
                                   atol=1e-14)
        assert not batch_states.numpy()[row, length:].any()
        np.testing.assert_allclose(batch_final.numpy()[row], final.numpy()[0], rtol=1e-12, atol=1e-14)
        logits = model(alone, tensor(target[row:row + 1, :-1])).numpy()[0]
        np.testing.assert_allclose(batch_logits[row], logits, rtol=1e-11, atol=1e-13)
        tokens = model.greedy_decode(alone)[0][0]
        assert np.array_equal(batch_tokens[row, :len(tokens)], tokens)


def test_beam_width_one_is_greedy_decoding():
    model = float64_model(seed=3)
    source = tensor(small_data().test_source)
    greedy_tokens, greedy_weights, greedy_scores = model.greedy_decode(source)
    beam_tokens, beam_weights, beam_scores = model.beam_search(source, beam_width=1)
    assert np.array_equal(greedy_tokens, beam_tokens)
    np.testing.assert_allclose(greedy_weights, beam_weights, rtol=1e-6)
    np.testing.assert_allclose(greedy_scores, beam_scores, rtol=1e-12)
    wide_tokens, _, wide_scores = model.beam_search(source, beam_width=4)
    assert wide_tokens.shape[0] == source.shape[0] and np.isfinite(wide_scores).all()


def test_teacher_forcing_off_feeds_the_greedy_choices():
    model = float64_model(seed=2)
    source, target, _ = small_data().split("test")
    logits = model(tensor(source), tensor(target[:, :-1]), teacher_forcing=0.0).numpy()
    greedy = model.greedy_decode(tensor(source), max_length=target.shape[1] - 1)[0]
    for row, tokens in enumerate(greedy):
        steps = len(tokens) if tokens[-1] != PAD_INDEX else int(np.argmax(tokens == PAD_INDEX))
        assert np.array_equal(logits[row, :steps].argmax(axis=-1), tokens[:steps])


def test_a_batch_of_targets_is_trimmed_to_its_longest():
    """No decoder step past the batch's longest target: ``to_tensors`` cuts the padding columns."""
    source, target, _ = small_data().split("test")
    recipe = Seq2SeqRecipe(Seq2SeqConfig(**SMALL), small_data())
    _, trimmed = recipe.to_tensors((source[:3], target[:3]))
    width = trimmed.shape[1]
    assert width < target.shape[1] and (trimmed.numpy()[:, -1] != PAD_INDEX).any()
    np.testing.assert_array_equal(trimmed.numpy(), target[:3, :width])
    assert (target[:3, width:] == PAD_INDEX).all()


def test_teacher_forcing_schedule_falls_linearly():
    config = Seq2SeqConfig(**SMALL, epochs=5, teacher_forcing_start=1.0, teacher_forcing_end=0.6)
    recipe = Seq2SeqRecipe(config, small_data())
    ratios = [recipe.teacher_forcing(Clock(0, epoch, 0, 10)) for epoch in range(6)]
    np.testing.assert_allclose(ratios, [1.0, 0.9, 0.8, 0.7, 0.6, 0.6])


def test_overfits_fifty_pairs():
    data = load_number_words(train=50, valid=10, test=10, seed=5)
    config = Seq2SeqConfig(embedding_dim=16, hidden=32, train_size=50, batch_size=50, lr=1e-2, clip_norm=0,
                           teacher_forcing_end=1.0)
    manual_seed(0)
    recipe = Seq2SeqRecipe(config, data)
    batch = recipe.to_tensors(data.train_arrays)
    accuracy = 0.0
    for step in range(200):
        recipe.train_step(batch, Clock(step, 0, 0, 1))
        if step % 25 == 24:
            accuracy = recipe.exact_matches("train", data).mean()
            if accuracy == 1.0:
                break
    assert accuracy == 1.0


def test_cli_dry_run_and_translate(tmp_path, capsys, monkeypatch):
    run = str(tmp_path / "run")
    assert cli.main(["train", "seq2seq", "--dry-run", "--out", run, "--embedding-dim", "8", "--hidden", "12",
                     "--batch-size", "16"]) == 0
    assert os.path.exists(os.path.join(run, "last.npz")) and os.path.exists(os.path.join(run, "loss.png"))
    capsys.readouterr()

    picture = str(tmp_path / "attention.png")
    assert cli.main(["translate", "--checkpoint", run, "forty two thousand seven", "Seven",
                     "--beam-width", "2", "--attention-map", picture]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(line.isdigit() or line == "" for line in lines)
    assert os.path.getsize(picture) > 0

    monkeypatch.setattr("sys.stdin", io.StringIO("one hundred\n\ntwelve\n"))
    assert cli.main(["translate", "--checkpoint", run, "--beam-width", "1"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""

    assert cli.main(["translate", "--checkpoint", run, "fourty two"]) == 2
    assert "unknown words ['fourty']" in capsys.readouterr().err
