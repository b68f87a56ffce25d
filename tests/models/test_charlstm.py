"""The character LSTM: training steps (state carried) equal the PyTorch twin's, carrying the state
across windows is reading one long window, the streams and the validation cover the text as
documented, sampling is seeded, and ``scratchgen train / sample charlstm`` work end to end."""
import signal

import numpy as np
import pytest

import scratchgen as sg
from scratchgen import cli, runner, serialize
from scratchgen.data.text import load_text
from scratchgen.models import Clock
from scratchgen.models.charlstm import (IGNORE, CharLSTM, CharLSTMConfig, CharLSTMRecipe, parallel_streams,
                                        stream_windows)
from scratchgen.runner import forked_rng
from twin_checks import assert_parameters_equal_the_twins

SMALL = dict(batch_size=4, bptt=12, embedding_dim=8, hidden=16, num_layers=2)


def small_recipe(**options):
    """A small LSTM recipe and its data: 40 training windows of 12 (10 steps of 4 streams)."""
    config = CharLSTMConfig(**{**SMALL, **options})
    data = load_text(context=config.bptt).subset(train=40, test=30)
    sg.manual_seed(0)
    return CharLSTMRecipe(config, data), data


def test_training_steps_equal_the_pytorch_twin_with_the_state_carried(torch):
    from scratchgen.benchmarks.peers.charlstm import TorchCharLSTM, training_loss
    recipe, data = small_recipe(lr=1e-2, clip_norm=0.5)
    recipe.model.double()
    twin = TorchCharLSTM.from_config(recipe.config, len(recipe.vocabulary)).double()
    twin.load_state_dict({name: torch.from_numpy(value) for name, value in recipe.model.state_dict().items()})
    optimizer = torch.optim.Adam(twin.parameters())
    loader = recipe.make_loader(data, seed=0)
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in recipe.model.parameters())

    state = None
    for step, batch in enumerate(list(loader)[:3] + list(loader)[:1]):   # the 4th step starts a new epoch
        clock = Clock(step, step // 3, step % 3, 3)
        recipe.before_step(clock)
        loss = recipe.train_step(recipe.to_tensors(batch), clock)["loss"]
        window = torch.from_numpy(batch[0][0].T.copy())                   # (T + 1, B)
        state = None if clock.batch == 0 else state
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate(clock)
        optimizer.zero_grad()
        twin_loss, state = training_loss(twin, window[:-1], window[1:], state)
        twin_loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), recipe.config.clip_norm)
        optimizer.step()
        state = tuple(part.detach() for part in state)

        assert loss == pytest.approx(twin_loss.item(), rel=1e-12)
        assert_parameters_equal_the_twins(recipe.model, twin, when=f" at step {step}")
        for ours, theirs in zip(recipe.carried, state):
            np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-10, atol=1e-13)


