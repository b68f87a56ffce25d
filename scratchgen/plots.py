"""The pictures a run leaves behind: image grids (``samples.png``) and loss curves (``loss.png``).

Matplotlib draws off-screen (the Agg backend), so training works on machines without a display;
it is imported only when a picture is made.
"""
import math

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def image_grid(images, columns=None, padding=1):
    """Tile (N, H, W) images in [0, 1] into one (rows*(H+p)+p, columns*(W+p)+p) array, p = padding."""
    images = np.clip(np.asarray(images, dtype=np.float32), 0, 1)
    count, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    # a light grey frame (0.25 on the 0 = white, 1 = black scale used below) separates the images
    grid = np.full((rows * (height + padding) + padding, columns * (width + padding) + padding), 0.25, np.float32)
    for index, image in enumerate(images):
        top = padding + (index // columns) * (height + padding)
        left = padding + (index % columns) * (width + padding)
        grid[top:top + height, left:left + width] = image
    return grid


def save_image_grid(images, path, columns=None, title=None):
    """Write ``images`` (N, H, W) as a grey grid PNG, ink dark on white as the digits are drawn."""
    plt = _pyplot()
    grid = image_grid(images, columns)
    figure, axes = plt.subplots(figsize=(6, 6 * grid.shape[0] / grid.shape[1] + (0.4 if title else 0)))
    axes.imshow(grid, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
    axes.set_axis_off()
    if title:
        axes.set_title(title)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def save_loss_curves(records, path, keys, title=None):
    """Plot each of ``keys`` against ``epoch`` over the ``records`` (dicts) that carry it."""
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4))
    for key in keys:
        points = [(record["epoch"], record[key]) for record in records
                  if isinstance(record.get(key), (int, float)) and not record.get("final")]
        if points:
            epochs, values = zip(*points)
            axes.plot(epochs, values, marker="o" if len(points) < 30 else None, markersize=3, label=key)
    axes.set_xlabel("epoch")
    axes.set_ylabel("loss")
    axes.grid(alpha=0.3)
    axes.legend()
    if title:
        axes.set_title(title)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def save_attention_maps(maps, path):
    """Draw attention weights, one panel per ``(weights, row_labels, column_labels)``: weights
    (rows, columns) in [0, 1], e.g. output tokens against source words (darker: more attention)."""
    plt = _pyplot()
    heights = [len(row_labels) + 2 for _, row_labels, _ in maps]
    width = max(len(column_labels) for _, _, column_labels in maps)
    figure, axes = plt.subplots(len(maps), 1, squeeze=False, gridspec_kw={"height_ratios": heights},
                                figsize=(1.0 + 0.6 * width, 0.4 * sum(heights) + 0.3))
    for panel, (weights, row_labels, column_labels) in zip(axes[:, 0], maps):
        panel.imshow(np.asarray(weights), cmap="Blues", vmin=0, vmax=1, aspect="auto")
        panel.set_xticks(range(len(column_labels)), column_labels, rotation=45, ha="right")
        panel.set_yticks(range(len(row_labels)), row_labels)
        panel.tick_params(length=0)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
