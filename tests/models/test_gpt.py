"""The tiny GPT: training steps equal the PyTorch twin's (tied head, AdamW decaying matrices only),
the fused causal attention is the written-out one, GPT-2's initialisation, seeded sampling that
reads prompts as training does, the learning-rate schedule, and ``scratchgen train gpt``."""
import math

import numpy as np
import pytest

import scratchgen as sg
from scratchgen import cli
from scratchgen import functional as F
from scratchgen.data.text import load_text
from scratchgen.models import Clock
from scratchgen.models.gpt import GPT, GPTConfig, GPTRecipe, causal_attention_reference, evaluation_windows
from scratchgen.runner import forked_rng
from twin_checks import assert_parameters_equal_the_twins

SMALL = dict(batch_size=3, block_size=16, n_layer=2, n_head=2, n_embd=16)


def small_recipe(**options):
    config = GPTConfig(**{**SMALL, **options})
    data = load_text(context=config.block_size).subset(train=12, test=8)
    sg.manual_seed(0)
    return GPTRecipe(config, data), data


def test_training_steps_equal_the_pytorch_twin(torch):
    from scratchgen.benchmarks.peers.gpt import TorchGPT, make_optimizer, training_loss
    recipe, data = small_recipe(lr=1e-2, warmup_steps=1, clip_norm=0.5, weight_decay=0.1)
    recipe.model.double()
    twin = TorchGPT.from_config(recipe.config, len(recipe.vocabulary)).double()
    twin.load_state_dict({name: torch.from_numpy(value) for name, value in recipe.model.state_dict().items()})
    assert twin.lm_head.weight is twin.transformer.wte.weight
    assert sum(p.numel() for p in twin.parameters()) == sum(p.numel() for p in recipe.model.parameters())
    optimizer = make_optimizer(twin, recipe.config)
    for step, batch in enumerate(list(recipe.make_loader(data, seed=0))[:3]):
        clock = Clock(step, 0, step, 4)
        recipe.before_step(clock)
        loss = recipe.train_step(recipe.to_tensors(batch), clock)["loss"]
        for group in optimizer.param_groups:
            group["lr"] = recipe.learning_rate(clock)
        optimizer.zero_grad()
        twin_loss = training_loss(twin, torch.from_numpy(batch[0]))
        twin_loss.backward()
        torch.nn.utils.clip_grad_norm_(twin.parameters(), recipe.config.clip_norm)
        optimizer.step()

        assert loss == pytest.approx(twin_loss.item(), rel=1e-12)
        assert_parameters_equal_the_twins(recipe.model, twin, when=f" at step {step}")


def test_fused_causal_attention_is_the_written_out_one():
    sg.manual_seed(2)
    q, k, v = (sg.randn(2, 3, 7, 4, dtype=sg.float64, requires_grad=True) for _ in range(3))
    fused = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    written = causal_attention_reference(q, k, v)
    np.testing.assert_allclose(fused.numpy(), written.numpy(), rtol=1e-12, atol=1e-14)
    weights = sg.randn(2, 3, 7, 4, dtype=sg.float64)
    fused_grads = sg.grad((fused * weights).sum(), [q, k, v])
    written_grads = sg.grad((written * weights).sum(), [q, k, v])
    for ours, expected in zip(fused_grads, written_grads):
        np.testing.assert_allclose(ours.numpy(), expected.numpy(), rtol=1e-10, atol=1e-12)


