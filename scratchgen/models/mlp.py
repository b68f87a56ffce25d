"""``scratchgen train mlp``: an MLP digits classifier — the smallest complete model, and the network
behind the digits metrics (``scratchgen.eval.classifier`` ships its weights at these defaults).

    images (N, 8, 8) -> flatten -> Linear 128 -> ReLU -> Linear 64 -> ReLU -> Linear 10 -> logits
    loss = cross-entropy, averaged over the batch; reported: test loss and test accuracy
"""
import dataclasses

import numpy as np

from .. import functional as F
from .. import optim
from ..autograd import no_grad
from ..eval.classifier import DigitsClassifier
from .base import Recipe, TrainConfig, option, register


@dataclasses.dataclass
class MLPConfig(TrainConfig):
    epochs: int = option(100, "100 x 22 steps of 64 images: ~6 s; test accuracy ~98%")
    hidden: int = option(128, "width of the first hidden layer")
    features: int = option(64, "width of the penultimate layer (the features of the digits FID)")
    weight_decay: float = option(1e-4, "Adam's L2 penalty")


@register
class MLPRecipe(Recipe):
    name = "mlp"
    Config = MLPConfig
    generative = False
    plot_keys = ("loss", "test_loss")

    def __init__(self, config, data, device="cpu"):
        super().__init__(config, data, device)
        pixels = int(np.prod(data.image_shape))
        classes = int(data.train_labels.max()) + 1
        self.model = DigitsClassifier(pixels, config.hidden, config.features, classes).to(self.device)
        self.optimizers = {"model": optim.Adam(self.model.parameters(), lr=config.lr,
                                               weight_decay=config.weight_decay, fused=True)}

    def train_step(self, batch, clock):
        images, labels = batch
        loss = F.cross_entropy(self.model(images), labels)
        optimizer = self.optimizers["model"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return {"loss": loss.item()}

    def validate(self, data):
        images, labels = self.to_tensors((data.test_images, data.test_labels))
        with no_grad():
            logits = self.model(images)
            loss = F.cross_entropy(logits, labels).item()
        accuracy = float((logits.argmax(-1) == labels).float().mean().item())
        return {"test_loss": loss, "test_accuracy": accuracy}
