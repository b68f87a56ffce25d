"""Draw the pictures of the guided tour into docs/figures/: ``python docs/figures.py``.

    mlp_step.svg            the autograd graph of one `mlp` training step (scratchgen graph mlp)
    vae_step_modules.svg    one `vae` step, one box per module (scratchgen graph vae --collapse-modules)
    gradient_flow.png       per-layer gradient norms of a deep sigmoid MLP: vanishing gradients
    flash_tiles.png         the tiles a causal flash-attention forward visits; one row's online softmax

The graphs need Graphviz's `dot`; without it their DOT text is written instead (.dot).
"""
import os
import pathlib
import shutil

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import scratchgen as sg  # noqa: E402
from scratchgen import nn, optim, study, viz  # noqa: E402
from scratchgen.data import load_digits_split  # noqa: E402
from scratchgen.kernels.attention.cpu import FORWARD_TILES  # noqa: E402

FIGURES = pathlib.Path(__file__).resolve().parent / "figures"


# The graph figures and the `scratchgen graph` arguments that draw them (README and docs/study.md
# quote these commands); tests/test_figures.py checks the committed SVGs still match them.
GRAPH_FIGURES = {
    "mlp_step.svg": dict(model="mlp", overrides={"batch_size": 16}),          # --batch-size 16
    "vae_step_modules.svg": dict(model="vae", collapse_modules=True),       # --collapse-modules
}


def graph_figure(name):
    """The autograd graph drawn in ``docs/figures/NAME`` (a ``viz`` graph: ``.source`` is its DOT)."""
    return study.graph_step(**GRAPH_FIGURES[name])


def save_graph(graph, name):
    path = FIGURES / name
    if shutil.which("dot") is None:
        path = path.with_suffix(".dot")
        graph.save(path)
    else:
        graph.render(str(path))
    return path


def gradient_flow(path, depth=8, steps=30):
    """A deep sigmoid MLP on the digits: the gradient shrinks layer by layer towards the input."""
    sg.manual_seed(0)
    layers = []
    for index in range(depth):
        layers += [nn.Linear(64 if index == 0 else 32, 32), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 10))
    images, labels = _digits()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    with viz.GradientFlow(model, include_biases=False) as flow:
        for step in range(steps):
            batch = slice(step * 32 % 1300, step * 32 % 1300 + 32)
            loss = sg.functional.cross_entropy(model(sg.tensor(images[batch])), sg.tensor(labels[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return flow.plot(path)


def _digits():
    split = load_digits_split()
    return split.train_images.reshape(len(split.train_images), -1), split.train_labels


def flash_tiles(path, length=1024):
    """Left: (query tile, key tile) pairs a causal forward computes. Right: one query row's running
    max m and running sum l (of exp(s - m)) as key tiles arrive, with the exact values dashed."""
    block_q, block_k = FORWARD_TILES
    tiles = np.zeros((length // block_q, length // block_k))
    for row in range(tiles.shape[0]):
        last_query = (row + 1) * block_q - 1
        tiles[row, : last_query // block_k + 1] = 1  # key tiles that start at or before the last query
    rng = np.random.default_rng(0)
    scores = rng.standard_normal(length) * 2
    maxima, sums, m, l = [], [], -np.inf, 0.0
    for start in range(0, length, 32):
        m_new = max(m, scores[start:start + 32].max())
        l = np.exp(m - m_new) * l + np.exp(scores[start:start + 32] - m_new).sum()
        m = m_new
        maxima.append(m)
        sums.append(l)
    figure, (grid, online) = plt.subplots(1, 2, figsize=(10, 4))
    grid.imshow(tiles, cmap="Blues", vmin=0, vmax=1.3, aspect="auto",
                extent=(0, length, length, 0))  # axes in keys and queries, tiles as blocks
    grid.set(title=f"causal T={length}: tiles computed ({block_q} queries x {block_k} keys)",
             xlabel="key", ylabel="query")
    # the tile grid itself: a line at every tile boundary, so each shaded cell is one tile pair
    grid.set_xticks(np.arange(0, length + 1, block_k), minor=True)
    grid.set_yticks(np.arange(0, length + 1, block_q), minor=True)
    grid.grid(which="minor", color="0.55", linewidth=0.5)
    grid.tick_params(which="minor", length=0)
    online.plot(maxima, "o-", label="running max m")
    online.axhline(scores.max(), ls="--", color="C0")
    online.plot(sums, "s-", label="running sum l of exp(s - m)")
    online.axhline(np.exp(scores - scores.max()).sum(), ls="--", color="C1")
    online.set(title="online softmax of one row, 32 keys per tile", xlabel="key tiles seen")
    online.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main():
    FIGURES.mkdir(exist_ok=True)
    written = [*(save_graph(graph_figure(name), name) for name in GRAPH_FIGURES),
               gradient_flow(FIGURES / "gradient_flow.png"),
               flash_tiles(FIGURES / "flash_tiles.png")]
    for path in written:
        print("wrote", os.path.relpath(path))


if __name__ == "__main__":
    main()
