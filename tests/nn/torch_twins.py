"""Helpers of the layer tests that compare a scratchgen layer with its PyTorch twin: the same
weights through the state dict, the same inputs as leaves on both sides, one seeded loss."""
import numpy as np

import scratchgen as sg

TOLERANCES = {np.float32: dict(rtol=1e-4, atol=1e-5), np.float64: dict(rtol=1e-9, atol=1e-10)}


def twins(torch, make_ours, make_theirs, dtype):
    """A scratchgen layer and its PyTorch twin holding the same (randomised) weights."""
    theirs = make_theirs().to(getattr(torch, np.dtype(dtype).name))
    ours = make_ours(dtype)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict({name: value.numpy() for name, value in theirs.state_dict().items()})
    return ours, theirs


def leaves(torch, *arrays):
    return ([sg.tensor(a, requires_grad=True) for a in arrays],
            [torch.tensor(a, requires_grad=True) for a in arrays])


def values(tensor):
    return tensor.detach().numpy()


def assert_same(ours, theirs, dtype, what):
    np.testing.assert_allclose(values(ours), values(theirs), **TOLERANCES[dtype], err_msg=what)


def seeded_loss(outputs, tensor_type, dtype):
    """sum(output * fixed random weights) over every output: each gets a distinct gradient."""
    rng = np.random.default_rng(0)
    return sum((o * tensor_type(rng.standard_normal(tuple(o.shape)).astype(dtype))).sum() for o in outputs)


def assert_outputs_and_gradients_match(outputs, inputs, ours, theirs, dtype):
    """``outputs``: (name, ours, theirs) triples, compared, then both sides' ``seeded_loss`` is
    backpropagated and the gradients of ``inputs`` ((name, ours, theirs) leaves) and of every
    parameter of the twin layers are compared."""
    import torch
    for name, a, b in outputs:
        assert a.shape == tuple(b.shape), name
        assert_same(a, b, dtype, name)
    seeded_loss([a for _, a, _ in outputs], sg.tensor, dtype).backward()
    seeded_loss([b for _, _, b in outputs], torch.tensor, dtype).backward()
    parameters = zip(ours.named_parameters(), theirs.parameters())
    pairs = list(inputs) + [(name, p, q) for (name, p), q in parameters]
    for name, a, b in pairs:
        assert_same(a.grad, b.grad, dtype, f"gradient of {name}")
