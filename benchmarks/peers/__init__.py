"""PyTorch twins of scratchgen's models: idiomatic ``torch.nn`` modules with the same architecture,
parameter names and parameter count, so a ``state_dict`` moves between the two. The tests check
that a training step matches bit for bit in float64 (to rounding), and the benchmark suite times
the two side by side.

For the suite (``benchmarks/models.py``), the twin of a model defined in
``scratchgen/models/FAMILY.py`` lives in ``peers/FAMILY.py`` (or ``peers/NAME.py``, after the
registered name) and exposes

    twin_training_step(recipe, batch) -> step
        ``step()`` runs one training step of the twin — forward, backward, optimizer update, as
        ``recipe.train_step`` does — on ``batch``, the tuple of NumPy arrays one scratchgen step
        gets. ``recipe`` is the scratchgen recipe built with the same config: read sizes from
        ``recipe.config`` (and the data it was built from), start from its weights
        (``recipe.model.state_dict()``).
    twin_sampler(recipe, n) -> draw        (generators; optional)
        ``draw()`` draws ``n`` samples as ``recipe.sample(n)`` does.

A model without a twin module, or a twin without these functions, is reported as such.
"""