def test_two_windows_with_the_state_carried_are_one_long_window():
    sg.manual_seed(1)
    model = CharLSTM(vocabulary_size=11, embedding_dim=5, hidden=7, num_layers=2).double()
    ids = sg.randint(0, 11, (20, 3))
    whole, (h, c) = model(ids)
    first, state = model(ids[:8])
    second, (h2, c2) = model(ids[8:], state)
    np.testing.assert_allclose(sg.cat([first, second]).numpy(), whole.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(h2.numpy(), h.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c2.numpy(), c.numpy(), rtol=1e-12, atol=1e-14)


def test_streams_are_contiguous_and_validation_scores_every_character_once():
    windows = np.arange(10 * 13).reshape(10, 13)[:, :5]     # 10 windows of 4 + 1; windows[i, 0] = 13 i
    steps = stream_windows(windows, 3)                       # 3 streams of 3 windows; the 10th is dropped
    assert steps.shape == (3, 3, 5)
    for stream in range(3):
        assert np.array_equal(steps[:, stream, 0], windows[3 * stream:3 * stream + 3, 0])

    ids = np.arange(50)
    inputs, targets = parallel_streams(ids, 16)             # 49 targets in 16 streams of 4
    assert inputs.shape == targets.shape == (4, 16)
    scored = targets[targets != IGNORE]
    assert np.array_equal(np.sort(scored), ids[1:])
    assert np.array_equal(targets[:, :12] - inputs[:, :12], np.ones((4, 12)))


def test_validation_in_windows_equals_each_stream_read_at_once():
    recipe, _ = small_recipe()
    recipe.model.double()
    ids = load_text(context=12).valid_ids[:16 * 300 + 1]    # 16 streams of 300: two evaluation windows
    nats = recipe.total_nats(ids)
    inputs, targets = parallel_streams(ids, 16)
    expected = 0.0
    for stream in range(16):
        logits, _ = recipe.model(sg.tensor(inputs[:, stream:stream + 1]))
        log_probs = logits.log_softmax(dim=-1).numpy()[:, 0]
        expected -= log_probs[np.arange(len(targets)), targets[:, stream]].sum()
    assert nats == pytest.approx(expected, rel=1e-10)


def test_sampling_is_seeded_and_reads_the_prompt_as_training_does():
    recipe, _ = small_recipe()
    recipe.model.double()

    def draw(seed):
        with forked_rng(seed, 2):
            return "".join(recipe.generate("def ", 60, temperature=0.8, top_k=5))

    assert draw(3) == draw(3) != draw(4)
    assert len(draw(3)) == 60
    ids = recipe.vocabulary.encode("def f")
    state, _ = recipe.start(ids[:-1])
    _, stepped = recipe.advance(state, int(ids[-1]))
    _, at_once = recipe.start(ids)
    np.testing.assert_allclose(stepped, at_once, rtol=1e-12, atol=1e-14)


def test_cli_trains_resumes_and_streams_samples(tmp_path, capsys):
    run = str(tmp_path / "run")
    options = ["--hidden", "16", "--embedding-dim", "8", "--batch-size", "4", "--bptt", "16"]
    assert cli.main(["train", "charlstm", "--dry-run", "--out", run, *options]) == 0
    capsys.readouterr()
    command = ["sample", "charlstm", "--checkpoint", run, "--prompt", "def ", "--length", "50",
               "--temperature", "0.8", "--top-k", "20", "--seed", "7"]
    assert cli.main(command) == 0
    first = capsys.readouterr().out
    assert cli.main(command) == 0
    assert capsys.readouterr().out == first and first.startswith("def ") and len(first) == 4 + 50 + 1
    assert cli.main(command[:-1] + ["8"]) == 0
    assert capsys.readouterr().out != first
    assert cli.main(["sample", "charlstm", "--checkpoint", run, "--temperature", "-1"]) == 2
    assert "temperature" in capsys.readouterr().err


def test_a_run_stopped_mid_epoch_resumes_with_its_carried_state_bit_for_bit(tmp_path, monkeypatch):
    text = tmp_path / "source.txt"
    text.write_text(load_text(context=16).vocabulary.decode(load_text(context=16).train_ids[:4000]))
    options = {**SMALL, "bptt": 16, "data": f"text:{text}", "epochs": 1}     # 56 steps of 4 streams

    def train(folder, resume=None):
        return runner.train("charlstm", options, out=str(folder), resume=resume, plots=False,
                            echo=lambda *args: None)

    train(tmp_path / "straight")
    step = CharLSTMRecipe.train_step

    def interrupted_at_step_20(self, batch, clock):
        losses = step(self, batch, clock)
        if clock.step == 20:   # as if the user pressed Ctrl-C during this step
            signal.raise_signal(signal.SIGINT)
        return losses

    monkeypatch.setattr(CharLSTMRecipe, "train_step", interrupted_at_step_20)
    assert train(tmp_path / "stopped")["interrupted"]
    assert "carried" in serialize.load(tmp_path / "stopped" / "last.npz")
    monkeypatch.setattr(CharLSTMRecipe, "train_step", step)
    train(tmp_path / "stopped", resume=str(tmp_path / "stopped"))
    straight, resumed = (serialize.load(tmp_path / name / "last.npz") for name in ("straight", "stopped"))
    for name, weights in straight["model"].items():
        np.testing.assert_array_equal(weights, resumed["model"][name], err_msg=name)

