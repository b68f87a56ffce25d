"""The memory plan: buffers die after their last use (views keep their memory alive), and poisoning
turns a buffer freed too early into NaN."""
import numpy as np

import scratchgen as sg


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
