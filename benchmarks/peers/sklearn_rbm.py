"""scikit-learn's ``BernoulliRBM`` beside ``scratchgen train rbm`` in the benchmark suite: not a twin
(its own initialisation, PCD-1 and plain SGD), the library a user would reach for instead.

    step = partial_fit_step(recipe, batch)   # step(): one PCD-1 update on the batch, as partial_fit does
"""
import numpy as np


def partial_fit_step(recipe, batch):
    """``step()``: one ``partial_fit`` of a ``BernoulliRBM`` with the recipe's hidden units and
    learning rate on ``batch[0]`` (N, S, S) grey images, flattened (scikit-learn reads grey levels
    as probabilities; it does not binarise)."""
    from sklearn.neural_network import BernoulliRBM
    images = np.asarray(batch[0], dtype=np.float64).reshape(len(batch[0]), -1)
    model = BernoulliRBM(n_components=recipe.config.hidden, learning_rate=recipe.config.lr,
                         batch_size=len(images), random_state=0)
    model.partial_fit(images)  # the first call initialises; time the ones after it

    def step():
        model.partial_fit(images)
    return step
