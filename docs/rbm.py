"""The figures and tables of docs/rbm.md: ``python docs/rbm.py [--checkpoint runs/rbm]``.

Needs a trained RBM (``scratchgen train rbm --out runs/rbm``). Prints, as JSON lines:

1. scikit-learn's ``BernoulliRBM`` at its defaults (256 hidden units, PCD-1, learning rate 0.1,
   batch 10, 10 epochs, ``random_state=0``) fitted to the same training digits, sampled by the very
   sampler ours uses (its weights loaded into a scratchgen RBM): the digits metrics of 1,000 samples;
2. our checkpoint's Gibbs and MALA samples: digits metrics of 1,000 of each, and each sampler's
   efficiency — the median over the 64 pixels of the bulk ESS of 100 chains x 500 kept steps
   (after 1,000 of burn-in), divided by the seconds those steps took;

and draws docs/images/rbm-gibbs.png, rbm-mala.png and rbm-sklearn.png (100 samples each).
Run it with one thread (``OMP_NUM_THREADS=1``); the seconds are upper bounds on a loaded machine.
"""
import argparse
import json
import pathlib

import numpy as np

from scratchgen import mcmc, runner
from scratchgen.eval import digits_metrics
from scratchgen.plots import save_image_grid
from scratchgen.random import manual_seed

IMAGES = pathlib.Path(__file__).resolve().parent / "images"
SUMMARY = ("fid_ratio", "classes_covered", "inception_score", "memorised_share")


def sklearn_rbm_recipe(recipe, data):
    """``recipe`` with the weights of a scikit-learn ``BernoulliRBM`` fitted at its defaults."""
    from sklearn.neural_network import BernoulliRBM
    fitted = BernoulliRBM(random_state=0).fit(np.asarray(data.train_images, np.float64).reshape(-1, 64))
    if fitted.n_components != recipe.model.hidden:
        raise SystemExit(f"expected an RBM checkpoint with {fitted.n_components} hidden units like scikit-learn's "
                         f"default, got {recipe.model.hidden}")
    recipe.model.weight.data[...] = fitted.components_
    recipe.model.visible_bias.data[...] = fitted.intercept_visible_
    recipe.model.hidden_bias.data[...] = fitted.intercept_hidden_
    return recipe


def scored(name, recipe, **options):
    manual_seed(0)
    images = recipe.sample(1000, **options)
    metrics = digits_metrics(images)
    save_image_grid(images[:100], IMAGES / f"rbm-{name}.png", columns=10, title=f"{name} samples")
    return {key: round(float(metrics[key]), 3) for key in SUMMARY}


def efficiency(recipe, sampler):
    """Median bulk ESS of the 64 pixels per second of sampling, 100 chains x 500 kept steps. (MALA's
    state is u = logit(v); the bulk ESS, made of ranks, is the same for u and for v = sigmoid(u).)"""
    manual_seed(0)
    _, result = recipe.run_chains(100 * 500, sampler, chains=100, burn_in=1000, thin=1)
    ess = float(np.median(mcmc.effective_sample_size(result.samples[..., :recipe.model.visible])))
    return {"median_pixel_ess": round(ess), "seconds": round(result.seconds, 1),
            "ess_per_second": round(ess / result.seconds, 1), "acceptance_rate": round(result.acceptance_rate, 3)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/rbm")
    args = parser.parse_args()
    recipe, data, _ = runner.load_recipe("rbm", args.checkpoint)
    for sampler in ("gibbs", "mala"):
        print(json.dumps({"model": "scratchgen rbm", "sampler": sampler, **scored(sampler, recipe, sampler=sampler),
                          **efficiency(recipe, sampler)}))
    print(json.dumps({"model": "sklearn BernoulliRBM (defaults)", "sampler": "gibbs",
                      **scored("sklearn", sklearn_rbm_recipe(recipe, data))}))


if __name__ == "__main__":
    main()
