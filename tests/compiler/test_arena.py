"""The memory plan: buffers die after their last use (views keep their memory alive), and poisoning
turns a buffer freed too early into NaN."""
import numpy as np

import scratchgen as sg
from scratchgen.compiler import arena as arena_module
from scratchgen.compiler import program as program_module


def _compiled_chain():
    """tanh(x W) viewed flat, then used: the view outlives the array it views."""
    weight = sg.randn(4, 4, requires_grad=True)

    def step(x):
        hidden = (x @ weight).tanh()
        flat = hidden.reshape(-1)
        return (flat * flat).exp().sum()
    return sg.compile(step, poisoning=True)


def _trusted_program(step, x):
    for _ in range(2):
        step(x)
    (entry,) = step.cache.values()
    assert entry.trusted
    return entry.program


def test_the_plan_frees_intermediates_and_reports_the_peak():
    step = _compiled_chain()
    program = _trusted_program(step, sg.randn(3, 4))
    plan = program.plan
    assert 0 < plan.peak_bytes < plan.total_bytes
    freed = {index for dead in plan.dead_after for index in dead}
    assert freed and program.outputs[1] not in freed
    assert "peak" in step.explain()


def test_poisoning_catches_memory_freed_while_a_view_of_it_lives():
    step = _compiled_chain()
    x = sg.randn(3, 4)
    program = _trusted_program(step, x)
    expected = step(x).data
    # A plan that ignored views would free tanh's output right after the reshape that views it.
    reshape = next(k for k, op in enumerate(program.ops) if op.name == "Reshape")
    viewed = program.ops[reshape].reads[0]
    assert viewed in program.plan.owner_of
    call, reads, writes, dead = program.steps[reshape]
    program.steps[reshape] = (call, reads, writes, dead + [viewed])
    assert np.isfinite(expected).all() and np.isnan(step(x).data).all()


def _mlp_step(weights):
    """Three tanh layers and their backward: many same-shaped intermediates, each dead soon after."""
    def step(x):
        hidden = x
        for weight in weights:
            hidden = (hidden @ weight).tanh() * 0.5 + hidden
        loss = (hidden * hidden).sum()
        loss.backward()
        return loss, weights[0].grad
    return step


def _twins():
    sg.manual_seed(0)
    weights = [sg.randn(4, 4, requires_grad=True) for _ in range(3)]
    return _mlp_step(weights), sg.compile(_mlp_step(weights), poisoning=True), weights


def test_outputs_are_written_into_reused_blocks_with_eager_bits():
    eager, compiled, weights = _twins()
    rng = np.random.default_rng(0)
    for _ in range(4):
        x = sg.tensor(rng.standard_normal((3, 4)).astype(np.float32))
        results = []
        for function in (compiled, eager):
            for weight in weights:
                weight.grad = None
            results.append(function(x))
        for ours, theirs in zip(*results):
            np.testing.assert_array_equal(ours.data, theirs.data)
    (entry,) = compiled.cache.values()
    arena = entry.program.arena
    assert len(arena.blocks) < len(arena.block_of), "some block serves two outputs"
    assert all(block.flags.c_contiguous for block in arena.blocks)
    assert "reused blocks" in compiled.explain()


def test_returned_tensors_are_fresh_arrays_not_blocks():
    _, compiled, weights = _twins()
    x = sg.randn(3, 4)
    for _ in range(3):
        loss, grad = compiled(x)
    (entry,) = compiled.cache.values()
    for block in entry.program.arena.blocks:
        assert not np.shares_memory(block, loss.data) and not np.shares_memory(block, grad.data)


def test_poisoning_catches_two_live_values_in_one_block(monkeypatch):
    """A plan that never frees a block but hands it out again (every output of a shape in one block)
    overwrites values still to be read: the replay then differs from eager."""
    def one_block_per_shape(program, plan, forms):
        arena = arena_module.plan_arena(program, plan, forms)
        first = {}
        for index, block in sorted(arena.block_of.items()):
            buffer = program.buffers[index]
            arena.block_of[index] = first.setdefault((buffer.shape, buffer.dtype), block)
        return arena

    monkeypatch.setattr(program_module, "plan_arena", one_block_per_shape)
    eager, compiled, weights = _twins()
    x = sg.randn(3, 4)
    for _ in range(2):
        compiled(x)
    for weight in weights:
        weight.grad = None
    expected = eager(x)[1].data
    for weight in weights:
        weight.grad = None
    assert not np.array_equal(compiled(x)[1].data, expected)
