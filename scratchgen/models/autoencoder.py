"""``scratchgen train ae``: an autoencoder anomaly detector, trained on every digit but one.

Trained only on "normal" data — the training digits of every class but ``holdout_class`` — the
autoencoder learns to squeeze those through its bottleneck and back; the held-out digit, never
seen, comes back worse. So the reconstruction error is an anomaly score, and how well it picks
the held-out class out of the whole test split is measured by the ROC-AUC: the probability that
a random held-out test image scores higher than a random normal one (1: perfect, 0.5: chance).

    encoder  (N, S, S) -> flatten -> Linear hidden -> ReLU -> Linear code_dim    the bottleneck
    decoder  code -> Linear hidden -> ReLU -> Linear S*S -> logits;  x_hat = sigmoid(logits)
    loss     binary cross-entropy per pixel (grey levels read as probabilities), summed over the
             pixels (nats per image), averaged over the batch
    score    |x - x_hat|^2, summed over the pixels

``scratchgen eval ae`` (no checkpoint) trains one model per held-out class and prints the
ROC-AUC of each in one table; ``best_and_worst_reconstructions.png`` shows the test digits the
model reconstructs best and worst (with their reconstructions below them).
"""
import dataclasses
import time

import numpy as np

from .. import functional as F
from .. import nn, optim
from ..autograd import no_grad
from ..tensor import tensor
from .base import Recipe, TrainConfig, option, register

SHOWN = 10  # best and worst test digits in the picture


@dataclasses.dataclass
class AutoencoderConfig(TrainConfig):
    epochs: int = option(20, "~5 s on one CPU core; all ten held-out classes ~1 minute")
    batch_size: int = option(32, "38 steps per epoch on the ~1,210 normal training digits")
    lr: float = option(3e-3, "Adam")
    holdout_class: int = option(0, "the digit left out of training: the anomaly")
    code_dim: int = option(8, "the bottleneck's width")
    hidden: int = option(64, "width of the encoder's and decoder's hidden layers")

    def __post_init__(self):
        if self.code_dim < 1 or self.hidden < 1:
            raise ValueError(f"ae: expected code_dim >= 1 and hidden >= 1, got {self.code_dim} and "
                             f"{self.hidden}")


def roc_auc(scores, positive):
    """Area under the ROC curve = P(score of a random positive > score of a random negative),
    ties counting one half (the Mann-Whitney U statistic over the two group sizes)."""
    from sklearn.metrics import roc_auc_score
    return float(roc_auc_score(np.asarray(positive, dtype=bool), np.asarray(scores)))


class Autoencoder(nn.Module):
    def __init__(self, side, hidden=64, code_dim=8):
        super().__init__()
        self.side = side
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(side * side, hidden), nn.ReLU(),
                                     nn.Linear(hidden, code_dim))
        self.decoder = nn.Sequential(nn.Linear(code_dim, hidden), nn.ReLU(), nn.Linear(hidden, side * side),
                                     nn.Unflatten(1, (side, side)))

    def forward(self, images):
        """(N, S, S) images -> (N, S, S) reconstruction logits."""
        return self.decoder(self.encoder(images))

    def loss(self, images):
        """Binary cross-entropy of the reconstructions, nats per image, averaged over the batch."""
        return F.binary_cross_entropy_with_logits(self(images), images, reduction="sum") / images.shape[0]

    def reconstruct(self, images):
        return self(images).sigmoid()

    def anomaly_scores(self, images):
        """(N,) squared reconstruction errors, summed over the pixels."""
        return ((self.reconstruct(images) - images) ** 2).sum(dim=(1, 2))


@register
class AutoencoderRecipe(Recipe):
    name = "ae"
    Config = AutoencoderConfig
    generative = False
    plot_keys = ("loss", "test_loss")

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        height, width = data.image_shape
        if height != width:
            raise ValueError(f"ae: expected square images, got {data.image_shape}")
        self.model = Autoencoder(height, config.hidden, config.code_dim).to(self.device)
        self.optimizers = {"model": optim.Adam(self.model.parameters(), lr=config.lr, fused=True)}

    @classmethod
    def load_data(cls, config):
        """The images with the held-out class removed from the training split (the test split stays whole)."""
        data = super().load_data(config)
        classes = int(data.train_labels.max()) + 1
        if not 0 <= config.holdout_class < classes:
            raise ValueError(f"ae: expected holdout_class in 0..{classes - 1}, got {config.holdout_class}")
        normal = data.train_labels != config.holdout_class
        return dataclasses.replace(data, train_images=data.train_images[normal],
                                   train_labels=data.train_labels[normal])

    def train_step(self, batch, clock):
        loss = self.model.loss(batch[0])
        optimizer = self.optimizers["model"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    def _test_scores(self, data):
        with no_grad():
            images = tensor(data.test_images, device=self.device)
            return self.model.loss(images).item(), self.model.anomaly_scores(images).cpu().numpy()

    def validate(self, data):
        """Test reconstruction loss (every class) and the held-out class's ROC-AUC."""
        loss, scores = self._test_scores(data)
        positive = data.test_labels == self.config.holdout_class
        report = {"test_loss": loss}
        if positive.any() and not positive.all():  # a dry run's few test images may lack one side
            report["roc_auc"] = roc_auc(scores, positive)
        return report

    def figures(self, data):
        """The ``SHOWN`` best reconstructed test digits over their reconstructions, then the worst."""
        _, scores = self._test_scores(data)
        order = np.argsort(scores, kind="stable")
        rows = []
        for chosen in (order[:SHOWN], order[::-1][:SHOWN]):
            originals = data.test_images[chosen]
            with no_grad():
                rebuilt = self.model.reconstruct(tensor(originals, device=self.device)).cpu().numpy()
            rows += [originals, rebuilt]
        return {"best_and_worst_reconstructions": np.concatenate(rows)}

    @classmethod
    def evaluate_from_scratch(cls, overrides, train, echo=print):
        """Train one autoencoder per held-out class and report every ROC-AUC. ``train(overrides)``
        is the runner's training (the runner passes it in: a model never imports the runner); it
        returns the run's summary."""
        classes = int(cls.load_data(cls.Config(**overrides)).test_labels.max()) + 1
        aucs = {}
        for holdout in range(classes):
            started = time.perf_counter()
            summary = train({**overrides, "holdout_class": holdout})
            aucs[holdout] = summary["final"]["roc_auc"]
            seconds = time.perf_counter() - started
            echo(f"held-out digit {holdout}: ROC-AUC {aucs[holdout]:.3f} ({seconds:.1f} s)")
        echo(roc_auc_table(aucs))
        values = list(aucs.values())
        return {"roc_auc": {str(k): v for k, v in aucs.items()}, "mean_roc_auc": float(np.mean(values)),
                "classes_at_least_0.9": int(sum(v >= 0.9 for v in values))}


def roc_auc_table(aucs):
    """A markdown table: one row per held-out class, then the mean."""
    lines = ["| held-out digit | ROC-AUC |", "| --- | --- |"]
    lines += [f"| {holdout} | {auc:.3f} |" for holdout, auc in aucs.items()]
    lines.append(f"| mean | {np.mean(list(aucs.values())):.3f} |")
    return "\n".join(lines)
