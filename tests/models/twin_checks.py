"""The check every model's twin test ends with: our parameters against the PyTorch twin's, by name."""
import numpy as np


def assert_parameters_equal_the_twins(ours, twin, rtol=1e-9, atol=1e-12, when="", values=True):
    """Each named parameter of ``ours`` (a scratchgen module) has the same gradient as the twin's
    (a torch module) and, with ``values``, the same value after the optimizer step; the two
    modules name the same parameters. ``when`` ends the failure messages (" at step 2")."""
    twin_parameters = dict(twin.named_parameters())
    our_parameters = dict(ours.named_parameters())
    assert sorted(our_parameters) == sorted(twin_parameters)
    for name, parameter in our_parameters.items():
        theirs = twin_parameters[name]
        np.testing.assert_allclose(parameter.grad.numpy(), theirs.grad.numpy(), rtol=rtol, atol=atol,
                                   err_msg=f"gradient of {name}{when}")
        if values:
            np.testing.assert_allclose(parameter.numpy(), theirs.detach().numpy(), rtol=rtol, atol=atol,
                                       err_msg=f"{name} after the optimizer step{when}")