def test_initialisation_tying_and_weight_decay_groups():
    config = GPTConfig(n_layer=3, n_head=2, n_embd=64, block_size=32)
    sg.manual_seed(0)
    model = GPT(config, vocabulary_size=101)
    assert model.lm_head.weight is model.transformer.wte.weight
    residual = np.concatenate([p.numpy().ravel() for name, p in model.named_parameters()
                               if name.endswith("c_proj.weight")])
    others = np.concatenate([p.numpy().ravel() for name, p in model.named_parameters()
                             if name.endswith(("c_attn.weight", "c_fc.weight", "wte.weight"))])
    assert residual.std() == pytest.approx(0.02 / math.sqrt(2 * 3), rel=0.05)
    assert others.std() == pytest.approx(0.02, rel=0.05)
    assert all(not p.numpy().any() for name, p in model.named_parameters() if name.endswith(".bias"))
    recipe, _ = small_recipe()
    decayed, kept = recipe.optimizers["model"].param_groups
    assert decayed["weight_decay"] == recipe.config.weight_decay and kept["weight_decay"] == 0
    assert all(p.ndim == 2 for p in decayed["params"]) and all(p.ndim == 1 for p in kept["params"])
    assert len(decayed["params"]) + len(kept["params"]) == len(list(recipe.model.parameters()))


def test_validation_scores_every_character_once_from_half_a_block_of_context():
    starts, fresh = evaluation_windows(length=60, block_size=16)
    assert list(starts) == [0, 8, 16, 24, 32, 40, 43] and list(fresh) == [16, 8, 8, 8, 8, 8, 3]
    scored = np.concatenate([start + 16 - np.arange(new)[::-1] for start, new in zip(starts, fresh)])
    assert np.array_equal(scored, np.arange(1, 60))         # target positions 1..59, once each, in order

    recipe, data = small_recipe()
    recipe.model.double()
    ids = data.valid_ids[:60]
    expected = 0.0
    for start, new in zip(starts, fresh):                   # each target alone, from its window's start
        for target in range(start + 16 - new + 1, start + 17):
            logits = recipe.model(sg.tensor(ids[None, start:target]))
            expected -= logits[0, -1].log_softmax(dim=-1).numpy()[ids[target]]
    assert recipe.total_nats(ids) == pytest.approx(expected, rel=1e-10)


def test_learning_rate_warms_up_then_follows_a_cosine():
    recipe, _ = small_recipe(lr=1.0, warmup_steps=4, final_lr_fraction=0.1, epochs=2)
    rates = [recipe.learning_rate(Clock(step, 0, 0, 7)) for step in range(14)]
    np.testing.assert_allclose(rates[:4], [0.25, 0.5, 0.75, 1.0])
    assert rates[4] == pytest.approx(1.0) and rates[-1] > 0.1 and all(np.diff(rates[4:]) < 0)
    assert recipe.learning_rate(Clock(14, 2, 0, 7)) == pytest.approx(0.1)


def test_sampling_is_seeded_and_reads_the_prompt_as_training_does():
    recipe, _ = small_recipe()
    recipe.model.double()

    def draw(seed):
        with forked_rng(seed, 2):
            return "".join(recipe.generate("class ", 40, temperature=0.8, top_k=5))

    assert draw(1) == draw(1) != draw(2)
    ids = recipe.vocabulary.encode("    return x")        # 12 characters: the state keeps all of them
    state, _ = recipe.start(ids[:-1])
    _, stepped = recipe.advance(state, int(ids[-1]))
    logits = recipe.model(sg.tensor(ids[None, :]))
    np.testing.assert_allclose(stepped, logits[0, -1].log_softmax(dim=-1).numpy(), rtol=1e-12, atol=1e-14)
    long_prompt = recipe.vocabulary.encode("x" * 40)          # longer than the block: the last 16 are read
    state, _ = recipe.start(long_prompt)
    assert len(state) == recipe.config.block_size


def test_cli_trains_and_streams_samples(tmp_path, capsys):
    run = str(tmp_path / "run")
    assert cli.main(["train", "gpt", "--dry-run", "--out", run, "--n-layer", "1", "--n-embd", "16",
                     "--n-head", "2", "--block-size", "32", "--sample-length", "20"]) == 0
    capsys.readouterr()
    command = ["sample", "gpt", "--checkpoint", run, "--prompt", "def ", "--length", "30", "--n", "2"]
    assert cli.main(command) == 0
    out = capsys.readouterr().out                              # prompt + 30, a blank line, prompt + 30
    assert len(out) == 34 + 2 + 34 + 1 and out.startswith("def ") and out[34:40] == "\n\ndef "
